//! Telemetry: every request's record as an OTLP trace and as metrics, plus gateway health
//! counters, served as Prometheus text on the admin port and exported over OTLP (gRPC or
//! HTTP/protobuf) when a `telemetry:` section names a collector.
//!
//! Cost model. Off (no section): `on_record` updates the metrics registry (one mutex, one hash
//! lookup) and nothing else; `begin` returns `None`, so no ids are minted and no header is
//! added. On: `begin` mints two random ids per request; spans are built once, after the request
//! ended, from its `Record` (no span object lives during the request), and only for sampled
//! traces; they are queued with `try_send` to one exporter task (see `export`).
//!
//! Tracing model. A request's trace id is the client's (valid W3C `traceparent`) or new. The
//! gateway's request span (SERVER, named `{operation} {requested model}`) has the client's
//! span as parent; each provider attempt is a CLIENT child span whose id is derived from the
//! request span id and the attempt's index (`context::attempt_span_id`), so the `traceparent`
//! sent with attempt *i* (`RequestTrace::traceparent_for_attempt(i)`) makes the provider's
//! span a child of attempt *i*'s span. Sampling is parent-based: a client's sampled flag
//! decides; otherwise `sampling_ratio` applies (trace-id ratio, as OpenTelemetry's).
//!
//! Attributes on the request span (record field → attribute):
//! endpoint → `gen_ai.operation.name` (chat | embeddings | image_generation | list_models |
//! unknown) and `url.path`; provider → `switchyard.provider` and `gen_ai.provider.name` /
//! `gen_ai.system` (the semantic-conventions name of the provider's kind, e.g. `openai`,
//! `aws.bedrock`, once `set_providers` was called; else the provider id); requested_model →
//! `gen_ai.request.model`; resolved_model → `gen_ai.response.model`; input/output_tokens →
//! `gen_ai.usage.input_tokens` / `gen_ai.usage.output_tokens`; session_id →
//! `gen_ai.conversation.id`; status → `http.response.status_code`; outcome → `error.type` (when
//! not ok) and `switchyard.outcome`; id, key_name, key_id, route, rule, strategy, reason,
//! fallback_count, cost_usd, stream, latency_ms, ttft_ms, overhead_ms, error, tags, skipped →
//! `switchyard.<field>` (`switchyard.request.id`, `switchyard.key.name`, `switchyard.key.id`,
//! …); attempts.len() → `switchyard.attempt_count`. Attempt spans: `gen_ai.operation.name`,
//! `gen_ai.provider.name`, `gen_ai.system`, `switchyard.provider`, `gen_ai.request.model`,
//! `http.response.status_code`, `error.type` (the status, or `_OTHER` without one),
//! `switchyard.attempt.index`, `switchyard.attempt.error`; the attempt that served also has
//! `gen_ai.response.model` and the usage. Span status is ERROR for a status ≥ 400 or an
//! outcome other than ok, with the (scrubbed) error as message.
//!
//! Secrets. Records hold no credentials (client keys are hashed before a record exists, and
//! `key_id` is a 6-byte prefix of that hash); collector headers are never exported or logged
//! (`TelemetryConfig`'s `Debug` redacts them). Tags are exported as the span attribute
//! `switchyard.tags` (they are the request-log facts) but never as metric labels; every
//! exported string that a client or a provider controls goes through `spans::scrub`, which
//! replaces credential-shaped tokens (`sk-…`, `Bearer …`, `AKIA…`, `AIza…`, `ghp_…`) with
//! `[REDACTED]`.

pub mod config;
pub mod context;
mod export;
pub mod logging;
pub mod metrics;
pub mod proto;
pub mod spans;
mod wire;

#[cfg(test)]
mod tests;

pub use config::{Protocol, RawTelemetry, TelemetryConfig};
pub use context::{RequestTrace, TraceContext, parse_traceparent, traceparent_for};
pub use logging::{init_logging, request_span};
pub use metrics::{Metrics, PROMETHEUS_CONTENT_TYPE};

use crate::config::{ProviderKind, Snapshot};
use crate::record::Record;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot};

/// The telemetry handle: cheap to clone (one `Arc`), shared by every request.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: Arc<Metrics>,
    names: Arc<ProviderNames>,
    traces: Option<Traces>,
}

struct Traces {
    tx: mpsc::Sender<export::Msg>,
    sampling_ratio: f64,
}

impl Default for Telemetry {
    /// Metrics only: no exporter.
    fn default() -> Self {
        Telemetry::with_parts(None)
    }
}

impl Telemetry {
    /// Start telemetry. `None` (no `telemetry:` section): the Prometheus registry only. With a
    /// config, spawns the exporter task on the current tokio runtime (outside a runtime, or
    /// with an endpoint the transport rejects, it logs an error and runs metrics-only).
    pub fn start(cfg: Option<TelemetryConfig>) -> Telemetry {
        Telemetry::with_parts(cfg)
    }

    fn with_parts(cfg: Option<TelemetryConfig>) -> Telemetry {
        let metrics = Arc::new(Metrics::default());
        let names = Arc::new(ProviderNames::default());
        let traces = cfg.and_then(|cfg| {
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                tracing::error!("telemetry: no tokio runtime; OTLP export is off");
                return None;
            };
            let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
            let sampling_ratio = cfg.sampling_ratio;
            let endpoint = cfg.endpoint.to_string();
            let protocol = cfg.protocol;
            match export::Exporter::new(rx, cfg, metrics.clone(), names.clone()) {
                Ok(exporter) => {
                    rt.spawn(exporter.run());
                    tracing::info!(%endpoint, ?protocol, sampling_ratio, "telemetry: exporting OTLP traces and metrics");
                    Some(Traces { tx, sampling_ratio })
                }
                Err(e) => {
                    tracing::error!(error = %e, "telemetry: OTLP export is off");
                    None
                }
            }
        });
        Telemetry {
            inner: Arc::new(Inner {
                metrics,
                names,
                traces,
            }),
        }
    }

    /// Whether traces are exported (a `telemetry:` section is in force).
    pub fn tracing_enabled(&self) -> bool {
        self.inner.traces.is_some()
    }

    /// At request start: the request's trace identity, from the client's `traceparent` header
    /// when valid. `None` when tracing is off (then add no `traceparent` to provider requests).
    pub fn begin(&self, client_traceparent: Option<&str>) -> Option<RequestTrace> {
        let t = self.inner.traces.as_ref()?;
        Some(RequestTrace::begin(client_traceparent, t.sampling_ratio))
    }

    /// Once per request, when its record is final (before it goes to the record sink). Updates
    /// the metrics and, when tracing is on and the trace is sampled, queues its spans without
    /// waiting. `trace` is what `begin` returned (`None`: a new trace at the sampling ratio).
    pub fn on_record(&self, record: &Record, trace: Option<&RequestTrace>) {
        self.inner.metrics.observe(record);
        let Some(t) = &self.inner.traces else { return };
        let trace = match trace {
            Some(tr) => *tr,
            None => RequestTrace::begin(None, t.sampling_ratio),
        };
        if !trace.sampled {
            return;
        }
        let mut bytes = Vec::with_capacity(2048);
        let count = spans::encode(
            record,
            &trace,
            &self.inner.names.map.load(),
            unix_nanos_now(),
            &mut bytes,
        );
        if t.tx.try_send(export::Msg::Spans { bytes, count }).is_err() {
            self.inner
                .metrics
                .spans_dropped
                .fetch_add(count as u64, Ordering::Relaxed);
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Map provider ids to `gen_ai.provider.name` values; call after every config (re)load.
    pub fn set_providers(&self, snap: &Snapshot) {
        self.inner.names.set(
            snap.providers
                .iter()
                .map(|p| (p.id.clone(), p.kind))
                .collect::<Vec<_>>(),
        );
    }

    /// Export everything queued so far (spans and metrics) and wait for it: for shutdown and
    /// tests. Returns at once when tracing is off.
    pub async fn flush(&self) {
        let Some(t) = &self.inner.traces else { return };
        let (done, wait) = oneshot::channel();
        if t.tx.send(export::Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Provider id → semantic-conventions provider name, swapped whole on config reload.
#[derive(Default)]
pub(crate) struct ProviderNames {
    map: ArcSwap<spans::ProviderMap>,
}

impl ProviderNames {
    fn set(&self, providers: Vec<(String, ProviderKind)>) {
        let map = providers
            .into_iter()
            .filter_map(|(id, kind)| semconv_provider_name(kind).map(|n| (id, n)))
            .collect();
        self.map.store(Arc::new(map));
    }

    /// The well-known name for the provider's kind, else the (scrubbed) id itself.
    #[cfg(test)]
    pub(crate) fn name(&self, id: &str) -> String {
        spans::provider_name(&self.map.load(), id).into_owned()
    }

    pub(crate) fn load(&self) -> Arc<spans::ProviderMap> {
        self.map.load_full()
    }
}

/// `gen_ai.provider.name` well-known values; `None` for an OpenAI-compatible server, which is
/// named by its configured id.
pub fn semconv_provider_name(kind: ProviderKind) -> Option<&'static str> {
    Some(match kind {
        ProviderKind::OpenAi => "openai",
        ProviderKind::AzureOpenAi => "azure.ai.openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Vertex => "gcp.vertex_ai",
        ProviderKind::Bedrock => "aws.bedrock",
        ProviderKind::Cohere => "cohere",
        ProviderKind::OpenAiCompatible => return None,
    })
}

pub(crate) fn unix_nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
