"""Templates as data: every kind renders in every language, values are escaped, English fallback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aftercare.domain.composition import (
    Composer,
)
from aftercare.domain.notifications import (
    EventKind,
    Survey,
)
from aftercare.domain.preferences import NotificationProfile
from aftercare.domain.pricing import load_price_table
from aftercare.domain.templates import (
    FORMATS,
    Markup,
    TemplateBook,
    escape,
    load_book,
    parse_book,
    render,
)
from aftercare.models.parts import LineStatus
from aftercare.models.tickets import TicketSummary

from tests.fakes.notifications import ticket_summary

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def facts(**overrides: object) -> TicketSummary:
    held_fan = {
        "reservation_id": "R-1",
        "sku": "FAN-80MM",
        "name_en": "Cooling fan 80 mm",
        "name_zh": "80mm 散热风扇",
        "qty": 1,
        "warehouse": "wh-eu-1",
        "unit_price": 12.5,
        "currency": "EUR",
        "status": "held",
        "reserved_at": NOW,
    }
    customer_ticket: dict[str, Any] = {
        "ticket_id": "T-ABCDEFGHIJKL",
        "customer_id": "c-0001",
        "thing": "ac-hp-0004",
        "in_warranty": False,
        "auto_diagnose": True,
        "parts": [held_fan],
    }
    return ticket_summary(NOW, **(customer_ticket | overrides))


def profile(language: str = "en", name: str = "Ada") -> NotificationProfile:
    return NotificationProfile(customer_id="c-0001", name=name, language=language)


@pytest.fixture
def composer() -> Composer:
    return Composer(load_book(), load_price_table(), "https://service.example.com/surveys")


@pytest.mark.parametrize("language", ["en", "zh-CN"])
@pytest.mark.parametrize("kind", [k for k in EventKind if k is not EventKind.SURVEY])
def test_every_ticket_message_renders_in_both_languages(
    composer: Composer, kind: EventKind, language: str
) -> None:
    # Given a ticket and a customer speaking `language`
    # When the message for `kind` is rendered
    message = composer.single(kind, facts(), profile(language))
    # Then it is in that language, complete, and names the ticket
    assert message.language == language and not message.fallback
    assert all("$" not in getattr(message, fmt) for fmt in FORMATS)
    assert all("T-ABCDEFGHIJKL" in getattr(message, fmt) for fmt in FORMATS)
    expected_title = "散热风扇停转" if language == "zh-CN" else "Cooling fan stalled"
    assert expected_title in message.subject + message.text


def test_opened_message_says_what_we_do_and_what_it_costs(composer: Composer) -> None:
    # Given an out-of-warranty fan stall with a fan held and diagnostics running
    message = composer.single(EventKind.TICKET_OPENED, facts(), profile())
    # Then the customer reads the reserved part, the diagnostics and the expected cost
    assert "reserved the spare parts for your repair: 1 x Cooling fan 80 mm" in message.text
    assert "Remote diagnostics are running" in message.text
    # parts 12.50 + eu-west call-out 45.00 + 1.0 h x 62.00
    assert "Expected cost to you: 119.50 EUR (parts 12.50 + labour 107.00 EUR" in message.text


def test_in_warranty_costs_nothing(composer: Composer) -> None:
    message = composer.single(EventKind.TICKET_OPENED, facts(in_warranty=True), profile("zh-CN"))
    assert "您的设备在保修期内：本次维修免费。" in message.text  # noqa: RUF001


def test_backordered_parts_are_stated(composer: Composer) -> None:
    line = facts().parts[0].model_copy(update={"status": LineStatus.BACKORDERED})
    message = composer.single(EventKind.TICKET_OPENED, facts(parts=[line]), profile())
    assert "We have ordered the spare parts your repair needs: 1 x Cooling fan 80 mm." in (
        message.text
    )


def test_device_and_customer_values_are_escaped_for_html_and_subject(composer: Composer) -> None:
    # Given a customer name and a fault title carrying markup and a header-injection attempt
    hostile = facts(title_en='<script>alert("x")</script>\r\nBcc: all@example.com')
    message = composer.single(EventKind.TICKET_OPENED, hostile, profile(name="<b>Eve</b>"))
    # Then the HTML body shows them as text, and the subject stays one line
    assert "<script>" not in message.html and "&lt;script&gt;" in message.html
    assert "&lt;b&gt;Eve&lt;/b&gt;" in message.html
    assert "\n" not in message.subject and "\r" not in message.subject
    assert "\n" not in message.short


def test_escape_keeps_renderer_markup_only() -> None:
    assert escape(Markup("<li>ok</li>"), "html") == "<li>ok</li>"
    assert escape("<li>no</li>", "html") == "&lt;li&gt;no&lt;/li&gt;"
    assert escape("a\x00b\nc", "text") == "a b\nc"
    assert escape("a\n  b\tc", "subject") == "a b c"


def test_missing_translation_falls_back_to_english() -> None:
    # Given a book whose only template has no zh-CN version
    book = parse_book(
        {
            "common": {"version": 1, "languages": {"en": {}}},
            "hello": {
                "kind": "hello",
                "languages": {
                    "en": {"subject": "Hi $n", "text": "Hi $n", "html": "<p>$n</p>", "short": "$n"}
                },
            },
        }
    )
    # When a zh-CN customer gets it
    message = render(book, "hello", "zh-CN", {"n": "Li"})
    # Then it is the English text, and the result says it fell back
    assert message.subject == "Hi Li" and message.language == "en" and message.fallback
    assert message.requested_language == "zh-CN"


def test_partial_translation_falls_back_per_format(composer: Composer) -> None:
    book = load_book()
    partial = dict(book.templates["resolved"]["zh-CN"])
    del partial["short"]
    patched = TemplateBook(
        version=book.version,
        templates=book.templates
        | {"resolved": {"en": book.templates["resolved"]["en"], "zh-CN": partial}},
        fragments=book.fragments,
    )
    composer = Composer(patched, load_price_table(), "https://x.example.com/s")
    message = composer.single(EventKind.RESOLVED, facts(), profile("zh-CN"))
    assert message.fallback and message.short.startswith("Aftercare: the repair")
    assert "维修完成" in message.subject


def test_unknown_language_falls_back_to_english(composer: Composer) -> None:
    message = composer.single(EventKind.RESOLVED, facts(), profile("fr"))
    assert message.language == "en" and message.requested_language == "fr"


def test_survey_message_carries_link_and_code(composer: Composer) -> None:
    survey = Survey(
        survey_id="S-ABC",
        ticket_id="T-ABCDEFGHIJKL",
        customer_id="c-0001",
        facts=facts(status="resolved"),
        created_at=NOW,
        due_at=NOW,
    )
    message = composer.survey(survey, profile())
    assert "https://service.example.com/surveys/S-ABC" in message.text
    assert 'href="https://service.example.com/surveys/S-ABC"' in message.html


def test_digest_lists_every_update_once(composer: Composer) -> None:
    from aftercare.domain.notifications import Notification

    members = [
        Notification(
            ticket_id=f"T-{n}",
            kind=EventKind.TICKET_OPENED,
            customer_id="c-0001",
            critical=False,
            facts=facts(ticket_id=f"T-{n}", title_en=f"Fault <{n}>"),
            created_at=NOW,
            due_at=NOW,
        )
        for n in range(3)
    ]
    message = composer.digest(members, profile())
    assert message.kind == "digest" and "3 updates" in message.subject
    assert message.text.count("we opened a service ticket") == 3
    assert message.html.count("<li>") == 3 and "Fault &lt;1&gt;" in message.html


def test_digest_of_one_is_the_plain_message(composer: Composer) -> None:
    from aftercare.domain.notifications import Notification

    member = Notification(
        ticket_id="T-1",
        kind=EventKind.REMOTE_RESOLVED,
        customer_id="c-0001",
        critical=False,
        facts=facts(ticket_id="T-1"),
        created_at=NOW,
        due_at=NOW,
    )
    assert composer.digest([member], profile()).kind == "remote_resolved"


def test_shipped_book_has_english_for_every_kind_and_fragment() -> None:
    book = load_book()
    assert {"en", "zh-CN"} <= set(book.fragments)
    assert set(book.fragments["zh-CN"]) == set(book.fragments["en"])
    for kind, by_language in book.templates.items():
        assert set(by_language) == {"en", "zh-CN"}, kind
