"""The staff audit log holds any id the product accepts (ids are up to 128 characters)."""

from __future__ import annotations

import pytest

from sessions_app.models import AuditLog
from sessions_app.services.audit import audit_record


@pytest.mark.django_db
def test_an_audit_row_holds_the_longest_valid_session_and_customer_ids():
    longest = "s" + "x" * 127  # sessions_app.ids allows 128 characters
    row = audit_record(actor=None, action="session_close", outcome="ok", session_id=longest, customer_id="c" * 128)
    row.full_clean(exclude=["actor", "actor_username"])  # the column lengths PostgreSQL enforces on insert
    stored = AuditLog.objects.get(pk=row.pk)
    assert (stored.session_id, stored.customer_id) == (longest, "c" * 128)
