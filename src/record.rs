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
}

/// Where records go. Cloned into every request's state; cheap.
#[derive(Clone)]
pub struct RecordSink {
    tx: mpsc::Sender<Record>,
    ring: Arc<Mutex<VecDeque<Record>>>,
    dropped: Arc<AtomicU64>,
}

const CHANNEL: usize = 65_536;

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
        let ring_buf = Arc::new(Mutex::new(VecDeque::with_capacity(ring.min(1024))));
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
                        if q.len() >= ring.max(1) {
                            q.pop_front();
                        }
                        q.push_back(r);
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
            .map(|q| q.iter().rev().take(limit).rev().cloned().collect())
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
