"""`python -m journeys_scheduler` runs the scheduler; `... migrate` applies its migrations;
`... wait-for-setup` returns once the topics and those migrations are in place."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence

from journeys_runtime import crash, setup
from journeys_runtime.logs import configure_logging, log_unhandled
from journeys_scheduler import migrations
from journeys_scheduler.app import Scheduler
from journeys_scheduler.settings import SchedulerSettings, get_settings

USAGE = "usage: python -m journeys_scheduler [migrate | wait-for-setup]"


async def serve(settings: SchedulerSettings) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly (also while still connecting)."""
    scheduler = Scheduler(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(log_unhandled)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    starting = asyncio.create_task(scheduler.start())
    stop_requested = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({starting, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()
            failed = asyncio.create_task(scheduler.wait())
            await asyncio.wait({failed, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
            if failed.done():
                failed.result()  # a loop broke: raise, so the process exits and is restarted
            failed.cancel()
            await asyncio.gather(failed, return_exceptions=True)
    finally:
        for task in (starting, stop_requested):
            task.cancel()
        await asyncio.gather(starting, stop_requested, return_exceptions=True)
        await scheduler.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in ([], ["migrate"], ["wait-for-setup"]):
        print(USAGE, file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging("scheduler", settings.log_level)
    crash.arm(settings.crash_at)
    if args == ["migrate"]:
        migrations.apply(settings.database_url)
    elif args == ["wait-for-setup"]:
        return setup.wait_main(settings, settings.database_url, migrations.SQL_DIR)
    else:
        asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
