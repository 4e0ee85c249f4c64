# The Makefile is the interface: CI calls the same targets a person does.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
UV_VERSION := 0.13.8
SERVICES := intake sla-engine reporting
# Every target that talks to the stack reads the addresses `make up` wrote.
WITH_STACK := set -a; . .stack/env; set +a;
PYTEST_ARGS ?=

.PHONY: install up down status reset migrate lint typecheck unit test faults demo bench deploy-check clean

# Bytecode is compiled once here, as the images do (deploy/Dockerfile): with PYTHONDONTWRITEBYTECODE set and nothing
# compiled, every service start compiled its ~5,000 modules again (3x the CPU of a start; docs/architecture.md).
install:  ## the virtualenv from the committed lock file, and the Debian packages reports and tests need
	@command -v uv >/dev/null || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	uv sync --frozen --all-packages --compile-bytecode
	uv run --frozen python -m compileall -q shared/src services/*/src services/*/migrations
	bash services/reporting/scripts/install-system-deps.sh
	bash deploy/scripts/install-tools.sh

up: install  ## Kafka 4.x (KRaft) and PostgreSQL, started locally
	bash deploy/local/stack.sh up

down:  ## stop both, leave no process behind
	bash deploy/local/stack.sh down

status:
	bash deploy/local/stack.sh status

reset:  ## wipe Kafka data and recreate the three databases
	bash deploy/local/stack.sh reset

migrate: up  ## Alembic, as its own step, for each service's own database
	$(WITH_STACK) for service in $(SERVICES); do uv run alembic -c services/$$service/alembic.ini upgrade head; done

lint: install
	uv run ruff check .
	uv run ruff format --check .
	uv run lint-imports

typecheck: install
	uv run mypy shared/src services/intake/src services/sla-engine/src services/reporting/src tests bench scripts

unit: install  ## the pure domain tests, no I/O
	uv run pytest tests/unit -q $(PYTEST_ARGS)

# The short fault run comes last: it stops and restarts the broker and PostgreSQL every other test uses.
# `make test SKIP_FAULTS=1` leaves it out (a quick local run; CI never sets it).
test: up migrate lint typecheck  ## lint, types, every test against the real stack, then the short fault run
	$(WITH_STACK) uv run pytest -q -p no:cacheprovider $(PYTEST_ARGS)
ifndef SKIP_FAULTS
	$(WITH_STACK) SLM_FAULTS=1 uv run pytest -q -s -p no:cacheprovider tests/faults
endif

# The short form (about 5 minutes; also `make test`'s last step) is a pytest test; LONG=1 is the 30-minute
# run with the larger workload.
# Both print the table per fault type; the last result is kept in .stack/faults/last-result.txt.
faults: up migrate  ## services, broker and PostgreSQL killed, stalled and cut off under a workload; checked
ifdef LONG
	$(WITH_STACK) uv run python -m tests.faults --long
else
	$(WITH_STACK) SLM_FAULTS=1 uv run pytest -q -s -p no:cacheprovider tests/faults $(PYTEST_ARGS)
endif

demo: up migrate  ## the services and a day of the whole product; prints report, review, URLs; Ctrl-C stops (DEMO_EXIT=1: at once)
	$(WITH_STACK) uv run python -m scripts.demo

bench: up migrate
	$(WITH_STACK) for bench in bench/*/bench_*.py; do module=$${bench%.py}; echo "== $$module"; \
		uv run python -m $${module//\//.}; done

deploy-check: install  ## the Dockerfile, Kustomize overlays (rendered and schema-checked), compose file, dashboard: offline
	uv run pytest tests/deploy -q -p no:cacheprovider

clean: down
	rm -rf .stack .venv
