//! The request record (one per request, SPEC fields) and its sinks: a JSON-lines file and a
//! bounded in-memory ring. Records travel over a bounded channel to one writer task; if the
//! channel is ever full the record is counted and logged as dropped, never silently lost.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AttemptRecord {
    pub provider: String,
    pub model: String,
    pub status: Option<u16>,
    pub latency_ms: f64,
    pub error: Option<String>,
    /// When the attempt started, from the request's start (trace spans are built from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_offset_ms: Option<f64>,
}

/// A candidate the routing decision left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SkippedRecord {
    pub provider: String,
    pub model: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub id: String,
    /// RFC 3339 UTC.
    pub ts: String,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
    pub endpoint: String,
    pub requested_model: Option<String>,
    pub resolved_model: Option<String>,
    pub provider: Option<String>,
    pub route: Option<String>,
    /// The matched rule's condition, when a rule chose the backends.
    pub rule: Option<String>,
    /// Why the strategy chose the first model (cost, latency or complexity strategies).
    pub reason: Option<String>,
    pub strategy: Option<String>,
    pub attempts: Vec<AttemptRecord>,
    #[serde(default)]
    pub skipped: Vec<SkippedRecord>,
    pub fallback_count: u32,
    /// HTTP status the client received.
    pub status: u16,
    /// `ok`, or why the request failed (also for a stream that broke after its 200).
    pub outcome: String,
    pub error: Option<String>,
    pub stream: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    /// Time spent inside the processor across all phases and attempts.
    pub overhead_ms: f64,
    pub cost_usd: f64,
    pub session_id: Option<String>,
    pub tags: Vec<String>,
    /// What the client sent, before translation (`records.log_bodies`; at most
    /// `records.log_body_max_bytes`, UTF-8, invalid bytes replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub request_body_truncated: bool,
    /// What the client received, after translation: the JSON body, or a stream's SSE bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub response_body_truncated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

// === body capture ===

/// A body as the record keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapturedBody {
    pub text: String,
    /// The body was longer than the cap and was cut.
    pub truncated: bool,
}

impl CapturedBody {
    /// The record's `…_body` and `…_body_truncated` fields.
    pub fn parts(body: Option<CapturedBody>) -> (Option<String>, bool) {
        body.map_or((None, false), |b| (Some(b.text), b.truncated))
    }
}

/// Collects the first `cap` bytes of a body that may arrive in chunks; bytes past the cap are
/// never copied, and nothing is allocated until the first byte arrives.
#[derive(Debug)]
pub struct BodyCapture {
    buf: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl BodyCapture {
    pub fn new(cap: usize) -> BodyCapture {
        BodyCapture {
            buf: Vec::new(),
            cap,
            truncated: false,
        }
    }

    /// A whole body at once.
    pub fn of(bytes: &[u8], cap: usize) -> CapturedBody {
        let mut c = BodyCapture::new(cap);
        c.push(bytes);
        c.finish()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        let take = bytes.len().min(self.cap - self.buf.len());
        self.truncated |= take < bytes.len();
        if take == 0 {
            return;
        }
        // Grow by doubling, but never past the cap (plain `extend` could reserve up to 2× it).
        if self.buf.capacity() - self.buf.len() < take {
            let want = (self.buf.len() * 2)
                .max(self.buf.len() + take)
                .min(self.cap);
            self.buf.reserve_exact(want - self.buf.len());
        }
        self.buf.extend_from_slice(&bytes[..take]);
    }

    /// Nothing was offered (an attempt that never answered the client).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && !self.truncated
    }

    /// The text, at most `cap` bytes: a character the cap split is dropped whole, and invalid
    /// UTF-8 is replaced (which can lengthen it, so the cap is applied again after).
    pub fn finish(mut self) -> CapturedBody {
        if self.truncated {
            let whole = complete_prefix(&self.buf);
            self.buf.truncate(whole);
        }
        let mut text = String::from_utf8_lossy(&self.buf).into_owned();
        let mut truncated = self.truncated;
        if text.len() > self.cap {
            let mut end = self.cap;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            truncated = true;
        }
        CapturedBody { text, truncated }
    }
}

/// The length of `b` without a multi-byte UTF-8 sequence that was cut off at its end.
fn complete_prefix(b: &[u8]) -> usize {
    let n = b.len();
    // A character is at most 4 bytes: its lead byte is at most 3 bytes before the end.
    for back in 1..=n.min(4) {
        let byte = b[n - back];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte
        }
        let len = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if len > back { n - back } else { n };
    }
    n
}

/// Where records go. Cloned into every request's state; cheap.
#[derive(Clone)]
pub struct RecordSink {
    tx: mpsc::Sender<Record>,
    ring: Arc<Mutex<Ring>>,
    dropped: Arc<AtomicU64>,
}

const CHANNEL: usize = 65_536;

/// Bodies the ring may hold in total. With `records.log_bodies` on, a record can carry up to
/// 2 × `log_body_max_bytes`; bounding the ring by count alone (10 000 by default) could hold
/// ~160 MiB at the default 8 KiB cap, far past the processor's memory budget.
pub const RING_BODY_BYTES: usize = 8 << 20;

/// The most recent records, bounded by count and by the bytes of their bodies.
struct Ring {
    records: VecDeque<Record>,
    max: usize,
    body_bytes: usize,
}

impl Ring {
    fn push(&mut self, r: Record) {
        self.body_bytes += body_bytes(&r);
        self.records.push_back(r);
        while self.records.len() > self.max.max(1)
            || (self.body_bytes > RING_BODY_BYTES && self.records.len() > 1)
        {
            if let Some(old) = self.records.pop_front() {
                self.body_bytes -= body_bytes(&old);
            }
        }
    }
}

fn body_bytes(r: &Record) -> usize {
    r.request_body.as_ref().map_or(0, String::len) + r.response_body.as_ref().map_or(0, String::len)
}

impl RecordSink {
    /// Start the writer task appending to `path` and keeping the last `ring` records.
    /// `store_log`: also append each record to the store's request-log stream (non-blocking;
    /// the log sink counts what it has to drop).
    pub fn start(
        path: PathBuf,
        ring: usize,
        store_log: Option<crate::store::LogSink>,
    ) -> RecordSink {
        let (tx, mut rx) = mpsc::channel::<Record>(CHANNEL);
        let ring_buf = Arc::new(Mutex::new(Ring {
            records: VecDeque::with_capacity(ring.min(1024)),
            max: ring,
            body_bytes: 0,
        }));
        let sink = RecordSink {
            tx,
            ring: ring_buf.clone(),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        // A dedicated thread owns the file: blocking writes stay off the async workers, and
        // the file is opened once, not per batch.
        let spawned = std::thread::Builder::new().name("switchyard-records".into()).spawn(move || {
            let mut file = None;
            let mut batch = Vec::with_capacity(256);
            let mut out = Vec::with_capacity(64 * 1024);
            while let Some(first) = rx.blocking_recv() {
                batch.push(first);
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                out.clear();
                for r in &batch {
                    let start = out.len();
                    if serde_json::to_writer(&mut out, r).is_ok() {
                        if let Some(log) = &store_log {
                            log.send(out[start..].to_vec());
                        }
                        out.push(b'\n');
                    }
                }
                if let Err(e) = append(&mut file, &path, &out) {
                    file = None;
                    tracing::error!(error = %e, path = %path.display(), records = batch.len(), "cannot append request records");
                }
                if let Ok(mut q) = ring_buf.lock() {
                    for r in batch.drain(..) {
                        q.push(r);
                    }
                }
                batch.clear();
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the record writer thread");
        }
        sink
    }

    /// Queue a record for the writer; false when it had to be dropped (counted and logged).
    pub fn emit(&self, record: Record) -> bool {
        if let Err(e) = self.tx.try_send(record) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let id = match &e {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => {
                    r.id.clone()
                }
            };
            tracing::error!(request_id = %id, dropped_total = n, "request record dropped: record queue is full or closed");
            return false;
        }
        true
    }

    pub fn recent(&self, limit: usize) -> Vec<Record> {
        self.ring
            .lock()
            .map(|q| q.records.iter().rev().take(limit).rev().cloned().collect())
            .unwrap_or_default()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Append to the open file, opening it on first use (or again after an error).
fn append(file: &mut Option<std::fs::File>, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if file.is_none() {
        *file = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        );
    }
    match file {
        Some(f) => f.write_all(bytes),
        None => Ok(()),
    }
}

/// Read records back from a JSON-lines file (for `logs tail`), newest last.
pub fn read_file(path: &Path) -> std::io::Result<Vec<Record>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// `key=value` filters for `logs tail`: model (requested or resolved), provider, status, key, outcome.
pub fn matches(r: &Record, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, v)| match k.as_str() {
        "model" => {
            r.requested_model.as_deref() == Some(v) || r.resolved_model.as_deref() == Some(v)
        }
        "resolved_model" => r.resolved_model.as_deref() == Some(v),
        "provider" => r.provider.as_deref() == Some(v),
        "status" => r.status.to_string() == *v,
        "key" => r.key_name.as_deref() == Some(v) || r.key_id.as_deref() == Some(v),
        "outcome" => r.outcome == *v,
        "tag" => r.tags.iter().any(|t| t == v),
        _ => false,
    })
}

/// A Unix time in milliseconds as RFC 3339 (UTC), as records' `ts`; empty if out of range.
pub fn rfc3339_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_under_the_cap_is_kept_whole() {
        let b = BodyCapture::of(br#"{"model":"m"}"#, 64);
        assert_eq!(b.text, r#"{"model":"m"}"#);
        assert!(!b.truncated);
    }

    #[test]
    fn every_cut_is_a_char_boundary_prefix_within_the_cap() {
        let text = "aé€😀b<script>ü";
        for cap in 0..=text.len() + 1 {
            let b = BodyCapture::of(text.as_bytes(), cap);
            assert!(b.text.len() <= cap, "cap {cap}: {:?}", b.text);
            assert!(text.starts_with(&b.text), "cap {cap}: {:?}", b.text);
            assert_eq!(b.truncated, cap < text.len(), "cap {cap}");
            // Only a character the cap split is dropped, never a whole one before it.
            assert!(cap.saturating_sub(b.text.len()) < 4, "cap {cap}");
        }
        assert_eq!(BodyCapture::of("aé".as_bytes(), 2).text, "a");
    }

    #[test]
    fn chunks_are_captured_like_the_whole_and_never_past_the_cap() {
        let text = "data: {\"x\":\"héllo\"}\n\n".repeat(50);
        for cap in [1, 7, 100, 512, 4096] {
            let mut c = BodyCapture::new(cap);
            for chunk in text.as_bytes().chunks(3) {
                c.push(chunk);
                assert!(c.buf.capacity() <= cap, "cap {cap}: {}", c.buf.capacity());
            }
            assert_eq!(
                c.finish(),
                BodyCapture::of(text.as_bytes(), cap),
                "cap {cap}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_and_still_within_the_cap() {
        let b = BodyCapture::of(&[b'a', 0xff, 0xfe, b'b'], 4);
        assert_eq!(b.text, "a\u{fffd}");
        assert!(b.truncated);
        let b = BodyCapture::of(&[0xff], 8);
        assert_eq!(b.text, "\u{fffd}");
        assert!(!b.truncated);
    }

    #[test]
    fn nothing_offered_is_empty_and_allocates_nothing() {
        let c = BodyCapture::new(8192);
        assert!(c.is_empty() && c.buf.capacity() == 0);
        assert_eq!(CapturedBody::parts(None), (None, false));
    }

    #[test]
    fn absent_bodies_leave_the_record_unchanged() {
        let json = serde_json::to_value(Record::default()).unwrap();
        for f in [
            "request_body",
            "response_body",
            "request_body_truncated",
            "response_body_truncated",
        ] {
            assert!(json.get(f).is_none(), "{f}");
        }
    }

    #[test]
    fn the_ring_is_bounded_by_body_bytes_as_well_as_count() {
        let with_body = |n: usize| Record {
            response_body: Some("x".repeat(n)),
            ..Record::default()
        };
        let mut ring = Ring {
            records: VecDeque::new(),
            max: 10,
            body_bytes: 0,
        };
        for _ in 0..20 {
            ring.push(Record::default());
        }
        assert_eq!(ring.records.len(), 10);
        for _ in 0..5 {
            ring.push(with_body(RING_BODY_BYTES / 3));
        }
        assert_eq!(ring.records.len(), 3);
        assert!(ring.body_bytes <= RING_BODY_BYTES);
        // One record over the budget on its own is still kept (the newest always is).
        ring.push(with_body(RING_BODY_BYTES + 1));
        assert_eq!(ring.records.len(), 1);
    }
}
