"""Entry point for `python -m journeys_stack`."""

import sys

from journeys_stack.cli import main

sys.exit(main())
