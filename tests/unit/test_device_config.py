"""Device agent configuration: broker URLs, the MQTT 5 -> 3.1.1 fallback decision, fault ids."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from devices.config import (
    AgentConfig,
    BrokerAddress,
    BrokerUrlError,
    DeviceTopics,
    IngestRules,
    MqttProtocol,
    parse_broker_url,
    read_agent_file,
    should_fall_back_to_v311,
)
from devices.ids import new_fault_id


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:18830", BrokerAddress("127.0.0.1", 18830, tls=False)),
        ("mqtt://broker.local", BrokerAddress("broker.local", 1883, tls=False)),
        (
            "mqtts://abc-ats.iot.eu-west-1.amazonaws.com:8883",
            BrokerAddress("abc-ats.iot.eu-west-1.amazonaws.com", 8883, tls=True),
        ),
        ("mqtts://broker.local", BrokerAddress("broker.local", 8883, tls=True)),
    ],
)
def test_broker_urls_parse_into_host_port_and_tls(url: str, expected: BrokerAddress):
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1883",
        "127.0.0.1:1883",
        "mqtt://:1883",
        "mqtt://host:notaport",
        "mqtt://user:secret@host:1883",
        "mqtt://host:1883/some/path",
    ],
)
def test_other_broker_urls_are_refused_with_the_expected_shape(url: str):
    with pytest.raises(BrokerUrlError, match=r"mqtt://HOST:PORT"):
        parse_broker_url(url)


@pytest.mark.parametrize(
    ("protocol", "reason_code", "allowed", "expected"),
    [
        (MqttProtocol.V5, 0x84, True, True),  # MQTT 5 "Unsupported protocol version"
        (MqttProtocol.V5, 1, True, True),  # a 3.1.1 broker's "unacceptable protocol level"
        (MqttProtocol.V5, 0x84, False, False),  # fallback switched off
        (MqttProtocol.V311, 0x84, True, False),  # already on 3.1.1
        (MqttProtocol.V5, 0x87, True, False),  # not authorized: a different problem
        (MqttProtocol.V5, 0x86, True, False),  # bad user name or password
        (MqttProtocol.V5, 0x88, True, False),  # server unavailable
    ],
)
def test_only_a_refused_protocol_version_triggers_the_fallback(
    protocol: MqttProtocol, reason_code: int, allowed: bool, expected: bool
):
    assert should_fall_back_to_v311(protocol, reason_code, allowed=allowed) is expected


def test_topics_follow_the_contract():
    assert DeviceTopics.for_thing("dev-1") == DeviceTopics(
        fault="dt/aftercare/dev-1/fault",
        telemetry="dt/aftercare/dev-1/telemetry",
        diagnostics_request="cmd/aftercare/dev-1/diagnostics/req",
        diagnostics_result="cmd/aftercare/dev-1/diagnostics/res",
        diagnostics_cancel="cmd/aftercare/dev-1/diagnostics/cancel",
    )


def test_a_config_names_one_outbox_file_per_thing(tmp_path: Path):
    config = AgentConfig(thing="dev-1", broker_url="mqtt://127.0.0.1:1883", outbox_dir=tmp_path)
    assert config.outbox_path == tmp_path / "dev-1.sqlite3"
    assert config.persistent_session and config.session_expiry_s == 86_400
    assert config.protocol is MqttProtocol.V5 and config.fallback_to_v311


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"broker_url": "tcp://x:1"}, "unsupported broker URL"),
        ({"thing": "dev 1"}, "thing"),
        ({"reconnect_min_delay_s": 10, "reconnect_max_delay_s": 5}, "reconnect_max_delay_s"),
        ({"broker_url": "mqtts://x:8883", "cert_file": "c.pem"}, "cert_file and key_file"),
        ({"ca_file": "ca.pem"}, "not mqtts://"),
        ({"broker_url": "mqtts://x:8883", "ca_file": "/nonexistent/ca.pem"}, "not found"),
        ({"keepalive": 30}, "Extra inputs are not permitted"),
    ],
)
def test_misconfiguration_fails_fast_and_says_what_is_wrong(
    tmp_path: Path, overrides: dict, message: str
):
    settings = {"thing": "dev-1", "broker_url": "mqtt://127.0.0.1:1883", "outbox_dir": tmp_path}
    with pytest.raises(ValidationError, match=message):
        AgentConfig(**(settings | overrides))


def test_tls_files_that_exist_are_accepted(tmp_path: Path):
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("-----BEGIN-----")
    config = AgentConfig(
        thing="dev-1",
        broker_url="mqtts://abc-ats.iot.eu-west-1.amazonaws.com:8883",
        outbox_dir=tmp_path,
        ca_file=tmp_path / "ca.pem",
        cert_file=tmp_path / "cert.pem",
        key_file=tmp_path / "key.pem",
    )
    assert config.broker.tls


def test_fault_ids_fit_the_contract_and_sort_by_time():
    # Given ids made a millisecond apart, and many made at once
    earlier = new_fault_id(datetime(2025, 1, 1, tzinfo=UTC))
    later = new_fault_id(datetime(2025, 1, 1, tzinfo=UTC) + timedelta(milliseconds=1))
    burst = {new_fault_id() for _ in range(1000)}
    # Then every id matches the contract's pattern, later sorts after earlier, none repeat
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{8,64}", i) for i in [earlier, later, *burst])
    assert len(earlier) == 26 and earlier < later
    assert len(burst) == 1000


def test_with_ingest_rules_the_uplinks_go_straight_to_their_rules(tmp_path):
    # Given a device of a stack whose rules are named for Basic Ingest
    rules = IngestRules(
        fault="aftercare_fault_intake_prod",
        telemetry="aftercare_telemetry_prod",
        diagnostics_result="aftercare_diagnostics_results_prod",
    )
    config = AgentConfig(
        thing="dev-1", broker_url="mqtt://127.0.0.1:1883", outbox_dir=tmp_path, ingest_rules=rules
    )
    # Then its three reports are published under `$aws/rules/<rule>/`, and what it receives
    # is unchanged (nothing can subscribe to a Basic Ingest topic)
    topics = config.topics
    assert topics.fault == "$aws/rules/aftercare_fault_intake_prod/dt/aftercare/dev-1/fault"
    assert topics.telemetry == "$aws/rules/aftercare_telemetry_prod/dt/aftercare/dev-1/telemetry"
    assert topics.diagnostics_result == (
        "$aws/rules/aftercare_diagnostics_results_prod/cmd/aftercare/dev-1/diagnostics/res"
    )
    assert topics.diagnostics_request == "cmd/aftercare/dev-1/diagnostics/req"
    assert topics.diagnostics_cancel == "cmd/aftercare/dev-1/diagnostics/cancel"
    # ...and without them, every report goes through the broker
    plain = AgentConfig(thing="dev-1", broker_url="mqtt://127.0.0.1:1883", outbox_dir=tmp_path)
    assert plain.topics.fault == "dt/aftercare/dev-1/fault"


def test_an_agent_file_names_its_rules_and_a_bad_rule_name_is_refused(tmp_path):
    # Given agent.json as provisioning writes it, with the stack's rules
    document = {
        "thing": "dev-1",
        "broker_url": "mqtt://127.0.0.1:1883",
        "ingest_rules": {
            "fault": "aftercare_fault_intake_eu_prod",
            "telemetry": "aftercare_telemetry_eu_prod",
            "diagnostics_result": "aftercare_diagnostics_results_eu_prod",
        },
    }
    (tmp_path / "agent.json").write_text(json.dumps(document))
    # Then the agent reads them ...
    credentials = read_agent_file(tmp_path)
    assert credentials.ingest_rules is not None
    assert credentials.ingest_rules.fault == "aftercare_fault_intake_eu_prod"
    # ... and a name no IoT rule can have (it would make another topic) is an error
    document["ingest_rules"]["fault"] = "rule/../other"  # type: ignore[index]
    (tmp_path / "agent.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="fault"):
        read_agent_file(tmp_path)
