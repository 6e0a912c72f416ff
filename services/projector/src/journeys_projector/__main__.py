"""`python -m journeys_projector` runs the projector; `... migrate` applies its migrations;
`... wait-for-setup` returns once the topics and those migrations are in place."""

from __future__ import annotations

import sys

from journeys_projector import migrations
from journeys_projector.app import Projector
from journeys_projector.settings import get_settings
from journeys_runtime import crash, service, setup
from journeys_runtime.logs import configure_logging
from journeys_runtime.service import serve

USAGE = "usage: python -m journeys_projector [migrate | wait-for-setup]"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["migrate"], ["wait-for-setup"]):
        print(USAGE, file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging("projector", settings.log_level)
    crash.arm(settings.crash_at)
    if args == ["migrate"]:
        migrations.apply(settings.database_url)
        return 0
    if args == ["wait-for-setup"]:
        return setup.wait_main(settings, settings.database_url, migrations.HERE)
    service.run(serve(Projector(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
