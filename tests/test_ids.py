"""The id alphabet (sessions_app.ids): ids become DynamoDB and Redis keys."""

from __future__ import annotations

import pytest

from sessions_app.exceptions import InvalidInput
from sessions_app.ids import validate_id


@pytest.mark.parametrize("value", ["a", "cust-001", "A.b_c:d@e-f", "x" * 128])
def test_valid_ids_pass_unchanged(value):
    assert validate_id(value, field="session_id") == value


@pytest.mark.parametrize("value", ["", "-lead", "has space", "a#b", "x" * 129, "abc\n", "abc\r\n", "\nabc", 12, None])
def test_invalid_ids_are_refused_naming_the_field(value):
    with pytest.raises(InvalidInput) as info:
        validate_id(value, field="customer_id")
    assert info.value.field == "customer_id"
