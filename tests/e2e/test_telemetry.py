"""Telemetry from a real run through Envoy: an in-process OTLP/HTTP receiver (decoded with the
official opentelemetry-proto messages) collects the gateway's spans and metrics, which must carry
the same facts as the request record; the client's W3C trace context reaches the provider;
`/metrics` on the admin port is Prometheus text; no secret reaches exported data."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from conftest import CLIENT_KEY, OA_SECRET, Gateway, base_config

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class Receiver:
    """OTLP/HTTP collector: POST /v1/traces and /v1/metrics with protobuf bodies."""

    def __init__(self):
        self.raw: list[bytes] = []
        self.spans = []
        self.metrics = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.raw.append(body)
                if self.path == "/v1/traces":
                    msg = ExportTraceServiceRequest.FromString(body)
                    receiver.spans += [s for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]
                elif self.path == "/v1/metrics":
                    msg = ExportMetricsServiceRequest.FromString(body)
                    receiver.metrics += [m for rm in msg.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
    return out


@pytest.fixture(scope="module")
def traced(providers):
    rx = Receiver()
    config = lambda records: base_config(providers, records) + (
        f'\ntelemetry: {{ otlp_endpoint: "{rx.url}", protocol: http, export_interval_ms: 300, '
        f'resource_attributes: {{ deployment.environment: e2e }} }}\n')
    gw = Gateway(providers, config_text=config)
    yield gw, rx
    gw.stop()
    rx.server.shutdown()


def wait(pred, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_spans_carry_the_record_and_the_trace_reaches_the_provider(traced, providers):
    gw, rx = traced
    providers["oa"].script("status:503")  # first attempt fails, the chain falls back
    r = gw.post("/v1/chat/completions", {"model": "reliable-chat", "messages": [{"role": "user", "content": "Say hello"}]},
                headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    assert r.status_code == 200
    rec = gw.record(r.headers["x-switchyard-request-id"])
    assert wait(lambda: any(attrs(s).get("switchyard.request.id") == rec["id"] for s in rx.spans)), rx.spans
    root = next(s for s in rx.spans if attrs(s).get("switchyard.request.id") == rec["id"])
    a = attrs(root)
    assert root.trace_id.hex() == CLIENT_TRACE and root.parent_span_id.hex() == CLIENT_SPAN
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == rec["requested_model"] == "reliable-chat"
    assert a["gen_ai.response.model"] == rec["resolved_model"]
    assert a["gen_ai.usage.input_tokens"] == rec["input_tokens"]
    assert a["gen_ai.usage.output_tokens"] == rec["output_tokens"]
    assert a["switchyard.key.name"] == rec["key_name"] == "e2e"
    assert a["switchyard.route"] == rec["route"] and a["switchyard.strategy"] == rec["strategy"]
    assert a["switchyard.fallback_count"] == rec["fallback_count"] == 1
    assert a["switchyard.cost_usd"] == pytest.approx(rec["cost_usd"])
    children = [s for s in rx.spans if s.trace_id == root.trace_id and s.parent_span_id == root.span_id]
    assert sorted(attrs(c)["switchyard.provider"] for c in children) == sorted(x["provider"] for x in rec["attempts"])
    # Each provider request carried the trace, as a child of its attempt's span.
    sent = [q["headers"]["traceparent"] for p in ("oa", "an") for q in providers[p].requests]
    assert len(sent) == 2 and all(t.split("-")[1] == CLIENT_TRACE for t in sent)
    assert {t.split("-")[2] for t in sent} == {c.span_id.hex() for c in children}


def test_metrics_over_otlp_and_prometheus(traced):
    gw, rx = traced
    assert gw.chat("gpt-4o").status_code == 200
    assert wait(lambda: any(m.name == "gen_ai.client.token.usage" for m in rx.metrics)), [m.name for m in rx.metrics]
    # The request's metrics land when its record is final, just after the response.
    scrape = lambda: requests.get(f"http://{gw.admin}/metrics", timeout=5).text
    assert wait(lambda: 'model="gpt-4o"' in scrape())
    text = scrape()
    lines = [l for l in text.splitlines() if l and not l.startswith("#")]
    samples = {}
    for l in lines:
        name_labels, value = l.rsplit(" ", 1)
        samples[name_labels] = float(value)
    assert any(k.startswith("gen_ai_client_token_usage_count") and 'model="gpt-4o"' in k for k in samples), text
    assert any(k.startswith("switchyard_requests_total") and 'status="200"' in k and v >= 1 for k, v in samples.items()), text
    assert "switchyard_extproc_streams" in text


def test_no_secret_reaches_exported_data(traced):
    gw, rx = traced
    gw.chat("gpt-4o")
    time.sleep(0.8)
    blob = b"".join(rx.raw)
    text = requests.get(f"http://{gw.admin}/metrics", timeout=5).text
    for secret in (CLIENT_KEY, OA_SECRET):
        assert secret.encode() not in blob
        assert secret not in text


def test_json_logs_name_the_request_and_its_trace(providers):
    import json as _json
    config = lambda records: base_config(providers, records, health="health: { consecutive_failures: 1, cooldown_ms: 60000 }") + \
        '\ntelemetry: { otlp_endpoint: "http://127.0.0.1:9", protocol: http }\n'
    gw = Gateway(providers, config_text=config, env={"SWITCHYARD_LOG_FORMAT": "json"})
    try:
        providers["oa"].script("status:500")
        r = gw.post("/v1/chat/completions", {"model": "reliable-chat", "messages": [{"role": "user", "content": "x"}]},
                    headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
        assert r.status_code == 200
        rid = r.headers["x-switchyard-request-id"]
        assert wait(lambda: "backend cooling down" in gw.logs())
        lines = [_json.loads(l) for l in gw.logs().splitlines() if l.startswith("{")]
        [cool] = [l for l in lines if l.get("message") == "backend cooling down"]
        assert cool["level"] == "WARN" and cool["backend"] == "oa/gpt-4o"
        assert cool["span"]["request_id"] == rid and cool["span"]["trace_id"] == CLIENT_TRACE
        assert CLIENT_KEY not in gw.logs() and OA_SECRET not in gw.logs()
    finally:
        gw.stop()
