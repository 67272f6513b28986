"""The local stack's small HTTP servers answer kept-alive requests without Nagle's delay."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from http import HTTPStatus

import pytest

from infra.local.serving import JsonRequestHandler, LocalHttpServer


class _EchoNoDelay(JsonRequestHandler):
    def do_GET(self) -> None:
        nodelay = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        self.send_json(HTTPStatus.OK, {"nodelay": bool(nodelay)})


@pytest.fixture
def server() -> Iterator[LocalHttpServer]:
    srv = LocalHttpServer(("127.0.0.1", 0), _EchoNoDelay)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_kept_alive_connections_send_without_nagle(server: LocalHttpServer) -> None:
    # Given a client keeping one connection open
    conn = http.client.HTTPConnection("127.0.0.1", int(server.server_address[1]), timeout=5)
    try:
        answers = []
        # When it sends two requests on it
        for _ in range(2):
            conn.request("GET", "/")
            response = conn.getresponse()
            answers.append((response.status, response.read(), response.getheader("Connection")))
    finally:
        conn.close()
    # Then both are answered on the same connection, by a socket with TCP_NODELAY set
    # (headers and body are two writes: with Nagle on, each response waited ~40 ms for
    # the client's delayed ACK)
    assert [a[0] for a in answers] == [200, 200]
    assert all(a[1] == b'{"nodelay": true}' for a in answers)
    assert all(a[2] != "close" for a in answers)
