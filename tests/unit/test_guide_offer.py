"""The guide is offered where a customer meets a self-serviceable fault: in the ticket-opened
message (in the customer's language) and in `POST /tickets`'s answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aftercare.api import raised_routes
from aftercare.domain.composition import Composer
from aftercare.domain.notifications import EventKind
from aftercare.domain.preferences import NotificationProfile
from aftercare.domain.pricing import load_price_table
from aftercare.domain.templates import load_book

from tests.fakes.faults import THING
from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler
from tests.fakes.notifications import ticket_summary
from tests.fakes.raised import RaisedWorld, raised_world

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
API = load_handler("api", "api_handler")
CUSTOMER = {
    "sub": "3",
    "token_use": "id",
    "cognito:username": "cust-std",
    "cognito:groups": ["customers"],
    "custom:customer_id": "c-std",
}


def opened_message(language: str, **ticket: Any) -> Any:
    composer = Composer(load_book(), load_price_table(), "https://service.example.com/surveys")
    profile = NotificationProfile(customer_id="c-1", name="Ada", language=language)
    return composer.single(EventKind.TICKET_OPENED, ticket_summary(NOW, **ticket), profile)


def test_the_opened_message_of_a_self_serviceable_code_carries_the_models_guide():
    # Given a fan stall on an air conditioner (its own guide overrides the generic one)
    # When the ticket-opened message is written in Chinese and in English
    chinese = opened_message("zh-CN", fault_code="FAN-STALL", model="AC-HP")
    english = opened_message("en", fault_code="FAN-STALL", model="AC-HP")
    # Then it names the guide, lists its steps and links to it, in the customer's language
    assert "空调风扇停转" in chinese.text and "1. 用遥控器关闭空调" in chinese.text
    assert "Air conditioner fan stopped" in english.text
    assert "/guides?code=FAN-STALL&lang=en&model=AC-HP" in english.text
    # And the short form (SMS, push) has the title and link but not the steps
    assert "Air conditioner fan stopped" in english.short and "1. " not in english.short


def test_no_guide_is_offered_for_a_code_that_is_not_self_serviceable():
    message = opened_message("en", fault_code="EVSE-CABLE-TEMP", model="EV-CH")
    assert "/guides?" not in message.text and "Charging cable gets hot" not in message.text


def test_later_messages_do_not_repeat_the_offer():
    composer = Composer(load_book(), load_price_table(), "https://service.example.com/surveys")
    profile = NotificationProfile(customer_id="c-1", name="Ada", language="en")
    facts = ticket_summary(NOW, fault_code="FAN-STALL", model="AC-HP")
    assert "/guides?" not in composer.single(EventKind.RESOLVED, facts, profile).text


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> RaisedWorld:
    world = raised_world()
    monkeypatch.setattr(raised_routes, "raised_deps", lambda: (world.raising, world.classifying))
    return world


def raise_ticket(body: dict[str, Any]) -> tuple[int, Any]:
    event = http_api_event("POST", "/tickets", CUSTOMER, body)
    response = API.app.resolve(event, None)
    return response["statusCode"], json.loads(response["body"])


def test_a_ticket_raised_in_the_app_answers_with_its_guide_in_the_asked_language(world):
    # When a customer raises a fan stall on their air conditioner in Chinese
    body = {"device": THING, "symptom": "FAN-STALL", "channel": "app", "lang": "zh-CN"}
    status, answer = raise_ticket(body)
    # Then the 201 carries the air conditioner's own guide, in Chinese, marked self-service
    assert status == 201
    guide = answer["guide"]
    assert (guide["guide_id"], guide["lang"], guide["self_service"]) == (
        "G-FAN-STALL-AC-HP",
        "zh-CN",
        True,
    )


def test_a_ticket_without_a_guide_answers_with_none(world):
    status, answer = raise_ticket({"device": THING, "symptom": "PSU-OVERVOLT", "channel": "app"})
    assert status == 201 and answer["guide"] is None
