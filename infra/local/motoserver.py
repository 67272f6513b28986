"""A moto server that serves ONE request at a time.

moto's stock server is threaded and its backends take no locks, so two concurrent conditional
writes (or TransactWriteItems) can both pass their condition. Here every request runs under one
global lock, from reading its body to producing the last byte of its response, which makes each
API call atomic with respect to every other — the guarantee the domain code relies on in AWS.

The one exception is an SQS long poll: while `ReceiveMessage` waits for messages it gives the
lock up (otherwise the `SendMessage` it is waiting for could never run) and takes it back before
looking at the queue again.

With `AFTERCARE_MOTO_PROFILE_DIR` set, the server profiles (cProfile) what it does under the
lock and writes `moto-<port>-<pid>.prof` there when it stops: where a saturated server's time goes.

`GET /_local/stats` answers (without waiting for the lock) the requests served and the seconds
the lock was held per operation since start, as JSON: what a benchmark reads to tell requests
per operation and how busy the one-at-a-time server was.

Run it with `python -m infra.local.motoserver --host 127.0.0.1 --port P`; it prints
`READY http://HOST:PORT` on stdout once it is listening (`--port 0` picks a free port).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs

from werkzeug.serving import BaseWSGIServer, make_server

from infra.local.moto_cors import CorsApp
from infra.local.moto_forward import ForwardingApp
from infra.local.profiling import profile_path

log = logging.getLogger("infra.local.motoserver")
STATS_PATH = "/_local/stats"
# A directory: each server profiles its serial work and writes `moto-<port>-<pid>.prof` there on
# exit (`infra.local.profiling.profile_path`: `make profile` finds a process's dump by its pid).
PROFILE_VARIABLE = "AFTERCARE_MOTO_PROFILE_DIR"
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class SerialRequests:
    """WSGI middleware running the wrapped application for one request at a time."""

    def __init__(self, app: WsgiApp, stats_every_s: float = 10.0) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._owner = threading.local()
        self.stats = RequestStats(stats_every_s)
        # With --profile: cProfile of what runs under the lock (one request at a time, so one
        # profiler sees the server's whole serial work; a long poll's wait is left out).
        self.profiler: cProfile.Profile | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if environ.get("PATH_INFO") == STATS_PATH:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(self.stats.totals()).encode()]
        # Read the body before queueing for the lock, so a slow client cannot stall others.
        _buffer_request_body(environ)
        with self._lock:
            self._owner.holds_lock = True
            self._owner.released_s = 0.0
            began, began_cpu = time.perf_counter(), time.thread_time()
            try:
                return self._run(environ, start_response)
            finally:
                self._owner.holds_lock = False
                held = time.perf_counter() - began - self._owner.released_s
                self.stats.record(_operation(environ), held, time.thread_time() - began_cpu)

    def _run(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        self._profile(True)
        try:
            result = self._app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        finally:
            self._profile(False)

    def _profile(self, on: bool) -> None:
        if self.profiler is not None:
            self.profiler.enable() if on else self.profiler.disable()

    @property
    def held_here(self) -> bool:
        """True when the calling thread is the one serving the current request."""
        return bool(getattr(self._owner, "holds_lock", False))

    @contextmanager
    def released(self) -> Iterator[None]:
        """Give the lock up while the current request waits (no-op outside a request)."""
        if not self.held_here:
            yield
            return
        self._owner.holds_lock = False
        self._profile(False)
        self._lock.release()
        left = time.perf_counter()
        try:
            yield
        finally:
            self._lock.acquire()
            self._profile(True)
            self._owner.released_s += time.perf_counter() - left
            self._owner.holds_lock = True


def _operation(environ: dict[str, Any]) -> str:
    """`Service.Operation` (e.g. `DynamoDB.PutItem`, `SNS.Publish`), else method and path."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        service, _, operation = str(target).rpartition(".")
        return f"{service.split('_')[0].removeprefix('Amazon')}.{operation}"
    action = _query_action(environ)
    if action:
        return action
    return f"{environ.get('REQUEST_METHOD')} {str(environ.get('PATH_INFO', ''))[:40]}"


def _query_action(environ: dict[str, Any]) -> str | None:
    """The `Action` of a query-protocol request (SNS, IAM, ...), with the service's name."""
    if not str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded"):
        return None
    body = environ.get("wsgi.input")
    values = (
        parse_qs(body.getvalue().decode("ascii", "replace")) if isinstance(body, io.BytesIO) else {}
    )
    action = values.get("Action", [None])[0]
    if not action:
        return None
    credential = str(environ.get("HTTP_AUTHORIZATION", "")).split("Credential=")[-1].split("/")
    service = credential[3].upper() if len(credential) > 3 else ""
    return f"{service}.{action}" if service else action


class RequestStats:
    """Requests served and time spent per operation, logged periodically (capacity planning:
    every request holds the one-at-a-time lock).

    `busy` is wall time under the lock; `cpu` is the CPU the serving thread used meanwhile. On a
    loaded machine the two part: the difference is time the server waited for a core (or for
    the GIL) while holding the lock, which other requests wait behind too.
    """

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._counts: Counter[str] = Counter()
        self._seconds: dict[str, float] = {}
        self._cpu_seconds = 0.0
        self._since = time.monotonic()
        self._started = time.monotonic()
        self._all_counts: Counter[str] = Counter()
        self._all_seconds: dict[str, float] = {}
        self._totals_lock = threading.Lock()  # the stats request does not take the serial lock

    def record(self, operation: str, seconds: float, cpu_seconds: float = 0.0) -> None:
        self._counts[operation] += 1
        self._seconds[operation] = self._seconds.get(operation, 0.0) + seconds
        self._cpu_seconds += cpu_seconds
        with self._totals_lock:
            self._all_counts[operation] += 1
            self._all_seconds[operation] = self._all_seconds.get(operation, 0.0) + seconds
        if time.monotonic() - self._since >= self._every_s:
            self.flush()

    def totals(self) -> dict[str, Any]:
        """Everything since start: {uptime_s, operations: {name: {requests, busy_s}}}."""
        with self._totals_lock:
            operations = {
                op: {"requests": count, "busy_s": self._all_seconds[op]}
                for op, count in self._all_counts.items()
            }
        return {"uptime_s": time.monotonic() - self._started, "operations": operations}

    def flush(self) -> None:
        elapsed = max(time.monotonic() - self._since, 1e-9)
        if self._counts:
            busy = sum(self._seconds.values())
            top = ", ".join(
                f"{op} {self._counts[op]}x/{self._seconds[op]:.2f}s"
                for op in sorted(self._seconds, key=self._seconds.__getitem__, reverse=True)[:8]
            )
            log.info(
                "%.0fs: %d requests, busy %.0f%% (cpu %.0f%%): %s",
                elapsed,
                self._counts.total(),
                100 * busy / elapsed,
                100 * self._cpu_seconds / elapsed,
                top,
            )
        self._counts.clear()
        self._seconds.clear()
        self._cpu_seconds = 0.0
        self._since = time.monotonic()


def _buffer_request_body(environ: dict[str, Any]) -> None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    if length > 0:
        environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length))


_PATCH_LOCK = threading.Lock()
_long_poll_gates: list[SerialRequests] = []


def _release_during_sqs_long_polls(gate: SerialRequests) -> None:
    """Make moto's SQS long-poll wait step out of `gate` while it sleeps.

    moto's `ReceiveMessage` loops: scan the queue, then `Queue.wait_for_messages(1)` until a
    message arrives or the wait time is over. Only that sleep runs without the lock; every scan
    and state change still happens inside the request's turn.
    """
    from moto.sqs.models import Queue

    with _PATCH_LOCK:
        _long_poll_gates.append(gate)
        if getattr(Queue.wait_for_messages, "_releases_request_lock", False):
            return
        original = Queue.wait_for_messages

        def wait_for_messages(self: Queue, timeout: int) -> None:
            with _released_all():
                original(self, timeout)

        wait_for_messages._releases_request_lock = True  # type: ignore[attr-defined]
        Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]


@contextmanager
def _released_all() -> Iterator[None]:
    # A request thread belongs to exactly one server, so at most one gate is actually held.
    holding = [gate for gate in _long_poll_gates if gate.held_here]
    if not holding:
        yield
        return
    with holding[0].released():
        yield


def create_serial_app() -> SerialRequests:
    """moto's server application (as `moto.server` builds it) behind the one-at-a-time gate."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from infra.local import moto_patches, moto_speedups

    moto_patches.apply()
    moto_speedups.apply()
    gate = SerialRequests(DomainDispatcherApplication(create_backend_app))
    _release_during_sqs_long_polls(gate)
    return gate


def make_serial_server(
    host: str,
    port: int,
    forwards: Mapping[str, str] | None = None,
    profiler: cProfile.Profile | None = None,
) -> BaseWSGIServer:
    """A threaded werkzeug server (accepting connections concurrently) over the serial app;
    `forwards` (server name -> URL) passes the services of dedicated servers on to them
    (`infra.local.moto_forward`)."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    gate = create_serial_app()
    gate.profiler = profiler
    app: WsgiApp = gate
    if forwards:
        app = ForwardingApp(gate, forwards, gate.stats.totals, STATS_PATH)
    # Browsers (the web console's sign-in) call it too: answer CORS as AWS endpoints do.
    app = CorsApp(app)
    return make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)


class SerialMotoServer:
    """In-process variant for tests, shaped like moto's `ThreadedMotoServer`."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, forwards: Mapping[str, str] | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._forwards = dict(forwards or {})
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = make_serial_server(self._host, self._port, self._forwards)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="serial-moto", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"

    def get_host_and_port(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("SerialMotoServer.start() has not been called")
        return self._server.host, self._server.port

    def stop(self) -> None:
        """Stop serving and forget every resource: moto's backends are process-global, and an
        in-process server must not leave its state to the next test."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()

    def __enter__(self) -> SerialMotoServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--log-requests", action="store_true", help="log every request")
    parser.add_argument(
        "--forward",
        action="append",
        default=[],
        metavar="SERVER=URL",
        help="pass a dedicated server's services on to it (infra.local.endpoints); repeatable",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.log_requests:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    forwards = dict(item.split("=", 1) for item in args.forward)
    profile_dir = os.environ.get(PROFILE_VARIABLE)
    profiler = cProfile.Profile() if profile_dir else None
    server = make_serial_server(args.host, args.port, forwards, profiler)
    # moto sends some requests to itself (e.g. SNS -> SQS); it finds itself through MOTO_PORT.
    os.environ.setdefault("MOTO_PORT", str(server.port))

    def shut_down(signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    print(f"READY http://{server.host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if profiler is not None and profile_dir:
            profiler.dump_stats(profile_path(Path(profile_dir), f"moto-{server.port}", os.getpid()))
    return 0


if __name__ == "__main__":
    code = main()
    # The in-memory backends die with the process anyway: skip tearing a large heap down object
    # by object at exit (seconds on a loaded machine, past the stack's stop grace period).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
