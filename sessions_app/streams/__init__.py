"""The change feed: DynamoDB Streams read into :class:`records.Change` objects and applied by a
list of handlers, either by the long-running consumer (``consumer.StreamConsumer``, run by
``manage.py stream_consume``) or by AWS Lambda (``sessions_app.aws_lambda``).

docs/architecture.md §Change feed describes the design: leases and checkpoints in a table of
their own (Kinesis Client Library style), at-least-once delivery, idempotent handlers.
"""
