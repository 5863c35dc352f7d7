# Set-up and everyday commands. `make demo` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test demo bench clean

setup: $(VENV)/.installed

# A virtual environment with the project (editable), its test extra and the XSD bundle.
$(VENV)/.installed: setup.cfg pyproject.toml schemas/manifest.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check setuptools wheel
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	$(BIN)/xmpp-vtn schemas install
	touch $@

test: setup
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python examples/demo.py

bench: setup
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[bench]'
	$(BIN)/python bench/codec.py

clean:
	rm -rf $(VENV) build dist *.egg-info
