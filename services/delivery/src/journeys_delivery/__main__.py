"""`python -m journeys_delivery` runs the delivery service; `... wait-for-setup` returns once
the topics are in place."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from journeys_delivery.app import DeliveryService
from journeys_delivery.settings import get_settings
from journeys_runtime import crash, service, setup
from journeys_runtime.logs import configure_logging
from journeys_runtime.service import serve

USAGE = "usage: python -m journeys_delivery [wait-for-setup]"

log = logging.getLogger("journeys_delivery")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in ([], ["wait-for-setup"]):
        print(USAGE, file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging("delivery", settings.log_level)
    if args == ["wait-for-setup"]:
        return setup.wait_main(settings)
    crash.arm(settings.crash_at)
    try:
        service.run(serve(DeliveryService(settings)))
    except Exception as exc:  # logged by type: Python's own report would print its text
        log.critical("delivery stopped on an error", extra={"error": type(exc).__name__})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
