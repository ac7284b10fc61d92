"""Print least-privilege IAM policy documents for the roles that run this code.

    manage.py iam_policy --account-id 123456789012 [--role web|worker|stream|deploy|all] [--region R]

One role: its policy document. ``all``: ``{"web": {...}, "worker": {...}, ...}``. The documents
follow the settings (table, lease table, DAX, DYNAMODB_SSE's key, the summarizer, scheduled
backups, the table configuration) of the environment the command runs in; see
``sessions_app.iam`` for what each role is granted and why. No AWS call is made.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sessions_app.iam import ROLES, dax_cluster_name, policy_documents


class Command(BaseCommand):
    help = ("Print the least-privilege IAM policies (JSON) of the web, worker, stream consumer and deploy roles, "
            "for this environment's table, DAX cluster, KMS key and summarizer.")

    def add_arguments(self, parser):
        parser.add_argument("--role", choices=(*ROLES, "all"), default="all")
        parser.add_argument("--account-id", required=True, help="the 12-digit AWS account id of the resources")
        parser.add_argument("--region", help="default AWS_REGION (one policy per region: each region's "
                                             "deployment uses its own replica)")
        parser.add_argument("--dax-cluster", help="the DAX cluster's name (default DAX_CLUSTER_NAME, or the "
                                                  "name in DAX_ENDPOINTS' cluster endpoint)")

    def handle(self, *args, role="all", account_id=None, region=None, dax_cluster=None, **options):
        roles = ROLES if role == "all" else (role,)
        overrides = {"dax_cluster": dax_cluster} if dax_cluster else {}
        if settings.DAX_ENDPOINTS and not dax_cluster and not dax_cluster_name():
            self.stderr.write(self.style.WARNING(
                "DAX_ENDPOINTS names no AWS DAX cluster: no dax: statement; pass --dax-cluster NAME"))
        try:
            documents = policy_documents(account_id, region or settings.AWS_REGION, roles=roles, **overrides)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(documents if role == "all" else documents[role], indent=2))
