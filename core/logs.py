"""Logging filters that keep `make run` readable: expected events without tracebacks."""

from __future__ import annotations

import logging


class QuietPermissionDenied(logging.Filter):
    """A 403 is an answer, not a crash: keep django.request's one-line warning, drop the
    traceback Django attaches to it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True


class DropKombuNoHostname(logging.Filter):
    """The filesystem broker has no host; kombu warns "No hostname was supplied" for it on
    every connection. Other kombu warnings pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No hostname was supplied")
