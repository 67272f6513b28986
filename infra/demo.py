"""`aftercare demo`: the main job. Local stack + a simulated fleet, then a summary.

Phases: start the stack; play a fleet scenario (random faults, redelivered duplicates, a storm of
one code across many devices, devices going offline); publish junk (malformed, spoofed, unknown
device, unknown field, oversized, stale) through the same broker, each as the device whose
topic it uses (the broker lets a device publish only as itself); resolve some tickets and
raise their faults again (repeats); wait until the queues are empty; summarise from the stack's
own tables so the figures are what the system recorded, not what the simulator hoped.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import paho.mqtt.client as mqtt
import typer
from aftercare.adapters.inventory import InventoryReader
from aftercare.domain.lifecycle import change_status
from aftercare.domain.rules import load_catalog
from aftercare.models.tickets import TicketStatus
from paho.mqtt.enums import CallbackAPIVersion

from devices.agent import DeviceAgent
from devices.config import AgentConfig, IngestRules, credential_files, parse_broker_url
from devices.fleet import FleetProgress, FleetSimulator, FleetSummary
from devices.scenario import DeviceSpec, OfflineEpisode, Scenario, Storm
from infra.cli_output import print_summary
from infra.demo_field import field_phase
from infra.diag_summary import diagnostics_summary
from infra.incident_summary import incident_summary
from infra.kpi_summary import kpi_summary
from infra.local.basic_ingest import ingest_rules
from infra.local.broker_auth import issue_device_credentials
from infra.local.stack import LocalStack
from infra.notification_summary import notification_summary
from infra.stores import parked_store_of, registry_of, store_of
from infra.target import Target, default_state_dir, project_root

log = logging.getLogger("aftercare.demo")
QUIET_POLLS = 3
# Shorter windows than production so digests, surveys and sweeps happen within the demo.
DEMO_PARAMETERS = {
    "DigestWindowSeconds": "10",
    "SurveyDelaySeconds": "5",
    "DiagnosticsTimeoutSeconds": "30",
}
# Sweeps faster than EventBridge's one-minute minimum: a local-only override, not a parameter.
DEMO_SCHEDULES = {"NotificationSchedulerFunction": 2.0, "DiagnosticsSweeperFunction": 5.0}


@dataclass(frozen=True)
class DemoRun:
    """How big and how long a demo is, and where its stack keeps its state."""

    devices: int = 120
    duration: float = 25.0
    repeats: int = 8
    seed: int = 7
    burst: int = 1
    state_dir: Path | None = None
    keep: bool = False


@dataclass
class Junk:
    """Invalid messages published on purpose; each must end up parked with its reason."""

    sent: Counter[str] = field(default_factory=Counter)


def stack_target(state: dict[str, Any]) -> Target:
    return Target(
        resources=dict(state["resources"]),
        endpoint_url=state["aws_endpoint_url"],
        region=state["region"],
        state=state,
    )


def registry(target: Target, count: int) -> list[DeviceSpec]:
    devices = registry_of(target).list_devices()[:count]
    return [DeviceSpec(thing=d["thing"], model=d["model"]) for d in devices]


def demo_scenario(duration_s: float, seed: int) -> Scenario:
    return Scenario(
        duration_s=duration_s,
        fault_rate=3.0,
        duplicate_rate=0.15,
        # half the fleet's sensors drift after a firmware update (a component reset clears it):
        # ~30 devices of each model the fleet has (AC-HP, EV-CH for the first 120) cross the
        # incident threshold (20 per model and code), so each model's storm is one incident
        storms=[Storm(code="SENSOR-DRIFT", at_s=duration_s * 0.4, device_share=0.5)],
        offline=[
            OfflineEpisode(
                at_s=duration_s * 0.15,
                duration_s=duration_s * 0.3,
                device_share=0.05,
                faults_per_device=2,
            )
        ],
        seed=seed,
        connect_timeout_s=30,
        drain_timeout_s=30,
        # a week of buffered daily telemetry at start, then live reports; a tenth of the devices
        # degrade (filter nearly spent, temperature climbing), so the run shows maintenance
        # advice and preventive tickets (`aftercare devices health THING`)
        telemetry_every_s=duration_s / 3,
        telemetry_history_days=7,
        degrading_share=0.1,
    )


# --------------------------------------------------------------------------- junk


def junk_messages(things: list[str], now: datetime) -> list[tuple[str, str, bytes]]:
    """(expected reason, topic, payload) for each kind of bad input."""

    def fault(**extra: Any) -> bytes:
        body = {
            "fault_id": f"junk-{random.getrandbits(40):010x}",
            "code": "FAN-STALL",
            "occurred_at": now.isoformat(),
            "firmware": "1.0.0",
            **extra,
        }
        return json.dumps(body).encode()

    a, b = things[0], things[1]
    topic = f"dt/aftercare/{a}/fault"
    return [
        ("malformed_json", topic, b'{"fault_id": "broken'),
        ("malformed_json", topic, b"not json at all"),
        ("thing_mismatch", topic, fault(thing=b)),
        ("thing_mismatch", topic, fault(thing=b)),
        ("unknown_device", "dt/aftercare/ghost-0001/fault", fault()),
        ("unknown_field", topic, fault(colour="red")),
        ("schema_violation", topic, fault(severity="apocalyptic")),
        (
            "payload_too_large",
            topic,
            fault(message="x" * 1000, readings={"x": "y" * 200}) + b" " * 17_000,
        ),
        ("stale_report", topic, fault(occurred_at=(now - timedelta(days=45)).isoformat())),
    ]


def connect_as(mqtt_url: str, state_dir: Path, thing: str) -> mqtt.Client:
    """A started MQTT client connected as local device `thing`, with its own certificate.

    A thing without credentials gets them (the demo's "unknown device" is one registered with
    the IoT registry but not with Aftercare's device table).
    """
    address = parse_broker_url(mqtt_url)
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=thing)
    client.max_inflight_messages_set(200)
    if address.tls:
        issue_device_credentials(state_dir, thing).configure(client)
    client.connect(address.host, address.port)
    client.loop_start()
    return client


def disconnect_all(clients: dict[str, mqtt.Client]) -> None:
    for client in clients.values():
        client.disconnect()
        client.loop_stop()


def publish_junk(mqtt_url: str, things: list[str], state_dir: Path) -> Junk:
    junk = Junk()
    clients: dict[str, mqtt.Client] = {}
    try:
        for reason, topic, payload in junk_messages(things, datetime.now(UTC)):
            thing = topic.split("/")[2]
            if thing not in clients:
                clients[thing] = connect_as(mqtt_url, state_dir, thing)
            clients[thing].publish(topic, payload, qos=1).wait_for_publish(timeout=10)
            junk.sent[reason] += 1
    finally:
        disconnect_all(clients)
    return junk


# --------------------------------------------------------------------------- waiting


def queue_depth(target: Target, logical_id: str) -> int:
    attributes = target.client("sqs").get_queue_attributes(
        QueueUrl=target.resource(logical_id),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def wait_quiet(target: Target, timeout_s: float = 120.0) -> float:
    """Wait until the fault queues are empty for a few polls in a row; returns when that was."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline:
        depth = queue_depth(target, "FaultQueue") + queue_depth(target, "FaultDeadLetterQueue")
        quiet = quiet + 1 if depth == 0 else 0
        if quiet >= QUIET_POLLS:
            return time.monotonic()
        time.sleep(1.0)
    raise TimeoutError(f"fault queues still busy after {timeout_s:.0f}s")


def device_ingest(target: Target) -> IngestRules | None:
    """The stack's rules the simulated devices report to by Basic Ingest (as provisioned
    devices do; the burst below and the junk still go through the message broker)."""
    rules = ingest_rules(target.resources)
    return IngestRules.model_validate(rules) if rules else None


# --------------------------------------------------------------------------- burst


def publish_burst(
    mqtt_url: str, devices: list[DeviceSpec], per_device: int, state_dir: Path
) -> int:
    """Publish valid new faults as fast as the broker takes them (a throughput probe)."""
    catalog = load_catalog()
    clients = {d.thing: connect_as(mqtt_url, state_dir, d.thing) for d in devices}
    sent = []
    try:
        for n in range(per_device):
            for device in devices:
                code = catalog.codes_for_model(device.model)[n % 3]
                report = {
                    "fault_id": f"burst-{n}-{random.getrandbits(48):012x}",
                    "code": code,
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "firmware": "1.0.0",
                    "readings": {"burst": n},
                }
                topic = f"dt/aftercare/{device.thing}/fault"
                sent.append(clients[device.thing].publish(topic, json.dumps(report), qos=1))
        for info in sent:
            info.wait_for_publish(timeout=30)
    finally:
        disconnect_all(clients)
    return len(sent)


# --------------------------------------------------------------------------- repeats


def resolve_and_recur(
    target: Target, mqtt_url: str, outbox_dir: Path, count: int, state_dir: Path
) -> tuple[int, int]:
    """Resolve `count` open tickets, then raise their faults again: each must open a repeat."""
    store = store_of(target)
    open_tickets = [t for t in store.list_tickets(status="open") if not t.unclassified][:count]
    now = datetime.now(UTC)
    for ticket in open_tickets:
        change_status(
            store,
            ticket.ticket_id,
            TicketStatus.RESOLVED,
            actor="demo-engineer",
            reason="repaired on site",
            now=now,
        )
    raised = 0
    for ticket in open_tickets:
        agent = DeviceAgent(
            AgentConfig(
                thing=ticket.thing,
                broker_url=mqtt_url,
                outbox_dir=outbox_dir,
                ingest_rules=device_ingest(target),
                **credential_files(issue_device_credentials(state_dir, ticket.thing).directory),
            )
        )
        agent.start(connect_timeout=10)
        agent.raise_fault(ticket.fault_code, readings={"recurrence": True})
        agent.stop(drain_timeout=10)
        raised += 1
    return len(open_tickets), raised


# --------------------------------------------------------------------------- summary


def progress_line(p: FleetProgress) -> None:
    print(
        f"  [{p.elapsed_s:5.1f}/{p.duration_s:.0f}s] {p.phase:<9} faults {p.faults_raised:4d}"
        f"  dups {p.duplicates_sent:3d}  connected {p.connected_devices:3d}"
        f"  offline {p.offline_devices:2d}  outbox {p.backlog:3d}",
        file=sys.stderr,
        flush=True,
    )


def summarise(
    target: Target,
    fleet: FleetSummary,
    junk: Junk,
    extra_faults: dict[str, int],
    timing: dict[str, float],
) -> dict[str, Any]:
    tickets = store_of(target).list_tickets()
    parked = parked_store_of(target).list()
    incidents = incident_summary(target)
    accepted = sum(t.occurrences for t in tickets)
    parts = parts_summary(target)
    rejects = Counter(str(p["reason"]) for p in parked)
    # Diagnostics answers are parked too (late, spoofed, for a cancelled request): they are not
    # among the faults published, so they do not count against them.
    fault_rejects = sum(1 for p in parked if not str(p["source"]).startswith("diagnostics"))
    published = fleet.faults_raised + fleet.duplicates_sent + sum(junk.sent.values())
    published += sum(extra_faults.values())
    duplicates_absorbed = published - accepted - fault_rejects
    return {
        "startup_seconds": timing["startup"],
        "devices": fleet.devices,
        "faults_sent": fleet.faults_raised + sum(extra_faults.values()),
        "duplicate_deliveries_sent": fleet.duplicates_sent,
        "invalid_messages_sent": dict(junk.sent),
        "messages_published": published,
        "tickets_opened": len(tickets),
        "occurrences_accepted": accepted,
        "correlated_occurrences": accepted - len(tickets),
        "duplicates_absorbed": duplicates_absorbed,
        "repeat_tickets": sum(1 for t in tickets if t.repeat_of),
        "unclassified_tickets": sum(1 for t in tickets if t.unclassified),
        "tickets_by_priority": dict(sorted(Counter(t.priority for t in tickets).items())),
        "tickets_by_status": dict(sorted(Counter(t.status.value for t in tickets).items())),
        "rejected_by_reason": dict(sorted(rejects.items())),
        **parts,
        "diagnostics": diagnostics_summary(target),
        "notifications": notification_summary(target),
        "kpis": kpi_summary(target),
        "storm_faults": fleet.storm_faults,
        "fleet_incidents": len(incidents),
        "incident_children": sum(i["children"] for i in incidents),
        "incident_messages_saved": sum(i["messages_saved"] for i in incidents),
        "incident_reservations_avoided": sum(i["reservations_avoided"] for i in incidents),
        "incident_diagnostics_skipped": sum(i["diagnostics_skipped"] for i in incidents),
        "incidents": incidents,
        "offline_faults_delivered_after_reconnect": fleet.offline_faults,
        "outbox_backlog_at_end": fleet.outbox_backlog,
        "fleet_seconds": timing["fleet"],
        "burst_faults": extra_faults["burst"],
        "burst_seconds": round(timing["burst"], 2),
        "faults_per_second": round(extra_faults["burst"] / timing["burst"], 1),
    }


def parts_summary(target: Target) -> dict[str, Any]:
    reader = InventoryReader(table=target.resource("InventoryTable"), ddb=target.client("dynamodb"))
    lines = Counter(str(r["status"]) for r in reader.reservations())
    return {
        "parts_lines_by_status": dict(sorted(lines.items())),
        "low_stock_events": len(reader.low_stock_events()),
    }


# --------------------------------------------------------------------------- entry point


def run_demo(args: DemoRun) -> int:
    # Here, not when the parser is built: every other command configures its own logging.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    state_dir: Path = args.state_dir or default_state_dir()
    stack = LocalStack(
        project_root(), state_dir, param_overrides=DEMO_PARAMETERS, schedule_seconds=DEMO_SCHEDULES
    )
    begun = time.monotonic()
    state = stack.start()
    try:
        startup = round(time.monotonic() - begun, 2)
        print(f"local stack up in {startup}s; state in {state_dir / 'local.json'}")
        summary = _play(stack_target(state), state["mqtt_url"], state_dir, args, startup)
        print_summary("=== Aftercare demo summary ===", summary)
        (state_dir / "demo-summary.json").write_text(json.dumps(summary, indent=2))
        if args.keep:
            print("stack kept running (Ctrl-C to stop); try `aftercare tickets list`")
            stack.wait()
    finally:
        stack.stop()
    lost = summary["outbox_backlog_at_end"]
    return 0 if lost == 0 and summary["duplicates_absorbed"] >= 0 else 1


def _play(
    target: Target, mqtt_url: str, state_dir: Path, args: DemoRun, startup: float
) -> dict[str, Any]:
    catalog = load_catalog()
    devices = registry(target, args.devices)
    models = {d.model for d in devices}
    simulator = FleetSimulator(
        devices,
        demo_scenario(args.duration, args.seed),
        mqtt_url,
        Path(tempfile.mkdtemp(prefix="aftercare-fleet-")),
        progress_line,
        codes_by_model={m: catalog.codes_for_model(m) for m in models},
        remote_fixable_codes=frozenset(c for c, e in catalog.codes.items() if e.remote_fixable),
        credentials_dir=state_dir / "devices",
        ingest_rules=device_ingest(target),
    )
    print(f"fleet: {len(devices)} devices for {args.duration:.0f}s (Ctrl-C ends early)")
    started = time.monotonic()
    junk = publish_junk(mqtt_url, [d.thing for d in devices], state_dir)
    fleet = simulator.run()
    fleet_done = time.monotonic()
    wait_quiet(target)
    resolved, raised = resolve_and_recur(
        target,
        mqtt_url,
        Path(tempfile.mkdtemp(prefix="aftercare-repeat-")),
        args.repeats,
        state_dir,
    )
    print(f"resolved {resolved} tickets and raised their faults again")
    wait_quiet(target)
    print(f"burst: {args.burst} new faults per device, as fast as the broker takes them")
    burst_started = time.monotonic()
    burst = publish_burst(mqtt_url, devices, args.burst, state_dir)
    burst_done = wait_quiet(target, timeout_s=300)
    print("field: visits booked, engineers work through their jobs, devices verify the fixes")
    state = json.loads((state_dir / "local.json").read_text(encoding="utf-8"))
    field = field_phase(target, state, state_dir, Path(tempfile.mkdtemp(prefix="aftercare-field-")))
    print("letting digests, surveys and diagnostics sweeps go out")
    time.sleep(35)
    timing = {
        "startup": startup,
        "fleet": round(fleet_done - started, 1),
        "burst": max(burst_done - burst_started, 0.001),
    }
    summary = summarise(target, fleet, junk, {"repeats": raised, "burst": burst}, timing)
    return summary | {"field": field}


def demo(
    *,
    devices: int = DemoRun.devices,
    duration: Annotated[float, typer.Option(help="fleet scenario seconds")] = DemoRun.duration,
    repeats: Annotated[int, typer.Option(help="tickets to resolve and recur")] = DemoRun.repeats,
    seed: int = DemoRun.seed,
    burst: Annotated[int, typer.Option(help="burst faults per device")] = DemoRun.burst,
    state_dir: Annotated[Path | None, typer.Option(show_default=False)] = None,
    keep: Annotated[bool, typer.Option("--keep", help="keep the stack up afterwards")] = False,
) -> int:
    """Local stack + simulated fleet, then a summary."""
    return run_demo(DemoRun(devices, duration, repeats, seed, burst, state_dir, keep))
