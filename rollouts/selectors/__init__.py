"""Reads of releases and rollouts for pages, with a constant number of queries.

Each selector owns its `select_related` / `prefetch_related`; what a template shows is
computed here (current phase, exposure, the next change in words), never by a query in a
template loop. One module per page family: `rows` (one rollout as every page shows it),
`rollouts` (list, detail, dashboard), `releases`, `safety` (holds, gates, windows, approval
queue, settings pages) and `calendar`. Every public name is re-exported here.
"""

from __future__ import annotations

from rollouts.selectors.calendar import (
    CALENDAR_EVENT_KINDS,
    CALENDAR_LIMIT,
    CalendarEntry,
    calendar_entries,
)
from rollouts.selectors.releases import (
    RELEASES_PER_PAGE,
    ROLLOUTS_PER_RELEASE,
    PipelineStep,
    ReleaseRow,
    release_detail,
    release_list,
    release_list_page,
    release_pipeline,
)
from rollouts.selectors.rollouts import (
    EVENT_LOG_LIMIT,
    LIST_FILTERS,
    ROLLOUTS_PER_PAGE,
    RolloutDetail,
    RolloutFilters,
    UpcomingChange,
    active_rollouts,
    filter_choices,
    rollout_detail,
    rollout_list,
    rollout_list_page,
    upcoming_changes,
)
from rollouts.selectors.rows import (
    STATE_DISPLAY,
    NextChange,
    RolloutRow,
    current_exposure,
    duration_in_words,
    next_change,
    phases_prefetch,
    relative_in_words,
    rollout_row,
)
from rollouts.selectors.safety import (
    HOLD_HISTORY,
    PolicyRow,
    SafetyView,
    WindowNote,
    approval_queue,
    gated_next_change,
    policy_rows,
    window_list,
)

__all__ = [
    "CALENDAR_EVENT_KINDS",
    "CALENDAR_LIMIT",
    "EVENT_LOG_LIMIT",
    "HOLD_HISTORY",
    "LIST_FILTERS",
    "RELEASES_PER_PAGE",
    "ROLLOUTS_PER_PAGE",
    "ROLLOUTS_PER_RELEASE",
    "STATE_DISPLAY",
    "CalendarEntry",
    "NextChange",
    "PipelineStep",
    "PolicyRow",
    "ReleaseRow",
    "RolloutDetail",
    "RolloutFilters",
    "RolloutRow",
    "SafetyView",
    "UpcomingChange",
    "WindowNote",
    "active_rollouts",
    "approval_queue",
    "calendar_entries",
    "current_exposure",
    "duration_in_words",
    "filter_choices",
    "gated_next_change",
    "next_change",
    "phases_prefetch",
    "policy_rows",
    "relative_in_words",
    "release_detail",
    "release_list",
    "release_list_page",
    "release_pipeline",
    "rollout_detail",
    "rollout_list",
    "rollout_list_page",
    "rollout_row",
    "upcoming_changes",
    "window_list",
]
