"""Shared state through a real Redis: two gateways (each its own Envoy + processor) share dynamic
keys, revocation, token limits, budgets, usage and the request-log stream."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import requests

from conftest import BIN, Gateway, base_config

ADMIN_TOKEN = "admin-token-for-e2e"


@pytest.fixture(scope="module")
def pair(providers, redis_url):
    env = {"SWITCHYARD_ADMIN_TOKEN": ADMIN_TOKEN}
    config = lambda records: base_config(providers, records) + f"\nstore: {{ redis_url: \"{redis_url}\" }}\n"
    a = Gateway(providers, config_text=config, env=env)
    b = Gateway(providers, config_text=config, env=env)
    yield a, b
    a.stop()
    b.stop()


def cli(*args, admin=None):
    env = dict(os.environ, SWITCHYARD_ADMIN_TOKEN=ADMIN_TOKEN)
    if admin:
        env["SWITCHYARD_ADMIN"] = admin
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, timeout=30)


def chat(gw, key, **extra):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello"}], **extra}
    return gw.post("/v1/chat/completions", body, key=key)


def test_a_dynamic_key_works_on_every_replica_and_revocation_reaches_all(pair):
    a, b = pair
    out = cli("keys", "create", "--name", "checkout-service-prod", admin=a.admin)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert key.startswith("sk-sy-") and "not shown again" in out.stderr
    assert chat(a, key).status_code == 200
    assert chat(b, key).status_code == 200

    listed = cli("keys", "list", admin=b.admin)
    assert listed.returncode == 0, listed.stderr
    row = next(l for l in listed.stdout.splitlines() if "checkout-service-prod" in l)
    assert key not in listed.stdout
    key_id = row.split()[0]
    # Usage is charged after each response (true-up), on whichever replica served it.
    deadline = time.time() + 5
    while time.time() < deadline:
        keys = requests.get(f"http://{a.admin}/admin/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()["keys"]
        mine = next(k for k in keys if k["id"] == key_id)
        if mine["requests"] == 2:
            break
        time.sleep(0.1)
    assert (mine["requests"], mine["input_tokens"], mine["output_tokens"]) == (2, 22, 14)
    assert mine["spend_usd"] == pytest.approx(2 * 0.0000975)

    assert cli("keys", "revoke", key_id, admin=b.admin).returncode != 0, "needs --yes"
    assert cli("keys", "revoke", key_id, "--yes", admin=b.admin).returncode == 0
    for gw in (a, b):
        r = chat(gw, key)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_admin_api_needs_the_admin_token(pair):
    a, _ = pair
    r = requests.get(f"http://{a.admin}/admin/keys")
    assert r.status_code == 401
    r = requests.get(f"http://{a.admin}/admin/keys", headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401


def test_token_limit_rejects_with_retry_after_and_budgets_too(pair):
    a, b = pair
    key = cli("keys", "create", "--name", "limited", "--total-tokens-per-hour", "300", admin=a.admin).stdout.strip()
    # Estimate = prompt + max_tokens; 1000 held output tokens cannot fit a 300-token hour.
    r = chat(b, key, max_tokens=1000)
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert "total_tokens_per_hour (300)" in r.json()["error"]["message"]
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert chat(a, key, max_tokens=50).status_code == 200

    poor = cli("keys", "create", "--name", "budgeted", "--daily-usd", "0.000001", admin=a.admin).stdout.strip()
    r = chat(a, poor, max_tokens=50)
    assert r.status_code == 429 and "budget" in r.json()["error"]["message"].lower(), r.text


def test_concurrent_requests_on_two_replicas_never_exceed_the_limit(pair, providers):
    a, b = pair
    # Each request holds ~8 prompt + 100 output tokens; 1000 tokens admit at most 9 at once.
    key = cli("keys", "create", "--name", "burst", "--total-tokens-per-hour", "1000", admin=a.admin).stdout.strip()
    providers["oa"].stream_delay = 0
    providers["oa"].default_behaviour = "stall:1"
    import concurrent.futures as cf
    with cf.ThreadPoolExecutor(24) as pool:
        futs = [pool.submit(chat, (a, b)[i % 2], key, max_tokens=100) for i in range(24)]
        statuses = [f.result().status_code for f in futs]
    admitted = statuses.count(200)
    assert set(statuses) <= {200, 429}
    assert 1 <= admitted <= 9, statuses


def test_usage_and_logs_come_from_the_store(pair):
    a, b = pair
    key = cli("keys", "create", "--name", "reporting", admin=a.admin).stdout.strip()
    r = chat(b, key)
    assert r.status_code == 200
    rid = r.headers["x-switchyard-request-id"]
    deadline = time.time() + 5
    while time.time() < deadline:
        logs = requests.get(f"http://{a.admin}/admin/logs?key=reporting&limit=10",
                            headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()["records"]
        if any(rec["id"] == rid for rec in logs):
            break
        time.sleep(0.1)
    assert any(rec["id"] == rid and rec["resolved_model"] == "gpt-4o" for rec in logs), logs
    out = cli("usage", "--by", "model", "--since", "24h", admin=a.admin)
    assert out.returncode == 0, out.stderr
    assert any(line.startswith("gpt-4o ") for line in out.stdout.splitlines()), out.stdout


def test_logs_tail_reads_the_store_and_follows_new_records(pair):
    a, b = pair
    key = cli("keys", "create", "--name", "followed", admin=a.admin).stdout.strip()
    assert chat(a, key).status_code == 200
    out = cli("logs", "tail", "--admin", b.admin, "--filter", "key=followed", "--output", "jsonl")
    assert out.returncode == 0, out.stderr
    assert [json.loads(l)["key_name"] for l in out.stdout.splitlines()] == ["followed"]

    env = dict(os.environ, SWITCHYARD_ADMIN_TOKEN=ADMIN_TOKEN)
    follower = subprocess.Popen([str(BIN), "logs", "tail", "--admin", b.admin, "--filter", "key=followed",
                                 "--output", "jsonl", "--follow"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert json.loads(follower.stdout.readline())["key_name"] == "followed"  # the existing one
        r = chat(b, key)
        new = json.loads(follower.stdout.readline())
        assert new["id"] == r.headers["x-switchyard-request-id"]
    finally:
        follower.kill()
        follower.wait()


def test_a_dynamic_key_carries_its_own_routing_configuration(pair, providers, tmp_path):
    a, b = pair
    routing = tmp_path / "routing.yaml"
    routing.write_text("""
active: true
strategy: rules
routes:
  - { name: chat-model, model: gpt-4o }
rules:
  - when: { tag: tier, op: eq, value: bulk }
    use: [ { model: llama3 } ]
""")
    out = cli("keys", "create", "--name", "routed-dyn", "--routing", str(routing), admin=a.admin)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    r = b.post("/v1/chat/completions", {"model": "chat-model", "messages": [{"role": "user", "content": "x"}]}, key=key)
    assert r.status_code == 200 and r.headers["x-switchyard-resolved-model"] == "gpt-4o"
    r = b.post("/v1/chat/completions", {"model": "chat-model", "messages": [{"role": "user", "content": "x"}]},
               key=key, headers={"x-switchyard-tags": "tier=bulk"})
    assert r.status_code == 200 and r.headers["x-switchyard-resolved-model"] == "llama3.1:8b"
    rec = b.record(r.headers["x-switchyard-request-id"])
    assert rec["strategy"] == "rules" and rec["key_name"] == "routed-dyn"

    routing.write_text("active: true\nroutes: [ { name: chat-model, model: ghost } ]\n")
    bad = cli("keys", "create", "--name", "broken", "--routing", str(routing), admin=a.admin)
    assert bad.returncode != 0 and "unknown model 'ghost'" in bad.stderr


def test_each_limit_type_rejects_at_the_right_point(pair, providers):
    a, b = pair
    # Output tokens: each request holds max_tokens=40 of 100, and is trued up to the 7 it really
    # produced, so five in a row fit; one asking for more than the whole hour does not.
    key = cli("keys", "create", "--name", "out-limited", "--output-tokens-per-hour", "100", admin=a.admin).stdout.strip()
    for _ in range(5):
        assert chat(a, key, max_tokens=40).status_code == 200
    r = chat(b, key, max_tokens=101)
    assert r.status_code == 429 and "output_tokens_per_hour (100)" in r.json()["error"]["message"]
    # Input tokens: the prompt estimate counts; outputs do not.
    key = cli("keys", "create", "--name", "in-limited", "--input-tokens-per-hour", "60", admin=a.admin).stdout.strip()
    assert chat(a, key, max_tokens=1000).status_code == 200  # ~8 prompt tokens; output unlimited
    long = "word " * 400  # ~500 estimated input tokens
    r = b.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": long}]}, key=key)
    assert r.status_code == 429 and "input_tokens_per_hour" in r.json()["error"]["message"], r.text
    # Short requests fill the hour: each is trued up to the 11 input tokens the fake reports, so
    # after 5 (55 tokens) the next estimate no longer fits 60 — whichever replica serves it.
    statuses = []
    for i in range(6):
        statuses.append(chat((a, b)[i % 2], key).status_code)
        time.sleep(0.3)  # the true-up runs just after each response
    assert statuses == [200] * 4 + [429] * 2, statuses


def test_usage_totals_equal_the_sum_of_records(pair):
    a, b = pair
    key = cli("keys", "create", "--name", "audited", admin=a.admin).stdout.strip()
    ids = [chat((a, b)[i % 2], key).headers["x-switchyard-request-id"] for i in range(4)]
    recs = [(a if i % 2 == 0 else b).record(rid) for i, rid in enumerate(ids)]
    key_id = recs[0]["key_id"]
    want = (len(recs), sum(r["input_tokens"] for r in recs), sum(r["output_tokens"] for r in recs),
            sum(r["cost_usd"] for r in recs))
    deadline = time.time() + 5
    while time.time() < deadline:
        rows = requests.get(f"http://{b.admin}/admin/usage?by=key&since_hours=1",
                            headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()["usage"]
        row = next((r for r in rows if r["name"] == key_id), None)
        if row and row["requests"] == want[0]:
            break
        time.sleep(0.1)
    assert (row["requests"], row["input_tokens"], row["output_tokens"]) == want[:3]
    assert row["cost_usd"] == pytest.approx(want[3])


def test_redis_down_then_back(providers, tmp_path):
    """Static keys keep serving while Redis is down (limits fail open), dynamic keys get a clear
    503, every request still has its record, and the gateway recovers when Redis returns."""
    from conftest import CLIENT_KEY, free_port
    port = free_port()
    start = lambda: subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL)
    redis = start()
    time.sleep(0.3)
    config = lambda records: base_config(providers, records) + f'\nstore: {{ redis_url: "redis://127.0.0.1:{port}" }}\n'
    gw = Gateway(providers, config_text=config, env={"SWITCHYARD_ADMIN_TOKEN": ADMIN_TOKEN})
    try:
        key = cli("keys", "create", "--name", "outage", admin=gw.admin).stdout.strip()
        assert chat(gw, key).status_code == 200
        redis.terminate()
        redis.wait(5)
        ids = []
        r = chat(gw, CLIENT_KEY)
        assert r.status_code == 200, r.text
        ids.append(r.headers["x-switchyard-request-id"])
        r = chat(gw, key)
        assert r.status_code == 503 and r.json()["error"]["code"] == "key_store_unavailable"
        ids.append(r.headers["x-switchyard-request-id"])
        redis = start()  # back, empty (no persistence in this test): keys must be created again
        time.sleep(0.5)
        deadline = time.time() + 10
        while time.time() < deadline:
            out = cli("keys", "create", "--name", "after", admin=gw.admin)
            if out.returncode == 0:
                break
            time.sleep(0.2)
        assert out.returncode == 0, out.stderr
        r = chat(gw, out.stdout.strip())
        assert r.status_code == 200
        ids.append(r.headers["x-switchyard-request-id"])
        assert [gw.record(i)["status"] for i in ids] == [200, 503, 200]
    finally:
        gw.stop()
        redis.terminate()
        redis.wait(5)
