"""One HTTP client pool per channel (aiohttp): at most `concurrency` requests in flight, each
given up after `timeout` seconds. aiohttp, not httpx: under load httpx's per-request overhead
was most of the delivery service's time (profiled at about 200 messages/s)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp


class HttpPool:
    def __init__(self, timeout: float, concurrency: int) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._concurrency = concurrency
        # Waiting for a turn is not the provider's time: the timeout starts with the request.
        self._slots = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the service's event loop.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._concurrency)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def post(self, url: str, **options: Any) -> tuple[int, str | None] | str:
        """(status, Retry-After) of the answer; or, when there was none, why, in our words:
        `timed out`, `unreachable: <error type>`."""
        try:
            # No redirects: aiohttp would follow a 301/302/303 with a GET without the message,
            # and a 2xx there would read as sent. A 3xx is the provider's configuration to fix.
            post = self._client().post(url, allow_redirects=False, **options)
            async with self._slots, post as response:
                await response.read()
                return response.status, response.headers.get("Retry-After")
        except TimeoutError:
            return "timed out"
        except (aiohttp.ClientError, OSError) as exc:
            return f"unreachable: {type(exc).__name__}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)  # let the connector close its transports
