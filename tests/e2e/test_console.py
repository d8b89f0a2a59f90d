"""The Console on the admin port: sign-in with the admin token, sessions, CSRF, the JSON API
(keys shown once, validation, catalog, logs, usage, playground) and the server-rendered pages,
through a real gateway (Envoy + processor + fake providers)."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
import requests

from conftest import Gateway, base_config

ADMIN_TOKEN = "console-admin-token-e2e"

PAGES = ["/console", "/console/keys", "/console/models", "/console/models/gpt-4o", "/console/logs",
         "/console/usage", "/console/playground", "/console/keys/key_000000000000"]
API_GETS = ["/console/api/session", "/console/api/overview", "/console/api/keys", "/console/api/models",
            "/console/api/models/gpt-4o", "/console/api/logs", "/console/api/logs/req_x", "/console/api/usage"]


@pytest.fixture(scope="module", params=["memory", "redis"])
def gw(request, providers):
    redis_url = None
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        config = lambda records: base_config(providers, records) + f"\nstore: {{ redis_url: \"{redis_url}\" }}\n"
    else:
        config = None
    g = Gateway(providers, config_text=config, env={"SWITCHYARD_ADMIN_TOKEN": ADMIN_TOKEN})
    g.console = f"http://{g.admin}"
    g.redis_url = redis_url
    yield g
    g.stop()


def signed_in(gw) -> tuple[requests.Session, str]:
    s = requests.Session()
    r = s.post(gw.console + "/console/login", data={"token": ADMIN_TOKEN}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console"
    csrf = s.get(gw.console + "/console/api/session").json()["csrf"]
    return s, csrf


def test_nothing_is_readable_without_signing_in(gw):
    for p in PAGES:
        r = requests.get(gw.console + p, allow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/console/login", p
    for p in API_GETS:
        r = requests.get(gw.console + p)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error", p
    r = requests.post(gw.console + "/console/api/keys", json={"name": "x"})
    assert r.status_code == 401
    r = requests.delete(gw.console + "/console/api/keys/key_000000000000")
    assert r.status_code == 401
    # A forged or expired cookie is no session either.
    r = requests.get(gw.console + "/console/api/keys", cookies={"sy_console": "0" * 64})
    assert r.status_code == 401
    # The sign-in page and the static assets are public.
    assert requests.get(gw.console + "/console/login").status_code == 200
    assert requests.get(gw.console + "/console/assets/console.css").status_code == 200
    assert requests.get(gw.console + "/", allow_redirects=False).headers["location"] == "/console"


def test_sign_in_sets_a_strict_http_only_session_cookie_and_sign_out_ends_it(gw):
    r = requests.post(gw.console + "/console/login", data={"token": "wrong"}, allow_redirects=False)
    assert r.status_code == 401 and "set-cookie" not in r.headers and "Invalid admin token" in r.text
    r = requests.post(gw.console + "/console/login", data={"token": ADMIN_TOKEN}, allow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here; behind TLS (x-forwarded-proto: https) it is set
    r = requests.post(gw.console + "/console/login", data={"token": ADMIN_TOKEN},
                      headers={"x-forwarded-proto": "https"}, allow_redirects=False)
    assert "; Secure" in r.headers["set-cookie"]

    s, csrf = signed_in(gw)
    assert s.get(gw.console + "/console/api/keys").status_code == 200
    # Sign-out is state-changing: it needs the CSRF token too.
    assert s.post(gw.console + "/console/logout", allow_redirects=False).status_code == 403
    r = s.post(gw.console + "/console/logout", data={"csrf": csrf}, allow_redirects=False)
    assert r.status_code == 303 and "Max-Age=0" in r.headers["set-cookie"]
    assert s.get(gw.console + "/console/api/keys").status_code == 401
    assert s.get(gw.console + "/console", allow_redirects=False).status_code == 303


def test_every_state_changing_call_needs_the_csrf_token(gw):
    s, csrf = signed_in(gw)
    url = gw.console + "/console/api/keys"
    assert s.post(url, json={"name": "no-csrf"}).status_code == 403
    assert s.post(url, json={"name": "bad-csrf"}, headers={"x-csrf-token": "0" * 64}).status_code == 403
    r = s.post(url, json={"name": "cross"}, headers={"x-csrf-token": csrf, "origin": "http://evil.example"})
    assert r.status_code == 403
    assert s.delete(url + "/key_000000000000").status_code == 403
    # Forms: create, revoke, playground.
    assert s.post(gw.console + "/console/keys", data={"name": "form-no-csrf"}).status_code == 403
    assert s.post(gw.console + "/console/keys/key_000000000000/revoke", data={}).status_code == 403
    assert s.post(gw.console + "/console/playground", data={"key": "k", "model": "gpt-4o", "message": "hi"}).status_code == 403
    names = [k["name"] for k in s.get(url).json()["keys"]]
    assert not {"no-csrf", "bad-csrf", "cross", "form-no-csrf"} & set(names)
    # Another session's token does not work here.
    _, other = signed_in(gw)
    assert s.post(url, json={"name": "other"}, headers={"x-csrf-token": other}).status_code == 403


def test_key_validation_errors(gw):
    s, csrf = signed_in(gw)
    h = {"x-csrf-token": csrf}
    url = gw.console + "/console/api/keys"
    for body, field in [({}, "name"), ({"name": "  "}, "name"), ({"name": 5}, "name"), ({"name": "x" * 101}, "name"),
                        ({"name": "a", "rate_limit": {"total_tokens_per_hour": -1}}, "total_tokens_per_hour"),
                        ({"name": "a", "rate_limit": {"daily_usd": "lots"}}, "daily_usd"),
                        ({"name": "a", "rate_limit": [1]}, "rate_limit")]:
        r = s.post(url, json=body, headers=h)
        assert r.status_code == 400, body
        assert r.json()["error"]["message"].startswith(field), r.json()
    r = s.post(url, data="{not json", headers=dict(h, **{"content-type": "application/json"}))
    assert r.status_code == 400
    # The form shows the error next to the form.
    r = s.post(gw.console + "/console/keys", data={"csrf": csrf, "name": "ok", "input_tokens_per_hour": "many"})
    assert r.status_code == 400 and "input_tokens_per_hour" in r.text


def test_seed_000_key_once_request_then_logs_with_resolved_model_and_cost(gw):
    s, csrf = signed_in(gw)
    h = {"x-csrf-token": csrf}
    name = f"console-seed000-{time.time_ns()}"
    r = s.post(gw.console + "/console/api/keys", json={"name": name, "rate_limit": {"total_tokens_per_hour": 100000}}, headers=h)
    assert r.status_code == 201, r.text
    created = r.json()
    key, key_id = created["key"], created["id"]
    assert key.startswith("sk-") and created["proxy_endpoint"] == f"{gw.url}/v1"
    assert created["limits"]["total_tokens_per_hour"] == 100000
    # Shown once: never in listings or pages afterwards.
    listed = s.get(gw.console + "/console/api/keys")
    assert key not in listed.text and any(k["id"] == key_id for k in listed.json()["keys"])
    for p in ["/console", "/console/keys", f"/console/keys/{key_id}", "/console/usage"]:
        page = s.get(gw.console + p)
        assert page.status_code == 200 and key not in page.text, p

    r = gw.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "Explain AI routing"}]}, key=key)
    assert r.status_code == 200, r.text
    rid = r.headers["x-switchyard-request-id"]

    deadline = time.time() + 5
    rec = None
    while time.time() < deadline and rec is None:
        recs = s.get(gw.console + "/console/api/logs", params={"key": name, "since": "1h"}).json()["records"]
        rec = next((x for x in recs if x["id"] == rid), None)
        time.sleep(0.1)
    assert rec, "the request is in the logs"
    assert rec["resolved_model"] == "gpt-4o" and rec["provider"] == "oa" and rec["status"] == 200
    assert rec["input_tokens"] > 0 and rec["output_tokens"] > 0 and rec["cost_usd"] > 0 and rec["latency_ms"] > 0
    assert s.get(gw.console + f"/console/api/logs/{rid}").json()["id"] == rid
    assert s.get(gw.console + "/console/api/logs", params={"model": "claude-sonnet-4", "key": name}).json()["records"] == []
    assert s.get(gw.console + "/console/api/logs", params={"status": "500", "key": name}).json()["records"] == []
    assert s.get(gw.console + "/console/api/logs", params={"status": "abc"}).status_code == 400
    page = s.get(gw.console + "/console/logs", params={"key": name})
    assert rid in page.text and 'data-field="resolved-model">gpt-4o<' in page.text and "Decision trace" in page.text

    # Usage and the Dashboard count it (usage is charged at true-up, just after the response).
    deadline = time.time() + 5
    while time.time() < deadline:
        rows = s.get(gw.console + "/console/api/usage", params={"by": "key", "period": "24h"}).json()["usage"]
        mine = next((u for u in rows if u["name"] == key_id), None)
        if mine and mine["requests"] == 1:
            break
        time.sleep(0.1)
    assert mine and mine["requests"] == 1 and mine["cost_usd"] > 0
    by_model = s.get(gw.console + "/console/api/usage", params={"by": "model", "period": "7d"}).json()
    assert by_model["period"] == "7d" and any(u["name"] == "gpt-4o" for u in by_model["usage"])
    assert s.get(gw.console + "/console/api/usage", params={"by": "colour"}).status_code == 400
    ov = s.get(gw.console + "/console/api/overview", params={"period": "30d"}).json()
    assert ov["total_requests"] >= 1 and ov["proxy_endpoint"] == f"{gw.url}/v1"
    assert any(k["id"] == key_id and k["requests"] == 1 for k in ov["keys"])

    # Playground: a chat through the proxy with the chosen key.
    r = s.post(gw.console + "/console/api/playground", json={"key": key, "model": "claude-sonnet-4", "message": "hi"}, headers=h)
    assert r.status_code == 200, r.text
    pg = r.json()
    assert pg["status"] == 200 and pg["content"] and pg["request_id"].startswith("req_")
    r = s.post(gw.console + "/console/playground", data={"csrf": csrf, "key": key, "model": "gpt-4o", "message": "hi"})
    assert r.status_code == 200 and 'data-testid="pg-status">200<' in r.text and key not in r.text

    # Revoke: confirmation page, then the form; the key stops working at once.
    confirm = s.get(gw.console + f"/console/keys/{key_id}/revoke")
    assert confirm.status_code == 200 and "Revoke permanently" in confirm.text
    r = s.post(gw.console + f"/console/keys/{key_id}/revoke", data={"csrf": csrf}, allow_redirects=False)
    assert r.status_code == 303
    r = gw.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, key=key)
    assert r.status_code == 401
    assert s.delete(gw.console + f"/console/api/keys/{key_id}", headers=h).status_code in (200, 404)
    assert s.delete(gw.console + "/console/api/keys/key_000000000000", headers=h).status_code == 404


def test_key_created_from_the_form_is_shown_once(gw):
    s, csrf = signed_in(gw)
    r = s.post(gw.console + "/console/keys", data={"csrf": csrf, "name": "form-key", "output_tokens_per_hour": "5000"})
    assert r.status_code == 201 and "shown only once" in r.text
    assert r.headers["cache-control"] == "no-store"
    key = r.text.split('id="new-key" readonly value="')[1].split('"')[0]
    assert key.startswith("sk-sy-")
    again = s.get(gw.console + "/console/keys")
    assert key not in again.text and "form-key" in again.text and "5,000 output tok/h" in again.text


def test_model_catalog_filters_and_detail(gw):
    s, _ = signed_in(gw)
    api = gw.console + "/console/api/models"
    names = lambda **q: [m["name"] for m in s.get(api, params=q).json()["models"]]
    assert names(q="GPT") == ["gpt-4o", "gpt-4o-2024-08-06"]
    # Group Snapshots: the dated version folds under its model.
    grouped = s.get(api, params={"q": "gpt", "group": "true"}).json()["models"]
    assert [(m["name"], m["snapshots"]) for m in grouped] == [("gpt-4o", ["gpt-4o-2024-08-06"])]
    assert s.get(api + "/gpt-4o-2024-08-06").json()["snapshot_of"] == "gpt-4o"
    page = s.get(gw.console + "/console/models", params={"q": "gpt"}).text
    assert 'id="group" name="group" checked' in page and "+1 snapshot<" in page
    assert 'data-snapshot-of="gpt-4o" hidden' in page and "2 models" not in page
    page = s.get(gw.console + "/console/models", params={"q": "gpt", "grouped": "1"}).text
    assert 'id="group" name="group">' in page and 'data-snapshot-of="gpt-4o">' in page and "2 models" in page
    assert names(status="disabled") == ["retired"]
    assert "retired" not in names(status="enabled")
    assert names(provider="an") == ["claude-sonnet-4"]
    assert set(names(provider="an,oa2")) == {"claude-sonnet-4", "llama3"}
    assert s.get(api, params={"status": "maybe"}).status_code == 400
    m = s.get(api + "/claude-sonnet-4").json()
    assert m["provider"] == "an" and m["pricing"] == {"input_per_mtok": 3.0, "output_per_mtok": 15.0, "per_image": None}
    assert m["status"] == "enabled" and m["provider_model"] == "claude-sonnet-4-20250514"
    assert s.get(api + "/nope").status_code == 404
    page = s.get(gw.console + "/console/models/claude-sonnet-4")
    assert page.status_code == 200 and "$3.00 per 1M tokens" in page.text and "$15.00 per 1M tokens" in page.text
    page = s.get(gw.console + "/console/models", params={"q": "llama"})
    assert "llama3" in page.text and ">gpt-4o<" not in page.text


def test_pages_escape_what_users_type(gw):
    s, csrf = signed_in(gw)
    r = s.post(gw.console + "/console/api/keys", json={"name": "<script>alert(1)</script>"}, headers={"x-csrf-token": csrf})
    assert r.status_code == 201
    page = s.get(gw.console + "/console/keys")
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_console_is_closed_without_an_admin_token(gateway, tmp_path):
    # `switchyard serve` without SWITCHYARD_ADMIN_TOKEN (`up` always mints one and prints it).
    import os
    import subprocess
    from conftest import BIN, free_port
    admin = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "SWITCHYARD_ADMIN_TOKEN"}
    proc = subprocess.Popen([str(BIN), "serve", "--config", str(gateway.config_path), "--extproc",
                             f"127.0.0.1:{free_port()}", "--admin", admin],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        console = f"http://{admin}"
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                requests.get(console + "/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        r = requests.post(console + "/console/login", data={"token": ""}, allow_redirects=False)
        assert r.status_code == 403 and "set-cookie" not in r.headers
        assert "disabled" in requests.get(console + "/console/login").text
        assert requests.get(console + "/console/api/keys").status_code == 401
    finally:
        proc.terminate()
        proc.wait(5)


def test_routing_configuration_editor_validates_like_lint_and_takes_effect(gw):
    s, csrf = signed_in(gw)
    name = f"console-routing-{time.time_ns()}"
    created = s.post(gw.console + "/console/api/keys", json={"name": name}, headers={"x-csrf-token": csrf}).json()
    key, key_id = created["key"], created["id"]
    page = s.get(gw.console + f"/console/keys/{key_id}").text
    assert 'id="rc-yaml"' in page and "Routing configuration (YAML)" in page
    url = gw.console + f"/console/keys/{key_id}/routing"
    # Without the CSRF token: refused.
    assert s.post(url, data={"routing": "active: true"}).status_code == 403
    # A route to a model the catalog lacks: not saved, the lint error shown inline.
    bad = "active: true\nroutes:\n  - { name: chat-model, model: ghost }\n"
    r = s.post(url, data={"csrf": csrf, "routing": bad}, allow_redirects=False)
    assert r.status_code == 400, r.text
    assert 'role="alert"' in r.text and ("unknown model &#39;ghost&#39;" in r.text or "unknown model 'ghost'" in r.text)
    body = {"model": "chat-model", "messages": [{"role": "user", "content": "x"}]}
    assert gw.post("/v1/chat/completions", body, key=key).status_code == 404  # nothing saved
    good = "active: true\nstrategy: fallback\nroutes:\n  - { name: chat-model, model: llama3 }\n"
    r = s.post(url, data={"csrf": csrf, "routing": good}, allow_redirects=False)
    assert r.status_code == 303, r.text
    resp = gw.post("/v1/chat/completions", body, key=key)
    assert resp.status_code == 200 and resp.headers["x-switchyard-resolved-model"] == "llama3.1:8b"
    assert "model: llama3" in s.get(gw.console + f"/console/keys/{key_id}").text
    # Toggle off (active: false): kept, not enforced — the model field is used as sent.
    r = s.post(url, data={"csrf": csrf, "routing": good.replace("active: true", "active: false")}, allow_redirects=False)
    assert r.status_code == 303
    assert gw.post("/v1/chat/completions", body, key=key).status_code == 404
    ok = gw.post("/v1/chat/completions", dict(body, model="gpt-4o"), key=key)
    assert ok.status_code == 200 and ok.headers["x-switchyard-resolved-model"] == "gpt-4o"


def test_usage_page_charts_spend_and_volume(gw):
    s, csrf = signed_in(gw)
    name = f"console-chart-{time.time_ns()}"
    key = s.post(gw.console + "/console/api/keys", json={"name": name}, headers={"x-csrf-token": csrf}).json()["key"]
    assert gw.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, key=key).status_code == 200
    deadline = time.time() + 5
    while time.time() < deadline:
        page = s.get(gw.console + "/console/usage?period=24h").text
        if name in page:
            break
        time.sleep(0.1)
    assert page.count('role="img"') == 5  # spend and requests over time; by key, model, provider
    assert 'class="bar-cost"' in page and 'class="bar-req"' in page
    assert f">{name}</text>" in page  # the key's bar is labelled with its name
    assert "Spend over time" in page and "Requests over time" in page and 'class="s0"' in page
    # Over time, by key: the key's request is in the current hour's column, under its name.
    page = s.get(gw.console + "/console/usage", params={"period": "24h", "series": "key"}).text
    assert f'class="legend">{name}</text>' in page and '<option value="key" selected>' in page
    api = gw.console + "/console/api/usage/series"
    for period, n, step in [("24h", 24, 1), ("7d", 28, 6), ("30d", 30, 24)]:
        series = s.get(api, params={"by": "key", "period": period}).json()
        assert series["step_hours"] == step and len(series["buckets"]) == n, (period, len(series["buckets"]))
        starts = [b["start_ms"] for b in series["buckets"]]
        assert starts == sorted(starts) and starts[-1] <= time.time() * 1000 < starts[-1] + step * 3_600_000
    key_id = next(k["id"] for k in s.get(gw.console + "/console/api/keys").json()["keys"] if k["name"] == name)
    # In the current hour's column (or the one before, if the hour turned meanwhile).
    recent = s.get(api, params={"by": "key", "period": "24h"}).json()["buckets"][-2:]
    mine = [r for b in recent for r in b["rows"] if r["name"] == key_id]
    assert len(mine) == 1 and mine[0]["requests"] == 1 and mine[0]["cost_usd"] > 0
    assert s.get(api, params={"by": "colour"}).status_code == 400


def new_key(s, gw, csrf, prefix):
    created = s.post(gw.console + "/console/api/keys", json={"name": f"{prefix}-{time.time_ns()}"},
                     headers={"x-csrf-token": csrf}).json()
    return created["key"], created["id"]


def stored_key(s, gw, key_id):
    return next(k for k in s.get(gw.console + "/console/api/keys").json()["keys"] if k["id"] == key_id)


def test_routing_form_editor_picks_backends_from_the_catalog_and_toggles_active(gw, providers):
    s, csrf = signed_in(gw)
    key, key_id = new_key(s, gw, csrf, "console-form")
    page = s.get(gw.console + f"/console/keys/{key_id}").text
    # The form: strategy picker, model pickers drawn from the catalog, the Active toggle.
    assert 'name="strategy" value="traffic_split"' in page and 'id="rf-active" checked' in page
    assert '<option value="claude-sonnet-4">claude-sonnet-4 · an</option>' in page
    assert '<label class="sr" for="b0-priority">Backend 1 priority</label>' in page
    url = gw.console + f"/console/keys/{key_id}/routing"
    chain = {"csrf": csrf, "active": "on", "strategy": "fallback",
             "b0_model": "claude-sonnet-4", "b0_name": "chat-model", "b0_priority": "0", "b0_weight": "",
             "b1_model": "gpt-4o", "b1_name": "chat-model", "b1_priority": "1", "b1_weight": "",
             "b2_model": "", "b2_name": "", "b2_priority": "", "b2_weight": ""}
    # A weight that is not a number: refused with the lint error inline, nothing saved.
    r = s.post(url, data=dict(chain, b1_weight="heavy"), allow_redirects=False)
    assert r.status_code == 400 and 'role="alert"' in r.text and "weight" in r.text
    assert stored_key(s, gw, key_id).get("routing_yaml") is None
    r = s.post(url, data=chain, allow_redirects=False)
    assert r.status_code == 303, r.text
    assert stored_key(s, gw, key_id)["routing_yaml"] == (
        "active: true\nstrategy: fallback\nroutes:\n- name: chat-model\n  model: claude-sonnet-4\n  priority: 0\n"
        "- name: chat-model\n  model: gpt-4o\n  priority: 1\n")
    # The chain works: the primary fails, the secondary answers, and the log shows the fallback.
    providers["an"].script("status:503")
    body = {"model": "chat-model", "messages": [{"role": "user", "content": "x"}]}
    r = gw.post("/v1/chat/completions", body, key=key)
    assert r.status_code == 200 and r.headers["x-switchyard-provider"] == "oa"
    assert r.headers["x-switchyard-fallbacks"] == "1"
    # The page shows the saved chain back in the form.
    page = s.get(gw.console + f"/console/keys/{key_id}").text
    assert '<option value="claude-sonnet-4" selected>' in page and 'name="b1_priority" value="1"' in page
    # Active off (the checkbox is simply not sent): kept, not enforced.
    off = {k: v for k, v in chain.items() if k != "active"}
    assert s.post(url, data=off, allow_redirects=False).status_code == 303
    assert "active: false" in stored_key(s, gw, key_id)["routing_yaml"]
    assert gw.post("/v1/chat/completions", body, key=key).status_code == 404
    assert "inactive" in s.get(gw.console + f"/console/keys/{key_id}").text
    # A one-condition rule from the form: a header sends traffic to llama3.
    rules = dict(chain, strategy="rules", r0_attr="header", r0_name="x-priority", r0_op="in",
                 r0_value="low, batch", r0_model="llama3", r0_then="")
    assert s.post(url, data=rules, allow_redirects=False).status_code == 303
    r = gw.post("/v1/chat/completions", body, key=key, headers={"x-priority": "batch"})
    assert r.status_code == 200 and r.headers["x-switchyard-resolved-model"] == "llama3.1:8b"
    assert "value:\n    - low\n    - batch" in stored_key(s, gw, key_id)["routing_yaml"]
    # A configuration the form cannot show is edited as YAML, with the reason given.
    nested = "active: true\nstrategy: rules\nroutes: [ { model: gpt-4o } ]\nrules:\n  - when: { any: [ { tag: t, op: exists } ] }\n    use: [ { model: llama3 } ]\n"
    assert s.post(url, data={"csrf": csrf, "routing": nested}, allow_redirects=False).status_code == 303
    page = s.get(gw.console + f"/console/keys/{key_id}").text
    assert "cannot be shown as a form" in page and 'id="routing-form"' not in page
    # The JSON API: the same validation.
    h = {"x-csrf-token": csrf}
    r = s.put(gw.console + f"/console/api/keys/{key_id}/routing", json={"routing": "routes: [ { model: ghost } ]"}, headers=h)
    assert r.status_code == 400 and "ghost" in r.text
    r = s.put(gw.console + f"/console/api/keys/{key_id}/routing", json={"routing": None}, headers=h)
    assert r.status_code == 200 and stored_key(s, gw, key_id).get("routing_yaml") is None


def test_rate_limit_toggle_and_sliders_set_the_key_limits(gw, providers):
    s, csrf = signed_in(gw)
    key, key_id = new_key(s, gw, csrf, "console-limits")
    page = s.get(gw.console + f"/console/keys/{key_id}").text
    for f in ["total_tokens_per_hour", "input_tokens_per_hour", "output_tokens_per_hour"]:
        assert f'id="{f}-range"' in page and f'type="number" id="{f}"' in page and f'name="{f}_on"' in page
    url = gw.console + f"/console/keys/{key_id}/limits"
    # A value with its own toggle off, or with the section off, is not enforced.
    form = {"csrf": csrf, "total_tokens_per_hour": "5", "input_tokens_per_hour": "7", "output_tokens_per_hour": "9"}
    assert s.post(url, data=dict(form, input_tokens_per_hour_on="on"), allow_redirects=False).status_code == 303
    assert stored_key(s, gw, key_id)["limits"]["input_tokens_per_hour"] == 0
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 16}
    assert gw.post("/v1/chat/completions", body, key=key).status_code == 200
    # Section on, output tokens on at 5: a request that would hold 16 output tokens is refused.
    r = s.post(url, data=dict(form, enabled="on", output_tokens_per_hour_on="on", output_tokens_per_hour="5"),
               allow_redirects=False)
    assert r.status_code == 303
    limits = stored_key(s, gw, key_id)["limits"]
    assert (limits["total_tokens_per_hour"], limits["input_tokens_per_hour"], limits["output_tokens_per_hour"]) == (0, 0, 5)
    r = gw.post("/v1/chat/completions", body, key=key)
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    page = s.get(gw.console + f"/console/keys/{key_id}").text
    assert 'id="rl-enabled" checked' in page and 'name="output_tokens_per_hour_on" id="output_tokens_per_hour-on" checked' in page
    # Bad input: the error inline, nothing changed.
    r = s.post(url, data=dict(form, enabled="on", total_tokens_per_hour_on="on", total_tokens_per_hour="lots"))
    assert r.status_code == 400 and "total_tokens_per_hour" in r.text
    assert stored_key(s, gw, key_id)["limits"]["output_tokens_per_hour"] == 5
    # Switching the section off lifts the limits at once.
    assert s.post(url, data=form, allow_redirects=False).status_code == 303
    assert gw.post("/v1/chat/completions", body, key=key).status_code == 200
    # JSON API and CSRF.
    h = {"x-csrf-token": csrf}
    api = gw.console + f"/console/api/keys/{key_id}/limits"
    assert s.put(api, json={"total_tokens_per_hour": 1000}).status_code == 403
    r = s.put(api, json={"total_tokens_per_hour": 1000, "daily_usd": 2.5}, headers=h)
    assert r.status_code == 200 and r.json()["limits"]["total_tokens_per_hour"] == 1000
    assert s.put(api, json={"total_tokens_per_hour": -3}, headers=h).status_code == 400
    assert s.put(api, json=[1], headers=h).status_code == 400
    assert s.put(gw.console + "/console/api/keys/key_000000000000/limits", json={}, headers=h).status_code == 404


def test_config_file_keys_are_listed_with_their_use_and_read_only(gw):
    s, csrf = signed_in(gw)
    r = gw.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "count me"}]})
    assert r.status_code == 200
    deadline = time.time() + 5
    while time.time() < deadline:
        keys = s.get(gw.console + "/console/api/keys").json()["keys"]
        e2e = next(k for k in keys if k["name"] == "e2e")
        if e2e["requests"] >= 1:
            break
        time.sleep(0.1)
    assert e2e["source"] == "config" and e2e["requests"] >= 1 and e2e["input_tokens"] > 0 and e2e["spend_usd"] > 0
    assert next(k for k in keys if k["name"] == "restricted")["source"] == "config"
    page = s.get(gw.console + "/console/keys").text
    assert ">e2e</a>" in page and "in the config file" in page
    detail = s.get(gw.console + f"/console/keys/{e2e['id']}").text
    assert "defined in the config file" in detail and 'id="routing-form"' not in detail and 'id="rl-enabled"' not in detail
    # Nothing in the Console changes or revokes it.
    h = {"x-csrf-token": csrf}
    assert s.put(gw.console + f"/console/api/keys/{e2e['id']}/routing", json={"routing": None}, headers=h).status_code == 404
    assert s.put(gw.console + f"/console/api/keys/{e2e['id']}/limits", json={}, headers=h).status_code == 404
    assert s.delete(gw.console + f"/console/api/keys/{e2e['id']}", headers=h).status_code == 404
    assert gw.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}).status_code == 200


def redis_pipeline(url: str, commands: list[list[str]]) -> None:
    """Send commands to Redis in one go (RESP) and wait for every reply; replies are not parsed."""
    host, port = url.removeprefix("redis://").split(":")
    wire = b"".join(b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in c)
                    for c in commands + [["PING"]])
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(wire)
        got = b""
        while not got.endswith(b"+PONG\r\n"):
            got += conn.recv(1 << 16)


def test_log_search_is_bounded_and_says_how_far_it_looked(gw):
    """A filter matching little reads at most the newest 20,000 records; page and API say so."""
    s, _ = signed_in(gw)
    nothing = {"key": "no-such-key"}
    r = s.get(gw.console + "/console/api/logs", params=nothing).json()
    assert r["records"] == [] and r["complete"] is True
    assert "Searched the newest" not in s.get(gw.console + "/console/logs", params=nothing).text
    if gw.redis_url is None:
        return  # the in-memory ring keeps 10,000 records by default: always searched whole
    # 20,001 other records, newer than every one before, straight into the shared log stream.
    ids = [f"{int(time.time() * 1000) + 1}-{i}" for i in range(20_001)]
    junk = json.dumps({"id": "junk", "key_name": "someone-else", "status": 200})
    redis_pipeline(gw.redis_url, [["XADD", "sy:logs", i, "r", junk] for i in ids])
    try:
        r = s.get(gw.console + "/console/api/logs", params=nothing).json()
        assert (r["records"], r["scanned"], r["complete"]) == ([], 20_000, False)
        page = s.get(gw.console + "/console/logs", params=nothing).text
        assert "Searched the newest 20,000 records only" in page
        # Enough matches within the budget: a complete answer.
        r = s.get(gw.console + "/console/api/logs", params={"key": "someone-else", "limit": 5}).json()
        assert (len(r["records"]), r["scanned"], r["complete"]) == (5, 5, True)
    finally:
        redis_pipeline(gw.redis_url, [["XDEL", "sy:logs", *ids[k:k + 1000]] for k in range(0, len(ids), 1000)])




# === Console users: email + password ===

PASSWORD = "correct horse battery"


def admin_api(gw, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, gw.console + path, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10, **kw)


def unique_email(tag: str) -> str:
    return f"{tag}-{time.time_ns()}@Example.com"


def sign_in_with_password(gw, email: str, password: str) -> tuple[requests.Session, requests.Response]:
    s = requests.Session()
    return s, s.post(gw.console + "/console/login", data={"email": email, "password": password}, allow_redirects=False)


def alert(page: str) -> str:
    return re.search(r'role="alert"[^>]*>([^<]*)<', page).group(1)


def test_user_from_the_admin_api_signs_in_and_is_ended_by_deletion(gw):
    email = unique_email("ada")
    r = admin_api(gw, "POST", "/admin/users", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json()["email"] == email.lower() and r.json()["created"].endswith("Z") and set(r.json()) == {"email", "created"}
    # The email is the key, in any case: a duplicate is a conflict in the SPEC error shape.
    r = admin_api(gw, "POST", "/admin/users", json={"email": email.upper(), "password": "another password"})
    assert r.status_code == 409 and email.lower() in r.json()["error"]["message"]
    assert set(r.json()["error"]) == {"message", "type", "code", "param"}

    s, r = sign_in_with_password(gw, email.upper(), PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/console", r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = s.get(gw.console + "/console/keys")
    assert page.status_code == 200 and f"Signed in as {email.lower()}" in page.text
    assert s.get(gw.console + "/console/api/session").json()["user"] == email.lower()

    # A wrong password and an unknown email: the same 401 and message, no session.
    wrong = sign_in_with_password(gw, email, PASSWORD + "!")[1]
    unknown = sign_in_with_password(gw, unique_email("nobody"), PASSWORD)[1]
    for r in (wrong, unknown):
        assert r.status_code == 401 and "set-cookie" not in r.headers
    assert alert(wrong.text) == alert(unknown.text) == "Invalid email or password."

    # Deleted: no new sign-in, and the live session is over.
    r = admin_api(gw, "DELETE", "/admin/users/" + requests.utils.quote(email, safe=""))
    assert r.status_code == 200 and r.json() == {"email": email.lower(), "deleted": True}
    assert sign_in_with_password(gw, email, PASSWORD)[1].status_code == 401
    assert s.get(gw.console + "/console/api/keys").status_code == 401
    assert s.get(gw.console + "/console", allow_redirects=False).headers["location"] == "/console/login"
    assert admin_api(gw, "DELETE", "/admin/users/" + requests.utils.quote(email, safe="")).status_code == 404
    # Re-created with the same email: the old session stays ended.
    assert admin_api(gw, "POST", "/admin/users", json={"email": email, "password": PASSWORD}).status_code == 201
    assert s.get(gw.console + "/console/api/keys").status_code == 401


def test_user_input_is_validated_and_the_admin_api_needs_the_token(gw):
    for body, field in [({"email": "not-an-email", "password": PASSWORD}, "email"),
                        ({"email": "a@b@c", "password": PASSWORD}, "email"),
                        ({"email": "a" * 250 + "@x.io", "password": PASSWORD}, "email"),
                        ({"email": unique_email("short"), "password": "1234567"}, "password"),
                        ({"email": unique_email("long"), "password": "x" * 1025}, "password"),
                        ({"password": PASSWORD}, "email"), ({"email": unique_email("none")}, "password")]:
        r = admin_api(gw, "POST", "/admin/users", json=body)
        assert r.status_code == 400, body
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["message"].startswith(field), err
    assert admin_api(gw, "POST", "/admin/users", data="{nope").status_code == 400
    assert requests.post(gw.console + "/admin/users", json={"email": unique_email("x"), "password": PASSWORD}).status_code == 401
    assert requests.get(gw.console + "/admin/users").status_code == 401


def test_password_hashes_never_leave_the_store(gw):
    email = unique_email("hidden")
    assert admin_api(gw, "POST", "/admin/users", json={"email": email, "password": PASSWORD}).status_code == 201
    s, csrf = signed_in(gw)
    outputs = [admin_api(gw, "GET", "/admin/users").text, s.get(gw.console + "/console/api/users").text,
               s.get(gw.console + "/console/users").text]
    assert all(email.lower() in o for o in outputs)
    listed = admin_api(gw, "GET", "/admin/users").json()["users"]
    assert all(set(u) == {"email", "created"} for u in listed)
    for o in outputs + [gw.logs()]:
        assert "$argon2" not in o and PASSWORD not in o


def test_users_page_and_api_add_and_delete_with_csrf(gw):
    s, csrf = signed_in(gw)
    assert "Signed in as admin token" in s.get(gw.console + "/console").text
    email = unique_email("form").lower()
    # Forms: CSRF required; errors shown next to the form; the password is never echoed back.
    assert s.post(gw.console + "/console/users", data={"email": email, "password": PASSWORD}).status_code == 403
    r = s.post(gw.console + "/console/users", data={"csrf": csrf, "email": email, "password": "short"})
    assert r.status_code == 400 and "password:" in alert(r.text) and email in r.text and "short" not in r.text.split("</header>")[1]
    r = s.post(gw.console + "/console/users", data={"csrf": csrf, "email": email, "password": PASSWORD}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/users?added=")
    page = s.get(gw.console + r.headers["location"])
    assert page.status_code == 200 and f"User {email} added." in page.text and f"/console/users/{requests.utils.quote(email, safe='')}/delete" in page.text
    r = s.post(gw.console + "/console/users", data={"csrf": csrf, "email": email, "password": PASSWORD})
    assert r.status_code == 409 and "already exists" in r.text
    confirm = s.get(gw.console + f"/console/users/{requests.utils.quote(email, safe='')}/delete")
    assert confirm.status_code == 200 and "Delete user" in confirm.text and 'role="alertdialog"' in confirm.text
    assert s.post(gw.console + f"/console/users/{email}/delete", data={}).status_code == 403
    r = s.post(gw.console + f"/console/users/{email}/delete", data={"csrf": csrf}, allow_redirects=False)
    assert r.status_code == 303 and email not in s.get(gw.console + "/console/api/users").text
    assert s.get(gw.console + f"/console/users/{email}/delete").status_code == 404

    # JSON API: same rules and answers as the admin API.
    api = gw.console + "/console/api/users"
    plus = unique_email("a+tag").lower()
    assert s.post(api, json={"email": plus, "password": PASSWORD}).status_code == 403
    r = s.post(api, json={"email": plus, "password": PASSWORD}, headers={"x-csrf-token": csrf})
    assert r.status_code == 201 and r.json()["email"] == plus
    assert s.post(api, json={"email": plus, "password": PASSWORD}, headers={"x-csrf-token": csrf}).status_code == 409
    assert s.post(api, json={"email": "x", "password": PASSWORD}, headers={"x-csrf-token": csrf}).status_code == 400
    assert any(u["email"] == plus for u in s.get(api).json()["users"])
    assert s.delete(f"{api}/{plus}").status_code == 403
    r = s.delete(f"{api}/{plus}", headers={"x-csrf-token": csrf})  # a literal '+' in the path
    assert r.status_code == 200 and r.json() == {"email": plus, "deleted": True}
    assert s.delete(f"{api}/{plus}", headers={"x-csrf-token": csrf}).status_code == 404


def test_users_from_the_cli(gw):
    import os
    import subprocess
    from conftest import BIN
    env = dict(os.environ, SWITCHYARD_ADMIN_TOKEN=ADMIN_TOKEN, SWITCHYARD_ADMIN=gw.admin)
    cli = lambda *args, stdin="": subprocess.run([str(BIN), "users", *args], input=stdin, capture_output=True, text=True, env=env, timeout=30)
    email = unique_email("cli").lower()
    r = cli("create", email, stdin="")
    assert r.returncode != 0 and "no password" in r.stderr
    r = cli("create", email, stdin=PASSWORD + "\nsecond line ignored\n")
    assert r.returncode == 0 and f"created {email}" in r.stdout, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    r = cli("create", email, stdin=PASSWORD + "\n")
    assert r.returncode != 0 and "409" in r.stderr and "already exists" in r.stderr
    r = cli("create", unique_email("cli-short"), stdin="short\n")
    assert r.returncode != 0 and "400" in r.stderr and "password" in r.stderr
    r = cli("list")
    assert r.returncode == 0 and email in r.stdout and "$argon2" not in r.stdout
    s, r = sign_in_with_password(gw, email, PASSWORD)
    assert r.status_code == 303
    assert s.get(gw.console + "/console/api/keys").status_code == 200
    r = cli("delete", email)
    assert r.returncode != 0 and "--yes" in r.stderr
    r = cli("delete", email, "--yes")
    assert r.returncode == 0 and f"deleted {email}" in r.stdout, r.stderr
    assert sign_in_with_password(gw, email, PASSWORD)[1].status_code == 401
    assert s.get(gw.console + "/console/api/keys").status_code == 401


def test_a_user_signs_in_on_every_gateway_sharing_redis(providers, redis_url):
    config = lambda records: base_config(providers, records) + f"\nstore: {{ redis_url: \"{redis_url}\" }}\n"
    a = Gateway(providers, config_text=config, env={"SWITCHYARD_ADMIN_TOKEN": ADMIN_TOKEN})
    try:
        b = Gateway(providers, config_text=config, env={"SWITCHYARD_ADMIN_TOKEN": ADMIN_TOKEN})
        try:
            a.console, b.console = f"http://{a.admin}", f"http://{b.admin}"
            email = unique_email("shared").lower()
            assert admin_api(a, "POST", "/admin/users", json={"email": email, "password": PASSWORD}).status_code == 201
            assert admin_api(b, "POST", "/admin/users", json={"email": email, "password": PASSWORD}).status_code == 409
            s, r = sign_in_with_password(b, email, PASSWORD)
            assert r.status_code == 303
            assert s.get(b.console + "/console/api/session").json()["user"] == email
            # Deleted on one gateway: the session on the other one ends too.
            assert admin_api(a, "DELETE", f"/admin/users/{email}").status_code == 200
            assert s.get(b.console + "/console/api/keys").status_code == 401
            assert sign_in_with_password(b, email, PASSWORD)[1].status_code == 401
        finally:
            b.stop()
    finally:
        a.stop()
