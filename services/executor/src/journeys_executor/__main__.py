"""`python -m journeys_executor`: run the executor worker."""

from __future__ import annotations

from faust import Worker

from journeys_executor.app import create_app
from journeys_executor.settings import get_settings
from journeys_runtime.logs import configure_logging


def main() -> None:
    settings = get_settings()
    configure_logging("executor", settings.log_level)
    app = create_app(settings)
    worker = Worker(app, loglevel=settings.log_level, quiet=True, override_logging=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
