"""Stock shards: which shard a hold takes, fall-over and top-up, counted adjustments and
rebalancing over the shards, and the per-shard condition each delta carries."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from aftercare.domain.parts import (
    OutOfStock,
    PartInfo,
    StockDelta,
    StockLevel,
    StockShard,
    change_line,
    home_shard,
    level_of,
    plan_reservations,
    rebalance_deltas,
    shard_deltas,
    spread_change,
)
from aftercare.models.parts import LineStatus, WantedPart
from hypothesis import given
from hypothesis import strategies as st

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
PSU = PartInfo(
    sku="PSU-240-A",
    name_en="PSU",
    name_zh="电源",
    unit_price=64.0,
    currency="EUR",
    lead_time_days=10,
    models=["AC-HP"],
    stock_shards=4,
)


def level(*available: int, held: tuple[int, ...] | None = None) -> StockLevel:
    helds = held or (0,) * len(available)
    shards = [
        StockShard(shard=n, on_hand=a + h, held=h)
        for n, (a, h) in enumerate(zip(available, helds, strict=True))
    ]
    return level_of("PSU-240-A", "WH-A", shards, reorder_point=2, version=0)


def apply(start: StockLevel, deltas: list[StockDelta]) -> StockLevel:
    """Apply deltas as DynamoDB would: each only if its shard keeps available >= need."""
    shards = {s.shard: s for s in start.shard_levels()}
    for d in deltas:
        s = shards[d.shard]
        assert s.available >= d.need, (s, d)
        shards[d.shard] = StockShard(
            shard=d.shard, on_hand=s.on_hand + d.on_hand, held=s.held + d.held
        )
    return level_of(start.sku, start.warehouse, list(shards.values()), reorder_point=2, version=0)


def test_the_read_path_sums_the_shards():
    # Given four shards with holds on two of them
    stock = level(1, 2, 0, 3, held=(1, 0, 2, 0))
    # Then the warehouse's level is their sum
    assert (stock.on_hand, stock.held, stock.available) == (9, 3, 6)


def test_home_shard_is_stable_and_spreads_tickets():
    # Given many tickets for one part with 4 shards
    homes = Counter(home_shard(f"T-{n:05d}", "PSU-240-A", 4) for n in range(4000))
    # Then the hash is the same every time and every shard takes about a quarter of them
    assert home_shard("T-00001", "PSU-240-A", 4) == home_shard("T-00001", "PSU-240-A", 4)
    assert set(homes) == {0, 1, 2, 3} and min(homes.values()) > 900


def test_a_hold_takes_the_home_shard_when_it_has_the_quantity():
    stock = level(5, 5, 5, 5)
    shard, deltas = shard_deltas(stock, 1, "T-1") or (None, [])
    assert shard == home_shard("T-1", "PSU-240-A", 4)
    assert [(d.shard, d.held, d.on_hand, d.need) for d in deltas] == [(shard, 1, 0, 1)]


def test_a_hold_falls_over_round_the_ring_when_the_home_shard_is_empty():
    # Given the ticket's home shard is empty and the next one round the ring is too
    home = home_shard("T-1", "PSU-240-A", 4)
    available = [3, 3, 3, 3]
    available[home] = 0
    available[(home + 1) % 4] = 0
    # When it holds one unit
    shard, deltas = shard_deltas(level(*available), 1, "T-1") or (None, [])
    # Then it takes the first shard after those with a unit
    assert shard == (home + 2) % 4 and [d.shard for d in deltas] == [shard]


def test_when_no_shard_has_enough_the_fullest_is_topped_up_in_the_same_change():
    # Given 4 units, one on each shard, and a line of 3
    stock = level(1, 1, 1, 1)
    # When it is planned
    shard, deltas = shard_deltas(stock, 3, "T-1") or (None, [])
    after = apply(stock, deltas)
    # Then one shard holds all three, two units moved to it (as transfers), none was lost
    assert after.shard_levels()[shard].held == 3
    assert (after.on_hand, after.held, after.available) == (4, 3, 1)
    moved = [d for d in deltas if d.shard != shard]
    assert sum(d.transfer for d in deltas) == 0 and all(d.transfer == d.on_hand for d in moved)


def test_no_hold_when_the_warehouse_has_too_few_in_total():
    assert shard_deltas(level(1, 0, 1, 0), 3, "T-1") is None


def test_plan_holds_on_a_shard_and_the_line_names_it():
    result = plan_reservations(
        ticket_id="T-ABC",
        model="AC-HP",
        wanted=[WantedPart(sku="PSU-240-A", qty=1)],
        parts={"PSU-240-A": PSU},
        routing=["WH-A"],
        stock={("PSU-240-A", "WH-A"): level(2, 2, 2, 2)},
        now=NOW,
        hold=timedelta(hours=72),
    )
    (line,) = result.lines
    assert line.status is LineStatus.HELD and line.shard == home_shard("T-ABC", "PSU-240-A", 4)
    assert [d.shard for d in result.deltas] == [line.shard]
    # And releasing it later returns the unit to that same shard
    release = change_line(0, line, LineStatus.RELEASED).delta
    assert release is not None and (release.shard, release.held) == (line.shard, -1)


def test_a_backorder_is_counted_on_the_ticket_s_home_shard():
    result = plan_reservations(
        ticket_id="T-ABC",
        model="AC-HP",
        wanted=[WantedPart(sku="PSU-240-A", qty=1)],
        parts={"PSU-240-A": PSU},
        routing=["WH-A"],
        stock={("PSU-240-A", "WH-A"): level(0, 0, 0, 0)},
        now=NOW,
        hold=timedelta(hours=72),
    )
    (line,) = result.lines
    assert line.status is LineStatus.BACKORDERED and result.deltas == []
    assert line.shard == home_shard("T-ABC", "PSU-240-A", 4)


def test_goods_received_go_to_the_emptiest_shards():
    stock = level(0, 3, 1, 3)
    after = apply(stock, spread_change(stock, 4))
    assert sorted(s.available for s in after.shard_levels()) == [2, 3, 3, 3]


def test_a_write_off_comes_from_the_fullest_and_never_takes_a_shard_below_zero():
    stock = level(0, 3, 1, 3, held=(2, 0, 0, 0))
    after = apply(stock, spread_change(stock, -5))
    assert after.available == 2 and all(s.available >= 0 for s in after.shard_levels())
    assert after.held == 2  # holds stay


def test_a_write_off_beyond_what_is_available_is_refused():
    with pytest.raises(OutOfStock):
        spread_change(level(1, 1, 0, 0, held=(0, 3, 0, 0)), -3)


def test_rebalance_levels_available_units_and_keeps_holds():
    stock = level(7, 0, 1, 0, held=(0, 2, 0, 0))
    after = apply(stock, rebalance_deltas(stock))
    assert sorted(s.available for s in after.shard_levels()) == [2, 2, 2, 2]
    assert (after.on_hand, after.held) == (stock.on_hand, stock.held)
    assert rebalance_deltas(after) == []


@given(
    available=st.lists(st.integers(0, 6), min_size=1, max_size=6),
    qty=st.integers(1, 4),
    ticket=st.text("ABC123", min_size=1, max_size=6),
)
def test_any_hold_keeps_every_shard_non_negative_and_the_total_exact(available, qty, ticket):
    # Given any shards and any line
    stock = level(*available)
    picked = shard_deltas(stock, qty, f"T-{ticket}")
    # Then a hold is planned exactly when the warehouse has the quantity in total
    assert (picked is None) == (stock.available < qty)
    if picked is not None:
        after = apply(stock, picked[1])  # each delta's condition holds on the shard it names
        assert after.on_hand == stock.on_hand and after.held == stock.held + qty
        assert after.shard_levels()[picked[0]].held == qty


@given(
    available=st.lists(st.integers(0, 6), min_size=1, max_size=6),
    change=st.integers(-10, 10).filter(bool),
)
def test_any_adjustment_changes_the_total_by_exactly_its_amount(available, change):
    stock = level(*available)
    if change < 0 and -change > stock.available:
        with pytest.raises(OutOfStock):
            spread_change(stock, change)
        return
    after = apply(stock, spread_change(stock, change))
    assert after.on_hand == stock.on_hand + change
    assert all(s.available >= 0 for s in after.shard_levels())


def test_holding_a_backordered_line_on_the_shard_that_counted_it_names_the_item_once():
    from aftercare.adapters.ticket_writes import parts_change_items
    from aftercare.domain.ports import PartsChange
    from aftercare.models.tickets import TimelineEntry

    from tests.fakes.diagnostics import make_ticket

    # Given a ticket whose PSU line was backordered, its count on shard 2 of WH-A
    backordered = plan_reservations(
        ticket_id="T-ABC",
        model="AC-HP",
        wanted=[WantedPart(sku="PSU-240-A", qty=1)],
        parts={"PSU-240-A": PSU},
        routing=["WH-A"],
        stock={("PSU-240-A", "WH-A"): level(0, 0, 0, 0)},
        now=NOW,
        hold=timedelta(hours=72),
    ).lines[0]
    # When stock arrived and the engineer holds it, on that same shard
    held = backordered.model_copy(update={"status": LineStatus.HELD})
    delta = StockDelta(sku="PSU-240-A", warehouse="WH-A", held=1, shard=backordered.shard)
    entry = TimelineEntry(at=NOW, kind="part_reserved", actor="e", detail={})
    change = PartsChange(
        ticket=make_ticket(),
        changes=[],
        entry=entry,
        new_lines={0: held},
        new_deltas=[delta],
        replaced_lines={0: backordered},
    )
    items = [i.request for i in parts_change_items("tickets", "inventory", change)]
    # Then the transaction names the shard item once: the hold and the settled backorder
    keys = [str(next(iter(i.values()))["Key"]) for i in items if "Key" in next(iter(i.values()))]
    assert len(keys) == len(set(keys))
    (stock,) = [i["Update"] for i in items if "Update" in i and "on_hand" in str(i["Update"])]
    assert "backordered :b" in stock["UpdateExpression"]
    assert stock["ExpressionAttributeValues"][":b"] == {"N": "-1"}
