import sys

from journeys_bench.cli import main

sys.exit(main())
