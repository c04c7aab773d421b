"""A separate Rollcall process that changes things on request (the "other process").

Reads one JSON command a line on stdin, answers one JSON line on stdout with `committed_at`
(time.time() right after the service returned, so after its commit and on-commit hooks).
Used by test_consistency.py on both deployment shapes (its environment picks the database).
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from core.roles import RELEASE_MANAGERS, sync_roles  # noqa: E402
from flags import services  # noqa: E402
from flags.models import Environment, Flag, SdkKey  # noqa: E402
from rollouts import services as rollout_services  # noqa: E402
from rollouts.models import Release, Rollout, RolloutEvent  # noqa: E402

UI = RolloutEvent.Source.UI


def setup(_: dict) -> dict:
    from django.contrib.auth.models import Group, Permission

    sync_roles(Group, Permission)
    env = Environment.objects.create(key="production", name="Production")
    user = User.objects.create_user("remy", password="pw-remy")
    user.groups.add(Group.objects.get(name=RELEASE_MANAGERS))
    keys = [services.sdk_key_create(environment=env, name=f"k{i}", actor=None) for i in range(3)]
    flag = services.flag_create(key="checkout", name="Checkout", actor=None)
    services.flag_state_update(flag=flag, environment=env, actor=None, enabled=True, rules=[])
    release = Release.objects.create(name="Search", version="2.0")
    rollout = rollout_services.rollout_create(
        release=release,
        environment=env,
        strategy="canary",
        actor=None,
        source=UI,
        flag_key="search-canary",
        phases=[
            {"name": "1%", "percentage": 1, "start_rule": "after_soak", "gate": "automatic"},
            {"name": "all", "percentage": 100, "start_rule": "after_soak", "gate": "manual"},
        ],
    )
    rollout_services.rollout_start(rollout=rollout, actor=None, source=UI)
    return {
        "keys": [raw for _, raw in keys],
        "key_ids": [k.pk for k, _ in keys],
        "token": Token.objects.create(user=user).key,
        "rollout": rollout.pk,
    }


def toggle(cmd: dict) -> dict:
    flag = Flag.objects.get(key=cmd["flag"])
    env = Environment.objects.get(key="production")
    services.flag_toggle(flag=flag, environment=env, enabled=cmd["enabled"], actor=None)
    return {}


def create_flag(cmd: dict) -> dict:
    env = Environment.objects.get(key="production")
    flag = services.flag_create(key=cmd["flag"], name=cmd["flag"], actor=None)
    services.flag_toggle(flag=flag, environment=env, enabled=True, actor=None)
    return {}


def revoke(cmd: dict) -> dict:
    services.sdk_key_revoke(sdk_key=SdkKey.objects.get(pk=cmd["key_id"]), actor=None)
    return {}


def advance(cmd: dict) -> dict:
    rollout = Rollout.objects.get(pk=cmd["rollout"])
    rollout_services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason="go")
    return {}


def rollback(cmd: dict) -> dict:
    rollout = Rollout.objects.get(pk=cmd["rollout"])
    rollout_services.rollout_rollback(rollout=rollout, actor=None, source=UI)
    return {}


def usage(_: dict) -> dict:
    """OFREP evaluations written by the web processes: flag -> [yes, no]."""
    from django.db.models import Sum

    from flags.models import FlagUsage

    rows = (
        FlagUsage.objects.filter(source=FlagUsage.Source.OFREP)
        .values("flag_key")
        .annotate(yes=Sum("yes"), no=Sum("no"))
    )
    return {"usage": {r["flag_key"]: [r["yes"], r["no"]] for r in rows}}


ACTIONS = {
    "setup": setup,
    "usage": usage,
    "toggle": toggle,
    "create_flag": create_flag,
    "revoke": revoke,
    "advance": advance,
    "rollback": rollback,
}

print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    command = json.loads(line)
    answer = ACTIONS[command["action"]](command)
    answer["committed_at"] = time.time()
    print(json.dumps(answer), flush=True)
