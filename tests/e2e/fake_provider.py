"""Fake LLM provider for Switchyard end-to-end tests (standard library only).

Speaks the OpenAI and Anthropic wire formats closely enough for the gateway and
the official SDKs:

* ``POST <prefix>/chat/completions``  OpenAI chat (plain, streamed, tool calls)
* ``POST <prefix>/embeddings``        OpenAI embeddings (float or base64)
* ``POST <prefix>/images/generations`` OpenAI images (``n`` URLs)
* ``GET  <prefix>/models``            model list (Anthropic shape if the request
                                      carries ``anthropic-version``)
* ``POST <prefix>/messages``          Anthropic Messages (plain, streamed, tool_use)
* ``POST .../models/M:generateContent`` Gemini (also ``:streamGenerateContent?alt=sse``,
                                      ``:batchEmbedContents``; Vertex ``publishers/google``)
* ``POST .../publishers/anthropic/models/M:rawPredict`` Anthropic on Vertex (and
                                      ``:streamRawPredict``; no model in the body)
* ``POST .../model/ID/converse``      Amazon Bedrock Converse (also ``converse-stream``
                                      in AWS event-stream frames, ``invoke`` for Titan and
                                      Cohere embeddings); SigV4 verified when ``aws_secret``
* ``POST .../v2/chat``, ``.../v2/embed`` Cohere v2 (SSE with typed events)
* ``POST /mistral/v1/chat/completions`` Mistral's quirks: 422 on ``stream_options``, usage
                                      on the final stream chunk
* ``POST .../openai/deployments/D/...``  Azure OpenAI (``api-key`` and ``api-version``
                                      required; answers as model D)

Every request is recorded (``provider.requests``) *before* its behaviour runs.
Behaviours are queued with ``provider.script(...)`` and consumed one per request
(FIFO); when the queue is empty ``provider.default_behaviour`` applies:

``ok``                       normal response
``status:NNN``               error body for NNN in the path's wire format
                             (``.../messages`` -> Anthropic, else OpenAI);
                             429 adds ``retry-after: 1``
``stall:SECONDS``            sleep before sending anything, then respond ok
                             (stop() during the sleep RSTs the connection)
``reset``                    TCP RST (SO_LINGER 0) without any response
``reset_after_headers``      200 status line + headers, then RST before any body
``cut_mid_stream``           first 2 stream events, then RST (no final chunk)
``truncate_stream``          first 2 stream events, then a clean end of the
                             chunked body without ``[DONE]`` / ``message_stop``
``corrupt_stream``           first event, ``data: {not json``, then a clean end
``delay_first_token:SECONDS`` stream headers, sleep, then the normal events

The stream behaviours on a non-streaming request: ``cut_mid_stream`` sends the
headers and half the JSON body then RSTs; ``truncate_stream`` sends half the
body and closes cleanly (Content-Length not met); ``corrupt_stream`` sends a
200 with ``{not json``; ``delay_first_token`` sleeps before responding.

Standalone demo: ``python fake_provider.py --name N --port P`` prints ``ready``
once listening and serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
import uuid
import zlib
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Pause between the last bytes written and an RST so the peer reads them first.
_RST_GRACE = 0.05
_TOOL_ARGS = '{"city":"Paris"}'
_TOOL_ARGS_PIECES = ('{"city":', '"Paris"}')

_BEHAVIOUR_RE = re.compile(
    r"^(ok|reset|reset_after_headers|cut_mid_stream|truncate_stream|corrupt_stream"
    r"|status:[1-5]\d\d|(stall|delay_first_token):\d+(\.\d+)?)$"
)

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


class _Reset(Exception):
    """Raised inside the handler to abort the connection with an RST."""


def _split3(text: str) -> list[str]:
    """Split text into (at most) 3 word-ish pieces that join back to text."""
    words = re.findall(r"\s*\S+", text)
    if "".join(words) != text:  # keep trailing whitespace
        words.append(text[len("".join(words)):])
    if len(words) < 3:
        step = max(1, -(-len(text) // 3))
        return [text[i:i + step] for i in range(0, len(text), step)] or [""]
    n, pieces, start = len(words), [], 0
    for i in range(3):
        end = start + n // 3 + (1 if i < n % 3 else 0)
        pieces.append("".join(words[start:end]))
        start = end
    return pieces


def _fake_embedding(value) -> list[float]:
    digest = hashlib.sha256(json.dumps(value).encode()).digest()
    return [round(b / 255.0 - 0.5, 6) for b in digest[:8]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open ~1000 connections at once; the default backlog of 5 drops SYNs.
    request_queue_size = 2048
    allow_reuse_address = True
    block_on_close = False  # stop() must not wait for stalled handlers

    def __init__(self, addr, handler, provider: "FakeProvider"):
        self.provider = provider
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def server_bind(self):
        # Skip HTTPServer's getfqdn() reverse lookup, which can be slow.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # --- plumbing ---------------------------------------------------------
    def setup(self):
        super().setup()
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self):
        with self.server.conns_lock:
            self.server.conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format, *args):
        if self.server.provider.verbose:
            sys.stderr.write(f"[{self.server.provider.name}] {format % args}\n")

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _rst(self):
        """Abort the connection with a TCP RST."""
        self.close_connection = True
        sock = self.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.rfile.close()  # drop the makefile ref so close() really closes
        sock.close()

    def _sleep(self, seconds: float):
        # stop() interrupts the sleep and the connection dies (provider "down").
        if self.server.provider._stopping.wait(seconds):
            raise _Reset

    def _send(self, status: int, body: bytes, ctype="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, obj, extra=None):
        self._send(status, json.dumps(obj).encode(), extra=extra)

    def _start_stream(self):
        self.send_response(200)
        ctype = ("application/vnd.amazon.eventstream" if self.wire == "bedrock"
                 else "text/event-stream; charset=utf-8")
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header(*self._request_id_header())
        self.end_headers()

    def _chunk(self, data: bytes):
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _request_id_header(self):
        rid = "req_" + uuid.uuid4().hex[:24]
        return ("request-id", rid) if self.wire == "anthropic" else ("x-request-id", rid)

    # --- request handling -------------------------------------------------
    def _dispatch(self):
        p = self.server.provider
        split = urlsplit(self.path)
        self.route = split.path.rstrip("/")
        self.query = split.query
        self.bedrock = re.match(r"^.*/model/([^/]+)/(converse|converse-stream|invoke)$", split.path)
        self.gemini = re.search(r"/models/([^/:]+):(generateContent|streamGenerateContent|batchEmbedContents)$", self.route)
        self.vertex_claude = re.search(r"/publishers/anthropic/models/([^/:]+):(rawPredict|streamRawPredict)$", self.route)
        if self.route.endswith("/messages") or self.vertex_claude:
            self.wire = "anthropic"
        elif self.gemini:
            self.wire = "gemini"
        elif self.bedrock:
            self.wire = "bedrock"
        elif self.route.endswith("/v2/chat") or self.route.endswith("/v2/embed"):
            self.wire = "cohere"
        else:
            self.wire = "openai"
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers: dict[str, str] = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        p._record({"method": self.command, "path": split.path, "query": split.query,
                   "headers": headers, "body": body, "raw": raw})
        # A copy: handlers note path-borne fields (model, stream) without touching the record.
        self.req = dict(body) if isinstance(body, dict) else {}
        self.req_headers = headers
        behaviour = p._next_behaviour()
        try:
            self._apply(behaviour, raw, body)
        except _Reset:
            self._rst()
        except (ConnectionError, OSError):
            self.close_connection = True

    def _apply(self, behaviour: str, raw: bytes, body):
        kind, _, arg = behaviour.partition(":")
        if kind == "status":
            return self._send_error(int(arg), f"Fake {int(arg)} from {self.server.provider.name}")
        if kind == "reset":
            raise _Reset
        if kind == "stall":
            self._sleep(float(arg))
        self.behaviour = kind
        self.first_delay = float(arg) if kind == "delay_first_token" else 0.0

        # Validation like the real APIs (only on otherwise-normal requests).
        if raw and body is None:
            return self._send_error(400, "We could not parse the JSON body of your request.")
        if self.command == "GET" and self.route.endswith("/models"):
            return self._respond(self._models())
        if self.command != "POST":
            return self._not_found()
        azure = re.search(r"/openai/deployments/([^/]+)/", self.route)
        if azure:
            # Azure OpenAI: the deployment is in the path, the key in `api-key`, and every
            # call names an api-version.
            if "api-key" not in self.req_headers:
                return self._send_json(401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}})
            if "api-version=" not in self.query:
                return self._send_json(404, {"error": {"code": "404", "message": "Resource not found"}})
            self.req["model"] = azure.group(1)
        if self.route.startswith("/mistral/") and "stream_options" in self.req:
            # Mistral's API forbids unknown fields, stream_options included.
            return self._send_json(422, {"object": "error", "message": {"detail": [{
                "type": "extra_forbidden", "loc": ["body", "stream_options"],
                "msg": "Extra inputs are not permitted", "input": self.req["stream_options"]}]},
                "type": "invalid_request_error", "param": None, "code": None})
        if self.route.endswith("/chat/completions"):
            if "messages" not in self.req:
                return self._send_error(400, "Missing required parameter: 'messages'.")
            return self._respond(*self._openai_chat())
        if self.bedrock:
            return self._bedrock(raw)
        if self.wire == "cohere":
            return self._cohere()
        if self.gemini:
            return self._gemini(*self.gemini.groups())
        if self.vertex_claude:
            model, method = self.vertex_claude.groups()
            if "model" in self.req or self.req.get("anthropic_version") != "vertex-2023-10-16":
                return self._send_error(400, "anthropic_version: vertex-2023-10-16 is required and model must not be in the body")
            self.req["model"] = model
            self.req["stream"] = method == "streamRawPredict"
            return self._respond(*self._anthropic())
        if self.route.endswith("/images/generations"):
            if not isinstance(self.req.get("prompt"), str):
                return self._send_error(400, "Missing required parameter: 'prompt'.")
            n = self.req.get("n", 1)
            return self._respond({"created": int(time.time()), "data": [
                {"url": f"https://images.invalid/{self.server.provider.name}/{i}.png",
                 "revised_prompt": self.req["prompt"]} for i in range(n)]})
        if self.route.endswith("/embeddings"):
            if "input" not in self.req:
                return self._send_error(400, "Missing required parameter: 'input'.")
            return self._respond(self._embeddings())
        if self.route.endswith("/messages"):
            for field in ("max_tokens", "messages"):
                if field not in self.req:
                    return self._send_error(400, f"{field}: Field required")
            return self._respond(*self._anthropic())
        return self._not_found()

    def _not_found(self):
        self._send_error(404, f"Invalid URL ({self.command} {self.route})")

    def _send_error(self, status: int, message: str):
        extra = dict([self._request_id_header()])
        if status == 429:
            extra["retry-after"] = "1"
        if self.wire == "cohere":
            return self._send_json(status, {"id": str(uuid.uuid4()), "message": message}, extra)
        if self.wire == "bedrock":
            extra["x-amzn-ErrorType"] = _BEDROCK_ERRORS.get(status, "InternalServerException")
            return self._send_json(status, {"message": message}, extra)
        if self.wire == "gemini":
            rpc = _GEMINI_STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
            return self._send_json(status, {"error": {"code": status, "message": message, "status": rpc}}, extra)
        if self.wire == "anthropic":
            etype = _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
            obj = {"type": "error", "error": {"type": etype, "message": message}}
        else:
            etype = ("rate_limit_exceeded" if status == 429 else
                     "server_error" if status >= 500 else "invalid_request_error")
            obj = {"error": {"message": message, "type": etype, "param": None, "code": None}}
        self._send_json(status, obj, extra)

    def _respond(self, obj, events=None):
        """Send a JSON object, or (when the request streams) the SSE events."""
        if events is not None and self.req.get("stream") is True:
            return self._stream(events)
        data = json.dumps(obj).encode()
        b = self.behaviour
        if b == "delay_first_token":
            self._sleep(self.first_delay)
        if b in ("reset_after_headers", "cut_mid_stream", "truncate_stream"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if b != "reset_after_headers":
                self.wfile.write(data[: len(data) // 2])
            if b == "truncate_stream":
                self.close_connection = True  # FIN after a short body
                return
            time.sleep(_RST_GRACE)
            raise _Reset
        if b == "corrupt_stream":
            return self._send(200, b"{not json")
        self._send_json(200, obj, dict([self._request_id_header()]))

    def _stream(self, events: list[bytes]):
        delay = self.server.provider.stream_delay
        b = self.behaviour
        self._start_stream()
        if b == "reset_after_headers":
            time.sleep(_RST_GRACE)
            raise _Reset
        if b == "delay_first_token":
            self._sleep(self.first_delay)
        if b in ("cut_mid_stream", "truncate_stream"):
            events = events[:2]
        elif b == "corrupt_stream":
            bad = (_bedrock_event("contentBlockDelta", {"x": 1})[:-4] + b"\0\0\0\0"
                   if self.wire == "bedrock" else b"data: {not json\n\n")
            events = events[:1] + [bad]
        for i, ev in enumerate(events):
            if i and delay:
                time.sleep(delay)
            self._chunk(ev)
        if b == "cut_mid_stream":
            time.sleep(_RST_GRACE)
            raise _Reset
        self._end_chunks()

    # --- OpenAI -----------------------------------------------------------
    def _openai_chat(self):
        p = self.server.provider
        inp, out = p.usage
        model = self.req.get("model", "")
        cid, created = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time())
        tools = self.req.get("tools") or []
        tool_name = ((tools[0].get("function") or {}).get("name", "tool")
                     if tools and isinstance(tools[0], dict) else None)
        usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}
        finish = "tool_calls" if tools else "stop"

        message = {"role": "assistant", "content": None if tools else p.reply_text, "refusal": None}
        if tools:
            message["tool_calls"] = [{"id": "call_1", "type": "function",
                                      "function": {"name": tool_name, "arguments": _TOOL_ARGS}}]
        full = {"id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": finish}],
                "usage": usage}

        include_usage = bool((self.req.get("stream_options") or {}).get("include_usage"))

        def chunk(delta, finish_reason=None):
            c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": finish_reason}]}
            if include_usage:
                c["usage"] = None
            return c

        chunks = [chunk({"role": "assistant", "content": ""})]
        if tools:
            chunks.append(chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                 "function": {"name": tool_name, "arguments": ""}}]}))
            chunks += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                       for piece in _TOOL_ARGS_PIECES]
        else:
            chunks += [chunk({"content": piece}) for piece in _split3(p.reply_text)]
        chunks.append(chunk({}, finish))
        if self.route.startswith("/mistral/"):
            chunks[-1]["usage"] = usage  # Mistral: usage rides on the final chunk, always
        elif include_usage:
            chunks.append({"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": [], "usage": usage})
        events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
        events.append(b"data: [DONE]\n\n")
        return full, events

    def _embeddings(self):
        p = self.server.provider
        inp = self.req.get("input")
        if isinstance(inp, list) and inp and not all(isinstance(x, int) for x in inp):
            items = inp  # list of strings or of token arrays
        else:
            items = [inp]  # a string or a single token array
        b64 = self.req.get("encoding_format") == "base64"
        data = []
        for i, item in enumerate(items):
            vec = _fake_embedding(item)
            emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return {"object": "list", "data": data, "model": self.req.get("model", ""),
                "usage": {"prompt_tokens": p.usage[0], "total_tokens": p.usage[0]}}

    def _models(self):
        p = self.server.provider
        if "anthropic-version" in self.req_headers:
            data = [{"type": "model", "id": m, "display_name": m,
                     "created_at": "2025-01-01T00:00:00Z"} for m in p.models]
            return {"data": data, "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None}
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 1700000000,
                                            "owned_by": p.name} for m in p.models]}

    # --- Anthropic --------------------------------------------------------
    def _anthropic(self):
        p = self.server.provider
        inp, out = p.usage
        model = self.req.get("model", "")
        mid = "msg_" + uuid.uuid4().hex[:24]
        tools = self.req.get("tools") or []
        tool_name = tools[0].get("name", "tool") if tools and isinstance(tools[0], dict) else None
        stop_reason = "tool_use" if tools else "end_turn"
        if tools:
            block = {"type": "tool_use", "id": "toolu_1", "name": tool_name,
                     "input": json.loads(_TOOL_ARGS)}
        else:
            block = {"type": "text", "text": p.reply_text}
        full = {"id": mid, "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": inp, "output_tokens": out}}

        start_msg = dict(full, content=[], stop_reason=None,
                         usage={"input_tokens": inp, "output_tokens": 1})
        if tools:
            start_block = dict(block, input={})
            deltas = [{"type": "input_json_delta", "partial_json": s} for s in _TOOL_ARGS_PIECES]
        else:
            start_block = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": s} for s in _split3(p.reply_text)]
        seq = [{"type": "message_start", "message": start_msg},
               {"type": "content_block_start", "index": 0, "content_block": start_block},
               {"type": "ping"}]
        seq += [{"type": "content_block_delta", "index": 0, "delta": d} for d in deltas]
        seq += [{"type": "content_block_stop", "index": 0},
                {"type": "message_delta",
                 "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                 "usage": {"output_tokens": out}},
                {"type": "message_stop"}]
        events = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in seq]
        return full, events


    # --- Gemini (AI Studio and Vertex publishers/google) --------------------
    def _gemini(self, model: str, method: str):
        p = self.server.provider
        inp, out = p.usage
        if method == "batchEmbedContents":
            reqs = self.req.get("requests")
            if not isinstance(reqs, list) or any(r.get("model") != f"models/{model}" for r in reqs):
                return self._send_error(400, "* BatchEmbedContentsRequest.requests: each model must match the path")
            return self._respond({"embeddings": [
                {"values": _fake_embedding(" ".join(pt.get("text", "") for pt in r["content"]["parts"]))}
                for r in reqs]})
        unknown = set(self.req) - {"contents", "systemInstruction", "tools", "toolConfig",
                                   "generationConfig", "safetySettings", "cachedContent", "labels"}
        if unknown:
            return self._send_error(400, f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}": Cannot find field.')
        if not self.req.get("contents"):
            return self._send_error(400, "* GenerateContentRequest.contents: contents is not specified\n")
        if any(c.get("role") not in ("user", "model") for c in self.req["contents"]):
            return self._send_error(400, "Please use a valid role: user, model.")
        decls = [d for t in self.req.get("tools") or [] for d in t.get("functionDeclarations", [])]
        rid = uuid.uuid4().hex[:22]
        full_usage = {"promptTokenCount": inp, "candidatesTokenCount": out, "totalTokenCount": inp + out}
        partial_usage = {"promptTokenCount": inp, "totalTokenCount": inp}

        def chunk(parts, finish=None, usage=partial_usage):
            cand = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if finish:
                cand["finishReason"] = finish
            return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model, "responseId": rid}

        if decls:
            call = {"functionCall": {"name": decls[0]["name"], "args": json.loads(_TOOL_ARGS)}}
            full = chunk([call], "STOP", full_usage)
            chunks = [chunk([call]), chunk([{"text": ""}], "STOP", full_usage)]
        else:
            full = chunk([{"text": p.reply_text}], "STOP", full_usage)
            pieces = _split3(p.reply_text)
            chunks = [chunk([{"text": t}]) for t in pieces[:-1]]
            chunks.append(chunk([{"text": pieces[-1]}], "STOP", full_usage))
        events = [b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks]
        if method == "streamGenerateContent":
            if "alt=sse" not in self.query:
                return self._send_error(400, "this fake only streams with alt=sse")
            self.req["stream"] = True
        return self._respond(full, events)


    # --- Amazon Bedrock (Converse, ConverseStream, InvokeModel embeddings) ---
    def _bedrock(self, raw: bytes):
        p = self.server.provider
        inp, out = p.usage
        model = urllib.parse.unquote(self.bedrock.group(1))
        op = self.bedrock.group(2)
        h = self.req_headers
        if "authorization" not in h:
            return self._send_json(403, {"message": "Missing Authentication Token"},
                                   {"x-amzn-ErrorType": "MissingAuthenticationTokenException"})
        if p.aws_secret is not None and not _verify_sigv4("POST", self.bedrock.group(0), self.query, h, raw, p.aws_secret):
            return self._send_json(403, {"message": "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."},
                                   {"x-amzn-ErrorType": "InvalidSignatureException"})
        self.req["model"] = model
        if op == "invoke":
            if "inputText" in self.req:
                vec = _fake_embedding(self.req["inputText"])
                return self._respond({"embedding": vec, "inputTextTokenCount": inp})
            return self._respond({"embeddings": [_fake_embedding(t) for t in self.req.get("texts", [])],
                                  "id": str(uuid.uuid4()), "response_type": "embeddings_floats",
                                  "texts": self.req.get("texts", [])})
        msgs = self.req.get("messages")
        if not isinstance(msgs, list) or not msgs or msgs[0].get("role") != "user":
            return self._send_error(400, "A conversation must start with a user message. Try again with a conversation that starts with a user message.")
        tools = ((self.req.get("toolConfig") or {}).get("tools")) or []
        usage = {"inputTokens": inp, "outputTokens": out, "totalTokens": inp + out}
        if tools:
            name = tools[0]["toolSpec"]["name"]
            content = [{"toolUse": {"toolUseId": "tooluse_1", "name": name, "input": json.loads(_TOOL_ARGS)}}]
            stop = "tool_use"
            evs = [("messageStart", {"role": "assistant"}),
                   ("contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": name}}})]
            evs += [("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}})
                    for piece in _TOOL_ARGS_PIECES]
        else:
            content = [{"text": p.reply_text}]
            stop = "end_turn"
            evs = [("messageStart", {"role": "assistant"})]
            evs += [("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": t}})
                    for t in _split3(p.reply_text)]
        evs += [("contentBlockStop", {"contentBlockIndex": 0}),
                ("messageStop", {"stopReason": stop}),
                ("metadata", {"usage": usage, "metrics": {"latencyMs": 12}})]
        full = {"output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 12}}
        if op == "converse-stream":
            self.req["stream"] = True
        return self._respond(full, [_bedrock_event(n, o) for n, o in evs])


    # --- Cohere v2 (chat and embed) ------------------------------------------
    def _cohere(self):
        p = self.server.provider
        inp, out = p.usage
        if self.req_headers.get("authorization", "") == "":
            return self._send_json(401, {"message": "invalid api token"})
        if self.route.endswith("/v2/embed"):
            texts = self.req.get("texts") or []
            return self._respond({"id": str(uuid.uuid4()), "embeddings": {"float": [_fake_embedding(t) for t in texts]},
                                  "texts": texts, "meta": {"billed_units": {"input_tokens": inp}}})
        if not self.req.get("messages") or not self.req.get("model"):
            return self._send_error(400, "invalid request: message must be at least 1 token long or tool results must be specified.")
        tools = self.req.get("tools") or []
        usage = {"billed_units": {"input_tokens": inp, "output_tokens": out}, "tokens": {"input_tokens": inp, "output_tokens": out}}
        mid = str(uuid.uuid4())
        start = {"id": mid, "type": "message-start",
                 "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}
        if tools:
            name = tools[0]["function"]["name"]
            call = {"id": "get_weather_p0dage9q1nv4", "type": "function", "function": {"name": name, "arguments": _TOOL_ARGS}}
            full = {"id": mid, "finish_reason": "TOOL_CALL",
                    "message": {"role": "assistant", "tool_plan": "I will check.", "tool_calls": [call]}, "usage": usage}
            seq = [start, {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will check."}}},
                   {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": dict(call, function={"name": name, "arguments": ""})}}}]
            seq += [{"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}}}
                    for piece in _TOOL_ARGS_PIECES]
            seq += [{"type": "tool-call-end", "index": 0},
                    {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": usage}}]
        else:
            full = {"id": mid, "finish_reason": "COMPLETE",
                    "message": {"role": "assistant", "content": [{"type": "text", "text": p.reply_text}]}, "usage": usage}
            seq = [start, {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}]
            seq += [{"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": t}}}}
                    for t in _split3(p.reply_text)]
            seq += [{"type": "content-end", "index": 0},
                    {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}}]
        events = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in seq]
        return self._respond(full, events)


def _bedrock_frame(headers, payload: bytes) -> bytes:
    """One AWS event-stream frame: prelude (lengths + CRC), string headers, payload, CRC."""
    h = b""
    for name, value in headers:
        n, v = name.encode(), value.encode()
        h += bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
    prelude = struct.pack(">II", 12 + len(h) + len(payload) + 4, len(h))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    msg = prelude + h + payload
    return msg + struct.pack(">I", zlib.crc32(msg))


def _bedrock_event(event_type: str, obj) -> bytes:
    return _bedrock_frame([(":event-type", event_type), (":content-type", "application/json"),
                           (":message-type", "event")],
                          json.dumps(dict(obj, p="abcdefgh"), separators=(",", ":")).encode())


def _verify_sigv4(method, raw_path, query, headers, body, secret) -> bool:
    """Recompute an AWS SigV4 signature (service bedrock) the way AWS checks it."""
    auth = headers["authorization"]
    try:
        _akid, day, region, service, _ = auth.split("Credential=")[1].split(",")[0].split("/")
        signed = auth.split("SignedHeaders=")[1].split(",")[0]
        sig = auth.split("Signature=")[1]
        canon_uri = urllib.parse.quote(raw_path, safe="/~")  # the second encoding
        canon_headers = "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed.split(";"))
    except (IndexError, KeyError, ValueError):
        return False
    creq = "\n".join([method, canon_uri, query, canon_headers, signed, hashlib.sha256(body).hexdigest()])
    sts = "\n".join(["AWS4-HMAC-SHA256", headers.get("x-amz-date", ""), f"{day}/{region}/{service}/aws4_request",
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(k, sts.encode(), hashlib.sha256).hexdigest(), sig)


_BEDROCK_ERRORS = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
                   408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
                   500: "InternalServerException", 503: "ServiceUnavailableException"}

_GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                  404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                  503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class FakeProvider:
    """A scriptable fake OpenAI/Anthropic provider on a background thread."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0):
        self.name = name
        self.host = host
        self.port = port
        self.usage = (11, 7)  # (input, output) tokens reported
        self.reply_text = f"Hello from {name}"
        self.default_behaviour = "ok"
        self.stream_delay = 0.0  # seconds between stream events
        self.models = [f"{name}-chat", f"{name}-embed"]
        self.verbose = False  # log requests to stderr
        self.aws_secret: str | None = None  # when set, Bedrock requests must carry a valid SigV4
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests: list[dict] = []
        self._script: deque[str] = deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- lifecycle --------------------------------------------------------
    def start(self) -> "FakeProvider":
        """Bind (re-using self.port after a stop) and serve in the background."""
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        self._server = _Server((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=f"fake-provider-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection (wakes stalls)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with server.conns_lock:
            conns = list(server.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    # --- recording & scripting -------------------------------------------
    @property
    def requests(self) -> list[dict]:
        """Snapshot of the recorded requests (oldest first)."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests (the script queue is left alone)."""
        with self._lock:
            self._requests.clear()

    def reset(self) -> None:
        """Forget requests and queued behaviours; restore default settings."""
        with self._lock:
            self._requests.clear()
            self._script.clear()
        self.default_behaviour = "ok"
        self.stream_delay = 0.0
        self.usage = (11, 7)
        self.reply_text = f"Hello from {self.name}"

    def script(self, *behaviours: str) -> "FakeProvider":
        """Queue behaviours, consumed one per request (FIFO)."""
        for b in behaviours:
            if not _BEHAVIOUR_RE.match(b):
                raise ValueError(f"unknown behaviour {b!r}")
        with self._lock:
            self._script.extend(behaviours)
        return self

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[dict]:
        """Block until at least n requests were recorded; return them."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(f"{self.name}: {len(self._requests)} of {n} requests")
            return list(self._requests)

    def _record(self, entry: dict) -> None:
        with self._cond:
            self._requests.append(entry)
            self._cond.notify_all()

    def _next_behaviour(self) -> str:
        with self._lock:
            return self._script.popleft() if self._script else self.default_behaviour


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Fake OpenAI/Anthropic provider")
    ap.add_argument("--name", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--stream-delay", type=float, default=0.0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    provider = FakeProvider(args.name, args.host, args.port)
    provider.stream_delay, provider.verbose = args.stream_delay, args.verbose
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    provider.start()
    print(f"fake provider {args.name} listening on {provider.url}", file=sys.stderr, flush=True)
    print("ready", flush=True)
    done.wait()
    provider.stop()


if __name__ == "__main__":
    main()
