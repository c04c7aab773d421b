"""Atom feeds: the support changelog (personal token in the URL) and public release notes.

The public feed carries only what the public release notes page shows: releases marked
public, their summary and rendered changelog, and their public doc links. No known issues,
internal links, environments, exposure or owners.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.syndication.views import Feed
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from core.models import FeedToken
from core.selectors import feed_token_user
from rollouts.models import Release
from support import selectors
from support.selectors import PublicRelease, ReleaseView

CHANGELOG_PERM = "rollouts.view_release"


def _links_html(links: list[Any]) -> SafeString:
    if not links:
        return mark_safe("")
    rows = ((link.url, link.title, link.get_kind_display()) for link in links)
    items = format_html_join("", '<li><a href="{}">{}</a> ({})</li>', rows)
    return format_html("<h3>Documentation</h3><ul>{}</ul>", items)


class ChangelogFeed(Feed):
    """The support changelog as Atom, for the owner of the token in the URL."""

    feed_type = Atom1Feed
    title = "Rollcall changelog"
    subtitle = "Releases with their live exposure per environment."
    description_template = None

    def get_object(self, request: HttpRequest, token: str) -> dict[str, Any]:
        user = feed_token_user(token=token, scope=FeedToken.Scope.CHANGELOG)
        if user is None or not user.has_perm(CHANGELOG_PERM):
            # Same answer for an unknown token and a user without the role: no hints.
            raise Http404("No such feed.")
        label = request.GET.get("label", "")
        environment = request.GET.get("environment", "")
        if label and label not in Release.Label.values:
            label = ""
        return {"user": user, "label": label, "environment": environment, "token": token}

    def link(self, obj: dict[str, Any]) -> str:
        return reverse("support:changelog")

    def feed_url(self, obj: dict[str, Any]) -> str:
        return reverse("support:changelog_feed", args=[obj["token"]])

    def items(self, obj: dict[str, Any]) -> list[ReleaseView]:
        return selectors.feed_releases(environment=obj["environment"], label=obj["label"])

    def item_title(self, item: ReleaseView) -> str:
        release = item.release
        return f"[{release.get_label_display()}] {release}"

    def item_link(self, item: ReleaseView) -> str:
        return reverse("support:release", args=[item.release.pk])

    def item_pubdate(self, item: ReleaseView) -> datetime:
        return item.release.created_at

    def item_updateddate(self, item: ReleaseView) -> datetime:
        # Exposure changes are what support subscribes for: the newest of both.
        times = [item.release.updated_at] + [r.rollout.updated_at for r in item.rollouts]
        return max(times)

    def item_description(self, item: ReleaseView) -> str:
        release = item.release
        exposure = format_html_join(
            "",
            "<li><strong>{}</strong> ({}): {}</li>",
            (
                (r.rollout.environment.name, r.rollout.get_strategy_display(), r.exposure.text)
                for r in item.rollouts
            ),
        )
        parts = [
            format_html("<p>{}</p>", release.summary) if release.summary else "",
            format_html("<h3>Exposure</h3><ul>{}</ul>", exposure) if item.rollouts else "",
            item.changelog_html,
            format_html("<h3>Known issues</h3>{}", item.known_issues_html)
            if release.known_issues
            else "",
            _links_html(item.doc_links + item.runbooks),
        ]
        return str(mark_safe("".join(str(p) for p in parts)))  # noqa: S308 - escaped above


class PublicReleaseNotesFeed(Feed):
    """Public release notes as Atom: no login, nothing internal."""

    feed_type = Atom1Feed
    title = "Release notes"
    subtitle = "What is new, improved, fixed or deprecated."

    def get_object(self, request: HttpRequest) -> dict[str, str]:
        label = request.GET.get("label", "")
        return {"label": label if label in Release.Label.values else ""}

    def link(self, obj: dict[str, str]) -> str:
        return reverse("support:release_notes")

    def feed_url(self, obj: dict[str, str]) -> str:
        return reverse("support:release_notes_feed")

    def items(self, obj: dict[str, str]) -> list[PublicRelease]:
        return selectors.public_feed_releases(label=obj["label"])

    def item_title(self, item: PublicRelease) -> str:
        return f"[{item.release.get_label_display()}] {item.release}"

    def item_link(self, item: PublicRelease) -> str:
        return reverse("support:public_release", args=[item.release.pk])

    def item_pubdate(self, item: PublicRelease) -> datetime:
        return item.release.created_at

    def item_updateddate(self, item: PublicRelease) -> datetime:
        return item.release.updated_at

    def item_description(self, item: PublicRelease) -> str:
        parts = [
            format_html("<p>{}</p>", item.release.summary) if item.release.summary else "",
            item.changelog_html,
            _links_html(item.doc_links),
        ]
        return str(mark_safe("".join(str(p) for p in parts)))  # noqa: S308 - escaped above
