"""Starting the stack's emulators from the provisioning result: one worker per function, the
IoT-rule bridge, the IoT data-plane stand-in and one gateway per HTTP API, each from a spec file
in `<state_dir>/specs/` (kept up to date so a restarted child comes back on the same port)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from infra.local.api_stack import announced_url, gateway_spec
from infra.local.broker_auth import IOT_DATA, IOT_RULES, ClientCredentials, component_credentials
from infra.local.children import READY_TIMEOUT_S, Child, LocalStackError, Spawner, port_of
from infra.local.provision_context import ProvisionResult
from infra.local.provision_iot import bind_invoke_urls
from infra.local.stack_state import write_json_atomically

log = logging.getLogger("infra.local.stack")

# How long a worker holds received SQS messages without renewing: a crashed worker's batch is
# visible again this soon (the template's VisibilityTimeout would keep it away for minutes).
SQS_LEASE_S: Final = 3
# Stable, so the bridge's persistent MQTT session survives a restart of the stack (the broker
# makes every client id its certificate's CN anyway, see infra.local.broker_auth).
BRIDGE_CLIENT_ID: Final = IOT_RULES


@dataclass(frozen=True)
class Launcher:
    """Starts the emulator processes into `stages` (the stack stops them in reverse order)."""

    spawner: Spawner
    stages: list[list[Child]]
    state_dir: Path
    region: str
    worker_module: str
    bridge_module: str

    @property
    def specs_dir(self) -> Path:
        return self.state_dir / "specs"

    @property
    def checkpoints_dir(self) -> Path:
        return self.state_dir / "checkpoints"

    def write_spec(self, name: str, spec: Mapping[str, Any]) -> Path:
        path = self.specs_dir / f"{name}.json"
        write_json_atomically(path, spec)
        return path

    def start_workers(self, result: ProvisionResult) -> dict[str, dict[str, Any]]:
        stage: list[Child] = []
        self.stages.append(stage)
        workers = {}
        specs = {
            logical_id: {**spec, **self._crash_settings(logical_id)}
            for logical_id, spec in result.workers.items()
        }
        for logical_id, spec in specs.items():
            spec_file = self.write_spec(logical_id, spec)
            workers[logical_id] = self.spawner.spawn_python(
                logical_id, self.worker_module, "--spec-file", str(spec_file)
            )
            stage.append(workers[logical_id])
        functions = {}
        for logical_id, worker in workers.items():
            invoke_url = announced_invoke_url(logical_id, worker.wait_ready(READY_TIMEOUT_S))
            # A restarted worker listens where the rules and gateways already send invokes.
            self.write_spec(logical_id, {**specs[logical_id], "invoke_port": port_of(invoke_url)})
            functions[logical_id] = {
                "function_name": result.workers[logical_id]["function_name"],
                "invoke_url": invoke_url,
                "log": str(worker.log_path),
            }
            log.info("worker %s ready", logical_id)
        return functions

    def _crash_settings(self, logical_id: str) -> dict[str, Any]:
        """What lets a restarted worker pick up where a crashed one stopped (its SQS lease and
        stream checkpoints: see sqs_source.py and streams.py)."""
        return {
            "checkpoint_dir": str(self.checkpoints_dir / logical_id),
            "sqs_lease_s": SQS_LEASE_S,
        }

    def start_bridge(
        self,
        result: ProvisionResult,
        functions: Mapping[str, Mapping[str, Any]],
        mqtt_url: str,
        endpoint_url: str,
    ) -> None:
        rules = bind_invoke_urls(
            result.rules, {lid: info["invoke_url"] for lid, info in functions.items()}
        )
        if not rules:
            log.info("no enabled topic rules: the iot-rules bridge is not started")
            return
        spec = {
            "client_id": BRIDGE_CLIENT_ID,
            "mqtt_url": mqtt_url,
            **self.tls_spec(mqtt_url, IOT_RULES),
            "aws_endpoint_url": endpoint_url,
            "region": self.region,
            "rules": rules,
            "parked_table": result.resources.get("ParkedTable"),
            "parked_bucket": result.resources.get("ParkedPayloadBucket"),
        }
        bridge = self.spawner.spawn_python(
            "iot-rules",
            self.bridge_module,
            "--spec-file",
            str(self.write_spec("iot-rules", spec)),
        )
        self.stages.append([bridge])
        bridge.wait_ready(READY_TIMEOUT_S)
        log.info("iot-rules bridge ready (%d rule(s))", len(rules))

    def start_iot_data(self, mqtt_url: str) -> str:
        """The IoT data-plane stand-in (see api_stack); returns its URL."""
        tls = self.tls_spec(mqtt_url, IOT_DATA).get("tls", {})
        child = self.spawner.spawn_python(
            "iot-data",
            "infra.local.iotdata",
            "--mqtt-url",
            mqtt_url,
            *(arg for key, path in tls.items() for arg in (f"--{key.replace('_', '-')}", path)),
        )
        self.stages[0].append(child)
        url = announced_url(child.wait_ready(READY_TIMEOUT_S), "iot-data")
        child.argv += ["--port", str(port_of(url))]  # restarted on the URL the functions know
        log.info("iot-data endpoint on %s", url)
        return url

    def start_apis(
        self, result: ProvisionResult, functions: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, str]:
        """One local API gateway per HttpApi (see api_stack); returns their URLs by logical id."""
        stage: list[Child] = []
        self.stages.append(stage)
        urls = {}
        for logical_id, api in result.apis.items():
            name = f"api-{logical_id}"
            spec = gateway_spec(api, functions, self.region)
            spec_file = self.write_spec(name, spec)
            child = self.spawner.spawn_python(
                name, "infra.local.apigw", "--spec-file", str(spec_file)
            )
            stage.append(child)
            urls[logical_id] = announced_url(child.wait_ready(READY_TIMEOUT_S), name)
            self.write_spec(name, {**spec, "port": port_of(urls[logical_id])})  # for restarts
            log.info("HTTP API %s on %s", logical_id, urls[logical_id])
        return urls

    def tls_spec(self, mqtt_url: str, component: str) -> dict[str, Any]:
        """A component's client certificate files, when it talks TLS to the broker."""
        if urlsplit(mqtt_url).scheme != "mqtts":
            return {}
        credentials: ClientCredentials = component_credentials(self.state_dir, component)
        return {
            "tls": {
                "ca_file": str(credentials.ca_file),
                "cert_file": str(credentials.cert_file),
                "key_file": str(credentials.key_file),
            }
        }


def announced_invoke_url(logical_id: str, announced: str) -> str:
    try:
        url = json.loads(announced)["invoke_url"]
    except (ValueError, KeyError, TypeError) as exc:
        raise LocalStackError(
            f'worker {logical_id} announced {announced!r}, expected READY {{"invoke_url": ...}}'
        ) from exc
    return str(url)
