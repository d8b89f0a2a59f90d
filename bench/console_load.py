#!/usr/bin/env python3
"""Console page load times with a large request log in the store.

Starts its own redis-server and `switchyard serve` (no Envoy: the Console only reads the store)
on free loopback ports, creates keys through the admin API, writes BENCH_RECORDS request records
straight into the Redis log stream in the store's own format (pipelined XADD, one field `r` with
the record's JSON, stream ids = append times), plus the matching hourly usage hashes and key
stats, then signs in to the Console and times every page and its JSON API twin.

Each page is measured twice, N times each:
  cold-ish  N rounds over all pages, one request per page per round, so every request follows
            requests for other pages (nothing of this page's work is in caches);
  warm      N back-to-back requests of the same page, after one discarded request.
Times are client-side, request sent → whole body received, over one keep-alive connection.

Writes a markdown table to bench/results-console.md (BENCH_OUT) and prints it. Exits 1 if a
page answers anything but 200 or a warm p95 is over the budget (BENCH_BUDGET_MS, 200).

Env: BENCH_RECORDS (100000), BENCH_KEYS (20), BENCH_DAYS (30: records and usage spread over the
last D days), BENCH_N (20), SWITCHYARD_BIN (target/release/switchyard), BENCH_OUT,
BENCH_BUDGET_MS (200), BENCH_KEEP=1 keeps the work dir (config, logs).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
RECORDS = int(os.environ.get("BENCH_RECORDS", "100000"))
KEYS = int(os.environ.get("BENCH_KEYS", "20"))
DAYS = int(os.environ.get("BENCH_DAYS", "30"))
N = int(os.environ.get("BENCH_N", "20"))
BIN = Path(os.environ.get("SWITCHYARD_BIN", ROOT / "target" / "release" / "switchyard"))
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "results-console.md"))
BUDGET_MS = float(os.environ.get("BENCH_BUDGET_MS", "200"))
TOKEN = "bench-console-admin-token"
PREFIX = "sy:"  # StoreOptions::default().prefix
HOUR_MS = 3_600_000
USAGE_RETENTION_MS = 35 * 24 * HOUR_MS  # StoreOptions::default().usage_retention

# (model, provider, provider kind, $/Mtok in, $/Mtok out, share of traffic)
MODELS = [
    ("gpt-4o", "openai", "openai", 2.50, 10.00, 0.40),
    ("gpt-4o-mini", "openai", "openai", 0.15, 0.60, 0.25),
    ("claude-sonnet-4", "anthropic", "anthropic", 3.00, 15.00, 0.15),
    ("llama3", "local", "openai_compatible", 0.10, 0.20, 0.10),
    ("text-embedding-3-small", "openai", "openai", 0.02, 0.0, 0.10),
]
GROUP = "reliable-chat"  # gpt-4o, then claude-sonnet-4


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Resp:
    """The smallest pipelining RESP client: send many commands, then read every reply."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = self.sock.makefile("rb")

    @staticmethod
    def encode(*args) -> bytes:
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    def reply(self):
        line = self.buf.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind in (b"+", b":"):
            return rest
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.buf.read(n + 2)[:-2]
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")

    def pipeline(self, cmds: list[tuple]) -> list:
        self.sock.sendall(b"".join(self.encode(*c) for c in cmds))
        return [self.reply() for _ in cmds]


def wait_port(port: int, proc: subprocess.Popen, what: str, logfile: Path | None = None) -> None:
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    detail = logfile.read_text() if logfile and logfile.exists() else ""
    raise SystemExit(f"bench: {what} did not start\n{detail}")


def config(work: Path, redis_port: int, upstream: int) -> str:
    providers = sorted({(p, kind) for _, p, kind, *_ in MODELS})
    lines = [
        f"records: {{ path: {work / 'records.jsonl'} }}",
        f'store: {{ redis_url: "redis://127.0.0.1:{redis_port}" }}',
        "providers:",
    ]
    for pid, kind in providers:
        # Nothing is sent upstream; real provider kinds just need a key reference.
        secret = "" if kind == "openai_compatible" else ", secret_key_ref: { env: BENCH_PROVIDER_KEY }"
        lines.append(f"  - {{ id: {pid}, kind: {kind}, base_url: \"http://127.0.0.1:{upstream}/v1\"{secret} }}")
    lines.append("models:")
    for name, pid, _, pin, pout, _ in MODELS:
        lines.append(f"  - {{ name: {name}, provider: {pid}, pricing: {{ input_per_mtok: {pin}, output_per_mtok: {pout} }} }}")
    lines += [
        "model_groups:",
        f"  - name: {GROUP}",
        "    strategy: fallback",
        "    models: [ { model: gpt-4o }, { model: claude-sonnet-4 } ]",
    ]
    return "\n".join(lines) + "\n"


def rfc3339(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def make_record(rng: random.Random, ts_ms: int, key: dict) -> tuple[dict, str, str]:
    """One record shaped like the processor's `Record` (src/record.rs); returns it with the
    model and provider its usage row counts under."""
    weights = [m[5] for m in MODELS]
    model, provider, _, pin, pout, _ = rng.choices(MODELS, weights)[0]
    embed = model.startswith("text-embedding")
    requested, route, strategy = model, None, None
    fallback = False
    if model == "gpt-4o" and rng.random() < 0.25:
        requested, route, strategy = GROUP, GROUP, "fallback"
        fallback = rng.random() < 0.08  # gpt-4o failed, claude answered
    r = rng.random()
    status = 200
    if r < 0.006:
        status = 500
    elif r < 0.012:
        status = 502
    elif r < 0.016:
        status = 504
    elif r < 0.03:
        status = 429
    elif r < 0.035:
        status = 400
    stream = not embed and rng.random() < 0.4
    lat = rng.lognormvariate(6.3, 0.7)  # ~550 ms median
    attempts = []
    if fallback:
        attempts.append({"provider": "openai", "model": "gpt-4o", "status": 503,
                         "latency_ms": round(lat * 0.3, 3), "error": "status 503",
                         "start_offset_ms": 0.412})
        model, provider, pin, pout = "claude-sonnet-4", "anthropic", 3.00, 15.00
    resolved = None if status in (400, 429) else model
    prov = None if status in (400, 429) else provider
    if resolved:
        attempts.append({"provider": prov, "model": resolved,
                         "status": 200 if status == 200 else (status if status != 504 else None),
                         "latency_ms": round(lat, 3),
                         "error": None if status == 200 else ("timeout" if status == 504 else f"status {status}"),
                         "start_offset_ms": round(lat * 0.3 + 0.5, 3) if fallback else 0.391})
    ok = status == 200
    inp = rng.randint(20, 4000) if status not in (400, 429) else 0
    out = 0 if embed or not ok else rng.randint(5, 1200)
    cost = round((inp * pin + out * pout) / 1e6, 9) if ok else 0.0
    outcome = {200: "ok", 504: "timeout", 429: "rate_limited", 400: "invalid_request"}.get(status, "error")
    error = None if ok else {429: "token limit total_tokens_per_hour exceeded", 400: "messages: required"}.get(status, f"status {status}")
    rec = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "ts": rfc3339(ts_ms),
        "key_id": key["id"],
        "key_name": key["name"],
        "endpoint": "/v1/embeddings" if embed else "/v1/chat/completions",
        "requested_model": requested,
        "resolved_model": resolved,
        "provider": prov,
        "route": route,
        "rule": None,
        "reason": None,
        "strategy": strategy,
        "attempts": attempts,
        "skipped": [],
        "fallback_count": max(0, len(attempts) - 1),
        "status": status,
        "outcome": outcome,
        "error": error,
        "stream": stream,
        "input_tokens": inp,
        "output_tokens": out,
        "latency_ms": round(lat + (lat * 0.3 if fallback else 0), 3),
        "ttft_ms": round(lat * 0.2, 3) if stream and ok else None,
        "overhead_ms": round(rng.uniform(0.3, 1.5), 3),
        "cost_usd": cost,
        "session_id": None,
        "tags": [],
    }
    return rec, model if resolved else requested, prov or ""


def fill(redis: Resp, keys: list[dict], now_ms: int) -> dict:
    """Writes the log stream, usage hashes and key stats; returns facts the pages are chosen by."""
    rng = random.Random(42)
    # A few busy keys and a long tail (Zipf-like): the last key is rare.
    kw = [1 / (i + 1) ** 1.3 for i in range(len(keys))]
    span = DAYS * 24 * HOUR_MS
    times = sorted(now_ms - rng.randrange(span) for _ in range(RECORDS))
    usage: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_key: dict[str, int] = defaultdict(int)
    last_id = (0, 0)
    batch: list[tuple] = []
    newest_id = None
    for ts in times:
        key = rng.choices(keys, kw)[0]
        rec, model, provider = make_record(rng, ts, key)
        appended = ts + int(rec["latency_ms"]) + 5
        sid = (appended, 0) if appended > last_id[0] else (last_id[0], last_id[1] + 1)
        last_id = sid
        # serde_json's compact form: no spaces, non-ASCII as is.
        body = json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode()
        batch.append(("XADD", PREFIX + "logs", f"{sid[0]}-{sid[1]}", "r", body))
        if len(batch) == 2000:
            redis.pipeline(batch)
            batch = []
        newest_id = rec["id"]
        per_key[key["id"]] += 1
        nanos = round(rec["cost_usd"] * 1e9)
        err = int(rec["status"] >= 400)
        if rec["status"] == 400:
            continue  # refused before admission: no ledger entry
        hour = appended // HOUR_MS
        for by, name in (("key", key["id"]), ("model", model), ("provider", provider)):
            u = usage[(by, hour)]
            u[f"{name}|r"] += 1
            u[f"{name}|i"] += rec["input_tokens"]
            u[f"{name}|o"] += rec["output_tokens"]
            u[f"{name}|c"] += nanos
            u[f"{name}|e"] += err
        s = stats[key["id"]]
        s["requests"] += 1
        s["input_tokens"] += rec["input_tokens"]
        s["output_tokens"] += rec["output_tokens"]
        s["spend_nanos"] += nanos
        s["last_used_ms"] = appended
    if batch:
        redis.pipeline(batch)
    cmds = []
    for (by, hour), fields in usage.items():
        k = f"{PREFIX}u:{by}:{hour}"
        cmds.append(("HSET", k, *[x for kv in fields.items() for x in kv]))
        cmds.append(("PEXPIREAT", k, (hour + 1) * HOUR_MS + USAGE_RETENTION_MS))
    for kid, s in stats.items():
        cmds.append(("HSET", f"{PREFIX}ks:{kid}", *[x for kv in s.items() for x in kv]))
    redis.pipeline(cmds)
    rare = min(keys, key=lambda k: per_key[k["id"]])
    return {"rare_key": rare, "rare_count": per_key[rare["id"]], "newest_id": newest_id}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]


def main() -> int:
    if not BIN.exists():
        raise SystemExit(f"bench: no switchyard binary at {BIN} (cargo build --release --locked)")
    if not shutil.which("redis-server"):
        raise SystemExit("bench: redis-server is needed (make redis)")
    work = Path(tempfile.mkdtemp(prefix="switchyard-console-bench."))
    redis_port, admin_port, extproc_port, upstream_port = free_ports(4)
    procs: list[subprocess.Popen] = []
    try:
        redis_proc = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        procs.append(redis_proc)
        wait_port(redis_port, redis_proc, "redis-server")
        (work / "gateway.yaml").write_text(config(work, redis_port, upstream_port))
        sy_log = work / "switchyard.log"
        sy = subprocess.Popen(
            [str(BIN), "serve", "--config", str(work / "gateway.yaml"),
             "--admin", f"127.0.0.1:{admin_port}", "--extproc", f"127.0.0.1:{extproc_port}"],
            stdout=subprocess.DEVNULL, stderr=open(sy_log, "w"),
            env=dict(os.environ, SWITCHYARD_ADMIN_TOKEN=TOKEN, BENCH_PROVIDER_KEY="unused", RUST_LOG="warn"))
        procs.append(sy)
        wait_port(admin_port, sy, "switchyard serve", sy_log)
        base = f"http://127.0.0.1:{admin_port}"

        auth = {"authorization": f"Bearer {TOKEN}"}
        keys = []
        for i in range(KEYS):
            r = requests.post(base + "/admin/keys", json={"name": f"team-{i:02d}"}, headers=auth, timeout=10)
            r.raise_for_status()
            keys.append({"id": r.json()["id"], "name": f"team-{i:02d}"})
        t0 = time.time()
        now_ms = int(time.time() * 1000)
        facts = fill(Resp(redis_port), keys, now_ms)
        info = Resp(redis_port).pipeline([("XLEN", PREFIX + "logs"), ("MEMORY", "USAGE", PREFIX + "logs", "SAMPLES", "0")])
        log(f"wrote {int(info[0])} records ({int(info[1]) / 2**20:.0f} MiB in Redis) over {DAYS} days, "
            f"usage and key stats, in {time.time() - t0:.1f} s; rarest key {facts['rare_key']['name']} "
            f"has {facts['rare_count']} records")

        s = requests.Session()
        r = s.post(base + "/console/login", data={"token": TOKEN}, allow_redirects=False, timeout=10)
        if r.status_code != 303:
            raise SystemExit(f"bench: sign-in failed: {r.status_code}")
        rare = facts["rare_key"]["name"]
        log_filters = [
            ("", "no filter"),
            (f"key={rare}", f"rare key ({facts['rare_count']} records)"),
            ("model=gpt-4o", "common model"),
            ("status=500", "status 500"),
            ("since=1h", "last hour"),
            ("key=no-such-key", "matches nothing"),
        ]
        pages: list[tuple[str, str]] = []  # (label, path)
        for p in ("24h", "7d", "30d"):
            pages.append((f"Dashboard {p}", f"/console?period={p}"))
        pages += [("Keys", "/console/keys"), ("Key detail", f"/console/keys/{keys[0]['id']}"),
                  ("Models", "/console/models")]
        for q, label in log_filters:
            pages.append((f"Logs: {label}", "/console/logs" + (f"?{q}" if q else "")))
        for p in ("24h", "7d", "30d"):
            pages.append((f"Usage {p}", f"/console/usage?period={p}"))
        pages.append(("Usage 30d, over time by key", "/console/usage?period=30d&series=key"))
        pages.append(("Playground", "/console/playground"))
        for p in ("24h", "7d", "30d"):
            pages.append((f"API overview {p}", f"/console/api/overview?period={p}"))
        pages += [("API keys", "/console/api/keys"), ("API models", "/console/api/models")]
        for q, label in log_filters:
            pages.append((f"API logs: {label}", "/console/api/logs" + (f"?{q}" if q else "")))
        pages.append(("API log by id (newest)", f"/console/api/logs/{facts['newest_id']}"))
        for p in ("24h", "7d", "30d"):
            pages.append((f"API usage {p}", f"/console/api/usage?period={p}&by=model"))
        pages.append(("API usage series 30d", "/console/api/usage/series?period=30d&by=key"))

        def timed(path: str) -> float:
            t = time.perf_counter()
            r = s.get(base + path, allow_redirects=False, timeout=60)
            _ = r.content
            ms = (time.perf_counter() - t) * 1000
            if r.status_code != 200:
                raise SystemExit(f"bench: {path} answered {r.status_code}: {r.text[:300]}")
            return ms

        cold: dict[str, list[float]] = defaultdict(list)
        warm: dict[str, list[float]] = defaultdict(list)
        for _ in range(N):
            for label, path in pages:
                cold[label].append(timed(path))
        for label, path in pages:
            timed(path)
            warm[label] = [timed(path) for _ in range(N)]

        rows = []
        over = []
        for label, path in pages:
            c, w = cold[label], warm[label]
            stats = [statistics.median(c), pct(c, 95), max(c), statistics.median(w), pct(w, 95), max(w)]
            if max(pct(c, 95), pct(w, 95)) > BUDGET_MS:
                over.append(label)
            rows.append(f"| {label} | `{path.replace('|', '%7C')}` | " + " | ".join(f"{x:.1f}" for x in stats) + " |")
        rev = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True, text=True).stdout.strip()
        table = "\n".join([
            f"# Console page load times, {RECORDS} request records in Redis",
            "",
            f"Run of {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit `{rev[:80]}`, binary `{BIN.relative_to(ROOT) if BIN.is_relative_to(ROOT) else BIN}`.",
            f"Machine: **2 vCPUs** (virtualised, shared with other builds: noisy). {RECORDS} records over "
            f"{DAYS} days from {KEYS} keys, redis-server on loopback, `switchyard serve` (no Envoy).",
            f"Command: `make bench-console` (`{sys.executable.split('/')[-1]} bench/console_load.py`), N={N} per column.",
            "Times in ms, client-side (request → whole body), one keep-alive connection. cold-ish: "
            "rounds over all pages; warm: the same page back to back.",
            "",
            "| page | path | cold p50 | cold p95 | cold max | warm p50 | warm p95 | warm max |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Over {BUDGET_MS:.0f} ms at p95: " + (", ".join(over) if over else "none") + ".",
            "",
        ])
        OUT.write_text(table)
        print(table)
        return 1 if over else 0
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("BENCH_KEEP") == "1":
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
