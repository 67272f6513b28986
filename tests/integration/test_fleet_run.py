"""A small simulated fleet against a real Mosquitto: storms, outages and duplicates."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from devices.fleet import FleetProgress, FleetSimulator
from devices.scenario import OfflineEpisode, Scenario, Storm, make_devices
from tests.integration.mosquitto_fixture import MosquittoBroker, Recorder

pytestmark = pytest.mark.integration

CODES = {
    "CH-200": ["PSU-OVERVOLT", "FAN-STALL", "NET-DOWN"],
    "RT-10": ["NET-DOWN", "WIFI-WEAK"],
}


@pytest.mark.parametrize(
    ("per_process", "shards"), [(100, 1), (5, 3)], ids=["one-shard-in-a-thread", "three-processes"]
)
def test_every_fault_of_a_fleet_run_reaches_the_broker(
    mosquitto: MosquittoBroker, tmp_path: Path, per_process: int, shards: int
):
    # Given a subscriber to all faults and a scenario with a storm, an outage and duplicates
    recorder = Recorder(mosquitto.url, "fleet-probe", ["dt/aftercare/+/fault"]).start()
    scenario = Scenario(
        duration_s=6,
        fault_rate=6,
        duplicate_rate=0.3,
        storms=[Storm(code="NET-DOWN", at_s=2, device_share=0.5)],
        offline=[OfflineEpisode(at_s=1, duration_s=3, device_share=0.25, faults_per_device=2)],
        seed=3,
        drain_timeout_s=20,
    )
    progress: list[FleetProgress] = []
    simulator = FleetSimulator(
        make_devices(12, ["CH-200", "RT-10"], prefix="fleet"),
        scenario,
        mosquitto.url,
        tmp_path / "outboxes",
        progress.append,
        codes_by_model=CODES,
        max_devices_per_process=per_process,
    )
    # When the fleet runs
    summary = simulator.run()
    # Then every device connected, the scenario's events happened and every outbox drained
    assert summary.devices == summary.connected_at_start == 12
    assert summary.shards == shards
    assert summary.storm_faults == 6
    assert summary.offline_episodes == 3 and summary.offline_faults >= 6
    assert summary.duplicates_sent > 0
    assert summary.outbox_backlog == 0 and summary.publish_failures == 0
    assert summary.faults_delivered == summary.faults_raised
    assert sum(summary.per_code.values()) == summary.faults_raised
    # And the broker saw each fault once plus each duplicate, byte for byte the same report
    messages = recorder.take(summary.faults_raised + summary.duplicates_sent, timeout=20)
    assert recorder.quiet_for(1.0) == []
    recorder.stop()
    copies = Counter(m.payload for m in messages)
    assert len(copies) == summary.faults_raised
    assert sum(n - 1 for n in copies.values()) == summary.duplicates_sent
    # And each report was published on its own device's topic
    for message in messages:
        assert message.topic == f"dt/aftercare/{json.loads(message.payload)['thing']}/fault"
    # And progress was reported while it ran, ending drained
    assert progress and progress[-1].backlog == 0
