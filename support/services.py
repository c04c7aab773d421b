"""Doc links: create, update, delete, and the link checker that keeps their status honest.

The checker asks each URL with HEAD (cheap), falls back to GET when the server refuses HEAD
(405/501) or HEAD fails, follows at most five redirects, gives up after a short timeout and
runs a bounded number of checks at once. A result is stored only while the link still has the
URL that was checked, so an edit made during a check is never overwritten by a stale answer.

Every request goes through `core.outbound`: addresses that resolve to loopback, private,
link-local or reserved networks are refused on save and never fetched (each redirect hop is
checked again), and stored errors are short reasons, never the remote reply or the URL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from comms.models import DocLink, http_url_validator
from core import outbound
from core.exceptions import ApplicationError
from core.queue import enqueue_on_commit

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = 5.0
DEFAULT_WORKERS = 8
USER_AGENT = "Rollcall-LinkChecker/1.0 (+doc link check)"
# Statuses that mean "this server does not do HEAD": ask again with GET.
HEAD_REFUSED = {405, 501}
EDITABLE_FIELDS = ("title", "url", "kind", "visibility")


# --------------------------------------------------------------------------------------------
# Create, update, delete


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    if not url:
        raise ApplicationError("Enter the address of the document.", field="url")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in {"http", "https"}:
        shown = f"{scheme}:" if scheme else "an address without a scheme"
        raise ApplicationError(
            f"Only http:// and https:// links can be added ({shown} was given); "
            "use the document's web address, e.g. https://docs.example.com/guide.",
            field="url",
        )
    try:
        http_url_validator(url)
    except ValidationError as exc:
        raise ApplicationError(
            "This is not a valid web address; check it and try again "
            "(e.g. https://docs.example.com/guide).",
            field="url",
        ) from exc
    try:
        outbound.check_destination(url)
    except outbound.OutboundRefused as exc:
        raise ApplicationError(exc.message, field="url") from exc
    except outbound.OutboundError:
        pass  # a name that does not resolve today: the checker will report it as broken
    return url


def _clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    clean = dict(fields)
    if "title" in clean:
        clean["title"] = (clean["title"] or "").strip()
        if not clean["title"]:
            raise ApplicationError("Give the link a title readers will recognise.", field="title")
        if len(clean["title"]) > 200:
            raise ApplicationError("Keep the title under 200 characters.", field="title")
    if "url" in clean:
        clean["url"] = _clean_url(clean["url"])
    if "kind" in clean and clean["kind"] not in DocLink.Kind.values:
        raise ApplicationError(f"Unknown kind of document {clean['kind']!r}.", field="kind")
    if "visibility" in clean and clean["visibility"] not in DocLink.Visibility.values:
        raise ApplicationError(f"Unknown visibility {clean['visibility']!r}.", field="visibility")
    return clean


CHECK_DOC_LINK_TASK = "support.check_doc_link"


def _enqueue_check(doclink_id: int) -> None:
    """Check a new or moved link soon after commit; the periodic sweep is the safety net."""

    def failed(exc: Exception) -> None:  # the broker being down must not fail the edit
        logger.warning("doclink.check_enqueue_failed doclink_id=%s", doclink_id, exc_info=exc)

    enqueue_on_commit(CHECK_DOC_LINK_TASK, doclink_id, on_error=failed)


@transaction.atomic
def doclink_create(
    *,
    title: str,
    url: str,
    kind: str = DocLink.Kind.USER_GUIDE,
    visibility: str = DocLink.Visibility.INTERNAL,
    release: Any = None,
    flag: Any = None,
    actor: AbstractBaseUser | None,
) -> DocLink:
    if (release is None) == (flag is None):
        raise ApplicationError("A doc link belongs to exactly one release or one flag.")
    clean = _clean_fields({"title": title, "url": url, "kind": kind, "visibility": visibility})
    link = DocLink(release=release, flag=flag, **clean)
    if actor is not None and getattr(actor, "is_authenticated", False):
        link._history_user = actor  # type: ignore[attr-defined]
    link.save()
    logger.info(
        "doclink.created doclink_id=%s release_id=%s flag_id=%s kind=%s visibility=%s",
        link.pk,
        link.release_id,
        link.flag_id,
        link.kind,
        link.visibility,
    )
    _enqueue_check(link.pk)
    return link


@transaction.atomic
def doclink_update(*, doclink: DocLink, actor: AbstractBaseUser | None, **fields: Any) -> DocLink:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    clean = _clean_fields(fields)
    link = DocLink.objects.select_for_update().get(pk=doclink.pk)
    changed = [name for name, value in clean.items() if getattr(link, name) != value]
    if not changed:
        return link
    url_changed = "url" in changed
    for name in changed:
        setattr(link, name, clean[name])
    if url_changed:
        # The old result says nothing about the new address.
        link.status = DocLink.Status.UNCHECKED
        link.status_code = None
        link.last_error = ""
        link.checked_at = None
    if actor is not None and getattr(actor, "is_authenticated", False):
        link._history_user = actor  # type: ignore[attr-defined]
    link.save()
    logger.info("doclink.updated doclink_id=%s fields=%s", link.pk, ",".join(changed))
    if url_changed:
        _enqueue_check(link.pk)
    return link


@transaction.atomic
def doclink_delete(*, doclink: DocLink, actor: AbstractBaseUser | None) -> None:
    pk = doclink.pk
    if actor is not None and getattr(actor, "is_authenticated", False):
        doclink._history_user = actor  # type: ignore[attr-defined]
    deleted, _ = DocLink.objects.filter(pk=pk).delete()
    if deleted:
        logger.info("doclink.deleted doclink_id=%s", pk)


# --------------------------------------------------------------------------------------------
# Link checking


@dataclass(frozen=True)
class LinkCheckResult:
    ok: bool
    status_code: int | None
    error: str
    method: str  # the method whose answer counted: HEAD or GET


def _ask(session: requests.Session, method: str, url: str, timeout: float) -> requests.Response:
    # stream=True: a GET fallback must not download a whole video to learn it exists.
    response = outbound.request(
        method, url, session=session, max_redirects=MAX_REDIRECTS, timeout=timeout, stream=True
    )
    response.close()
    return response


def _describe(exc: Exception, timeout: float) -> str:
    """A short reason a person can act on: never the URL (it may carry a token) or a body."""
    if isinstance(exc, outbound.OutboundRefused | outbound.OutboundError):
        return exc.message[:500]
    return f"The check failed ({type(exc).__name__})."


def _result(response: requests.Response, method: str) -> LinkCheckResult:
    ok = response.status_code < 400
    reason = (response.reason or "")[:60] if isinstance(response.reason, str) else ""
    error = "" if ok else f"{method} answered HTTP {response.status_code} {reason}"
    return LinkCheckResult(
        ok=ok, status_code=response.status_code, error=error.strip(), method=method
    )


def check_url(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> LinkCheckResult:
    """Ask one URL: HEAD, then GET when HEAD is refused (405/501) or fails. No database.

    A refused address (internal network) is never contacted, not even with GET.
    """
    with outbound.new_session(USER_AGENT) as session:
        head_error: str | None = None
        try:
            head = _ask(session, "HEAD", url, timeout)
        except outbound.OutboundRefused as exc:
            return LinkCheckResult(False, None, _describe(exc, timeout), "HEAD")
        except outbound.OutboundError as exc:
            if not exc.transient:  # a redirect loop: GET would follow the same loop
                return LinkCheckResult(False, None, _describe(exc, timeout), "HEAD")
            head_error = _describe(exc, timeout)
        except Exception as exc:  # noqa: BLE001 - any failure is a result, never a crash
            head_error = _describe(exc, timeout)
        else:
            if head.status_code not in HEAD_REFUSED and head.status_code < 400:
                return _result(head, "HEAD")
            if head.status_code not in HEAD_REFUSED:
                # Some servers answer HEAD wrongly (403/404) but serve GET: ask once more.
                head_error = _result(head, "HEAD").error
        try:
            get = _ask(session, "GET", url, timeout)
        except Exception as exc:  # noqa: BLE001
            error = _describe(exc, timeout)
            if head_error and head_error != error:
                error = f"{error} (HEAD: {head_error})"[:500]
            return LinkCheckResult(False, None, error, "GET")
        return _result(get, "GET")


def doclink_record_check(
    *, doclink_id: int, url: str, result: LinkCheckResult, now: datetime | None = None
) -> bool:
    """Store a check result unless the link moved to another URL meanwhile (or is gone)."""
    now = now or timezone.now()
    updated = DocLink.objects.filter(pk=doclink_id, url=url).update(
        status=DocLink.Status.OK if result.ok else DocLink.Status.BROKEN,
        status_code=result.status_code,
        last_error=result.error[:500],
        checked_at=now,
    )
    if updated:
        logger.info(
            "doclink.checked doclink_id=%s ok=%s status_code=%s method=%s",
            doclink_id,
            result.ok,
            result.status_code,
            result.method,
        )
    return bool(updated)


def doclink_check(
    *, doclink_id: int, now: datetime | None = None, timeout: float = DEFAULT_TIMEOUT
) -> DocLink | None:
    """Check one link now and store the result; None when the link no longer exists."""
    link = DocLink.objects.filter(pk=doclink_id).only("id", "url").first()
    if link is None:
        return None
    result = check_url(link.url, timeout=timeout)
    doclink_record_check(doclink_id=link.pk, url=link.url, result=result, now=now)
    return DocLink.objects.get(pk=link.pk)


@dataclass(frozen=True)
class CheckSummary:
    checked: int
    ok: int
    broken: int


def doclinks_check(
    *,
    doclink_ids: Iterable[int] | None = None,
    now: datetime | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_workers: int = DEFAULT_WORKERS,
) -> CheckSummary:
    """Check many links (all by default) with at most `max_workers` requests at a time.

    Network calls run in threads; the database is written from the calling thread only, so
    no connection is opened per thread.
    """
    now = now or timezone.now()
    qs = DocLink.objects.order_by("checked_at", "id")
    if doclink_ids is not None:
        qs = qs.filter(pk__in=list(doclink_ids))
    targets = list(qs.values_list("id", "url"))
    if not targets:
        return CheckSummary(0, 0, 0)
    # One URL shared by several links is asked once.
    urls = sorted({url for _, url in targets})
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(urls)))) as pool:
        answers = dict(
            zip(urls, pool.map(lambda u: check_url(u, timeout=timeout), urls), strict=True)
        )
    ok = broken = 0
    for pk, url in targets:
        result = answers[url]
        try:
            recorded = doclink_record_check(doclink_id=pk, url=url, result=result, now=now)
        except Exception:  # one link that cannot be recorded never stops the rest
            logger.exception("doclink.record_failed doclink_id=%s", pk)
            continue
        if recorded:
            if result.ok:
                ok += 1
            else:
                broken += 1
    logger.info("doclinks.checked checked=%d ok=%d broken=%d", ok + broken, ok, broken)
    return CheckSummary(checked=ok + broken, ok=ok, broken=broken)
