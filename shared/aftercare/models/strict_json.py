"""The one JSON decoder for everything a device or a caller sends: faults, diagnostics answers and
the HTTP API's bodies.

`json.loads` accepts things that later fail far from the input, as retries or HTTP 500s:
nesting deep enough to raise `RecursionError`, integers past Python's 4,300-digit conversion
limit (`ValueError`), numbers DynamoDB cannot store (1e300, 1e-300, 39+ significant digits),
the non-JSON literals `NaN`/`Infinity` (and `1e400`, which becomes `inf`), duplicate keys (the
last one silently wins) and lone UTF-16 surrogates (which cannot be encoded back to UTF-8).
`loads_strict` turns each of those into `ContentRejected` with a reason and a detail, so the
input is rejected once, at the edge, with what was wrong.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_DEPTH = 16
"""Objects/arrays nested deeper than this are refused. DynamoDB allows 32 levels in an item; a
payload is stored a few levels down (ticket -> timeline -> detail), so half of it is the budget."""

MAX_SIGNIFICANT_DIGITS = 38  # DynamoDB's number precision
MAX_INTEGER_DIGITS = 38  # boto3 serialises an int exactly or not at all
MIN_MAGNITUDE = Decimal("1E-130")  # DynamoDB's smallest non-zero magnitude
MAX_MAGNITUDE = Decimal("9.9999999999999999999999999999999999999E+125")  # and its largest

MALFORMED_JSON = "malformed_json"
SCHEMA_VIOLATION = "schema_violation"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


class ContentRejected(ValueError):
    """The text is not JSON this service accepts. `reason` is `malformed_json` (not JSON, or
    JSON we refuse to interpret: too deep, duplicate keys, NaN/Infinity, lone surrogates) or
    `schema_violation` (valid JSON whose numbers DynamoDB cannot represent)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def loads_strict(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode `text` (UTF-8 when bytes) or raise `ContentRejected`; `UnicodeDecodeError` for
    bytes that are not UTF-8 is left to the caller, which has its own reason for it."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    _check_depth(text, max_depth)
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise ContentRejected(MALFORMED_JSON, f"not JSON: {exc}") from exc
    except RecursionError as exc:  # the depth pre-check should make this unreachable
        raise ContentRejected(MALFORMED_JSON, "nested too deeply") from exc
    _check_strings(value)
    return value


def _check_depth(text: str, max_depth: int) -> None:
    # Brackets inside strings do not nest; an unterminated string is a syntax error json reports.
    depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > max_depth:
            raise ContentRejected(
                MALFORMED_JSON, f"nested more than {max_depth} levels deep (objects and arrays)"
            )


def _parse_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise ContentRejected(
            SCHEMA_VIOLATION,
            f"integer of {digits} digits: at most {MAX_INTEGER_DIGITS} can be stored",
        )
    return int(literal)


def _parse_float(literal: str) -> float:
    try:
        number = Decimal(literal)
    except InvalidOperation as exc:  # pragma: no cover - the scanner only passes JSON numbers
        raise ContentRejected(MALFORMED_JSON, f"not a number: {literal[:40]}") from exc
    shown = literal if len(literal) <= 40 else literal[:37] + "..."
    if _significant_digits(number) > MAX_SIGNIFICANT_DIGITS:
        raise ContentRejected(
            SCHEMA_VIOLATION,
            f"number {shown} has more than {MAX_SIGNIFICANT_DIGITS} significant digits",
        )
    if number and not MIN_MAGNITUDE <= abs(number) <= MAX_MAGNITUDE:
        raise ContentRejected(
            SCHEMA_VIOLATION, f"number {shown} is outside the storable range 1E-130 .. 1E+126"
        )
    return float(literal)


def _significant_digits(number: Decimal) -> int:
    # Not `normalize()`: it rounds to the context's 28 digits first.
    digits = "".join(map(str, number.as_tuple().digits)).strip("0")
    return len(digits)


def _refuse_constant(literal: str) -> Any:
    raise ContentRejected(MALFORMED_JSON, f"{literal} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ContentRejected(MALFORMED_JSON, f"duplicate key {key[:64]!r} in one object")
        result[key] = value
    return result


def _check_strings(value: Any) -> None:
    # Depth is bounded above, so this recursion is too.
    if isinstance(value, str):
        _encodable(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _encodable(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ContentRejected(
            MALFORMED_JSON, f"string with a lone surrogate escape at {exc.start}"
        ) from exc
