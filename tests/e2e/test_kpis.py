"""KPIs end to end: faults over MQTT open tickets, and the manager's `aftercare kpis --json`
(through GET /kpis) counts them, with their response times, in total and by region."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from infra.cli import main as cli_main
from infra.seeding import demo_devices
from tests.e2e.conftest import Stack, publish_as, settle, wait_for

CODE = "TEMP-HIGH"  # auto-diagnosed: the diagnostics request is the first response


def kpis(state_dir: list[str], capsys: pytest.CaptureFixture[str], *extra: str) -> Any:
    today = datetime.now(UTC).date().isoformat()
    code = cli_main(["kpis", "--json", "--from", today, "--to", today, *extra, *state_dir])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


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
    def counted() -> dict[str, Any] | None:
        now_kpis = kpis(state_dir, capsys)["kpis"]
        enough = now_kpis["opened"] >= before["opened"] + len(devices)
        return now_kpis if enough and now_kpis["responded"] > before["responded"] else None

    after = wait_for(counted, timeout=90, interval=1.0, what="the new tickets in the KPIs")
    # Then the tickets are counted as opened, with response times from the histogram
    assert after["response_mean_min"] is not None and after["response_median_min"] is not None
    assert after["backlog"]["total"] >= 1
    # And by region, each device's region has its own group
    by_region = kpis(state_dir, capsys, "--by", "region")
    regions = {g["group"]["region"]: g["kpis"]["opened"] for g in by_region}
    assert all(regions.get(d.region, 0) >= 1 for d in devices)
    (local_stack.stack.state_dir / "session.json").unlink()
