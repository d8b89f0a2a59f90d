//! W3C Trace Context (`traceparent`): parsing the client's header, minting ids, deriving each
//! attempt's span id, and the header the gateway sends to the provider. Pure functions.

use std::fmt::Write as _;

/// One W3C `traceparent`: `00-<trace id>-<parent span id>-<flags>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceContext {
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex::encode(self.span_id)
    }

    /// The `traceparent` header value for this context.
    pub fn to_header(&self) -> String {
        traceparent_for(self.trace_id, self.span_id, self.sampled)
    }
}

/// Parse a `traceparent` header value. Follows the W3C rules: lowercase hex, version `ff` is
/// invalid, all-zero ids are invalid, version `00` has exactly four fields, and a higher
/// version may carry more after a `-` (its first four fields are read as version 00's).
pub fn parse_traceparent(value: &str) -> Option<TraceContext> {
    let v = value.trim().as_bytes();
    if v.len() < 55 {
        return None;
    }
    let version = lower_hex::<1>(&v[0..2])?;
    if version[0] == 0xff || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    if version[0] == 0 && v.len() != 55 {
        return None;
    }
    if v.len() > 55 && v[55] != b'-' {
        return None;
    }
    let trace_id = lower_hex::<16>(&v[3..35])?;
    let span_id = lower_hex::<8>(&v[36..52])?;
    let flags = lower_hex::<1>(&v[53..55])?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(TraceContext {
        trace_id,
        span_id,
        sampled: flags[0] & 1 == 1,
    })
}

/// The `traceparent` value naming `span_id` as the parent of whatever receives it.
pub fn traceparent_for(trace_id: [u8; 16], span_id: [u8; 8], sampled: bool) -> String {
    let mut s = String::with_capacity(55);
    s.push_str("00-");
    for b in trace_id {
        let _ = write!(s, "{b:02x}");
    }
    s.push('-');
    for b in span_id {
        let _ = write!(s, "{b:02x}");
    }
    s.push_str(if sampled { "-01" } else { "-00" });
    s
}

fn lower_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(s[2 * i])? << 4) | nibble(s[2 * i + 1])?;
    }
    Some(out)
}

pub fn random_trace_id() -> [u8; 16] {
    loop {
        let id: u128 = rand::random();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

pub fn random_span_id() -> [u8; 8] {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// The span id of attempt `index` of the request whose span is `request_span`: derived, so the
/// `traceparent` sent with the attempt and the attempt span built after the request ends agree
/// without any state kept in between. A bijective mix (splitmix64) of the request span id and
/// the index; never zero and never the request span itself.
pub fn attempt_span_id(request_span: [u8; 8], index: usize) -> [u8; 8] {
    let base = u64::from_be_bytes(request_span);
    let mut z = base.wrapping_add((index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    if z == 0 || z == base {
        z = base ^ 0x5555_5555_5555_5555 ^ (index as u64 + 1);
    }
    z.to_be_bytes()
}

/// Trace-id ratio sampling, as OpenTelemetry's `TraceIdRatioBased`: the decision is a pure
/// function of the trace id, so every service using the same ratio agrees.
pub fn ratio_sampled(trace_id: &[u8; 16], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 || ratio.is_nan() {
        return false;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let x = u64::from_be_bytes(low) >> 1;
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    x < bound
}

/// The gateway's own tracing identity for one request, fixed when the request starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestTrace {
    pub trace_id: [u8; 16],
    /// The gateway's request span (the parent of every attempt span).
    pub span_id: [u8; 8],
    /// The client's span, when the client sent a valid `traceparent`.
    pub parent_span_id: Option<[u8; 8]>,
    pub sampled: bool,
}

impl RequestTrace {
    /// Continue the client's trace when it sent a valid `traceparent` (its sampled flag decides:
    /// parent-based sampling), else start a new trace sampled at `ratio`.
    pub fn begin(client_traceparent: Option<&str>, ratio: f64) -> RequestTrace {
        match client_traceparent.and_then(parse_traceparent) {
            Some(parent) => RequestTrace {
                trace_id: parent.trace_id,
                span_id: random_span_id(),
                parent_span_id: Some(parent.span_id),
                sampled: parent.sampled,
            },
            None => {
                let trace_id = random_trace_id();
                RequestTrace {
                    trace_id,
                    span_id: random_span_id(),
                    parent_span_id: None,
                    sampled: ratio_sampled(&trace_id, ratio),
                }
            }
        }
    }

    /// The `traceparent` to send to the provider with attempt `index` (0-based, in the order
    /// of `Record::attempts`): the provider's span becomes a child of that attempt's span.
    pub fn traceparent_for_attempt(&self, index: usize) -> String {
        traceparent_for(
            self.trace_id,
            attempt_span_id(self.span_id, index),
            self.sampled,
        )
    }

    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex::encode(self.span_id)
    }
}
