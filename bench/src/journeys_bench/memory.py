"""Resident memory of the services, sampled while a benchmark runs: at rest and at peak; and
whether they are busy."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psutil

MB = 1024 * 1024


class RssSampler:
    """Samples each pid's RSS every `interval` seconds in a thread; `rest` is the first sample."""

    def __init__(self, pids: dict[str, int], interval: float = 0.25) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._interval = interval
        self.rest: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._sample()
        self.rest = dict(self.peak)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        for name, proc in self._procs.items():
            try:
                rss = proc.memory_info().rss / MB
            except psutil.Error:
                continue
            self.peak[name] = max(rss, self.peak.get(name, 0.0))

    def now(self, name: str) -> float:
        return float(self._procs[name].memory_info().rss / MB)

    def summary(self) -> dict[str, Any]:
        return {
            name: {"rest_mb": round(self.rest.get(name, 0), 1), "peak_mb": round(peak, 1)}
            for name, peak in self.peak.items()
        }


async def settled(pids: dict[str, int], *, busy_share: float = 0.15, quiet_seconds: float = 3.0,
                  patience: float = 180.0) -> float | None:  # fmt: skip
    """Seconds until the processes together used under `busy_share` of a core for
    `quiet_seconds` in a row (a backlog they were working through is done); None if that did
    not happen within `patience`."""
    procs = [psutil.Process(pid) for pid in pids.values()]

    def cpu() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in procs if p.is_running())

    began = time.monotonic()
    quiet_since, last, last_at = began, cpu(), began
    while time.monotonic() - began < patience:
        await asyncio.sleep(0.5)
        now, used = time.monotonic(), cpu()
        if (used - last) / (now - last_at) > busy_share:
            quiet_since = now
        elif now - quiet_since >= quiet_seconds:
            return round(now - began - quiet_seconds, 1)
        last, last_at = used, now
    return None
