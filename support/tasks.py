"""Celery tasks of the support pages: doc-link checks. Thin: ids in, one service call."""

from __future__ import annotations

from celery import shared_task

from support import services


@shared_task(name="support.check_doc_links", ignore_result=True)
def check_doc_links() -> int:
    """The periodic sweep: check every doc link; returns how many results were stored."""
    return services.doclinks_check().checked


@shared_task(name="support.check_doc_link", ignore_result=True)
def check_doc_link(doclink_id: int) -> None:
    """Check one link soon after it was added or its URL changed (idempotent)."""
    services.doclink_check(doclink_id=doclink_id)
