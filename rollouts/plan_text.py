"""Phases typed in one line when a rollout is created: "5,25,50,75,100 every 24h".

Pure parsing, no Django: the result is the plan phase dicts `rollout_create` takes.
"""

from __future__ import annotations

import re
from datetime import timedelta
from itertools import pairwise
from typing import Any

from core.exceptions import ApplicationError

_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days"}
_LINE = re.compile(
    r"^\s*(?P<pcts>\d+(?:\s*[,;/ ]\s*\d+)*)\s*%?\s*"
    r"(?:(?:every|,)\s*(?P<n>\d+)\s*(?P<unit>m|mins?|minutes?|h|hrs?|hours?|d|days?))?\s*$",
    re.IGNORECASE,
)
EXAMPLE = "5,25,50,75,100 every 24h"


def phases_from_text(text: str) -> list[dict[str, Any]]:
    """Phases at the listed percentages, each the given soak after the one before.

    Raises ApplicationError (field "phases_text") with an example when the line is not
    understood, a percentage is over 100 or the percentages do not grow.
    """
    match = _LINE.match(text or "")
    if match is None:
        raise ApplicationError(
            f"Write the percentages and the soak between them, e.g. “{EXAMPLE}”.",
            field="phases_text",
        )
    percentages = [int(p) for p in re.split(r"[,;/ ]+", match["pcts"].strip()) if p]
    if any(p > 100 for p in percentages):
        raise ApplicationError("A percentage is at most 100.", field="phases_text")
    if any(b <= a for a, b in pairwise(percentages)):
        raise ApplicationError(
            "Each phase must reach more than the one before (e.g. 5, 25, 100).",
            field="phases_text",
        )
    soak: timedelta | None = None
    if match["n"]:
        unit = _UNITS[match["unit"].lower()[0]]
        soak = timedelta(**{unit: int(match["n"])})
    return [
        {
            "name": "Everyone" if pct == 100 else f"{pct}%",
            "percentage": pct,
            "segment": None,
            "start_rule": "after_soak",
            "start_at": None,
            "soak": soak if i else None,
            "gate": "automatic",
            "notes": "",
        }
        for i, pct in enumerate(percentages)
    ]
