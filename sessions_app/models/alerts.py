"""Django ORM tables of the alert sweep (services.alerts): the metric samples it compares, each
rule's state, and the history of what fired and resolved (the overview shows it).

Rows live in the default database, beside the API keys and the audit log: every console and
worker process shares it, and a few rows a minute is nothing to it.
"""

from __future__ import annotations

from django.db import models


class MetricSample(models.Model):
    """The cumulative totals at one moment, stored once per evaluation (about once a minute):
    ``data`` is ``{"reading": MetricsReading.to_json(), "dax": {"nodes": {...}} or None}``.

    Totals, not rates: the difference of two samples is what happened between them, whatever the
    cadence was, so a missed beat tick only widens one window. Kept about two hours (the longest
    window is 15 minutes; the rest lets the overview look back), pruned by the sweep."""

    taken_at = models.DateTimeField(db_index=True)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["-taken_at"]

    def __str__(self) -> str:
        return f"sample {self.taken_at:%Y-%m-%d %H:%M:%S}"


class AlertEvent(models.Model):
    """One transition of one rule: it fired or it resolved. Written once per transition (a
    retried delivery updates the row, never adds one), so the history says what really happened."""

    KIND_FIRED = "fired"
    KIND_RESOLVED = "resolved"
    KINDS = [(KIND_FIRED, "fired"), (KIND_RESOLVED, "resolved")]

    rule = models.CharField(max_length=64, db_index=True)
    kind = models.CharField(max_length=10, choices=KINDS)
    at = models.DateTimeField(db_index=True)
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    message = models.CharField(max_length=500)
    # The webhook body's content as built at the transition: a retry posts the same alert.
    payload = models.JSONField(default=dict, blank=True)
    delivered = models.BooleanField(default=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivery_error = models.CharField(max_length=500, blank=True)
    # No more attempts: the receiver refused it for good, or a later transition of the rule
    # superseded it before it could be delivered (delivery_error says which).
    abandoned = models.BooleanField(default=False)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.rule} {self.kind}"


class AlertState(models.Model):
    """Where one rule stands: ``ok`` or ``firing`` since ``since``. A rule that stays firing
    notifies nobody again; its ``event`` is the transition still to deliver (or delivered)."""

    STATE_OK = "ok"
    STATE_FIRING = "firing"
    STATES = [(STATE_OK, "ok"), (STATE_FIRING, "firing")]

    rule = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=10, choices=STATES, default=STATE_OK)
    since = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)  # the last value known (None: never measured)
    threshold = models.FloatField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    # Why the last check left the state as it was (source unreadable, too few requests, window
    # too short); empty when it could judge.
    check_note = models.CharField(max_length=300, blank=True)
    event = models.ForeignKey(AlertEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    notified_at = models.DateTimeField(null=True, blank=True)  # the current event's delivery
    notify_error = models.CharField(max_length=500, blank=True)
    notify_attempts = models.PositiveIntegerField(default=0)  # POSTs made for the current event

    class Meta:
        ordering = ["rule"]

    def __str__(self) -> str:
        return f"{self.rule}: {self.state}"
