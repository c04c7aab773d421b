"""Flags demo data: environments, segments and realistic flags. Idempotent (through services).

Runs after `core.demo` (users `release`, `approver`, `support`, `admin`). Running it twice
changes nothing: every object is looked up by its key or name first.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from flags import services
from flags.models import Environment, Flag, Segment

ENVIRONMENTS = (
    # key, name, is_production
    ("development", "Development", False),
    ("staging", "Staging", False),
    ("production", "Production", True),
)
BETA_TESTERS = "Beta testers"
INTERNAL_STAFF = "Internal staff"
SEGMENTS = (
    (
        BETA_TESTERS,
        "Customers who opted in to try features early.",
        [
            {
                "contextName": "userId",
                "operator": "IN",
                "values": ["beta-1", "beta-2", "beta-3", "beta-4", "beta-5"],
            }
        ],
    ),
    (
        INTERNAL_STAFF,
        "Everyone with a company e-mail address.",
        [
            {
                "contextName": "email",
                "operator": "STR_ENDS_WITH",
                "values": ["@example.com"],
                "caseInsensitive": True,
            }
        ],
    ),
)


def _rollout(flag_key: str, percentage: int, *, title: str = "", **extra: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": "flexibleRollout",
        "parameters": {"rollout": str(percentage), "stickiness": "default", "groupId": flag_key},
        "constraints": extra.get("constraints", []),
        "segments": extra.get("segments", []),
    }
    if title:
        rule["title"] = title
    return rule


def _flags(beta: int, staff: int) -> list[dict[str, Any]]:
    """Each flag: details, then per environment (enabled, rules)."""
    return [
        {
            "key": "new-checkout",
            "name": "New checkout",
            "description": "The one-page checkout with saved cards.",
            "tags": ["checkout", "web"],
            "states": {
                "development": (True, []),
                "staging": (
                    True,
                    [
                        _rollout("new-checkout", 100, title="Beta testers", segments=[beta]),
                        _rollout("new-checkout", 10, title="10% of users"),
                    ],
                ),
                "production": (False, [_rollout("new-checkout", 100, segments=[staff])]),
            },
        },
        {
            "key": "dark-mode",
            "name": "Dark mode",
            "description": "A dark theme for the whole web app.",
            "tags": ["web", "ui"],
            "lifecycle": Flag.Lifecycle.PERMANENT,
            "states": {
                "development": (True, []),
                "staging": (True, []),
                "production": (True, [_rollout("dark-mode", 50)]),
            },
        },
        {
            "key": "search-v2",
            "name": "Search v2",
            "description": "The new search ranking, compared with the old one.",
            "tags": ["search", "experiment"],
            "variants": [
                {
                    "name": "control",
                    "weightType": "variable",
                    "stickiness": "default",
                    "payload": {"type": "string", "value": "classic"},
                },
                {
                    "name": "semantic",
                    "weightType": "variable",
                    "stickiness": "default",
                    "payload": {"type": "string", "value": "semantic"},
                },
            ],
            "states": {
                "development": (True, []),
                "staging": (True, [_rollout("search-v2", 100, segments=[staff])]),
                "production": (False, []),
            },
        },
        {
            "key": "pricing-banner",
            "name": "Pricing banner",
            "description": "The text of the banner above the pricing table.",
            "type": Flag.Type.STRING,
            "tags": ["marketing"],
            "variants": [
                {
                    "name": "spring-sale",
                    "weightType": "fix",
                    "weight": 1000,
                    "stickiness": "default",
                    "payload": {"type": "string", "value": "Spring sale: 20% off annual plans"},
                }
            ],
            "states": {
                "development": (True, []),
                "staging": (True, []),
                "production": (True, []),
            },
        },
        {
            "key": "max-upload-mb",
            "name": "Maximum upload size (MB)",
            "description": "How large an attachment may be.",
            "type": Flag.Type.NUMBER,
            "tags": ["limits"],
            "lifecycle": Flag.Lifecycle.PERMANENT,
            "variants": [
                {
                    "name": "standard",
                    "weightType": "fix",
                    "weight": 1000,
                    "stickiness": "default",
                    "payload": {"type": "number", "value": "25"},
                }
            ],
            "states": {
                "development": (True, []),
                "staging": (True, []),
                "production": (True, []),
            },
        },
        {
            "key": "recommendations-widget",
            "name": "Recommendations widget",
            "description": "“You may also like” on product pages.",
            "tags": ["web", "experiment"],
            "states": {
                "development": (True, []),
                "staging": (True, [_rollout("recommendations-widget", 25)]),
                "production": (False, []),
            },
        },
        {
            "key": "audit-log-export",
            "name": "Audit log export",
            "description": "CSV export of the audit log for admins.",
            "tags": ["admin"],
            "states": {
                "development": (True, []),
                "staging": (
                    True,
                    [
                        _rollout(
                            "audit-log-export",
                            100,
                            title="Enterprise plans",
                            constraints=[
                                {"contextName": "plan", "operator": "IN", "values": ["enterprise"]}
                            ],
                        )
                    ],
                ),
                "production": (False, []),
            },
        },
        {
            "key": "legacy-editor",
            "name": "Legacy editor",
            "description": "The old rich-text editor, kept for a few customers.",
            "tags": ["web"],
            "lifecycle": Flag.Lifecycle.STALE,
            "states": {
                "development": (False, []),
                "staging": (False, []),
                "production": (True, [_rollout("legacy-editor", 5)]),
            },
        },
    ]


def load(*, stdout: Any) -> None:
    actor = get_user_model().objects.filter(username="release").first()
    environments = {}
    for order, (key, name, is_production) in enumerate(ENVIRONMENTS):
        env = Environment.objects.filter(key=key).first()
        if env is None:
            env = services.environment_create(
                key=key, name=name, is_production=is_production, order=order, actor=actor
            )
            stdout.write(f"Created environment {name}.")
        environments[key] = env
    segments = {}
    for name, description, constraints in SEGMENTS:
        segment = Segment.objects.filter(name=name).first()
        if segment is None:
            segment = services.segment_create(
                name=name, description=description, constraints=constraints, actor=actor
            )
            stdout.write(f"Created segment {name}.")
        segments[name] = segment
    for spec in _flags(segments[BETA_TESTERS].pk, segments[INTERNAL_STAFF].pk):
        if Flag.objects.filter(key=spec["key"]).exists():
            continue
        flag = services.flag_create(
            key=spec["key"],
            name=spec["name"],
            description=spec["description"],
            type=spec.get("type", Flag.Type.BOOLEAN),
            variants=spec.get("variants"),
            tags=spec["tags"],
            lifecycle=spec.get("lifecycle", Flag.Lifecycle.ACTIVE),
            actor=actor,
        )
        for env_key, (enabled, rules) in spec["states"].items():
            services.flag_state_update(
                flag=flag,
                environment=environments[env_key],
                enabled=enabled,
                rules=rules,
                actor=actor,
            )
        stdout.write(f"Created flag {flag.key}.")
