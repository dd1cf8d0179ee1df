# Studyhall: one command to run the platform, one to test it.
#   make up     venv, embedded NATS and Redis, five services on SQLite (data in .studyhall/)
#   make test   venv, system packages where missing, the whole test suite on real servers
#   make check  what CI checks besides the tests: lint, types, imports, contracts, freshness
#   make docs-events  the event catalogue in a browser (http://127.0.0.1:8088/)

VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: deps lock deploy-check docs-events asyncapi asyncapi-check bench-activities bench-analytics bench-churn bench-backbone bench-content bench-billing bench-schedule bench-members bench-recognition bench-scale bench-tracing up test test-cluster test-fast check lint typecheck imports proto proto-check buf-lint buf-breaking docs docs-check venv clean

venv:
	@scripts/bootstrap.sh

up:
	@scripts/bootstrap.sh --with-redis
	@$(BIN)/studyhall up

test:
	@scripts/bootstrap.sh --with-test-servers
	$(BIN)/pytest $(PYTEST_ARGS)

test-cluster:
	@scripts/bootstrap.sh --with-test-servers
	STUDYHALL_TEST_NATS=cluster $(BIN)/pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/pytest -m "not fault" $(PYTEST_ARGS)

check: lint typecheck imports deps buf-lint buf-breaking proto-check docs-check asyncapi-check deploy-check

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy services tests bench clients/python

imports: venv
	$(BIN)/lint-imports

# Every import declared in pyproject.toml, every declared package pinned (make lock).
deps: venv
	$(BIN)/deptry .
	$(BIN)/python scripts/lock_check.py

lock:
	@scripts/lock.sh

proto: venv
	$(BIN)/python scripts/gen_proto.py

proto-check: venv
	@scripts/check_proto_fresh.sh

buf-lint: venv
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code

buf-breaking: venv
	@scripts/check_breaking.sh

docs: venv
	$(BIN)/python scripts/settings_doc.py

deploy-check:
	@scripts/check_deploy.sh

asyncapi: venv
	$(BIN)/python scripts/asyncapi.py

# The event catalogue in faststream's AsyncAPI page, its scripts vendored from npm (pinned).
docs-events: venv
	$(BIN)/python scripts/docs_events.py $(DOCS_EVENTS_ARGS)

asyncapi-check: venv
	$(BIN)/python scripts/asyncapi.py --check

docs-check: venv
	$(BIN)/python scripts/settings_doc.py --check

bench-activities: venv
	$(BIN)/python -m bench.activities $(BENCH_ARGS)

bench-analytics: venv
	$(BIN)/python -m bench.analytics $(BENCH_ARGS)

bench-churn: venv
	$(BIN)/python -m bench.churn_sweep $(BENCH_ARGS)

bench-backbone: venv
	$(BIN)/python -m bench.backbone $(BENCH_ARGS)

bench-recognition: venv
	$(BIN)/python -m bench.recognition $(BENCH_ARGS)

bench-members: venv
	$(BIN)/python -m bench.members $(BENCH_ARGS)

bench-content: venv
	$(BIN)/python -m bench.content $(BENCH_ARGS)

bench-billing: venv
	$(BIN)/python -m bench.billing $(BENCH_ARGS)

bench-schedule: venv
	$(BIN)/python -m bench.schedule $(BENCH_ARGS)

# The main reads' p99 and each process's RSS over 10,000 communities, 1,000,000 members and
# 2,000,000 events, on PostgreSQL; the seed is kept in .bench/ and the server's databases.
bench-scale: venv
	$(BIN)/python -m bench.scale $(BENCH_ARGS)

bench-tracing: venv
	$(BIN)/python -m bench.tracing $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
