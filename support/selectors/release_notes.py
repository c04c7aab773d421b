"""Public release notes (page and Atom feed): only what may leave the company, i.e.
releases marked public, their summary and rendered changelog, and their public doc links."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import Prefetch, QuerySet
from django.utils.safestring import SafeString

from comms.models import DocLink
from rollouts.models import Release
from support.selectors._common import FEED_SIZE, PAGE_SIZE, _markdown


@dataclass
class PublicRelease:
    """Only what may leave the company: no known issues, no internal links, no environments."""

    release: Release
    changelog_html: SafeString
    doc_links: list[DocLink]


def _public_queryset() -> QuerySet[Release]:
    return (
        Release.objects.filter(is_public=True)
        .only("id", "name", "version", "summary", "changelog", "label", "created_at", "updated_at")
        .prefetch_related(
            Prefetch(
                "doc_links",
                queryset=DocLink.objects.filter(visibility=DocLink.Visibility.PUBLIC).order_by(
                    "kind", "title"
                ),
            )
        )
        .order_by("-created_at", "-id")
    )


def _public_view(release: Release) -> PublicRelease:
    return PublicRelease(
        release=release,
        changelog_html=_markdown(release.changelog),
        doc_links=list(release.doc_links.all()),
    )


def public_releases(
    *, page: int | str = 1, label: str = ""
) -> tuple[Page[Release], list[PublicRelease]]:
    qs = _public_queryset()
    if label:
        qs = qs.filter(label=label)
    paged = Paginator(qs, PAGE_SIZE).get_page(page)
    return paged, [_public_view(r) for r in paged.object_list]


def public_release(*, release_id: int) -> PublicRelease | None:
    release = _public_queryset().filter(pk=release_id).first()
    return _public_view(release) if release is not None else None


def public_feed_releases(*, label: str = "", limit: int = FEED_SIZE) -> list[PublicRelease]:
    qs = _public_queryset()
    if label:
        qs = qs.filter(label=label)
    return [_public_view(r) for r in qs[:limit]]
