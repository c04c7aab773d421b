"""HTML pages of releases and rollouts: short views that parse, call a service or selector,
and render (htmx requests get only the partial they target).

One module per page family: `rollouts` (list, new, detail, actions), `plans` (the plan
editor), `releases`, `safety` (holds, approvals, checklists, alert settings), `calendar`,
`windows` and `policies` (admins), `dashboard` (panels); `common` holds what they share.
`rollouts.urls` routes to the modules directly.
"""
