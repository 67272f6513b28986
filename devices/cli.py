"""``aftercare device ...``: run a simulated device agent, or raise one fault through it.

A thin layer over ``devices.agent``: parse arguments, build an ``AgentConfig``, call the agent,
print. Handlers return the process exit code and report failures as one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from aftercare.models.payloads import FaultReport, ReadingValue, Severity
from pydantic import ValidationError

from devices.agent import DeviceAgent
from devices.config import (
    AgentConfig,
    AgentCredentials,
    IngestRules,
    MqttProtocol,
    credential_files,
    parse_broker_url,
    read_agent_file,
)
from devices.errors import AgentBusyError, AgentError
from devices.outbox import EntryStatus, OutboxError

LOGGER = logging.getLogger(__name__)

STATE_FILE = Path(".aftercare") / "local.json"
DEFAULT_WAIT_ACK_S = 10.0
RUN_CONNECT_TIMEOUT_S = 10.0
RUN_DRAIN_TIMEOUT_S = 5.0
OUTBOX_POLL_S = 1.0

Handler = Callable[[argparse.Namespace], int]


class StateFileError(RuntimeError):
    """The local stack's state file is missing or does not name an MQTT broker."""


def find_state_file(start: Path | None = None) -> Path | None:
    """``.aftercare/local.json`` in ``start`` (default: the working directory) or a parent."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / STATE_FILE
        if candidate.is_file():
            return candidate
    return None


def _local_state(state_file: Path | None) -> tuple[Path, Any]:
    """The running local stack's state file and its parsed JSON (StateFileError if none).

    Without ``state_file``, looks for ``.aftercare/local.json`` here and in parent directories.
    """
    path = state_file or find_state_file()
    if path is None:
        raise StateFileError(
            f"no local stack state file ({STATE_FILE}) here or in a parent directory;"
            " start the stack with `aftercare local up` or pass --broker mqtt://HOST:PORT"
        )
    try:
        return path, json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise StateFileError(f"{path} does not exist; is the local stack up?") from exc
    except (OSError, ValueError) as exc:
        raise StateFileError(f"cannot read {path}: {exc}") from exc


def default_broker_url(state_file: Path | None = None) -> str:
    """The running local stack's ``mqtt_url``, read from its state file.

    Without ``state_file``, looks for ``.aftercare/local.json`` here and in parent directories.
    """
    path, data = _local_state(state_file)
    url = data.get("mqtt_url") if isinstance(data, dict) else None
    if not isinstance(url, str):
        raise StateFileError(f"{path} has no mqtt_url; is the local stack up?")
    try:
        parse_broker_url(url)
    except ValueError as exc:
        raise StateFileError(f"{path}: {exc}") from exc
    return url


def default_ingest_rules(state_file: Path | None = None) -> IngestRules | None:
    """The running local stack's Basic Ingest rules (`ingest_rules` in its state file); None
    without a state file or when it names none (the device then reports through the broker)."""
    try:
        _, data = _local_state(state_file)
    except StateFileError:
        return None
    return IngestRules.of_stack(data) if isinstance(data, dict) else None


def default_outbox_dir(state_file: Path | None = None) -> Path:
    """``.aftercare/devices`` next to the state file (or in the working directory)."""
    path = state_file or find_state_file()
    return (path.parent if path else STATE_FILE.parent) / "devices"


def local_credentials(thing: str, state_file: Path | None = None) -> dict[str, Path]:
    """A seeded or provisioned local device's certificate files, from the stack's state dir.

    The local broker takes only clients with a certificate from the stack's CA; the stack
    writes each local device's files to ``.aftercare/devices/<thing>/``.
    """
    directory = default_outbox_dir(state_file) / thing
    files = credential_files(directory)
    if not all(path.is_file() for path in files.values()):
        raise StateFileError(
            f"no credentials for {thing} in {directory}: it is not a seeded local device;"
            f" provision it (`aftercare devices provision --thing {thing} ...`) or pass"
            " --ca-file, --cert-file and --key-file"
        )
    return files


def parse_reading(text: str) -> tuple[str, ReadingValue]:
    """``name=value``; the value becomes a bool, int or float when it reads as one."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return name, lowered == "true"
    for convert in (int, float):
        try:
            return name, convert(raw)
        except ValueError:
            continue
    return name, raw


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``device`` command group (``device run``, ``device fault``)."""
    device = subparsers.add_parser(
        "device",
        help="run a simulated device agent, or raise a fault through it",
        description="Simulated device: reports faults over MQTT and answers diagnostics.",
    )
    actions = device.add_subparsers(dest="device_command", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="run one device agent in the foreground")
    run.description = run_device.__doc__
    _add_agent_options(run)
    run.add_argument(
        "--remote-fixable",
        action="append",
        default=[],
        metavar="CODE",
        help="a fault code this device can fix itself on reset_component (repeatable)",
    )
    run.add_argument(
        "--telemetry-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="publish telemetry this often (default: never)",
    )
    run.set_defaults(func=_guarded(run_device))

    fault = actions.add_parser("fault", help="raise one fault through the device agent")
    fault.description = raise_device_fault.__doc__
    _add_agent_options(fault)
    fault.add_argument("--code", required=True, help="fault code from the catalog")
    fault.add_argument("--severity", choices=[s.value for s in Severity])
    fault.add_argument(
        "--reading",
        action="append",
        default=[],
        type=parse_reading,
        metavar="NAME=VALUE",
        help="a reading to attach (repeatable)",
    )
    fault.add_argument("--message", help="free text (at most 1 KiB)")
    fault.add_argument("--fault-id", help="reuse an id to retry a fault already raised")
    fault.add_argument(
        "--wait-ack",
        type=float,
        default=DEFAULT_WAIT_ACK_S,
        metavar="SECONDS",
        help=f"how long to wait for the broker's PUBACK (default {DEFAULT_WAIT_ACK_S:g})",
    )
    fault.set_defaults(func=_guarded(raise_device_fault))


def run_device(args: argparse.Namespace) -> int:
    """Run one device agent in the foreground until Ctrl-C (or SIGTERM): it answers diagnostics
    requests, delivers its outbox, and sends faults that `device fault` hands over to it."""
    _configure_logging(logging.INFO)
    config = _agent_config(
        args, outbox_poll_s=OUTBOX_POLL_S, remote_fixable_codes=frozenset(args.remote_fixable)
    )
    agent = DeviceAgent(config)
    stopping = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        agent.start(connect_timeout=RUN_CONNECT_TIMEOUT_S)
        LOGGER.info("device %s running; Ctrl-C stops it", config.thing)
        interval = args.telemetry_every if args.telemetry_every > 0 else None
        while not stopping.wait(interval):
            agent.publish_telemetry()
    except KeyboardInterrupt:
        LOGGER.info("stopping device %s", config.thing)
    finally:
        signal.signal(signal.SIGTERM, previous)
        agent.stop(drain_timeout=RUN_DRAIN_TIMEOUT_S)
    return 0


def raise_device_fault(args: argparse.Namespace) -> int:
    """Raise one fault through the device agent, wait for the broker's PUBACK and print the
    FaultReport JSON. If `device run` is already running for the thing, the fault is handed to
    it through the shared outbox."""
    _configure_logging(logging.ERROR)
    config = _agent_config(args)
    agent = DeviceAgent(config)
    deadline = time.monotonic() + args.wait_ack
    try:
        _start_unless_running(agent, args.wait_ack)
        report = agent.raise_fault(
            args.code,
            Severity(args.severity) if args.severity else None,
            readings=dict(args.reading),
            message=args.message,
            fault_id=args.fault_id,
        )
        status = agent.wait_delivered(report.fault_id, max(deadline - time.monotonic(), 0.0))
        problem = agent.last_problem
    finally:
        agent.stop(drain_timeout=0)
    return _report_delivery(report, status, problem, config)


def _start_unless_running(agent: DeviceAgent, connect_timeout: float) -> None:
    try:
        agent.start(connect_timeout=connect_timeout)
    except AgentBusyError:
        LOGGER.info("%s: handing the fault to the running agent", agent.config.thing)


def _report_delivery(
    report: FaultReport, status: EntryStatus, problem: str | None, config: AgentConfig
) -> int:
    if status is EntryStatus.DELIVERED:
        print(report.to_json_bytes().decode())
        return 0
    if status is EntryStatus.REJECTED:
        _fail(f"the broker rejected fault {report.fault_id}")
        return 1
    _fail(
        f"fault {report.fault_id} was not acknowledged in time ({problem or 'no PUBACK yet'});"
        f" it stays queued in {config.outbox_path} and goes out with the next agent run"
    )
    return 1


def _add_agent_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--thing", help="IoT thing name of the device (or from --config)")
    parser.add_argument(
        "--config",
        "--credentials",
        dest="config",
        type=Path,
        metavar="PATH",
        help="agent.json (or its directory) from `aftercare devices provision`",
    )
    parser.add_argument(
        "--broker", metavar="URL", help="mqtt://HOST:PORT or mqtts://HOST:8883 (default: local)"
    )
    parser.add_argument(
        "--state-file", type=Path, help=f"local stack state file (default: find {STATE_FILE})"
    )
    parser.add_argument("--outbox-dir", type=Path, metavar="DIR", help="where outboxes live")
    parser.add_argument("--firmware", help="firmware version to report (default 1.0.0)")
    parser.add_argument("--model", help="product model of the device")
    parser.add_argument(
        "--protocol", choices=[p.value for p in MqttProtocol], default=MqttProtocol.V5.value
    )
    parser.add_argument(
        "--via-broker",
        action="store_true",
        help="report faults, telemetry and diagnostics answers through the message broker"
        " instead of straight to the stack's rules (Basic Ingest, the default when agent.json"
        " or the local stack names them)",
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        help="CA bundle for mqtts:// (AWS IoT: Amazon CA; local stack: its own CA)",
    )
    parser.add_argument(
        "--cert-file",
        type=Path,
        help="X.509 client certificate (PEM; default on the local stack: the thing's own"
        " from .aftercare/devices/THING/)",
    )
    parser.add_argument("--key-file", type=Path, help="private key of the client certificate")


def _agent_config(args: argparse.Namespace, **extra: Any) -> AgentConfig:
    file = read_agent_file(args.config) if args.config else None
    thing = args.thing or (file.thing if file else None)
    if thing is None:
        raise ValueError("pass --thing, or --config with the device's agent.json")
    if file and thing != file.thing:
        raise ValueError(f"--thing {thing} does not match {file.thing} in {args.config}")
    broker_url = args.broker or (file.broker_url if file else default_broker_url(args.state_file))
    tls_files: dict[str, Any] = {
        "ca_file": args.ca_file or (file.ca_file if file else None),
        "cert_file": args.cert_file or (file.cert_file if file else None),
        "key_file": args.key_file or (file.key_file if file else None),
    }
    ingest = file.ingest_rules if file else None
    if not file and not args.broker:
        ingest = default_ingest_rules(args.state_file)
    local_tls = not args.broker and not file and parse_broker_url(broker_url).tls
    if local_tls and not any(tls_files.values()):
        tls_files = dict(local_credentials(thing, args.state_file))
    return AgentConfig(
        thing=thing,
        broker_url=broker_url,
        outbox_dir=args.outbox_dir or _outbox_dir(file, args.state_file),
        firmware=args.firmware or (file.firmware if file else "1.0.0"),
        model=args.model or (file.model if file else None),
        protocol=MqttProtocol(args.protocol),
        ingest_rules=None if args.via_broker else ingest,
        **tls_files,
        **extra,
    )


def _outbox_dir(file: AgentCredentials | None, state_file: Path | None) -> Path:
    """Next to the device's credentials, or the local stack's devices directory."""
    return file.directory / "outbox" if file else default_outbox_dir(state_file)


def _guarded(handler: Handler) -> Handler:
    """Turn expected failures into one line on stderr and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (StateFileError, AgentError, OutboxError, ValueError) as exc:
            _fail(_one_line(exc))
            return 1

    run.__doc__ = handler.__doc__
    return run


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'input'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
    return " ".join(str(exc).split())


def _fail(message: str) -> None:
    print(f"aftercare device: {message}", file=sys.stderr)


def _configure_logging(level: int) -> None:
    """Give the command readable logs unless the application configured logging already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
