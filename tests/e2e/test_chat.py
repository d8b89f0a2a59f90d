"""Chat, streaming and embeddings through real Envoy, checked from both ends: what the client
(the official SDKs) got and what the fake provider received."""

import json

import openai
import pytest

from conftest import AN_SECRET, CLIENT_KEY, OA_SECRET


def sdk(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def assert_no_client_key(provider):
    for r in provider.requests:
        assert CLIENT_KEY.encode() not in r["raw"]
        assert all(CLIENT_KEY not in v for v in r["headers"].values())
        assert not any(k.startswith("x-switchyard-") for k in r["headers"]), r["headers"]


def test_openai_sdk_plain_chat_reaches_openai_with_provider_secret(gateway, providers):
    resp = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Say hello"}])
    completion = resp.parse()
    assert completion.choices[0].message.content == "Hello from oa"
    assert completion.usage.prompt_tokens == 11
    assert resp.headers["x-switchyard-provider"] == "oa"
    assert resp.headers["x-switchyard-resolved-model"] == "gpt-4o"
    assert resp.headers["x-switchyard-fallbacks"] == "0"
    assert float(resp.headers["x-switchyard-overhead-ms"]) > 0

    [got] = providers["oa"].requests
    assert got["path"] == "/v1/chat/completions"
    assert got["headers"]["authorization"] == f"Bearer {OA_SECRET}"
    assert got["body"]["model"] == "gpt-4o"
    assert_no_client_key(providers["oa"])

    rec = gateway.record(resp.headers["x-switchyard-request-id"])
    assert rec["status"] == 200 and rec["outcome"] == "ok"
    assert rec["provider"] == "oa" and rec["resolved_model"] == "gpt-4o"
    assert (rec["input_tokens"], rec["output_tokens"]) == (11, 7)
    # 11 * 2.50 / 1M + 7 * 10.00 / 1M
    assert rec["cost_usd"] == pytest.approx(0.0000975)
    assert rec["key_name"] == "e2e" and rec["route"] == "model:gpt-4o" and rec["strategy"] == "single"
    assert rec["overhead_ms"] > 0 and rec["latency_ms"] >= rec["overhead_ms"]


def test_openai_sdk_streamed_chat_counts_usage_without_leaking_the_usage_chunk(gateway, providers):
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Say hello"}], stream=True)
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from oa"
    assert all(c.usage is None for c in chunks), "client did not ask for usage"
    [got] = providers["oa"].requests
    assert got["body"]["stream"] is True
    assert got["body"]["stream_options"] == {"include_usage": True}
    rec = gateway.record(raw.headers["x-switchyard-request-id"])
    assert rec["stream"] is True and rec["outcome"] == "ok"
    assert (rec["input_tokens"], rec["output_tokens"]) == (11, 7)
    assert rec["ttft_ms"] is not None and rec["ttft_ms"] <= rec["latency_ms"]


def test_stream_usage_is_forwarded_when_the_client_asks(gateway):
    stream = sdk(gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    usage = [c.usage for c in stream if c.usage]
    assert len(usage) == 1 and usage[0].completion_tokens == 7


def test_embeddings_via_sdk(gateway, providers):
    raw = sdk(gateway).embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a", "b"])
    out = raw.parse()
    assert len(out.data) == 2 and len(out.data[0].embedding) == 8
    [got] = providers["oa"].requests
    assert got["path"] == "/v1/embeddings"
    rec = gateway.record(raw.headers["x-switchyard-request-id"])
    assert rec["endpoint"] == "/v1/embeddings" and rec["input_tokens"] == 11


def test_catalog_alias_rewrites_model_for_openai_compatible(gateway, providers):
    r = gateway.chat("llama3")
    assert r.status_code == 200, r.text
    [got] = providers["oa2"].requests
    assert got["body"]["model"] == "llama3.1:8b"
    assert "authorization" not in got["headers"], "no secret configured for oa2"


def test_anthropic_translation_plain(gateway, providers):
    body = {
        "model": "claude-sonnet-4",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
        "stop": ["END"],
        "temperature": 0.2,
    }
    r = gateway.post("/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Hello from an"}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}

    [got] = providers["an"].requests
    assert got["path"] == "/v1/messages"
    assert got["headers"]["x-api-key"] == AN_SECRET
    assert got["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in got["headers"]
    assert got["body"]["model"] == "claude-sonnet-4-20250514"
    assert got["body"]["system"] == "Be brief."
    assert got["body"]["messages"] == [{"role": "user", "content": "Say hello"}]
    assert got["body"]["max_tokens"] == 2048, "injected from the catalog's max_output_tokens"
    assert got["body"]["stop_sequences"] == ["END"]
    assert_no_client_key(providers["an"])
    rec = gateway.record(r.headers["x-switchyard-request-id"])
    assert rec["cost_usd"] == pytest.approx((11 * 3.0 + 7 * 15.0) / 1e6)


def test_anthropic_tool_calls_translate_back(gateway, providers):
    body = {
        "model": "claude-sonnet-4",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    }
    r = gateway.post("/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    [got] = providers["an"].requests
    assert got["body"]["tools"][0]["name"] == "get_weather"
    assert got["body"]["max_tokens"] == 100


def test_anthropic_stream_becomes_openai_chunks_via_sdk(gateway, providers):
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="claude-sonnet-4", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from an"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage.prompt_tokens == 11 and chunks[-1].usage.completion_tokens == 7
    [got] = providers["an"].requests
    assert got["body"]["stream"] is True
    rec = gateway.record(raw.headers["x-switchyard-request-id"])
    assert rec["provider"] == "an" and rec["output_tokens"] == 7 and rec["outcome"] == "ok"


def test_models_lists_what_the_key_may_use(gateway):
    r = requests_get(gateway, "/v1/models", "sk-restricted")
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]] == ["llama3"]
    ids = [m["id"] for m in requests_get(gateway, "/v1/models", CLIENT_KEY).json()["data"]]
    assert "gpt-4o" in ids and "reliable-chat" in ids and "retired" not in ids


def requests_get(gateway, path, key):
    import requests
    return requests.get(gateway.url + path, headers={"authorization": f"Bearer {key}"}, timeout=10)


def test_image_generation_is_forwarded_and_priced_per_image(gateway, providers):
    resp = sdk(gateway).images.with_raw_response.generate(
        model="dall-e-3", prompt="a lighthouse at dusk", n=2, size="1024x1792", quality="hd")
    images = resp.parse()
    assert [d.url for d in images.data] == ["https://images.invalid/oa/0.png", "https://images.invalid/oa/1.png"]
    [got] = providers["oa"].requests
    assert got["path"] == "/v1/images/generations"
    assert got["headers"]["authorization"] == f"Bearer {OA_SECRET}"
    assert got["body"] == {"model": "dall-e-3", "prompt": "a lighthouse at dusk", "n": 2,
                           "size": "1024x1792", "quality": "hd"}
    rec = gateway.record(resp.headers["x-switchyard-request-id"])
    assert rec["status"] == 200 and rec["endpoint"] == "/v1/images/generations"
    assert rec["cost_usd"] == pytest.approx(0.24)


def test_image_generation_on_a_chat_only_provider_is_a_clear_400(gateway, providers):
    r = gateway.post("/v1/images/generations", {"model": "claude-sonnet-4", "prompt": "x"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "image generation is only available from OpenAI-compatible providers"
    assert providers["an"].requests == []
