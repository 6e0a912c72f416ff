"""`python -m journeys_runtime topics {apply,verify}`: the deployment's topics job."""

from __future__ import annotations

import argparse
import sys

from journeys_runtime import setup
from journeys_runtime.logs import configure_logging
from journeys_runtime.settings import TopicSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m journeys_runtime")
    commands = parser.add_subparsers(dest="command", required=True)
    topics = commands.add_parser(
        "topics", help="create or check the topics (settings from the environment)"
    )
    topics.add_argument(
        "action", choices=["apply", "verify"],
        help="apply: create missing topics, restore declared configs; "
        "verify: change nothing, wait until they match (topics owned by an operator)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    settings = TopicSettings()
    configure_logging("topics", settings.log_level)
    return setup.topics_main(args.action, settings)


if __name__ == "__main__":
    sys.exit(main())
