"""`python -m journeys_executor` runs the executor; `... wait-for-setup` returns once its topics
exist (it has no tables)."""

from __future__ import annotations

import logging
import sys

from journeys_executor.app import Executor
from journeys_executor.settings import get_settings
from journeys_runtime import crash, service, setup
from journeys_runtime.logs import configure_logging
from journeys_runtime.service import serve

USAGE = "usage: python -m journeys_executor [wait-for-setup]"

log = logging.getLogger("journeys_executor")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["wait-for-setup"]):
        print(USAGE, file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging("executor", settings.log_level)
    if args == ["wait-for-setup"]:
        return setup.wait_main(settings)
    crash.arm(settings.crash_at)
    try:
        service.run(serve(Executor(settings)))
    except Exception as exc:  # logged by type: Python's own report would print its text
        log.critical("executor stopped on an error", extra={"error": type(exc).__name__})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
