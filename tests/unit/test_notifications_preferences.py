"""Preferences: channel order, quiet hours in the customer's zone, cost transparency, events."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.ticket_items import ticket_from_image, ticket_item
from aftercare.domain.notifications import (
    EventKind,
    events_for_change,
)
from aftercare.domain.preferences import Channel, NotificationProfile, QuietHours
from aftercare.domain.pricing import RepairFacts, estimate, load_price_table
from aftercare.domain.tickets import Ticket
from pydantic import ValidationError

from tests.fakes.tickets import a_ticket


def profile(**overrides: object) -> NotificationProfile:
    base: dict[str, object] = {
        "customer_id": "c-1",
        "time_zone": "Asia/Shanghai",
        "channels": ["sms", "email"],
        "contact": {"email": "a@example.com", "phone": "+15550000001"},
        "quiet_hours": {"start": "22:00", "end": "07:00"},
    }
    return NotificationProfile.model_validate(base | overrides)


# ------------------------------------------------------------------ channels


def test_channels_keep_the_customers_order_and_drop_unknown_ones() -> None:
    p = profile(channels=["push", "fax", "email", "push"])
    assert p.channels == [Channel.PUSH, Channel.EMAIL]


def test_address_comes_from_the_matching_contact() -> None:
    p = profile()
    assert p.address(Channel.SMS) == "+15550000001"
    assert p.address(Channel.PUSH) is None


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError):
        profile(time_zone="Mars/Olympus_Mons")


# ------------------------------------------------------------------ quiet hours


@pytest.mark.parametrize(
    ("utc", "expected_end_utc"),
    [
        # 23:30 Shanghai (UTC+8) -> quiet until 07:00 the next morning = 23:00 UTC
        (datetime(2026, 11, 27, 15, 30, tzinfo=UTC), datetime(2026, 11, 27, 23, 0, tzinfo=UTC)),
        # 03:00 Shanghai -> quiet until 07:00 the same morning
        (datetime(2026, 11, 26, 19, 0, tzinfo=UTC), datetime(2026, 11, 26, 23, 0, tzinfo=UTC)),
        # 12:00 Shanghai -> not quiet
        (datetime(2026, 11, 27, 4, 0, tzinfo=UTC), None),
        # 07:00 sharp is the end: not quiet any more; 22:00 sharp is quiet
        (datetime(2026, 11, 26, 23, 0, tzinfo=UTC), None),
        (datetime(2026, 11, 27, 14, 0, tzinfo=UTC), datetime(2026, 11, 27, 23, 0, tzinfo=UTC)),
    ],
)
def test_overnight_quiet_hours_in_the_customers_zone(
    utc: datetime, expected_end_utc: datetime | None
) -> None:
    assert profile().quiet_until(utc) == expected_end_utc


def test_daytime_quiet_hours_and_seconds_precision() -> None:
    quiet = QuietHours(start=time(13, 0), end=time(13, 0, 30))
    p = profile(time_zone="UTC", quiet_hours=quiet.model_dump())
    assert p.quiet_until(datetime(2026, 1, 1, 13, 0, 10, tzinfo=UTC)) == datetime(
        2026, 1, 1, 13, 0, 30, tzinfo=UTC
    )
    assert p.quiet_until(datetime(2026, 1, 1, 13, 0, 30, tzinfo=UTC)) is None


def test_quiet_hours_follow_daylight_saving() -> None:
    # New York: 22:00-07:00 local; on 2026-03-08 clocks jump at 02:00 (EST -> EDT)
    p = profile(time_zone="America/New_York")
    night = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST
    assert p.quiet_until(night) == datetime(2026, 3, 8, 11, 0, tzinfo=UTC)  # 07:00 EDT


def test_no_quiet_hours_or_an_empty_window_is_never_quiet() -> None:
    assert profile(quiet_hours=None).quiet_until(datetime.now(UTC)) is None
    same = {"start": "08:00", "end": "08:00"}
    assert profile(quiet_hours=same).quiet_until(datetime.now(UTC)) is None


# ------------------------------------------------------------------ cost


def repair(**overrides: object) -> RepairFacts:
    base: dict[str, object] = {
        "region": "ap-east",
        "category": "refrigeration",
        "in_warranty": False,
        "remote_fixable": False,
        "parts": [
            {"sku": "A", "qty": 2, "unit_price": 9.8, "status": "held"},
            {"sku": "B", "qty": 1, "unit_price": 31.0, "status": "backordered"},
            {"sku": "C", "qty": 1, "unit_price": 500.0, "status": "released"},
        ],
    }
    return RepairFacts.model_validate(base | overrides)


def test_cost_is_reserved_parts_plus_regional_labour() -> None:
    cost = estimate(repair(), load_price_table())
    # parts 2 x 9.80 + 31.00 (the released line does not count);
    # labour ap-east call-out 25.00 + refrigeration 2.0 h x 38.00
    assert cost.parts == Decimal("50.60") and cost.labour == Decimal("101.00")
    assert cost.customer_pays == Decimal("151.60") and cost.on_site


def test_in_warranty_the_customer_pays_nothing() -> None:
    cost = estimate(repair(in_warranty=True), load_price_table())
    assert cost.customer_pays == Decimal("0.00") and cost.total == Decimal("151.60")


def test_a_remote_fix_costs_the_remote_fee() -> None:
    cost = estimate(repair(remote_fixable=True, parts=[]), load_price_table())
    assert not cost.on_site and cost.customer_pays == Decimal("0.00")


def test_a_diagnostics_visit_flag_makes_it_on_site() -> None:
    cost = estimate(
        repair(remote_fixable=True, parts=[], flags=["needs_onsite_dispatch"]), load_price_table()
    )
    assert cost.on_site and cost.labour == Decimal("101.00")


# ------------------------------------------------------------------ events


OPENED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def meta(**overrides: Any) -> Ticket:
    return a_ticket(OPENED, "T-1", **overrides)


def test_a_new_ticket_is_an_opened_event() -> None:
    assert events_for_change(None, meta()) == [EventKind.TICKET_OPENED]


def test_an_occurrence_update_is_no_event() -> None:
    later = OPENED + timedelta(minutes=5)
    assert events_for_change(meta(), meta(occurrences=2, last_seen=later)) == []


def test_status_changes_that_customers_do_not_care_about_are_no_event() -> None:
    assert events_for_change(meta(), meta(status="diagnosing")) == []


def test_resolution_names_how_it_was_resolved() -> None:
    remote = meta(status="resolved", resolution="remote")
    on_site = meta(status="resolved", resolution="on_site")
    assert events_for_change(meta(), remote) == [EventKind.REMOTE_RESOLVED]
    assert events_for_change(meta(status="in_repair"), on_site) == [EventKind.RESOLVED]


def test_the_onsite_flag_appearing_is_an_event_once() -> None:
    flagged = meta(flags=["needs_onsite_dispatch"])
    assert events_for_change(meta(), flagged) == [EventKind.ONSITE_VISIT_NEEDED]
    assert events_for_change(flagged, meta(flags=["needs_onsite_dispatch"], occurrences=3)) == []


def test_other_items_of_the_tickets_table_are_ignored() -> None:
    # Given stream images of a timeline entry and a lock (the adapter reads them as no ticket)
    timeline = {"pk": "TICKET#T-1", "sk": "EVT#2026#x", "kind": "notification"}
    lock = {"pk": "OPEN#thing#CODE", "sk": "LOCK"}
    for image in (timeline, lock):
        assert ticket_from_image(to_item(image)) is None
        assert events_for_change(None, ticket_from_image(to_item(image))) == []
    # And a ticket's item is read as the ticket
    assert ticket_from_image(to_item(ticket_item(meta()))) == meta()
    # Then a removed ticket is no event either
    assert events_for_change(meta(), None) == []
