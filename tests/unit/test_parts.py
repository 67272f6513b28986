"""Parts planning: where holds come from, backorders, closing out, reorder suggestions."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from aftercare.domain.parts import (
    InvalidLineChange,
    PartInfo,
    ReorderPolicy,
    StockLevel,
    change_line,
    close_out_lines,
    crossed_reorder_point,
    plan_reservations,
    reservation_id,
    suggest_reorder,
)
from aftercare.models.parts import LineStatus, WantedPart

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
PSU = PartInfo(
    sku="PSU-240-A",
    name_en="PSU",
    name_zh="电源",
    unit_price=64.0,
    currency="EUR",
    lead_time_days=10,
    models=["AC-HP"],
)


def stock(wh: str, on_hand: int, held: int = 0, rop: int = 2) -> StockLevel:
    return StockLevel(sku="PSU-240-A", warehouse=wh, on_hand=on_hand, held=held, reorder_point=rop)


def plan(levels: list[StockLevel], qty: int = 1, model: str = "AC-HP", parts=None):
    return plan_reservations(
        ticket_id="T-ABC",
        model=model,
        wanted=[WantedPart(sku="PSU-240-A", qty=qty)],
        parts={"PSU-240-A": PSU} if parts is None else parts,
        routing=["WH-A", "WH-B"],
        stock={(s.sku, s.warehouse): s for s in levels},
        now=NOW,
        hold=timedelta(hours=72),
    )


def test_first_preferred_warehouse_with_stock_is_used():
    # Given stock in both warehouses of the region's list
    result = plan([stock("WH-A", 3), stock("WH-B", 9)])
    # Then the hold comes from the first, at the catalog price, expiring after the hold time
    (line,) = result.lines
    assert (line.status, line.warehouse, line.unit_price) == (LineStatus.HELD, "WH-A", 64.0)
    assert line.hold_expires_at == NOW + timedelta(hours=72)
    assert [(d.warehouse, d.held, d.need) for d in result.deltas] == [("WH-A", 1, 1)]


def test_falls_back_along_the_list_when_first_lacks_quantity():
    # Given the first warehouse has only held stock left
    result = plan([stock("WH-A", 3, held=3), stock("WH-B", 1)])
    # Then the second one is used
    assert result.lines[0].warehouse == "WH-B" and result.deltas[0].warehouse == "WH-B"


def test_no_stock_anywhere_is_a_backorder_line():
    # Given no warehouse in the list has the quantity
    result = plan([stock("WH-A", 1)], qty=2)
    # Then a backorder line is recorded on the first-choice warehouse and nothing is held
    (line,) = result.lines
    assert line.status is LineStatus.BACKORDERED and line.warehouse == "WH-A"
    assert result.deltas == [] and line.hold_expires_at is None


@pytest.mark.parametrize(("model", "parts"), [("RT-X", None), ("AC-HP", {})])
def test_incompatible_or_unknown_parts_are_noted_not_reserved(model, parts):
    result = plan([stock("WH-A", 5)], model=model, parts=parts)
    assert result.lines == [] and result.deltas == [] and len(result.notes) == 1


def test_reservation_id_is_one_per_ticket_and_sku():
    line = plan([stock("WH-A", 1)]).lines[0]
    assert line.reservation_id == reservation_id("T-ABC", "PSU-240-A") == "R-ABC-PSU-240-A"


def test_closing_out_consumes_or_releases_holds_and_releases_backorders():
    held = plan([stock("WH-A", 5)]).lines[0]
    back = plan([stock("WH-A", 0)]).lines[0]
    consumed = close_out_lines([held, back], consume=True)
    assert [(c.to, c.delta and (c.delta.on_hand, c.delta.held)) for c in consumed] == [
        (LineStatus.CONSUMED, (-1, -1)),
        (LineStatus.RELEASED, None),
    ]
    released = close_out_lines([held], consume=False)
    assert released[0].delta is not None and released[0].delta.available == 1


def test_finished_lines_cannot_move_again():
    line = plan([stock("WH-A", 5)]).lines[0].model_copy(update={"status": LineStatus.CONSUMED})
    with pytest.raises(InvalidLineChange, match="consumed"):
        change_line(0, line, LineStatus.RELEASED)


def test_reorder_point_crossing_is_detected_once():
    assert crossed_reorder_point(3, 2, 2)
    assert not crossed_reorder_point(2, 1, 2)  # already at/below: no new crossing
    assert not crossed_reorder_point(5, 3, 2)


def test_reorder_suggestion_follows_the_documented_formula():
    # Given 15 units consumed in 30 days, 2 held, 1 backordered, 10 days lead time
    level = stock("WH-A", on_hand=4, held=2, rop=3)
    policy = ReorderPolicy(service_level=0.95, window_days=30, review_days=7)
    s = suggest_reorder(
        level, consumed_in_window=15, backordered=1, lead_time_days=10, policy=policy
    )
    # Then demand, safety stock and quantity are as documented
    daily = (15 + 3) / 30
    safety = 1.6448536 * math.sqrt(daily) * math.sqrt(10)
    expected = math.ceil(daily * 10 + safety + daily * 7 + 1 - 2)
    assert s.daily_demand == pytest.approx(daily, abs=1e-3)
    assert s.safety_stock == pytest.approx(safety, abs=0.01)
    assert s.suggested_qty == expected
    assert "lead time 10d" in s.reason
