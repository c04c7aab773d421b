from __future__ import annotations

from django import forms


class UserPreferenceForm(forms.Form):
    """The "Your settings" page. The zone is checked by `user_preference_set` (one rule)."""

    time_zone = forms.CharField(max_length=64, label="Show times in")
