"""The fault suite's TCP proxy: forwards, refuses while down, forwards again when up."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.faults.proxy import TcpProxy


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(payload)
        return conn.recv(4096)


def test_forwards_then_cuts_open_connections_and_refuses_then_comes_back(echo_port: int) -> None:
    with TcpProxy(echo_port) as proxy:
        assert _roundtrip(proxy.port, b"hello") == b"hello"
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        held.sendall(b"x")
        assert held.recv(10) == b"x"

        proxy.down()
        assert held.recv(10) == b""  # the open connection was closed
        held.close()
        with pytest.raises(ConnectionRefusedError):
            _roundtrip(proxy.port, b"again")

        proxy.up()
        assert _roundtrip(proxy.port, b"back") == b"back"
