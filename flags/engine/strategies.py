"""Activation strategies: a strategy's name and parameters compiled into its own check.

``default``, ``userWithId`` (``userIds``), ``gradualRolloutUserId``,
``gradualRolloutSessionId``, ``gradualRolloutRandom`` (``percentage``, ``groupId``),
``remoteAddress`` (``IPs``: exact addresses and CIDR ranges, invalid entries ignored),
``flexibleRollout`` (``rollout``, ``stickiness``, ``groupId``) and ``applicationHostname``
(``hostNames``, case-insensitive). Rollcall evaluates for remote callers, so the host name is
the context property ``hostname`` when given and otherwise the evaluating server's
``socket.gethostname()`` (what a server-side Unleash SDK would use). Unknown strategy names
are false. Rollout percentages hash with ``flags.engine.evaluate.rollout_check``.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any, NamedTuple

from flags.engine.context import Context, as_str
from flags.engine.evaluate import Rollout, rollout_check, rollout_spec
from flags.engine.operators import Compiled, parse_ip, parse_networks, parse_percentage


def _split_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [as_str(v).strip() for v in value if as_str(v).strip()]
    if value is None:
        return []
    return [part.strip() for part in as_str(value).split(",") if part.strip()]


def _hostname() -> str:
    return socket.gethostname().lower()


class Activation(NamedTuple):
    """A strategy's own check (after constraints) and how it classifies the reason."""

    check: Compiled
    split: bool  # a percentage below 100
    targeting: bool
    #: The hashed rollout that ``check`` is, so that the flag's function can inline it.
    rollout: Rollout | None = None


def compile_activation(flag_key: str, name: Any, params: Mapping[str, Any]) -> Activation:
    if name == "default":
        return Activation(True, False, False)

    if name == "flexibleRollout":
        percentage = parse_percentage(params.get("rollout"))
        group_id = as_str(params.get("groupId") or flag_key)
        stickiness = as_str(params.get("stickiness") or "default")
        check = rollout_check(percentage, group_id, stickiness)
        spec = rollout_spec(percentage, group_id, stickiness)
        return Activation(check, 0 < percentage < 100, False, spec)

    if name in ("gradualRolloutUserId", "gradualRolloutSessionId"):
        percentage = parse_percentage(params.get("percentage"))
        group_id = as_str(params.get("groupId") or flag_key)
        field = "userId" if name == "gradualRolloutUserId" else "sessionId"
        check = rollout_check(percentage, group_id, field)
        spec = rollout_spec(percentage, group_id, field)
        return Activation(check, 0 < percentage < 100, False, spec)

    if name == "gradualRolloutRandom":
        percentage = parse_percentage(params.get("percentage"))
        check = rollout_check(percentage, flag_key, "random")
        return Activation(check, 0 < percentage < 100, False)

    if name == "userWithId":
        user_ids = frozenset(_split_list(params.get("userIds")))
        if not user_ids:
            return Activation(False, False, True)

        def user_with_id(ctx: Context) -> bool:
            user = ctx.get("userId")
            if user.__class__ is str:
                return user in user_ids
            return user is not None and as_str(user) in user_ids

        return Activation(user_with_id, False, True)

    if name == "remoteAddress":
        entries = _split_list(params.get("IPs"))
        exact = frozenset(entries)
        nets = parse_networks(e for e in entries if "/" in e)

        def remote_address(ctx: Context) -> bool:
            address = ctx.get("remoteAddress")
            if not address:
                return False
            if address.__class__ is not str:
                address = as_str(address)
            if address in exact:
                return True
            if not nets:
                return False
            parsed = parse_ip(address)
            return parsed is not None and any(parsed in net for net in nets)

        return Activation(remote_address if entries else False, False, True)

    if name == "applicationHostname":
        hosts = frozenset(h.lower() for h in _split_list(params.get("hostNames")))
        server_host = _hostname()

        def application_hostname(ctx: Context) -> bool:
            props = ctx.get("properties")
            host = props.get("hostname") if props else None
            if host is None:
                return server_host in hosts
            return as_str(host).lower() in hosts

        return Activation(application_hostname if hosts else False, False, True)

    return Activation(False, False, False)  # unknown strategy
