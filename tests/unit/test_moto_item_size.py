"""The local stack's item-size check: moto's 400 KB refusal, without re-measuring the item on
every attribute set (`infra.local.moto_speedups._limited_setitem`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

from infra.local import moto_speedups


@pytest.fixture
def patched() -> Iterator[None]:
    original = LimitedSizeDict.__setitem__
    moto_speedups.apply()
    try:
        yield
    finally:
        LimitedSizeDict.__setitem__ = original  # type: ignore[method-assign]


def _attrs(count: int, value_bytes: int) -> dict[str, Any]:
    return {f"attr{i:04d}": {"S": "x" * value_bytes} for i in range(count)}


def _size_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = DynamoType.size

    def counting(self: DynamoType) -> int:
        calls[0] += 1
        return original(self)

    monkeypatch.setattr(DynamoType, "size", counting)
    return calls


def test_building_an_item_measures_each_value_once(
    patched: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an item of 300 small attributes (moto's own check measures the item 300 times)
    calls = _size_calls(monkeypatch)
    # When it is built
    item = Item(DynamoType({"S": "pk"}), None, _attrs(300, 20))
    # Then each value was measured once, not once per attribute set after it
    assert len(item.attrs) == 300
    assert calls[0] == 300


@pytest.mark.parametrize("value_bytes", [1_000, 30_000, 150_000])
def test_an_oversize_item_is_refused_at_the_same_attribute_as_moto(
    patched: None, value_bytes: int
) -> None:
    # Given attributes that add up to more than the 405,000-byte limit
    attrs = _attrs(450_000 // value_bytes + 2, value_bytes)
    # When an item is built from them
    with pytest.raises(ItemSizeTooLarge):
        Item(DynamoType({"S": "pk"}), None, attrs)
    # Then it is refused at the same attribute moto's own check refuses it
    ours = LimitedSizeDict()
    with pytest.raises(ItemSizeTooLarge):
        for key, value in attrs.items():
            ours[key] = DynamoType(value)
    reference: dict[str, Any] = {}
    limit_hit_at = None
    for index, (key, value) in enumerate(attrs.items()):
        reference[key] = DynamoType(value)
        if moto_speedups._measured(reference) > moto_speedups.ITEM_SIZE_LIMIT:
            limit_hit_at = index
            break
    assert len(ours) == limit_hit_at


def test_an_item_just_under_the_limit_is_accepted(patched: None) -> None:
    # Given attributes that add up to just under the limit
    attrs = _attrs(4, 100_000)
    # When an item is built from them
    item = Item(DynamoType({"S": "pk"}), None, attrs)
    # Then it is accepted whole
    assert len(item.attrs) == 4


def test_replacing_values_repeatedly_still_refuses_a_real_oversize(patched: None) -> None:
    # Given an item whose one attribute is overwritten many times (the running figure counts
    # every replaced value, so it over-states and measures again near the limit)
    item = Item(DynamoType({"S": "pk"}), None, {"a": {"S": "x" * 50_000}})
    for _ in range(20):
        item.attrs["a"] = DynamoType({"S": "y" * 50_000})
    assert item.attrs["a"].value == "y" * 50_000
    # When a value that really takes it over the limit is set
    # Then it is refused
    with pytest.raises(ItemSizeTooLarge):
        item.attrs["b"] = DynamoType({"S": "z" * 360_000})
