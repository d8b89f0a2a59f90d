//! The metrics registry: always on, updated once per request from its `Record` (one mutex, one
//! hash lookup, no allocation for a label set already seen) plus atomic gateway counters.
//! Rendered as Prometheus text for `GET /metrics` and converted to OTLP for periodic export:
//! both views read the same numbers.
//!
//! Per-request label set (Prometheus name → OTLP attribute):
//! `key` → `switchyard.key.name`, `operation` → `gen_ai.operation.name`,
//! `provider` → `switchyard.provider` (the configured provider id; OTLP also carries the
//! semantic-conventions `gen_ai.provider.name`), `request_model` → `gen_ai.request.model`,
//! `model` (the model that served; empty when none did) → `gen_ai.response.model`,
//! `status` (HTTP status the client got) → `http.response.status_code`,
//! `error_type` (the record's outcome when not `ok`, else empty) → `error.type`.
//! Client-chosen values (a requested model) could grow the label sets without bound, so the
//! registry keeps at most `MAX_SERIES` of them and folds the rest into one `_overflow` set.

use super::proto;
use super::spans::{ProviderMap, provider_name, scrub};
use crate::record::Record;
use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The `content-type` of `render_prometheus`'s text, for the admin `GET /metrics` reply.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Most distinct per-request label sets kept; later ones go to the overflow set.
pub const MAX_SERIES: usize = 2048;
/// Most distinct attempt label sets (provider, model, status) kept.
const MAX_ATTEMPT_SERIES: usize = 1024;
const OVERFLOW: &str = "_overflow";

/// Semantic-conventions bucket boundaries.
pub const TOKEN_BOUNDS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
pub const DURATION_BOUNDS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
pub const TTFT_BOUNDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
pub const TPOT_BOUNDS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];

/// `gen_ai.operation.name` for a request path (a fixed set: paths are client-chosen).
pub fn operation_name(endpoint: &str) -> &'static str {
    match endpoint {
        "/v1/chat/completions" | "/chat/completions" => "chat",
        "/v1/embeddings" | "/embeddings" => "embeddings",
        "/v1/images/generations" | "/images/generations" => "image_generation",
        "/v1/models" | "/models" => "list_models",
        _ => "unknown",
    }
}

#[derive(Clone, Debug, Default)]
struct Hist {
    /// Per bucket (not cumulative); one more than the bounds (the +Inf bucket).
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Hist {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len() + 1];
        }
        let i = bounds.partition_point(|b| *b < v);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += v;
        self.count += 1;
    }
}

/// The per-request label set, owned.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Labels {
    key: String,
    operation: &'static str,
    provider: String,
    request_model: String,
    model: String,
    status: u16,
    error_type: String,
}

/// The same label set borrowed from a record: hashed and compared without allocating.
#[derive(Hash, PartialEq, Eq)]
struct LabelsRef<'a> {
    key: &'a str,
    operation: &'static str,
    provider: &'a str,
    /// Client-chosen: scrubbed of credential-shaped text.
    request_model: Cow<'a, str>,
    model: &'a str,
    status: u16,
    error_type: &'a str,
}

impl LabelsRef<'_> {
    fn of(r: &Record) -> LabelsRef<'_> {
        LabelsRef {
            key: r.key_name.as_deref().unwrap_or(""),
            operation: operation_name(&r.endpoint),
            provider: r.provider.as_deref().unwrap_or(""),
            request_model: scrub(r.requested_model.as_deref().unwrap_or("")),
            model: r.resolved_model.as_deref().unwrap_or(""),
            status: r.status,
            error_type: if r.outcome == "ok" { "" } else { &r.outcome },
        }
    }

    fn matches(&self, l: &Labels) -> bool {
        self.status == l.status
            && self.operation == l.operation
            && self.key == l.key
            && self.provider == l.provider
            && *self.request_model == *l.request_model
            && self.model == l.model
            && self.error_type == l.error_type
    }

    fn to_owned(&self) -> Labels {
        Labels {
            key: self.key.to_string(),
            operation: self.operation,
            provider: self.provider.to_string(),
            request_model: self.request_model.to_string(),
            model: self.model.to_string(),
            status: self.status,
            error_type: self.error_type.to_string(),
        }
    }

    fn overflow(status: u16) -> Labels {
        Labels {
            key: OVERFLOW.into(),
            operation: OVERFLOW,
            provider: OVERFLOW.into(),
            request_model: OVERFLOW.into(),
            model: OVERFLOW.into(),
            status,
            error_type: OVERFLOW.into(),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Series {
    requests: u64,
    cost_usd: f64,
    duration: Hist,
    ttft: Hist,
    tpot: Hist,
    input_tokens: Hist,
    output_tokens: Hist,
}

/// The per-request latency histograms: Prometheus name, OTLP name, help, buckets, field.
struct HistSpec {
    prom: &'static str,
    otlp: &'static str,
    help: &'static str,
    bounds: &'static [f64],
    get: fn(&Series) -> &Hist,
}

const HISTOGRAMS: [HistSpec; 3] = [
    HistSpec {
        prom: "gen_ai_server_request_duration_seconds",
        otlp: "gen_ai.server.request.duration",
        help: "GenAI server request duration (gen_ai.server.request.duration).",
        bounds: DURATION_BOUNDS,
        get: |s| &s.duration,
    },
    HistSpec {
        prom: "gen_ai_server_time_to_first_token_seconds",
        otlp: "gen_ai.server.time_to_first_token",
        help: "Time to generate the first token, streamed responses (gen_ai.server.time_to_first_token).",
        bounds: TTFT_BOUNDS,
        get: |s| &s.ttft,
    },
    HistSpec {
        prom: "gen_ai_server_time_per_output_token_seconds",
        otlp: "gen_ai.server.time_per_output_token",
        help: "Time per output token after the first, streamed responses (gen_ai.server.time_per_output_token).",
        bounds: TPOT_BOUNDS,
        get: |s| &s.tpot,
    },
];

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct AttemptLabels {
    provider: String,
    model: String,
    /// The provider's HTTP status, or `none` (connection error, timeout before headers).
    status: String,
}

#[derive(Default)]
struct Tables {
    /// Hash of a `LabelsRef` → the label sets with that hash (almost always one).
    requests: HashMap<u64, Vec<(Labels, Series)>>,
    series: usize,
    attempts: HashMap<AttemptLabels, u64>,
    cooldowns: HashMap<String, u64>,
}

/// Counters and histograms for `/metrics` and OTLP. Shared (`Arc`) by every clone of
/// `Telemetry`.
pub struct Metrics {
    hasher: RandomState,
    tables: Mutex<Tables>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    records_dropped: AtomicU64,
    store_errors: AtomicU64,
    extproc_streams: AtomicI64,
    series_overflow: AtomicU64,
    pub(crate) spans_exported: AtomicU64,
    pub(crate) spans_dropped: AtomicU64,
    pub(crate) exports_failed: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            hasher: RandomState::new(),
            tables: Mutex::new(Tables::default()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            records_dropped: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            extproc_streams: AtomicI64::new(0),
            series_overflow: AtomicU64::new(0),
            spans_exported: AtomicU64::new(0),
            spans_dropped: AtomicU64::new(0),
            exports_failed: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count one finished request (called from `Telemetry::on_record`).
    pub fn observe(&self, r: &Record) {
        let labels = LabelsRef::of(r);
        let hash = self.hasher.hash_one(&labels);
        let secs = |ms: f64| ms / 1000.0;
        let tpot = match r.ttft_ms {
            Some(ttft) if r.stream && r.status < 400 && r.output_tokens > 1 => {
                Some(secs((r.latency_ms - ttft).max(0.0)) / (r.output_tokens - 1) as f64)
            }
            _ => None,
        };
        let mut guard = self.tables();
        let Tables {
            requests,
            series: count,
            attempts,
            ..
        } = &mut *guard;
        let full = *count >= MAX_SERIES;
        let known = requests
            .get(&hash)
            .and_then(|b| b.iter().position(|(l, _)| labels.matches(l)));
        let (hash, labels_owned) = match known {
            Some(_) => (hash, None),
            None if !full => {
                *count += 1;
                (hash, Some(labels.to_owned()))
            }
            None => {
                self.series_overflow.fetch_add(1, Ordering::Relaxed);
                let o = LabelsRef::overflow(r.status);
                (self.hasher.hash_one(("overflow", r.status)), Some(o))
            }
        };
        let bucket = requests.entry(hash).or_default();
        let idx = match (known, labels_owned) {
            (Some(i), _) => i,
            (None, Some(owned)) => match bucket.iter().position(|(l, _)| *l == owned) {
                Some(i) => i,
                None => {
                    bucket.push((owned, Series::default()));
                    bucket.len() - 1
                }
            },
            (None, None) => return,
        };
        let Some((_, series)) = bucket.get_mut(idx) else {
            return;
        };
        series.requests += 1;
        series.cost_usd += r.cost_usd;
        series.duration.observe(DURATION_BOUNDS, secs(r.latency_ms));
        if let Some(ttft) = r.ttft_ms {
            series.ttft.observe(TTFT_BOUNDS, secs(ttft));
        }
        if let Some(v) = tpot {
            series.tpot.observe(TPOT_BOUNDS, v);
        }
        if r.input_tokens > 0 {
            series
                .input_tokens
                .observe(TOKEN_BOUNDS, r.input_tokens as f64);
        }
        if r.output_tokens > 0 {
            series
                .output_tokens
                .observe(TOKEN_BOUNDS, r.output_tokens as f64);
        }
        for a in &r.attempts {
            let status = a
                .status
                .map_or_else(|| "none".to_string(), |s| s.to_string());
            let key = AttemptLabels {
                provider: a.provider.clone(),
                model: a.model.clone(),
                status,
            };
            if let Some(n) = attempts.get_mut(&key) {
                *n += 1;
            } else if attempts.len() < MAX_ATTEMPT_SERIES {
                attempts.insert(key, 1);
            } else {
                self.series_overflow.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A config file was (re)loaded (`ok`) or rejected.
    pub fn config_reload(&self, ok: bool) {
        let c = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A backend (`provider/model`, from `health::backend_key`) entered cooldown.
    pub fn backend_cooldown(&self, backend: &str) {
        let mut t = self.tables();
        if let Some(n) = t.cooldowns.get_mut(backend) {
            *n += 1;
        } else if t.cooldowns.len() < MAX_ATTEMPT_SERIES {
            t.cooldowns.insert(backend.to_string(), 1);
        }
    }

    pub fn record_dropped(&self, n: u64) {
        self.records_dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn extproc_streams_inc(&self) {
        self.extproc_streams.fetch_add(1, Ordering::Relaxed);
    }

    pub fn extproc_streams_dec(&self) {
        self.extproc_streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// Spans dropped because the export queue was full or an export failed.
    pub fn spans_dropped(&self) -> u64 {
        self.spans_dropped.load(Ordering::Relaxed)
    }

    pub fn spans_exported(&self) -> u64 {
        self.spans_exported.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> Snapshot {
        let t = self.tables();
        let mut requests: Vec<(Labels, Series)> = t.requests.values().flatten().cloned().collect();
        let mut attempts: Vec<(AttemptLabels, u64)> =
            t.attempts.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let mut cooldowns: Vec<(String, u64)> =
            t.cooldowns.iter().map(|(k, v)| (k.clone(), *v)).collect();
        drop(t);
        requests.sort_by(|a, b| a.0.cmp(&b.0));
        attempts.sort();
        cooldowns.sort();
        Snapshot {
            requests,
            attempts,
            cooldowns,
        }
    }

    fn counters(&self) -> [(&'static str, &'static str, &'static str, u64); 6] {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            (
                "switchyard_records_dropped_total",
                "switchyard.records.dropped",
                "Request records dropped because the record queue was full.",
                get(&self.records_dropped),
            ),
            (
                "switchyard_store_errors_total",
                "switchyard.store.errors",
                "Errors talking to the shared store.",
                get(&self.store_errors),
            ),
            (
                "switchyard_telemetry_spans_exported_total",
                "switchyard.telemetry.spans.exported",
                "Spans accepted by the OTLP collector.",
                get(&self.spans_exported),
            ),
            (
                "switchyard_telemetry_spans_dropped_total",
                "switchyard.telemetry.spans.dropped",
                "Spans dropped: export queue full or export failed.",
                get(&self.spans_dropped),
            ),
            (
                "switchyard_telemetry_exports_failed_total",
                "switchyard.telemetry.exports.failed",
                "OTLP exports (spans or metrics) that failed.",
                get(&self.exports_failed),
            ),
            (
                "switchyard_telemetry_series_overflow_total",
                "switchyard.telemetry.series.overflow",
                "Observations folded into the _overflow label set (too many label sets).",
                get(&self.series_overflow),
            ),
        ]
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let snap = self.snapshot();
        let mut out = String::with_capacity(4096 + snap.requests.len() * 2048);
        let o = &mut out;

        family(
            o,
            "switchyard_requests_total",
            "counter",
            "Requests by client key, model, provider and status.",
        );
        for (l, s) in &snap.requests {
            sample(
                o,
                "switchyard_requests_total",
                &req_labels(l),
                None,
                &s.requests.to_string(),
            );
        }
        family(
            o,
            "switchyard_cost_usd_total",
            "counter",
            "Cost of requests in USD.",
        );
        for (l, s) in &snap.requests {
            sample(
                o,
                "switchyard_cost_usd_total",
                &req_labels(l),
                None,
                &fmt_f64(s.cost_usd),
            );
        }
        for h in &HISTOGRAMS {
            let (name, help, bounds, get) = (h.prom, h.help, h.bounds, h.get);
            family(o, name, "histogram", help);
            for (l, s) in &snap.requests {
                histogram(o, name, &req_labels(l), bounds, get(s));
            }
        }
        let name = "gen_ai_client_token_usage";
        family(
            o,
            name,
            "histogram",
            "Number of input and output tokens used (gen_ai.client.token.usage).",
        );
        for (l, s) in &snap.requests {
            for (ty, h) in [("input", &s.input_tokens), ("output", &s.output_tokens)] {
                let mut labels = req_labels(l);
                labels.push(("token_type", ty.to_string()));
                histogram(o, name, &labels, TOKEN_BOUNDS, h);
            }
        }
        family(
            o,
            "switchyard_attempts_total",
            "counter",
            "Provider attempts by provider, model and provider status.",
        );
        for (l, n) in &snap.attempts {
            let labels = vec![
                ("provider", l.provider.clone()),
                ("model", l.model.clone()),
                ("status", l.status.clone()),
            ];
            sample(
                o,
                "switchyard_attempts_total",
                &labels,
                None,
                &n.to_string(),
            );
        }
        family(
            o,
            "switchyard_backend_cooldowns_total",
            "counter",
            "Times a backend (provider/model) entered cooldown.",
        );
        for (b, n) in &snap.cooldowns {
            sample(
                o,
                "switchyard_backend_cooldowns_total",
                &[("backend", b.clone())],
                None,
                &n.to_string(),
            );
        }
        family(
            o,
            "switchyard_config_reloads_total",
            "counter",
            "Config loads by result.",
        );
        for (result, n) in [
            ("ok", self.reloads_ok.load(Ordering::Relaxed)),
            ("error", self.reloads_failed.load(Ordering::Relaxed)),
        ] {
            sample(
                o,
                "switchyard_config_reloads_total",
                &[("result", result.to_string())],
                None,
                &n.to_string(),
            );
        }
        family(
            o,
            "switchyard_extproc_streams",
            "gauge",
            "Open ext_proc gRPC streams.",
        );
        sample(
            o,
            "switchyard_extproc_streams",
            &[],
            None,
            &self.extproc_streams.load(Ordering::Relaxed).to_string(),
        );
        for (name, _, help, v) in self.counters() {
            family(o, name, "counter", help);
            sample(o, name, &[], None, &v.to_string());
        }
        out
    }

    /// The same numbers as OTLP metrics (cumulative temporality since `start_ns`).
    pub(crate) fn to_otlp(
        &self,
        start_ns: u64,
        now_ns: u64,
        names: &ProviderMap,
    ) -> Vec<proto::Metric> {
        let pname = |id: &str| provider_name(names, id).into_owned();
        use proto::{
            HistogramDataPoint, Metric, NumberDataPoint, kv_int, kv_str, metric::Data,
            number_data_point::Value,
        };
        let snap = self.snapshot();
        let attrs = |l: &Labels| {
            let mut v = vec![
                kv_str("gen_ai.operation.name", l.operation),
                kv_str("switchyard.key.name", l.key.as_str()),
                kv_str("switchyard.provider", l.provider.as_str()),
                kv_str(
                    "gen_ai.provider.name",
                    if l.provider.is_empty() {
                        String::new()
                    } else {
                        pname(&l.provider)
                    },
                ),
                kv_str("gen_ai.request.model", l.request_model.as_str()),
                kv_str("gen_ai.response.model", l.model.as_str()),
                kv_int("http.response.status_code", i64::from(l.status)),
            ];
            if !l.error_type.is_empty() {
                v.push(kv_str("error.type", l.error_type.as_str()));
            }
            v
        };
        let hist_point = |attributes, h: &Hist, bounds: &[f64]| HistogramDataPoint {
            attributes,
            start_time_unix_nano: start_ns,
            time_unix_nano: now_ns,
            count: h.count,
            sum: Some(h.sum),
            bucket_counts: h.counts.clone(),
            explicit_bounds: bounds.to_vec(),
            min: None,
            max: None,
        };
        let num_point = |attributes, v: Value| NumberDataPoint {
            attributes,
            start_time_unix_nano: start_ns,
            time_unix_nano: now_ns,
            value: Some(v),
        };
        let sum = |name: &str, desc: &str, unit: &str, points: Vec<NumberDataPoint>| Metric {
            name: name.into(),
            description: desc.into(),
            unit: unit.into(),
            data: Some(Data::Sum(proto::Sum {
                data_points: points,
                aggregation_temporality: proto::TEMPORALITY_CUMULATIVE,
                is_monotonic: true,
            })),
        };
        let hist = |name: &str, desc: &str, unit: &str, points: Vec<HistogramDataPoint>| Metric {
            name: name.into(),
            description: desc.into(),
            unit: unit.into(),
            data: Some(Data::Histogram(proto::Histogram {
                data_points: points,
                aggregation_temporality: proto::TEMPORALITY_CUMULATIVE,
            })),
        };

        let mut out = Vec::new();
        let reqs = &snap.requests;
        out.push(sum(
            "switchyard.requests",
            "Requests by client key, model, provider and status.",
            "{request}",
            reqs.iter()
                .map(|(l, s)| num_point(attrs(l), Value::AsInt(s.requests as i64)))
                .collect(),
        ));
        out.push(sum(
            "switchyard.cost",
            "Cost of requests.",
            "USD",
            reqs.iter()
                .map(|(l, s)| num_point(attrs(l), Value::AsDouble(s.cost_usd)))
                .collect(),
        ));
        for h in &HISTOGRAMS {
            let (name, desc, bounds, get) = (h.otlp, h.help, h.bounds, h.get);
            let points: Vec<_> = reqs
                .iter()
                .filter(|(_, s)| get(s).count > 0)
                .map(|(l, s)| hist_point(attrs(l), get(s), bounds))
                .collect();
            if !points.is_empty() {
                out.push(hist(name, desc, "s", points));
            }
        }
        let mut token_points = Vec::new();
        for (l, s) in reqs {
            for (ty, h) in [("input", &s.input_tokens), ("output", &s.output_tokens)] {
                if h.count > 0 {
                    let mut a = attrs(l);
                    a.push(kv_str("gen_ai.token.type", ty));
                    token_points.push(hist_point(a, h, TOKEN_BOUNDS));
                }
            }
        }
        if !token_points.is_empty() {
            out.push(hist(
                "gen_ai.client.token.usage",
                "Number of input and output tokens used.",
                "{token}",
                token_points,
            ));
        }
        out.push(sum(
            "switchyard.attempts",
            "Provider attempts by provider, model and provider status.",
            "{attempt}",
            snap.attempts
                .iter()
                .map(|(l, n)| {
                    num_point(
                        vec![
                            kv_str("switchyard.provider", l.provider.as_str()),
                            kv_str("gen_ai.provider.name", pname(&l.provider)),
                            kv_str("gen_ai.request.model", l.model.as_str()),
                            kv_str("http.response.status_code", l.status.as_str()),
                        ],
                        Value::AsInt(*n as i64),
                    )
                })
                .collect(),
        ));
        out.push(sum(
            "switchyard.backend.cooldowns",
            "Times a backend entered cooldown.",
            "{cooldown}",
            snap.cooldowns
                .iter()
                .map(|(b, n)| {
                    num_point(
                        vec![kv_str("switchyard.backend", b.as_str())],
                        Value::AsInt(*n as i64),
                    )
                })
                .collect(),
        ));
        out.push(sum(
            "switchyard.config.reloads",
            "Config loads by result.",
            "{reload}",
            [
                ("ok", self.reloads_ok.load(Ordering::Relaxed)),
                ("error", self.reloads_failed.load(Ordering::Relaxed)),
            ]
            .into_iter()
            .map(|(r, n)| num_point(vec![kv_str("result", r)], Value::AsInt(n as i64)))
            .collect(),
        ));
        out.push(Metric {
            name: "switchyard.extproc.streams".into(),
            description: "Open ext_proc gRPC streams.".into(),
            unit: "{stream}".into(),
            data: Some(Data::Gauge(proto::Gauge {
                data_points: vec![num_point(
                    Vec::new(),
                    Value::AsInt(self.extproc_streams.load(Ordering::Relaxed)),
                )],
            })),
        });
        for (_, name, help, v) in self.counters() {
            out.push(sum(
                name,
                help,
                "1",
                vec![num_point(Vec::new(), Value::AsInt(v as i64))],
            ));
        }
        out
    }
}

struct Snapshot {
    requests: Vec<(Labels, Series)>,
    attempts: Vec<(AttemptLabels, u64)>,
    cooldowns: Vec<(String, u64)>,
}

fn req_labels(l: &Labels) -> Vec<(&'static str, String)> {
    vec![
        ("key", l.key.clone()),
        ("operation", l.operation.to_string()),
        ("provider", l.provider.clone()),
        ("request_model", l.request_model.clone()),
        ("model", l.model.clone()),
        ("status", l.status.to_string()),
        ("error_type", l.error_type.clone()),
    ]
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, String)], le: Option<&str>, value: &str) {
    out.push_str(name);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        let extra = le.map(|v| ("le", v));
        for (k, v) in labels.iter().map(|(k, v)| (*k, v.as_str())).chain(extra) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape_label_into(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

fn histogram(out: &mut String, name: &str, labels: &[(&str, String)], bounds: &[f64], h: &Hist) {
    if h.count == 0 {
        return;
    }
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0u64;
    for (i, b) in bounds.iter().enumerate() {
        cumulative += h.counts.get(i).copied().unwrap_or(0);
        sample(
            out,
            &bucket,
            labels,
            Some(&fmt_f64(*b)),
            &cumulative.to_string(),
        );
    }
    sample(out, &bucket, labels, Some("+Inf"), &h.count.to_string());
    sample(out, &format!("{name}_sum"), labels, None, &fmt_f64(h.sum));
    sample(
        out,
        &format!("{name}_count"),
        labels,
        None,
        &h.count.to_string(),
    );
}

/// Label values: backslash, double quote and line feed are escaped.
pub fn escape_label_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}
