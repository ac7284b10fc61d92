"""Forms of the console. The sessions list's filter form is a GET form (the URL is the state:
every filter is a query parameter) that parses text into a ``SessionFilter``, which holds the
rules; the transcript search form is another, with the query, the same list filters and the order."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

from sessions_app.exceptions import InvalidInput
from sessions_app.ids import ID_PATTERN, ID_RULE
from sessions_app.models import CHANNELS, SessionStatus
from sessions_app.search.engine import NEWEST, ORDERS
from sessions_app.selectors.filters import SUMMARY_STATES, SessionFilter
from sessions_app.selectors.search import QUERY_MAX_CHARS

# The alphabet of sessions_app.ids: ids become DynamoDB and Redis keys.
ID_VALIDATOR = RegexValidator(ID_PATTERN, ID_RULE)


def _choices(values) -> list[tuple[str, str]]:
    return [("", "any")] + [(v, v.replace("_", " ")) for v in values]


class _ListFilterForm(forms.Form):
    """The list filters the sessions list and the search share: the same fields, names and rules
    (``SessionFilter``'s), its refusals shown on the field they name in this form's words."""

    day_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    day_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    customer = forms.CharField(required=False, max_length=128, validators=[ID_VALIDATOR], label="Customer id")
    status = forms.ChoiceField(required=False, choices=_choices(SessionStatus.ALL))
    channel = forms.ChoiceField(required=False, choices=_choices(CHANNELS))

    # SessionFilter's (and the selectors') field names → this form's (the URL keeps the console's
    # shorter names).
    FORM_FIELDS = {"day_from": "day_from", "day_to": "day_to", "customer_id": "customer", "status": "status",
                   "channel": "channel"}
    WORDED = ("day_from", "day_to", "customer_id")  # names a refusal's message says in this form's words

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.session_filter = SessionFilter(
                day_from=data.get("day_from"), day_to=data.get("day_to"), customer_id=data.get("customer") or None,
                status=data.get("status") or None, channel=data.get("channel") or None, **self.more_filters(data))
        except InvalidInput as exc:
            self.show_error(exc)
        return data

    def more_filters(self, data: dict) -> dict:
        """The SessionFilter arguments of a form's own fields."""
        return {}

    def show_error(self, exc: InvalidInput) -> None:
        """Show a refusal on the field it names, in this form's words ("day_from" → "From"); a
        refusal naming no field of the form goes above the fields."""
        message = exc.message
        for name in self.WORDED:
            form_field = self.FORM_FIELDS[name]
            message = message.replace(name, str(self.fields[form_field].label or form_field))
        self.add_error(self.FORM_FIELDS.get(exc.field or ""), message)


class SessionFilterForm(_ListFilterForm):
    summary = forms.ChoiceField(required=False, choices=_choices(SUMMARY_STATES), label="Summary")
    online = forms.BooleanField(required=False, label="Online now")
    mine = forms.BooleanField(required=False, label="Mine (taken over by me)")

    FORM_FIELDS = {**_ListFilterForm.FORM_FIELDS, "summary_state": "summary", "online": "online", "owner": "mine"}
    WORDED = (*_ListFilterForm.WORDED, "summary_state", "online", "owner")

    def __init__(self, *args, username: str | None = None, **kwargs):
        """``username``: whose sessions "mine" means (the signed-in staff member)."""
        super().__init__(*args, **kwargs)
        self.username = username
        # The list resolves a customer by its id's start, in any case (views.session_list_view).
        self.fields["customer"].widget.attrs.update({"placeholder": "id or its start, any case", "spellcheck": "false"})

    def more_filters(self, data: dict) -> dict:
        return {"summary_state": data.get("summary") or None, "online": bool(data.get("online")),
                "owner": self._owner(bool(data.get("mine")))}

    def _owner(self, mine: bool) -> str | None:
        if not mine:
            return None
        if not self.username:
            raise InvalidInput("owner: only a signed-in staff member has sessions of their own", field="owner")
        return self.username


class TranscriptSearchForm(_ListFilterForm):
    """The search page's GET form: the query, the list's filters, the order and the page
    (``cursor``). The query's and the cursor's rules are the selector's (``transcript_search``),
    whose refusal ``show_error`` puts on the field it names."""

    q = forms.CharField(required=False, max_length=QUERY_MAX_CHARS, label="Search",
                        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "data-search-box": "",
                                                      "aria-keyshortcuts": "/",
                                                      "placeholder": "words, numbers or Japanese text"}))
    order = forms.ChoiceField(required=False, choices=[(o, o) for o in ORDERS], initial=NEWEST)
    cursor = forms.CharField(required=False, widget=forms.HiddenInput, label="Page")

    field_order = ["q", "day_from", "day_to", "customer", "status", "channel", "order", "cursor"]
    FORM_FIELDS = {**_ListFilterForm.FORM_FIELDS, "q": "q", "order": "order", "cursor": "cursor"}

    def search_args(self) -> dict:
        """``transcript_search``'s arguments (a valid form); no ``query`` when nothing was typed."""
        data = self.cleaned_data
        return {"query": (data.get("q") or "").strip(), "filters": self.session_filter,
                "order": data.get("order") or NEWEST, "cursor": data.get("cursor") or None}


class StaffReplyForm(forms.Form):
    """A staff member's reply to the customer. Only "something to send" is checked here; the
    length rule (``TURN_TEXT_MAX_BYTES``, in bytes) is the turn service's, and its refusal is
    shown on this field."""

    text = forms.CharField(label="Reply to the customer", strip=False,
                           widget=forms.Textarea(attrs={"rows": 3}))

    def clean_text(self) -> str:
        text = self.cleaned_data["text"]
        if not text.strip():
            raise forms.ValidationError("Write something to send.")
        return text


class DeleteConfirmForm(forms.Form):
    confirm = forms.CharField(max_length=128, label="Type the id to confirm", widget=forms.TextInput(attrs={
        "autocomplete": "off", "autocapitalize": "none", "spellcheck": "false", "aria-describedby": "confirm-error"}))
