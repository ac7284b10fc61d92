"""GET filter form of the sessions list (the URL is the state: every filter is a query parameter)."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

from sessions_app.ids import ID_PATTERN, ID_RULE
from sessions_app.models import SessionStatus
from sessions_app.selectors.staff import SUMMARY_STATES
from sessions_app.services.sessions import CHANNELS

# The alphabet of sessions_app.ids: ids become DynamoDB and Redis keys.
ID_VALIDATOR = RegexValidator(ID_PATTERN, ID_RULE)


def _choices(values) -> list[tuple[str, str]]:
    return [("", "any")] + [(v, v.replace("_", " ")) for v in values]


class SessionFilterForm(forms.Form):
    day_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    day_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    customer = forms.CharField(required=False, max_length=128, validators=[ID_VALIDATOR], label="Customer id")
    status = forms.ChoiceField(required=False, choices=_choices(SessionStatus.ALL))
    channel = forms.ChoiceField(required=False, choices=_choices(CHANNELS))
    summary = forms.ChoiceField(required=False, choices=_choices(SUMMARY_STATES), label="Summary")
    online = forms.BooleanField(required=False, label="Online now")

    def clean(self):
        data = super().clean()
        if data.get("day_from") and data.get("day_to") and data["day_from"] > data["day_to"]:
            self.add_error("day_from", "must not be after To")
        return data

    def selector_kwargs(self) -> dict:
        """The cleaned filters as ``session_browse`` keyword arguments."""
        d = self.cleaned_data
        return {
            "day_from": d.get("day_from"),
            "day_to": d.get("day_to"),
            "customer_id": d.get("customer") or None,
            "status": d.get("status") or None,
            "channel": d.get("channel") or None,
            "summary_state": d.get("summary") or None,
            "online": bool(d.get("online")),
        }


class DeleteConfirmForm(forms.Form):
    confirm = forms.CharField(max_length=128, label="Type the session id to confirm")
