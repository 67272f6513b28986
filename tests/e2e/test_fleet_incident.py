"""A fault storm on the local stack becomes one fleet incident, and its fix campaign resolves it.

Every IC-300 of the seeded fleet (60 devices, 20 customers with 3 each) reports IO-MODULE-FAIL
within a second or so, through its own agent over Mosquitto. The policy (incidents.yaml: 20
devices in 10 minutes) opens one incident; the tickets counted before the threshold are linked
to it, the later ones join it as children: diagnostics sampled, I/O modules held only while the
stock keeps some free, one known-issue message per customer. Then an engineer resolves it with a
`reset_component` campaign: the API answers 202 at once (incident `mitigating`), the campaign
worker (IncidentCampaignFunction, from the campaign queue) sends the resets and resolves the
incident after its last page; the agents answer and their children resolve `fleet_fix`.

60 is the seeded fleet's largest single model; the stack applies the storm (60 tickets, the
incident, its links) in 17 s on a quiet machine and up to 41 s with other jobs on the same 2
cores (measured; the test prints it), under a minute; the whole test takes ~90 s with its
campaign.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from aftercare.adapters.diagnostics import DynamoDiagnosticsStore
from aftercare.adapters.incidents import DynamoIncidentStore
from aftercare.adapters.inventory import InventoryReader
from aftercare.domain.incidents import load_incident_policy
from aftercare.models.diagnostics import Purpose

from devices.agent import DeviceAgent
from infra.seeding import demo_devices
from tests.e2e.api_user import ApiUser
from tests.e2e.conftest import Stack, device_agent_config, settle, wait_for

CODE, MODEL, SKU = "IO-MODULE-FAIL", "IC-300", "IO-MOD-16DI"
FLEET = [d for d in demo_devices() if d.model == MODEL]


def start_agents(stack: Stack, tmp_path: Path) -> list[DeviceAgent]:
    def start(thing: str) -> DeviceAgent:
        config = device_agent_config(
            stack.state, thing, tmp_path / thing, remote_fixable_codes=frozenset({CODE})
        )
        agent = DeviceAgent(config)
        assert agent.start(connect_timeout=20), thing
        return agent

    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(pool.map(start, [d.thing for d in FLEET]))


def check_stock(stack: Stack) -> None:
    """Never oversold, never orphaned: per warehouse on_hand = available + held >= 0, and the
    held reservations of the SKU are exactly the held lines of their tickets."""
    reader = InventoryReader(
        table=stack.target.resource("InventoryTable"), ddb=stack.target.client("dynamodb")
    )
    for item in (i for i in reader.stock() if i["sku"] == SKU):
        assert item["available"] >= 0 and item["held"] >= 0, item
        assert item["on_hand"] == item["available"] + item["held"], item
        held = [
            r
            for r in reader.reservations()
            if r["sku"] == SKU and r["warehouse"] == item["warehouse"] and r["status"] == "held"
        ]
        assert len(held) == item["held"], (item, len(held))
    for res in (r for r in reader.reservations() if r["sku"] == SKU):
        ticket = stack.tickets.get_ticket(res["ticket_id"]).ticket
        assert ticket.parts[int(res["line_index"])].status == res["status"]


def test_a_storm_becomes_one_incident_with_bounded_work(local_stack: Stack, tmp_path: Path):
    policy = load_incident_policy()
    ddb = local_stack.target.client("dynamodb")
    incidents = DynamoIncidentStore(
        incidents_table=local_stack.target.resource("IncidentsTable"),
        tickets_table=local_stack.target.resource("TicketsTable"),
        policy=policy,
        ddb=ddb,
    )
    diagnostics = DynamoDiagnosticsStore(
        tickets_table=local_stack.target.resource("TicketsTable"),
        inventory_table=local_stack.target.resource("InventoryTable"),
        ddb=ddb,
    )
    known = {i.incident_id for i in incidents.list_incidents()}
    things = {d.thing for d in FLEET}
    since = datetime.now(UTC).isoformat()
    # Given the 60 IC-300 agents connected
    agents = start_agents(local_stack, tmp_path)
    try:
        # When each reports IO-MODULE-FAIL at once
        started = time.monotonic()
        for agent in agents:
            agent.raise_fault(CODE)
        settle(local_stack, timeout=120)

        def all_tickets() -> list | None:
            found = [
                t
                for d in FLEET
                for t in local_stack.tickets.list_tickets(thing=d.thing)
                if t.fault_code == CODE
            ]
            return found if len(found) == len(FLEET) else None

        tickets = wait_for(all_tickets, timeout=60, what="a ticket per device")
        applied_s = time.monotonic() - started
        print(f"storm of {len(FLEET)} devices applied in {applied_s:.1f} s")
        # Then exactly one incident opened for the model and code, with every ticket its child
        (incident,) = [
            i
            for i in incidents.list_incidents()
            if i.incident_id not in known and (i.model, i.fault_code) == (MODEL, CODE)
        ]
        shards = policy.detection.shards
        links = incidents.children(incident.incident_id, shards)
        assert sorted(link.thing for link in links) == sorted(things)
        tickets = all_tickets() or []
        assert {t.incident_id for t in tickets} == {incident.incident_id}
        stats = incidents.incident_stats(incident.incident_id, shards)
        assert stats.children == len(FLEET)
        assert policy.detection.threshold_devices <= stats.linked_before < len(FLEET)
        assert stats.firmware_versions and stats.regions and sum(stats.trend.values()) == 60

        # and auto-diagnostics were sampled: every ticket before the threshold, then the first
        # K and one in N of the children (counted from the stored diagnostics)
        def automatic() -> list | None:
            found = [
                r
                for t in tickets
                for r in diagnostics.for_ticket(t.ticket_id)
                if r.purpose is Purpose.AUTO
            ]
            return found if len(found) >= stats.diagnostics_sent else None

        auto = wait_for(automatic, timeout=60, what="the sampled auto-diagnostics")
        joined = stats.children - stats.linked_before
        bound = stats.linked_before + policy.while_open.diagnostics.first + shards + joined // 10
        assert len(auto) == stats.diagnostics_sent <= bound, (len(auto), stats)
        assert stats.diagnostics_skipped == joined - (stats.diagnostics_sent - stats.linked_before)
        assert stats.diagnostics_skipped > 0
        # and no child held a part the stock could not spare; the demand is on the incident
        child_holds = [
            p
            for t in tickets
            if t.ticket_id not in {lk.ticket_id for lk in links if lk.before_threshold}
            for p in t.parts
        ]
        assert len(child_holds) == stats.reservations_held
        assert stats.reservations_avoided + stats.reservations_held == joined
        assert sum(stats.backorder.values()) == stats.reservations_avoided
        check_stock(local_stack)

        # and the customers heard once per customer (20 of them), not once per ticket
        def messages_counted() -> object | None:
            now = incidents.incident_stats(incident.incident_id, shards)
            return now if now.messages_sent + now.messages_saved >= joined else None

        counted = wait_for(messages_counted, timeout=60, what="the notifier's counts")
        customers = {d.customer_id for d in FLEET}
        assert 1 <= counted.messages_sent <= len(customers)
        assert counted.messages_saved >= joined - len(customers)
        # and no healthy report was parked or dead-lettered
        # (the DeadLetterRecorder parks dead letters too)
        parked = [
            p
            for p in local_stack.parked.list()
            if str(p.get("thing", "")) in things and str(p.get("received_at", "")) >= since
        ]
        assert parked == []

        # When a customer asks for incidents, they are refused; an engineer sees this one
        customer = ApiUser(local_stack, local_stack.state["users"]["customer"])
        assert customer.call("GET", "/incidents")[0] == 403
        engineer = ApiUser(local_stack, local_stack.state["users"]["engineer"])
        listed = engineer.get("/incidents")
        assert incident.incident_id in {row["incident_id"] for row in listed}
        view = engineer.get(f"/incidents/{incident.incident_id}")
        assert view["stats"]["children"] == 60 and len(view["children"]) == 60
        active = [t for t in tickets if t.active]
        # When the engineer resolves it with a reset campaign to the affected devices
        path = f"/incidents/{incident.incident_id}/resolve"
        asked = time.monotonic()
        status, started = engineer.call("POST", path, {"fix": "reset_component"})
        answered_s = time.monotonic() - asked
        # Then the API answers at once: the incident mitigating, its campaign recorded and queued
        assert status == 202, started
        assert started["incident"]["status"] == "mitigating"
        assert started["campaign"]["started_by"].startswith("user:")
        print(f"resolve answered in {answered_s:.2f} s (campaign queued)")
        assert engineer.call("POST", path, {"fix": "x"})[0] == 422  # not a fix kind
        repeat = engineer.call("POST", path, {"fix": "reset_component"})
        assert repeat[0] == 409 and repeat[1]["reason"] in {"campaign_running", "already_resolved"}

        # and the campaign worker sends it and resolves the incident after the last page
        def resolved_view() -> dict | None:
            now = engineer.get(f"/incidents/{incident.incident_id}")
            return now if now["incident"]["status"] == "resolved" else None

        done = wait_for(resolved_view, timeout=120, what="the campaign worker to resolve it")
        campaign = done["campaign"]
        print(f"campaign done {time.monotonic() - asked:.1f} s after the resolve: {campaign}")
        walked = campaign["sent"] + campaign["not_sent"] + campaign["already_closed"]
        assert walked == len(FLEET) and campaign["sent"] >= 1 and campaign["finished_at"]
        # (the shared stack's 1 s pages: 20 children each, so the worker handed on through its
        # queue at least twice. 3 pages is the least, not the count: a page whose sends run past
        # twice its planned time ends early by design, the next starting after its last walked
        # child (unit-tested); on a loaded machine running the suite on 3 workers one did, and
        # the exact count failed with 4. `walked` above counts each child once whatever the pages)
        least_pages = -(-len(FLEET) // campaign["page_size"])
        assert least_pages > 1 and least_pages <= campaign["pages_done"] <= len(FLEET)
        assert incidents.active_incident(MODEL, CODE) is None
        # and every device that was sent the reset has its fleet-fix request on its ticket
        fixes = [
            r
            for t in active
            for r in diagnostics.for_ticket(t.ticket_id)
            if r.purpose is Purpose.FLEET_FIX
        ]
        assert len(fixes) == campaign["sent"] and len({r.thing for r in fixes}) == len(fixes)

        # Then every child the campaign reached resolves `fleet_fix`, its parts released
        def settled_children() -> list | None:
            now = all_tickets() or []
            return now if now and not any(t.active for t in now) else None

        final = wait_for(settled_children, timeout=90, what="children resolved by the campaign")
        fleet_fixed = [t for t in final if t.resolution and t.resolution.value == "fleet_fix"]
        assert fleet_fixed and len(fleet_fixed) <= campaign["sent"]
        assert all(p.status != "held" for t in fleet_fixed for p in t.parts)
        check_stock(local_stack)
        # and no campaign page was left behind or dead-lettered, no answer parked
        sqs = local_stack.target.client("sqs")
        for queue in ("CampaignQueue", "CampaignDeadLetterQueue"):
            attributes = sqs.get_queue_attributes(
                QueueUrl=local_stack.target.resource(queue),
                AttributeNames=["ApproximateNumberOfMessages"],
            )["Attributes"]
            assert attributes["ApproximateNumberOfMessages"] == "0", queue
        parked = [
            p
            for p in local_stack.parked.list()
            if str(p.get("thing", "")) in things and str(p.get("received_at", "")) >= since
        ]
        assert parked == []
    finally:
        for agent in agents:
            agent.stop(drain_timeout=2)
