"""Dashboard panels, contributed by the apps that own the data.

An app registers a panel in its `AppConfig.ready()`:

    from core.dashboard import register_panel
    register_panel(my_panel)   # my_panel(request) -> (template_name, context) | None

Core stays at the bottom of the import graph: it only calls what it was given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest

Panel = Callable[[HttpRequest], tuple[str, dict[str, Any]] | None]
_PANELS: list[Panel] = []


def register_panel(panel: Panel) -> None:
    if panel not in _PANELS:
        _PANELS.append(panel)


def panels() -> list[Panel]:
    return list(_PANELS)
