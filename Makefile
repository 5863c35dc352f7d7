# Set-up and everyday commands. `make demo` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup servers test demo bench clean

setup: $(VENV)/.installed

# A virtual environment with the project (editable), its test extra and the XSD bundle.
$(VENV)/.installed: setup.cfg pyproject.toml schemas/manifest.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check setuptools wheel
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	$(BIN)/xmpp-vtn schemas install
	touch $@

test: setup servers
	$(BIN)/python -m pytest

# The demo and the integration tests start their own servers on loopback; they need the programs.
# Prosody for the demo and most tests; ejabberd and PostgreSQL for the several-instance tests;
# Chromium for the dashboard's browser test (driven by Playwright, never its own browser download).
# Installed with a policy-rc.d that forbids starting their system services: the tests run their
# own private servers on loopback and nothing else should listen.
SERVER_PACKAGES := prosody:prosody prosodyctl:prosody ejabberdctl:ejabberd initdb:postgresql chromium:chromium
servers:
	@missing=""; for pair in $(SERVER_PACKAGES); do \
	    program=$${pair%%:*}; package=$${pair##*:}; \
	    command -v $$program >/dev/null || ls /usr/lib/postgresql/*/bin/$$program >/dev/null 2>&1 || \
	        case " $$missing " in *" $$package "*) ;; *) missing="$$missing $$package";; esac; \
	done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        guard=""; [ -e /usr/sbin/policy-rc.d ] || { guard=/usr/sbin/policy-rc.d; \
	            printf '#!/bin/sh\nexit 101\n' > $$guard; chmod +x $$guard; }; \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || \
	        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }; \
	        status=$$?; [ -z "$$guard" ] || rm -f $$guard; [ $$status = 0 ] || exit $$status; \
	    else \
	        echo "Missing:$$missing. Install with:  sudo apt-get install -y$$missing" >&2; exit 1; \
	    fi; \
	fi

demo: setup servers
	$(BIN)/python examples/demo.py

bench: setup servers
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[bench]'
	$(BIN)/python bench/codec.py
	$(BIN)/python bench/fanout.py --vens 100,1000
	$(BIN)/python bench/http_fanout.py --vens 1000
	$(BIN)/python bench/footprint.py
	$(BIN)/python bench/inbound.py

clean:
	rm -rf $(VENV) build dist *.egg-info
