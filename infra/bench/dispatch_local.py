"""Incremental dispatch on the local stack (not a test): how long one new ticket waits for its
visit. Each round writes a P1 ticket that needs a visit into TicketsTable (as intake or
diagnostics would) and waits until the Dispatcher's decision is on it; the figure is the time
from that write to the decision being readable (stream poll + the Dispatcher's reads, scoring
and conditional booking + its ticket write), measured from outside.

`python -m infra.bench.dispatch_local [ROUNDS]` starts its own stack under a temporary
directory, adds `ENGINEERS` engineers in a region of its own, prints p50/p95/max and writes
`bench/dispatch_local.json`.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from aftercare.adapters.aws import to_item
from aftercare.adapters.field_directory import DynamoEngineerDirectory
from aftercare.adapters.ticket_items import ticket_item
from aftercare.adapters.ticket_reads import DynamoTicketReader
from aftercare.domain.tickets import Ticket, ticket_id_for
from aftercare.models.field import Engineer, EngineerKind, GeoPoint, Shift, Skill, Weekday
from aftercare.models.payloads import Severity
from aftercare.models.tickets import CustomerTier, Priority, TicketFlag, TicketStatus

from infra.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench/dispatch_local.json"
REGION = "eu-bench"
ENGINEERS = 10
ALL_DAY = {d: [Shift(start=clock(0), end=clock(23, 59))] for d in Weekday}
T = TypeVar("T")


def field_engineer(engineer_id: str, region: str, home: GeoPoint) -> Engineer:
    """An engineer who repairs anything, all day every day (scenarios independent of the hour)."""
    return Engineer(
        engineer_id=engineer_id,
        name=engineer_id,
        kind=EngineerKind.IN_HOUSE,
        skills=[Skill(model="*", category="*", level=3)],
        regions=[region],
        home=home,
        time_zone="UTC",
        working_hours=ALL_DAY,
    )


def visit_ticket(
    n: int, region: str, *, priority: Priority, now: datetime, **update: Any
) -> Ticket:
    """A ticket flagged for a visit, as diagnostics leave it."""
    thing = f"bench-{region}-{n}"
    fields: dict[str, Any] = {
        "ticket_id": ticket_id_for(thing, f"f-{n}-{now.timestamp()}"),
        "thing": thing,
        "serial": thing,
        "model": "AC-HP",
        "customer_id": f"c-{region}-{n}",
        "customer_tier": CustomerTier.STANDARD,
        "region": region,
        "fault_code": "FAN-STALL",
        "category": "thermal",
        "title_en": "Cooling fan stalled",
        "title_zh": "散热风扇停转",
        "unclassified": False,
        "severity": Severity.MAJOR,
        "priority": priority,
        "in_warranty": True,
        "status": TicketStatus.OPEN,
        "opened_at": now,
        "updated_at": now,
        "first_seen": now,
        "last_seen": now,
        "occurrences": 1,
        "firmware": "1.0.0",
        "sla_response_due": now + timedelta(hours=2),
        "sla_resolution_due": now + timedelta(hours=24),
        "catalog_version": "bench",
        "policy_version": "bench",
        "opened_by_fault": f"f-{n}",
        "flags": [TicketFlag.NEEDS_ONSITE_DISPATCH],
    }
    fields.update(update)
    return Ticket(**fields)


@dataclass
class FieldStack:
    """A running local stack's tables, for field scenarios."""

    state: dict[str, Any]
    ddb: Any

    @property
    def tickets_table(self) -> str:
        return str(self.state["resources"]["TicketsTable"])

    def directory(self) -> DynamoEngineerDirectory:
        return DynamoEngineerDirectory(table=self.state["resources"]["FieldTable"], ddb=self.ddb)

    def reader(self) -> DynamoTicketReader:
        return DynamoTicketReader(tickets_table=self.tickets_table, ddb=self.ddb)

    def put_ticket(self, ticket: Ticket) -> None:
        self.ddb.put_item(TableName=self.tickets_table, Item=to_item(ticket_item(ticket)))

    def decided(self, ticket_id: str) -> Ticket | None:
        ticket = self.reader().get_ticket(ticket_id).ticket
        return ticket if ticket.dispatch_state not in (None, "wanted") else None


def wait_for(probe: Callable[[], T | None], timeout: float, interval: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing after {timeout}s")
        time.sleep(interval)


def moto_ddb(state: dict[str, Any]) -> Any:
    import boto3

    endpoints = state.get("aws_service_endpoints") or {}
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoints.get("dynamodb", state["aws_endpoint_url"]),
        region_name=state["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
    )


def measure(field: FieldStack, rounds: int) -> list[float]:
    directory = field.directory()
    for n in range(ENGINEERS):
        home = GeoPoint(lat=0.01 * n, lon=0.01 * n)
        directory.put_engineer(field_engineer(f"E-bench{n:02d}", REGION, home))
    latencies = []
    for n in range(rounds):
        ticket = visit_ticket(n, REGION, priority=Priority.P1, now=datetime.now(UTC))
        began = time.perf_counter()
        field.put_ticket(ticket)
        decided = wait_for(partial(field.decided, ticket.ticket_id), timeout=60)
        latencies.append(time.perf_counter() - began)
        assert decided.dispatch_state == "booked", decided.dispatch_state
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as workdir:
        stack = LocalStack(ROOT, Path(workdir) / "state")
        try:
            state = stack.start()
            field = FieldStack(state, moto_ddb(state))
            measure(field, 3)  # warm-up: cold starts and first reads are not the figure
            latencies = measure(field, rounds)
        finally:
            stack.stop()
    row = {
        "rounds": rounds,
        "engineers_in_region": ENGINEERS,
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(" | ".join(f"{k}={v}" for k, v in row.items()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
