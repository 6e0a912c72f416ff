"""`python -m journeys_stack infra|run`: the local stack in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from types import FrameType

from journeys_runtime.logs import configure_logging
from journeys_stack.paths import data_dir
from journeys_stack.stack import Stack, config_from_env

log = logging.getLogger(__name__)


class _Interrupted(BaseException):
    """Raised from the signal handler so a start-up in progress unwinds and stops."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted(signal.Signals(signum).name)


def _already_stopping(signum: int, frame: FrameType | None) -> None:
    log.warning("%s ignored: already stopping", signal.Signals(signum).name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m journeys_stack")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("infra", help="Kafka and PostgreSQL (topics and migrations applied)")
    commands.add_parser("run", help="Kafka, PostgreSQL and the six services")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging("stack")
    # httpx logs every readiness poll at INFO: noise, not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Installed before anything starts: Ctrl-C or SIGTERM mid-start must still stop it all.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    stack = Stack(config_from_env(data_dir()))
    started = time.monotonic()
    code = 0
    try:
        if args.command == "infra":
            stack.start_infra()
            stack.prepare()
        else:
            stack.start()
        env = stack.service_env()
        print(f"\nKafka:      {env['KAFKA_BOOTSTRAP_SERVERS']}", flush=True)
        print(f"PostgreSQL: {env['DATABASE_URL']}", flush=True)
        if args.command == "run":
            port = stack.config.ports.api
            took = time.monotonic() - started
            print(f"Service logs: {stack.config.data_dir / 'logs'}", flush=True)
            print(f"Ready in {took:.1f}s. API docs: http://127.0.0.1:{port}/docs", flush=True)
            print(f"Console: http://127.0.0.1:{port}/console (sign in with the key below)",
                  flush=True)  # fmt: skip
            print(f"API key (development, every scope, this run only): {stack.api_key}\n"
                  f"  curl -H 'X-API-Key: {stack.api_key}' http://127.0.0.1:{port}/journeys",
                  flush=True)  # fmt: skip
        print("Ctrl-C stops everything.", flush=True)
        while not (dead := stack.exited()):
            time.sleep(1)
        log.error("stopping the stack: %s exited (logs in %s)", ", ".join(dead), data_dir())
        code = 1
    except _Interrupted as signalled:
        log.info("%s received", signalled)
    except Exception as failure:
        log.exception("the stack failed")
        print(f"\n{failure}", file=sys.stderr, flush=True)
        code = 1
    finally:
        signal.signal(signal.SIGINT, _already_stopping)
        signal.signal(signal.SIGTERM, _already_stopping)
        print("Stopping…", file=sys.stderr, flush=True)
        stack.stop()
    return code
