"""`python -m journeys_executor`: run the executor."""

from __future__ import annotations

import sys

from journeys_executor.app import Executor
from journeys_executor.settings import get_settings
from journeys_runtime import crash, service
from journeys_runtime.logs import configure_logging
from journeys_runtime.service import serve

USAGE = "usage: python -m journeys_executor"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        print(USAGE, file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging("executor", settings.log_level)
    crash.arm(settings.crash_at)
    service.run(serve(Executor(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
