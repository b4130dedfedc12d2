# The README's two commands are `make demo` and `make test`; both do the whole set-up first
# (venv, Python packages, Maven Central jars), each step skipped when already done.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup jars chromium demo test unit lint up down status clean

setup: $(VENV)/.installed jars

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

jars: infra/kafka/target/lib/.fetched infra/flink/target/lib/.fetched

infra/%/target/lib/.fetched: infra/%/pom.xml
	mvn -q -B -f $< dependency:copy-dependencies
	touch $@

demo: setup
	$(BIN)/payline demo

# The browser tests (tests/integration/test_report_browser.py) open the reports in Debian's
# headless Chromium; installed here when missing (CI runs as root on a fresh machine).
chromium:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver; \
	fi

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
test: setup lint chromium
	$(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; \
	exit $$rc

# ruff, then the layer contract of pyproject.toml ([tool.importlinter])
# the everyday loop: the unit tier (no JVM, no stack), a minute or two
unit: $(VENV)/.installed lint
	$(BIN)/pytest -m unit -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make unit: no tests were collected" >&2; exit 1; fi; \
	exit $$rc

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/lint-imports

up down status: setup
	$(BIN)/payline $@

clean:
	-$(BIN)/payline down
	rm -rf run data reports infra/*/target
