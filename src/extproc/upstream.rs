//! The provider-side exchange: one per attempt, on the cluster Envoy picked for it.
//!
//! - request headers: find the request and which plan position the chosen endpoint serves;
//! - request body: translate the client body (parsed once downstream) for this provider, set
//!   path, authority and credentials;
//! - response headers: held back (Envoy sends body chunks without waiting) until the body shows
//!   the attempt really produced something. Until we release them the router still counts the
//!   attempt as "awaiting headers", so a reset or timeout before the first token falls back;
//! - response body: translate chunk by chunk (SSE) or whole (JSON), extract usage.

use super::downstream::{REQUEST_ID, client_headers};
use super::state::{AttemptState, RequestState};
use super::{
    BodySendMode, Mutation, Replies, Shared, header, immediate, request_body_reply,
    request_headers_reply, response_body_reply, response_body_reply_with, response_headers_reply,
    unix_now, with_response_body_mode,
};
use crate::envoy::{HOST_METADATA_ATTR, METADATA_NS};
use crate::errors::{Dialect, Rejection};
use crate::record::BodyCapture;
use crate::translate::{
    self, Inbound, RequestOptions, StreamOutcome, StreamTranslator, TranslateError, Wire,
    inbound_anthropic,
};
use envoy_types::pb::envoy::service::ext_proc::v3 as pb;
use pb::processing_request::Request as Msg;
use std::sync::Arc;
use std::time::Instant;

/// Bound on a held, not-yet-released response (non-stream bodies, error bodies, stream prefix).
const MAX_HELD: usize = 64 << 20;

enum Mode {
    /// Before the response, or the attempt is being discarded by Envoy (retry follows).
    Pass,
    /// Streamed success: translate events; headers held until the first token.
    Stream(Box<dyn StreamTranslator + Send>),
    /// Whole success body: accumulate, translate at the end.
    Whole,
    /// Final error response: accumulate the provider's error, answer in our shape.
    FinalError(u16),
}

pub struct UpstreamExchange {
    shared: Arc<Shared>,
    state: Option<Arc<RequestState>>,
    attempt: usize,
    wire: Wire,
    inbound: Inbound,
    dialect: Dialect,
    /// The model this attempt asks for (Anthropic-dialect responses name it).
    model: String,
    mode: Mode,
    /// Response headers not yet released, with the number of body chunks queued behind them.
    held_headers: Option<Mutation>,
    held_chunks: usize,
    held: Vec<u8>,
    ended: bool,
    /// Set once the attempt is registered in the request state.
    live: bool,
    /// `provider/model`, for health reports.
    backend: String,
    policy: crate::health::Policy,
    /// What this attempt sent the client, for the record (when bodies are logged). Kept here,
    /// not in the shared state, so a streamed chunk costs no lock; handed over on drop.
    capture: Option<BodyCapture>,
    /// Run by the downstream exchange for a direct (single-attempt, non-stream) request: Envoy
    /// waits for every reply, the response body comes BUFFERED, and the `x-switchyard-*`
    /// headers go out with the held response headers.
    direct: bool,
    /// The client asked for base64 embeddings from a provider that answers floats.
    base64_embeddings: bool,
}

impl UpstreamExchange {
    pub fn new(shared: Arc<Shared>) -> UpstreamExchange {
        UpstreamExchange {
            shared,
            state: None,
            attempt: 0,
            wire: Wire::OpenAi,
            inbound: Inbound::ChatCompletions,
            dialect: Dialect::OpenAi,
            model: String::new(),
            mode: Mode::Pass,
            held_headers: None,
            held_chunks: 0,
            held: Vec::new(),
            ended: false,
            live: false,
            backend: String::new(),
            policy: crate::health::Policy::default(),
            capture: None,
            direct: false,
            base64_embeddings: false,
        }
    }

    /// The only attempt of a direct request, started by the downstream exchange once routed.
    pub fn direct(shared: Arc<Shared>, state: Arc<RequestState>) -> Result<Self, Rejection> {
        let mut a = UpstreamExchange::new(shared);
        a.direct = true;
        a.begin(state, 0)?;
        Ok(a)
    }

    /// Feed the attempt's outcome to backend health (and the cooldown metric).
    fn report_health(&self, ok: bool) {
        if self
            .shared
            .health
            .report(&self.backend, ok, self.policy, Instant::now())
        {
            self.shared
                .telemetry
                .metrics()
                .backend_cooldown(&self.backend);
        }
    }

    /// The request state, once this attempt is registered in it (so `self.attempt` is valid).
    fn live_state(&self) -> Option<Arc<RequestState>> {
        if self.live { self.state.clone() } else { None }
    }

    pub fn fail(&self, r: Rejection) -> Replies {
        let mut m = Mutation::default();
        m.set("content-type", "application/json");
        let body = r.body_in(self.dialect);
        if let Some(s) = &self.state {
            let mut inner = s.lock();
            if let Some(a) = inner.attempts.get_mut(self.attempt) {
                a.error = Some(r.message.clone());
                a.committed = true;
            }
            inner.capture_response(&body);
            inner.rejection = Some(r.clone());
            drop(inner);
            if self.direct {
                client_headers(s, r.status, &mut m);
            }
        }
        vec![immediate(r.status, body, m)]
    }

    fn on_request_headers(
        &mut self,
        h: &pb::HttpHeaders,
        endpoint_position: Option<usize>,
    ) -> Replies {
        let Some(state) = header(h, REQUEST_ID).and_then(|id| self.shared.registry.get(id)) else {
            tracing::warn!(position = ?endpoint_position, "upstream attempt for an unknown request");
            return self.fail(Rejection::internal(
                "request state not found for upstream attempt",
            ));
        };
        // The endpoint Envoy chose says which position of the chain this attempt serves; the
        // attempt count is the fallback (the same when every priority level is healthy).
        let by_count = header(h, "x-envoy-attempt-count")
            .and_then(|c| c.parse::<usize>().ok())
            .map(|c| c.saturating_sub(1));
        let position = endpoint_position.or(by_count).unwrap_or(0);
        match self.begin(state, position) {
            Ok(()) => vec![request_headers_reply(Mutation::default())],
            Err(r) => self.fail(r),
        }
    }

    /// Register this attempt, serving `position` of the request's plan, in the request state.
    fn begin(&mut self, state: Arc<RequestState>, position: usize) -> Result<(), Rejection> {
        self.state = Some(state.clone());
        let mut inner = state.lock();
        let (Some(plan), Some(snap)) = (&inner.plan, &inner.snapshot) else {
            return Err(Rejection::internal("upstream attempt before routing"));
        };
        if position >= plan.attempts.len() {
            return Err(Rejection::internal(format!(
                "attempt position {position} is outside this request's plan"
            )));
        }
        let target = &plan.attempts[position].target;
        self.wire = snap.providers[target.provider]
            .kind
            .wire(&target.provider_model);
        self.inbound = inner.inbound.unwrap_or(Inbound::ChatCompletions);
        self.dialect = inner.dialect;
        self.model = target.provider_model.clone();
        let attempt = AttemptState {
            position,
            provider: snap.providers[target.provider].id.clone(),
            model: target.provider_model.clone(),
            started: Instant::now(),
            ended: None,
            status: None,
            error: None,
            committed: false,
        };
        self.backend = crate::health::backend_key(&attempt.provider, &attempt.model);
        self.policy = snap.health;
        self.capture = inner.body_cap.map(BodyCapture::new);
        inner.attempts.push(attempt);
        self.attempt = inner.attempts.len() - 1;
        self.live = true;
        Ok(())
    }

    fn on_request_body(&mut self) -> Replies {
        if self.live_state().is_none() {
            return vec![request_body_reply(Mutation::default(), None, false)];
        }
        match self.request() {
            Ok((mut m, body)) => {
                // Routing instructions for Envoy's router, not for the provider.
                for h in [
                    crate::envoy::CLUSTER_HEADER,
                    "x-envoy-max-retries",
                    "x-envoy-upstream-rq-per-try-timeout-ms",
                    "x-envoy-attempt-count",
                    "x-envoy-expected-rq-timeout-ms",
                ] {
                    m.remove(h);
                }
                vec![request_body_reply(m, Some(body), false)]
            }
            Err(r) => self.fail(r),
        }
    }

    /// The provider request of this (registered) attempt: header edits and the body.
    pub fn request(&mut self) -> Result<(Mutation, Vec<u8>), Rejection> {
        let Some(state) = self.live_state() else {
            return Err(Rejection::internal("upstream attempt before routing"));
        };
        let inner = state.lock();
        let (Some(plan), Some(snap), Some(body)) = (&inner.plan, &inner.snapshot, &inner.body)
        else {
            return Err(Rejection::internal("upstream attempt before routing"));
        };
        let position = inner.attempts[self.attempt].position;
        let target = &plan.attempts[position].target;
        let provider = &snap.providers[target.provider];
        let opts = RequestOptions {
            model: &target.provider_model,
            default_max_tokens: target
                .max_output_tokens
                .unwrap_or(provider.default_max_tokens),
        };
        self.base64_embeddings = self.inbound == Inbound::Embeddings
            && self.wire != Wire::OpenAi
            && translate::embeddings::wants_base64(body);
        let translated = match (&inner.original_body, self.wire) {
            // Anthropic client, Anthropic provider: the body as sent, model swapped.
            (Some(original), Wire::Anthropic) => {
                inbound_anthropic::passthrough_request(original, &opts)
            }
            _ => translate::request(self.inbound, self.wire, body, &opts),
        };
        let mut up = translated.map_err(|e| Rejection::from(&e))?;
        super::providers::adapt(provider, &target.provider_model, &mut up);
        let mut m = Mutation::default();
        super::providers::address(provider, &target.provider_model, &up, &mut m);
        // W3C trace context: the provider's span is a child of this attempt's span.
        if let Some(trace) = &state.trace {
            m.set("traceparent", trace.traceparent_for_attempt(self.attempt));
        }
        // We must read the response to translate it and count tokens.
        m.remove("accept-encoding");
        Ok((m, up.body))
    }

    pub fn on_response_headers(&mut self, h: &pb::HttpHeaders) -> Replies {
        let Some(state) = self.live_state() else {
            return vec![response_headers_reply(Mutation::default())];
        };
        let status = header(h, ":status")
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(502);
        let content_type = header(h, "content-type").unwrap_or("");
        let mut inner = state.lock();
        let plan_len = inner.plan.as_ref().map_or(1, |p| p.attempts.len());
        let (stream, wants_usage) = (inner.stream, inner.client_wants_usage);
        let attempt = &mut inner.attempts[self.attempt];
        attempt.status = Some(status);
        let retriable = status == 429 || status >= 500;
        // The backend answered: a 429/5xx counts against its health, anything else for it.
        self.report_health(!retriable);
        let last = attempt.position + 1 >= plan_len;
        let mut m = Mutation::default();
        if status >= 400 {
            attempt.error = Some(format!("status {status}"));
            if retriable && !last {
                // Envoy retries this one on the next cluster of the chain; let it through untouched.
                attempt.ended = Some(Instant::now());
                self.mode = Mode::Pass;
                return vec![response_headers_reply(m)];
            }
            attempt.committed = true;
            self.mode = Mode::FinalError(status);
        } else if stream
            && (content_type.starts_with("text/event-stream")
                // Bedrock's ConverseStream: binary AWS event-stream frames.
                || content_type.starts_with("application/vnd.amazon.eventstream"))
        {
            let translator: Box<dyn StreamTranslator + Send> = match (self.dialect, self.wire) {
                (Dialect::OpenAi, _) => {
                    translate::stream(self.inbound, self.wire, wants_usage, unix_now())
                }
                (Dialect::Anthropic, Wire::Anthropic) => {
                    Box::new(inbound_anthropic::AnthropicPassthroughStream::new())
                }
                (Dialect::Anthropic, _) => Box::new(inbound_anthropic::AnthropicOut::new(
                    translate::stream(self.inbound, self.wire, true, unix_now()),
                    &self.model,
                )),
            };
            self.mode = Mode::Stream(translator);
            m.set("content-type", "text/event-stream");
        } else {
            self.mode = Mode::Whole;
            m.set("content-type", "application/json");
        }
        drop(inner);
        m.remove("content-length");
        for name in [
            "openai-organization",
            "openai-project",
            "anthropic-organization-id",
            "set-cookie",
        ] {
            m.remove(name);
        }
        if h.end_of_stream {
            return self.release(m, Vec::new(), true);
        }
        self.held_headers = Some(m);
        if self.direct {
            // Envoy waits for this reply; the whole body comes next, and the held headers go
            // out with its reply (header edits on a BUFFERED body apply).
            return vec![with_response_body_mode(
                response_headers_reply(Mutation::default()),
                BodySendMode::Buffered,
            )];
        }
        vec![]
    }

    /// Release held headers (committing this attempt) and answer every queued chunk; the
    /// translated output rides on the last one.
    fn release(&mut self, mut m: Mutation, output: Vec<u8>, end_of_stream: bool) -> Replies {
        if let Some(state) = self.live_state() {
            let mut inner = state.lock();
            let status = match &self.mode {
                Mode::FinalError(s) => Some(client_status(*s, inner.attempts.len())),
                _ => None,
            };
            if let Some(s) = status {
                m.set(":status", s.to_string());
            }
            let a = &mut inner.attempts[self.attempt];
            let to_client = status.or(a.status).unwrap_or(502);
            a.committed = true;
            if status.is_none() {
                // Released on the first token (or the whole body): the backend's TTFT.
                let ms = a.started.elapsed().as_secs_f64() * 1e3;
                self.shared.health.observe_latency(&self.backend, ms);
            }
            if end_of_stream {
                a.ended = Some(Instant::now());
            }
            drop(inner);
            if self.direct {
                client_headers(&state, to_client, &mut m);
            }
        }
        if self.direct && self.held_chunks > 0 {
            // The one BUFFERED body: its reply carries the held headers.
            self.held_chunks = 0;
            return vec![self.client_chunk(m, output)];
        }
        let mut out = vec![response_headers_reply(m)];
        if self.held_chunks > 0 {
            for _ in 1..self.held_chunks {
                out.push(response_body_reply(Some(Vec::new())));
            }
            out.push(self.client_chunk(Mutation::default(), output));
        }
        self.held_chunks = 0;
        out
    }

    /// A chunk of the response the client receives (translated), noted for the record.
    fn client_chunk(&mut self, m: Mutation, chunk: Vec<u8>) -> pb::ProcessingResponse {
        if let Some(c) = &mut self.capture {
            c.push(&chunk);
        }
        response_body_reply_with(m, Some(chunk))
    }

    pub fn on_response_body(&mut self, b: &pb::HttpBody) -> Replies {
        let Some(state) = self.live_state() else {
            return vec![response_body_reply(None)];
        };
        let eos = b.end_of_stream;
        match &mut self.mode {
            Mode::Pass => vec![response_body_reply(None)],
            Mode::Stream(tr) => {
                let mut out = std::mem::take(&mut self.held);
                tr.feed(&b.body, &mut out);
                let first = tr.first_token_seen();
                if first {
                    let mut inner = state.lock();
                    inner.first_token.get_or_insert_with(Instant::now);
                }
                let outcome = if eos { Some(tr.finish(&mut out)) } else { None };
                if let Some(o) = &outcome {
                    finish_stream(&state, self.attempt, tr.usage(), o);
                    self.ended = true;
                }
                if let Some(m) = self.held_headers.take() {
                    self.held_chunks += 1;
                    if first || eos || out.len() > MAX_HELD {
                        return self.release(m, out, eos);
                    }
                    self.held_headers = Some(m);
                    self.held = out;
                    return vec![];
                }
                vec![self.client_chunk(Mutation::default(), out)]
            }
            Mode::Whole | Mode::FinalError(_) => {
                if self.held.len() + b.body.len() <= MAX_HELD {
                    self.held.extend_from_slice(&b.body);
                }
                self.held_chunks += 1;
                if !eos {
                    return if self.held_headers.is_some() {
                        vec![]
                    } else {
                        vec![response_body_reply(Some(Vec::new()))]
                    };
                }
                let out = self.finish_whole(&state);
                match self.held_headers.take() {
                    Some(m) => self.release(m, out, true),
                    None => vec![self.client_chunk(Mutation::default(), out)],
                }
            }
        }
    }

    fn finish_whole(&mut self, state: &RequestState) -> Vec<u8> {
        self.ended = true;
        let body = std::mem::take(&mut self.held);
        let mut inner = state.lock();
        inner.finished = Some(Instant::now());
        let attempts = inner.attempts.len();
        match self.mode {
            Mode::FinalError(status) => {
                let e = translate::provider_error(self.wire, status, &body);
                inner.attempts[self.attempt].error = Some(e.message.clone());
                final_error(status, attempts, &e.message).body_in(self.dialect)
            }
            _ => match self.translate_whole(&body) {
                Ok((out, usage)) => {
                    inner.usage = usage;
                    inner.first_token.get_or_insert_with(Instant::now);
                    out
                }
                Err(e) => {
                    // The 200 is still held, so the client gets an honest 502 instead.
                    let r = Rejection::from(&e);
                    inner.attempts[self.attempt].error = Some(r.message.clone());
                    self.mode = Mode::FinalError(502);
                    r.body_in(self.dialect)
                }
            },
        }
    }
}

impl UpstreamExchange {
    /// A whole 2xx provider body in the client's dialect, with its usage.
    fn translate_whole(&self, body: &[u8]) -> Result<(Vec<u8>, translate::Usage), TranslateError> {
        match (self.dialect, self.wire) {
            (Dialect::OpenAi, _) if self.base64_embeddings => {
                let (list, usage) = translate::response(self.inbound, self.wire, body, unix_now())?;
                Ok((translate::embeddings::to_base64(&list)?, usage))
            }
            (Dialect::OpenAi, _) => translate::response(self.inbound, self.wire, body, unix_now()),
            (Dialect::Anthropic, Wire::Anthropic) => inbound_anthropic::passthrough_response(body),
            (Dialect::Anthropic, _) => {
                let (openai, _) = translate::response(self.inbound, self.wire, body, unix_now())?;
                inbound_anthropic::from_openai_response(&openai, &self.model)
            }
        }
    }
}

fn finish_stream(
    state: &RequestState,
    attempt: usize,
    usage: translate::Usage,
    outcome: &StreamOutcome,
) {
    let mut inner = state.lock();
    inner.usage = usage;
    inner.finished = Some(Instant::now());
    let a = &mut inner.attempts[attempt];
    a.ended = Some(Instant::now());
    if let StreamOutcome::Failed(reason) = outcome {
        a.error = Some(reason.clone());
        inner.failure = Some(reason.clone());
    }
}

/// `switchyard.position` from the chosen endpoint's metadata. Envoy sends the Metadata
/// attribute in protobuf text format, e.g. `filter_metadata { key: "switchyard" value { fields
/// { key: "position" value { number_value: 1 } } … } }`.
fn endpoint_position(
    attrs: &std::collections::HashMap<String, envoy_types::pb::google::protobuf::Struct>,
) -> Option<usize> {
    use envoy_types::pb::google::protobuf::value::Kind;
    let value = attrs
        .values()
        .find_map(|s| s.fields.get(HOST_METADATA_ATTR))?;
    match &value.kind {
        Some(Kind::StringValue(text)) => {
            let ns = text.find(&format!("key: \"{METADATA_NS}\""))?;
            let rest = &text[ns..];
            let at = rest.find("key: \"position\" value { number_value: ")?;
            let digits: String = rest[at..]
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(|c| c.is_ascii_digit())
                .collect();
            digits.parse().ok()
        }
        _ => None,
    }
}

/// What the client sees when the last attempt failed with `status`: the provider's 4xx (its
/// request was bad) and 429 pass through; server errors become 502.
fn client_status(status: u16, attempts: usize) -> u16 {
    match status {
        429 if attempts == 1 => 429,
        400..=499 if status != 429 && status != 401 && status != 403 => status,
        _ => 502,
    }
}

fn final_error(status: u16, attempts: usize, provider_message: &str) -> Rejection {
    match client_status(status, attempts) {
        429 => Rejection::new(
            429,
            "rate_limit_error",
            "rate_limited",
            format!("Provider rate limit: {provider_message}"),
        ),
        502 => Rejection::all_failed(&format!("provider returned {status}: {provider_message}")),
        s => Rejection::new(
            s,
            "invalid_request_error",
            "provider_rejected",
            provider_message.to_string(),
        ),
    }
}

impl UpstreamExchange {
    pub fn on_message(&mut self, msg: pb::ProcessingRequest) -> Replies {
        let t = Instant::now();
        // Log lines of this attempt name the request (and its trace).
        let _span = self.state.as_ref().map(|s| s.span.clone().entered());
        let position = endpoint_position(&msg.attributes);
        let Some(msg) = msg.request else {
            return vec![];
        };
        let out = match &msg {
            Msg::RequestHeaders(h) => self.on_request_headers(h, position),
            Msg::RequestBody(_) => self.on_request_body(),
            Msg::ResponseHeaders(h) => self.on_response_headers(h),
            Msg::ResponseBody(b) => self.on_response_body(b),
            Msg::RequestTrailers(_) | Msg::ResponseTrailers(_) => vec![],
        };
        if let Some(s) = &self.state {
            s.add_overhead(t.elapsed());
        }
        out
    }
}

impl Drop for UpstreamExchange {
    /// The stream closed. If the response had not ended, the attempt broke: before release it
    /// was a failure Envoy retries; after release the client's response was cut.
    fn drop(&mut self) {
        let Some(state) = self.live_state() else {
            return;
        };
        // Only the committed attempt answered the client; the others captured nothing.
        if let Some(c) = self.capture.take().filter(|c| !c.is_empty()) {
            state.lock().response_body = Some(c.finish());
        }
        if self.ended {
            return;
        }
        let mut inner = state.lock();
        let Some(a) = inner.attempts.get_mut(self.attempt) else {
            return;
        };
        if a.ended.is_some() {
            return;
        }
        a.ended = Some(Instant::now());
        let committed = a.committed;
        // No complete response: connect failure, reset, timeout, or a stream cut.
        self.report_health(false);
        let reason = match (a.status, committed) {
            (None, _) => "no response (connect failure, reset or timeout)".to_string(),
            (Some(s), false) => format!("status {s}: connection lost before the first token"),
            (Some(_), true) => "upstream connection lost mid-response".to_string(),
        };
        a.error.get_or_insert(reason.clone());
        if committed {
            inner.failure.get_or_insert(reason);
            inner.finished.get_or_insert_with(Instant::now);
        } else if self.direct && a.status.is_some() {
            // A direct attempt's body is held by Envoy until complete; a reset before then makes
            // the router answer the client itself (502, `UR`/`UC`, with our error shape), a reply
            // this stream no longer sees. (A client leaving in that moment looks the same.)
            inner.client_status.get_or_insert(502);
            inner.finished.get_or_insert_with(Instant::now);
        }
    }
}
