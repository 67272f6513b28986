"""Lazily built AWS clients (never at import time) and DynamoDB value conversion.

Clients come from botocore directly: boto3 adds only resources, its docs and S3's transfer
methods on top of the same botocore client, and importing it is ~0.04x of a bare boto3 start
(26 modules) that no function needs. The attribute-value conversion is boto3's
`TypeSerializer`/`TypeDeserializer` for the JSON-shaped values the adapters store
(tests/unit/test_attribute_values.py holds them to boto3's output).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from functools import cache
from typing import Any, Final

import botocore.session

# DynamoDB's number range and precision, as boto3.dynamodb.types.DYNAMODB_CONTEXT
DYNAMODB_CONTEXT: Final = Context(
    Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow]
)


@cache
def client(service: str) -> Any:
    """One client per service per process; region and endpoint come from the AWS chain
    (``AWS_REGION``, ``AWS_ENDPOINT_URL`` locally)."""
    return new_client(service)


def new_client(service: str, **kwargs: Any) -> Any:
    """A client of its own (a new botocore session, as `boto3.session.Session().client`)."""
    return botocore.session.get_session().create_client(service, **kwargs)


def to_attr(value: Any) -> dict[str, Any]:
    return _serialize(_decimalise(value))


def to_item(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: to_attr(v) for k, v in mapping.items() if v is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserialize(v)) for k, v in item.items()}


def _decimalise(value: Any) -> Any:
    # DynamoDB numbers must be Decimal; a JSON round trip converts nested floats exactly.
    return json.loads(json.dumps(value, default=str), parse_float=Decimal)


def _serialize(value: Any) -> dict[str, Any]:
    """A JSON-shaped value (after `_decimalise`) as a DynamoDB attribute value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, Mapping):
        return {"M": {k: _serialize(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"L": [_serialize(v) for v in value]}
    if isinstance(value, float):  # NaN and infinities come back from JSON as floats
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    raise TypeError(f"Unsupported type {type(value)} for value {value!r}")


def _number(value: int | Decimal) -> str:
    number = str(DYNAMODB_CONTEXT.create_decimal(value))
    if number in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return number


def _deserialize(value: Mapping[str, Any]) -> Any:
    if not value:
        raise TypeError("Value must be a nonempty dictionary whose key is a valid dynamodb type.")
    kind, inner = next(iter(value.items()))
    if kind not in _READERS:
        raise TypeError(f"Dynamodb type {kind} is not supported")
    return _READERS[kind](inner)


def _number_of(text: str) -> Decimal:
    return DYNAMODB_CONTEXT.create_decimal(text)


_READERS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "NULL": lambda _: None,
    "BOOL": lambda inner: inner,
    "S": lambda inner: inner,
    "N": _number_of,
    "B": bytes,
    "SS": set,
    "NS": lambda inner: {_number_of(v) for v in inner},
    "BS": lambda inner: {bytes(v) for v in inner},
    "L": lambda inner: [_deserialize(v) for v in inner],
    "M": lambda inner: {k: _deserialize(v) for k, v in inner.items()},
}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value


class LazyClient:
    """Descriptor for adapters: the client injected as ``_<name>`` (tests), else the
    process's shared client for `service`, created on first use."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.slot = ""

    def __set_name__(self, owner_type: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, owner: Any, owner_type: type | None = None) -> Any:
        if owner is None:
            return self
        if getattr(owner, self.slot) is None:
            setattr(owner, self.slot, client(self.service))
        return getattr(owner, self.slot)
