//! A finished `Record` → OTLP spans, built after the fact: one SERVER span for the request
//! (the client's span is its parent when the client sent a `traceparent`) and one CLIENT span
//! per provider attempt, its child. Nothing lives during the request but the ids. Spans are
//! written straight to protobuf bytes (`wire`): no per-attribute allocation on the hot path.
//!
//! What is exported: every record field, mapped to an attribute (table in `mod.rs`). Provider
//! credentials and client keys are not in a record, so they cannot be copied; free text that a client or provider controls (error messages, tags, the
//! session id, the requested model, …) goes through `scrub`, which blanks anything shaped like
//! a credential (`sk-…`, `Bearer …`, AWS/Google key ids) before it is exported.

use super::context::{RequestTrace, attempt_span_id};
use super::metrics::operation_name;
use super::wire::{self, Val};
use crate::record::Record;
use std::borrow::Cow;
use std::collections::HashMap;

/// Longest free-text attribute (error messages), in bytes.
const MAX_TEXT: usize = 1024;
pub const REDACTED: &str = "[REDACTED]";

/// Blank credential-shaped tokens in free text: `sk-`/`sk_` keys (OpenAI, Anthropic,
/// Switchyard's own `sk-sy-`), `Bearer <token>`, AWS access key ids, Google API keys, GitHub
/// tokens. Borrowed (no allocation) when there is nothing to blank.
pub fn scrub(s: &str) -> Cow<'_, str> {
    if !looks_secret(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut after_bearer = false;
    let mut rest = s;
    while !rest.is_empty() {
        let start = rest.find(is_token_char).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let run = rest.find(|c| !is_token_char(c)).unwrap_or(rest.len());
        // A sentence's full stop is not part of the token before it.
        let token = rest[..run].trim_end_matches('.');
        if token.is_empty() {
            out.push_str(&rest[..run]);
            rest = &rest[run..];
            continue;
        }
        let end = token.len();
        if after_bearer || secret_token(token) {
            out.push_str(REDACTED);
        } else {
            out.push_str(token);
        }
        after_bearer = token.eq_ignore_ascii_case("bearer");
        rest = &rest[end..];
    }
    Cow::Owned(out)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '/' | '=')
}

/// Cheap pre-check: can `s` hold anything `scrub` would blank? One pass, looking further only
/// at the few bytes a credential prefix starts with.
fn looks_secret(s: &str) -> bool {
    s.as_bytes().windows(3).any(|w| match w[0] {
        b's' => w[1] == b'k' && (w[2] == b'-' || w[2] == b'_'),
        b'A' => matches!(&w[1..], b"KI" | b"SI" | b"Iz"),
        b'g' => w[1] == b'h' && (w[2] == b'p' || w[2] == b'o'),
        b'x' => w[1] == b'o' && w[2] == b'x',
        b'b' | b'B' => w[1] | 0x20 == b'e' && w[2] | 0x20 == b'a',
        _ => false,
    })
}

fn secret_token(t: &str) -> bool {
    // Tokens may carry a `key=` prefix (tags are `k=v`): judge the value part too.
    if let Some((_, v)) = t.split_once('=')
        && secret_token(v)
    {
        return true;
    }
    let long = t.len() >= 12;
    (long && (t.starts_with("sk-") || t.starts_with("sk_")))
        || (t.len() >= 16 && (t.starts_with("AKIA") || t.starts_with("ASIA")))
        || (long && t.starts_with("AIza"))
        || (long && (t.starts_with("ghp_") || t.starts_with("gho_")))
        || (long && t.starts_with("xox"))
}

/// Scrubbed, and cut to `MAX_TEXT` bytes; borrowed when nothing changes.
fn text(s: &str) -> Cow<'_, str> {
    let c = scrub(s);
    if c.len() <= MAX_TEXT {
        return c;
    }
    let mut end = MAX_TEXT;
    while !c.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &c[..end]))
}

/// Provider id → `gen_ai.provider.name` well-known value.
pub type ProviderMap = HashMap<String, &'static str>;

/// The `gen_ai.provider.name` for a provider id: its kind's well-known name, else the id.
pub fn provider_name<'a>(names: &'a ProviderMap, id: &'a str) -> Cow<'a, str> {
    match names.get(id) {
        Some(n) => Cow::Borrowed(n),
        None => scrub(id),
    }
}

/// Unix nanoseconds of the record's start (`ts`); `None` if `ts` is not RFC 3339.
pub fn start_unix_nanos(r: &Record) -> Option<u64> {
    let t =
        time::OffsetDateTime::parse(&r.ts, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos()).ok()
}

fn ms_to_ns(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (ms * 1e6) as u64
    } else {
        0
    }
}

// `opentelemetry.proto.trace.v1.Span` field numbers.
const TRACE_ID: u32 = 1;
const SPAN_ID: u32 = 2;
const PARENT_SPAN_ID: u32 = 4;
const NAME: u32 = 5;
const KIND: u32 = 6;
const START: u32 = 7;
const END: u32 = 8;
const ATTRIBUTES: u32 = 9;
const STATUS: u32 = 15;
const FLAGS: u32 = 16;
const KIND_SERVER: u64 = 2;
const KIND_CLIENT: u64 = 3;
const STATUS_ERROR: u64 = 2;
/// `ScopeSpans.spans`.
const SCOPE_SPANS_SPANS: u32 = 2;

fn s(buf: &mut Vec<u8>, k: &str, v: &str) {
    wire::attr(buf, ATTRIBUTES, k, Val::Str(&text(v)));
}

fn int(buf: &mut Vec<u8>, k: &str, v: i64) {
    wire::attr(buf, ATTRIBUTES, k, Val::Int(v));
}

fn f64_(buf: &mut Vec<u8>, k: &str, v: f64) {
    wire::attr(buf, ATTRIBUTES, k, Val::F64(v));
}

fn name(buf: &mut Vec<u8>, op: &str, model: Option<&str>) {
    match model.map(text) {
        Some(m) if !m.is_empty() => {
            wire::len_prefix(buf, NAME, op.len() + 1 + m.len());
            buf.extend_from_slice(op.as_bytes());
            buf.push(b' ');
            buf.extend_from_slice(m.as_bytes());
        }
        _ => wire::bytes_field(buf, NAME, op.as_bytes()),
    }
}

fn error_status(buf: &mut Vec<u8>, message: &str) {
    let m = text(message);
    let len = wire::len_field_len(2, m.len()) + 2;
    wire::len_prefix(buf, STATUS, len);
    wire::bytes_field(buf, 2, m.as_bytes());
    wire::varint_field(buf, 3, STATUS_ERROR);
}

/// Encode the spans of one finished request, each appended to `out` as a `ScopeSpans.spans`
/// entry: the request span first, then one per attempt. Returns how many spans were written.
pub fn encode(
    r: &Record,
    trace: &RequestTrace,
    names: &ProviderMap,
    now_ns: u64,
    out: &mut Vec<u8>,
) -> usize {
    let start =
        start_unix_nanos(r).unwrap_or_else(|| now_ns.saturating_sub(ms_to_ns(r.latency_ms)));
    let end = start + ms_to_ns(r.latency_ms);
    let op = operation_name(&r.endpoint);
    let sampled = u32::from(trace.sampled);
    let mut b = Vec::with_capacity(1024);

    // The request span.
    wire::bytes_field(&mut b, TRACE_ID, &trace.trace_id);
    wire::bytes_field(&mut b, SPAN_ID, &trace.span_id);
    if let Some(p) = trace.parent_span_id {
        wire::bytes_field(&mut b, PARENT_SPAN_ID, &p);
    }
    name(&mut b, op, r.requested_model.as_deref());
    wire::varint_field(&mut b, KIND, KIND_SERVER);
    wire::fixed64_field(&mut b, START, start);
    wire::fixed64_field(&mut b, END, end);
    s(&mut b, "gen_ai.operation.name", op);
    if let Some(p) = &r.provider {
        let pn = provider_name(names, p);
        s(&mut b, "gen_ai.provider.name", &pn);
        s(&mut b, "gen_ai.system", &pn);
        s(&mut b, "switchyard.provider", p);
    }
    if let Some(m) = &r.requested_model {
        s(&mut b, "gen_ai.request.model", m);
    }
    if let Some(m) = &r.resolved_model {
        s(&mut b, "gen_ai.response.model", m);
    }
    int(&mut b, "gen_ai.usage.input_tokens", sat_i64(r.input_tokens));
    int(
        &mut b,
        "gen_ai.usage.output_tokens",
        sat_i64(r.output_tokens),
    );
    if let Some(v) = &r.session_id {
        s(&mut b, "gen_ai.conversation.id", v);
    }
    int(&mut b, "http.response.status_code", i64::from(r.status));
    s(&mut b, "url.path", &r.endpoint);
    if r.outcome != "ok" {
        s(&mut b, "error.type", &r.outcome);
    }
    s(&mut b, "switchyard.request.id", &r.id);
    for (k, v) in [
        ("switchyard.key.name", &r.key_name),
        ("switchyard.key.id", &r.key_id),
        ("switchyard.route", &r.route),
        ("switchyard.rule", &r.rule),
        ("switchyard.strategy", &r.strategy),
        ("switchyard.reason", &r.reason),
    ] {
        if let Some(v) = v {
            s(&mut b, k, v);
        }
    }
    int(
        &mut b,
        "switchyard.fallback_count",
        i64::from(r.fallback_count),
    );
    int(&mut b, "switchyard.attempt_count", r.attempts.len() as i64);
    f64_(&mut b, "switchyard.cost_usd", r.cost_usd);
    s(&mut b, "switchyard.outcome", &r.outcome);
    wire::attr(&mut b, ATTRIBUTES, "switchyard.stream", Val::Bool(r.stream));
    f64_(&mut b, "switchyard.latency_ms", r.latency_ms);
    if let Some(t) = r.ttft_ms {
        f64_(&mut b, "switchyard.ttft_ms", t);
    }
    f64_(&mut b, "switchyard.overhead_ms", r.overhead_ms);
    if let Some(e) = &r.error {
        s(&mut b, "switchyard.error", e);
    }
    if !r.tags.is_empty() {
        let tags: Vec<Cow<'_, str>> = r.tags.iter().map(|t| text(t)).collect();
        wire::attr(&mut b, ATTRIBUTES, "switchyard.tags", Val::Strs(&tags));
    }
    if !r.skipped.is_empty() {
        let skipped: Vec<Cow<'_, str>> = r
            .skipped
            .iter()
            .map(|s| {
                Cow::Owned(text(&format!("{}/{}: {}", s.provider, s.model, s.reason)).into_owned())
            })
            .collect();
        wire::attr(
            &mut b,
            ATTRIBUTES,
            "switchyard.skipped",
            Val::Strs(&skipped),
        );
    }
    if r.status >= 400 || r.outcome != "ok" {
        error_status(&mut b, r.error.as_deref().unwrap_or(&r.outcome));
    }
    // Sampled flag; bit 8: whether the parent is remote is known; bit 9: it is.
    let remote = if trace.parent_span_id.is_some() {
        0x300
    } else {
        0x100
    };
    wire::fixed32_field(&mut b, FLAGS, sampled | remote);
    wire::bytes_field(out, SCOPE_SPANS_SPANS, &b);

    // Attempts run one after another; without a recorded offset each is assumed to start
    // when the previous one ended.
    let mut offset_ms = 0.0;
    for (i, at) in r.attempts.iter().enumerate() {
        b.clear();
        let begin_ms = at.start_offset_ms.unwrap_or(offset_ms);
        offset_ms = begin_ms + at.latency_ms.max(0.0);
        let a_start = start + ms_to_ns(begin_ms);
        wire::bytes_field(&mut b, TRACE_ID, &trace.trace_id);
        wire::bytes_field(&mut b, SPAN_ID, &attempt_span_id(trace.span_id, i));
        wire::bytes_field(&mut b, PARENT_SPAN_ID, &trace.span_id);
        name(&mut b, op, Some(&at.model));
        wire::varint_field(&mut b, KIND, KIND_CLIENT);
        wire::fixed64_field(&mut b, START, a_start);
        wire::fixed64_field(&mut b, END, a_start + ms_to_ns(at.latency_ms));
        let pn = provider_name(names, &at.provider);
        s(&mut b, "gen_ai.operation.name", op);
        s(&mut b, "gen_ai.provider.name", &pn);
        s(&mut b, "gen_ai.system", &pn);
        s(&mut b, "switchyard.provider", &at.provider);
        s(&mut b, "gen_ai.request.model", &at.model);
        int(&mut b, "switchyard.attempt.index", i as i64);
        if let Some(st) = at.status {
            int(&mut b, "http.response.status_code", i64::from(st));
        }
        let failed = at.status.is_none_or(|st| st >= 400) || at.error.is_some();
        if failed {
            match at.status {
                Some(st) => s(&mut b, "error.type", itoa(st, &mut [0; 5])),
                None => s(&mut b, "error.type", "_OTHER"),
            }
        }
        // The attempt that served the client carries the response facts.
        let served = !failed
            && i + 1 == r.attempts.len()
            && r.provider.as_deref() == Some(at.provider.as_str())
            && r.resolved_model.as_deref() == Some(at.model.as_str());
        if served {
            s(&mut b, "gen_ai.response.model", &at.model);
            int(&mut b, "gen_ai.usage.input_tokens", sat_i64(r.input_tokens));
            int(
                &mut b,
                "gen_ai.usage.output_tokens",
                sat_i64(r.output_tokens),
            );
        }
        if let Some(e) = &at.error {
            s(&mut b, "switchyard.attempt.error", e);
        }
        if failed {
            error_status(&mut b, at.error.as_deref().unwrap_or("provider error"));
        }
        wire::fixed32_field(&mut b, FLAGS, sampled | 0x100);
        wire::bytes_field(out, SCOPE_SPANS_SPANS, &b);
    }
    1 + r.attempts.len()
}

/// A status code as text without allocating.
fn itoa(mut v: u16, buf: &mut [u8; 5]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("_OTHER")
}

fn sat_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
