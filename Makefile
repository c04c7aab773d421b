# Rollcall: `make run` to run it, `make test` to test it. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: install dirs run test test-clock test-clock-all lint format bench lock clean

install: $(VENV)/.installed node_modules/.installed

# Reinstall only when the lock file changes, so a second `make run` starts fast.
$(VENV)/.installed: requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	@touch $@

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

dirs:
	@mkdir -p var/celery/broker var/celery/processed var/celery/control var/staticfiles

run: install dirs
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

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

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

# Re-resolve requirements.in into the pinned lock file.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -r requirements.in
	(echo "# Generated from requirements.in with: pip install -r requirements.in && pip freeze"; \
	 echo "# Regenerate with: make lock"; .lockvenv/bin/pip freeze) > requirements.lock
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) node_modules var
