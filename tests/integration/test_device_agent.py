"""The device agent against a real Mosquitto started by the test (see conftest.py)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aftercare.models.payloads import (
    DiagnosticsRequest,
    DiagnosticsResult,
    DiagnosticStatus,
    FaultReport,
    Severity,
)
from paho.mqtt.enums import MQTTProtocolVersion

from devices.agent import DeviceAgent
from devices.config import AgentConfig, MqttProtocol
from devices.errors import AgentBusyError
from devices.outbox import EntryStatus
from tests.integration.mosquitto_fixture import MosquittoBroker, Recorder, free_port

pytestmark = pytest.mark.integration

THING = "dev-0001"
FAULTS = "dt/aftercare/+/fault"
DIAG_REQ = f"cmd/aftercare/{THING}/diagnostics/req"
DIAG_RES = f"cmd/aftercare/{THING}/diagnostics/res"

AgentFactory = Callable[..., DeviceAgent]
RecorderFactory = Callable[..., Recorder]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def fault_ids(messages) -> list[str]:
    return [json.loads(m.payload)["fault_id"] for m in messages]


@pytest.fixture
def make_config(mosquitto: MosquittoBroker, tmp_path: Path) -> Callable[..., AgentConfig]:
    def build(**overrides) -> AgentConfig:
        settings = {
            "thing": THING,
            "broker_url": mosquitto.url,
            "outbox_dir": tmp_path / "outbox",
            "firmware": "3.2.1",
            "keepalive_s": 10,
            "reconnect_max_delay_s": 1,
            "remote_fixable_codes": frozenset({"PSU-OVERVOLT"}),
        }
        return AgentConfig(**(settings | overrides))

    return build


@pytest.fixture
def make_agent(make_config) -> Iterator[AgentFactory]:
    agents: list[DeviceAgent] = []

    def build(start: bool = True, **overrides) -> DeviceAgent:
        agent = DeviceAgent(make_config(**overrides))
        agents.append(agent)
        if start:
            assert agent.start(connect_timeout=10), agent.last_problem
        return agent

    yield build
    for agent in agents:
        agent.stop(drain_timeout=0)


@pytest.fixture
def make_recorder(mosquitto: MosquittoBroker) -> Iterator[RecorderFactory]:
    recorders: list[Recorder] = []

    def build(topics: list[str], client_id: str = "probe", **options) -> Recorder:
        recorder = Recorder(mosquitto.url, client_id, topics, **options).start()
        recorders.append(recorder)
        return recorder

    yield build
    for recorder in recorders:
        recorder.stop()


def diagnostics_request(routine: str, expires_in: timedelta, request_id: str, **params) -> bytes:
    return (
        DiagnosticsRequest(
            request_id=request_id,
            routine=routine,
            params=params,
            expires_at=datetime.now(UTC) + expires_in,
        )
        .model_dump_json()
        .encode()
    )


def test_a_raised_fault_reaches_a_subscriber_with_its_topic_and_payload(
    make_agent: AgentFactory, make_recorder: RecorderFactory
):
    # Given a subscriber to all device faults and a connected device
    recorder = make_recorder([FAULTS])
    agent = make_agent()
    # When the device raises a fault
    report = agent.raise_fault(
        "PSU-OVERVOLT", Severity.MAJOR, readings={"voltage_v": 262.4}, message="rail high"
    )
    # Then the subscriber receives exactly that report on the device's fault topic
    (message,) = recorder.take(1)
    assert message.topic == f"dt/aftercare/{THING}/fault"
    assert message.qos == 1
    assert FaultReport.model_validate_json(message.payload) == report
    assert report.thing == THING and report.firmware == "3.2.1"
    # And the broker's PUBACK takes it out of the outbox
    assert agent.wait_delivered(report.fault_id, 5) is EntryStatus.DELIVERED
    assert agent.backlog == 0


def test_faults_raised_while_the_broker_is_down_arrive_once_in_order_after_restart(
    mosquitto: MosquittoBroker, make_agent: AgentFactory, make_recorder: RecorderFactory
):
    # Given a subscriber with a persistent session and a connected device
    recorder = make_recorder([FAULTS], client_id="probe-persistent", persistent=True)
    agent = make_agent()
    # When the broker goes down and the device raises three faults meanwhile
    mosquitto.stop()
    wait_until(lambda: not agent.is_connected)
    codes = ("FAN-STALL", "PSU-OVERVOLT", "NET-DOWN")
    raised = [agent.raise_fault(code).fault_id for code in codes]
    assert agent.backlog == 3
    # And the broker comes back on the same port with its persisted sessions
    mosquitto.start()
    # Then the subscriber receives all three, in order, with their original fault ids
    assert fault_ids(recorder.take(3, timeout=20)) == raised
    # And exactly once: nothing else arrives and the outbox is empty
    assert recorder.quiet_for(1.5) == []
    assert agent.wait_drained(5)


def test_faults_left_in_the_outbox_by_a_stopped_agent_go_out_with_the_next_run(
    mosquitto: MosquittoBroker, make_agent: AgentFactory, make_recorder: RecorderFactory
):
    # Given a device whose broker vanished: it raises two faults and is shut down
    first = make_agent()
    mosquitto.stop()
    wait_until(lambda: not first.is_connected)
    raised = [first.raise_fault(code).fault_id for code in ("FAN-STALL", "NET-DOWN")]
    assert first.stop(drain_timeout=0.5) == 2
    # When the broker is back and the device process starts again
    mosquitto.start()
    recorder = make_recorder([FAULTS])
    second = make_agent()
    # Then the queued faults are delivered in order with their original ids
    assert fault_ids(recorder.take(2)) == raised
    assert second.wait_drained(5)
    # And the restarted device knows it still has those faults
    assert set(second.state.active_faults) == {"FAN-STALL", "NET-DOWN"}


def test_an_agent_started_while_the_broker_is_down_connects_when_it_comes_up(
    mosquitto: MosquittoBroker, make_agent: AgentFactory, make_recorder: RecorderFactory
):
    # Given the broker is down when the device starts
    mosquitto.stop()
    agent = make_agent(start=False)
    assert agent.start(connect_timeout=1.5) is False
    assert "cannot reach the broker" in (agent.last_problem or "")
    report = agent.raise_fault("FAN-STALL")
    # When the broker starts
    mosquitto.start()
    recorder = make_recorder([FAULTS], client_id="late-probe")
    # Then the agent connects in the background and delivers the fault
    assert agent.wait_ready(15)
    assert agent.wait_delivered(report.fault_id, 10) is EntryStatus.DELIVERED
    assert agent.backlog == 0
    del recorder


def test_stop_waits_for_outstanding_pubacks(make_agent: AgentFactory):
    # Given a device that just raised a burst of faults
    agent = make_agent()
    for n in range(50):
        agent.raise_fault("FAN-STALL", readings={"n": n})
    # When it stops with a drain timeout
    backlog = agent.stop(drain_timeout=10)
    # Then every fault was acknowledged before it disconnected
    assert backlog == 0
    assert agent.stats.delivered == 50


def test_a_diagnostics_request_yields_a_result_on_the_response_topic(
    make_agent: AgentFactory, make_recorder: RecorderFactory
):
    # Given a device with a remotely fixable fault and a listener on its response topic
    agent = make_agent()
    agent.raise_fault("PSU-OVERVOLT", readings={"voltage_v": 260.0})
    recorder = make_recorder([DIAG_RES])
    # When the cloud asks it to reset the power supply
    request = diagnostics_request(
        "reset_component", timedelta(minutes=1), "req-0001", code="PSU-OVERVOLT"
    )
    recorder.publish(DIAG_REQ, request)
    # Then the device answers on the response topic: passed and remedied
    (message,) = recorder.take(1)
    result = DiagnosticsResult.model_validate_json(message.payload)
    assert message.topic == DIAG_RES and message.qos == 1
    assert (result.request_id, result.status, result.remedied) == (
        "req-0001",
        DiagnosticStatus.PASSED,
        True,
    )
    assert result.findings == {"component": "psu", "cleared": ["PSU-OVERVOLT"], "remaining": []}
    # And the device no longer has the fault
    assert agent.state.active_faults == {}


def test_expired_or_invalid_requests_get_no_answer(
    make_agent: AgentFactory, make_recorder: RecorderFactory
):
    # Given a connected device and a listener on its response topic
    make_agent()
    recorder = make_recorder([DIAG_RES])
    # When an expired request, a malformed one, and then a valid one arrive in that order
    recorder.publish(DIAG_REQ, diagnostics_request("self_test", timedelta(seconds=-5), "req-stale"))
    recorder.publish(DIAG_REQ, b'{"request_id": "req-bad1", "routine": "self_test"}')
    recorder.publish(DIAG_REQ, diagnostics_request("self_test", timedelta(minutes=1), "req-fresh"))
    # Then only the valid one is answered
    (message,) = recorder.take(1)
    assert DiagnosticsResult.model_validate_json(message.payload).request_id == "req-fresh"
    assert recorder.quiet_for(1.0) == []


def test_publish_raw_sends_bytes_untouched_and_outside_the_outbox(
    make_agent: AgentFactory, make_recorder: RecorderFactory
):
    # Given a connected device and a subscriber to all faults
    agent = make_agent()
    recorder = make_recorder([FAULTS])
    # When a test publishes malformed bytes under another thing's topic
    info = agent.publish_raw("dt/aftercare/someone-else/fault", b"{not json")
    info.wait_for_publish(5)
    # Then they arrive as they are, and the outbox is not involved
    (message,) = recorder.take(1)
    assert (message.topic, message.payload) == ("dt/aftercare/someone-else/fault", b"{not json")
    assert agent.backlog == 0 and agent.stats.faults_raised == 0


def test_telemetry_carries_readings_firmware_and_active_faults(
    make_agent: AgentFactory, make_recorder: RecorderFactory
):
    # Given a device that reported a fault with a reading
    agent = make_agent(model="CH-200")
    agent.raise_fault("FAN-STALL", readings={"fan_rpm": 0})
    recorder = make_recorder([f"dt/aftercare/{THING}/telemetry"])
    # When it publishes telemetry
    agent.publish_telemetry(qos=1).wait_for_publish(5)
    # Then the message carries what the device knows about itself
    body = json.loads(recorder.take(1)[0].payload)
    assert body["thing"] == THING and body["firmware"] == "3.2.1" and body["model"] == "CH-200"
    assert body["readings"] == {"fan_rpm": 0}
    assert body["active_faults"] == ["FAN-STALL"]


def test_a_second_agent_for_the_same_thing_hands_its_fault_to_the_running_one(
    make_agent: AgentFactory, make_recorder: RecorderFactory
):
    # Given a running agent that watches its outbox (as `device run` does)
    running = make_agent(outbox_poll_s=0.2)
    recorder = make_recorder([FAULTS])
    # When a second agent for the same thing (as `device fault` does) cannot start
    second = make_agent(start=False)
    with pytest.raises(AgentBusyError, match=THING):
        second.start(connect_timeout=1)
    # And raises a fault into the shared outbox
    report = second.raise_fault("FAN-STALL")
    # Then the running agent publishes it, and the second one sees the PUBACK
    assert second.wait_delivered(report.fault_id, 10) is EntryStatus.DELIVERED
    assert fault_ids(recorder.take(1)) == [report.fault_id]
    # And the running device now knows about the fault (diagnostics can act on it)
    assert "FAN-STALL" in running.state.active_faults


def test_raising_the_same_fault_id_again_is_a_retry_not_a_new_fault(
    make_agent: AgentFactory, make_recorder: RecorderFactory
):
    # Given a delivered fault
    agent = make_agent()
    recorder = make_recorder([FAULTS])
    first = agent.raise_fault("FAN-STALL", fault_id="fault-retry-0001")
    recorder.take(1)
    # When the device raises it again with the same id
    again = agent.raise_fault("FAN-STALL", fault_id="fault-retry-0001")
    # Then it gets the original report back and nothing is published
    assert again == first
    assert recorder.quiet_for(1.0) == []


def test_a_device_preferring_mqtt_311_keeps_a_persistent_session(
    mosquitto: MosquittoBroker, make_agent: AgentFactory, make_recorder: RecorderFactory
):
    # Given a device configured for MQTT 3.1.1 (clean_session=False)
    agent = make_agent(protocol=MqttProtocol.V311)
    recorder = make_recorder(
        [FAULTS], client_id="probe-311", persistent=True, protocol=MQTTProtocolVersion.MQTTv311
    )
    # When the broker restarts between its faults
    first = agent.raise_fault("FAN-STALL")
    assert agent.wait_delivered(first.fault_id, 5) is EntryStatus.DELIVERED
    mosquitto.stop()
    wait_until(lambda: not agent.is_connected)
    agent.raise_fault("NET-DOWN")
    mosquitto.start()
    # Then both arrive once, in order
    assert [json.loads(m.payload)["code"] for m in recorder.take(2, timeout=20)] == [
        "FAN-STALL",
        "NET-DOWN",
    ]
    assert agent.protocol is MqttProtocol.V311
    assert agent.wait_drained(5)


class V311OnlyFront:
    """A TCP front for Mosquitto that behaves like a broker without MQTT 5: it answers an MQTT 5
    CONNECT with a 3.1.1 CONNACK "unacceptable protocol version" and relays everything else."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.refused_v5 = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._sockets.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        connect = _read_packet(conn)
        name_length = int.from_bytes(connect[2:4], "big")
        protocol_level = connect[4 + name_length]
        if protocol_level == 5:
            self.refused_v5 += 1
            conn.sendall(b"\x20\x02\x00\x01")
            conn.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        self._sockets.append(upstream)
        upstream.sendall(connect)
        threading.Thread(target=_pump, args=(upstream, conn), daemon=True).start()
        _pump(conn, upstream)


def _read_packet(conn: socket.socket) -> bytes:
    header = _recv_exact(conn, 1)
    length_bytes, length, shift = b"", 0, 0
    while True:
        byte = _recv_exact(conn, 1)
        length_bytes += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    return header + length_bytes + _recv_exact(conn, length)


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def test_a_device_falls_back_to_mqtt_311_when_the_broker_refuses_mqtt_5(
    mosquitto: MosquittoBroker, make_agent: AgentFactory, make_recorder: RecorderFactory
):
    # Given a broker that only speaks MQTT 3.1.1, and a device that prefers MQTT 5
    front = V311OnlyFront(mosquitto.port)
    recorder = make_recorder([FAULTS])
    try:
        agent = make_agent(start=False, broker_url=front.url, protocol=MqttProtocol.V5)
        # When the device starts
        ready = agent.start(connect_timeout=10)
        # Then its MQTT 5 CONNECT is refused once and it reconnects with MQTT 3.1.1
        assert ready, agent.last_problem
        assert front.refused_v5 == 1
        assert agent.protocol is MqttProtocol.V311
        # And faults flow as usual
        report = agent.raise_fault("FAN-STALL")
        assert fault_ids(recorder.take(1)) == [report.fault_id]
        assert agent.wait_delivered(report.fault_id, 5) is EntryStatus.DELIVERED
    finally:
        front.close()


def test_without_fallback_a_refused_device_keeps_its_faults(
    mosquitto: MosquittoBroker, make_agent: AgentFactory
):
    # Given an MQTT 3.1.1-only broker and a device that must not fall back
    front = V311OnlyFront(mosquitto.port)
    try:
        agent = make_agent(start=False, broker_url=front.url, fallback_to_v311=False)
        # When it starts and raises a fault
        assert agent.start(connect_timeout=1.5) is False
        agent.raise_fault("FAN-STALL")
        # Then it reports why and keeps the fault in its outbox
        assert "Unsupported protocol version" in (agent.last_problem or "")
        assert agent.protocol is MqttProtocol.V5
        assert agent.backlog == 1
    finally:
        front.close()


def test_the_listener_port_is_private_to_this_test(mosquitto: MosquittoBroker):
    # The fixture never touches the system broker on 1883.
    assert mosquitto.port != 1883
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    assert free_port() != mosquitto.port
