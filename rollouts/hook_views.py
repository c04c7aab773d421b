"""The Alertmanager webhook: machines post here, so no session, no CSRF, JSON answers.

`POST /hooks/alertmanager/<secret>` or `POST /hooks/alertmanager` with
`Authorization: Bearer <secret>`; the secret is the rollout's (shown on its page with the
receiver configuration to paste). A wrong secret is a 404 that changes nothing; a body that
is not a version-4 webhook is a 400 that says why and changes nothing.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.exceptions import ApplicationError
from rollouts import services
from rollouts.models import Rollout

logger = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


def _bearer(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _rollout_for(secret: str) -> Rollout | None:
    # Secrets are URL-safe tokens; anything else (NUL bytes included) cannot match one.
    if not SECRET_RE.match(secret):
        return None
    rollout = Rollout.objects.filter(alert_secret=secret).exclude(alert_secret="").first()
    if rollout is None or not hmac.compare_digest(rollout.alert_secret, secret):
        return None
    return rollout


@csrf_exempt
@require_POST
def alertmanager(request: HttpRequest, secret: str = "") -> JsonResponse:
    rollout = _rollout_for(secret or _bearer(request))
    if rollout is None:
        logger.info("alertmanager.unknown_secret path=%s", request.path[:40])
        return _error(404, "not_found", "No rollout has this webhook secret.")
    length = request.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        return _error(413, "too_large", f"The body is larger than {MAX_BODY} bytes.")
    try:
        alerts = services.alertmanager_parse(request.body)
    except ApplicationError as exc:
        logger.info("alertmanager.bad_payload rollout_id=%s error=%s", rollout.id, exc.message)
        body: dict[str, Any] = {"error": "invalid", "message": exc.message}
        if exc.field:
            body["fields"] = {exc.field: [exc.message]}
        return JsonResponse(body, status=400)
    outcomes = services.alerts_receive(rollout=rollout, alerts=alerts)
    logger.info(
        "alertmanager.received rollout_id=%s alerts=%d actions=%s",
        rollout.id, len(outcomes), ",".join(sorted({o.action for o in outcomes})) or "-",
    )  # fmt: skip
    return JsonResponse(dict(services.as_mapping(outcomes)))
