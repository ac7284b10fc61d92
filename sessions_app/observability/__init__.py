"""What the product reports about itself: Prometheus metrics (``metrics``) and structured logs
with a request id (``logs``). Neutral layer: imports nothing of the project's, so the DynamoDB
connection module, the Redis package and the entry points can all report through it.
See docs/operating.md.
"""
