import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sessions_app.selectors.stream import stream_status
from sessions_app.streams.consumer import StreamConsumer, stream_arn_of
from sessions_app.streams.dispatch import handlers_from_settings
from sessions_app.streams.leases import lease_table_ensure


class Command(BaseCommand):
    help = ("Consume the session table's DynamoDB stream: keep the Redis caches true, publish live events, "
            "count fleet-wide numbers. Run one or more per deployment; Ctrl-C or SIGTERM stops it gracefully "
            "(the batch in hand is finished and checkpointed, the leases released).")

    def add_arguments(self, parser):
        parser.add_argument("--status", action="store_true", help="print shards, leases, checkpoints and lag, then exit")
        parser.add_argument("--consumer-id", help="this consumer's name in the lease table (default: host:pid:random)")

    def handle(self, *args, status=False, consumer_id=None, **options):
        if status:
            return self._status()
        arn = stream_arn_of()
        if arn is None:
            raise CommandError(f"table {settings.DYNAMODB_TABLE} has no stream: run `manage.py dynamodb_init` first")
        if lease_table_ensure():
            self.stdout.write("created the lease table")
        consumer = StreamConsumer(stream_arn=arn, handlers=handlers_from_settings(), consumer_id=consumer_id)

        def stop(signum, frame):
            self.stdout.write(f"stopping ({signal.Signals(signum).name}): finishing the batch in hand")
            consumer.stop()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(f"consumer {consumer.consumer_id} reading {arn}", ending="\n")
        self.stdout.flush()
        consumer.run()
        self.stdout.write(f"stopped: {consumer.stats.records} records in {consumer.stats.batches} batches, "
                          f"{consumer.stats.skipped} skipped")

    def _status(self):
        status = stream_status()
        if status.error:
            raise CommandError(f"cannot read the stream: {status.error}")
        if status.stream_arn is None:
            self.stdout.write(f"table {settings.DYNAMODB_TABLE}: no stream enabled")
            return
        self.stdout.write(f"stream {status.stream_arn}")
        leases = {lease.shard_id: lease for lease in status.leases}
        now_ms = int(time.time() * 1000)
        self.stdout.write(f"{len(status.shards)} shards, {len(status.leases_held)} leases held by "
                          f"{len(status.consumers)} consumers")
        for shard in status.shards:
            lease = leases.get(shard.shard_id)
            if lease is None:
                state = "no lease yet"
            elif lease.finished:
                state = "finished"
            elif lease.held(now_ms=now_ms):
                state = f"held by {lease.owner} ({(lease.expires_ms - now_ms) / 1000:.1f}s left)"
            else:
                state = "free"
            checkpoint = lease.checkpoint if lease and lease.checkpoint else "-"
            parent = f" parent {shard.parent_id}" if shard.parent_id else ""
            self.stdout.write(f"  {shard.shard_id}{parent}{' closed' if shard.closed else ''}: {state}; "
                              f"checkpoint {checkpoint}")
        progress = status.progress
        if progress is None:
            self.stdout.write("progress: unknown (Redis unavailable)")
            return
        if progress.lag_p50_ms is None:
            self.stdout.write(f"last {progress.seconds}s: no records processed")
        else:
            flag = "  LAG ABOVE ALERT THRESHOLD" if status.lag_alert else ""
            self.stdout.write(f"last {progress.seconds}s: {progress.records} records ({progress.records_per_second:.1f}/s), "
                              f"lag p50 {progress.lag_p50_ms / 1000:.2f}s, max {progress.lag_max_ms / 1000:.2f}s{flag}")
        if progress.last_error:
            error = progress.last_error
            self.stdout.write(f"last error ({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(error['at']))} UTC, "
                              f"{error['consumer']}): {error['message']}")
