"""python manage.py create_api_key NAME --scope read|write — prints the new key once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from sessions_app.exceptions import InvalidInput
from sessions_app.models import ApiKey
from sessions_app.services.api_keys import api_key_create


class Command(BaseCommand):
    help = "Create an API key for the bot runtime. The key is printed once and stored only as a hash."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="A unique name for the client that will use the key.")
        parser.add_argument("--scope", choices=[s for s, _ in ApiKey.SCOPES], default=ApiKey.SCOPE_READ,
                            help="read (GET endpoints) or write (everything; implies read). Default: read.")

    def handle(self, *args, name: str, scope: str, **options) -> None:
        try:
            api_key, raw_key = api_key_create(name=name, scope=scope)
        except InvalidInput as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Created API key {api_key.name!r} (scope: {api_key.scope}, prefix: {api_key.prefix}).")
        self.stdout.write("Store it now: it is not kept and cannot be shown again.")
        self.stdout.write(f"key: {raw_key}")
