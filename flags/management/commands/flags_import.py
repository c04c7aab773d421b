"""`manage.py flags_import --environment KEY [--create] FILE`: import flags (all or nothing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.exceptions import ApplicationError
from flags.importexport import flags_import


class Command(BaseCommand):
    help = (
        "Import flags, their state in one environment and segments from an Unleash client-API "
        "JSON file (what flags_export writes). Nothing changes when anything is invalid."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="JSON file to import ('-' reads standard input).")
        parser.add_argument("--environment", required=True, help="Key of the environment.")
        parser.add_argument(
            "--create", action="store_true", help="Create the environment if it does not exist."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CommandError(f"{path} is not valid JSON: {exc}.") from exc
        try:
            result = flags_import(
                environment=options["environment"],
                data=data,
                actor=None,
                create_environment=options["create"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(result.summary())
