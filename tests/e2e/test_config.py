"""Config: lint errors, hot reload (good and bad files), weighted split, affinity, CLI."""

import json
import subprocess
import time

import pytest

from conftest import BIN, CLIENT_KEY, Gateway, base_config


def lint(tmp_path, text):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    return subprocess.run([str(BIN), "lint", str(f)], capture_output=True, text=True)


PROVIDER = '  - { id: oa, kind: openai, base_url: "http://127.0.0.1:1/v1", secret_key_ref: { env: X } }\n'


@pytest.mark.parametrize("text,path,message", [
    ("providers:\n" + PROVIDER + "model_groups:\n  - name: g\n    models: [ { model: m, provider: nope } ]\n",
     "model_groups[0].models[0].provider", "unknown provider 'nope' in model group"),
    ("providers:\n" + PROVIDER + "models: [ { name: a, provider: oa }, { name: b, provider: oa } ]\n"
     "model_groups:\n  - name: g\n    strategy: weighted\n    models: [ { model: a, weight: 60 }, { model: b, weight: 30 } ]\n",
     "model_groups[0].models", "weights must sum to 100"),
    ("providers:\n" + PROVIDER + "models: [ { name: a, provider: oa } ]\n"
     "model_groups:\n  - { name: g, models: [ { model: a } ] }\n  - { name: g, models: [ { model: a } ] }\n",
     "model_groups[1].name", "duplicate model group name 'g'"),
    ('providers:\n  - { id: an, kind: anthropic, base_url: "https://api.anthropic.com/v1" }\n',
     "providers[0].secret_key_ref", "missing secret_key_ref"),
    ("providers: []\nbogus_field: 1\n", "line 2", "unknown field `bogus_field`"),
])
def test_lint_names_the_file_path_and_fix(tmp_path, text, path, message):
    out = lint(tmp_path, text)
    assert out.returncode == 1
    line = out.stderr.strip().splitlines()[0]
    assert line.startswith(str(tmp_path / "bad.yaml") + ": " + path), line
    assert message in line and "fix:" in line


def test_lint_accepts_the_example_config():
    from conftest import ROOT
    out = subprocess.run([str(BIN), "lint", str(ROOT / "examples" / "gateway.yaml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


@pytest.fixture
def own_gateway(providers):
    gw = Gateway(providers)
    yield gw
    gw.stop()


def wait_for(pred, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_hot_reload_good_then_bad_file(own_gateway, providers):
    gw = own_gateway
    assert gw.chat("gpt-4o-mini").status_code == 404
    good = base_config(providers, gw.records_path).replace(
        "models:\n", "models:\n  - { name: gpt-4o-mini, provider: oa, pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6 } }\n", 1)
    gw.config_path.write_text(good)
    assert wait_for(lambda: gw.chat("gpt-4o-mini").status_code == 200), gw.logs()
    assert "config reloaded" in gw.logs()

    gw.config_path.write_text(good.replace("strategy: weighted", "strategy: weighted\n    bogus: 1", 1))
    assert wait_for(lambda: "config reload rejected" in gw.logs()), gw.logs()
    assert "unknown field `bogus`" in gw.logs()
    # The old config keeps serving.
    assert gw.chat("gpt-4o-mini").status_code == 200
    assert gw.chat("split").status_code == 200


def test_a_rotated_secret_file_takes_effect_without_restart(own_gateway, providers):
    gw = own_gateway
    secret = gw.dir / "oa.key"
    secret.write_text("sk-first-secret\n")
    gw.config_path.write_text(base_config(providers, gw.records_path).replace(
        "secret_key_ref: { env: E2E_OA_KEY }", f"secret_key_ref: {{ file: {secret} }}", 1))
    assert wait_for(lambda: gw.chat("gpt-4o").status_code == 200
                    and providers["oa"].requests[-1]["headers"]["authorization"] == "Bearer sk-first-secret"), gw.logs()
    secret.write_text("sk-rotated-secret\n")  # e.g. a Kubernetes secret mount updating
    assert wait_for(lambda: gw.chat("gpt-4o").status_code == 200
                    and providers["oa"].requests[-1]["headers"]["authorization"] == "Bearer sk-rotated-secret"), gw.logs()
    assert "sk-rotated-secret" not in gw.logs()


def test_weighted_split_within_tolerance(gateway, providers):
    n = 300
    for _ in range(n):
        r = gateway.chat("split")
        assert r.status_code == 200
    oa, oa2 = len(providers["oa"].requests), len(providers["oa2"].requests)
    assert oa + oa2 == n
    # 70/30 split: 3 sigma of a binomial(300, 0.7) is about 24.
    assert abs(oa - 0.7 * n) < 30, (oa, oa2)


def test_session_affinity_sticks_per_session(gateway, providers):
    chosen = {}
    for i in range(40):
        session = f"conv-{i % 8}"
        r = gateway.chat("sticky", headers={"x-session-id": session})
        assert r.status_code == 200
        chosen.setdefault(session, set()).add(r.headers["x-switchyard-provider"])
    assert all(len(v) == 1 for v in chosen.values()), chosen
    assert {p for v in chosen.values() for p in v} == {"oa", "oa2"}, "8 sessions should use both backends"


def test_logs_tail_filters_and_formats(gateway):
    r = gateway.chat("llama3")
    rid = r.headers["x-switchyard-request-id"]
    gateway.record(rid)
    out = subprocess.run([str(BIN), "logs", "tail", "--config", str(gateway.config_path), "--filter", "model=llama3",
                          "--limit", "3", "--output", "json"], capture_output=True, text=True, check=True)
    recs = json.loads(out.stdout)
    assert 1 <= len(recs) <= 3
    assert all(r["requested_model"] == "llama3" for r in recs)
    assert recs[-1]["id"] == rid
    table = subprocess.run([str(BIN), "logs", "tail", "--file", str(gateway.records_path), "--limit", "1"],
                           capture_output=True, text=True, check=True).stdout
    assert rid in table and "llama3.1:8b" in table


def test_up_prints_endpoint_and_demo_key(gateway):
    banner = "".join(gateway.banner)
    assert f"http://127.0.0.1:{gateway.proxy_port}/v1" in banner
    assert "sk-demo-e2e" in banner
    assert gateway.chat("gpt-4o", key="sk-demo-e2e").status_code == 200
    # The Console is on under `up` (make run), with the token it prints.
    assert f"http://{gateway.admin}/console" in banner
    token = next(l.split()[2] for l in gateway.banner if l.strip().startswith("Admin token:"))
    import requests as _rq
    s = _rq.Session()
    r = s.post(f"http://{gateway.admin}/console/login", data={"token": token}, allow_redirects=False)
    assert r.status_code == 303
    assert s.get(f"http://{gateway.admin}/console").status_code == 200
    # And a demo Console user, for the email + password sign-in of seed 000.
    line = next(l for l in gateway.banner if l.strip().startswith("Console user:"))
    email, _, password = line.split(":", 1)[1].split()[:3]
    s = _rq.Session()
    r = s.post(f"http://{gateway.admin}/console/login", data={"email": email, "password": password}, allow_redirects=False)
    assert r.status_code == 303, line
    assert "Signed in as" in s.get(f"http://{gateway.admin}/console").text


def test_keys_create_prints_the_key_once_and_a_matching_hash():
    out = subprocess.run([str(BIN), "keys", "create", "--name", "svc"], capture_output=True, text=True, check=True)
    key = out.stdout.strip()
    assert key.startswith("sk-")
    import hashlib
    assert f'sha256:{hashlib.sha256(key.encode()).hexdigest()}' in out.stderr
    assert key not in out.stderr


def test_secrets_never_appear_in_logs_or_records(gateway, providers):
    from conftest import AN_SECRET, OA_SECRET
    gateway.chat("reliable-chat")
    time.sleep(0.3)
    for text in (gateway.logs(), gateway.records_path.read_text()):
        for secret in (OA_SECRET, AN_SECRET, CLIENT_KEY):
            assert secret not in text


def test_committed_envoy_bootstrap_is_generated_and_valid():
    from conftest import ENVOY, ROOT
    out = subprocess.run([str(BIN), "bootstrap", "--config", str(ROOT / "examples" / "gateway.yaml")],
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    assert out.stdout == (ROOT / "envoy" / "bootstrap.yaml").read_text(), \
        "envoy/bootstrap.yaml is stale: switchyard bootstrap --config examples/gateway.yaml > envoy/bootstrap.yaml"
    v = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(ROOT / "envoy" / "bootstrap.yaml")],
                       capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr


def test_affinity_without_session_id_follows_the_conversation_prefix(gateway):
    seen = {}
    for convo in range(8):
        opening = [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"topic {convo}"}]
        for turn in range(3):
            msgs = opening + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": f"more {turn}"}] * turn
            r = gateway.post("/v1/chat/completions", {"model": "sticky", "messages": msgs})
            assert r.status_code == 200
            seen.setdefault(convo, set()).add(r.headers["x-switchyard-provider"])
    assert all(len(v) == 1 for v in seen.values()), seen
    assert {p for v in seen.values() for p in v} == {"oa", "oa2"}
