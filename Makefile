# Set-up and everyday commands. `make demo` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup prosody test demo bench clean

setup: $(VENV)/.installed

# A virtual environment with the project (editable), its test extra and the XSD bundle.
$(VENV)/.installed: setup.cfg pyproject.toml schemas/manifest.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check setuptools wheel
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	$(BIN)/xmpp-vtn schemas install
	touch $@

test: setup prosody
	$(BIN)/python -m pytest

# The demo and the integration tests start their own Prosody on loopback; they need the program.
prosody:
	@command -v prosody >/dev/null && command -v prosodyctl >/dev/null || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prosody >/dev/null || \
	        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prosody >/dev/null; }; \
	    else \
	        echo "Prosody is not installed. Install it with:  sudo apt-get install -y prosody" >&2; exit 1; \
	    fi; }

demo: setup prosody
	$(BIN)/python examples/demo.py

bench: setup prosody
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[bench]'
	$(BIN)/python bench/codec.py
	$(BIN)/python bench/fanout.py --vens 100,1000
	$(BIN)/python bench/footprint.py

clean:
	rm -rf $(VENV) build dist *.egg-info
