"""`aftercare local up|down`: the local stack's command-line face (a thin layer on stack.py)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from infra.local.cfn_yaml import TemplateError
from infra.local.children import LocalStackError
from infra.local.sqs_consumers import DEFAULT_FUNCTION_LIMITS, SqsConcurrency
from infra.local.stack import LocalStack
from infra.local.stack_state import down

STATE_DIR_NAME = ".aftercare"


def project_root(start: Path | None = None) -> Path:
    """The nearest directory holding template.yaml, from `start` (default: cwd) upwards."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "template.yaml").is_file():
            return candidate
    return Path(__file__).resolve().parents[2]


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _seconds(pairs: list[tuple[str, str]]) -> dict[str, float]:
    try:
        return {name: float(value) for name, value in pairs}
    except ValueError as exc:
        raise SystemExit(f"--schedule expects FUNCTION=SECONDS: {exc}") from None


def parse_sqs_concurrency(values: list[str]) -> SqsConcurrency:
    """``K`` caps every SQS-sourced function (replacing the defaults), ``FUNCTION=K`` one."""
    pairs = [value.rpartition("=")[::2] for value in values]
    try:
        every = [int(limit) for name, limit in pairs if not name]
        by_function = {} if every else dict(DEFAULT_FUNCTION_LIMITS)
        by_function.update({name: int(limit) for name, limit in pairs if name})
        return SqsConcurrency(every[-1] if every else 1, by_function)
    except ValueError as exc:
        raise SystemExit(f"--sqs-concurrency expects [FUNCTION=]K, K >= 1: {exc}") from None


def register(subparsers: Any) -> None:
    """Add `local up` and `local down` to the `aftercare` command's subparsers."""
    local = subparsers.add_parser("local", help="run template.yaml on this machine (no AWS)")
    commands = local.add_subparsers(dest="local_command", required=True)

    up = commands.add_parser("up", help="start the local stack in the foreground")
    up.add_argument("--state-dir", type=Path, help="default: <project root>/.aftercare")
    up.add_argument(
        "--mqtt-url",
        help="use this broker instead of our own: mqtts://HOST:PORT configured with"
        " broker_auth.broker_config_lines(STATE_DIR, STATE_DIR/broker/acl) to enforce the IoT"
        " policy (an mqtt:// broker is used anonymously and enforces nothing)",
    )
    up.add_argument(
        "--param",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a template parameter (repeatable); Stage defaults to 'local'",
    )
    up.add_argument(
        "--schedule",
        type=_key_value,
        action="append",
        default=[],
        metavar="FUNCTION=SECONDS",
        help="run a scheduled function (template logical id) this often, locally only; "
        "the template's sweep rates cannot go below a minute (repeatable)",
    )
    up.add_argument(
        "--only",
        action="append",
        metavar="FUNCTION",
        help="start only this function (template logical id, e.g. FaultIntakeFunction; "
        "repeatable); every resource is still created",
    )
    up.add_argument(
        "--sqs-concurrency",
        action="append",
        default=[],
        metavar="[FUNCTION=]K",
        help="process at most K batches of each SQS event source at once (the template's "
        "MaximumConcurrency caps K): K for every function, FUNCTION=K for one (repeatable); "
        "default FaultIntakeFunction=3, 1 for the others",
    )
    up.add_argument("--no-seed", dest="seed", action="store_false", help="skip the demo data")
    up.set_defaults(func=cmd_up)

    stop = commands.add_parser("down", help="stop the local stack started by `local up`")
    stop.add_argument("--state-dir", type=Path, help="default: <project root>/.aftercare")
    stop.set_defaults(func=cmd_down)


def _state_dir(args: argparse.Namespace, root: Path) -> Path:
    return Path(args.state_dir) if args.state_dir else root / STATE_DIR_NAME


def cmd_up(args: argparse.Namespace) -> None:
    """Start the stack, print where it is, and keep it up until Ctrl-C or SIGTERM."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    root = project_root()
    stack = LocalStack(
        root,
        _state_dir(args, root),
        mqtt_url=args.mqtt_url,
        param_overrides=dict(args.param),
        seed=args.seed,
        schedule_seconds=_seconds(args.schedule),
        only_functions=args.only,
        sqs_concurrency=parse_sqs_concurrency(args.sqs_concurrency),
    )
    stop_requested = threading.Event()
    # SIGTERM (`local down`, a supervisor) and SIGHUP (terminal closed) stop in order.
    previous = {
        signum: signal.signal(signum, _setter(stop_requested))
        for signum in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        _run(stack, stop_requested)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _setter(event: threading.Event) -> Any:
    def handle(_signum: int, _frame: FrameType | None) -> None:
        event.set()

    return handle


def _run(stack: LocalStack, stop_requested: threading.Event) -> None:
    try:
        state = stack.start()
    except (LocalStackError, TemplateError, OSError) as exc:
        _fail(f"local up failed: {exc}")
    _print_ready(stack, state)
    failed = None
    try:
        while not stop_requested.is_set() and failed is None:
            failed = stack.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    if failed is not None:
        _fail(f"local stack stopped: {stack.failure_reason or f'{failed} died'}")
    print("local stack stopped", file=sys.stderr)


def _fail(message: str) -> NoReturn:
    print(f"aftercare: {message}", file=sys.stderr)
    raise SystemExit(1)


def _print_ready(stack: LocalStack, state: dict[str, Any]) -> None:
    lines = [
        f"local stack up in {state['startup_seconds']:.2f}s",
        f"  AWS endpoint  {state['aws_endpoint_url']}  (region {state['region']})",
        f"  MQTT broker   {state['mqtt_url']}  (client certificates only, from the local CA"
        f" {state['mqtt_ca_file']}; device credentials in {state['devices_dir']}/THING/)",
        f"  state file    {stack.state_path}",
        f"  logs          {stack.logs_dir}",
    ]
    lines += [
        f"  function      {lid}: {info['invoke_url']}" for lid, info in state["functions"].items()
    ]
    lines += [
        f"  not emulated  {item['logical_id']} ({item['type']}): {item.get('reason', '')}"
        for item in state["not_emulated"]
    ]
    if stack.seed_summary is not None:
        lines.append(f"  seeded        {stack.seed_summary}")
    lines.append("Ctrl-C (or `aftercare local down`) stops it.")
    print("\n".join(lines), flush=True)


def cmd_down(args: argparse.Namespace) -> None:
    """Stop the stack recorded in the state directory."""
    state_dir = _state_dir(args, project_root())
    stopped = down(state_dir)
    if stopped:
        print(f"stopped {', '.join(stopped)}")
    else:
        print(f"no local stack recorded in {state_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m infra.local.cli up|down` without the rest of the engineer CLI."""
    parser = argparse.ArgumentParser(prog="aftercare")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["local", *(argv if argv is not None else sys.argv[1:])])
    try:
        args.func(args)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
