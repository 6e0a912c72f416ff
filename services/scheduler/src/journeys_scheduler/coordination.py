"""What the consuming and firing loops share: dependency health and the locks that order them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Health:
    """What `/ready` reports of the dependencies, as the loops last found them."""

    kafka: bool = True
    postgres: bool = True


@dataclass
class Locks:
    """`fire`: held while a batch is in flight, so a revoke waits for it to be acked.
    `window`: held across a PostgreSQL change or read and the matching window update, so the
    window never misses a stored timer nor resurrects a deleted one."""

    fire: asyncio.Lock = field(default_factory=asyncio.Lock)
    window: asyncio.Lock = field(default_factory=asyncio.Lock)
