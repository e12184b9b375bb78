# Everything runs from a local virtualenv that this Makefile creates on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: setup system-packages run test lint unit bench screenshot clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Switchyard needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(BIN)/python -m devrun

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/ansible-lint playbooks

unit: $(STAMP)
	@# The fresh-OS root's first build (1-4 min) outside any test's timeout; if it fails,
	@# the fresh-OS tests say why.
	-$(BIN)/python -m tests.freshos.rootfs
	$(BIN)/pytest -q

# The Debian packages the suite needs (sshd, debootstrap, systemd-nspawn, ...): checked first.
system-packages:
	@tools/system-packages

test: system-packages
	$(MAKE) lint unit

# The README's picture: only the chart test, its screenshot written to docs/ (a test run
# writes it to the ignored build/dashboard.png).
screenshot: system-packages $(STAMP)
	SWITCHYARD_SCREENSHOT=docs/dashboard.png $(BIN)/pytest -q tests/proxy/dashboard/test_browser.py -k photographed

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
