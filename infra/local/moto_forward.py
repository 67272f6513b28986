"""The main moto server's doorway to the dedicated ones (see `infra.local.endpoints`).

A request for a service that has a server of its own (recognised by its `X-Amz-Target`) is
passed on to that server as it came and its answer passed back, without taking the main
server's one-at-a-time lock: the server that owns the service serialises it. Clients that know
only the main endpoint (the CLI, tests, the AWS CLI) therefore keep seeing every table; the
stack's own processes talk to the dedicated servers directly.

`GET /_local/stats` on the main server answers the statistics of all of them: the operations of
every server together (each operation lives on exactly one), and under `servers` each one's own
uptime, requests and busy seconds (every server has its own lock, so busy shares are per server).
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from infra.local.endpoints import TARGET_PREFIXES

log = logging.getLogger("infra.local.motoserver")
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
FORWARD_TIMEOUT_S = 60.0  # above any long poll the forwarded services take
STATS_TIMEOUT_S = 5.0
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})
_ENVIRON_HEADERS = {"CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}


class ForwardingApp:
    """WSGI application: the dedicated services' requests to their servers, the rest to `app`."""

    def __init__(
        self,
        app: WsgiApp,
        servers: Mapping[str, str],
        local_totals: Callable[[], dict[str, Any]],
        stats_path: str,
    ) -> None:
        self._app = app
        self._servers = dict(servers)  # server name -> URL
        self._local_totals = local_totals
        self._stats_path = stats_path
        self._routes = [
            (prefix, name) for name in servers for prefix in TARGET_PREFIXES.get(name, ())
        ]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == self._stats_path:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(self.totals()).encode()]
        target = str(environ.get("HTTP_X_AMZ_TARGET") or "")
        for prefix, server in self._routes:
            if target.startswith(prefix):
                return self._forward(server, environ, start_response)
        return self._app(environ, start_response)

    def _forward(
        self, server: str, environ: dict[str, Any], start_response: StartResponse
    ) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        path = str(environ.get("PATH_INFO") or "/")
        if environ.get("QUERY_STRING"):
            path += "?" + str(environ["QUERY_STRING"])
        url = urlsplit(self._servers[server])
        connection = http.client.HTTPConnection(
            url.hostname or "127.0.0.1", url.port, timeout=FORWARD_TIMEOUT_S
        )
        try:
            connection.request(
                str(environ["REQUEST_METHOD"]), path, body=body, headers=request_headers(environ)
            )
            answer = connection.getresponse()
            data = answer.read()
        finally:
            connection.close()
        headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP]
        headers.append(("Content-Length", str(len(data))))
        start_response(f"{answer.status} {answer.reason}", headers)
        return [data]

    def totals(self) -> dict[str, Any]:
        """This server's totals merged with every dedicated server's (see the module doc)."""
        mine = self._local_totals()
        operations: dict[str, dict[str, float]] = {}
        servers = {"main": server_summary(mine)}
        for name, document in [("main", mine), *self._remote_totals()]:
            servers[name] = server_summary(document)
            for op, figures in document["operations"].items():
                into = operations.setdefault(op, {"requests": 0, "busy_s": 0.0})
                into["requests"] += figures["requests"]
                into["busy_s"] += figures["busy_s"]
        return {"uptime_s": mine["uptime_s"], "operations": operations, "servers": servers}

    def _remote_totals(self) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for name, url in self._servers.items():
            try:
                with urllib.request.urlopen(  # noqa: S310 - a local moto server
                    url + self._stats_path, timeout=STATS_TIMEOUT_S
                ) as answer:
                    found.append((name, dict(json.load(answer))))
            except OSError as exc:
                log.warning("no statistics from the %s server (%s): %s", name, url, exc)
        return found


def server_summary(totals: Mapping[str, Any]) -> dict[str, float]:
    """One server's uptime, requests and busy seconds from its `/_local/stats` totals."""
    operations = totals["operations"].values()
    return {
        "uptime_s": totals["uptime_s"],
        "requests": sum(op["requests"] for op in operations),
        "busy_s": sum(op["busy_s"] for op in operations),
    }


def request_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers as the client sent them (WSGI keeps them as `HTTP_*` keys)."""
    headers = {
        _ENVIRON_HEADERS[key]: str(environ[key]) for key in _ENVIRON_HEADERS if environ.get(key)
    }
    for key, value in environ.items():
        if key.startswith("HTTP_") and key != "HTTP_CONNECTION":
            headers[key[5:].replace("_", "-").title()] = str(value)
    return headers
