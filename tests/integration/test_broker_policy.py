"""The local broker enforces the template's IoT policy: a device can only act as itself.

Real Mosquitto with the configuration the local stack generates (TLS client certificates from
the local CA, ACL from ``DeviceIoTPolicy``). Device A is the attacker, device B the victim; the
rule bridge's and the iot-data stand-in's own identities watch what really got through.
"""

from __future__ import annotations

import json
import queue
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from infra.local.broker_auth import (
    IOT_DATA,
    IOT_RULES,
    ClientCredentials,
    component_credentials,
    ensure_ca,
    issue_device_credentials,
)
from tests.integration.mosquitto_fixture import MosquittoBroker, Recorder

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
A, B = "attacker-0001", "victim-0001"
QUIET_S = 1.0
NOT_AUTHORIZED = 135  # MQTT 5 PUBACK reason code 0x87


@pytest.fixture
def auth_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def broker(tmp_path: Path, auth_dir: Path) -> Iterator[MosquittoBroker]:
    ensure_ca(auth_dir)
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto", auth_dir=auth_dir)
    broker.start()
    yield broker
    broker.stop()


Connect = Callable[..., Recorder]


@pytest.fixture
def connect(broker: MosquittoBroker, auth_dir: Path) -> Iterator[Connect]:
    clients: list[Recorder] = []

    def build(
        identity: str, topics: list[str] | None = None, *, client_id: str | None = None, **kw
    ) -> Recorder:
        if identity in (IOT_RULES, IOT_DATA):
            credentials = component_credentials(auth_dir, identity)
        else:
            credentials = issue_device_credentials(auth_dir, identity)
        recorder = Recorder(
            broker.url, client_id or identity, topics or [], credentials=credentials, **kw
        )
        clients.append(recorder.start())
        return recorder

    yield build
    for client in clients:
        client.stop()


def connects(client: mqtt.Client, port: int, timeout: float = 3.0) -> bool:
    """Whether the broker accepts ``client``'s connection (TLS 1.3 may fail after the handshake)."""
    accepted: queue.Queue[bool] = queue.Queue()
    client.on_connect = lambda *args: accepted.put(not args[3].is_failure)
    try:
        client.connect("127.0.0.1", port)
    except (ssl.SSLError, OSError):
        return False
    client.loop_start()
    try:
        return accepted.get(timeout=timeout)
    except queue.Empty:
        return False
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_client_without_a_certificate_cannot_connect(broker: MosquittoBroker, auth_dir: Path):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=B)
    client.tls_set(ca_certs=str(ensure_ca(auth_dir)))
    assert not connects(client, broker.port)


def test_a_certificate_from_another_ca_cannot_connect(
    broker: MosquittoBroker, auth_dir: Path, tmp_path: Path
):
    forged = issue_device_credentials(tmp_path / "other-ca", B)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=B)
    client.tls_set(
        ca_certs=str(ensure_ca(auth_dir)),
        certfile=str(forged.cert_file),
        keyfile=str(forged.key_file),
    )
    assert not connects(client, broker.port)


def test_a_device_cannot_report_a_fault_for_another(connect: Connect):
    rules = connect(IOT_RULES, ["dt/aftercare/+/fault"])
    attacker = connect(A)
    # When A publishes a fault on B's topic
    reason = attacker.publish(f"dt/aftercare/{B}/fault", b'{"code": "PSU-OVERVOLT"}')
    # Then the broker refuses it and the rule bridge never sees it
    assert reason is not None and reason.value == NOT_AUTHORIZED
    assert rules.quiet_for(QUIET_S) == []
    # While A's own fault goes through
    assert attacker.publish(f"dt/aftercare/{A}/fault", b"{}").value == 0  # type: ignore[union-attr]
    assert [m.topic for m in rules.take(1)] == [f"dt/aftercare/{A}/fault"]


def test_a_device_reports_by_basic_ingest_only_to_its_own_topic_of_the_named_rule(
    connect: Connect,
):
    # Given the rules bridge, reading the Basic Ingest topics of the stack's rules
    ingest = "$aws/rules/aftercare_fault_intake_local"
    rules = connect(IOT_RULES, [f"{ingest}/#"])
    attacker = connect(A)
    # When A reports by Basic Ingest for B, to its own topic under another rule, and for itself
    for_b = attacker.publish(f"{ingest}/dt/aftercare/{B}/fault", b"{}")
    other_rule = attacker.publish(f"$aws/rules/another_rule/dt/aftercare/{A}/fault", b"{}")
    own = attacker.publish(f"{ingest}/dt/aftercare/{A}/fault", b"{}")
    # Then only its own report to the named rule goes through
    assert for_b is not None and for_b.value == NOT_AUTHORIZED
    assert other_rule is not None and other_rule.value == NOT_AUTHORIZED
    assert own is not None and own.value == 0
    assert [m.topic for m in rules.take(1)] == [f"{ingest}/dt/aftercare/{A}/fault"]
    assert rules.quiet_for(QUIET_S) == []


def test_a_device_cannot_read_other_devices_traffic(connect: Connect):
    victim = connect(B, [f"cmd/aftercare/{B}/diagnostics/req"])
    spy = connect(A, ["#", f"cmd/aftercare/{B}/#", "dt/aftercare/+/fault"])
    iot_data = connect(IOT_DATA)
    # When the cloud asks B for diagnostics and B reports a fault
    iot_data.publish(f"cmd/aftercare/{B}/diagnostics/req", b'{"request_id": "r1"}')
    victim.publish(f"dt/aftercare/{B}/fault", b"{}")
    # Then B gets its request and A gets nothing at all
    assert [m.topic for m in victim.take(1)] == [f"cmd/aftercare/{B}/diagnostics/req"]
    assert spy.quiet_for(QUIET_S) == []


def test_a_device_cannot_answer_another_devices_diagnostics_request(connect: Connect):
    rules = connect(IOT_RULES, ["cmd/aftercare/+/diagnostics/res"])
    attacker = connect(A)
    reason = attacker.publish(f"cmd/aftercare/{B}/diagnostics/res", b'{"request_id": "r1"}')
    assert reason is not None and reason.value == NOT_AUTHORIZED
    assert rules.quiet_for(QUIET_S) == []
    # Its own answers still reach the bridge
    attacker.publish(f"cmd/aftercare/{A}/diagnostics/res", b"{}")
    assert [m.topic for m in rules.take(1)] == [f"cmd/aftercare/{A}/diagnostics/res"]


def test_a_device_cannot_send_commands_or_take_the_bridges_place(connect: Connect):
    victim = connect(B, [f"cmd/aftercare/{B}/diagnostics/req"])
    attacker = connect(A)
    reason = attacker.publish(f"cmd/aftercare/{B}/diagnostics/req", b'{"routine": "x"}')
    assert reason is not None and reason.value == NOT_AUTHORIZED
    assert victim.quiet_for(QUIET_S) == []


def test_a_device_cannot_take_over_another_devices_client_id(connect: Connect):
    # Given B connected with a persistent session
    victim = connect(B, [f"cmd/aftercare/{B}/diagnostics/req"], persistent=True)
    iot_data = connect(IOT_DATA)
    # When A connects asking for B's client id
    impostor = connect(A, [f"cmd/aftercare/{B}/diagnostics/req"], client_id=B)
    # Then the broker gives A its own client id: B stays connected and keeps its messages
    with pytest.raises(queue.Empty):
        victim.disconnects.get(timeout=QUIET_S)
    iot_data.publish(f"cmd/aftercare/{B}/diagnostics/req", b'{"request_id": "r2"}')
    assert [m.payload for m in victim.take(1)] == [b'{"request_id": "r2"}']
    assert impostor.quiet_for(QUIET_S) == []


@pytest.mark.parametrize("protocol", [MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311])
def test_a_retained_publish_is_refused(
    connect: Connect, protocol: MQTTProtocolVersion, auth_dir: Path
):
    rules = connect(IOT_RULES, ["dt/aftercare/+/fault"])
    device = connect(A, protocol=protocol)
    # When a device publishes a retained message on its own topic
    device.publish(f"dt/aftercare/{A}/fault", b"retained", retain=True)
    # Then the broker disconnects it, delivers nothing, and keeps nothing for later subscribers
    assert device.disconnects.get(timeout=5.0).is_failure
    assert rules.quiet_for(QUIET_S) == []
    rules.stop()
    late = connect(IOT_RULES, ["dt/aftercare/+/fault"])
    assert late.quiet_for(QUIET_S) == []


def test_credentials_are_per_device(auth_dir: Path):
    a = issue_device_credentials(auth_dir, A)
    b = issue_device_credentials(auth_dir, B)
    assert isinstance(a, ClientCredentials)
    assert a.certificate_id != b.certificate_id
    assert a.key_file.read_bytes() != b.key_file.read_bytes()


@pytest.fixture
def iot_data_url(broker: MosquittoBroker, auth_dir: Path) -> Iterator[str]:
    credentials = component_credentials(auth_dir, IOT_DATA)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "infra.local.iotdata", "--mqtt-url", broker.url,
            "--ca-file", str(credentials.ca_file), "--cert-file", str(credentials.cert_file),
            "--key-file", str(credentials.key_file),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline().removeprefix("READY "))["url"]
    finally:
        process.terminate()
        process.wait(10)


def post(url: str) -> int:
    try:
        with urlopen(Request(url, data=b"{}", method="POST"), timeout=15) as response:
            return int(response.status)
    except HTTPError as exc:
        return exc.code


def test_the_iot_data_stand_in_publishes_only_where_the_functions_may(
    connect: Connect, iot_data_url: str
):
    device = connect(B, [f"cmd/aftercare/{B}/diagnostics/req"])
    rules = connect(IOT_RULES, ["dt/aftercare/+/fault"])
    # A diagnostics request goes through to the device
    assert post(f"{iot_data_url}/topics/cmd%2Faftercare%2F{B}%2Fdiagnostics%2Freq?qos=1") == 200
    assert [m.topic for m in device.take(1)] == [f"cmd/aftercare/{B}/diagnostics/req"]
    # Locally the stand-in serves every caller: it may publish what the functions' IAM allows
    # and the operator's smoke fault (`aftercare smoke`), nothing else
    assert post(f"{iot_data_url}/topics/dt%2Faftercare%2F{B}%2Ftelemetry?qos=1") == 403
    assert post(f"{iot_data_url}/topics/cmd%2Faftercare%2F{B}%2Fdiagnostics%2Fres?qos=1") == 403
    # A retained request is refused as IAM would (403)
    retained = f"{iot_data_url}/topics/cmd%2Faftercare%2F{B}%2Fdiagnostics%2Freq?qos=1&retain=true"
    assert post(retained) == 403
    assert rules.quiet_for(QUIET_S) == [] and device.quiet_for(0.1) == []
