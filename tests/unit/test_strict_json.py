"""The strict decoder: each hostile input named in "Nothing lost, nothing leaked" is a reject."""

from __future__ import annotations

import pytest
from aftercare.models.strict_json import (
    MALFORMED_JSON,
    SCHEMA_VIOLATION,
    ContentRejected,
    loads_strict,
)


@pytest.mark.parametrize(
    ("text", "reason", "says"),
    [
        ("[" * 10_000 + "]" * 10_000, MALFORMED_JSON, "nested more than"),
        ('{"a":' * 10_000 + "1" + "}" * 10_000, MALFORMED_JSON, "nested more than"),
        ('{"n": ' + "9" * 4301 + "}", SCHEMA_VIOLATION, "integer of 4301 digits"),
        ('{"n": -' + "1" * 39 + "}", SCHEMA_VIOLATION, "integer of 39 digits"),
        ('{"n": 1e300}', SCHEMA_VIOLATION, "outside the storable range"),
        ('{"n": 1e-300}', SCHEMA_VIOLATION, "outside the storable range"),
        ('{"n": 1.' + "1" * 38 + "}", SCHEMA_VIOLATION, "significant digits"),
        ('{"n": 1e400}', SCHEMA_VIOLATION, "outside the storable range"),
        ('{"n": NaN}', MALFORMED_JSON, "NaN is not a JSON number"),
        ('{"n": Infinity}', MALFORMED_JSON, "Infinity is not a JSON number"),
        ('{"n": -Infinity}', MALFORMED_JSON, "-Infinity is not a JSON number"),
        ('{"a": 1, "a": 2}', MALFORMED_JSON, "duplicate key 'a'"),
        ('{"a": "\\ud800"}', MALFORMED_JSON, "lone surrogate"),
        ('{"a": ', MALFORMED_JSON, "not JSON"),
    ],
)
def test_hostile_input_is_rejected_with_its_reason(text: str, reason: str, says: str) -> None:
    with pytest.raises(ContentRejected) as caught:
        loads_strict(text)
    assert caught.value.reason == reason
    assert says in caught.value.detail


def test_ordinary_json_decodes_as_json_loads_would() -> None:
    text = '{"v": [1, -2.5, 0, 0.0, 1e-130, 9.9e125, "[{\\"", true, null], "\u00e9": {"x": {}}}'
    assert loads_strict(text.encode()) == {
        "v": [1, -2.5, 0, 0.0, 1e-130, 9.9e125, '[{"', True, None],
        "é": {"x": {}},
    }


def test_depth_limit_counts_only_structure_not_brackets_in_strings() -> None:
    assert loads_strict('{"s": "' + "[" * 100 + '"}') == {"s": "[" * 100}
    assert loads_strict("[" * 16 + "]" * 16) is not None
    with pytest.raises(ContentRejected):
        loads_strict("[" * 17 + "]" * 17)


def test_38_digit_integers_are_kept_exactly() -> None:
    assert loads_strict("12345678901234567890123456789012345678") == int(
        "1234567890" * 3 + "12345678"
    )
