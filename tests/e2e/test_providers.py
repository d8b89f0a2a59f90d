"""Provider conformance matrix through real Envoy: every provider kind × {plain, streamed} ×
{text, tools}, each asserting the exact request the fake provider received (path, credentials,
translated body) and what the official OpenAI SDK parsed.

One fake server speaks every wire format (it dispatches on the path), registered under one
provider id per kind."""

from __future__ import annotations

import json

import openai
import pytest

from conftest import CLIENT_KEY, Gateway
from fake_provider import FakeProvider

SECRET = "sk-matrix-provider-SECRET"
AKID = "AKIDMATRIXEXAMPLE"
VERTEX = "/v1/projects/p1/locations/us-east5"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]

# kind -> (provider config, catalog model name, provider model, request path (plain, streamed))
KINDS = {
    "openai": ('kind: openai, base_url: "{url}/v1", secret_key_ref: {{ env: MATRIX_SECRET }}',
               "m-openai", "gpt-4o-mini", ("/v1/chat/completions",) * 2),
    "azure_openai": ('kind: azure_openai, base_url: "{url}/openai", api_version: "2024-10-21", secret_key_ref: {{ env: MATRIX_SECRET }}',
                     "m-azure", "gpt4o-deployment", ("/openai/deployments/gpt4o-deployment/chat/completions",) * 2),
    "anthropic": ('kind: anthropic, base_url: "{url}/v1", secret_key_ref: {{ env: MATRIX_SECRET }}',
                  "m-anthropic", "claude-sonnet-4-20250514", ("/v1/messages",) * 2),
    "gemini": ('kind: gemini, base_url: "{url}/v1beta", secret_key_ref: {{ env: MATRIX_SECRET }}',
               "m-gemini", "gemini-2.5-flash",
               ("/v1beta/models/gemini-2.5-flash:generateContent", "/v1beta/models/gemini-2.5-flash:streamGenerateContent")),
    "vertex": ('kind: vertex, base_url: "{url}/v1/projects/p1/locations/us-east5", secret_key_ref: {{ env: MATRIX_SECRET }}',
               "m-vertex", "gemini-2.5-pro",
               (f"{VERTEX}/publishers/google/models/gemini-2.5-pro:generateContent",
                f"{VERTEX}/publishers/google/models/gemini-2.5-pro:streamGenerateContent")),
    "vertex_claude": ('kind: vertex, base_url: "{url}/v1/projects/p1/locations/us-east5", secret_key_ref: {{ env: MATRIX_SECRET }}',
                      "m-vertex-claude", "claude-sonnet-4@20250514",
                      (f"{VERTEX}/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict",
                       f"{VERTEX}/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict")),
    "bedrock": ('kind: bedrock, base_url: "{url}", region: us-east-1, access_key_id_ref: {{ env: MATRIX_AKID }}, secret_key_ref: {{ env: MATRIX_SECRET }}',
                "m-bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0",
                ("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
                 "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream")),
    "mistral": ('kind: openai_compatible, base_url: "{url}/mistral/v1", stream_options: false, secret_key_ref: {{ env: MATRIX_SECRET }}',
                "m-mistral", "mistral-large-latest", ("/mistral/v1/chat/completions",) * 2),
    "cohere": ('kind: cohere, base_url: "{url}", secret_key_ref: {{ env: MATRIX_SECRET }}',
               "m-cohere", "command-r-plus-08-2024", ("/v2/chat",) * 2),
}


# Embedding models per kind: (catalog name, provider id, provider model, request path).
EMBEDDINGS = [
    ("e-openai", "p-openai", "text-embedding-3-small", "/v1/embeddings"),
    ("e-azure", "p-azure-openai", "emb-deployment", "/openai/deployments/emb-deployment/embeddings"),
    ("e-gemini", "p-gemini", "gemini-embedding-001", "/v1beta/models/gemini-embedding-001:batchEmbedContents"),
    ("e-bedrock", "p-bedrock", "cohere.embed-english-v3", "/model/cohere.embed-english-v3/invoke"),
    ("e-cohere", "p-cohere", "embed-english-v3.0", "/v2/embed"),
]
EMBEDDING_MODELS = "\n".join(f'  - {{ name: {n}, provider: {p}, provider_model: "{m}" }}' for n, p, m, _ in EMBEDDINGS)


def credentials_ok(kind: str, headers: dict) -> bool:
    """The provider's own credential scheme, and no other provider's."""
    if kind == "bedrock":
        auth = headers.get("authorization", "")
        return (auth.startswith(f"AWS4-HMAC-SHA256 Credential={AKID}/") and "x-amz-date" in headers
                and not ({"api-key", "x-api-key", "x-goog-api-key"} & headers.keys()))
    want = {
        "openai": ("authorization", f"Bearer {SECRET}"),
        "azure_openai": ("api-key", SECRET),
        "anthropic": ("x-api-key", SECRET),
        "gemini": ("x-goog-api-key", SECRET),
        "vertex": ("authorization", f"Bearer {SECRET}"),
        "vertex_claude": ("authorization", f"Bearer {SECRET}"),
        "cohere": ("authorization", f"Bearer {SECRET}"),
        "mistral": ("authorization", f"Bearer {SECRET}"),
    }[kind]
    others = {"authorization", "api-key", "x-api-key", "x-goog-api-key"} - {want[0]}
    return headers.get(want[0]) == want[1] and not (others & headers.keys())


def provider_id(kind: str) -> str:
    return "p-" + kind.replace("_", "-")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    fake = FakeProvider("multi").start()
    fake.aws_secret = SECRET  # Bedrock requests must carry a valid SigV4 signature
    import os
    os.environ["MATRIX_SECRET"] = SECRET
    os.environ["MATRIX_AKID"] = AKID
    providers_yaml = "\n".join(f"  - {{ id: {provider_id(kind)}, {cfg.format(url=fake.url)} }}"
                               for kind, (cfg, *_rest) in KINDS.items())
    models_yaml = "\n".join(f'  - {{ name: {name}, provider: {provider_id(kind)}, provider_model: "{pm}", max_output_tokens: 1024 }}'
                            for kind, (_cfg, name, pm, _path) in KINDS.items())
    import hashlib
    gw = Gateway({"multi": fake}, config_text=lambda records: f"""
records: {{ path: {records} }}
health: {{ consecutive_failures: 1000000, error_rate: 2 }}
providers:
{providers_yaml}
models:
{models_yaml}
{EMBEDDING_MODELS}
keys:
  - {{ name: matrix, hash: "sha256:{hashlib.sha256(CLIENT_KEY.encode()).hexdigest()}" }}
""")
    yield gw, fake
    gw.stop()
    fake.stop()


def sdk(gw):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


CASES = [(kind, stream, tools) for kind in KINDS for stream in (False, True) for tools in (False, True)]


@pytest.mark.parametrize("kind,stream,tools", CASES,
                         ids=[f"{k}-{'stream' if s else 'plain'}-{'tools' if t else 'text'}" for k, s, t in CASES])
def test_openai_sdk_reaches_every_provider_kind(matrix, kind, stream, tools):
    gw, fake = matrix
    fake.reset()
    _cfg, name, provider_model, paths = KINDS[kind]
    kwargs = {"model": name, "messages": [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "Weather in Paris?"}],
              "max_tokens": 100}
    if tools:
        kwargs["tools"] = TOOLS
    raw = sdk(gw).chat.completions.with_raw_response.create(stream=stream, **kwargs)
    parsed = raw.parse()
    if stream:
        chunks = list(parsed)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        if tools:
            assert calls[0].function.name == "get_weather"
            assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Paris"}
            assert finish == ["tool_calls"]
        else:
            assert text == "Hello from multi"
            assert finish == ["stop"]
    else:
        msg = parsed.choices[0].message
        if tools:
            assert msg.tool_calls[0].function.name == "get_weather"
            assert json.loads(msg.tool_calls[0].function.arguments) == {"city": "Paris"}
            assert parsed.choices[0].finish_reason == "tool_calls"
        else:
            assert msg.content == "Hello from multi"
            assert parsed.choices[0].finish_reason == "stop"
        assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens) == (11, 7)

    [got] = fake.requests
    assert got["path"] == paths[stream]
    assert credentials_ok(kind, got["headers"]), got["headers"]
    assert CLIENT_KEY not in json.dumps(got["headers"])
    assert raw.headers["x-switchyard-provider"] == provider_id(kind)
    assert raw.headers["x-switchyard-resolved-model"] == provider_model
    rec = gw.record(raw.headers["x-switchyard-request-id"])
    assert rec["status"] == 200 and rec["outcome"] == "ok", rec
    assert (rec["input_tokens"], rec["output_tokens"]) == (11, 7)
    check_request_body = REQUEST_CHECKS[kind]
    check_request_body(got, provider_model, stream, tools)


def _openai_body(got, model, stream, tools):
    b = got["body"]
    assert b["model"] == model
    assert b["messages"][0] == {"role": "system", "content": "Be brief."}
    assert b["max_tokens"] == 100
    assert ("tools" in b) == tools
    assert b.get("stream", False) == stream
    if stream:
        assert b["stream_options"] == {"include_usage": True}


def _azure_body(got, model, stream, tools):
    assert got["query"] == "api-version=2024-10-21"
    _openai_body(got, model, stream, tools)


def _anthropic_body(got, model, stream, tools):
    b = got["body"]
    assert got["headers"]["anthropic-version"] == "2023-06-01"
    assert b["model"] == model and b["system"] == "Be brief." and b["max_tokens"] == 100
    assert b["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    if tools:
        assert b["tools"][0]["name"] == "get_weather" and "input_schema" in b["tools"][0]
    assert b.get("stream", False) == stream


def _gemini_body(got, model, stream, tools):
    b = got["body"]
    assert got["query"] == ("alt=sse" if stream else "")
    assert "model" not in b and "stream" not in b
    assert b["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert b["contents"] == [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}]
    assert b["generationConfig"]["maxOutputTokens"] == 100
    if tools:
        assert b["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"


def _vertex_claude_body(got, model, stream, tools):
    b = got["body"]
    assert "model" not in b and b["anthropic_version"] == "vertex-2023-10-16"
    assert "anthropic-version" not in got["headers"]
    assert b["system"] == "Be brief." and b["max_tokens"] == 100
    assert b["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    if tools:
        assert b["tools"][0]["name"] == "get_weather"


def _bedrock_body(got, model, stream, tools):
    b = got["body"]
    assert "model" not in b
    assert b["system"] == [{"text": "Be brief."}]
    assert b["messages"] == [{"role": "user", "content": [{"text": "Weather in Paris?"}]}]
    assert b["inferenceConfig"]["maxTokens"] == 100
    assert got["headers"]["x-amz-content-sha256"] == __import__("hashlib").sha256(got["raw"]).hexdigest()
    if tools:
        assert b["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


def _cohere_body(got, model, stream, tools):
    b = got["body"]
    assert b["model"] == model and b["max_tokens"] == 100
    assert b["messages"] == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Weather in Paris?"}]
    assert b.get("stream", False) == stream
    if tools:
        assert b["tools"][0]["function"]["name"] == "get_weather"


def _mistral_body(got, model, stream, tools):
    b = got["body"]
    assert "stream_options" not in b, "Mistral rejects stream_options"
    assert b["model"] == model and b.get("stream", False) == stream


REQUEST_CHECKS = {"cohere": _cohere_body, "mistral": _mistral_body, "openai": _openai_body, "azure_openai": _azure_body, "anthropic": _anthropic_body,
                  "gemini": _gemini_body, "vertex": _gemini_body, "vertex_claude": _vertex_claude_body,
                  "bedrock": _bedrock_body}


def test_azure_error_keeps_the_provider_message(matrix):
    gw, fake = matrix
    fake.reset()
    fake.script("status:400")
    r = gw.post("/v1/chat/completions", {"model": "m-azure", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Fake 400 from multi"


# --- Inbound Anthropic Messages (the official anthropic SDK) × every provider kind -----------

import anthropic  # noqa: E402

A_TOOLS = [{"name": "get_weather", "description": "Weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def anthropic_sdk(gw):
    return anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0)


@pytest.mark.parametrize("kind,stream,tools", CASES,
                         ids=[f"{k}-{'stream' if s else 'plain'}-{'tools' if t else 'text'}" for k, s, t in CASES])
def test_anthropic_sdk_reaches_every_provider_kind(matrix, kind, stream, tools):
    gw, fake = matrix
    fake.reset()
    _cfg, name, provider_model, paths = KINDS[kind]
    kwargs = {"model": name, "max_tokens": 100, "system": "Be brief.",
              "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    if tools:
        kwargs["tools"] = A_TOOLS
    client = anthropic_sdk(gw)
    if stream:
        with client.messages.stream(**kwargs) as s:
            events = [e.type for e in s]
            msg = s.get_final_message()
        assert events[0] == "message_start" and "message_stop" in events
    else:
        raw = client.messages.with_raw_response.create(**kwargs)
        msg = raw.parse()
        assert raw.headers["x-switchyard-provider"] == provider_id(kind)
    if tools:
        [block] = [b for b in msg.content if b.type == "tool_use"]
        assert block.name == "get_weather" and block.input == {"city": "Paris"}
        assert msg.stop_reason == "tool_use"
    else:
        assert "".join(b.text for b in msg.content if b.type == "text") == "Hello from multi"
        assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 7
    assert msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0) == 11

    [got] = fake.requests
    assert got["path"] == paths[stream]
    assert credentials_ok(kind, got["headers"]), got["headers"]
    if kind == "anthropic":
        # Anthropic to Anthropic: the client's body as sent, only the model swapped.
        sent = dict(kwargs, model=provider_model)
        if stream:
            sent["stream"] = True
        assert got["body"] == sent
    elif kind != "vertex_claude":
        REQUEST_CHECKS[kind](got, provider_model, stream, tools)


def test_anthropic_sdk_errors_come_back_in_anthropic_shape(matrix):
    gw, fake = matrix
    fake.reset()
    client = anthropic_sdk(gw)
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="m-openai", max_tokens=10, messages=[])
    assert e.value.body["error"]["type"] == "invalid_request_error"
    bad = anthropic.Anthropic(base_url=gw.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        bad.messages.create(model="m-openai", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "authentication_error"
    # A provider failure behind a translated route keeps the provider's message.
    fake.script("status:400")
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="m-gemini", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["message"] == "Fake 400 from multi"


def test_anthropic_sdk_lists_models_in_anthropic_shape(matrix):
    gw, _ = matrix
    ids = [m.id for m in anthropic_sdk(gw).models.list()]
    assert "m-openai" in ids and "m-bedrock" in ids


@pytest.mark.parametrize("name,provider,provider_model,path", EMBEDDINGS, ids=[e[0] for e in EMBEDDINGS])
def test_embeddings_reach_every_embedding_provider(matrix, name, provider, provider_model, path):
    gw, fake = matrix
    fake.reset()
    raw = sdk(gw).embeddings.with_raw_response.create(model=name, input=["first text", "second text"],
                                                      encoding_format="float")
    emb = raw.parse()
    assert [d.index for d in emb.data] == [0, 1]
    assert all(len(d.embedding) == 8 and all(isinstance(x, float) for x in d.embedding) for d in emb.data)
    assert emb.data[0].embedding != emb.data[1].embedding
    assert raw.headers["x-switchyard-provider"] == provider
    [got] = fake.requests
    assert got["path"] == path
    texts = json.dumps(got["body"])
    assert "first text" in texts and "second text" in texts


@pytest.mark.parametrize("name", [e[0] for e in EMBEDDINGS])
def test_base64_embeddings_are_base64_whatever_the_provider_answers(matrix, name):
    # The SDKs' default (openai-node decodes the answer as base64 unconditionally): every
    # provider's floats come back as little-endian f32 in base64, equal to the float answer.
    import base64
    import struct
    gw, fake = matrix
    floats = sdk(gw).embeddings.create(model=name, input=["first text"], encoding_format="float")
    r = gw.post("/v1/embeddings", {"model": name, "input": ["first text"], "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    b64 = r.json()["data"][0]["embedding"]
    assert isinstance(b64, str)
    raw = base64.b64decode(b64)
    decoded = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    assert decoded == pytest.approx(floats.data[0].embedding, rel=1e-6)
    # And the SDK's own default (base64, decoded by the SDK) gives the same vector.
    assert sdk(gw).embeddings.create(model=name, input=["first text"]).data[0].embedding == pytest.approx(decoded)
