# The two commands: `make run` brings the whole stack up, `make test` runs the whole suite.
# Every target installs what it needs first: uv (the one on PATH, else the pinned version
# below, put into .data/tools by pip), then the Python environment from uv.lock.
UV_VERSION := 0.13.9
UV_TOOLS := $(CURDIR)/.data/tools
UV ?= $(or $(shell command -v uv 2>/dev/null),$(UV_TOOLS)/bin/uv)
# Only the pinned copy has a rule: a uv found on PATH is used as it is.
UV_BOOTSTRAP := $(filter $(UV_TOOLS)/bin/uv,$(UV))
ifneq ($(UV_BOOTSTRAP),)
# What the targets run finds the same uv by name (the deploy tests call `uv`).
export PATH := $(UV_TOOLS)/bin:$(PATH)
endif
PYTEST_ARGS ?=

.PHONY: install toolchain run test lint typecheck unit integration e2e contract faults bench audit \
	schemas clean

# `--target` needs no virtualenv and is not refused by a system Python that forbids `--user`
# installs (PEP 668); the wheel carries uv's static binary, which needs nothing else.
$(UV_TOOLS)/bin/uv:
	PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
		--upgrade --target $(UV_TOOLS) uv==$(UV_VERSION)

# The console's browser libraries (htmx, dagre, Chart.js; CodeMirror and esbuild for the
# journey editor's bundle; axe-core for the browser tests) from npm, as locked in
# services/api/console/package-lock.json; again only when the lockfile changes. The editor
# is bundled again when its source or the libraries change.
CONSOLE_ASSETS := services/api/console
$(CONSOLE_ASSETS)/node_modules/.package-lock.json: $(CONSOLE_ASSETS)/package-lock.json
	cd $(CONSOLE_ASSETS) && npm ci --no-audit --no-fund --loglevel=error

$(CONSOLE_ASSETS)/dist/editor.min.js: $(CONSOLE_ASSETS)/editor.js $(CONSOLE_ASSETS)/node_modules/.package-lock.json
	cd $(CONSOLE_ASSETS) && npm run --silent build -- --log-level=warning

install: $(UV_BOOTSTRAP) $(CONSOLE_ASSETS)/node_modules/.package-lock.json $(CONSOLE_ASSETS)/dist/editor.min.js
	$(UV) sync --frozen

# What CI prints before it tests: the uv in use, and the Java and Maven the Kafka jars need.
toolchain: $(UV_BOOTSTRAP)
	@$(UV) --version
	@java -version 2>&1 | sed -n 1p || true
	@mvn -B -v 2>&1 | sed -n 1p || true

run: install
	$(UV) run --frozen python -m journeys_stack run

test: install lint typecheck
	$(UV) run --frozen pytest $(PYTEST_ARGS)

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: install
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
