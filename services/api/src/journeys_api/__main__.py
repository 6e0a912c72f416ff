"""`python -m journeys_api` serves the API with uvicorn. Also: `migrate` applies its
migrations, `wait-for-setup` returns once the topics and those migrations are in place, and
`keys create|list|revoke` manages the API keys of machine clients, and `import FILE.csv`
uploads a clinic's CSV to a running API and follows its import."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from journeys_api import keys, migrations
from journeys_api.app import create_app
from journeys_api.imports import cli
from journeys_api.settings import ApiSettings, get_settings
from journeys_runtime import setup
from journeys_runtime.logs import configure_logging

SHUTDOWN_GRACE_SECONDS = 10


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m journeys_api", description="serve the API")
    commands = p.add_subparsers(dest="command",
                                metavar="{migrate,wait-for-setup,keys,import}")  # fmt: skip
    commands.add_parser("migrate", help="apply the API's migrations")
    commands.add_parser("wait-for-setup", help="return once topics and migrations are there")
    key = commands.add_parser("keys", help="API keys of machine clients").add_subparsers(
        dest="action", required=True
    )
    create = key.add_parser("create", help="make a key; it is printed once, never stored")
    create.add_argument("--name", required=True, help="who uses it, as audit records name it")
    create.add_argument("--scope", action="append", required=True, choices=keys.SCOPES,
                        dest="scopes", help="repeat for each scope")  # fmt: skip
    key.add_parser("list", help="names, scopes, created and revoked times; never the keys")
    revoke = key.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("--name", required=True)
    cli.add_arguments(
        commands.add_parser(
            "import", help="upload a CSV of clinic events to a running API and follow its import"
        )
    )
    return p


def manage_keys(args: argparse.Namespace, settings: ApiSettings) -> int:
    try:
        if args.action == "create":
            print(keys.create(settings.database_url, args.name, args.scopes))
        elif args.action == "revoke":
            keys.revoke(settings.database_url, args.name)
        else:
            for k in keys.listing(settings.database_url):
                state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
                print(f"{k.name}\t{' '.join(k.scopes)}\t{k.created_at:%Y-%m-%d}\t{state}")
    except keys.KeyAdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # usage errors and --help: argparse has printed them
        return int(exc.code or 0)
    if args.command == "import":  # a client of a running API: none of its settings
        return cli.run(args)
    settings = get_settings()
    configure_logging("api", settings.log_level)
    if args.command == "migrate":
        migrations.apply(settings.database_url)
        return 0
    if args.command == "keys":
        return manage_keys(args, settings)
    if args.command == "wait-for-setup":
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
        # uvicorn's own default, 5 s, is shorter than the idle timeout of most proxies and
        # client pools: one of them reuses a connection as uvicorn closes it, and its request
        # fails with a reset (`make faults` 8a saw a ReadError that way).
        timeout_keep_alive=settings.keep_alive_seconds,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
