"""`aftercare local up`: run template.yaml on this machine, without AWS or Docker.

Start-up, in stages (each stage's processes start in parallel):
1. the moto server (`infra.local.motoserver`, one request at a time) and Mosquitto;
2. provisioning of the template's resources in moto (`infra.local.provision`);
3. one worker per function (`infra.local.worker`), then the IoT-rule bridge
   (`infra.local.iotrule`), each started from a spec file in `<state_dir>/specs/`;
4. the demo seed (and each seeded device's certificate); then `<state_dir>/local.json` is
   written, and only then.

The broker enforces the template's IoT policy like AWS IoT Core: TLS with client certificates
from a local CA (`infra.local.broker_auth`; a client's id is forced to its certificate's CN)
and an ACL generated from `DeviceIoTPolicy` (`infra.local.iot_policy`), written before anything
starts so that a policy the broker cannot enforce stops the stack with its name.

Children run in their own session (Ctrl-C reaches the supervisor, which stops them in reverse
order), log to `<state_dir>/logs/`, and die with the supervisor however it dies (see
`infra.local.supervisor`, which also holds the one-stack-per-state-dir lock and the pid file
written before the first child starts). Children must therefore be started from a thread that
lives as long as the stack: the one calling `start()`, or the monitor.

A child that dies while the stack is up is started again on the same port after a backoff and
the restart is recorded (`restarts` in local.json, the supervisor's log, the child's log). Only
the death of moto (its in-memory state is gone) or a crash loop stops the whole stack: then
`wait()` returns the culprit's name and `failure_reason` says why. `down()` stops a stack from
another shell using the pid file, the state file and, for anything they missed, /proc.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from infra.local.api_stack import (
    IOT_DATA_PARAMETER,
    announced_url,
    api_state,
    gateway_spec,
    seed_local_users,
)
from infra.local.broker_auth import (
    IOT_DATA,
    IOT_RULES,
    ClientCredentials,
    CredentialsError,
    broker_config_lines,
    component_credentials,
    issue_device_credentials,
)
from infra.local.iot_policy import UnmappablePolicy, write_acl_file
from infra.local.provision import (
    DEFAULT_REGION,
    AwsClients,
    ProvisionResult,
    SqlCheck,
    bind_invoke_urls,
    provision,
)
from infra.local.supervisor import (
    MARKER_VARIABLE,
    PID_FILE,
    PidFile,
    RestartPolicy,
    RestartRecord,
    StackAlreadyRunning,
    SupervisorLock,
    clean_leftovers,
    die_with_parent,
    exit_description,
    marked_processes,
    process_start_ticks,
    recorded_children,
    same_process,
    supervisor_alive,
    terminate_all,
)
from infra.local.template import load_template

log = logging.getLogger(__name__)

STATE_FILE: Final = "local.json"
MOSQUITTO_FALLBACK: Final = "/usr/sbin/mosquitto"  # Debian's package; /usr/sbin is often off PATH
READY_TIMEOUT_S: Final = 30.0
STOP_GRACE_S: Final = 5.0
LOG_TAIL_LINES: Final = 20
MONITOR_INTERVAL_S: Final = 0.5
# How long a worker holds received SQS messages without renewing: a crashed worker's batch is
# visible again this soon (the template's VisibilityTimeout would keep it away for minutes).
SQS_LEASE_S: Final = 3
# Stable, so the bridge's persistent MQTT session survives a restart of the stack (the broker
# makes every client id its certificate's CN anyway, see infra.local.broker_auth).
BRIDGE_CLIENT_ID: Final = IOT_RULES
MAX_MESSAGE_BYTES: Final = 128 * 1024  # AWS IoT Core's limit on one MQTT message's payload


class LocalStackError(RuntimeError):
    """The local stack could not start (the message says which part and why)."""


# --------------------------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------------------------


@dataclass
class Child:
    """One process of the stack, its log file and (if it announces itself) its READY line."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str] = field(default_factory=list)  # to start it again, on the same port
    pipe_stdout: bool = False
    restart_at: float | None = None  # dead, to be started again at this monotonic time
    ready_line: str | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def follow_stdout(self) -> None:
        """Read stdout in the background: take the READY line, append the rest to the log."""
        self._reader = threading.Thread(
            target=self._read_stdout, name=f"stdout-{self.name}", daemon=True
        )
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        with self.log_path.open("ab") as sink:
            for raw in self.popen.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if self.ready_line is None and line.startswith("READY"):
                    self.ready_line = line.removeprefix("READY").strip()
                    self._ready.set()
                else:
                    sink.write(raw)
                    sink.flush()

    def wait_ready(self, timeout: float, probe: Callable[[], bool] | None = None) -> str:
        """Block until READY (or `probe()` is true); raise if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.02) or (probe is not None and probe()):
                return self.ready_line or ""
            if self.popen.poll() is not None:
                raise LocalStackError(
                    f"{self.name} exited with code {self.popen.returncode} before it was ready; "
                    f"{self.log_path} ends with:\n{tail(self.log_path)}"
                )
        raise LocalStackError(
            f"{self.name} was not ready after {timeout:.0f}s; "
            f"{self.log_path} ends with:\n{tail(self.log_path)}"
        )

    def terminate(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.terminate()

    def kill_if_running(self, until: float) -> None:
        try:
            self.popen.wait(max(0.0, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) ignored SIGTERM; killing it", self.name, self.pid)
            self.popen.kill()
            self.popen.wait()
        if self._reader is not None:
            self._reader.join(timeout=1.0)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file ('' if it does not exist)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip()
    except FileNotFoundError:
        return ""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def accepts_connections(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def child_environment(project_root: Path, region: str) -> dict[str, str]:
    """The environment of every child: dummy AWS credentials, never the caller's real ones."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "BOTO_")) or key == "AWS_CA_BUNDLE"
    }
    python_path = [str(project_root), *filter(None, [os.environ.get("PYTHONPATH")])]
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's dummy credentials
        AWS_DEFAULT_REGION=region,
        AWS_REGION=region,
        AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(python_path),
    )
    return env


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


# --------------------------------------------------------------------------------------------
# State file
# --------------------------------------------------------------------------------------------


def write_json_atomically(path: Path, document: Mapping[str, Any]) -> None:
    """Write `document` to `path` so readers see either the old file or the complete new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The state file of the stack recorded in `state_dir`, or None."""
    try:
        return dict(json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------


class LocalStack:
    """template.yaml running on this machine: moto, Mosquitto, workers and the rule bridge."""

    def __init__(
        self,
        project_root: Path,
        state_dir: Path,
        mqtt_url: str | None = None,
        param_overrides: dict[str, str] | None = None,
        seed: bool = True,
        *,
        region: str = DEFAULT_REGION,
        sql_check: SqlCheck | None = None,
        worker_module: str = "infra.local.worker",
        bridge_module: str = "infra.local.iotrule",
        template_path: Path | None = None,
        schedule_seconds: Mapping[str, float] | None = None,
        restart_policy: RestartPolicy | None = None,
        only_functions: Collection[str] | None = None,
    ) -> None:
        self.project_root = project_root.resolve()
        self.state_dir = state_dir.resolve()
        self.region = region
        self.seed_summary: dict[str, Any] | None = None
        self.state: dict[str, Any] | None = None
        self._external_mqtt_url = mqtt_url
        self._param_overrides = dict(param_overrides or {})
        # Local-only: function logical id -> seconds between scheduled runs (see `provision`).
        self._schedule_seconds = dict(schedule_seconds or {})
        self._seed = seed
        # Run only these functions (template logical ids); None runs every one.
        self._only = frozenset(only_functions) if only_functions is not None else None
        self._sql_check = sql_check
        self._worker_module = worker_module
        self._bridge_module = bridge_module
        self._template_path = template_path or self.project_root / "template.yaml"  # tests only
        self._stages: list[list[Child]] = []
        self._stop_lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._failed = threading.Event()
        self.failure: str | None = None
        self.failure_reason: str | None = None
        self._monitor: threading.Thread | None = None
        self._wrote_state = False
        self._policy = restart_policy or RestartPolicy()
        self.restarts = RestartRecord()
        self._lock = SupervisorLock(self.state_dir)
        self._pid_file = PidFile(self.state_dir)
        self._env = child_environment(self.project_root, region)
        self._env[MARKER_VARIABLE] = str(self.state_dir)  # how /proc tells this stack's processes
        self._api_state: dict[str, Any] = {}  # api_url, apis, iot_data_url, users
        self._broker_security: list[str] = []

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def specs_dir(self) -> Path:
        return self.state_dir / "specs"

    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.state_dir / "checkpoints"

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---- start ---------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Bring everything up; return the state written to local.json."""
        started = time.monotonic()
        self._prepare_state_dir()
        try:
            state = self._start_all(started)
        except BaseException:
            self.stop()
            raise
        self._monitor = threading.Thread(target=self._watch, name="stack-monitor", daemon=True)
        self._monitor.start()
        return state

    def _start_all(self, started: float) -> dict[str, Any]:
        services: list[Child] = []
        self._stages.append(services)
        self._prepare_broker_auth()
        moto = self._spawn_python(
            "moto", "infra.local.motoserver", "--host", "127.0.0.1", "--port", "0"
        )
        services.append(moto)
        mqtt_url, broker = self._start_broker()
        services.extend([broker] if broker else [])
        endpoint_url = self._moto_url(moto)
        log.info("moto server on %s", endpoint_url)
        self._wait_broker(mqtt_url, broker)
        log.info("mosquitto on %s%s", mqtt_url, "" if broker else " (external)")
        self._start_iot_data(mqtt_url)
        result = self._selected(self._provision(endpoint_url))
        functions = self._start_workers(result)
        self._start_bridge(result, functions, mqtt_url, endpoint_url)
        self._start_apis(result, functions)
        if self._seed:
            self.seed_summary = self._run_seed(result, endpoint_url)
            users = seed_local_users(result.resources, endpoint_url, self.region)
            self._api_state.update({"users": users} if users else {})
        return self._write_state(result, functions, endpoint_url, mqtt_url, started)

    def _prepare_state_dir(self) -> None:
        """Claim the state directory (one stack per directory), clear a dead stack's leftovers,
        and write the pid file before any child starts."""
        try:
            self._lock.acquire()
        except StackAlreadyRunning as exc:
            raise LocalStackError(str(exc)) from None
        leftovers = clean_leftovers(self.state_dir, STOP_GRACE_S)
        leftovers += self._stop_recorded_leftovers()
        if leftovers:
            log.warning("stopped what a dead stack left running: %s", ", ".join(leftovers))
        if self.state_path.exists():
            log.info("removing stale %s", self.state_path)
            self.state_path.unlink()
        self._pid_file.write()
        # Checkpoints index moto's streams, which start empty with the new moto server.
        shutil.rmtree(self.checkpoints_dir, ignore_errors=True)
        for directory in (self.logs_dir, self.specs_dir, self.state_dir / "mosquitto"):
            directory.mkdir(parents=True, exist_ok=True)

    def _prepare_broker_auth(self) -> None:
        """The broker's ACL (from the template's IoT policy) and the local CA's certificates.

        Done before anything starts, so a policy the local broker cannot enforce stops the
        stack with its name. An external broker (`mqtt_url` given) must be configured with
        `broker_config_lines(state_dir, <state_dir>/broker/acl)` itself (the e2e fixture is).
        """
        try:
            acl = write_acl_file(
                self.state_dir / "broker" / "acl",
                load_template(self._template_path),
                self.region,
            )
        except UnmappablePolicy as exc:
            raise LocalStackError(f"the local broker cannot enforce {exc}") from exc
        self._broker_security = broker_config_lines(self.state_dir, acl)

    def _stop_recorded_leftovers(self) -> list[str]:
        """Processes named by a dead stack's local.json (written before pid files existed)."""
        recorded = read_state(self.state_dir) or {}
        ticks = recorded.get("process_start_ticks", {})
        alive = {
            pid: name
            for name, pid in recorded.get("pids", {}).items()
            if same_process(pid, ticks.get(name))
        }
        terminate_all(list(alive), STOP_GRACE_S)
        return [f"{name} (pid {pid})" for pid, name in alive.items()]

    def _spawn(self, name: str, argv: list[str], *, pipe_stdout: bool) -> Child:
        log_path = self.logs_dir / f"{name}.log"
        with log_path.open("ab") as log_file:
            popen = subprocess.Popen(
                argv,
                cwd=self.project_root,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe_stdout else log_file,
                stderr=log_file,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl, no locks
            )
        self._pid_file.record(name, popen.pid)
        child = Child(name=name, popen=popen, log_path=log_path, argv=argv, pipe_stdout=pipe_stdout)
        if pipe_stdout:
            child.follow_stdout()
        log.debug("started %s (pid %d): %s", name, popen.pid, " ".join(argv))
        return child

    def _spawn_python(self, name: str, module: str, *args: str) -> Child:
        return self._spawn(name, [sys.executable, "-m", module, *args], pipe_stdout=True)

    def _moto_url(self, moto: Child) -> str:
        url = moto.wait_ready(READY_TIMEOUT_S)
        if not url.startswith("http://"):
            raise LocalStackError(f"moto server announced {url!r} instead of its URL")
        return url

    def _start_broker(self) -> tuple[str, Child | None]:
        if self._external_mqtt_url:
            if urlsplit(self._external_mqtt_url).scheme != "mqtts":
                log.warning(
                    "%s is plain MQTT: devices are not authenticated and the IoT policy is not"
                    " enforced (our own broker enforces both)",
                    self._external_mqtt_url,
                )
            return self._external_mqtt_url, None
        port = free_port()
        data_dir = self.state_dir / "mosquitto"
        config = data_dir / "mosquitto.conf"
        log_path = self.logs_dir / "mosquitto.log"
        config.write_text(mosquitto_config(port, data_dir, log_path, self._broker_security))
        binary = shutil.which("mosquitto") or MOSQUITTO_FALLBACK
        broker = self._spawn("mosquitto", [binary, "-c", str(config)], pipe_stdout=False)
        return f"mqtts://127.0.0.1:{port}", broker

    def _wait_broker(self, mqtt_url: str, broker: Child | None) -> None:
        address = urlsplit(mqtt_url)
        if address.scheme not in ("mqtt", "mqtts") or not address.hostname:
            raise LocalStackError(f"MQTT URL {mqtt_url!r} must look like mqtts://HOST:PORT")
        default_port = 8883 if address.scheme == "mqtts" else 1883
        host, port = address.hostname, address.port or default_port
        if broker is not None:
            broker.wait_ready(READY_TIMEOUT_S, probe=lambda: accepts_connections(host, port))
        elif not accepts_connections(host, port, timeout=2.0):
            raise LocalStackError(f"no MQTT broker accepts connections at {mqtt_url}")

    def _provision(self, endpoint_url: str) -> ProvisionResult:
        template = load_template(self._template_path)
        result = provision(
            template,
            AwsClients.for_endpoint(endpoint_url, self.region),
            endpoint_url=endpoint_url,
            region=self.region,
            param_overrides=self._param_overrides,
            sql_check=self._sql_check,
            schedule_seconds=self._schedule_seconds,
        )
        for item in result.not_emulated:
            log.info(
                "not emulated locally: %s (%s): %s",
                item["logical_id"],
                item["type"],
                item.get("reason", ""),
            )
        return result

    def _selected(self, result: ProvisionResult) -> ProvisionResult:
        """Only the functions asked for, and the HTTP APIs whose routes all reach them."""
        if self._only is None:
            return result
        unknown = sorted(self._only - set(result.workers))
        if unknown:
            raise LocalStackError(f"no such function in the template: {', '.join(unknown)}")
        workers = {lid: spec for lid, spec in result.workers.items() if lid in self._only}
        apis = {
            lid: api
            for lid, api in result.apis.items()
            if all(route["function"] in workers for route in api["routes"])
        }
        return replace(result, workers=workers, apis=apis)

    def _write_spec(self, name: str, spec: Mapping[str, Any]) -> Path:
        path = self.specs_dir / f"{name}.json"
        write_json_atomically(path, spec)
        return path

    def _start_workers(self, result: ProvisionResult) -> dict[str, dict[str, Any]]:
        stage: list[Child] = []
        self._stages.append(stage)
        workers = {}
        specs = {
            logical_id: {**spec, **self._crash_settings(logical_id)}
            for logical_id, spec in result.workers.items()
        }
        for logical_id, spec in specs.items():
            spec_file = self._write_spec(logical_id, spec)
            workers[logical_id] = self._spawn_python(
                logical_id, self._worker_module, "--spec-file", str(spec_file)
            )
            stage.append(workers[logical_id])
        functions = {}
        for logical_id, worker in workers.items():
            invoke_url = _invoke_url(logical_id, worker.wait_ready(READY_TIMEOUT_S))
            # A restarted worker listens where the rules and gateways already send invokes.
            self._write_spec(logical_id, {**specs[logical_id], "invoke_port": _port(invoke_url)})
            functions[logical_id] = {
                "function_name": result.workers[logical_id]["function_name"],
                "invoke_url": invoke_url,
                "log": str(worker.log_path),
            }
            log.info("worker %s ready", logical_id)
        return functions

    def _crash_settings(self, logical_id: str) -> dict[str, Any]:
        """What lets a restarted worker pick up where a crashed one stopped (see worker.py)."""
        return {
            "checkpoint_dir": str(self.checkpoints_dir / logical_id),
            "sqs_lease_s": SQS_LEASE_S,
        }

    def _start_bridge(
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
            **self._tls_spec(mqtt_url, IOT_RULES),
            "aws_endpoint_url": endpoint_url,
            "region": self.region,
            "rules": rules,
            "parked_table": result.resources.get("ParkedTable"),
            "parked_bucket": result.resources.get("ParkedPayloadBucket"),
        }
        bridge = self._spawn_python(
            "iot-rules",
            self._bridge_module,
            "--spec-file",
            str(self._write_spec("iot-rules", spec)),
        )
        self._stages.append([bridge])
        bridge.wait_ready(READY_TIMEOUT_S)
        log.info("iot-rules bridge ready (%d rule(s))", len(rules))

    def _start_iot_data(self, mqtt_url: str) -> None:
        """The IoT data-plane stand-in, when the template takes its URL (see api_stack)."""
        if IOT_DATA_PARAMETER not in load_template(self._template_path).parameters:
            return
        tls = self._tls_spec(mqtt_url, IOT_DATA).get("tls", {})
        child = self._spawn_python(
            "iot-data",
            "infra.local.iotdata",
            "--mqtt-url",
            mqtt_url,
            *(arg for key, path in tls.items() for arg in (f"--{key.replace('_', '-')}", path)),
        )
        self._stages[0].append(child)
        url = announced_url(child.wait_ready(READY_TIMEOUT_S), "iot-data")
        child.argv += ["--port", str(_port(url))]  # restarted on the URL the functions know
        self._param_overrides.setdefault(IOT_DATA_PARAMETER, url)
        self._api_state["iot_data_url"] = url
        log.info("iot-data endpoint on %s", url)

    def _start_apis(
        self, result: ProvisionResult, functions: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """One local API gateway per HttpApi (see api_stack)."""
        stage: list[Child] = []
        self._stages.append(stage)
        urls = {}
        for logical_id, api in result.apis.items():
            name = f"api-{logical_id}"
            spec = gateway_spec(api, functions, self.region)
            spec_file = self._write_spec(name, spec)
            child = self._spawn_python(name, "infra.local.apigw", "--spec-file", str(spec_file))
            stage.append(child)
            urls[logical_id] = announced_url(child.wait_ready(READY_TIMEOUT_S), name)
            self._write_spec(name, {**spec, "port": _port(urls[logical_id])})  # for restarts
            log.info("HTTP API %s on %s", logical_id, urls[logical_id])
        self._api_state.update(api_state(urls))

    def _tls_spec(self, mqtt_url: str, component: str) -> dict[str, Any]:
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

    def _run_seed(self, result: ProvisionResult, endpoint_url: str) -> dict[str, Any]:
        try:
            from infra.local.seed import demo_devices, seed_demo
        except ImportError as exc:
            raise LocalStackError(f"cannot seed: infra.local.seed is missing ({exc})") from exc
        summary = seed_demo(dict(result.resources), endpoint_url, self.region)
        try:
            for device in demo_devices():
                issue_device_credentials(self.state_dir, device.thing)
        except CredentialsError as exc:
            raise LocalStackError(f"cannot issue a seeded device's credentials: {exc}") from exc
        log.info("seeded demo data: %s", summary)
        return summary

    def _write_state(
        self,
        result: ProvisionResult,
        functions: dict[str, dict[str, Any]],
        endpoint_url: str,
        mqtt_url: str,
        started: float,
    ) -> dict[str, Any]:
        children = [child for stage in self._stages for child in stage]
        state = {
            "region": self.region,
            "aws_endpoint_url": endpoint_url,
            "mqtt_url": mqtt_url,
            "mqtt_ca_file": str(self.state_dir / "broker" / "ca.pem"),
            "devices_dir": str(self.state_dir / "devices"),
            **self._api_state,
            "resources": dict(result.resources),
            "functions": functions,
            "pids": {child.name: child.pid for child in children},
            "process_start_ticks": {
                "supervisor": process_start_ticks(os.getpid()),
                **{child.name: process_start_ticks(child.pid) for child in children},
            },
            "supervisor_pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "startup_seconds": round(time.monotonic() - started, 3),
            "not_emulated": result.not_emulated,
            "logs_dir": str(self.logs_dir),
            "restarts": self.restarts.by_name,
        }
        write_json_atomically(self.state_path, state)
        self._wrote_state = True
        self.state = state
        log.info("local stack up in %.2fs; state in %s", state["startup_seconds"], self.state_path)
        return state

    # ---- running -------------------------------------------------------------------------

    def _watch(self) -> None:
        """Restart dead children (after their backoff) until the stack stops or fails.

        This thread lives until `stop()` has stopped every child: the children it started get
        their parent-death signal when it ends (see `die_with_parent`).
        """
        while not self._stopped.wait(MONITOR_INTERVAL_S):
            with self._stop_lock:
                if self._stopping.is_set() or self._failed.is_set():
                    continue
                try:
                    self._supervise(time.monotonic())
                except Exception as exc:  # an unsupervised stack must not look healthy
                    log.exception("the supervisor's monitor failed")
                    self._fail("supervisor", f"the supervisor could not restart a process: {exc}")

    def _supervise(self, now: float) -> None:
        for stage in self._stages:
            for index, child in enumerate(stage):
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        stage[index] = self._restart(child)
                    continue
                code = child.popen.poll()
                if code is not None and not self._died(child, code, now):
                    return

    def _died(self, child: Child, code: int, now: float) -> bool:
        """Schedule `child`'s restart; False (and the stack failed) when it must not restart."""
        cause = exit_description(code)
        log.error(
            "%s (pid %d) died (%s); %s ends with:\n%s",
            child.name,
            child.pid,
            cause,
            child.log_path,
            tail(child.log_path),
        )
        restarts = self.restarts.times(child.name)
        if child.name == "moto":
            return self._fail(
                child.name,
                f"moto (the AWS emulator) died ({cause}): the tables, queues and topics it held "
                "in memory are gone, so the whole stack stopped; start it again with "
                f"`aftercare local up` (moto's log: {child.log_path})",
            )
        if self._policy.crash_looping(restarts, now):
            return self._fail(
                child.name,
                f"{child.name} is crash-looping: it died again ({cause}) after "
                f"{self._policy.recent(restarts, now)} restarts within "
                f"{self._policy.window_s:.0f}s, so the whole stack stopped (its log: "
                f"{child.log_path})",
            )
        delay = self._policy.delay(restarts, now)
        self.restarts.add(child.name, code, now)
        child.restart_at = now + delay
        log.warning("restarting %s in %.1fs", child.name, delay)
        self._record_restart()
        return True

    def _fail(self, name: str, reason: str) -> bool:
        log.error("%s", reason)
        self.failure, self.failure_reason = name, reason
        self._failed.set()
        return False

    def _restart(self, dead: Child) -> Child:
        with dead.log_path.open("a", encoding="utf-8") as sink:
            sink.write(
                f"---- {datetime.now(UTC).isoformat(timespec='milliseconds')} restarted by the "
                f"supervisor after {exit_description(dead.popen.returncode)} ----\n"
            )
        if dead._reader is not None:
            dead._reader.join(timeout=1.0)
        child = self._spawn(dead.name, dead.argv, pipe_stdout=dead.pipe_stdout)
        log.warning("restarted %s (pid %d, was %d)", child.name, child.pid, dead.pid)
        if self.state is not None:
            self.state["pids"][child.name] = child.pid
            self.state["process_start_ticks"][child.name] = process_start_ticks(child.pid)
        self._record_restart()
        return child

    def _record_restart(self) -> None:
        if self.state is not None and self._wrote_state:
            self.state["restarts"] = self.restarts.by_name
            write_json_atomically(self.state_path, self.state)

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until the stack fails (return the culprit's name) or `timeout` passes (None);
        `failure_reason` then says what happened."""
        self._failed.wait(timeout)
        return self.failure

    # ---- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the children in reverse start order (SIGTERM, then SIGKILL); idempotent."""
        with self._stop_lock:
            self._stopping.set()
            while self._stages:
                _stop_stage(self._stages.pop())
            if self._wrote_state:
                self.state_path.unlink(missing_ok=True)
                self._wrote_state = False
            if self._lock.held:
                self._pid_file.remove()
                self._lock.release()
            self._stopped.set()
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(timeout=2 * MONITOR_INTERVAL_S)


def _stop_stage(children: list[Child]) -> None:
    running = [child for child in children if child.restart_at is None]
    for child in running:
        child.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for child in running:
        child.kill_if_running(deadline)
        log.info("stopped %s", child.name)


def _port(url: str) -> int:
    port = urlsplit(url).port
    if port is None:
        raise LocalStackError(f"{url!r} names no port")
    return port


def _invoke_url(logical_id: str, announced: str) -> str:
    try:
        url = json.loads(announced)["invoke_url"]
    except (ValueError, KeyError, TypeError) as exc:
        raise LocalStackError(
            f'worker {logical_id} announced {announced!r}, expected READY {{"invoke_url": ...}}'
        ) from exc
    return str(url)


# --------------------------------------------------------------------------------------------
# `aftercare local down` from another shell
# --------------------------------------------------------------------------------------------


def down(state_dir: Path, grace_s: float = STOP_GRACE_S) -> list[str]:
    """Stop the stack recorded in `state_dir`; return the names of what was stopped.

    The supervisor (`local up`) is asked first, so it stops its children in order. Then every
    child it recorded (pid file, written as each child starts, so this works even when start-up
    was interrupted; or local.json) that is still the same process (same start time) is stopped
    directly, and last any process whose environment names this state directory.
    """
    state_dir = state_dir.resolve()
    state = read_state(state_dir) or {}
    stopped = []
    supervisor = supervisor_alive(state_dir) or _recorded_supervisor(state)
    if supervisor is not None:
        _signal_and_wait(supervisor, grace_s * 3)
        stopped.append("supervisor")
    ticks = state.get("process_start_ticks", {})
    children = dict(recorded_children(state_dir))
    children.update(
        {
            name: pid
            for name, pid in state.get("pids", {}).items()
            if name not in children and same_process(pid, ticks.get(name))
        }
    )
    for name, pid in reversed(list(children.items())):
        if same_process(pid, None):
            _signal_and_wait(pid, grace_s)
            stopped.append(name)
    stray = marked_processes(state_dir)
    terminate_all(stray, grace_s)
    stopped += [f"pid {pid}" for pid in stray]
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    if supervisor_alive(state_dir) is None:
        (state_dir / PID_FILE).unlink(missing_ok=True)
    return stopped


def _recorded_supervisor(state: Mapping[str, Any]) -> int | None:
    pid = state.get("supervisor_pid")
    recorded_ticks = state.get("process_start_ticks", {}).get("supervisor")
    if pid != os.getpid() and same_process(pid, recorded_ticks):
        return int(pid)  # type: ignore[arg-type]  # same_process checked it is an int
    return None


def _signal_and_wait(pid: int, grace_s: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not same_process(pid, None):
            return
        time.sleep(0.05)
    log.warning("pid %d ignored SIGTERM for %.0fs; killing it", pid, grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
