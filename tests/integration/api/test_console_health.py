"""The health page's readiness, asked of real HTTP servers on loopback: a name with one address
per pod (a headless Service) is asked at every address, and is ready only when all are."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from journeys_api.console.health import Service, readiness
from journeys_stack.ports import free_port

pytestmark = pytest.mark.integration


def _answering(status: int, body: dict[str, object]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = json.dumps(body).encode()
            self.send_response(status if self.path == "/ready" else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def _server(host: str, port: int, status: int, body: dict[str, object]) -> Iterator[None]:
    server = ThreadingHTTPServer((host, port), _answering(status, body))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


async def test_every_replica_behind_a_name_is_asked() -> None:
    port = free_port()
    pods = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]  # the third: nothing listens

    async def headless(host: str, asked_port: int) -> list[str]:
        assert (host, asked_port) == ("journeys-executor-ops", port)
        return pods

    async def one_pod(host: str, asked_port: int) -> list[str]:
        return [host]

    failing = {"checks": {"kafka": False, "database": True}}
    with _server("127.0.0.1", port, 200, {"checks": {"kafka": True}}), \
            _server("127.0.0.2", port, 503, failing):  # fmt: skip
        found = await readiness({"executor": f"http://journeys-executor-ops:{port}"}, headless)
        alone = await readiness({"projector": f"http://127.0.0.1:{port}/"}, one_pod)

    assert found == [
        Service(
            "executor",
            "not ready",
            "1 of 3 ready; 127.0.0.2: not ready "
            "(failing: kafka); 127.0.0.3: unreachable (ConnectError)",
        )
    ]
    assert alone == [Service("projector", "ready", "")]
