"""The SPEC's error table, header spoofing, and bodies no input may crash."""

import json

import pytest
import requests

from conftest import CLIENT_KEY, OA_SECRET


def error_of(r):
    body = r.json()
    assert set(body["error"]) >= {"message", "type", "code", "param"}, body
    assert r.headers["content-type"].startswith("application/json")
    return body["error"]


def test_missing_key_is_401(gateway, providers):
    r = gateway.chat("gpt-4o", key=None)
    assert r.status_code == 401 and error_of(r)["code"] == "missing_api_key"
    assert providers["oa"].requests == []
    rec = gateway.record(r.headers["x-switchyard-request-id"])
    assert rec["status"] == 401 and rec["key_id"] is None


def test_unknown_key_is_401_via_either_header(gateway):
    assert gateway.chat("gpt-4o", key="sk-nope").status_code == 401
    r = gateway.post("/v1/chat/completions", {"model": "gpt-4o", "messages": []}, key=None, headers={"x-api-key": "sk-nope"})
    assert r.status_code == 401 and error_of(r)["code"] == "invalid_api_key"


def test_x_api_key_header_authenticates(gateway, providers):
    r = gateway.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                     key=None, headers={"x-api-key": CLIENT_KEY})
    assert r.status_code == 200, r.text
    [got] = providers["oa"].requests
    assert "x-api-key" not in got["headers"]
    assert got["headers"]["authorization"] == f"Bearer {OA_SECRET}"


def test_unknown_model_is_404(gateway):
    r = gateway.chat("gpt-17")
    assert r.status_code == 404
    e = error_of(r)
    assert e["code"] == "model_not_found" and "gpt-17" in e["message"]


def test_disabled_model_is_404(gateway):
    assert gateway.chat("retired").status_code == 404


def test_model_not_allowed_for_key_is_403(gateway):
    r = gateway.chat("gpt-4o", key="sk-restricted")
    assert r.status_code == 403 and error_of(r)["code"] == "model_not_allowed"
    assert gateway.chat("llama3", key="sk-restricted").status_code == 200


@pytest.mark.parametrize("data,needle", [
    (b"{not json", "parse"),
    (b"[1,2]", "object"),
    (b'{"messages": []}', "model"),
    (b'{"model": 7}', "model"),
    (b'{"model": "gpt-4o", "stream": "yes"}', "stream"),
    (b"", "body"),
])
def test_malformed_bodies_are_400(gateway, data, needle):
    r = gateway.post("/v1/chat/completions", data=data)
    assert r.status_code == 400, r.text
    assert needle in error_of(r)["message"].lower()


def test_body_over_the_limit_is_413(gateway, providers):
    big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 70000}]}
    r = gateway.post("/v1/chat/completions", big)
    assert r.status_code == 413 and error_of(r)["code"] == "request_too_large"
    assert providers["oa"].requests == []


def test_chunked_body_over_the_limit_is_413(gateway):
    def gen():
        yield b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "'
        for _ in range(80):
            yield b"x" * 1000
        yield b'"}]}'
    r = requests.post(gateway.url + "/v1/chat/completions", data=gen(),
                      headers={"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"}, timeout=10)
    assert r.status_code == 413
    assert error_of(r)["code"] == "request_too_large"


def test_anthropic_cannot_express_n_gt_1_is_400(gateway, providers):
    r = gateway.post("/v1/chat/completions", {"model": "claude-sonnet-4", "n": 2, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == "n"
    assert providers["an"].requests == []


def test_unknown_path_is_404_and_wrong_method_405(gateway):
    r = requests.get(gateway.url + "/v2/whatever", headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=10)
    assert r.status_code == 404 and error_of(r)["code"] == "unknown_url"
    r = requests.get(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=10)
    assert r.status_code == 405


def test_single_backend_timeout_is_504(gateway, providers):
    providers["oa"].script("stall:5")
    # Catalog models use limits.default_timeout_ms (3 s in the test config).
    r = gateway.chat("gpt-4o")
    assert r.status_code == 504
    assert error_of(r)["code"] == "upstream_timeout"
    rec = gateway.record(r.headers["x-switchyard-request-id"])
    assert rec["status"] == 504 and rec["outcome"] == "timeout"


def test_single_backend_refused_is_502(gateway, providers):
    port = providers["oa2"].port
    providers["oa2"].stop()
    try:
        r = gateway.chat("llama3")
        assert r.status_code == 502 and error_of(r)["code"] == "all_backends_failed"
    finally:
        providers["oa2"].start()
        assert providers["oa2"].port == port


@pytest.mark.parametrize("behaviour", ["reset", "reset_after_headers", "cut_mid_stream"])
def test_single_backend_reset_is_502_with_the_request_id_and_a_true_record(gateway, providers, behaviour):
    # One attempt, not streamed: the processor hands the whole exchange to one ext_proc stream
    # (the direct path), and a reset after the provider's headers is answered by Envoy itself.
    providers["oa"].script(behaviour)
    r = gateway.chat("gpt-4o")
    assert r.status_code == 502 and error_of(r)["code"] == "all_backends_failed"
    rec = gateway.record(r.headers["x-switchyard-request-id"])
    assert rec["status"] == 502 and rec["outcome"] == "error", rec
    [attempt] = rec["attempts"]
    assert attempt["provider"] == "oa" and attempt["error"]


def test_single_backend_429_passes_through(gateway, providers):
    providers["oa"].script("status:429")
    r = gateway.chat("gpt-4o")
    assert r.status_code == 429
    assert error_of(r)["type"] == "rate_limit_error"


def test_provider_400_keeps_the_provider_message(gateway, providers):
    providers["oa"].script("status:400")
    r = gateway.chat("gpt-4o")
    assert r.status_code == 400
    assert error_of(r)["message"]


def test_spoofed_routing_headers_are_ignored_and_stripped(gateway, providers):
    r = gateway.chat("gpt-4o", headers={
        "x-switchyard-cluster": "c/an",
        "x-switchyard-provider": "an",
        "x-envoy-max-retries": "5",
        "x-envoy-upstream-rq-per-try-timeout-ms": "1",
        "x-request-id": "req_someone_elses",
    })
    assert r.status_code == 200, r.text
    assert r.headers["x-switchyard-provider"] == "oa"
    assert providers["an"].requests == []
    [got] = providers["oa"].requests
    assert not any(k.startswith("x-switchyard-") for k in got["headers"])
    assert got["headers"].get("x-request-id") != "req_someone_elses"
    rec = gateway.record(r.headers["x-switchyard-request-id"])
    assert rec["provider"] == "oa"


@pytest.mark.parametrize("body", [
    {"model": "claude-sonnet-4", "messages": "nope"},
    {"model": "claude-sonnet-4", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 3}]}]},
    {"model": "claude-sonnet-4", "messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": "{bad"}}]}]},
    {"model": "gpt-4o", "messages": [None, 1, "x"]},
    {"model": "\u0000\ud7ff" * 100},
])
def test_odd_bodies_get_a_clean_answer(gateway, body):
    r = gateway.post("/v1/chat/completions", data=json.dumps(body).encode())
    assert r.status_code in (200, 400, 404), r.text
    if r.status_code != 200:
        error_of(r)
    # The processor is still alive.
    assert gateway.chat("gpt-4o").status_code == 200
