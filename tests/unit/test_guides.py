"""Troubleshooting guides as versioned data, and `GET /guides` on the support API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aftercare.domain.guides import load_guides, parse_guides
from aftercare.domain.rules import load_catalog
from aftercare.models.guides import GuideLanguage

from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler

API = load_handler("api", "api_handler")
CUSTOMER = {
    "sub": "3",
    "token_use": "id",
    "cognito:username": "cust-std",
    "cognito:groups": ["customers"],
    "custom:customer_id": "c-std",
}


def get(path: str) -> tuple[int, Any]:
    response = API.app.resolve(http_api_event("GET", path, CUSTOMER, None), None)
    return response["statusCode"], json.loads(response["body"])


def test_the_guides_file_is_versioned_and_names_only_catalog_codes_and_models():
    # Given the shipped guides and catalog
    book, catalog = load_guides(), load_catalog()
    # Then there are at least six, each for a catalog code and one of that code's models
    assert book.version and len(book.guides) >= 6
    for guide in book.guides:
        entry = catalog.lookup(guide.code)
        assert entry is not None, guide.id
        assert guide.model is None or guide.model in entry.models, guide.id
    # And no safety fault that always needs a visit is self-serviceable
    for guide in book.guides:
        entry = catalog.lookup(guide.code)
        assert entry is not None
        assert not (guide.self_service and entry.always_onsite), guide.id


def test_a_models_own_guide_overrides_the_generic_one():
    book = load_guides()
    # When a router and an air conditioner look up the same code
    router, aircon = book.find("WIFI-DROP", "RT-X"), book.find("WIFI-DROP", "AC-HP")
    # Then the router gets its own guide and the air conditioner the generic one
    assert router is not None and router.id == "G-WIFI-DROP-RT-X"
    assert aircon is not None and aircon.id == "G-WIFI-DROP"
    # And a code with only a model-specific guide has none for another model
    assert book.find("WAN-LINKDOWN", "RT-X") is not None
    assert book.find("WAN-LINKDOWN", "IC-300") is None


def test_steps_read_in_english_and_chinese_and_may_ask_the_device_for_a_routine():
    book = load_guides()
    guide = book.find("WIFI-DROP")
    assert guide is not None
    english = guide.view(GuideLanguage.EN, book.version)
    chinese = guide.view(GuideLanguage.ZH_CN, book.version)
    assert english.title == "Wi-Fi keeps dropping" and chinese.title == "Wi-Fi 连接频繁断开"
    assert [s.n for s in chinese.steps] == list(range(1, len(guide.steps) + 1))
    assert "reset_component" in [s.routine for s in english.steps]
    assert english.link == "/guides?code=WIFI-DROP&lang=en"


def test_two_guides_for_one_code_and_model_are_refused():
    step = {"en": "a", "zh-CN": "甲"}
    guide = {"id": "G-A", "code": "FAN-STALL", "title": step, "steps": [step]}
    with pytest.raises(ValueError, match="one guide per code"):
        parse_guides({"version": 1, "guides": [guide, guide | {"id": "G-B"}]})


def test_get_guides_answers_the_override_in_the_callers_language():
    status, guide = get("/guides?code=FAN-STALL&model=AC-HP&lang=zh-CN")
    assert status == 200
    assert (guide["guide_id"], guide["lang"], guide["title"]) == (
        "G-FAN-STALL-AC-HP",
        "zh-CN",
        "空调风扇停转",
    )
    assert guide["self_service"] and guide["version"] == load_guides().version


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/guides?code=PSU-OVERVOLT", (404, "no_guide")),
        ("/guides?code=WAN-LINKDOWN&model=IC-300", (404, "no_guide")),
        ("/guides?code=NOPE-NOPE", (422, "unknown_code")),
        ("/guides?code=FAN-STALL&lang=fr", (422, "validation_error")),
        ("/guides", (422, "code_required")),
    ],
)
def test_get_guides_refuses_with_a_reason(path, expected):
    status, body = get(path)
    assert (status, body["reason"]) == expected, body
