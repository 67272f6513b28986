"""How the local stack's small HTTP processes run: serve, announce, stop on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import signal
import threading
from http.server import ThreadingHTTPServer
from types import FrameType


def serve_until_stopped(server: ThreadingHTTPServer, name: str) -> None:
    """Serve in a thread, print ``READY {"url": …}`` for the orchestrator, return on a signal."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    threading.Thread(target=server.serve_forever, name=f"{name}-http", daemon=True).start()
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(f"READY {json.dumps({'url': f'http://{host}:{port}'})}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
