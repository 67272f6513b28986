"""Two codes of one grouped category on the local stack make one fleet incident.

incidents.yaml groups the `power` category: 24 of the seeded IC-300s report, 12 PSU-OVERVOLT
and 12 PSU-UNDERVOLT, through their own agents over Mosquitto. Neither code alone reaches the
20-device threshold; counted on the category's counter together they do: one incident opens,
records the category and the codes it covers, and every ticket of both codes is its child.
Resolving it removes every covered code's pointer, and its campaign settles the children.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aftercare.adapters.incidents import DynamoIncidentStore
from aftercare.domain.incidents import load_incident_policy

from devices.agent import DeviceAgent
from infra.seeding import demo_devices
from tests.e2e.api_user import ApiUser
from tests.e2e.conftest import Stack, device_agent_config, settle, wait_for

MODEL = "IC-300"
CODES = ("PSU-OVERVOLT", "PSU-UNDERVOLT")
FLEET = [d for d in demo_devices() if d.model == MODEL][:24]


def start_agents(stack: Stack, tmp_path: Path) -> list[DeviceAgent]:
    def start(thing: str) -> DeviceAgent:
        config = device_agent_config(
            stack.state, thing, tmp_path / thing, remote_fixable_codes=frozenset(CODES)
        )
        agent = DeviceAgent(config)
        assert agent.start(connect_timeout=20), thing
        return agent

    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(pool.map(start, [d.thing for d in FLEET]))


def test_two_codes_of_a_grouped_category_make_one_incident(local_stack: Stack, tmp_path: Path):
    policy = load_incident_policy()
    assert "power" in policy.detection.group_by_category  # the shipped grouping
    incidents = DynamoIncidentStore(
        incidents_table=local_stack.target.resource("IncidentsTable"),
        tickets_table=local_stack.target.resource("TicketsTable"),
        policy=policy,
        ddb=local_stack.target.client("dynamodb"),
    )
    known = {i.incident_id for i in incidents.list_incidents()}
    # Given 24 IC-300 agents connected
    agents = start_agents(local_stack, tmp_path)
    try:
        # When half report over-voltage and half under-voltage at once
        for n, agent in enumerate(agents):
            agent.raise_fault(CODES[n % 2])
        settle(local_stack, timeout=120)

        def power_tickets() -> list | None:
            found = [
                t
                for d in FLEET
                for t in local_stack.tickets.list_tickets(thing=d.thing)
                if t.fault_code in CODES and t.active
            ]
            return found if len(found) == len(FLEET) else None

        tickets = wait_for(power_tickets, timeout=60, what="a power ticket per device")
        # Then one incident opened for the model's power category, covering both codes
        (incident,) = [
            i
            for i in incidents.list_incidents()
            if i.incident_id not in known and i.model == MODEL and i.category == "power"
        ]
        assert set(CODES) <= set(incident.codes)
        # and every ticket of either code is its child
        tickets = power_tickets() or tickets
        assert {t.incident_id for t in tickets} == {incident.incident_id}
        links = incidents.children(incident.incident_id, policy.detection.shards)
        assert sorted(link.thing for link in links) == sorted(d.thing for d in FLEET)
        for code in CODES:
            assert incidents.active_incident(MODEL, code) == incident.incident_id
        # and an engineer sees the codes it covers
        engineer = ApiUser(local_stack, local_stack.state["users"]["engineer"])
        listed = {row["incident_id"]: row for row in engineer.get("/incidents")}
        assert listed[incident.incident_id]["category"] == "power"
        assert set(CODES) <= set(listed[incident.incident_id]["codes"])
        # When the engineer resolves it
        status, resolved = engineer.call(
            "POST", f"/incidents/{incident.incident_id}/resolve", {"fix": "reset_component"}
        )
        # Then its campaign is queued (202, mitigating), and once the worker has sent it the
        # incident is resolved and no covered code still points at it
        assert status == 202, resolved
        assert resolved["incident"]["status"] == "mitigating"

        def resolved_incident() -> bool:
            found = incidents.get_incident(incident.incident_id)
            return found is not None and found.status.value == "resolved"

        wait_for(resolved_incident, timeout=90, what="the campaign resolved the incident")
        for code in incident.codes:
            assert incidents.active_incident(MODEL, code) is None

        # and the reset campaign settles every child (the stack is left as it was found)
        def settled() -> bool:
            return all(
                not t.active
                for d in FLEET
                for t in local_stack.tickets.list_tickets(thing=d.thing)
                if t.fault_code in CODES
            )

        wait_for(settled, timeout=90, what="children settled by the campaign")
    finally:
        for agent in agents:
            agent.stop(drain_timeout=2)
