"""What an acknowledged QoS 1 message is worth when the local stack's broker crashes.

The local stack's Mosquitto (configured by `infra.local.stack_broker.mosquitto_config`) holds the
messages queued for the rule bridge's persistent session while the bridge lags or is down. These
tests SIGKILL that broker right after it acknowledged a burst and count what the bridge's session
receives once the broker is back.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from infra.local.stack_broker import mosquitto_config
from tests.integration.mosquitto_fixture import MOSQUITTO_BINARY, MosquittoBroker, Recorder

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not MOSQUITTO_BINARY.exists(), reason="mosquitto is not installed"),
]

BURST = 200
SESSION = "durability-bridge"  # stands for the bridge's persistent session


@dataclass
class StackBroker(MosquittoBroker):
    """The test broker, configured exactly as `aftercare local up` configures its own."""

    def config_text(self) -> str:
        return mosquitto_config(self.port, self.workdir, self.log_path)

    def crash(self) -> None:
        """SIGKILL: no chance to write the persistence file on the way out."""
        process, self._process = self._process, None
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait(10)


def publish_acknowledged(url: str, count: int) -> list[str]:
    """Publish `count` QoS 1 messages and return the ids of those the broker acknowledged."""
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="burst")
    client.max_inflight_messages_set(100)
    client.connect(host, int(port))
    client.loop_start()
    try:
        sent = {
            f"fault-{n:04d}": client.publish(
                "dt/aftercare/thing-1/fault", json.dumps({"fault_id": f"fault-{n:04d}"}), qos=1
            )
            for n in range(count)
        }
        for info in sent.values():
            info.wait_for_publish(timeout=30)
        return [fault_id for fault_id, info in sent.items() if info.is_published()]
    finally:
        client.loop_stop()


def test_acknowledged_faults_survive_a_broker_crash(tmp_path: Path) -> None:
    # Given the bridge's persistent session subscribed, then offline (the bridge is down)
    broker = StackBroker(workdir=tmp_path)
    broker.start()
    bridge = Recorder(broker.url, SESSION, ["dt/aftercare/+/fault"], persistent=True).start()
    bridge.stop()
    # When a burst of faults is acknowledged and the broker is SIGKILLed right after the last ack
    acknowledged = publish_acknowledged(broker.url, BURST)
    broker.crash()
    began = time.monotonic()
    broker.start()
    restarted_in = time.monotonic() - began
    # Then the bridge's session, back online, receives every acknowledged fault, except at most
    # one acknowledged in the broker loop iteration the SIGKILL interrupted (it saves after the
    # PUBACK): the remaining window
    bridge = Recorder(broker.url, SESSION, ["dt/aftercare/+/fault"], persistent=True).start()
    try:
        received = {json.loads(m.payload)["fault_id"] for m in bridge.quiet_for(3.0)}
    finally:
        bridge.stop()
        broker.stop()
    lost = sorted(set(acknowledged) - received)
    print(f"acknowledged {len(acknowledged)}, lost {len(lost)}, restart {restarted_in:.2f}s")
    assert len(acknowledged) == BURST
    assert len(lost) <= 1, lost
