# The two commands of the quick start: `make demo` and `make test`. Each creates .venv when it is
# missing and installs the project into it (editable, with the extras it needs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-ctranslate2 install clean web

# The browser page (web/) and its tests (tests/test_web.py): node + npm and Debian's chromium from apt
# when missing (as root, else with sudo), the page's npm packages (npm ci), the page built into
# web/dist; the Python playwright package (the [test] extra) drives /usr/bin/chromium (it downloads no browser).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends
WEB_DEPS := web/node_modules/.installed
BROWSER_STAMP := $(VENV)/.browser-installed
WEB_SOURCES := $(wildcard web/src/*) web/scripts/build.mjs web/package.json web/package-lock.json

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip uninstall --quiet --yes keras-transformer 2>/dev/null || true  # the name before 0.1 was renamed
	$(BIN)/python -m pip install --quiet -e ".[train,http,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/keras-transformer demo

$(WEB_DEPS): web/package.json web/package-lock.json
	command -v npm >/dev/null 2>&1 || { $(SUDO) apt-get update && $(APT_INSTALL) nodejs npm; }
	cd web && npm ci --no-audit --no-fund
	touch $(WEB_DEPS)

web/dist/index.html: $(WEB_DEPS) $(WEB_SOURCES)
	cd web && npm run build

web: web/dist/index.html

$(BROWSER_STAMP): $(STAMP)
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update && $(APT_INSTALL) chromium; }
	touch $(BROWSER_STAMP)

test: $(STAMP) $(BROWSER_STAMP) web
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile  # a test file's module fixtures are built once

bench: $(STAMP)
	$(BIN)/python -m bench

# CTranslate2 on the same weights (the [bench] extra): the demo model; add `--also-run RUN` for more.
bench-ctranslate2: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench --only ctranslate2

clean:
	rm -rf $(VENV) runs web/dist web/node_modules
