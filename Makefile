# Rollcall: `make run` to run it, `make test` to test it. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: install dirs run test test-clock test-clock-all lint format bench lock clean

install: $(VENV)/.installed node_modules/.installed

# Reinstall only when the lock file changes, so a second `make run` starts fast.
# The venv starts without pip; the pinned, hashed uv from the lock is put in it by the
# system's pip, and uv syncs it to the lock exactly (pip included), compiling bytecode as
# pip does (with PYTHONDONTWRITEBYTECODE set, every process would otherwise recompile
# Django). Where that is not possible, the venv's own pip installs the same hashed lock.
$(VENV)/.installed: requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	@awk '/^uv==/{p=1;print;next} p&&/^ +--hash/{print;next} {p=0}' requirements.lock \
	  > $(VENV)/uv-requirements.txt
	@test -x $(BIN)/uv || $(PYTHON) -m pip --python $(BIN)/python install --quiet \
	  --disable-pip-version-check --require-hashes --no-deps -r $(VENV)/uv-requirements.txt \
	  2>/dev/null || true
	@if test -x $(BIN)/uv; then \
	  echo "uv pip sync requirements.lock"; \
	  $(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock; \
	else \
	  echo "pip install --require-hashes -r requirements.lock (uv unavailable)"; \
	  test -x $(BIN)/pip || $(BIN)/python -m ensurepip --upgrade --default-pip; \
	  $(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock; \
	fi
	@touch $@

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

dirs:
	@mkdir -p var/celery/broker var/celery/processed var/celery/control var/staticfiles

# The app needs no npm packages (they serve the compatibility tests), so `run` skips npm.
run: $(VENV)/.installed dirs
	$(BIN)/python manage.py migrate --noinput
	LOG_LEVEL=WARNING $(BIN)/python manage.py load_demo
	@echo ""
	@echo "  Rollcall is starting at http://127.0.0.1:$(PORT)"
	@echo "  Demo logins (password: rollcall-demo):"
	@echo "    release   Release manager    approver  Release manager (second approver)"
	@echo "    support   Support (read-only) admin    Admin"
	@echo "  Press Ctrl-C to stop the web server, worker and beat."
	@echo ""
	$(BIN)/honcho start --port $(PORT)

# The same checks run by pre-commit (.pre-commit-config.yaml); settings in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports --no-logo

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint dirs
	$(BIN)/pytest
	$(MAKE) test-clock

# The unit and database tests with the clock travelled to awkward instants (see CLOCK_INSTANTS
# in tests/conftest.py): each test at one instant picked from its name, in one extra run.
# `make test-clock-all` runs them once per instant (slower; before a release).
CLOCK_INSTANTS := 2026-06-15T23:30:00Z 2026-06-16T00:00:30Z 2027-03-28T00:59:30Z \
	2026-11-01T05:59:30Z 2026-12-31T23:59:30Z 2028-02-29T12:00:00Z
test-clock: dirs
	ROLLCALL_TEST_NOW=mix $(BIN)/pytest -q -n 2 --ignore=tests/integration --ignore=tests/e2e

test-clock-all: dirs
	@for instant in $(CLOCK_INSTANTS); do \
	  echo "== clock at $$instant"; \
	  ROLLCALL_TEST_NOW=$$instant $(BIN)/pytest -q -n 2 --ignore=tests/integration --ignore=tests/e2e || exit 1; \
	done

bench: install dirs
	$(BIN)/python bench/run_all.py $(BENCHES)

# Resolve pyproject.toml (runtime + dev extra) into the hashed lock. Versions already in the
# lock are kept; `make lock UPGRADE=1` moves everything to the newest allowed versions.
# The lock pins uv too, so `make lock` runs the same uv everywhere.
lock: $(VENV)/.installed
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	  --generate-hashes $(if $(UPGRADE),--upgrade) --quiet -o requirements.lock

clean:
	rm -rf $(VENV) node_modules var .mypy_cache .import_linter_cache
