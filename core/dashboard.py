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


# Sections that a higher app adds to a lower app's page (e.g. comms' communication plan on
# the rollout page), without the lower app importing the higher one.
Section = Callable[..., tuple[str, dict[str, Any]] | None]
_SECTIONS: dict[str, list[Section]] = {}


def register_section(slot: str, section: Section) -> None:
    registered = _SECTIONS.setdefault(slot, [])
    if section not in registered:
        registered.append(section)


def render_sections(slot: str, request: HttpRequest, **kwargs: Any) -> list[str]:
    """The HTML of every section registered for `slot` that has something to show."""
    from django.template.loader import render_to_string

    html: list[str] = []
    for section in _SECTIONS.get(slot, []):
        result = section(request, **kwargs)
        if result is not None:
            template_name, context = result
            html.append(render_to_string(template_name, context, request=request))
    return html


# Facts a higher app contributes to a lower app's decisions (e.g. comms' lead-time notices that
# starting a rollout now would miss), again without the lower app importing the higher one.
Check = Callable[..., list[dict[str, Any]]]
_CHECKS: dict[str, list[Check]] = {}


def register_check(slot: str, check: Check) -> None:
    registered = _CHECKS.setdefault(slot, [])
    if check not in registered:
        registered.append(check)


def run_checks(slot: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every finding of the checks registered for `slot`, in registration order."""
    return [finding for check in _CHECKS.get(slot, []) for finding in check(**kwargs)]
