"""Fallback inside Envoy: each attempt goes to the next cluster of the chain and is
re-translated for the provider it reaches; the stream failure contract."""

import openai
import pytest

from conftest import CLIENT_KEY


def fallback_to_anthropic(gateway, providers, behaviour, stream=False):
    providers["oa"].script(behaviour)
    r = gateway.chat("reliable-chat", stream=stream)
    body = r.text  # drains a stream too
    assert r.status_code == 200, body
    assert r.headers["x-switchyard-provider"] == "an"
    assert r.headers["x-switchyard-resolved-model"] == "claude-sonnet-4-20250514"
    assert r.headers["x-switchyard-fallbacks"] == "1"
    assert len(providers["oa"].requests) == 1
    [got] = providers["an"].requests
    assert got["path"] == "/v1/messages" and got["body"]["model"] == "claude-sonnet-4-20250514"
    rec = gateway.record(r.headers["x-switchyard-request-id"])
    assert rec["fallback_count"] == 1 and rec["provider"] == "an" and rec["outcome"] == "ok"
    assert [a["provider"] for a in rec["attempts"]] == ["oa", "an"]
    assert rec["attempts"][0]["error"]
    assert rec["route"] == "group:reliable-chat" and rec["strategy"] == "fallback"
    return body, rec


@pytest.mark.parametrize("behaviour,status", [("status:500", 500), ("status:503", 503), ("status:429", 429)])
def test_fallback_on_error_status(gateway, providers, behaviour, status):
    body, rec = fallback_to_anthropic(gateway, providers, behaviour)
    assert "Hello from an" in body
    assert rec["attempts"][0]["status"] == status


def test_fallback_on_timeout(gateway, providers):
    body, rec = fallback_to_anthropic(gateway, providers, "stall:2")
    assert "Hello from an" in body
    assert rec["attempts"][0]["latency_ms"] >= 650


def test_fallback_on_reset(gateway, providers):
    body, rec = fallback_to_anthropic(gateway, providers, "reset")
    assert "Hello from an" in body


def test_fallback_walks_the_whole_chain(gateway, providers):
    providers["oa"].script("status:500")
    providers["oa2"].script("reset")
    r = gateway.chat("three-way")
    assert r.status_code == 200, r.text
    assert r.headers["x-switchyard-fallbacks"] == "2"
    assert r.json()["choices"][0]["message"]["content"] == "Hello from an"
    rec = gateway.record(r.headers["x-switchyard-request-id"])
    assert [a["provider"] for a in rec["attempts"]] == ["oa", "oa2", "an"]


def test_all_backends_failed_is_502_with_the_last_provider_message(gateway, providers):
    providers["oa"].script("status:500")
    providers["an"].script("status:500")
    r = gateway.chat("reliable-chat")
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "all_backends_failed" and err["type"] == "upstream_error"
    rec = gateway.record(r.headers["x-switchyard-request-id"])
    assert rec["status"] == 502 and rec["outcome"] == "error" and len(rec["attempts"]) == 2


def test_stream_failing_before_first_token_falls_back(gateway, providers):
    body, rec = fallback_to_anthropic(gateway, providers, "reset_after_headers", stream=True)
    assert "Hello" in body and body.rstrip().endswith("data: [DONE]")
    assert rec["stream"] is True


def test_stream_stalling_before_first_token_falls_back(gateway, providers):
    body, rec = fallback_to_anthropic(gateway, providers, "delay_first_token:2", stream=True)
    assert body.rstrip().endswith("data: [DONE]")


def test_stream_truncated_after_first_bytes_ends_with_an_error_event(gateway, providers):
    providers["oa"].script("truncate_stream")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)
    stream = raw.parse()
    got = []
    with pytest.raises(openai.APIError) as exc:
        for c in stream:
            got.append(c)
    assert "stream" in str(exc.value).lower()
    assert got, "some tokens went out before the cut"
    rec = gateway.record(raw.headers["x-switchyard-request-id"])
    assert rec["outcome"] == "stream_interrupted" and rec["error"]
    assert len(providers["an"].requests) == 0, "no fallback once bytes were committed"


def test_stream_corrupted_mid_way_ends_with_an_error_event(gateway, providers):
    providers["an"].script("corrupt_stream")
    r = gateway.chat("claude-sonnet-4", stream=True)
    events = [l for l in r.text.split("\n\n") if l.strip()]
    assert '"error"' in events[-1] and "stream_interrupted" in events[-1]
    assert "[DONE]" not in r.text
    rec = gateway.record(r.headers["x-switchyard-request-id"])
    assert rec["outcome"] == "stream_interrupted"


def test_stream_reset_mid_way_is_an_error_for_the_client_and_the_record(gateway, providers):
    providers["oa"].script("cut_mid_stream")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)
    with pytest.raises(Exception):
        for _ in raw.parse():
            pass
    rec = gateway.record(raw.headers["x-switchyard-request-id"])
    assert rec["outcome"] == "stream_interrupted"
    assert rec["attempts"][0]["error"] == "upstream connection lost mid-response"


def test_a_stream_may_outlast_the_per_attempt_timeout_once_tokens_flow(gateway, providers):
    # reliable-chat gives gpt-4o 700 ms; this stream takes about 2 s in total.
    providers["oa"].stream_delay = 0.35
    r = gateway.chat("reliable-chat", stream=True)
    body = r.text
    assert r.headers["x-switchyard-provider"] == "oa"
    assert body.rstrip().endswith("data: [DONE]"), body
    assert "Hello" in body and providers["an"].requests == []
    rec = gateway.record(r.headers["x-switchyard-request-id"])
    assert rec["outcome"] == "ok" and rec["latency_ms"] > 1000


def test_fallback_holds_under_concurrency(gateway, providers):
    # Envoy's default circuit breaker allows only 3 concurrent retries per cluster; the
    # generated bootstrap lifts it, so every one of these falls back.
    from concurrent.futures import ThreadPoolExecutor
    n = 24
    providers["oa"].default_behaviour = "stall:1"
    with ThreadPoolExecutor(n) as pool:
        rs = list(pool.map(lambda _: gateway.chat("reliable-chat"), range(n)))
    assert [r.status_code for r in rs] == [200] * n
    assert all(r.headers["x-switchyard-provider"] == "an" for r in rs)


def test_a_failing_backend_cools_down_is_skipped_and_recovers_after_a_probe(providers):
    from conftest import Gateway, base_config
    import time as _t
    gw = Gateway(providers, config_text=None)
    try:
        cfg = base_config(providers, gw.records_path, health="health: { consecutive_failures: 2, cooldown_ms: 1500 }")
        gw.config_path.write_text(cfg)
        _t.sleep(1.0)  # hot reload picks up the health policy
        providers["oa"].default_behaviour = "status:500"
        for _ in range(2):
            assert gw.chat("reliable-chat").headers["x-switchyard-provider"] == "an"
        assert len(providers["oa"].requests) == 2
        # Cooling: oa is not called at all, the request goes straight to an.
        r = gw.chat("reliable-chat")
        assert r.status_code == 200 and r.headers["x-switchyard-provider"] == "an"
        assert len(providers["oa"].requests) == 2
        rec = gw.record(r.headers["x-switchyard-request-id"])
        assert rec["skipped"] == [{"provider": "oa", "model": "gpt-4o", "reason": "unhealthy: cooling down"}]
        assert [a["provider"] for a in rec["attempts"]] == ["an"]
        import requests as _rq
        status = _rq.get(f"http://{gw.admin}/admin/status", timeout=5).json()
        assert status["cooling_backends"] == ["oa/gpt-4o"]
        assert "backend cooling down" in gw.logs()
        # After the cooldown one probe goes through; it succeeds and oa serves again.
        providers["oa"].default_behaviour = "ok"
        _t.sleep(1.6)
        assert gw.chat("reliable-chat").headers["x-switchyard-provider"] == "oa"
        assert gw.chat("reliable-chat").headers["x-switchyard-provider"] == "oa"
        assert "backend recovered" in gw.logs()
    finally:
        gw.stop()
