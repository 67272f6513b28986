"""Lazily built boto3 clients (never at import time) and DynamoDB value conversion."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


@cache
def client(service: str) -> Any:
    """One client per service per process; region and endpoint come from the AWS chain
    (``AWS_REGION``, ``AWS_ENDPOINT_URL`` locally)."""
    return boto3.session.Session().client(service)  # type: ignore[call-overload]


def to_attr(value: Any) -> dict[str, Any]:
    return dict(_SERIALIZER.serialize(_decimalise(value)))


def to_item(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: to_attr(v) for k, v in mapping.items() if v is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


def _decimalise(value: Any) -> Any:
    # DynamoDB numbers must be Decimal; a JSON round trip converts nested floats exactly.
    return json.loads(json.dumps(value, default=str), parse_float=Decimal)


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
