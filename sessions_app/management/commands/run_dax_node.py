"""``manage.py run_dax_node``: the local DAX node (same options as ``python -m daxlocal``).

The node is a standalone server; this command only parses options and runs it.
"""

from django.core.management.base import BaseCommand, CommandError

from daxlocal import cli


class Command(BaseCommand):
    help = "Run the local DAX node that amazon-dax-client talks to, writing through to DynamoDB."

    def add_arguments(self, parser):
        cli.add_arguments(parser)

    def handle(self, *args, **options):
        if options["cluster_size"] != 1:
            # A cluster is several processes under a supervisor: that is `python -m daxlocal`'s job.
            raise CommandError("--cluster-size needs python -m daxlocal (it supervises the nodes); "
                               "run_dax_node runs one node (use --cluster-name to join a cluster)")
        try:
            config = cli.config_from(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        cli.run(config, options["log_level"])
