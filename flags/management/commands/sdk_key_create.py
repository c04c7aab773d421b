"""`manage.py sdk_key_create --environment KEY [--name NAME] [--kind server|frontend]`.

The new key is printed on the last line.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.exceptions import ApplicationError
from flags.models import Environment, SdkKey
from flags.services import sdk_key_create


class Command(BaseCommand):
    help = (
        "Create an SDK key for an environment (server by default; --kind frontend for browser "
        "and mobile apps, which only get evaluated answers). The key is printed once, alone on the "
        "last line (it is stored hashed and cannot be shown again)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--environment", required=True, help="Key of the environment.")
        parser.add_argument("--name", default="", help="What the key is for (shown to admins).")
        parser.add_argument(
            "--kind",
            choices=SdkKey.Kind.values,
            default=SdkKey.Kind.SERVER,
            help="server (default): Unleash client API and OFREP; frontend: Unleash frontend "
            "API and OFREP only, safe to ship in a browser.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        key = options["environment"]
        environment = Environment.objects.filter(key=key).first()
        if environment is None:
            raise CommandError(f"There is no environment {key!r}.")
        try:
            sdk_key, raw = sdk_key_create(
                environment=environment, name=options["name"], actor=None, kind=options["kind"]
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(f"Created SDK key {sdk_key.name!r} for {environment.key}; keep it safe:")
        self.stdout.write(raw)
