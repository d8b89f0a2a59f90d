//! Per-request state shared by the downstream exchange and every upstream attempt exchange of
//! the same request (they meet through the registry by request id: the pair runs in one
//! process). The record is written when the last holder lets go (`Drop`), so a request that is
//! rejected, cancelled, cut off or completes always yields exactly one record.

use crate::auth::Principal;
use crate::config::Snapshot;
use crate::errors::Rejection;
use crate::record::{AttemptRecord, BodyCapture, CapturedBody, Record, RecordSink};
use crate::routing::Plan;
use crate::store::{Actual, Reservation, Store};
use crate::telemetry::{RequestTrace, Telemetry};
use crate::translate::{Inbound, Usage};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct AttemptState {
    pub position: usize,
    pub provider: String,
    pub model: String,
    pub started: Instant,
    pub ended: Option<Instant>,
    pub status: Option<u16>,
    pub error: Option<String>,
    /// The response of this attempt was released to the client.
    pub committed: bool,
}

/// What the downstream phase learned and the attempts reported.
#[derive(Default)]
pub struct Inner {
    pub key: Option<Arc<Principal>>,
    pub endpoint: String,
    pub inbound: Option<Inbound>,
    pub requested_model: Option<String>,
    pub session_id: Option<String>,
    pub stream: bool,
    pub client_wants_usage: bool,
    pub snapshot: Option<Arc<Snapshot>>,
    pub body: Option<Arc<serde_json::Value>>,
    pub plan: Option<Plan>,
    pub attempts: Vec<AttemptState>,
    pub rejection: Option<Rejection>,
    pub client_status: Option<u16>,
    pub usage: Usage,
    pub first_token: Option<Instant>,
    pub finished: Option<Instant>,
    /// Set when a committed response failed after it started (a stream cut mid-way).
    pub failure: Option<String>,
    /// Client tags (`k=v`) from `x-switchyard-tags`.
    pub tags: Vec<String>,
    /// An image generation request's order, priced per image when it succeeds.
    pub images: Option<crate::translate::images::ImageOrder>,
    /// The API the client speaks (errors and responses answer in it).
    pub dialect: crate::errors::Dialect,
    /// The key's hold on the token/budget ledger, when its limits required one.
    pub reservation: Option<Reservation>,
    /// An Anthropic-dialect client's body as sent; `body` holds its OpenAI form. Anthropic
    /// providers get this one (nothing lost in translation).
    pub original_body: Option<Arc<serde_json::Value>>,
    /// Bytes of each body the record keeps (`None`: bodies are not logged). Fixed at the
    /// request's start from the config it started with.
    pub body_cap: Option<usize>,
    /// The client's request body as sent, capped.
    pub request_body: Option<CapturedBody>,
    /// What the client received, capped: an answer of ours (rejection, model list) or the
    /// committed attempt's translated response.
    pub response_body: Option<CapturedBody>,
}

impl Inner {
    /// Keep (the capped start of) the request body, when bodies are logged.
    pub fn capture_request(&mut self, bytes: &[u8]) {
        if let Some(cap) = self.body_cap {
            self.request_body = Some(BodyCapture::of(bytes, cap));
        }
    }

    /// Keep a response body we answer with ourselves, when bodies are logged.
    pub fn capture_response(&mut self, bytes: &[u8]) {
        if let Some(cap) = self.body_cap {
            self.response_body = Some(BodyCapture::of(bytes, cap));
        }
    }
}

pub struct RequestState {
    pub id: String,
    started: Instant,
    ts: SystemTime,
    overhead_ns: AtomicU64,
    inner: Mutex<Inner>,
    sink: RecordSink,
    store: Store,
    telemetry: Telemetry,
    /// The request's trace (when tracing is on): attempts propagate it to providers.
    pub trace: Option<RequestTrace>,
    /// Log lines about this request carry its id (and trace id) through this span.
    pub span: tracing::Span,
}

impl RequestState {
    pub fn new(
        id: String,
        sink: RecordSink,
        store: Store,
        telemetry: Telemetry,
        trace: Option<RequestTrace>,
    ) -> RequestState {
        RequestState {
            span: crate::telemetry::request_span(&id, trace.as_ref()),
            id,
            started: Instant::now(),
            ts: SystemTime::now(),
            overhead_ns: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
            sink,
            store,
            telemetry,
            trace,
        }
    }

    /// Short critical sections only; never held across an await.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn add_overhead(&self, d: Duration) {
        self.overhead_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn overhead_ms(&self) -> f64 {
        self.overhead_ns.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Called once, when the request ends: takes the captured bodies rather than copying them.
    fn to_record(&self) -> Record {
        let mut inner = self.lock();
        let (request_body, request_body_truncated) = CapturedBody::parts(inner.request_body.take());
        let (response_body, response_body_truncated) =
            CapturedBody::parts(inner.response_body.take());
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        let end = inner.finished.unwrap_or_else(Instant::now);
        let winner = inner.attempts.iter().rev().find(|a| a.committed);
        let status = inner
            .rejection
            .as_ref()
            .map(|r| r.status)
            .or(inner.client_status)
            .unwrap_or(499);
        let (outcome, error) = if let Some(r) = &inner.rejection {
            (r.code.to_string(), Some(r.message.clone()))
        } else if let Some(f) = &inner.failure {
            ("stream_interrupted".to_string(), Some(f.clone()))
        } else if inner.client_status.is_none() {
            (
                "client_cancelled".to_string(),
                Some("client went away before a response".into()),
            )
        } else if status >= 400 {
            let last = inner.attempts.last().and_then(|a| a.error.clone());
            (
                if status == 504 { "timeout" } else { "error" }.to_string(),
                last.or(Some(format!("status {status}"))),
            )
        } else {
            ("ok".to_string(), None)
        };
        let pricing = winner
            .and_then(|w| inner.plan.as_ref().and_then(|p| p.attempts.get(w.position)))
            .map(|a| &a.target.pricing);
        let cost = pricing.map_or(0.0, |p| {
            let images = match &inner.images {
                Some(order) if status < 400 => p.image_cost(order),
                _ => 0.0,
            };
            p.cost(inner.usage.input_tokens, inner.usage.output_tokens) + images
        });
        // The serving member's tag (A/B arm), then the client's own tags.
        let tags = winner
            .and_then(|w| inner.plan.as_ref().and_then(|p| p.attempts.get(w.position)))
            .and_then(|a| a.tag.clone())
            .into_iter()
            .chain(inner.tags.iter().cloned())
            .collect();
        let ts = time::OffsetDateTime::from(self.ts)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Record {
            id: self.id.clone(),
            ts,
            key_id: inner.key.as_ref().map(|k| k.id.clone()),
            key_name: inner.key.as_ref().map(|k| k.name.clone()),
            endpoint: inner.endpoint.clone(),
            requested_model: inner.requested_model.clone(),
            resolved_model: winner.map(|w| w.model.clone()),
            provider: winner.map(|w| w.provider.clone()),
            route: inner.plan.as_ref().map(|p| p.route.clone()),
            rule: inner.plan.as_ref().and_then(|p| p.rule.clone()),
            reason: inner.plan.as_ref().and_then(|p| p.reason.clone()),
            strategy: inner.plan.as_ref().map(|p| p.strategy.to_string()),
            attempts: inner
                .attempts
                .iter()
                .map(|a| AttemptRecord {
                    provider: a.provider.clone(),
                    model: a.model.clone(),
                    status: a.status,
                    latency_ms: ms(a.ended.unwrap_or(end).saturating_duration_since(a.started)),
                    error: a.error.clone(),
                    start_offset_ms: Some(ms(a.started.saturating_duration_since(self.started))),
                })
                .collect(),
            skipped: match (&inner.plan, &inner.snapshot) {
                (Some(p), Some(snap)) => p
                    .skipped
                    .iter()
                    .map(|s| crate::record::SkippedRecord {
                        provider: snap
                            .providers
                            .get(s.provider)
                            .map(|p| p.id.clone())
                            .unwrap_or_default(),
                        model: s.model.clone(),
                        reason: s.reason.to_string(),
                    })
                    .collect(),
                _ => Vec::new(),
            },
            fallback_count: inner.attempts.len().saturating_sub(1) as u32,
            status,
            outcome,
            error,
            stream: inner.stream,
            input_tokens: inner.usage.input_tokens,
            output_tokens: inner.usage.output_tokens,
            latency_ms: ms(end.saturating_duration_since(self.started)),
            ttft_ms: inner
                .first_token
                .map(|t| ms(t.saturating_duration_since(self.started))),
            overhead_ms: (self.overhead_ms() * 1000.0).round() / 1000.0,
            cost_usd: (cost * 1e9).round() / 1e9,
            session_id: inner.session_id.clone(),
            tags,
            request_body,
            request_body_truncated,
            response_body,
            response_body_truncated,
        }
    }
}

impl Drop for RequestState {
    fn drop(&mut self) {
        let record = self.to_record();
        self.true_up(&record);
        self.telemetry.on_record(&record, self.trace.as_ref());
        if !self.sink.emit(record) {
            self.telemetry.metrics().record_dropped(1);
        }
    }
}

impl RequestState {
    /// Charge what the request really used to its key's ledger entry (usage counters, key
    /// stats, and the limit window where it held a reservation). Off the request path: the
    /// record is already final.
    fn true_up(&mut self, record: &Record) {
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        let Some(key) = &inner.key else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let now = now_ms();
        let reservation = inner
            .reservation
            .take()
            .unwrap_or_else(|| Reservation::unreserved(&key.id, now));
        let actual = Actual {
            input: record.input_tokens,
            output: record.output_tokens,
            cost_usd: record.cost_usd,
            model: record
                .resolved_model
                .clone()
                .or_else(|| record.requested_model.clone())
                .unwrap_or_default(),
            provider: record.provider.clone().unwrap_or_default(),
            error: record.status >= 400,
        };
        let store = self.store.clone();
        let id = record.id.clone();
        runtime.spawn(async move {
            // One retry: true-up is idempotent per reservation, so a timed-out first try that
            // did land is not charged twice.
            for attempt in 0..2 {
                match store.true_up(&reservation, &actual, now).await {
                    Ok(_) => return,
                    Err(e) if attempt == 1 => {
                        tracing::warn!(request_id = %id, error = %e, "usage not recorded in the store")
                    }
                    Err(_) => {}
                }
            }
        });
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Live requests by id. Holds weak references: the exchanges own the state.
#[derive(Default)]
pub struct Registry {
    map: Mutex<HashMap<String, Weak<RequestState>>>,
}

impl Registry {
    pub fn insert(&self, state: &Arc<RequestState>) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(state.id.clone(), Arc::downgrade(state));
    }

    pub fn get(&self, id: &str) -> Option<Arc<RequestState>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .and_then(Weak::upgrade)
    }

    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
