"""`python -m journeys_api.ingest` runs the ingest of other teams' topics until SIGTERM."""

from __future__ import annotations

import sys

from journeys_api.ingest.app import Ingest
from journeys_api.ingest.settings import get_settings
from journeys_runtime import crash, service
from journeys_runtime.logs import configure_logging
from journeys_runtime.service import serve

USAGE = "usage: python -m journeys_api.ingest"


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) != []:
        print(USAGE, file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging("ingest", settings.log_level)
    crash.arm(settings.crash_at)
    service.run(serve(Ingest(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
