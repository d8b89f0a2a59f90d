"""End-to-end harness: real Envoy + the real `switchyard up` + fake providers on loopback.

One gateway per test session (starting Envoy costs ~1 s); tests reset the fake providers'
scripts and read records by request id, so they stay independent. Tests that need another
config (hot reload, weighted) start their own gateway.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).parent))
from fake_provider import FakeProvider  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("SWITCHYARD_BIN", ROOT / "target" / "debug" / "switchyard"))
ENVOY = Path(os.environ.get("ENVOY_BIN", ROOT / ".venv" / "bin" / "envoy"))
CLIENT_KEY = "sk-e2e-client-key-0123456789"
OA_SECRET = "sk-provider-openai-SECRET"
AN_SECRET = "sk-provider-anthropic-SECRET"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Tests share one gateway and fail backends on purpose; cooldown would leak between them, so
# the shared config effectively disables it (the health test sets its own policy).
NO_COOLDOWN = "health: { consecutive_failures: 1000000, error_rate: 2 }"


def base_config(providers: dict[str, FakeProvider], records: Path, health: str = NO_COOLDOWN) -> str:
    oa, oa2, an = providers["oa"], providers["oa2"], providers["an"]
    return f"""
records: {{ path: {records} }}
{health}
limits: {{ max_body_bytes: 65536, default_timeout_ms: 3000 }}
providers:
  - {{ id: oa, kind: openai, base_url: "{oa.url}/v1", secret_key_ref: {{ env: E2E_OA_KEY }} }}
  - {{ id: oa2, kind: openai_compatible, base_url: "{oa2.url}/v1" }}
  - {{ id: an, kind: anthropic, base_url: "{an.url}/v1", secret_key_ref: {{ env: E2E_AN_KEY }} }}
models:
  - name: gpt-4o
    provider: oa
    max_output_tokens: 16384
    pricing: {{ input_per_mtok: 2.50, output_per_mtok: 10.00 }}
  - name: llama3
    provider: oa2
    provider_model: llama3.1:8b
    pricing: {{ input_per_mtok: 0.10, output_per_mtok: 0.20 }}
  - name: claude-sonnet-4
    provider: an
    provider_model: claude-sonnet-4-20250514
    max_output_tokens: 2048
    pricing: {{ input_per_mtok: 3.00, output_per_mtok: 15.00 }}
  - {{ name: text-embedding-3-small, provider: oa, pricing: {{ input_per_mtok: 0.02, output_per_mtok: 0 }} }}
  - {{ name: retired, provider: oa, status: disabled }}
  - {{ name: gpt-4o-2024-08-06, provider: oa, pricing: {{ input_per_mtok: 2.50, output_per_mtok: 10.00 }} }}
  - name: dall-e-3
    provider: oa
    pricing: {{ per_image: {{ "1024x1024/standard": 0.04, "1024x1024/hd": 0.08, "1024x1792/hd": 0.12 }} }}
model_groups:
  - name: reliable-chat
    strategy: fallback
    models:
      - {{ model: gpt-4o, timeout_ms: 700 }}
      - {{ model: claude-sonnet-4, timeout_ms: 3000 }}
  - name: three-way
    strategy: fallback
    models:
      - {{ model: gpt-4o, timeout_ms: 700 }}
      - {{ model: llama3, timeout_ms: 700 }}
      - {{ model: claude-sonnet-4, timeout_ms: 700 }}
  - name: split
    strategy: weighted
    models:
      - {{ model: gpt-4o, weight: 70 }}
      - {{ model: llama3, weight: 30 }}
  - name: sticky
    strategy: weighted
    session_affinity: true
    models:
      - {{ model: gpt-4o, weight: 50 }}
      - {{ model: llama3, weight: 50 }}
  - name: quick
    strategy: least_latency
    models: [ {{ model: gpt-4o }}, {{ model: llama3 }} ]
  - name: thrifty
    strategy: lowest_cost
    models: [ {{ model: gpt-4o }}, {{ model: llama3 }} ]
  - name: smart
    strategy: intelligent
    axis: cost
    models: [ {{ model: gpt-4o }}, {{ model: llama3 }} ]
  - name: budgeted
    strategy: cost
    budget_per_request_usd: 0.001
    models: [ {{ model: gpt-4o }}, {{ model: llama3 }} ]
keys:
  - name: e2e
    hash: "sha256:{__import__('hashlib').sha256(CLIENT_KEY.encode()).hexdigest()}"
  - name: restricted
    hash: "sha256:{__import__('hashlib').sha256(b'sk-restricted').hexdigest()}"
    allowed_models: [llama3]
  - name: ruled
    hash: "sha256:{__import__('hashlib').sha256(b'sk-ruled').hexdigest()}"
    routing:
      active: true
      strategy: rules
      routes:
        - {{ name: chat-model, model: gpt-4o }}
      rules:
        - when: {{ any: [ {{ tag: tier, op: eq, value: bulk }}, {{ header: x-priority, op: in, value: [low, batch] }} ] }}
          use: [ {{ model: llama3 }} ]
        - when: {{ metadata: team, op: eq, value: research }}
          use: [ {{ model: claude-sonnet-4 }}, {{ model: gpt-4o }} ]
  - name: canary
    hash: "sha256:{__import__('hashlib').sha256(b'sk-canary').hexdigest()}"
    routing:
      active: true
      strategy: traffic_split
      routes:
        - {{ name: chat-model, model: gpt-4o, weight: 90 }}
        - {{ name: chat-model, model: llama3, weight: 10 }}
  - name: parked
    hash: "sha256:{__import__('hashlib').sha256(b'sk-parked').hexdigest()}"
    routing:
      active: false
      routes: [ {{ name: chat-model, model: llama3 }} ]
"""


class Gateway:
    """A running `switchyard up` (processor + Envoy) with its fake providers."""

    def __init__(self, providers: dict[str, FakeProvider], config_text=None, env=None):
        self.providers = providers
        self.dir = Path(tempfile.mkdtemp(prefix="switchyard-e2e-"))
        self.records_path = self.dir / "records.jsonl"
        self.config_path = self.dir / "gateway.yaml"
        if callable(config_text):  # a config that names the records path
            config_text = config_text(self.records_path)
        self.config_path.write_text(config_text or base_config(providers, self.records_path))
        env = dict(os.environ, E2E_OA_KEY=OA_SECRET, E2E_AN_KEY=AN_SECRET, SWITCHYARD_DEMO_KEY="sk-demo-e2e",
                   ENVOY_BIN=str(ENVOY), RUST_BACKTRACE="0", **(env or {}))
        if not ENVOY.exists():
            raise RuntimeError(f"Envoy is required for the end-to-end tests and was not found at {ENVOY}; run `make deps`")
        self.log_path = self.dir / "switchyard.log"
        # A port free when picked can be taken before Envoy binds it (another gateway, an
        # outgoing connection's ephemeral port): then start again on fresh ports.
        for _ in range(3):
            if self._start(env):
                return
            if "Address already in use" not in self.log_path.read_text():
                break
        raise RuntimeError("switchyard up did not start:\n" + "".join(self.banner) + self.log_path.read_text())

    def _start(self, env) -> bool:
        self.proxy_port = free_port()
        self.admin = f"127.0.0.1:{free_port()}"
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(BIN), "up", "--config", str(self.config_path),
             "--proxy", f"127.0.0.1:{self.proxy_port}",
             "--extproc", f"127.0.0.1:{free_port()}",
             "--admin", self.admin,
             "--envoy-admin", f"127.0.0.1:{free_port()}",
             "--workdir", str(self.dir / "run")],
            stdout=subprocess.PIPE, stderr=self.log, env=env, text=True)
        self.banner = []
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.banner.append(line)
            if line.startswith("Try:"):
                return True
        self.stop()
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    def logs(self) -> str:
        return self.log_path.read_text()

    def post(self, path: str, body=None, key: str | None = CLIENT_KEY, headers=None, data=None, **kw):
        h = {"content-type": "application/json"}
        if key:
            h["authorization"] = f"Bearer {key}"
        h.update(headers or {})
        return requests.post(self.url + path, json=body if data is None else None, data=data, headers=h, timeout=30, **kw)

    def chat(self, model: str, stream=False, **kw):
        body = {"model": model, "messages": [{"role": "user", "content": "Say hello"}]}
        if stream:
            body["stream"] = True
        return self.post("/v1/chat/completions", body, stream=stream, **kw)

    def record(self, request_id: str, timeout=5.0) -> dict:
        """The request-log record for one request (records are written asynchronously)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.records_path.exists():
                for line in self.records_path.read_text().splitlines():
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # the writer's append is still in flight: read again
                    if r["id"] == request_id:
                        return r
            time.sleep(0.05)
        raise AssertionError(f"no record for {request_id}")

    def mark(self) -> int:
        """Remember how many records exist, for `new_records`."""
        return len(self.records())

    def new_records(self, mark: int, n: int = 1, timeout=5.0) -> list[dict]:
        """The records written after `mark` (waits for at least `n`)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            recs = self.records()[mark:]
            if len(recs) >= n:
                return recs
            time.sleep(0.05)
        raise AssertionError(f"expected {n} new records, got {len(self.records()[mark:])}")

    def records(self) -> list[dict]:
        if not self.records_path.exists():
            return []
        return [json.loads(l) for l in self.records_path.read_text().splitlines()]


@pytest.fixture(scope="session")
def providers():
    ps = {name: FakeProvider(name).start() for name in ("oa", "oa2", "an")}
    yield ps
    for p in ps.values():
        p.stop()


@pytest.fixture(scope="session")
def gateway(providers):
    gw = Gateway(providers)
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def fresh_providers(providers):
    for p in providers.values():
        p.reset()
    yield


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis (Debian redis-server) on a free loopback port, for the shared-state tests."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("redis-server did not start (is Debian's redis-server installed? `make redis`)")
    yield f"redis://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(5)
