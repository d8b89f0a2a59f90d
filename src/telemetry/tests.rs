//! Telemetry tests. The OTLP receiver in `harness` is a real tonic gRPC server (and a hyper
//! OTLP/HTTP server) built on the official `opentelemetry-proto` generated types, so these
//! tests also prove the hand-written `proto` messages are the standard wire format.

use super::context::{attempt_span_id, ratio_sampled};
use super::*;
use crate::record::{AttemptRecord, SkippedRecord};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest as OtMetricsReq;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as OtTraceReq;
use opentelemetry_proto::tonic::common::v1::{KeyValue as OtKv, any_value::Value as OtValue};
use opentelemetry_proto::tonic::metrics::v1::{
    Metric as OtMetric, metric::Data as OtData, number_data_point::Value as OtNum,
};
use opentelemetry_proto::tonic::trace::v1::Span as OtSpan;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const CLIENT_TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const SECRET: &str = "sk-proj-SECRETSECRETSECRET0123456789";
const COLLECTOR_TOKEN: &str = "collector-token-XYZ987";

// === records ===

fn streamed_chat() -> Record {
    Record {
        id: "req_chat_1".into(),
        ts: "2025-03-01T12:00:00.250Z".into(),
        key_id: Some("key_0a1b2c3d4e5f".into()),
        key_name: Some("team-a".into()),
        endpoint: "/v1/chat/completions".into(),
        requested_model: Some("smart".into()),
        resolved_model: Some("claude-sonnet".into()),
        provider: Some("anthropic-main".into()),
        route: Some("primary".into()),
        rule: Some("tags.tier == \"gold\"".into()),
        reason: None,
        strategy: Some("fallback".into()),
        attempts: vec![
            AttemptRecord {
                provider: "openai-main".into(),
                model: "gpt-4o".into(),
                status: Some(503),
                latency_ms: 120.5,
                error: Some("upstream 503: overloaded".into()),
                start_offset_ms: Some(1.5),
            },
            AttemptRecord {
                provider: "anthropic-main".into(),
                model: "claude-sonnet".into(),
                status: Some(200),
                latency_ms: 700.0,
                error: None,
                start_offset_ms: Some(125.0),
            },
        ],
        skipped: vec![SkippedRecord {
            provider: "openai-backup".into(),
            model: "gpt-4o".into(),
            reason: "cooling_down".into(),
        }],
        fallback_count: 1,
        status: 200,
        outcome: "ok".into(),
        error: None,
        stream: true,
        input_tokens: 120,
        output_tokens: 48,
        latency_ms: 850.5,
        ttft_ms: Some(210.25),
        overhead_ms: 0.75,
        cost_usd: 0.00123,
        session_id: Some("sess-42".into()),
        tags: vec!["tier=gold".into()],
        ..Record::default()
    }
}

fn rate_limited() -> Record {
    Record {
        id: "req_429".into(),
        ts: "2025-03-01T12:00:01Z".into(),
        key_id: Some("key_ffeeddccbbaa".into()),
        key_name: Some("team-b".into()),
        endpoint: "/v1/chat/completions".into(),
        requested_model: Some("gpt-4o".into()),
        status: 429,
        outcome: "rate_limited".into(),
        error: Some("token budget for this hour is spent".into()),
        latency_ms: 0.4,
        overhead_ms: 0.3,
        ..Record::default()
    }
}

fn embeddings() -> Record {
    Record {
        id: "req_emb".into(),
        ts: "2025-03-01T12:00:02Z".into(),
        key_name: Some("team-a".into()),
        endpoint: "/v1/embeddings".into(),
        requested_model: Some("text-embedding-3-small".into()),
        resolved_model: Some("text-embedding-3-small".into()),
        provider: Some("openai-main".into()),
        route: Some("default".into()),
        strategy: Some("single".into()),
        attempts: vec![AttemptRecord {
            provider: "openai-main".into(),
            model: "text-embedding-3-small".into(),
            status: Some(200),
            latency_ms: 35.0,
            error: None,
            start_offset_ms: Some(0.5),
        }],
        status: 200,
        outcome: "ok".into(),
        input_tokens: 16,
        latency_ms: 36.0,
        overhead_ms: 0.2,
        cost_usd: 0.00000032,
        ..Record::default()
    }
}

/// A record carrying a client key / provider-looking secret everywhere free text can go.
fn leaky() -> Record {
    Record {
        id: "req_leak".into(),
        ts: "2025-03-01T12:00:03Z".into(),
        key_name: Some("team-a".into()),
        endpoint: "/v1/chat/completions".into(),
        requested_model: Some(SECRET.into()),
        session_id: Some(format!("Bearer {SECRET}")),
        tags: vec![format!("api_key={SECRET}"), "tier=gold".into()],
        attempts: vec![AttemptRecord {
            provider: "openai-main".into(),
            model: "gpt-4o".into(),
            status: Some(401),
            latency_ms: 20.0,
            error: Some(format!("Incorrect API key provided: {SECRET}.")),
            start_offset_ms: None,
        }],
        status: 401,
        outcome: "error".into(),
        error: Some(format!(
            "provider said: Incorrect API key provided: {SECRET}"
        )),
        latency_ms: 21.0,
        // Logged bodies stay in the record; they are never exported.
        request_body: Some(format!(r#"{{"messages":[{{"content":"key {SECRET}"}}]}}"#)),
        response_body: Some(format!("provider said: {SECRET}")),
        ..Record::default()
    }
}

fn names_for_tests(t: &Telemetry) {
    t.inner.names.set(vec![
        ("openai-main".into(), crate::config::ProviderKind::OpenAi),
        (
            "anthropic-main".into(),
            crate::config::ProviderKind::Anthropic,
        ),
    ]);
}

// === trace context ===

#[test]
fn traceparent_parse_and_format() {
    let tc = parse_traceparent(CLIENT_TP).expect("valid");
    assert_eq!(tc.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(tc.span_id_hex(), "00f067aa0ba902b7");
    assert!(tc.sampled);
    assert_eq!(tc.to_header(), CLIENT_TP);
    assert_eq!(
        traceparent_for(tc.trace_id, tc.span_id, false),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    );
    // Only bit 0 of the flags means sampled.
    let unsampled = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02");
    assert_eq!(unsampled.map(|t| t.sampled), Some(false));
    // A future version may append fields.
    assert!(
        parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")
            .is_some()
    );
    for bad in [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
    ] {
        assert_eq!(parse_traceparent(bad), None, "{bad:?}");
    }
}

#[test]
fn request_trace_follows_the_client_and_samples_by_ratio() {
    let t = RequestTrace::begin(Some(CLIENT_TP), 0.0);
    let client = parse_traceparent(CLIENT_TP).expect("valid");
    assert_eq!(t.trace_id, client.trace_id);
    assert_eq!(t.parent_span_id, Some(client.span_id));
    assert_ne!(t.span_id, client.span_id);
    assert!(t.sampled, "the client's sampled flag wins over ratio 0");
    let off = RequestTrace::begin(
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        1.0,
    );
    assert!(
        !off.sampled,
        "the client's unsampled flag wins over ratio 1"
    );
    let fresh = RequestTrace::begin(Some("garbage"), 1.0);
    assert!(fresh.sampled && fresh.parent_span_id.is_none());
    assert_ne!(fresh.trace_id, client.trace_id);

    // The attempt header names the attempt span as the provider's parent.
    let tp = parse_traceparent(&t.traceparent_for_attempt(1)).expect("valid");
    assert_eq!(tp.trace_id, t.trace_id);
    assert_eq!(tp.span_id, attempt_span_id(t.span_id, 1));
    let ids: std::collections::HashSet<_> =
        (0..100).map(|i| attempt_span_id(t.span_id, i)).collect();
    assert_eq!(ids.len(), 100);
    assert!(!ids.contains(&t.span_id) && !ids.contains(&[0; 8]));

    assert!(!ratio_sampled(&[7; 16], 0.0));
    assert!(ratio_sampled(&[7; 16], 1.0));
    let kept = (0..4000)
        .filter(|_| ratio_sampled(&context::random_trace_id(), 0.25))
        .count();
    assert!((800..1200).contains(&kept), "{kept} of 4000 at 0.25");
}

// === config ===

fn raw(yaml: &str) -> RawTelemetry {
    serde_yaml::from_str(yaml).expect("parses")
}

#[test]
fn config_full_section_validates() {
    // A file secret (setting an env var is `unsafe` in edition 2024).
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("token"),
        format!("Bearer {COLLECTOR_TOKEN}\n"),
    )
    .expect("write");
    let r = raw(
        "otlp_endpoint: http://127.0.0.1:4318/base/\nprotocol: http\nsampling_ratio: 0.25\nservice_name: gw\nresource_attributes: { deployment.environment: prod }\nheaders: { authorization: { file: token }, x-tenant: team-a }\nexport_interval_ms: 1000\n",
    );
    let c = TelemetryConfig::from_raw(Some(&r), dir.path())
        .expect("valid")
        .expect("on");
    assert_eq!(c.protocol, Protocol::Http);
    assert_eq!(c.sampling_ratio, 0.25);
    assert_eq!(c.service_name, "gw");
    assert_eq!(c.export_interval, Duration::from_millis(1000));
    assert_eq!(
        c.resource_attributes,
        vec![("deployment.environment".to_string(), "prod".to_string())]
    );
    assert_eq!(c.headers.len(), 2);
    assert_eq!(
        c.headers[0].1.to_str().ok(),
        Some(&*format!("Bearer {COLLECTOR_TOKEN}"))
    );
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains(COLLECTOR_TOKEN) && !dbg.contains("team-a"),
        "{dbg}"
    );
    assert!(dbg.contains("authorization: <redacted>"));

    // Defaults.
    let c = TelemetryConfig::from_raw(
        Some(&raw("otlp_endpoint: http://collector:4317")),
        dir.path(),
    )
    .expect("valid")
    .expect("on");
    assert_eq!(c.protocol, Protocol::Grpc);
    assert_eq!(c.sampling_ratio, 1.0);
    assert_eq!(c.service_name, "switchyard");
    assert_eq!(c.export_interval, Duration::from_millis(5000));

    // Off.
    assert!(
        TelemetryConfig::from_raw(None, dir.path())
            .expect("ok")
            .is_none()
    );
    let off = raw("enabled: false\notlp_endpoint: nonsense");
    assert!(
        TelemetryConfig::from_raw(Some(&off), dir.path())
            .expect("ok")
            .is_none()
    );
}

#[test]
fn config_errors_name_the_field() {
    let base = Path::new(".");
    let errs = |yaml: &str| TelemetryConfig::from_raw(Some(&raw(yaml)), base).expect_err("invalid");
    let e = errs(
        "protocol: thrift\nsampling_ratio: 1.5\notlp_endpoint: https://collector:4317\nexport_interval_ms: 10\nheaders: { \"bad header\": x, ok: { env: SWITCHYARD_TEST_SURELY_UNSET_VAR } }",
    );
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "telemetry.protocol",
            "telemetry.otlp_endpoint",
            "telemetry.sampling_ratio",
            "telemetry.export_interval_ms",
            "telemetry.headers.bad header",
            "telemetry.headers.ok",
        ],
        "{e:?}"
    );
    assert!(e[1].message.contains("https is not supported"), "{e:?}");
    assert!(
        e[5].message
            .contains("SWITCHYARD_TEST_SURELY_UNSET_VAR is not set")
    );
    assert!(e.iter().all(|e| !e.fix.is_empty()));

    let e = errs("sampling_ratio: 0.5");
    assert_eq!(e[0].path, "telemetry.otlp_endpoint");
    assert!(e[0].fix.contains("enabled: false"));
    let e = errs("otlp_endpoint: collector:4317");
    assert_eq!(e[0].path, "telemetry.otlp_endpoint");
    assert!(e[0].fix.contains("http://"), "{e:?}");
    let e = errs("otlp_endpoint: http://c:4317\nresource_attributes: { service.name: x }");
    assert!(e[0].fix.contains("service_name"));

    // deny_unknown_fields: a typo is an error naming the field.
    let typo = serde_yaml::from_str::<RawTelemetry>("otlp_endpont: http://c:4317")
        .expect_err("unknown field");
    assert!(typo.to_string().contains("otlp_endpont"), "{typo}");
    let bad_ref = serde_yaml::from_str::<RawTelemetry>("headers: { a: { env: X, nope: 1 } }");
    assert!(bad_ref.is_err());
}

// === scrub ===

#[test]
fn scrub_blanks_credentials_only() {
    use spans::scrub;
    assert!(matches!(
        scrub("gpt-4o-mini"),
        std::borrow::Cow::Borrowed(_)
    ));
    assert_eq!(scrub("task-runner"), "task-runner");
    assert_eq!(
        scrub(&format!("Incorrect API key provided: {SECRET}.")),
        "Incorrect API key provided: [REDACTED]."
    );
    assert_eq!(scrub(&format!("api_key={SECRET}")), "[REDACTED]");
    assert_eq!(
        scrub("Authorization: Bearer abc.def-ghi"),
        "Authorization: Bearer [REDACTED]"
    );
    assert_eq!(
        scrub("AKIAIOSFODNN7EXAMPLE in us-east-1"),
        "[REDACTED] in us-east-1"
    );
    assert_eq!(scrub("AIzaSyA-1234567890abcdef"), "[REDACTED]");
    assert_eq!(scrub("sk-short"), "sk-short", "too short to be a key");
    assert_eq!(scrub("sk-sy-0011223344556677"), "[REDACTED]");
}

// === Prometheus ===

#[derive(Debug)]
struct PromSample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict reader of the text format: every line is a HELP, a TYPE or a sample; a sample's
/// family was declared by a TYPE line before it.
fn parse_prometheus(text: &str) -> Vec<PromSample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(rest.split_once(' ').is_some(), "{line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "duplicate {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let name_end = line.find(['{', ' ']).expect("name");
        let name = &line[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{name}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            loop {
                let (start, c) = chars.next().expect("label or }");
                if c == '}' {
                    rest = &r[start + 1..];
                    break;
                }
                let mut key = String::from(c);
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    key.push(c);
                }
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                let mut val = String::new();
                loop {
                    let (_, c) = chars.next().expect("closing quote");
                    match c {
                        '"' => break,
                        '\\' => match chars.next().map(|x| x.1) {
                            Some('\\') => val.push('\\'),
                            Some('"') => val.push('"'),
                            Some('n') => val.push('\n'),
                            other => panic!("bad escape {other:?} in {line}"),
                        },
                        '\n' => panic!("raw newline"),
                        c => val.push(c),
                    }
                }
                assert!(
                    labels.insert(key, val).is_none(),
                    "duplicate label in {line}"
                );
                if let Some((_, ',')) = chars.peek() {
                    chars.next();
                }
            }
        }
        let value = rest.strip_prefix(' ').expect("space before value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value {v:?}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample before its TYPE: {line}");
        out.push(PromSample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

fn find<'a>(samples: &'a [PromSample], name: &str, want: &[(&str, &str)]) -> Vec<&'a PromSample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

fn one(samples: &[PromSample], name: &str, want: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, want);
    assert_eq!(found.len(), 1, "{name} {want:?}: {found:?}");
    found[0].value
}

#[test]
fn prometheus_text_is_parseable_and_counts_records() {
    let t = Telemetry::start(None);
    let m = t.metrics();
    let chat = streamed_chat();
    m.observe(&chat);
    m.observe(&chat);
    m.observe(&rate_limited());
    m.observe(&embeddings());
    let mut weird = embeddings();
    weird.key_name = Some("we\"ird\\key\nname".into());
    m.observe(&weird);
    m.config_reload(true);
    m.config_reload(true);
    m.config_reload(false);
    m.backend_cooldown("openai-main/gpt-4o");
    m.record_dropped(5);
    m.store_error();
    m.extproc_streams_inc();
    m.extproc_streams_inc();
    m.extproc_streams_dec();

    let text = m.render_prometheus();
    let s = parse_prometheus(&text);
    let chat_l = [
        ("key", "team-a"),
        ("model", "claude-sonnet"),
        ("provider", "anthropic-main"),
        ("status", "200"),
    ];
    assert_eq!(one(&s, "switchyard_requests_total", &chat_l), 2.0);
    assert_eq!(
        one(
            &s,
            "switchyard_requests_total",
            &[
                ("key", "team-b"),
                ("status", "429"),
                ("error_type", "rate_limited"),
                ("request_model", "gpt-4o"),
                ("model", ""),
                ("operation", "chat")
            ]
        ),
        1.0
    );
    assert_eq!(
        one(
            &s,
            "switchyard_requests_total",
            &[("key", "we\"ird\\key\nname"), ("operation", "embeddings")]
        ),
        1.0
    );
    assert!(
        text.contains("key=\"we\\\"ird\\\\key\\nname\""),
        "escaped on the wire"
    );
    assert!((one(&s, "switchyard_cost_usd_total", &chat_l) - 0.00246).abs() < 1e-12);

    // Token usage: input and output series per label set; cumulative buckets end at count.
    let input = [chat_l.as_slice(), &[("token_type", "input")]].concat();
    assert_eq!(one(&s, "gen_ai_client_token_usage_count", &input), 2.0);
    assert_eq!(one(&s, "gen_ai_client_token_usage_sum", &input), 240.0);
    assert_eq!(
        one(
            &s,
            "gen_ai_client_token_usage_bucket",
            &[input.as_slice(), &[("le", "64")]].concat()
        ),
        0.0
    );
    assert_eq!(
        one(
            &s,
            "gen_ai_client_token_usage_bucket",
            &[input.as_slice(), &[("le", "256")]].concat()
        ),
        2.0
    );
    let output = [chat_l.as_slice(), &[("token_type", "output")]].concat();
    assert_eq!(one(&s, "gen_ai_client_token_usage_sum", &output), 96.0);
    assert!(
        find(
            &s,
            "gen_ai_client_token_usage_count",
            &[("operation", "embeddings"), ("token_type", "output")]
        )
        .is_empty(),
        "no output tokens recorded for embeddings"
    );
    for family in [
        "gen_ai_client_token_usage",
        "gen_ai_server_request_duration_seconds",
        "gen_ai_server_time_to_first_token_seconds",
        "gen_ai_server_time_per_output_token_seconds",
    ] {
        let buckets = find(&s, &format!("{family}_bucket"), &[]);
        assert!(!buckets.is_empty(), "{family}");
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for b in buckets {
            let mut l = b.labels.clone();
            let le = l.remove("le").expect("le");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le")
            };
            series
                .entry(format!("{l:?}"))
                .or_default()
                .push((le, b.value));
        }
        for (_, bs) in series {
            assert!(
                bs.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{family} {bs:?}"
            );
            assert_eq!(bs.last().map(|b| b.0), Some(f64::INFINITY));
        }
    }
    assert_eq!(
        one(&s, "gen_ai_server_request_duration_seconds_count", &chat_l),
        2.0
    );
    assert!((one(&s, "gen_ai_server_request_duration_seconds_sum", &chat_l) - 1.701).abs() < 1e-9);
    assert_eq!(
        one(
            &s,
            "gen_ai_server_request_duration_seconds_count",
            &[("status", "429")]
        ),
        1.0
    );
    assert!(
        (one(&s, "gen_ai_server_time_to_first_token_seconds_sum", &chat_l) - 0.4205).abs() < 1e-9
    );
    let tpot = (0.8505 - 0.21025) / 47.0;
    assert!(
        (one(
            &s,
            "gen_ai_server_time_per_output_token_seconds_sum",
            &chat_l
        ) - 2.0 * tpot)
            .abs()
            < 1e-9
    );
    assert!(
        find(
            &s,
            "gen_ai_server_time_to_first_token_seconds_count",
            &[("operation", "embeddings")]
        )
        .is_empty()
    );

    assert_eq!(
        one(
            &s,
            "switchyard_attempts_total",
            &[
                ("provider", "openai-main"),
                ("model", "gpt-4o"),
                ("status", "503")
            ]
        ),
        2.0
    );
    assert_eq!(
        one(
            &s,
            "switchyard_attempts_total",
            &[("provider", "anthropic-main"), ("status", "200")]
        ),
        2.0
    );
    assert_eq!(
        one(
            &s,
            "switchyard_backend_cooldowns_total",
            &[("backend", "openai-main/gpt-4o")]
        ),
        1.0
    );
    assert_eq!(
        one(&s, "switchyard_config_reloads_total", &[("result", "ok")]),
        2.0
    );
    assert_eq!(
        one(
            &s,
            "switchyard_config_reloads_total",
            &[("result", "error")]
        ),
        1.0
    );
    assert_eq!(one(&s, "switchyard_records_dropped_total", &[]), 5.0);
    assert_eq!(one(&s, "switchyard_store_errors_total", &[]), 1.0);
    assert_eq!(one(&s, "switchyard_extproc_streams", &[]), 1.0);
    assert_eq!(
        one(&s, "switchyard_telemetry_spans_dropped_total", &[]),
        0.0
    );
}

#[test]
fn label_sets_are_bounded() {
    let m = Metrics::default();
    for i in 0..metrics::MAX_SERIES + 50 {
        let mut r = rate_limited();
        r.requested_model = Some(format!("client-chosen-{i}"));
        m.observe(&r);
    }
    let s = parse_prometheus(&m.render_prometheus());
    let series = find(&s, "switchyard_requests_total", &[]);
    assert_eq!(series.len(), metrics::MAX_SERIES + 1);
    assert_eq!(
        one(
            &s,
            "switchyard_requests_total",
            &[("key", "_overflow"), ("status", "429")]
        ),
        50.0
    );
    assert_eq!(
        one(&s, "switchyard_telemetry_series_overflow_total", &[]),
        50.0
    );
    let total: f64 = series.iter().map(|s| s.value).sum();
    assert_eq!(total, (metrics::MAX_SERIES + 50) as f64);
}

// === spans (pure) ===

#[test]
fn off_means_metrics_only() {
    let t = Telemetry::start(None);
    assert!(!t.tracing_enabled());
    assert!(t.begin(Some(CLIENT_TP)).is_none());
    t.on_record(&streamed_chat(), None);
    let s = parse_prometheus(&t.metrics().render_prometheus());
    assert_eq!(
        one(&s, "switchyard_requests_total", &[("key", "team-a")]),
        1.0
    );
    assert_eq!(t.metrics().spans_dropped(), 0);
}

fn encoded(r: &Record, trace: &RequestTrace, now_ns: u64) -> Vec<OtSpan> {
    let mut out = Vec::new();
    let n = spans::encode(r, trace, &spans::ProviderMap::new(), now_ns, &mut out);
    let decoded =
        <opentelemetry_proto::tonic::trace::v1::ScopeSpans as prost::Message>::decode(&out[..])
            .expect("standard ScopeSpans bytes");
    assert_eq!(decoded.spans.len(), n);
    decoded.spans
}

#[test]
fn spans_without_offsets_run_back_to_back() {
    let mut r = streamed_chat();
    for a in &mut r.attempts {
        a.start_offset_ms = None;
    }
    let trace = RequestTrace::begin(None, 1.0);
    let spans = encoded(&r, &trace, 0);
    let start = spans[0].start_time_unix_nano;
    assert_eq!(spans[1].start_time_unix_nano, start);
    assert_eq!(spans[2].start_time_unix_nano, start + 120_500_000);
    // Without a provider map the provider id is the name.
    assert_eq!(
        s_attr(&spans[1].attributes, "gen_ai.provider.name").as_deref(),
        Some("openai-main")
    );
    // An unparseable ts ends the request span at `now`.
    r.ts = "yesterday".into();
    let spans = encoded(&r, &trace, 10_000_000_000);
    assert_eq!(spans[0].end_time_unix_nano, 10_000_000_000);
}

#[test]
fn wire_encoding_round_trips_edge_values() {
    let mut r = streamed_chat();
    r.input_tokens = u64::MAX;
    r.cost_usd = -0.0;
    r.error = Some("é".repeat(2000));
    r.status = 599;
    r.outcome = "error".into();
    r.tags = (0..300)
        .map(|i| format!("k{i}={}", "v".repeat(i)))
        .collect();
    r.attempts[0].status = None;
    let trace = RequestTrace::begin(Some(CLIENT_TP), 1.0);
    let spans = encoded(&r, &trace, 0);
    let a = &spans[0].attributes;
    assert_eq!(i_attr(a, "gen_ai.usage.input_tokens"), Some(i64::MAX));
    assert_eq!(
        f_attr(a, "switchyard.cost_usd").map(f64::to_bits),
        Some((-0.0f64).to_bits())
    );
    let err = s_attr(a, "switchyard.error").expect("error");
    assert!(
        err.len() <= 1024 + 3 && err.ends_with('…'),
        "cut at a char boundary"
    );
    assert_eq!(strs_attr(a, "switchyard.tags").map(|t| t.len()), Some(300));
    assert_eq!(spans[0].status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(spans[0].flags, 0x301);
    assert_eq!(spans[1].flags, 0x101);
    assert_eq!(
        s_attr(&spans[1].attributes, "error.type").as_deref(),
        Some("_OTHER")
    );
    assert_eq!(
        i_attr(&spans[1].attributes, "http.response.status_code"),
        None
    );
    let mut r = rate_limited();
    r.status = 7;
    let spans = encoded(&r, &trace, 0);
    assert_eq!(
        i_attr(&spans[0].attributes, "http.response.status_code"),
        Some(7)
    );
    let mut r = streamed_chat();
    r.attempts[0].status = Some(65535);
    let spans = encoded(&r, &trace, 0);
    assert_eq!(
        s_attr(&spans[1].attributes, "error.type").as_deref(),
        Some("65535")
    );
    assert_eq!(wire::varint_len(0), 1);
    assert_eq!(wire::varint_len(127), 1);
    assert_eq!(wire::varint_len(128), 2);
    assert_eq!(wire::varint_len(u64::MAX), 10);
}

// === logging ===

#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn json_logs_carry_request_and_trace_ids() {
    let out = Captured::default();
    let w = out.clone();
    let sub = logging::subscriber(true, "warn", move || w.clone()).expect("subscriber");
    let trace = RequestTrace::begin(Some(CLIENT_TP), 1.0);
    tracing::subscriber::with_default(sub, || {
        let span = request_span("req_77", Some(&trace));
        let _g = span.enter();
        tracing::info!("filtered out");
        tracing::warn!(attempt = 2, "provider answered 503");
    });
    let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let l = &lines[0];
    assert_eq!(l["message"], "provider answered 503");
    assert_eq!(l["attempt"], 2);
    assert_eq!(l["span"]["request_id"], "req_77");
    assert_eq!(l["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(l["span"]["span_id"], trace.span_id_hex());
    assert!(logging::subscriber(true, "not a [level", std::io::stderr).is_err());
}

// === OTLP receiver harness ===

mod harness {
    use super::{OtMetricsReq, OtTraceReq};
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsServiceResponse,
        metrics_service_server::{MetricsService, MetricsServiceServer},
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    };
    use prost::Message;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    /// What a receiver got: decoded requests, their raw protobuf bytes, and request headers.
    #[derive(Clone, Default)]
    pub struct Received {
        pub traces: Arc<Mutex<Vec<OtTraceReq>>>,
        pub metrics: Arc<Mutex<Vec<OtMetricsReq>>>,
        pub bytes: Arc<Mutex<Vec<u8>>>,
        pub headers: Arc<Mutex<Vec<(String, String)>>>,
        pub paths: Arc<Mutex<Vec<String>>>,
    }

    impl Received {
        fn header(&self, k: &str, v: Option<&str>) {
            if let Some(v) = v {
                self.headers
                    .lock()
                    .expect("lock")
                    .push((k.to_string(), v.to_string()));
            }
        }
    }

    struct Traces(Received);
    struct Metrics(Received);

    #[tonic::async_trait]
    impl TraceService for Traces {
        async fn export(
            &self,
            req: tonic::Request<OtTraceReq>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let md = req.metadata();
            self.0.header(
                "authorization",
                md.get("authorization").and_then(|v| v.to_str().ok()),
            );
            let msg = req.into_inner();
            self.0
                .bytes
                .lock()
                .expect("lock")
                .extend(msg.encode_to_vec());
            self.0.traces.lock().expect("lock").push(msg);
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    #[tonic::async_trait]
    impl MetricsService for Metrics {
        async fn export(
            &self,
            req: tonic::Request<OtMetricsReq>,
        ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
            let msg = req.into_inner();
            self.0
                .bytes
                .lock()
                .expect("lock")
                .extend(msg.encode_to_vec());
            self.0.metrics.lock().expect("lock").push(msg);
            Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
        }
    }

    /// An OTLP/gRPC collector on a free loopback port.
    pub async fn grpc() -> (SocketAddr, Received) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let got = Received::default();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Traces(got.clone())))
            .add_service(MetricsServiceServer::new(Metrics(got.clone())))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(server);
        (addr, got)
    }

    /// An OTLP/HTTP (protobuf) collector on a free loopback port.
    pub async fn http() -> (SocketAddr, Received) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let got = Received::default();
        let g = got.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let g = g.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let g = g.clone();
                            async move {
                                let path = req.uri().path().to_string();
                                let ct = req
                                    .headers()
                                    .get("content-type")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_string);
                                g.header("content-type", ct.as_deref());
                                g.header(
                                    "authorization",
                                    req.headers()
                                        .get("authorization")
                                        .and_then(|v| v.to_str().ok()),
                                );
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                g.bytes.lock().expect("lock").extend_from_slice(&body);
                                g.paths.lock().expect("lock").push(path.clone());
                                let status = match path.as_str() {
                                    "/otlp/v1/traces" => {
                                        g.traces
                                            .lock()
                                            .expect("lock")
                                            .push(OtTraceReq::decode(body).expect("trace request"));
                                        200
                                    }
                                    "/otlp/v1/metrics" => {
                                        g.metrics.lock().expect("lock").push(
                                            OtMetricsReq::decode(body).expect("metrics request"),
                                        );
                                        200
                                    }
                                    _ => 404,
                                };
                                let resp = hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/x-protobuf")
                                    .body(Full::new(Bytes::new()))
                                    .expect("response");
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (addr, got)
    }

    /// A port nothing listens on.
    pub async fn closed_port() -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        addr
    }

    /// A collector that accepts connections and never answers.
    pub async fn black_hole() -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        addr
    }
}

fn spans_of(got: &harness::Received) -> Vec<OtSpan> {
    got.traces
        .lock()
        .expect("lock")
        .iter()
        .flat_map(|r| r.resource_spans.iter())
        .flat_map(|rs| rs.scope_spans.iter())
        .flat_map(|ss| ss.spans.iter().cloned())
        .collect()
}

fn last_metrics(got: &harness::Received) -> Vec<OtMetric> {
    got.metrics
        .lock()
        .expect("lock")
        .last()
        .map(|r| {
            r.resource_metrics
                .iter()
                .flat_map(|rm| rm.scope_metrics.iter())
                .flat_map(|sm| sm.metrics.iter().cloned())
                .collect()
        })
        .unwrap_or_default()
}

fn attr<'a>(attrs: &'a [OtKv], key: &str) -> Option<&'a OtValue> {
    let mut found = attrs.iter().filter(|kv| kv.key == key);
    let v = found
        .next()
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref());
    assert!(found.next().is_none(), "attribute {key} twice");
    v
}

fn s_attr(attrs: &[OtKv], key: &str) -> Option<String> {
    match attr(attrs, key) {
        Some(OtValue::StringValue(s)) => Some(s.clone()),
        None => None,
        other => panic!("{key} is not a string: {other:?}"),
    }
}

fn i_attr(attrs: &[OtKv], key: &str) -> Option<i64> {
    match attr(attrs, key) {
        Some(OtValue::IntValue(i)) => Some(*i),
        None => None,
        other => panic!("{key} is not an int: {other:?}"),
    }
}

fn f_attr(attrs: &[OtKv], key: &str) -> Option<f64> {
    match attr(attrs, key) {
        Some(OtValue::DoubleValue(f)) => Some(*f),
        None => None,
        other => panic!("{key} is not a double: {other:?}"),
    }
}

fn strs_attr(attrs: &[OtKv], key: &str) -> Option<Vec<String>> {
    match attr(attrs, key) {
        Some(OtValue::ArrayValue(a)) => Some(
            a.values
                .iter()
                .map(|v| match &v.value {
                    Some(OtValue::StringValue(s)) => s.clone(),
                    other => panic!("{other:?}"),
                })
                .collect(),
        ),
        None => None,
        other => panic!("{key} is not an array: {other:?}"),
    }
}

fn test_config(endpoint: String, protocol: Protocol) -> TelemetryConfig {
    let mut c = TelemetryConfig::new(endpoint.parse().expect("uri"), protocol);
    c.resource_attributes = vec![("deployment.environment".into(), "test".into())];
    let mut v = tonic::codegen::http::HeaderValue::from_str(&format!("Bearer {COLLECTOR_TOKEN}"))
        .expect("header");
    v.set_sensitive(true);
    c.headers = vec![(tonic::codegen::http::header::AUTHORIZATION, v)];
    c.export_timeout = Duration::from_secs(5);
    c
}

fn nanos(ts: &str) -> u64 {
    spans::start_unix_nanos(&Record {
        ts: ts.into(),
        ..Record::default()
    })
    .expect("ts")
}

#[tokio::test]
async fn grpc_export_matches_the_records() {
    let (addr, got) = harness::grpc().await;
    let t = Telemetry::start(Some(test_config(format!("http://{addr}"), Protocol::Grpc)));
    assert!(t.tracing_enabled());
    names_for_tests(&t);

    let chat = streamed_chat();
    let chat_trace = t.begin(Some(CLIENT_TP)).expect("on");
    t.on_record(&chat, Some(&chat_trace));
    t.on_record(&rate_limited(), t.begin(None).as_ref());
    t.on_record(&embeddings(), None);
    // The client asked not to sample: metrics count it, no spans.
    let mut unsampled = embeddings();
    unsampled.id = "req_unsampled".into();
    let off = t.begin(Some(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    ));
    t.on_record(&unsampled, off.as_ref());
    t.flush().await;

    // The collector header arrived (and is never inside the exported data: see the secrets test).
    assert!(
        got.headers
            .lock()
            .expect("lock")
            .iter()
            .any(|(k, v)| k == "authorization" && v == &format!("Bearer {COLLECTOR_TOKEN}"))
    );
    let reqs = got.traces.lock().expect("lock").clone();
    let res = reqs[0].resource_spans[0]
        .resource
        .as_ref()
        .expect("resource");
    assert_eq!(
        s_attr(&res.attributes, "service.name").as_deref(),
        Some("switchyard")
    );
    assert_eq!(
        s_attr(&res.attributes, "deployment.environment").as_deref(),
        Some("test")
    );
    assert_eq!(
        reqs[0].resource_spans[0].scope_spans[0]
            .scope
            .as_ref()
            .map(|s| s.name.as_str()),
        Some("switchyard")
    );

    let spans = spans_of(&got);
    assert_eq!(
        spans.len(),
        3 + 1 + 2,
        "{:#?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(!spans.iter().any(
        |s| s_attr(&s.attributes, "switchyard.request.id").as_deref() == Some("req_unsampled")
    ));

    // The streamed chat: request span continues the client's trace.
    let client = parse_traceparent(CLIENT_TP).expect("valid");
    let root = spans
        .iter()
        .find(|s| s_attr(&s.attributes, "switchyard.request.id").as_deref() == Some("req_chat_1"))
        .expect("chat span");
    assert_eq!(root.trace_id, client.trace_id);
    assert_eq!(root.parent_span_id, client.span_id);
    assert_eq!(root.span_id, chat_trace.span_id);
    assert_eq!(root.name, "chat smart");
    assert_eq!(root.kind, 2, "SERVER");
    assert_eq!(root.flags & 0xff, 1, "sampled");
    let start = nanos(&chat.ts);
    assert_eq!(root.start_time_unix_nano, start);
    assert_eq!(
        root.end_time_unix_nano - root.start_time_unix_nano,
        850_500_000
    );
    assert_eq!(root.status.as_ref().map_or(0, |s| s.code), 0, "unset: ok");
    let a = &root.attributes;
    assert_eq!(s_attr(a, "gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(
        s_attr(a, "gen_ai.provider.name").as_deref(),
        Some("anthropic")
    );
    assert_eq!(s_attr(a, "gen_ai.system").as_deref(), Some("anthropic"));
    assert_eq!(s_attr(a, "switchyard.provider"), chat.provider);
    assert_eq!(s_attr(a, "gen_ai.request.model"), chat.requested_model);
    assert_eq!(s_attr(a, "gen_ai.response.model"), chat.resolved_model);
    assert_eq!(
        i_attr(a, "gen_ai.usage.input_tokens"),
        Some(chat.input_tokens as i64)
    );
    assert_eq!(
        i_attr(a, "gen_ai.usage.output_tokens"),
        Some(chat.output_tokens as i64)
    );
    assert_eq!(s_attr(a, "gen_ai.conversation.id"), chat.session_id);
    assert_eq!(
        i_attr(a, "http.response.status_code"),
        Some(i64::from(chat.status))
    );
    assert_eq!(s_attr(a, "error.type"), None);
    assert_eq!(s_attr(a, "switchyard.key.name"), chat.key_name);
    assert_eq!(s_attr(a, "switchyard.key.id"), chat.key_id);
    assert_eq!(s_attr(a, "switchyard.route"), chat.route);
    assert_eq!(s_attr(a, "switchyard.rule"), chat.rule);
    assert_eq!(s_attr(a, "switchyard.strategy"), chat.strategy);
    assert_eq!(s_attr(a, "switchyard.reason"), None);
    assert_eq!(
        i_attr(a, "switchyard.fallback_count"),
        Some(i64::from(chat.fallback_count))
    );
    assert_eq!(i_attr(a, "switchyard.attempt_count"), Some(2));
    assert_eq!(f_attr(a, "switchyard.cost_usd"), Some(chat.cost_usd));
    assert_eq!(f_attr(a, "switchyard.latency_ms"), Some(chat.latency_ms));
    assert_eq!(f_attr(a, "switchyard.ttft_ms"), chat.ttft_ms);
    assert_eq!(f_attr(a, "switchyard.overhead_ms"), Some(chat.overhead_ms));
    assert_eq!(s_attr(a, "switchyard.outcome").as_deref(), Some("ok"));
    assert_eq!(
        attr(a, "switchyard.stream"),
        Some(&OtValue::BoolValue(true))
    );
    assert_eq!(strs_attr(a, "switchyard.tags"), Some(chat.tags.clone()));
    assert_eq!(
        strs_attr(a, "switchyard.skipped"),
        Some(vec!["openai-backup/gpt-4o: cooling_down".to_string()])
    );
    assert_eq!(
        s_attr(a, "url.path").as_deref(),
        Some("/v1/chat/completions")
    );

    // Its attempts: children, in order, with the ids the provider traceparent named.
    let mut kids: Vec<&OtSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id == root.span_id)
        .collect();
    kids.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(kids.len(), 2);
    for (i, (k, rec)) in kids.iter().zip(&chat.attempts).enumerate() {
        let sent = parse_traceparent(&chat_trace.traceparent_for_attempt(i)).expect("valid");
        assert_eq!(k.span_id, sent.span_id);
        assert_eq!(k.trace_id, client.trace_id);
        assert_eq!(k.kind, 3, "CLIENT");
        assert_eq!(k.name, format!("chat {}", rec.model));
        let offset = (rec.start_offset_ms.expect("offset") * 1e6) as u64;
        assert_eq!(k.start_time_unix_nano, start + offset);
        assert_eq!(
            k.end_time_unix_nano - k.start_time_unix_nano,
            (rec.latency_ms * 1e6) as u64
        );
        assert_eq!(
            s_attr(&k.attributes, "gen_ai.request.model").as_ref(),
            Some(&rec.model)
        );
        assert_eq!(
            s_attr(&k.attributes, "switchyard.provider").as_ref(),
            Some(&rec.provider)
        );
        assert_eq!(
            i_attr(&k.attributes, "http.response.status_code"),
            rec.status.map(i64::from)
        );
        assert_eq!(
            i_attr(&k.attributes, "switchyard.attempt.index"),
            Some(i as i64)
        );
    }
    let (failed, served) = (&kids[0].attributes, &kids[1].attributes);
    assert_eq!(
        s_attr(failed, "gen_ai.provider.name").as_deref(),
        Some("openai")
    );
    assert_eq!(s_attr(failed, "error.type").as_deref(), Some("503"));
    assert_eq!(
        s_attr(failed, "switchyard.attempt.error").as_deref(),
        Some("upstream 503: overloaded")
    );
    assert_eq!(
        kids[0]
            .status
            .as_ref()
            .map(|s| (s.code, s.message.as_str())),
        Some((2, "upstream 503: overloaded"))
    );
    assert_eq!(s_attr(failed, "gen_ai.response.model"), None);
    assert_eq!(
        s_attr(served, "gen_ai.provider.name").as_deref(),
        Some("anthropic")
    );
    assert_eq!(
        s_attr(served, "gen_ai.response.model").as_deref(),
        Some("claude-sonnet")
    );
    assert_eq!(i_attr(served, "gen_ai.usage.output_tokens"), Some(48));
    assert_eq!(s_attr(served, "error.type"), None);

    // The 429: a new trace, no parent, no attempts, an error.
    let rl = rate_limited();
    let r429 = spans
        .iter()
        .find(|s| s_attr(&s.attributes, "switchyard.request.id").as_deref() == Some("req_429"))
        .expect("429 span");
    assert_ne!(r429.trace_id, client.trace_id);
    assert_eq!(r429.trace_id.len(), 16);
    assert!(r429.parent_span_id.is_empty());
    assert!(!spans.iter().any(|s| s.parent_span_id == r429.span_id));
    assert_eq!(
        r429.status.as_ref().map(|s| (s.code, s.message.as_str())),
        Some((2, "token budget for this hour is spent"))
    );
    assert_eq!(
        i_attr(&r429.attributes, "http.response.status_code"),
        Some(429)
    );
    assert_eq!(
        s_attr(&r429.attributes, "error.type").as_deref(),
        Some("rate_limited")
    );
    assert_eq!(s_attr(&r429.attributes, "switchyard.key.name"), rl.key_name);
    assert_eq!(s_attr(&r429.attributes, "gen_ai.response.model"), None);
    assert_eq!(
        i_attr(&r429.attributes, "gen_ai.usage.input_tokens"),
        Some(0)
    );

    // Embeddings: operation name and one attempt.
    let emb = spans
        .iter()
        .find(|s| s_attr(&s.attributes, "switchyard.request.id").as_deref() == Some("req_emb"))
        .expect("embeddings span");
    assert_eq!(emb.name, "embeddings text-embedding-3-small");
    assert_eq!(
        s_attr(&emb.attributes, "gen_ai.operation.name").as_deref(),
        Some("embeddings")
    );
    assert_eq!(
        s_attr(&emb.attributes, "gen_ai.provider.name").as_deref(),
        Some("openai")
    );
    assert_eq!(
        i_attr(&emb.attributes, "gen_ai.usage.input_tokens"),
        Some(16)
    );
    let emb_kids: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_span_id == emb.span_id)
        .collect();
    assert_eq!(emb_kids.len(), 1);
    assert_eq!(
        s_attr(&emb_kids[0].attributes, "gen_ai.operation.name").as_deref(),
        Some("embeddings")
    );

    // Metrics: the same facts.
    let metrics = last_metrics(&got);
    let metric = |name: &str| {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("metric {name}"))
    };
    let Some(OtData::Sum(requests)) = &metric("switchyard.requests").data else {
        panic!("sum")
    };
    assert!(requests.is_monotonic);
    assert_eq!(requests.aggregation_temporality, 2, "cumulative");
    let count_of = |key: &str, status: i64, model: &str| -> i64 {
        requests
            .data_points
            .iter()
            .filter(|p| {
                s_attr(&p.attributes, "switchyard.key.name").as_deref() == Some(key)
                    && i_attr(&p.attributes, "http.response.status_code") == Some(status)
                    && s_attr(&p.attributes, "gen_ai.response.model").as_deref() == Some(model)
            })
            .map(|p| match p.value {
                Some(OtNum::AsInt(n)) => n,
                other => panic!("{other:?}"),
            })
            .sum()
    };
    assert_eq!(count_of("team-a", 200, "claude-sonnet"), 1);
    assert_eq!(count_of("team-b", 429, ""), 1);
    assert_eq!(
        count_of("team-a", 200, "text-embedding-3-small"),
        2,
        "the unsampled one is counted"
    );
    let p429 = requests
        .data_points
        .iter()
        .find(|p| i_attr(&p.attributes, "http.response.status_code") == Some(429))
        .expect("429 point");
    assert_eq!(
        s_attr(&p429.attributes, "error.type").as_deref(),
        Some("rate_limited")
    );
    assert_eq!(
        s_attr(&p429.attributes, "gen_ai.request.model").as_deref(),
        Some("gpt-4o")
    );
    assert_eq!(
        s_attr(&p429.attributes, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );

    let Some(OtData::Histogram(tokens)) = &metric("gen_ai.client.token.usage").data else {
        panic!("histogram")
    };
    assert_eq!(metric("gen_ai.client.token.usage").unit, "{token}");
    let tok = |model: &str, ty: &str| {
        tokens
            .data_points
            .iter()
            .find(|p| {
                s_attr(&p.attributes, "gen_ai.response.model").as_deref() == Some(model)
                    && s_attr(&p.attributes, "gen_ai.token.type").as_deref() == Some(ty)
            })
            .map(|p| {
                (
                    p.count,
                    p.sum,
                    p.bucket_counts.iter().sum::<u64>(),
                    p.explicit_bounds.len() + 1 == p.bucket_counts.len(),
                )
            })
    };
    assert_eq!(
        tok("claude-sonnet", "input"),
        Some((1, Some(120.0), 1, true))
    );
    assert_eq!(
        tok("claude-sonnet", "output"),
        Some((1, Some(48.0), 1, true))
    );
    assert_eq!(
        tok("text-embedding-3-small", "input"),
        Some((2, Some(32.0), 2, true))
    );
    assert_eq!(tok("text-embedding-3-small", "output"), None);
    let chat_tokens = tokens
        .data_points
        .iter()
        .find(|p| {
            s_attr(&p.attributes, "gen_ai.response.model").as_deref() == Some("claude-sonnet")
        })
        .expect("point");
    assert_eq!(
        s_attr(&chat_tokens.attributes, "gen_ai.provider.name").as_deref(),
        Some("anthropic")
    );
    assert_eq!(
        s_attr(&chat_tokens.attributes, "switchyard.provider").as_deref(),
        Some("anthropic-main")
    );

    let hist_sum = |name: &str, model: &str| {
        let Some(OtData::Histogram(h)) = &metric(name).data else {
            panic!("{name}")
        };
        assert_eq!(metric(name).unit, "s");
        h.data_points
            .iter()
            .find(|p| s_attr(&p.attributes, "gen_ai.response.model").as_deref() == Some(model))
            .and_then(|p| p.sum)
    };
    assert_eq!(
        hist_sum("gen_ai.server.request.duration", "claude-sonnet"),
        Some(0.8505)
    );
    assert_eq!(
        hist_sum("gen_ai.server.time_to_first_token", "claude-sonnet"),
        Some(0.21025)
    );
    let tpot = hist_sum("gen_ai.server.time_per_output_token", "claude-sonnet").expect("tpot");
    assert!((tpot - (0.8505 - 0.21025) / 47.0).abs() < 1e-12);
    assert_eq!(
        hist_sum(
            "gen_ai.server.time_to_first_token",
            "text-embedding-3-small"
        ),
        None
    );

    let Some(OtData::Sum(attempts)) = &metric("switchyard.attempts").data else {
        panic!("sum")
    };
    assert!(attempts.data_points.iter().any(|p| {
        s_attr(&p.attributes, "switchyard.provider").as_deref() == Some("openai-main")
            && s_attr(&p.attributes, "gen_ai.request.model").as_deref() == Some("gpt-4o")
            && s_attr(&p.attributes, "http.response.status_code").as_deref() == Some("503")
            && p.value == Some(OtNum::AsInt(1))
    }));
    assert!(matches!(
        metric("switchyard.extproc.streams").data,
        Some(OtData::Gauge(_))
    ));
    for name in [
        "switchyard.config.reloads",
        "switchyard.backend.cooldowns",
        "switchyard.records.dropped",
        "switchyard.store.errors",
        "switchyard.telemetry.spans.dropped",
    ] {
        metric(name);
    }
    assert_eq!(t.metrics().spans_exported(), 6);
    assert_eq!(t.metrics().spans_dropped(), 0);
}

#[tokio::test]
async fn http_export_and_no_secrets_anywhere() {
    let (addr, got) = harness::http().await;
    let t = Telemetry::start(Some(test_config(
        format!("http://{addr}/otlp/"),
        Protocol::Http,
    )));
    names_for_tests(&t);
    let leak = leaky();
    t.on_record(&leak, t.begin(None).as_ref());
    t.on_record(&streamed_chat(), t.begin(Some(CLIENT_TP)).as_ref());
    t.flush().await;
    // Export twice over the kept-alive connection.
    t.on_record(&embeddings(), None);
    t.flush().await;

    let paths = got.paths.lock().expect("lock").clone();
    assert_eq!(
        paths,
        [
            "/otlp/v1/traces",
            "/otlp/v1/metrics",
            "/otlp/v1/traces",
            "/otlp/v1/metrics"
        ]
    );
    let headers = got.headers.lock().expect("lock").clone();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/x-protobuf")
    );
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == &format!("Bearer {COLLECTOR_TOKEN}"))
    );
    let spans = spans_of(&got);
    assert_eq!(spans.len(), 2 + 3 + 2);
    assert!(!last_metrics(&got).is_empty());

    // What the leaky record became: secrets blanked, the rest kept.
    let root = spans
        .iter()
        .find(|s| s_attr(&s.attributes, "switchyard.request.id").as_deref() == Some("req_leak"))
        .expect("leaky span");
    let a = &root.attributes;
    assert_eq!(
        strs_attr(a, "switchyard.tags"),
        Some(vec!["[REDACTED]".to_string(), "tier=gold".to_string()])
    );
    assert_eq!(
        s_attr(a, "gen_ai.conversation.id").as_deref(),
        Some("Bearer [REDACTED]")
    );
    assert_eq!(
        s_attr(a, "gen_ai.request.model").as_deref(),
        Some("[REDACTED]")
    );
    assert_eq!(root.name, "chat [REDACTED]");
    assert_eq!(
        s_attr(a, "switchyard.error").as_deref(),
        Some("provider said: Incorrect API key provided: [REDACTED]")
    );

    // Nothing exported, and nothing scraped, holds the secret or the collector's token.
    let bytes = got.bytes.lock().expect("lock").clone();
    assert!(bytes.len() > 1000);
    let prom = t.metrics().render_prometheus();
    for (what, hay) in [
        ("exported protobuf", &bytes[..]),
        ("/metrics", prom.as_bytes()),
    ] {
        for needle in ["SECRETSECRET", COLLECTOR_TOKEN] {
            assert!(
                !hay.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} leaked into {what}"
            );
        }
    }
    // …while the same bytes do carry the record's ordinary facts (the check can fail).
    assert!(bytes.windows(6).any(|w| w == b"team-a"));
    assert!(prom.contains("request_model=\"[REDACTED]\""));
}

#[tokio::test]
async fn collector_down_never_blocks_and_counts_drops() {
    let addr = harness::closed_port().await;
    let mut cfg = test_config(format!("http://{addr}"), Protocol::Grpc);
    cfg.export_timeout = Duration::from_millis(500);
    let t = Telemetry::start(Some(cfg));
    let chat = streamed_chat();
    let began = Instant::now();
    for _ in 0..50 {
        let one = Instant::now();
        t.on_record(&chat, t.begin(None).as_ref());
        assert!(one.elapsed() < Duration::from_millis(100));
    }
    assert!(began.elapsed() < Duration::from_secs(1));
    t.flush().await;
    assert_eq!(t.metrics().spans_exported(), 0);
    assert_eq!(t.metrics().spans_dropped(), 150);
    let s = parse_prometheus(&t.metrics().render_prometheus());
    assert_eq!(
        one(&s, "switchyard_telemetry_spans_dropped_total", &[]),
        150.0
    );
    assert!(one(&s, "switchyard_telemetry_exports_failed_total", &[]) >= 1.0);
    assert_eq!(
        one(&s, "switchyard_requests_total", &[("key", "team-a")]),
        50.0,
        "metrics still count"
    );

    // HTTP too.
    let mut cfg = test_config(format!("http://{addr}"), Protocol::Http);
    cfg.export_timeout = Duration::from_millis(500);
    let t = Telemetry::start(Some(cfg));
    t.on_record(&chat, None);
    t.flush().await;
    assert_eq!(t.metrics().spans_dropped(), 3);
}

#[tokio::test]
async fn a_hung_collector_fills_the_queue_and_spans_are_dropped_at_once() {
    let addr = harness::black_hole().await;
    let mut cfg = test_config(format!("http://{addr}"), Protocol::Grpc);
    cfg.export_timeout = Duration::from_millis(300);
    cfg.queue_capacity = 4;
    cfg.max_batch_spans = 10_000;
    let t = Telemetry::start(Some(cfg));
    let chat = streamed_chat();
    let began = Instant::now();
    for _ in 0..100 {
        t.on_record(&chat, None);
    }
    assert!(began.elapsed() < Duration::from_secs(1));
    // The exporter has not run yet (this test's runtime has one thread): 4 queued, 96 dropped.
    assert_eq!(t.metrics().spans_dropped(), 96 * 3);
    t.flush().await;
    assert_eq!(
        t.metrics().spans_dropped(),
        100 * 3,
        "the queued ones timed out"
    );
    assert_eq!(t.metrics().spans_exported(), 0);
}

#[test]
fn start_outside_a_runtime_is_metrics_only() {
    let t = Telemetry::start(Some(test_config(
        "http://127.0.0.1:4317".into(),
        Protocol::Grpc,
    )));
    assert!(!t.tracing_enabled());
    t.on_record(&streamed_chat(), None);
    assert!(
        t.metrics()
            .render_prometheus()
            .contains("switchyard_requests_total{key=\"team-a\"")
    );
}

#[test]
fn set_providers_maps_kinds_to_semconv_names() {
    let snap = crate::config::Snapshot::from_yaml(
        "providers:\n  - { id: oa, kind: openai, base_url: \"https://api.openai.com/v1\", secret_key_ref: { env: X } }\n  - { id: local, kind: openai_compatible, base_url: \"http://127.0.0.1:9000/v1\" }\n  - { id: an, kind: anthropic, base_url: \"https://api.anthropic.com/v1\", secret_key_ref: { env: X } }\n",
        Path::new("t.yaml"),
    )
    .expect("valid config");
    let t = Telemetry::default();
    t.set_providers(&snap);
    assert_eq!(t.inner.names.name("oa"), "openai");
    assert_eq!(t.inner.names.name("an"), "anthropic");
    assert_eq!(t.inner.names.name("local"), "local");
    assert_eq!(t.inner.names.name("unknown"), "unknown");
}
