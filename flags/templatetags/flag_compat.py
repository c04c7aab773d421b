"""`{% flag_warnings flag as warnings %}`: what can never match in a flag (see flags.compat)."""

from __future__ import annotations

from django import template

from flags.compat import flag_warnings as _flag_warnings
from flags.models import Flag

register = template.Library()


@register.simple_tag
def flag_warnings(flag: Flag) -> list[str]:
    return _flag_warnings(flag=flag)
