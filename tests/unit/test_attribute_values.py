"""The DynamoDB attribute values the adapters write and read are boto3's.

`aftercare.adapters.aws` converts values itself so that no function imports boto3 (its
`TypeSerializer` lives in a package whose `__init__` imports all of boto3); these hold its
output to boto3's for every shape the adapters store (values go through a JSON round trip first,
so only JSON types reach the serializer) and for every type DynamoDB returns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from aftercare.adapters.aws import from_item, to_attr, to_item
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer


class Colour(StrEnum):
    RED = "red"


VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -7,
    12345678901234567890123456789012345678,  # 38 digits: DynamoDB's precision
    1.5,
    0.1,
    -2.25e-10,
    3e100,
    Decimal("1.50"),
    "",
    "text ✓",
    Colour.RED,
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    [],
    [1, "two", None, [3.5, {"four": False}]],
    (1, 2),
    {},
    {"nested": {"list": [0.25, {"deep": "x"}], "n": 10, "none": None}},
    {"a set becomes its text": {"only"}},
]


def boto3_attr(value: Any) -> dict[str, Any]:
    # what the adapters did before: the same JSON round trip, then boto3's serializer
    decimalised = json.loads(json.dumps(value, default=str), parse_float=Decimal)
    return dict(TypeSerializer().serialize(decimalised))


def boto3_plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return value.value
    if isinstance(value, dict):
        return {k: boto3_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [boto3_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(boto3_plain(v) for v in value)
    return value


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_value_is_written_as_boto3_writes_it(value):
    assert to_attr(value) == boto3_attr(value)


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_value_reads_back_as_boto3_reads_it(value):
    attr = boto3_attr(value)
    assert from_item({"v": attr}) == {"v": boto3_plain(TypeDeserializer().deserialize(attr))}


def test_an_item_drops_none_and_reads_back_plain():
    item = to_item({"pk": "T#1", "count": 3, "ratio": 0.5, "gone": None, "tags": ["x"]})
    assert item == {
        "pk": {"S": "T#1"},
        "count": {"N": "3"},
        "ratio": {"N": "0.5"},
        "tags": {"L": [{"S": "x"}]},
    }
    assert from_item(item) == {"pk": "T#1", "count": 3, "ratio": 0.5, "tags": ["x"]}


@pytest.mark.parametrize(
    "attr",
    [
        {"SS": ["b", "a"]},
        {"NS": ["2", "1.5", "10"]},
        {"BS": [b"\x01", b"\x00"]},
        {"B": b"\x00\xff"},
        {"NULL": True},
        {"BOOL": False},
        {"N": "-0.000001"},
        {"M": {"s": {"SS": ["x"]}, "l": {"L": [{"N": "1"}]}}},
    ],
    ids=repr,
)
def test_what_dynamodb_returns_reads_as_boto3_reads_it(attr):
    assert from_item({"v": attr}) == {"v": boto3_plain(TypeDeserializer().deserialize(attr))}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**40, 1e-200, 1e300], ids=repr)
def test_what_dynamodb_cannot_hold_is_refused_as_boto3_refuses_it(value):
    with pytest.raises(Exception) as boto3_error:
        boto3_attr(value)
    with pytest.raises(type(boto3_error.value)):
        to_attr(value)


@pytest.mark.parametrize("attr", [{}, {"X": "?"}], ids=repr)
def test_an_unknown_attribute_type_is_refused_as_boto3_refuses_it(attr):
    with pytest.raises(TypeError):
        TypeDeserializer().deserialize(attr)
    with pytest.raises(TypeError):
        from_item({"v": attr})
