"""`admin seed` on a stack seeded before parts had stock shards: an existing part keeps its
stored layout (no shard items it does not count), a new stack gets the shards."""

from __future__ import annotations

from collections import Counter
from typing import Any

from infra.admin.seed import keep_existing_stock_layout


class Writer:
    def __init__(self, existing_parts: bool) -> None:
        self.existing_parts = existing_parts

    def put_if_absent(self, item: dict[str, Any]) -> bool:
        return not (self.existing_parts and str(item["pk"]).startswith("PART#"))


def psu_shards(items: list[dict[str, Any]], warehouse: str) -> list[int]:
    return [
        int(i.get("shard", 0))
        for i in items
        if str(i["pk"]).startswith("STOCK#PSU-240-A") and i["warehouse"] == warehouse
    ]


def test_a_new_stack_gets_every_shard() -> None:
    summary: dict[str, Counter[str]] = {"created": Counter(), "unchanged": Counter()}
    items = list(keep_existing_stock_layout(Writer(False), summary, lambda sku: 1))
    assert psu_shards(items, "WH-SHA") == [0, 1, 2, 3]
    assert summary["created"]["part"] == 15


def test_a_part_stored_unsharded_keeps_its_one_stock_item() -> None:
    # Given a stack whose parts were seeded before shards (stock_shards absent: 1)
    summary: dict[str, Counter[str]] = {"created": Counter(), "unchanged": Counter()}
    items = list(keep_existing_stock_layout(Writer(True), summary, lambda sku: 1))
    # Then only shard 0 is offered (it exists: unchanged), no units appear on shards the
    # reservations would not read
    assert psu_shards(items, "WH-SHA") == [0]
    assert summary["unchanged"]["part"] == 15


def test_a_part_already_sharded_is_seeded_idempotently() -> None:
    summary: dict[str, Counter[str]] = {"created": Counter(), "unchanged": Counter()}
    items = list(keep_existing_stock_layout(Writer(True), summary, lambda sku: 4))
    assert psu_shards(items, "WH-SHA") == [0, 1, 2, 3]
