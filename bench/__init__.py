"""`make bench`: the performance benchmarks (not tests). See README.md, "Performance"."""
