"""`aftercare local up`: run template.yaml on this machine, without AWS or Docker.

Start-up, in stages (each stage's processes start in parallel):
1. the moto servers (`infra.local.motoserver`, each one request at a time: DynamoDB on its own,
   the other services on the main one, which forwards DynamoDB requests; see
   `infra.local.endpoints`) and Mosquitto;
2. provisioning of the template's resources in moto (`infra.local.provision`);
3. one worker per function (`infra.local.worker`; a function with SQS sources gets SQS-only
   workers too, to process several batches at once: `infra.local.sqs_consumers`), then the
   IoT-rule bridge (`infra.local.iotrule`), each started from a spec file in
   `<state_dir>/specs/`;
4. the demo seed (and each seeded device's certificate); then `<state_dir>/local.json` is
   written, and only then.

The broker enforces the template's IoT policy like AWS IoT Core: TLS with client certificates from a
local CA (`infra.local.broker_auth`; a client's id is forced to its certificate's CN) and an ACL
generated from `DeviceIoTPolicy` (`infra.local.iot_policy`), written before anything starts so that
a policy the broker cannot enforce stops the stack with its name (`infra.local.stack_broker`).

Children (`infra.local.children`, started by `infra.local.stack_launch`) run in their own session
(Ctrl-C reaches the supervisor, which stops them in reverse order), log to `<state_dir>/logs/`, and
die with the supervisor however it dies (see `infra.local.supervisor`, which also holds the one-
stack-per-state-dir lock and the pid file written before the first child starts). Children must
therefore be started from a thread that lives as long as the stack: the one calling `start()`, or
the monitor.

A child that dies while the stack is up is started again on the same port after a backoff and the
restart is recorded (`restarts` in local.json, the supervisor's log, the child's log; see
`infra.local.stack_monitor`). Only the death of moto (its in-memory state is gone) or a crash loop
stops the whole stack: then `wait()` returns the culprit's name and `failure_reason` says why.
`down()` (`infra.local.stack_state`) stops a stack from another shell using the pid file, the state
file and, for anything they missed, /proc.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from infra.local.api_stack import (
    COGNITO_PARAMETER,
    IOT_DATA_PARAMETER,
    api_state,
    seed_local_users,
)
from infra.local.broker_auth import CredentialsError, issue_device_credentials
from infra.local.children import (
    STOP_GRACE_S,
    Child,
    LocalStackError,
    Spawner,
    child_environment,
    stop_stage,
)
from infra.local.provision import DEFAULT_REGION, provision
from infra.local.provision_context import AwsClients, ProvisionResult, SqlCheck
from infra.local.sqs_consumers import SqsConcurrency
from infra.local.stack_broker import broker_security, start_broker, wait_broker
from infra.local.stack_launch import Launcher
from infra.local.stack_monitor import StackMonitor
from infra.local.stack_moto import start_moto_servers, wait_moto_servers
from infra.local.stack_record import StateRecord
from infra.local.stack_state import (
    state_document,
    stop_recorded_leftovers,
)
from infra.local.supervisor import (
    MARKER_VARIABLE,
    PidFile,
    RestartPolicy,
    RestartRecord,
    StackAlreadyRunning,
    SupervisorLock,
    clean_leftovers,
)
from infra.local.template import load_template

log = logging.getLogger(__name__)

MONITOR_INTERVAL_S: Final = 0.5


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
        sqs_concurrency: SqsConcurrency | None = None,
    ) -> None:
        self.project_root = project_root.resolve()
        self.state_dir = state_dir.resolve()
        self.region = region
        self.seed_summary: dict[str, Any] | None = None
        self._record = StateRecord(self.state_dir)
        self._external_mqtt_url = mqtt_url
        self._param_overrides = dict(param_overrides or {})
        # Local-only: function logical id -> seconds between scheduled runs (see `provision`).
        self._schedule_seconds = dict(schedule_seconds or {})
        self._seed = seed
        # Run only these functions (template logical ids); None runs every one.
        self._only = frozenset(only_functions) if only_functions is not None else None
        self._sql_check = sql_check
        self._template_path = template_path or self.project_root / "template.yaml"  # tests only
        self._stages: list[list[Child]] = []
        self._stop_lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._monitor: threading.Thread | None = None
        self._lock = SupervisorLock(self.state_dir)
        self._pid_file = PidFile(self.state_dir)
        env = child_environment(self.project_root, region)
        env[MARKER_VARIABLE] = str(self.state_dir)  # how /proc tells this stack's processes
        self._spawner = Spawner(self.project_root, self.logs_dir, env, self._pid_file)
        self._launcher = Launcher(
            self._spawner,
            self._stages,
            self.state_dir,
            region,
            worker_module,
            bridge_module,
            sqs_concurrency or SqsConcurrency(),
        )
        self._supervision = StackMonitor(
            self._stages,
            self._spawner,
            restart_policy or RestartPolicy(),
            lambda child: self._record.restarted(child, self.restarts.by_name),
        )
        self._api_state: dict[str, Any] = {}  # api_url, apis, iot_data_url, users
        self._broker_security: list[str] = []
        self._service_endpoints: dict[str, str] = {}  # boto3 service -> its dedicated server

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def state_path(self) -> Path:
        return self._record.path

    @property
    def state(self) -> dict[str, Any] | None:
        """What local.json says, once the stack is up."""
        return self._record.state

    @property
    def restarts(self) -> RestartRecord:
        return self._supervision.restarts

    @property
    def failure(self) -> str | None:
        return self._supervision.failure

    @property
    def failure_reason(self) -> str | None:
        return self._supervision.failure_reason

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
        self._monitor = threading.Thread(
            target=self._supervision.watch,
            args=(self._stopped, self._stop_lock, self._stopping, MONITOR_INTERVAL_S),
            name="stack-monitor",
            daemon=True,
        )
        self._monitor.start()
        return state

    def _start_all(self, started: float) -> dict[str, Any]:
        services: list[Child] = []
        self._stages.append(services)
        self._broker_security = broker_security(
            self.state_dir, load_template(self._template_path), self.region, self._param_overrides
        )
        moto_servers = start_moto_servers(self._spawner)
        services.extend(moto_servers.values())
        mqtt_url, broker = start_broker(
            self._spawner,
            self.state_dir,
            self.logs_dir,
            self._broker_security,
            self._external_mqtt_url,
        )
        services.extend([broker] if broker else [])
        endpoint_url, self._service_endpoints = wait_moto_servers(self._spawner, moto_servers)
        wait_broker(mqtt_url, broker)
        log.info("mosquitto on %s%s", mqtt_url, "" if broker else " (external)")
        self._start_iot_data(mqtt_url)
        if COGNITO_PARAMETER in load_template(self._template_path).parameters:
            self._param_overrides.setdefault(COGNITO_PARAMETER, endpoint_url)
        result = provision(
            load_template(self._template_path),
            AwsClients.for_endpoint(endpoint_url, self.region),
            endpoint_url=endpoint_url,
            region=self.region,
            param_overrides=self._param_overrides,
            sql_check=self._sql_check,
            schedule_seconds=self._schedule_seconds,
        )
        _log_not_emulated(result)
        result = select_functions(result, self._only)
        functions = self._launcher.start_workers(result)
        self._launcher.start_bridge(result, functions, mqtt_url, endpoint_url)
        self._api_state.update(
            api_state(self._launcher.start_apis(result, functions), result.resources)
        )
        if self._seed:
            self.seed_summary = _seed(result, endpoint_url, self.region, self.state_dir)
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
        _stop_leftovers(self.state_dir)
        self._record.clear_stale()
        self._pid_file.write()
        # Checkpoints index moto's streams, which start empty with the new moto server.
        shutil.rmtree(self._launcher.checkpoints_dir, ignore_errors=True)
        for directory in (self.logs_dir, self._launcher.specs_dir, self.state_dir / "mosquitto"):
            directory.mkdir(parents=True, exist_ok=True)

    def _start_iot_data(self, mqtt_url: str) -> None:
        """The IoT data-plane stand-in, when the template takes its URL (see api_stack)."""
        if IOT_DATA_PARAMETER not in load_template(self._template_path).parameters:
            return
        url = self._launcher.start_iot_data(mqtt_url)
        self._param_overrides.setdefault(IOT_DATA_PARAMETER, url)
        self._api_state["iot_data_url"] = url

    def _write_state(
        self,
        result: ProvisionResult,
        functions: dict[str, dict[str, Any]],
        endpoint_url: str,
        mqtt_url: str,
        started: float,
    ) -> dict[str, Any]:
        children = [child for stage in self._stages for child in stage]
        state = state_document(
            region=self.region,
            endpoint_url=endpoint_url,
            mqtt_url=mqtt_url,
            state_dir=self.state_dir,
            api_state=self._api_state,
            result=result,
            functions=functions,
            pids={child.name: child.pid for child in children},
            startup_seconds=round(time.monotonic() - started, 3),
            restarts=self.restarts.by_name,
            service_endpoints=self._service_endpoints,
        )
        return self._record.write(state)

    # ---- running -------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until the stack fails (return the culprit's name) or `timeout` passes (None);
        `failure_reason` then says what happened."""
        self._supervision.failed.wait(timeout)
        return self.failure

    # ---- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the children in reverse start order (SIGTERM, then SIGKILL); idempotent."""
        with self._stop_lock:
            self._stopping.set()
            while self._stages:
                stop_stage(self._stages.pop())
            self._record.remove()
            if self._lock.held:
                self._pid_file.remove()
                self._lock.release()
            self._stopped.set()
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(timeout=2 * MONITOR_INTERVAL_S)


def select_functions(result: ProvisionResult, only: frozenset[str] | None) -> ProvisionResult:
    """Only the functions asked for, and the HTTP APIs whose routes all reach them."""
    if only is None:
        return result
    unknown = sorted(only - set(result.workers))
    if unknown:
        raise LocalStackError(f"no such function in the template: {', '.join(unknown)}")
    workers = {lid: spec for lid, spec in result.workers.items() if lid in only}
    apis = {
        lid: api
        for lid, api in result.apis.items()
        if all(route["function"] in workers for route in api["routes"])
    }
    return replace(result, workers=workers, apis=apis)


def _stop_leftovers(state_dir: Path) -> None:
    """Stop what a dead stack in this state directory left running."""
    leftovers = clean_leftovers(state_dir, STOP_GRACE_S)
    leftovers += stop_recorded_leftovers(state_dir)
    if leftovers:
        log.warning("stopped what a dead stack left running: %s", ", ".join(leftovers))


def _log_not_emulated(result: ProvisionResult) -> None:
    for item in result.not_emulated:
        log.info(
            "not emulated locally: %s (%s): %s",
            item["logical_id"],
            item["type"],
            item.get("reason", ""),
        )


def _seed(
    result: ProvisionResult, endpoint_url: str, region: str, state_dir: Path
) -> dict[str, Any]:
    """The demo seed, and a certificate for each seeded device."""
    try:
        from infra.local.seed import seed_demo
        from infra.seeding import demo_devices
    except ImportError as exc:
        raise LocalStackError(f"cannot seed: infra.local.seed is missing ({exc})") from exc
    summary = seed_demo(dict(result.resources), endpoint_url, region)
    try:
        for device in demo_devices():
            issue_device_credentials(state_dir, device.thing)
    except CredentialsError as exc:
        raise LocalStackError(f"cannot issue a seeded device's credentials: {exc}") from exc
    log.info("seeded demo data: %s", summary)
    return summary
