"""The flags UI: short function views (parse, call a service, render), one module per page.

- `flag_list`: the flag list and creating a flag.
- `flag_page`: a flag's page (details, variants, archive, history, evaluate, environment
  sections).
- `rules`: the rules editor of a flag in one environment.
- `segments`: segments.
- `settings`: environments and SDK keys (admins).
- `common`: helpers the pages share.

Every view is behind `core.roles.require` (login, then a permission), so its request is a
`core.http.AuthenticatedHttpRequest`. `flags/urls.py` maps URLs to these modules.
"""
