"""A ticket support classifies (a free-text report, or a code the catalog did not know) tells
the customer once what it turned out to be: `ticket_classified`, through the same notifier
(once per event, language, quiet hours), with the guide of a self-serviceable code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aftercare.domain.notifications import EventKind, events_for_change
from aftercare.domain.tickets import Ticket

from tests.unit.test_notifications_flow import NOON, World, ticket


def triage(**overrides: Any) -> dict[str, Any]:
    """A free-text report's unclassified ticket, as stored."""
    return ticket(
        fault_code="TRIAGE-FREE-TEXT", unclassified=True, auto_diagnose=False, **overrides
    )


def classified(**overrides: Any) -> dict[str, Any]:
    """The same ticket after support gave it FAN-STALL (same id)."""
    return ticket(unclassified=False, **overrides)


def as_ticket(image: dict[str, Any]) -> Ticket:
    return Ticket.model_validate(image)


def test_classification_is_news_once_and_other_changes_are_not() -> None:
    assert events_for_change(as_ticket(triage()), as_ticket(classified())) == [
        EventKind.TICKET_CLASSIFIED
    ]
    assert events_for_change(as_ticket(classified()), as_ticket(classified(occurrences=2))) == []
    assert events_for_change(as_ticket(triage()), as_ticket(triage(occurrences=2))) == []


def test_a_classified_ticket_tells_the_customer_once_what_it_is() -> None:
    # Given a customer whose free-text report became a triage ticket (and was told so)
    world = World()
    world.change(None, triage())
    # When support classifies it later and the stream delivers the change twice
    later = NOON + timedelta(minutes=10)  # past the digest window the first message opened
    outcomes = [world.change(triage(), classified(), at=later) for _ in range(2)]
    # Then one message went out, naming the fault and what we are doing about it
    assert [o[0].result for o in outcomes] == ["sent", "duplicate"]
    message = world.email.deliveries[-1].message
    assert message.kind == "ticket_classified"
    assert "Cooling fan stalled" in message.subject and "T-1" in message.subject
    assert "Remote diagnostics are running" in message.text


def test_the_message_is_in_the_customers_language() -> None:
    world = World()
    world.customer(language="zh-CN")
    world.change(triage(), classified())
    message = world.email.deliveries[-1].message
    assert message.language == "zh-CN" and "散热风扇停转" in message.subject


def test_quiet_hours_hold_a_minor_classification_until_morning() -> None:
    world = World()
    night = datetime(2026, 11, 27, 22, 30, tzinfo=UTC)
    (outcome,) = world.change(triage(), classified(severity="minor"), at=night)
    assert outcome.result == "deferred" and not world.email.deliveries
    (sent,) = world.notifier.run_due(datetime(2026, 11, 28, 6, 0, 1, tzinfo=UTC))
    assert sent.result == "sent"
    assert world.email.deliveries[0].message.kind == "ticket_classified"


def test_a_ticket_closed_while_unclassified_sends_no_classification() -> None:
    done = {"status": "cancelled", "resolved_at": (NOON + timedelta(minutes=1)).isoformat()}
    assert events_for_change(as_ticket(triage()), as_ticket(classified(**done))) == []
