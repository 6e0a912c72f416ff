"""`python -m journeys_api.imports` runs the importer of uploaded CSV files until SIGTERM."""

from __future__ import annotations

import sys

from journeys_api.imports.service import ImporterService
from journeys_api.imports.settings import get_settings
from journeys_runtime import crash, service
from journeys_runtime.logs import configure_logging
from journeys_runtime.service import serve

USAGE = "usage: python -m journeys_api.imports"


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) != []:
        print(USAGE, file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging("importer", settings.log_level)
    crash.arm(settings.crash_at)
    service.run(serve(ImporterService(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
