"""KPIs end to end: faults over MQTT open tickets, and the manager's `aftercare kpis --json`
(through GET /kpis) counts them, with their response times, in total and by region."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from infra.cli import main as cli_main
from infra.cli_session import authenticate
from infra.local.provision_api import LOCAL_PASSWORD
from infra.seeding import demo_devices
from tests.e2e.conftest import Stack, publish_as, settle, wait_for

CODE = "TEMP-HIGH"


def kpis(state_dir: list[str], capsys: pytest.CaptureFixture[str], *extra: str) -> Any:
    today = datetime.now(UTC).date().isoformat()
    code = cli_main(["kpis", "--json", "--from", today, "--to", today, *extra, *state_dir])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def api_get(stack: Stack, user: str, path: str) -> tuple[int, Any]:
    """GET `path` through the local API gateway as the seeded user `user`."""
    token = authenticate(stack.target, user, LOCAL_PASSWORD)["id_token"]
    request = urllib.request.Request(
        f"{stack.state['api_url']}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def open_ticket(stack: Stack, thing: str) -> str | None:
    found = [t for t in stack.tickets.list_tickets(status="open") if t.thing == thing]
    return next((t.ticket_id for t in found if t.fault_code == CODE), None)


def test_faults_over_mqtt_show_in_the_kpis(local_stack: Stack, capsys) -> None:
    state_dir = ["--state-dir", str(local_stack.stack.state_dir)]
    assert cli_main(["login", "--user", "mgr-grace", *state_dir]) == 0
    capsys.readouterr()
    before = kpis(state_dir, capsys)["kpis"]
    devices = [d for d in demo_devices() if d.model in ("AC-HP", "RT-X", "IC-300")][-3:]
    # Given three devices that each report an internal temperature fault over MQTT
    now = datetime.now(UTC).isoformat()
    for device in devices:
        body = {"fault_id": f"kpi-{uuid.uuid4().hex[:12]}", "code": CODE, "occurred_at": now}
        payload = json.dumps(body | {"firmware": "1"})
        topic = f"dt/aftercare/{device.thing}/fault"
        publish_as(
            local_stack.state, device.thing, [{"topic": topic, "payload": payload, "qos": 1}]
        )
    settle(local_stack)

    # When the manager reads today's KPIs
    def grown(key: str, by: int) -> dict[str, Any] | None:
        now_kpis = kpis(state_dir, capsys)["kpis"]
        return now_kpis if now_kpis[key] >= before[key] + by else None

    opened = wait_for(lambda: grown("opened", len(devices)), timeout=90, interval=1.0)
    # Then the new tickets are counted as opened, and are in the backlog
    assert opened["backlog"]["total"] >= len(devices)
    # And once an engineer resolves one (its first move out of `open`: the first response)
    ticket = wait_for(lambda: open_ticket(local_stack, devices[0].thing), timeout=30)
    assert (
        cli_main(["tickets", "set-status", ticket, "resolved", "--reason", "e2e", *state_dir]) == 0
    )
    capsys.readouterr()
    after = wait_for(lambda: grown("resolved", 1), timeout=90, interval=1.0)
    # Then it is counted as responded and resolved, with times from the histograms
    assert after["responded"] >= before["responded"] + 1
    assert after["response_median_min"] is not None and after["resolve_median_min"] is not None
    assert after["sla_response_compliance"] is not None and after["remote_fix_ratio"] is not None
    # And by region, each device's region has its own group
    by_region = kpis(state_dir, capsys, "--by", "region")
    regions = {g["group"]["region"]: g["kpis"]["opened"] for g in by_region}
    assert all(regions.get(d.region, 0) >= 1 for d in devices)
    (local_stack.stack.state_dir / "session.json").unlink()


def test_get_kpis_answers_each_role_as_documented(local_stack: Stack) -> None:
    # Given the seeded manager, engineer and customer, When each reads GET /kpis
    status, total = api_get(local_stack, "mgr-grace", "/kpis")
    _, mine = api_get(local_stack, "eng-ada", "/kpis")
    forbidden, _ = api_get(local_stack, "eng-ada", "/kpis?by=region")
    customer, _ = api_get(local_stack, "cust-0001", "/kpis")
    too_long, body = api_get(local_stack, "mgr-grace", "/kpis?from=2026-01-01&to=2026-06-30")
    # Then the manager gets the total, the engineer their own figures, the customer 403
    assert status == 200 and total["group"] is None and "csat" in total["kpis"]
    assert mine["group"] == {"engineer": "E-ada"} and forbidden == 403 and customer == 403
    # And a range over 92 days is 422 invalid_range
    assert (too_long, body["reason"]) == (422, "invalid_range")
