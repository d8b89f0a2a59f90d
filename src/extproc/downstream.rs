//! The listener-side exchange: one per client request.
//!
//! - request headers: classify the endpoint, authenticate, strip client-sent internal headers,
//!   reject early (401/404/405/413) before any body is read;
//! - request body (buffered): parse once, route, name the cluster chain, set retry budget and
//!   per-try timeout for Envoy; the body itself is left as sent (attempts translate it);
//! - response headers: add the `x-switchyard-*` headers the client sees.
//!
//! A *direct* request (one attempt, not streamed, chat) skips the per-attempt filter: this
//! exchange runs its only attempt itself (`UpstreamExchange::direct`), translating the request
//! in the body reply and the response, asked for BUFFERED, on the way back. That is one gRPC
//! stream and four messages per request instead of two streams and six.

use super::state::RequestState;
use super::upstream::UpstreamExchange;
use super::{
    Mutation, Replies, Shared, header, header_names, immediate, request_body_reply,
    request_headers_reply, response_headers_reply,
};
use crate::auth::{KeyHash, presented_key};
use crate::envoy::{CLUSTER_HEADER, CODE_DETAILS_ATTR, chain_cluster, direct_cluster};
use crate::errors::{Dialect, Rejection};
use crate::routing::{RequestAttrs, plan};
use crate::translate::{Inbound, inbound_anthropic};
use envoy_types::pb::envoy::service::ext_proc::v3 as pb;
use pb::processing_request::Request as Msg;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Response header naming the request (and its record).
pub const RESPONSE_REQUEST_ID: &str = "x-switchyard-request-id";
/// The request id travels upstream as `x-request-id`, which Envoy forwards anyway; attempts
/// find the request state by it. We overwrite it, so a client cannot pick another request's.
pub const REQUEST_ID: &str = "x-request-id";

pub struct DownstreamExchange {
    shared: Arc<Shared>,
    state: Option<Arc<RequestState>>,
    /// Body bytes seen so far, for requests without content-length.
    body_len: u64,
    /// `x-switchyard-tags`, parsed (rule attributes and record tags).
    tags: Vec<(String, String)>,
    /// Request headers, kept only when the key has rules that may test them.
    headers: Vec<(String, String)>,
    /// The only attempt of a direct request, run by this exchange.
    direct: Option<UpstreamExchange>,
}

impl DownstreamExchange {
    pub fn new(shared: Arc<Shared>) -> DownstreamExchange {
        DownstreamExchange {
            shared,
            state: None,
            body_len: 0,
            tags: Vec::new(),
            headers: Vec::new(),
            direct: None,
        }
    }

    fn reject(&self, state: &RequestState, r: Rejection) -> Replies {
        let mut m = Mutation::default();
        m.set("content-type", "application/json");
        m.set(RESPONSE_REQUEST_ID, state.id.clone());
        if let Some(secs) = r.retry_after {
            m.set("retry-after", secs.to_string());
        }
        let mut inner = state.lock();
        let body = r.body_in(inner.dialect);
        let status = r.status;
        inner.capture_response(&body);
        inner.rejection = Some(r);
        drop(inner);
        vec![immediate(status, body, m)]
    }

    async fn on_request_headers(&mut self, h: &pb::HttpHeaders) -> Replies {
        let trace = self.shared.telemetry.begin(header(h, "traceparent"));
        let state = Arc::new(RequestState::new(
            self.shared.next_request_id(),
            self.shared.sink.clone(),
            self.shared.store.clone(),
            self.shared.telemetry.clone(),
            trace,
        ));
        self.state = Some(state.clone());
        let snap = self.shared.live.load_full();

        let method = header(h, ":method").unwrap_or("");
        let full_path = header(h, ":path").unwrap_or("/");
        let path = full_path.split('?').next().unwrap_or("/");
        {
            let mut inner = state.lock();
            inner.endpoint = path.to_string();
            inner.body_cap = snap.records.body_cap();
        }
        let inbound = match path {
            "/v1/chat/completions" | "/chat/completions" => Some(Inbound::ChatCompletions),
            // Anthropic Messages: answered in Anthropic's shapes, routed like a chat.
            "/v1/messages" | "/messages" => {
                state.lock().dialect = Dialect::Anthropic;
                Some(Inbound::ChatCompletions)
            }
            "/v1/embeddings" | "/embeddings" => Some(Inbound::Embeddings),
            "/v1/images/generations" | "/images/generations" => Some(Inbound::Images),
            "/v1/models" | "/models" => None,
            _ => return self.reject(&state, Rejection::not_found_path(path)),
        };
        let expected = if inbound.is_some() { "POST" } else { "GET" };
        if method != expected {
            return self.reject(&state, Rejection::method_not_allowed(method, path));
        }

        let Some(key) = presented_key(header(h, "authorization"), header(h, "x-api-key")) else {
            return self.reject(&state, Rejection::missing_key());
        };
        // Static keys (config) first; then dynamic keys, looked up in the store on every
        // request so a revocation holds on the next request on every replica.
        let principal = match snap.keys.get(&KeyHash::of(key)) {
            Some(p) => p.clone(),
            None => match self.shared.store.lookup(key).await {
                Ok(Some(info)) => match crate::auth::Principal::from_store(info, &snap) {
                    Ok(p) => Arc::new(p),
                    Err(errors) => {
                        let why = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>();
                        tracing::error!(parent: &state.span, errors = ?why, "a dynamic key's routing no longer validates");
                        return self.reject(
                            &state,
                            Rejection::internal(format!(
                                "this key's routing configuration no longer matches the gateway's catalog: {}",
                                why.join("; ")
                            )),
                        );
                    }
                },
                Ok(None) => return self.reject(&state, Rejection::unknown_key()),
                Err(e) => {
                    tracing::warn!(parent: &state.span, error = %e, "dynamic key lookup failed");
                    return self.reject(&state, Rejection::store_unavailable());
                }
            },
        };
        {
            let mut inner = state.lock();
            inner.key = Some(principal.clone());
            inner.inbound = inbound;
            inner.session_id = header(h, "x-session-id").map(str::to_string);
        }
        // Tags are the one client-sent x-switchyard-* header we read: as rule attributes and
        // record labels, never as routing instructions. Read here, stripped below.
        if let Some(t) = header(h, "x-switchyard-tags") {
            self.tags = crate::routing::rules::parse_tags(t);
            state.lock().tags = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        }
        if principal
            .routing
            .as_ref()
            .is_some_and(|r| r.active && !r.rules.is_empty())
        {
            self.headers = h
                .headers
                .iter()
                .flat_map(|m| m.headers.iter())
                .filter(|v| !v.key.starts_with(':'))
                .map(|v| {
                    let value = if v.raw_value.is_empty() {
                        v.value.clone()
                    } else {
                        String::from_utf8_lossy(&v.raw_value).into_owned()
                    };
                    (v.key.to_ascii_lowercase(), value)
                })
                .collect();
        }

        let Some(_) = inbound else {
            let anthropic = header(h, "anthropic-version").is_some();
            return self.list_models(&state, &snap, &principal, anthropic);
        };
        if let Some(len) = header(h, "content-length").and_then(|v| v.parse::<u64>().ok())
            && len > snap.limits.max_body_bytes
        {
            return self.reject(&state, Rejection::too_large(snap.limits.max_body_bytes));
        }
        if h.end_of_stream {
            return self.reject(
                &state,
                Rejection::malformed("A JSON request body is required"),
            );
        }
        self.shared.registry.insert(&state);

        // The client's key and anything that could steer routing never travel further.
        let mut m = Mutation::default();
        for name in header_names(h) {
            if name.starts_with("x-switchyard-") || name.starts_with("x-envoy-") {
                m.remove(name);
            }
        }
        m.remove("authorization");
        m.remove("x-api-key");
        m.set(REQUEST_ID, state.id.clone());
        vec![request_headers_reply(m)]
    }

    fn list_models(
        &self,
        state: &RequestState,
        snap: &crate::config::Snapshot,
        key: &crate::auth::Principal,
        anthropic: bool,
    ) -> Replies {
        let mut names: Vec<(&String, &str)> = Vec::new();
        for name in &snap.model_order {
            let m = &snap.models[name];
            if m.enabled && key.may_use(name) {
                names.push((name, &snap.providers[m.provider].id));
            }
        }
        let mut groups: Vec<&String> = snap.groups.keys().filter(|g| key.may_use(g)).collect();
        groups.sort();
        names.extend(groups.into_iter().map(|g| (g, "switchyard")));
        // The Anthropic SDK (it sends `anthropic-version`) reads Anthropic's list shape.
        let list = if anthropic {
            let data: Vec<serde_json::Value> = names
                .iter()
                .map(|(id, _)| serde_json::json!({ "type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z" }))
                .collect();
            serde_json::json!({ "data": data, "has_more": false, "first_id": names.first().map(|n| n.0), "last_id": names.last().map(|n| n.0) })
        } else {
            let data: Vec<serde_json::Value> = names
                .iter()
                .map(|(id, owner)| serde_json::json!({ "id": id, "object": "model", "created": 0, "owned_by": owner }))
                .collect();
            serde_json::json!({ "object": "list", "data": data })
        };
        let body = serde_json::to_vec(&list).unwrap_or_default();
        let mut m = Mutation::default();
        m.set("content-type", "application/json");
        m.set(RESPONSE_REQUEST_ID, state.id.clone());
        let mut inner = state.lock();
        inner.client_status = Some(200);
        inner.capture_response(&body);
        drop(inner);
        vec![immediate(200, body, m)]
    }

    async fn on_request_body(&mut self, b: &pb::HttpBody) -> Replies {
        let Some(state) = self.state.clone() else {
            return vec![request_body_reply(Mutation::default(), None, false)];
        };
        let snap = self.shared.live.load_full();
        // The body exactly as the client sent it (even one rejected below), before any parse.
        state.lock().capture_request(&b.body);
        self.body_len += b.body.len() as u64;
        if self.body_len > snap.limits.max_body_bytes {
            return self.reject(&state, Rejection::too_large(snap.limits.max_body_bytes));
        }
        let body: serde_json::Value = match serde_json::from_slice(&b.body) {
            Ok(v) => v,
            Err(e) => {
                return self.reject(
                    &state,
                    Rejection::malformed(format!("Could not parse the JSON body: {e}")),
                );
            }
        };
        if !body.is_object() {
            return self.reject(
                &state,
                Rejection::malformed("The request body must be a JSON object"),
            );
        }
        // An Anthropic Messages body is routed in its OpenAI form; the original is kept for
        // Anthropic providers.
        let mut original = None;
        let body = if state.lock().dialect == Dialect::Anthropic {
            match inbound_anthropic::to_openai(&body) {
                Ok(openai) => {
                    original = Some(Arc::new(body));
                    openai
                }
                Err(e) => return self.reject(&state, Rejection::from(&e)),
            }
        } else {
            body
        };
        let model = match body.get("model") {
            Some(serde_json::Value::String(m)) if !m.is_empty() => m.clone(),
            Some(_) => {
                return self.reject(
                    &state,
                    Rejection::malformed("`model` must be a non-empty string")
                        .with_param(Some("model".into())),
                );
            }
            None => {
                return self.reject(
                    &state,
                    Rejection::malformed("`model` is required").with_param(Some("model".into())),
                );
            }
        };
        let stream = match body.get("stream") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(s)) => *s,
            Some(_) => {
                return self.reject(
                    &state,
                    Rejection::malformed("`stream` must be a boolean")
                        .with_param(Some("stream".into())),
                );
            }
        };
        let wants_usage = body
            .pointer("/stream_options/include_usage")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);

        let (key, session) = {
            let mut inner = state.lock();
            inner.requested_model = Some(model.clone());
            inner.stream = stream;
            inner.client_wants_usage = wants_usage;
            (inner.key.clone(), inner.session_id.clone())
        };
        let Some(key) = key else {
            return self.reject(&state, Rejection::unknown_key());
        };
        // Routing reads borrowed views (not `Send`); they end before any await below.
        let (routed, est_input, max_output) = {
            let stats = LiveStats {
                snap: &snap,
                health: &self.shared.health,
            };
            let attrs = RequestAttrs {
                stats: Some(&stats),
                ..RequestAttrs::from_body(
                    &model,
                    &body,
                    session.as_deref(),
                    &self.tags,
                    &self.headers,
                )
            };
            let routed = plan(&snap, &key, &attrs, rand::random());
            (routed, attrs.est_input_tokens, attrs.max_output_tokens)
        };
        let mut plan = match routed {
            Ok(p) => p,
            Err(e) => return self.reject(&state, Rejection::from(&e)),
        };

        // Backends cooling down leave the plan (never all of them); they show in the record.
        let now = Instant::now();
        let backends: Vec<String> = plan
            .attempts
            .iter()
            .map(|a| {
                crate::health::backend_key(
                    &snap.providers[a.target.provider].id,
                    &a.target.provider_model,
                )
            })
            .collect();
        let skips = self.shared.health.skips(&backends, now);
        if skips.iter().any(|&s| s) {
            let mut kept = Vec::new();
            for (a, skip) in plan.attempts.drain(..).zip(skips) {
                if skip {
                    plan.skipped.push(crate::routing::Skipped {
                        provider: a.target.provider,
                        model: a.target.provider_model.clone(),
                        reason: "unhealthy: cooling down",
                    });
                } else {
                    kept.push(a);
                }
            }
            plan.attempts = kept;
        }
        // Token limits and budgets: reserve the estimate atomically before any attempt.
        if key.limits.any() {
            let first = &plan.attempts[0].target;
            let output = max_output.unwrap_or(DEFAULT_OUTPUT_HOLD);
            let est = crate::store::Estimate {
                input: est_input,
                output,
                cost_usd: first.pricing.cost(est_input, output),
            };
            let now = super::state::now_ms();
            match self
                .shared
                .store
                .reserve(&key.id, &key.limits, est, now)
                .await
            {
                Ok(Ok(reservation)) => state.lock().reservation = Some(reservation),
                Ok(Err(denied)) => return self.reject(&state, Rejection::limited(&denied)),
                // Fail open: an unreachable store must not take the gateway down with it.
                Err(e) => {
                    tracing::warn!(error = %e, key = %key.name, "limit check skipped: store unavailable")
                }
            }
        }
        // Streams keep the per-attempt filter: it holds their headers until the first token,
        // so the per-try timeout covers it. Chat bodies are small enough to buffer whole.
        let direct = plan.attempts.len() == 1
            && !stream
            && state.lock().inbound == Some(Inbound::ChatCompletions);
        let mut m = Mutation::default();
        let cluster = if direct {
            direct_cluster(&snap, plan.attempts[0].target.provider)
        } else {
            chain_cluster(&snap, &plan.providers())
        };
        m.set(CLUSTER_HEADER, cluster);
        m.set("x-envoy-max-retries", (plan.attempts.len() - 1).to_string());
        m.set(
            "x-envoy-upstream-rq-per-try-timeout-ms",
            plan.attempts[0].timeout_ms.to_string(),
        );
        {
            let mut inner = state.lock();
            inner.plan = Some(plan);
            inner.snapshot = Some(snap);
            if inner.inbound == Some(Inbound::Images) {
                inner.images = Some(crate::translate::images::ImageOrder::of(&body));
            }
            inner.body = Some(Arc::new(body));
            inner.original_body = original;
        }
        if !direct {
            return vec![request_body_reply(m, None, true)];
        }
        let attempt = match UpstreamExchange::direct(self.shared.clone(), state.clone()) {
            Ok(a) => self.direct.insert(a),
            Err(r) => return self.reject(&state, r),
        };
        match attempt.request() {
            Ok((edits, body)) => {
                m.set.extend(edits.set);
                m.remove.extend(edits.remove);
                vec![request_body_reply(m, Some(body), true)]
            }
            Err(r) => attempt.fail(r),
        }
    }

    fn on_response_headers(&mut self, h: &pb::HttpHeaders, via_upstream: bool) -> Replies {
        if !via_upstream {
            // Envoy's own reply (timeout, connect failure): a direct attempt got no response,
            // which dropping it records; the reply passes as for any request.
            self.direct = None;
        } else if let Some(attempt) = &mut self.direct {
            return attempt.on_response_headers(h);
        }
        let Some(state) = self.state.clone() else {
            return vec![response_headers_reply(Mutation::default())];
        };
        let status = header(h, ":status").and_then(|s| s.parse::<u16>().ok());
        let mut m = Mutation::default();
        client_headers(&state, status, &mut m);
        vec![response_headers_reply(m)]
    }
}

/// The headers every response of ours carries, and the status the client got (for the record).
pub fn client_headers(state: &RequestState, status: impl Into<Option<u16>>, m: &mut Mutation) {
    m.set(RESPONSE_REQUEST_ID, state.id.clone());
    m.remove(REQUEST_ID);
    {
        let mut inner = state.lock();
        inner.client_status = status.into();
        if let Some(w) = inner.attempts.iter().rev().find(|a| a.committed) {
            m.set("x-switchyard-provider", w.provider.clone());
            m.set("x-switchyard-resolved-model", w.model.clone());
        }
        m.set(
            "x-switchyard-fallbacks",
            inner.attempts.len().saturating_sub(1).to_string(),
        );
    }
    m.set(
        "x-switchyard-overhead-ms",
        format!("{:.3}", state.overhead_ms()),
    );
}

/// Output tokens a limited key's reservation holds when the request sets no `max_tokens`.
const DEFAULT_OUTPUT_HOLD: u64 = 1024;

/// The router's view of live backend statistics.
#[derive(Debug)]
struct LiveStats<'a> {
    snap: &'a crate::config::Snapshot,
    health: &'a crate::health::Health,
}

impl crate::routing::Stats for LiveStats<'_> {
    fn latency_ms(&self, target: &crate::config::Target) -> Option<f64> {
        self.health.latency_ms(&crate::health::backend_key(
            &self.snap.providers[target.provider].id,
            &target.provider_model,
        ))
    }
}

impl DownstreamExchange {
    pub async fn on_message(&mut self, msg: pb::ProcessingRequest) -> Replies {
        let t = Instant::now();
        let via_upstream = code_details(&msg.attributes) == Some("via_upstream");
        let Some(msg) = msg.request else {
            return vec![];
        };
        let out = match &msg {
            Msg::RequestHeaders(h) => self.on_request_headers(h).await,
            Msg::RequestBody(b) => {
                let span = self
                    .state
                    .as_ref()
                    .map_or_else(tracing::Span::none, |s| s.span.clone());
                self.on_request_body(b).instrument(span).await
            }
            Msg::ResponseHeaders(h) => self.on_response_headers(h, via_upstream),
            Msg::ResponseBody(b) => match &mut self.direct {
                Some(attempt) => attempt.on_response_body(b),
                // Only direct requests ask for it; answer so Envoy never waits.
                None => vec![super::response_body_reply(None)],
            },
            Msg::RequestTrailers(_) | Msg::ResponseTrailers(_) => vec![],
        };
        if let Some(s) = &self.state {
            s.add_overhead(t.elapsed());
        }
        out
    }
}

/// Envoy's `response.code_details` for this response (`via_upstream` when proxied).
fn code_details(
    attrs: &std::collections::HashMap<String, envoy_types::pb::google::protobuf::Struct>,
) -> Option<&str> {
    use envoy_types::pb::google::protobuf::value::Kind;
    match &attrs
        .values()
        .find_map(|s| s.fields.get(CODE_DETAILS_ATTR))?
        .kind
    {
        Some(Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}

impl Drop for DownstreamExchange {
    fn drop(&mut self) {
        if let Some(s) = &self.state {
            self.shared.registry.remove(&s.id);
        }
    }
}
