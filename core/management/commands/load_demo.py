"""Load demo data. Idempotent: running it twice changes nothing.

Each app may ship a `demo.py` with `load(*, stdout) -> None`; they run in INSTALLED_APPS
order (core, flags, rollouts, comms), so later apps can rely on earlier demo data.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction


class Command(BaseCommand):
    help = "Load Rollcall's demo data (users for each role, environments, flags, ...)."

    def handle(self, *args: Any, **options: Any) -> None:
        for config in apps.get_app_configs():
            module_name = f"{config.name}.demo"
            if find_spec(config.name) is None or find_spec(module_name) is None:
                continue
            with transaction.atomic():
                import_module(module_name).load(stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data is loaded."))
