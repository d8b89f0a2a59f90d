"""Request and response content in the request record (`records.log_bodies`), through real
Envoy: the record holds exactly what the client sent and what it received (after translation,
the SSE bytes for a stream), capped at `records.log_body_max_bytes`; the Console shows it
escaped. With the setting off (the shared gateway's config) the fields are absent."""

from __future__ import annotations

import json

import pytest
import requests

from conftest import CLIENT_KEY, Gateway, base_config
from test_console import ADMIN_TOKEN, signed_in

CAP = 4096


@pytest.fixture(scope="module")
def gw(providers):
    config = lambda records: base_config(providers, records).replace(
        "records: { ", f"records: {{ log_bodies: true, log_body_max_bytes: {CAP}, ", 1)
    g = Gateway(providers, config_text=config, env={"SWITCHYARD_ADMIN_TOKEN": ADMIN_TOKEN})
    g.console = f"http://{g.admin}"
    yield g
    g.stop()


def post_raw(gw, path: str, sent: str, **kw):
    """POST the exact bytes `sent` (so the record can be compared byte for byte)."""
    return gw.post(path, data=sent.encode(), **kw)


def assert_no_bodies_flags(rec):
    assert "request_body_truncated" not in rec and "response_body_truncated" not in rec


def test_plain_chat_records_exactly_what_was_sent_and_received(gw):
    sent = '{"model": "gpt-4o",  "messages": [{"role": "user", "content": "Say héllo"}]}'
    r = post_raw(gw, "/v1/chat/completions", sent)
    assert r.status_code == 200
    rec = gw.record(r.headers["x-switchyard-request-id"])
    assert rec["request_body"] == sent
    assert rec["response_body"] == r.content.decode()
    assert json.loads(rec["response_body"])["choices"][0]["message"]["content"] == "Hello from oa"
    assert_no_bodies_flags(rec)
    # Nothing header-derived: the client's key is in no field of the record.
    assert CLIENT_KEY not in json.dumps(rec)


def test_streamed_chat_records_the_sse_the_client_received(gw):
    sent = json.dumps({"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    r = post_raw(gw, "/v1/chat/completions", sent, stream=True)
    got = r.raw.read().decode()
    assert r.status_code == 200 and got.endswith("data: [DONE]\n\n")
    rec = gw.record(r.headers["x-switchyard-request-id"])
    assert rec["stream"] is True and rec["request_body"] == sent
    assert rec["response_body"] == got
    # The provider was asked for usage; the client was not sent that chunk, nor is the record.
    assert "prompt_tokens" not in rec["response_body"]


def test_translated_provider_records_the_openai_shape_the_client_got(gw, providers):
    r = gw.chat("claude-sonnet-4")
    assert r.status_code == 200 and r.headers["x-switchyard-provider"] == "an"
    assert providers["an"].requests[0]["path"] == "/v1/messages"
    rec = gw.record(r.headers["x-switchyard-request-id"])
    assert rec["response_body"] == r.content.decode()
    body = json.loads(rec["response_body"])
    assert body["object"] == "chat.completion" and "type" not in body

    r = gw.chat("claude-sonnet-4", stream=True)
    got = r.raw.read().decode()
    rec = gw.record(r.headers["x-switchyard-request-id"])
    assert rec["response_body"] == got
    assert "chat.completion.chunk" in got and "message_start" not in got and got.endswith("data: [DONE]\n\n")


def test_anthropic_client_records_its_own_dialect_both_ways(gw):
    sent = json.dumps({"model": "gpt-4o", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
    r = post_raw(gw, "/v1/messages", sent, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 200
    rec = gw.record(r.headers["x-switchyard-request-id"])
    assert rec["request_body"] == sent
    assert rec["response_body"] == r.content.decode()
    assert json.loads(rec["response_body"])["type"] == "message"


def test_fallback_records_the_answer_of_the_attempt_that_served(gw, providers):
    providers["oa"].script("status:500")
    r = gw.chat("reliable-chat")
    assert r.status_code == 200 and r.headers["x-switchyard-fallbacks"] == "1"
    rec = gw.record(r.headers["x-switchyard-request-id"])
    assert rec["response_body"] == r.content.decode()
    assert "Fake 500" not in rec["response_body"]


def test_bodies_over_the_cap_are_cut_at_a_character_and_marked(gw):
    # 2-byte characters, so a byte cap can fall inside one.
    sent = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "é" * 3000}]},
                      ensure_ascii=False)
    assert len(sent.encode()) > CAP
    r = post_raw(gw, "/v1/chat/completions", sent)
    assert r.status_code == 200
    rec = gw.record(r.headers["x-switchyard-request-id"])
    assert rec["request_body_truncated"] is True
    assert len(rec["request_body"].encode()) <= CAP and len(rec["request_body"].encode()) >= CAP - 1
    assert sent.startswith(rec["request_body"])
    assert "response_body_truncated" not in rec

    # A response over the cap: many embeddings.
    r = gw.post("/v1/embeddings", {"model": "text-embedding-3-small", "input": [f"t{i}" for i in range(200)]})
    assert r.status_code == 200 and len(r.content) > CAP
    rec = gw.record(r.headers["x-switchyard-request-id"])
    assert rec["response_body_truncated"] is True and "request_body_truncated" not in rec
    assert len(rec["response_body"].encode()) <= CAP
    assert r.content.decode().startswith(rec["response_body"])


def test_rejections_record_the_error_the_client_got_and_never_the_key(gw):
    bad_key = "sk-not-a-key-0123456789abcdef"
    r = gw.chat("gpt-4o", key=bad_key)
    assert r.status_code == 401
    rec = gw.record(r.headers["x-switchyard-request-id"])
    # Rejected on its headers: Envoy never sent the body, so there is none to keep.
    assert "request_body" not in rec
    assert rec["response_body"] == r.content.decode()
    assert bad_key not in json.dumps(rec)

    sent = '{"model": "gpt-4o", "messages": '
    r = post_raw(gw, "/v1/chat/completions", sent)
    assert r.status_code == 400
    rec = gw.record(r.headers["x-switchyard-request-id"])
    assert rec["request_body"] == sent and rec["response_body"] == r.content.decode()


def test_console_shows_the_content_escaped_and_the_api_returns_it(gw):
    evil = "<script>alert(1)</script>"
    r = gw.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": evil}]})
    rid = r.headers["x-switchyard-request-id"]
    gw.record(rid)
    s, _ = signed_in(gw)
    page = s.get(gw.console + "/console/logs").text
    row = page[page.index(f'data-request-id="{rid}"'):]
    row = row[:row.index("</details>")]
    assert "<script>" not in row
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in row
    assert 'data-field="request-body"' in row and 'data-field="response-body"' in row
    # Pretty-printed JSON: one key per line.
    assert '\n  &quot;model&quot;: &quot;gpt-4o&quot;,' in row
    api = s.get(gw.console + f"/console/api/logs/{rid}").json()
    assert evil in api["request_body"] and api["response_body"] == r.content.decode()


def test_with_the_setting_off_records_have_no_bodies(gateway):
    r = gateway.chat("gpt-4o")
    assert r.status_code == 200
    rec = gateway.record(r.headers["x-switchyard-request-id"])
    for field in ("request_body", "response_body", "request_body_truncated", "response_body_truncated"):
        assert field not in rec, field
