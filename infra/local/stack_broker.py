"""The stack's own Mosquitto: its configuration, its start, and waiting until it listens.

The broker enforces the template's IoT policy like AWS IoT Core: TLS with client certificates
from a local CA (`infra.local.broker_auth`; a client's id is forced to its certificate's CN)
and an ACL generated from `DeviceIoTPolicy` (`infra.local.iot_policy`).
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from infra.local.broker_auth import broker_config_lines
from infra.local.children import (
    READY_TIMEOUT_S,
    Child,
    LocalStackError,
    Spawner,
    accepts_connections,
    free_port,
)
from infra.local.iot_policy import UnmappablePolicy, write_acl_file
from infra.local.template import Template

log = logging.getLogger("infra.local.stack")

MOSQUITTO_FALLBACK: Final = "/usr/sbin/mosquitto"  # Debian's package; /usr/sbin is often off PATH
MAX_MESSAGE_BYTES: Final = 128 * 1024  # AWS IoT Core's limit on one MQTT message's payload


def mosquitto_config(
    port: int, data_dir: Path, log_path: Path, security: list[str] | None = None
) -> str:
    """Configuration for the stack's own broker on 127.0.0.1:`port`.

    `security` are the listener's TLS and access-control lines (`broker_auth.broker_config_lines`);
    without them the broker is anonymous, which only pure-broker tests want.
    """
    lines = [
        f"listener {port} 127.0.0.1",
        *(security if security is not None else ["allow_anonymous true"]),
        "persistence true",
        f"persistence_location {data_dir}/",
        # Save after every change (a queued message, a subscription): an acknowledged QoS 1
        # message survives a broker crash unless the crash hits the very loop iteration that
        # acknowledged it (the save follows the PUBACK; tests/integration/test_broker_durability).
        "autosave_on_changes true",
        "autosave_interval 1",
        "max_queued_messages 100000",
        "max_inflight_messages 100",
        # AWS IoT Core's message size limit. Mosquitto drops a bigger PUBLISH; for QoS 1 it
        # still completes the flow: MQTT 3.1.1 publishers get a plain PUBACK (the drop is
        # silent), MQTT 5 publishers a PUBACK with reason 0x95 "packet too large".
        f"message_size_limit {MAX_MESSAGE_BYTES}",
        f"log_dest file {log_path}",
        # Not "information": with autosave_on_changes it logs one "Saving" line per message.
        *(f"log_type {kind}" for kind in ("error", "warning", "notice")),
        "connection_messages true",
        # Started as root, mosquitto would switch to user `mosquitto` and lose the state dir.
        f"user {pwd.getpwuid(os.geteuid()).pw_name}",
    ]
    return "\n".join(lines) + "\n"


def broker_security(
    state_dir: Path, template: Template, region: str, parameters: Mapping[str, str] | None = None
) -> list[str]:
    """The broker's ACL (from the template's IoT policy) and the local CA's certificates, as the
    listener's configuration lines.

    Done before anything starts, so a policy the local broker cannot enforce stops the stack with
    its name. An external broker (`mqtt_url` given) must be configured with
    `broker_config_lines(state_dir, <state_dir>/broker/acl)` itself (the e2e fixture is).
    """
    try:
        acl = write_acl_file(state_dir / "broker" / "acl", template, region, parameters)
    except UnmappablePolicy as exc:
        raise LocalStackError(f"the local broker cannot enforce {exc}") from exc
    return broker_config_lines(state_dir, acl)


def start_broker(
    spawner: Spawner, state_dir: Path, logs_dir: Path, security: list[str], external_url: str | None
) -> tuple[str, Child | None]:
    """The URL of the broker to use, and its process unless it is an external one."""
    if external_url:
        if urlsplit(external_url).scheme != "mqtts":
            log.warning(
                "%s is plain MQTT: devices are not authenticated and the IoT policy is not"
                " enforced (our own broker enforces both)",
                external_url,
            )
        return external_url, None
    port = free_port()
    data_dir = state_dir / "mosquitto"
    config = data_dir / "mosquitto.conf"
    log_path = logs_dir / "mosquitto.log"
    config.write_text(mosquitto_config(port, data_dir, log_path, security))
    binary = shutil.which("mosquitto") or MOSQUITTO_FALLBACK
    broker = spawner.spawn("mosquitto", [binary, "-c", str(config)], pipe_stdout=False)
    return f"mqtts://127.0.0.1:{port}", broker


def wait_broker(mqtt_url: str, broker: Child | None) -> None:
    address = urlsplit(mqtt_url)
    if address.scheme not in ("mqtt", "mqtts") or not address.hostname:
        raise LocalStackError(f"MQTT URL {mqtt_url!r} must look like mqtts://HOST:PORT")
    default_port = 8883 if address.scheme == "mqtts" else 1883
    host, port = address.hostname, address.port or default_port
    if broker is not None:
        broker.wait_ready(READY_TIMEOUT_S, probe=lambda: accepts_connections(host, port))
    elif not accepts_connections(host, port, timeout=2.0):
        raise LocalStackError(f"no MQTT broker accepts connections at {mqtt_url}")
