"""The development e-mail backend: each message is written whole to a file under var/mail/
(EMAIL_FILE_PATH) and the log gets one line per message instead of the raw MIME."""

from __future__ import annotations

import logging

from django.core.mail import EmailMessage
from django.core.mail.backends.filebased import EmailBackend as FileBackend

logger = logging.getLogger("rollcall.mail")


class SummaryFileBackend(FileBackend):
    def write_message(self, message: EmailMessage) -> None:
        super().write_message(message)
        logger.info(
            "mail.sent to=%s subject=%r file=%s",
            ",".join(message.recipients()),
            message.subject,
            getattr(self, "_fname", ""),
        )
