"""`python -m journeys_executor`: run the executor."""

from __future__ import annotations

import asyncio
import signal
import sys

from journeys_executor.app import Executor
from journeys_executor.settings import ExecutorSettings, get_settings
from journeys_runtime import crash
from journeys_runtime.logs import configure_logging

USAGE = "usage: python -m journeys_executor"


async def _serve(settings: ExecutorSettings) -> None:
    executor = Executor(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, executor.request_stop)
    await executor.run_until_stopped()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        print(USAGE, file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging("executor", settings.log_level)
    crash.arm(settings.crash_at)
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
