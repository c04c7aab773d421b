from __future__ import annotations

import logging
import socket
from datetime import datetime

from django.utils import timezone

from core.models import Heartbeat

logger = logging.getLogger(__name__)


def heartbeat_record(*, name: str, now: datetime | None = None) -> Heartbeat:
    now = now or timezone.now()
    beat, _ = Heartbeat.objects.update_or_create(
        name=name, defaults={"last_seen": now, "hostname": socket.gethostname()}
    )
    logger.info("heartbeat.recorded name=%s", name)
    return beat
