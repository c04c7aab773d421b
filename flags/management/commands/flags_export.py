"""`manage.py flags_export --environment KEY`: an environment's flags as JSON on stdout."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flags.importexport import flags_export
from flags.models import Environment


class Command(BaseCommand):
    help = "Print an environment's flags and segments as Unleash client-API JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--environment", required=True, help="Key of the environment.")

    def handle(self, *args: Any, **options: Any) -> None:
        key = options["environment"]
        environment = Environment.objects.filter(key=key).first()
        if environment is None:
            raise CommandError(f"There is no environment {key!r}.")
        data = flags_export(environment=environment)
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))
