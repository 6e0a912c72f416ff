"""A provider's quota: at most so many sends a second on one channel, however many messages a
burst brings (aiolimiter's leaky bucket; `*_CONCURRENCY` bounds the requests in flight
besides). A message waits for its turn before its request, holding its place among the
partition's messages in flight, so a long burst slows the reading of new requests instead of
piling them up in memory. The quota is per delivery replica: divide the provider's by the
replicas."""

from __future__ import annotations

import time

from aiolimiter import AsyncLimiter

from journeys_contracts.deliveries import DeliveryRequested
from journeys_delivery.channels import Channel, Outcome
from journeys_delivery.metrics import RATE_WAIT_SECONDS


class RateLimited:
    """`channel`, starting at most `per_second` sends a second (a burst of up to one second's
    worth at once, then evenly)."""

    def __init__(self, channel: Channel, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("a rate limit needs per_second > 0")
        self.name = channel.name
        self._channel = channel
        # Below one a second, one send per 1/rate seconds: a bucket of one.
        self._limiter = (
            AsyncLimiter(per_second, 1.0) if per_second >= 1 else AsyncLimiter(1, 1 / per_second)
        )

    async def send(self, request: DeliveryRequested) -> Outcome:
        started = time.perf_counter()
        async with self._limiter:
            RATE_WAIT_SECONDS.labels(self.name).observe(time.perf_counter() - started)
            return await self._channel.send(request)

    async def close(self) -> None:
        await self._channel.close()


def limited(channel: Channel, per_second: float) -> Channel:
    """`channel` under a rate limit; as it is for 0 (no limit)."""
    return channel if per_second == 0 else RateLimited(channel, per_second)
