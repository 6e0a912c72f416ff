"""`python -m journeys_projector` runs the projector; `... migrate` applies its migrations."""

from __future__ import annotations

import asyncio
import signal
import sys

from journeys_projector import migrations
from journeys_projector.app import Projector
from journeys_projector.settings import ProjectorSettings, get_settings
from journeys_runtime import crash
from journeys_runtime.logs import configure_logging

USAGE = "usage: python -m journeys_projector [migrate]"


async def _serve(settings: ProjectorSettings) -> None:
    projector = Projector(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, projector.request_stop)
    await projector.run_until_stopped()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["migrate"]):
        print(USAGE, file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging("projector", settings.log_level)
    crash.arm(settings.crash_at)
    if args == ["migrate"]:
        migrations.apply(settings.database_url)
        return 0
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
