"""Booking on a running local stack: how long a customer waits for offered slots and for a
booking, and how long a contested slot takes to refuse.

    aftercare local up &          # then
    python -m infra.bench.booking [--tickets 40] [--state-dir .aftercare]

Writes N open tickets (eu-west, RT-X) through the ticket store's item mapping, then as the
manager `mgr-grace` (staff act for any ticket): GET slots and POST the first slot for each
ticket, one after another; then re-POSTs every booked slot from another ticket (each a
409 slot_taken). Prints p50/p95/max in milliseconds per operation. Not a test: figures depend
on the machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from statistics import quantiles
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import boto3
from aftercare.adapters.aws import to_item
from aftercare.adapters.ticket_items import ticket_item
from aftercare.domain.tickets import Ticket

from infra.local.provision_api import LOCAL_PASSWORD


def _client(state: dict[str, Any], service: str) -> Any:
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=state["aws_endpoint_url"],
        region_name=state["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
    )


def _token(state: dict[str, Any], user: str) -> str:
    answer = _client(state, "cognito-idp").initiate_auth(
        ClientId=state["resources"]["ServiceUserPoolClient"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": user, "PASSWORD": LOCAL_PASSWORD},
    )
    return str(answer["AuthenticationResult"]["IdToken"])


def _call(
    state: dict[str, Any], token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any, float]:
    request = Request(  # noqa: S310 - the URL comes from the local stack's state file
        state["api_url"] + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    try:
        with urlopen(request, timeout=60) as response:  # noqa: S310
            status, answer = response.status, json.loads(response.read() or b"null")
    except HTTPError as exc:
        status, answer = exc.code, json.loads(exc.read() or b"null")
    return status, answer, (time.perf_counter() - started) * 1000


def _tickets(state: dict[str, Any], count: int, run: str) -> list[str]:
    now = time.time()
    ddb = _client(state, "dynamodb")
    ids = []
    for n in range(count):
        ticket = Ticket.model_validate(
            {
                "ticket_id": f"T-BENCH{run}{n:03d}", "thing": f"rt-x-bench{n:03d}", "serial": "B",
                "model": "RT-X", "customer_id": "c-0001", "customer_tier": "standard",
                "region": "eu-west", "fault_code": "WIFI-DROP", "category": "connectivity",
                "title_en": "w", "title_zh": "w", "unclassified": False, "severity": "minor",
                "priority": "P3", "in_warranty": True, "status": "open",
                "opened_at": now, "updated_at": now, "first_seen": now, "last_seen": now,
                "occurrences": 1, "firmware": "1", "sla_response_due": now + 86400,
                "sla_resolution_due": now + 259200, "catalog_version": "b",
                "policy_version": "b", "opened_by_fault": "bench",
            }
        )  # fmt: skip
        ddb.put_item(
            TableName=state["resources"]["TicketsTable"], Item=to_item(ticket_item(ticket))
        )
        ids.append(ticket.ticket_id)
    return ids


def _summary(name: str, samples: list[float]) -> str:
    cuts = quantiles(samples, n=20, method="inclusive")
    return (
        f"{name:<28} n={len(samples):<4} p50={cuts[9]:7.1f}  p95={cuts[18]:7.1f}  "
        f"max={max(samples):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--tickets", type=int, default=40)
    parser.add_argument("--state-dir", type=Path, default=Path(".aftercare"))
    args = parser.parse_args()
    state = json.loads((args.state_dir / "local.json").read_text(encoding="utf-8"))
    token = _token(state, "mgr-grace")
    tickets = _tickets(state, args.tickets, str(int(time.time()) % 100000))
    offers, books, refusals, booked = [], [], [], []
    for ticket in tickets:
        status, slots, ms = _call(state, token, "GET", f"/tickets/{ticket}/slots")
        offers.append(ms)
        if status != 200 or not slots:
            raise SystemExit(f"{ticket}: no slots ({status} {slots})")
        status, booking, ms = _call(
            state, token, "POST", f"/tickets/{ticket}/booking", {"slot_id": slots[0]["slot_id"]}
        )
        books.append(ms)
        if status != 201:
            raise SystemExit(f"{ticket}: booking {status} {booking}")
        booked.append(slots[0]["slot_id"])
    extra = _tickets(state, len(booked), "X" + str(int(time.time()) % 10000))
    for ticket, slot in zip(extra, booked, strict=True):
        status, answer, ms = _call(
            state, token, "POST", f"/tickets/{ticket}/booking", {"slot_id": slot}
        )
        if status != 409 or answer["reason"] != "slot_taken":
            raise SystemExit(f"double booking? {slot} for {ticket}: {status} {answer}")
        refusals.append(ms)
    print(_summary("GET slots (8 offers, held)", offers))
    print(_summary("POST booking -> 201", books))
    print(_summary("POST taken slot -> 409", refusals))


if __name__ == "__main__":
    main()
