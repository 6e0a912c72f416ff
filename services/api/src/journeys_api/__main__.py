"""`python -m journeys_api` serves the API with uvicorn; `... migrate` applies its migrations;
`... wait-for-setup` returns once the topics and those migrations are in place."""

from __future__ import annotations

import sys

import uvicorn

from journeys_api import migrations
from journeys_api.app import create_app
from journeys_api.settings import get_settings
from journeys_runtime import setup
from journeys_runtime.logs import configure_logging

USAGE = "usage: python -m journeys_api [migrate | wait-for-setup]"
SHUTDOWN_GRACE_SECONDS = 10


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["migrate"], ["wait-for-setup"]):
        print(USAGE, file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging("api", settings.log_level)
    if args == ["migrate"]:
        migrations.apply(settings.database_url)
        return 0
    if args == ["wait-for-setup"]:
        return setup.wait_main(settings, settings.database_url, migrations.HERE)
    # uvicorn handles SIGTERM/SIGINT: it stops accepting, finishes requests in flight, then
    # runs the lifespan's shutdown, which closes the producer and the pool.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep our JSON handler
        access_log=False,  # the request middleware logs one JSON line per request instead
        loop="auto",  # uvloop when installed
        http="auto",  # httptools when installed
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
