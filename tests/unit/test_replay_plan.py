"""Where a parked item may be replayed to, decided from the item alone."""

from __future__ import annotations

import base64

from aftercare.domain.replay import ReplayPlan, ReplaySkip, plan_replay


def rule_error(topic: str) -> dict:
    return {
        "ruleName": "r",
        "topic": topic,
        "base64OriginalPayload": base64.b64encode(b"{}").decode(),
        "failures": [{"failedAction": "SqsAction"}],
    }


def item(source: str, reason: str, envelope: dict | None, **extra: object) -> dict:
    return {
        "source": source,
        "reason": reason,
        "parked_key": "2026-11-27T12:00:00+00:00#m",
        "received_at": "2026-11-27T12:00:00+00:00",
        "envelope": envelope,
        **extra,
    }


def test_a_bridge_parked_answer_goes_to_the_diagnostics_queue():
    plan = plan_replay(
        item("iot-rules", "rule_error:SqsAction", rule_error("cmd/aftercare/t-1/diagnostics/res"))
    )
    assert isinstance(plan, ReplayPlan) and plan.queue == "DiagnosticsResultQueue"
    assert '"thing":"t-1"' in plan.body and '"received_at":1795780800000' in plan.body


def test_undeliverable_messages_are_not_replayed():
    plan = plan_replay(
        item("iot-rules", "undeliverable:SqsAction", rule_error("dt/aftercare/t-1/fault"))
    )
    assert isinstance(plan, ReplaySkip) and "would not change it" in plan.why


def test_an_item_whose_envelope_was_not_kept_says_so():
    plan = plan_replay(
        item("fault-dlq", "rule_error:SqsAction", None, envelope_omitted="envelope of 9 bytes")
    )
    assert isinstance(plan, ReplaySkip) and plan.why == "envelope of 9 bytes"


def test_a_source_never_replays_into_another_sources_queue():
    plan = plan_replay(
        item("fault-dlq", "rule_error:SqsAction", rule_error("cmd/aftercare/t-1/diagnostics/res"))
    )
    assert isinstance(plan, ReplaySkip) and "does not belong" in plan.why
