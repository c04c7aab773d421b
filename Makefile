# Rollcall: `make run` to run it, `make test` to test it. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: install dirs run test lint format bench lock clean

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
