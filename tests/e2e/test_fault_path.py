"""The spine, end to end: devices over Mosquitto -> IoT rule -> SQS -> FaultIntake -> tickets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devices.agent import DeviceAgent
from devices.config import IngestRules
from devices.fleet import FleetSimulator
from devices.scenario import DeviceSpec, Scenario, Storm
from infra.seeding import demo_devices
from tests.e2e.conftest import Stack, device_agent_config, publish_as, settle, wait_for

DEVICES = demo_devices()


def agent_for(stack: Stack, thing: str, tmp_path: Path) -> DeviceAgent:
    agent = DeviceAgent(device_agent_config(stack.state, thing, tmp_path / "outbox"))
    assert agent.start(connect_timeout=10)
    return agent


def tickets_of(stack: Stack, thing: str, code: str) -> list:
    return [t for t in stack.tickets.list_tickets(thing=thing) if t.fault_code == code]


def test_one_fault_opens_one_ticket(local_stack: Stack, tmp_path: Path) -> None:
    # Given a registered device running the agent, reporting straight to the stack's fault rule
    # (Basic Ingest, as provisioned devices do: past the broker, whose ACL lets it publish there)
    thing = DEVICES[0].thing
    agent = agent_for(local_stack, thing, tmp_path)
    rule = local_stack.state["ingest_rules"]["fault"]
    assert agent.config.topics.fault == f"$aws/rules/{rule}/dt/aftercare/{thing}/fault"
    # When it raises one fault
    report = agent.raise_fault("TEMP-HIGH", readings={"temp_c": 88.5})
    agent.stop(drain_timeout=10)
    # Then one ticket exists for it, with the report as its only occurrence
    (ticket,) = wait_for(lambda: tickets_of(local_stack, thing, "TEMP-HIGH"), what="ticket")
    detail = local_stack.tickets.get_ticket(ticket.ticket_id)
    assert [o.fault_id for o in detail.occurrences] == [report.fault_id]
    assert detail.ticket.latest_readings == {"temp_c": 88.5}
    kinds = [e.kind for e in detail.timeline]
    assert kinds[0] == "opened" and kinds.count("opened") == 1


def test_same_fault_delivered_five_times_counts_once(local_stack: Stack, tmp_path: Path) -> None:
    # Given a device whose fault report is delivered five times (retries / redelivery)
    thing = DEVICES[1].thing
    agent = agent_for(local_stack, thing, tmp_path)
    report = agent.raise_fault("FW-CRASHLOOP")
    for _ in range(4):
        agent.publish_raw(f"dt/aftercare/{thing}/fault", report.to_json_bytes()).wait_for_publish(5)
    agent.stop(drain_timeout=10)
    # When the stack has processed everything
    settle(local_stack)
    # Then there is one ticket with one occurrence
    (ticket,) = tickets_of(local_stack, thing, "FW-CRASHLOOP")
    assert ticket.occurrences == 1
    assert len(local_stack.tickets.get_ticket(ticket.ticket_id).occurrences) == 1


def test_fifty_reports_of_one_code_correlate(local_stack: Stack, tmp_path: Path) -> None:
    # Given a device that reports the same fault code 50 times (distinct fault ids)
    thing = DEVICES[2].thing
    agent = agent_for(local_stack, thing, tmp_path)
    ids = [agent.raise_fault("TEMP-HIGH", readings={"n": n}).fault_id for n in range(50)]
    agent.stop(drain_timeout=20)
    # When all are processed
    settle(local_stack)
    # Then one ticket holds 50 occurrences, the latest readings being the last report's
    (ticket,) = tickets_of(local_stack, thing, "TEMP-HIGH")
    detail = local_stack.tickets.get_ticket(ticket.ticket_id)
    assert ticket.occurrences == 50
    assert sorted(o.fault_id for o in detail.occurrences) == sorted(ids)


def test_storm_across_200_devices_loses_nothing(local_stack: Stack, tmp_path: Path) -> None:
    # Given 200 devices that each report the same code at the same moment
    fleet = [DeviceSpec(thing=d.thing, model=d.model) for d in DEVICES[10:210]]
    scenario = Scenario(
        duration_s=3,
        fault_rate=0,
        storms=[Storm(code="WIFI-DROP", at_s=0.5, device_share=1.0)],
        seed=3,
    )
    codes = {d.model: ["WIFI-DROP"] for d in fleet}
    # When the storm plays through the agents
    summary = FleetSimulator(
        fleet,
        scenario,
        local_stack.mqtt_url,
        tmp_path,
        codes_by_model=codes,
        credentials_dir=Path(local_stack.state["devices_dir"]),
        ingest_rules=IngestRules.of_stack(local_stack.state),
    )
    result = summary.run()
    assert result.storm_faults == 200 and result.outbox_backlog == 0
    settle(local_stack, timeout=120)
    # Then each device has exactly one ticket for it, whatever its status by now: WIFI-DROP is
    # auto-diagnosed and remote-fixable, so an agent still connected when its reset_component
    # request arrives resolves its ticket (status "open" alone counted 199 of 200 once in six runs)
    per_device = {d.thing: tickets_of(local_stack, d.thing, "WIFI-DROP") for d in fleet}
    assert {thing: len(found) for thing, found in per_device.items() if len(found) != 1} == {}


def test_bad_messages_are_parked_and_good_ones_processed(local_stack: Stack) -> None:
    # Given a valid report between malformed and spoofed ones on the same device topic
    thing, other = DEVICES[3].thing, DEVICES[4].thing
    now = datetime.now(UTC).isoformat()

    def fault(fault_id: str, **extra: object) -> str:
        body = {"fault_id": fault_id, "code": "FAN-STALL", "occurred_at": now, "firmware": "1"}
        return json.dumps({**body, **extra})

    topic = f"dt/aftercare/{thing}/fault"
    messages = [
        {"topic": topic, "payload": "{broken", "qos": 1},
        {"topic": topic, "payload": fault("spoofed-0001", thing=other), "qos": 1},
        {"topic": topic, "payload": fault("valid-00001"), "qos": 1},
        {"topic": topic, "payload": fault("typo-000001", sevrity="major"), "qos": 1},
    ]
    # When they are published (and an IoT thing unknown to Aftercare's registry reports too)
    publish_as(local_stack.state, thing, messages)
    intruder = "dt/aftercare/intruder-01/fault"
    publish_as(
        local_stack.state, "intruder-01", [{"topic": intruder, "payload": fault("ghost-00001")}]
    )
    settle(local_stack)
    # Then the valid one opened a ticket and each bad one is parked with its reason
    assert len(tickets_of(local_stack, thing, "FAN-STALL")) == 1
    # (the stack is shared: other modules park messages of the same reasons, so each check
    # looks for this test's own message among them)
    parked: dict[str, list[dict[str, Any]]] = {}
    for item in local_stack.parked.list():
        parked.setdefault(item["reason"], []).append(item)
    assert {"malformed_json", "thing_mismatch", "unknown_field", "unknown_device"} <= set(parked)
    assert any(p["thing"] == thing for p in parked["thing_mismatch"])
    assert any("sevrity" in p["detail"] for p in parked["unknown_field"])
    assert any(p["payload"] == "{broken" for p in parked["malformed_json"])


def test_faults_raised_while_broker_is_down_arrive_once(local_stack: Stack, tmp_path: Path) -> None:
    # Given a connected device agent
    thing = DEVICES[5].thing
    agent = agent_for(local_stack, thing, tmp_path)
    # When the broker stops, the device raises 3 faults, and the broker comes back
    local_stack.broker.stop()
    codes = ["PSU-OVERVOLT", "FAN-STALL", "TEMP-HIGH"]
    reports = [agent.raise_fault(code) for code in codes]
    assert agent.backlog == 3
    local_stack.broker.start()
    assert agent.wait_drained(timeout=30)
    agent.stop(drain_timeout=10)
    settle(local_stack)
    # Then each fault produced exactly one ticket with exactly one occurrence
    for code, report in zip(codes, reports, strict=True):
        (ticket,) = tickets_of(local_stack, thing, code)
        assert ticket.occurrences == 1
        assert ticket.opened_by_fault == report.fault_id
