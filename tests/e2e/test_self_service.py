"""Guides the device confirms, end to end on the shared local stack: a customer follows the guide
for a fault their router reported, says so through the API, and the router's own self-test
decides (the diagnostics round trip over Mosquitto, the result queue and function).

Devices (no other shared-stack test uses FAN-STALL on them): rt-x-0001 and rt-x-0081, both
c-0001's (cust-0001). The customer "fixing" the fan is the simulated device's fault cleared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devices.agent import DeviceAgent
from tests.e2e.api_user import ApiUser
from tests.e2e.conftest import Stack, device_agent_config, wait_for

CODE = "FAN-STALL"
ONSITE = "needs_onsite_dispatch"


def start_agent(stack: Stack, thing: str, outbox: Path) -> DeviceAgent:
    agent = DeviceAgent(device_agent_config(stack.state, thing, outbox))
    assert agent.start(connect_timeout=10)
    return agent


def reported_ticket(customer: ApiUser, thing: str, code: str = CODE) -> dict[str, Any]:
    """The device's `code` ticket once its auto-diagnostic was answered (so the self-service
    verification is the only request left to wait for)."""

    def find() -> dict[str, Any] | None:
        rows = [r for r in customer.get(f"/tickets?thing={thing}") if r["fault_code"] == code]
        rows = [r for r in rows if r["status"] not in ("resolved", "closed", "cancelled")]
        if not rows:
            return None
        view = customer.get(f"/tickets/{rows[0]['ticket_id']}")
        auto = [d for d in view["diagnostics"] if d["purpose"] == "auto"]
        return view if auto and auto[0]["status"] != "pending" else None

    return wait_for(find, timeout=90, what=f"{CODE} ticket on {thing}, auto-diagnosed")


def settled_self_service(customer: ApiUser, ticket_id: str, request_id: str) -> dict[str, Any]:
    """The ticket once the verification is settled (read again after: the API reads the ticket
    before its diagnostics, so one response can show the answer but not yet its effect)."""

    def done() -> bool:
        diagnostics = customer.get(f"/tickets/{ticket_id}/diagnostics")["diagnostics"]
        record = next(d for d in diagnostics if d["request_id"] == request_id)
        return record["status"] != "pending"

    wait_for(done, timeout=90, interval=0.5, what=f"verification {request_id}")
    return customer.get(f"/tickets/{ticket_id}")


def test_the_device_confirming_the_guide_resolves_the_ticket_as_self_service(
    local_stack: Stack, tmp_path: Path
) -> None:
    # Given c-0001's router reporting a stalled fan, its ticket open with a part held
    thing = "rt-x-0001"
    agent = start_agent(local_stack, thing, tmp_path / "outbox")
    customer = ApiUser(local_stack, "cust-0001")
    try:
        agent.raise_fault(CODE)
        ticket = reported_ticket(customer, thing)
        ticket_id = ticket["ticket_id"]
        # And the customer reads the guide in Chinese
        status, guide = customer.call("GET", f"/guides?code={CODE}&model=RT-X&lang=zh-CN")
        assert status == 200 and guide["self_service"] and guide["title"] == "散热风扇停转"
        # When they clean the fan (the fault goes away) and say they followed the guide
        agent.state.clear([CODE])
        status, started = customer.call("POST", f"/tickets/{ticket_id}/self-service")
        assert status == 202, started
        assert (started["status"], started["attempt"]) == ("waiting_for_device", 1)
        # Then the router's self-test confirms it and the ticket resolves as self-service
        view = settled_self_service(customer, ticket_id, started["request_id"])
        assert (view["status"], view["resolution"]) == ("resolved", "self_service"), view
        assert view["self_service_attempts"] == 1
        record = next(d for d in view["diagnostics"] if d["request_id"] == started["request_id"])
        assert (record["purpose"], record["outcome"]) == ("self_service", "self_service_fixed")
        # And every part held for it went back to stock
        assert view["parts"] and all(p["status"] == "released" for p in view["parts"])
        kinds = [e["kind"] for e in view["timeline"]]
        assert "self_service_followed" in kinds
        # And a closed ticket takes no further attempt
        status, body = customer.call("POST", f"/tickets/{ticket_id}/self-service")
        assert (status, body["reason"]) == (409, "ticket_not_active")
    finally:
        agent.stop(drain_timeout=2)


def test_a_fault_the_device_still_reports_sends_the_ticket_towards_dispatch(
    local_stack: Stack, tmp_path: Path
) -> None:
    # Given c-0001's other router reporting a stalled fan
    thing = "rt-x-0081"
    agent = start_agent(local_stack, thing, tmp_path / "outbox")
    customer = ApiUser(local_stack, "cust-0001")
    try:
        agent.raise_fault(CODE)
        ticket_id = reported_ticket(customer, thing)["ticket_id"]
        # When the customer says they followed the guide, but the fan still does not turn
        status, started = customer.call("POST", f"/tickets/{ticket_id}/self-service")
        assert status == 202, started
        # Then the router's self-test still shows the fault: no deflection, flagged for a visit
        view = settled_self_service(customer, ticket_id, started["request_id"])
        assert view["status"] == "open" and view["resolution"] is None
        assert ONSITE in view["flags"]
        record = next(d for d in view["diagnostics"] if d["request_id"] == started["request_id"])
        assert record["outcome"] == "self_service_failed"
        assert record["result"]["findings"]["active_faults"] == [CODE]
        flagged = [e for e in view["timeline"] if e["kind"] == "flagged"]
        assert flagged and flagged[-1]["detail"]["because"] == "self_service_failed"
        # And another customer cannot act on the ticket at all
        neighbour = ApiUser(local_stack, "cust-0002")
        assert neighbour.call("POST", f"/tickets/{ticket_id}/self-service")[0] == 404
    finally:
        agent.stop(drain_timeout=2)


def test_a_guide_steps_routine_runs_on_the_device_and_decides_nothing(
    local_stack: Stack, tmp_path: Path
) -> None:
    # Given c-0001's router reporting Wi-Fi drops (its guide's step 3 restarts the radio)
    thing, code = "rt-x-0081", "WIFI-DROP"
    agent = start_agent(local_stack, thing, tmp_path / "outbox")
    customer = ApiUser(local_stack, "cust-0001")
    try:
        agent.raise_fault(code)
        ticket_id = reported_ticket(customer, thing, code)["ticket_id"]
        _, guide = customer.call("GET", f"/guides?code={code}&model=RT-X&lang=en")
        assert guide["steps"][2]["routine"] == "reset_component"
        # When the customer taps that step's button in the app
        status, started = customer.call("POST", f"/tickets/{ticket_id}/guide-steps/3")
        assert status == 202, started
        assert (started["step"], started["routine"]) == (3, "reset_component")
        # Then the router runs it over MQTT and its answer is recorded on the ticket, which it
        # leaves as it was: the verification after "I followed the guide" decides
        view = settled_self_service(customer, ticket_id, started["request_id"])
        record = next(d for d in view["diagnostics"] if d["request_id"] == started["request_id"])
        assert (record["purpose"], record["status"], record["outcome"]) == (
            "guide_step",
            "completed",
            "no_action",
        )
        assert view["status"] not in ("resolved", "closed", "cancelled")
        assert view["self_service_attempts"] == 0
        # And a step that asks the device for nothing is refused with the reason
        status, body = customer.call("POST", f"/tickets/{ticket_id}/guide-steps/1")
        assert (status, body["reason"]) == (409, "no_step_routine")
    finally:
        agent.stop(drain_timeout=2)
