"""Reads for support staff, one module per concern:

- `exposure`: who has a rollout's change now, in words, and the timeline of its phases.
- `changelog`: releases with live exposure, filters, one release in detail, the Atom feed.
- `dashboard`: the support dashboard panel.
- `release_notes`: the public release notes (page and feed).
- `lookup`: what one customer sees, computed exactly as OFREP answers.

Callers import from here (`support.selectors.changelog(...)`); the names below are the API.
Every list runs a fixed number of queries whatever the number of releases, rollouts, phases
or links (prefetches and subqueries, never a query per row).
"""

from support.selectors._common import FEED_SIZE, PAGE_SIZE, environments, format_when
from support.selectors.changelog import (
    EVENTS_PER_ROLLOUT,
    NOTICES_PER_RELEASE,
    RUNBOOK_KINDS,
    ChangelogFilters,
    ChangelogPage,
    ReleaseView,
    RolloutView,
    changelog,
    changelog_queryset,
    feed_releases,
    release_for_support,
)
from support.selectors.dashboard import SupportSummary, support_summary
from support.selectors.exposure import (
    Exposure,
    TimelineRow,
    phase_audience,
    rollout_exposure,
    rollout_timeline,
)
from support.selectors.lookup import (
    LOOKUP_FLAGS_PER_PAGE,
    LOOKUP_RECENT_DAYS,
    LOOKUP_ROLLOUTS_LIMIT,
    EnvironmentAnswer,
    FlagAnswer,
    LookupResult,
    Membership,
    customer_lookup,
)
from support.selectors.release_notes import (
    PublicRelease,
    public_feed_releases,
    public_release,
    public_releases,
)

__all__ = [
    "EVENTS_PER_ROLLOUT",
    "FEED_SIZE",
    "LOOKUP_FLAGS_PER_PAGE",
    "LOOKUP_RECENT_DAYS",
    "LOOKUP_ROLLOUTS_LIMIT",
    "NOTICES_PER_RELEASE",
    "PAGE_SIZE",
    "RUNBOOK_KINDS",
    "ChangelogFilters",
    "ChangelogPage",
    "EnvironmentAnswer",
    "Exposure",
    "FlagAnswer",
    "LookupResult",
    "Membership",
    "PublicRelease",
    "ReleaseView",
    "RolloutView",
    "SupportSummary",
    "TimelineRow",
    "changelog",
    "changelog_queryset",
    "customer_lookup",
    "environments",
    "feed_releases",
    "format_when",
    "phase_audience",
    "public_feed_releases",
    "public_release",
    "public_releases",
    "release_for_support",
    "rollout_exposure",
    "rollout_timeline",
    "support_summary",
]
