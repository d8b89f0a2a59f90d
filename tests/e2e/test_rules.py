"""Per-key rules (first match wins, else the key's routes) through real Envoy."""

import pytest


def ask(gateway, headers=None, **body_extra):
    body = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], **body_extra}
    r = gateway.post("/v1/chat/completions", body, key="sk-ruled", headers=headers)
    assert r.status_code == 200, r.text
    return r, gateway.record(r.headers["x-switchyard-request-id"])


@pytest.mark.parametrize("headers", [{"x-switchyard-tags": "team=a, tier=bulk"}, {"x-priority": "batch"}])
def test_a_tag_or_header_rule_sends_bulk_traffic_to_the_cheap_model(gateway, providers, headers):
    r, rec = ask(gateway, headers=headers)
    assert r.headers["x-switchyard-provider"] == "oa2"
    [got] = providers["oa2"].requests
    assert got["body"]["model"] == "llama3.1:8b"
    assert "x-switchyard-tags" not in got["headers"]
    assert rec["route"] == "key:ruled/rule[0]" and rec["strategy"] == "rules"
    assert "tier" in rec["rule"] and "x-priority" in rec["rule"]


def test_tags_are_recorded(gateway):
    _, rec = ask(gateway, headers={"x-switchyard-tags": "tier=bulk,team=a"})
    assert "tier=bulk" in rec["tags"] and "team=a" in rec["tags"]


def test_a_metadata_rule_with_its_own_fallback_list(gateway, providers):
    providers["an"].script("status:503")
    r, rec = ask(gateway, metadata={"team": "research"})
    assert r.headers["x-switchyard-provider"] == "oa" and r.headers["x-switchyard-fallbacks"] == "1"
    assert rec["route"] == "key:ruled/rule[1]"
    assert [a["provider"] for a in rec["attempts"]] == ["an", "oa"]


def test_no_rule_matches_uses_the_routes(gateway, providers):
    r, rec = ask(gateway, headers={"x-priority": "high", "x-switchyard-tags": "tier=gold"})
    assert r.headers["x-switchyard-provider"] == "oa"
    assert providers["oa"].requests[0]["body"]["model"] == "gpt-4o"
    assert rec["route"] == "key:ruled/chat-model" and rec["rule"] is None


def test_canary_split_on_a_logical_name(gateway, providers):
    n = 200
    for _ in range(n):
        r = gateway.post("/v1/chat/completions", {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}, key="sk-canary")
        assert r.status_code == 200
    stable, canary = len(providers["oa"].requests), len(providers["oa2"].requests)
    assert stable + canary == n
    # 90/10: 3 sigma of binomial(200, 0.1) is about 13.
    assert 5 <= canary <= 33, (stable, canary)
    assert {r["body"]["model"] for r in providers["oa"].requests} == {"gpt-4o"}


def test_inactive_routing_uses_the_model_as_sent(gateway, providers):
    body = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}
    assert gateway.post("/v1/chat/completions", body, key="sk-parked").status_code == 404
    r = gateway.post("/v1/chat/completions", {**body, "model": "gpt-4o"}, key="sk-parked")
    assert r.status_code == 200 and r.headers["x-switchyard-provider"] == "oa"
