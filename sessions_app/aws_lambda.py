"""The change feed's handlers as an AWS Lambda function, for a DynamoDB Streams event source
mapping (an alternative to running ``manage.py stream_consume``; README §Change feed).

Handler: ``sessions_app.aws_lambda.lambda_handler``; the mapping should set
``FunctionResponseTypes: ["ReportBatchItemFailures"]`` — the answer lists the records that were
not applied (``streams.dispatch``: from the earliest failure on), Lambda checkpoints before the
lowest of them and retries from there.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mangaassist.settings")
django.setup()  # a no-op when Django is already set up (tests, a shell)

from sessions_app.clock import utcnow  # noqa: E402 — Django must be set up first
from sessions_app.realtime import stream_progress_record  # noqa: E402
from sessions_app.streams.dispatch import batch_apply, handlers_from_settings  # noqa: E402
from sessions_app.streams.records import change_from_record, changes_from_records  # noqa: E402


def lambda_handler(event: dict, context: object) -> dict:
    records = event.get("Records", [])
    readable = 0
    for record in records:
        try:
            change_from_record(record)
        except (KeyError, TypeError, ValueError):
            # An unreadable record: apply what precedes it, retry from it (and let Lambda's
            # MaximumRetryAttempts / on-failure destination deal with it if it never reads).
            break
        readable += 1
    changes, failed = changes_from_records(records[:readable]), records[readable:]
    outcome = batch_apply(changes, handlers_from_settings())
    now = utcnow()
    stream_progress_record(lags_ms=[(now - c.changed_at).total_seconds() * 1000 for c in outcome.applied],
                           origins=[c.origin for c in outcome.applied])
    identifiers = [c.seq for c in outcome.failed] + [r.get("dynamodb", {}).get("SequenceNumber") for r in failed]
    return {"batchItemFailures": [{"itemIdentifier": i} for i in identifiers if i]}
