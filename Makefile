# The two commands: `make run` brings the whole stack up, `make test` runs the whole suite.
UV ?= uv
PYTEST_ARGS ?=

.PHONY: install run test lint typecheck unit integration e2e contract faults bench audit schemas clean

install:
	$(UV) sync --frozen

run: install
	$(UV) run --frozen python -m journeys_stack run

test: install lint typecheck
	$(UV) run --frozen pytest $(PYTEST_ARGS)

lint:
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck:
	$(UV) run --frozen mypy

unit: install
	$(UV) run --frozen pytest tests/unit $(PYTEST_ARGS)

integration: install
	$(UV) run --frozen pytest tests/integration $(PYTEST_ARGS)

e2e: install
	$(UV) run --frozen pytest tests/e2e $(PYTEST_ARGS)

# Every fault scenario under a full load; prints the table, writes .data/faults/results.json.
faults: install
	$(UV) run --frozen python -m tests.faults $(FAULTS_ARGS)

# Every benchmark against its target (~15 min); writes bench/results/<date>.json and the table
# in bench/README.md. One alone: `make bench BENCH_ARGS=engine-throughput`.
bench: install
	$(UV) run --frozen python -m journeys_bench $(BENCH_ARGS)

# Known vulnerabilities in every locked package (PyPI's advisory data, over the network).
# Not in `make test`: these machines reach PyPI's package index but not its JSON API or OSV.
audit: install
	@mkdir -p .data
	$(UV) export --frozen --all-groups --no-hashes --no-emit-workspace --no-header > .data/audit-requirements.txt
	$(UV) run --frozen pip-audit --strict --no-deps --disable-pip -r .data/audit-requirements.txt

contract: install
	$(UV) run --frozen pytest tests/contract $(PYTEST_ARGS)

schemas: install
	$(UV) run --frozen python -m journeys_contracts.schemas write

clean:
	rm -rf .data
