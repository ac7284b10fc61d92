"""Local tooling for `make run`, `make test` and `make bench`: not imported by the product."""
