//! Shared state: dynamic keys, the token/budget ledger, hourly usage analytics and the request
//! log. Two backends with the same semantics (every test runs against both): `Memory` for one
//! process, `Redis` for state shared by replicas.
//!
//! **One ledger.** Every request is `reserve`d before it goes upstream and `true_up`ed once when
//! its response or stream ends. The reservation holds the estimate (input estimate + max_tokens,
//! and its estimated cost) against the key's rolling-hour window and its UTC day/month spend; the
//! true-up replaces it with actual usage and, in the same atomic step, adds the actual tokens and
//! cost to the key's stats and to the hourly usage counters. Limits, budgets, `keys list` and
//! `usage` therefore all read the same numbers.
//!
//! **Window.** Tokens are counted in one-minute buckets; a request's tokens stay in the window
//! for 60–61 minutes after its reservation (the current minute plus the 60 before it are summed).
//! The window is thus never shorter than an hour: the limit holds for every exact hour, and a
//! `retry_after` is rounded up to the minute boundary at which enough buckets leave.
//!
//! **Overshoot bound.** Admission is atomic (one Lua script), so the sum of *reserved* amounts
//! in any window never exceeds an enabled limit. A true-up can only raise an entry above its
//! reservation by the amount its actual usage exceeds the estimate, hence at every instant, for
//! each token limit L:
//!
//! ```text
//!   window total  ≤  L + Σ over requests in the window of max(0, actual − reserved)
//! ```
//!
//! where the sum is per limit (input, output, or both for total). The output part is zero when
//! the reserved output is the request's `max_tokens` (providers never return more); the input
//! part is the input under-estimate. With an input estimate that never under-counts, the limit
//! holds exactly. The same bound holds for the day/month budgets with cost in place of tokens.
//! A reservation never trued up (crash) keeps its estimate until it leaves the window (≤ 61 min);
//! its day/month spend stays charged at the estimate.
//!
//! **Costs** are kept as integer nano-USD (exact sums; a counter holds up to ~9 million USD).
//!
//! **Hot path** (Redis): `lookup` is one HGETALL, `reserve` and `true_up` one script call each,
//! every call bounded by `op_timeout` (250 ms by default; loopback Redis answers in well under a millisecond, so only a sick Redis reaches it); failures are `StoreError`s and the
//! caller decides whether to fail open or closed. Nothing is cached locally.

mod memory;
mod redis;
#[cfg(test)]
mod tests;

use crate::auth::KeyHash;
use crate::config::raw::RawRateLimit;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// The rolling window of the token limits.
pub const WINDOW_MS: u64 = 3_600_000;
const BUCKET_MS: u64 = 60_000;
/// A bucket stays counted while `bucket >= current - WINDOW_BUCKETS` (so 61 buckets are summed).
const WINDOW_BUCKETS: u64 = WINDOW_MS / BUCKET_MS;
/// A true-up is idempotent for this long after its first application (the "done" marker's TTL).
const DONE_TTL_MS: u64 = 2 * WINDOW_MS;
const HOUR_MS: u64 = 3_600_000;
const NANOS_PER_USD: f64 = 1e9;

// === Errors ===

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {op} timed out after {ms} ms")]
    Timeout { op: &'static str, ms: u64 },
    #[error("store {op} failed: {msg}")]
    Backend { op: &'static str, msg: String },
    #[error("invalid store data: {0}")]
    Invalid(String),
    /// The record exists already (a Console user's email).
    #[error("{0}")]
    Conflict(String),
}

// === Options ===

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bound on each hot-path call: lookup, reserve, true-up, log append.
    pub op_timeout: Duration,
    /// Bound on admin calls: create, list, revoke, usage, log reads.
    pub admin_timeout: Duration,
    /// Bound on connecting (and reconnecting) to Redis.
    pub connect_timeout: Duration,
    /// Request-log stream length cap (Redis trims approximately: whole nodes of ~100 entries).
    pub log_max_len: u64,
    /// Request-log age cap (trimmed on append, approximately for Redis as above).
    pub log_max_age: Duration,
    /// How long hourly usage counters are kept.
    pub usage_retention: Duration,
    /// Prefix of every Redis key, so several gateways (or tests) can share one Redis.
    pub prefix: String,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            op_timeout: Duration::from_millis(250),
            admin_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            log_max_len: 100_000,
            log_max_age: Duration::from_secs(7 * 24 * 3600),
            usage_retention: Duration::from_secs(35 * 24 * 3600),
            prefix: "sy:".into(),
        }
    }
}

// === Keys ===

/// Per-key limits; 0 turns a limit off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub total_tokens_per_hour: u64,
    pub input_tokens_per_hour: u64,
    pub output_tokens_per_hour: u64,
    pub daily_usd: f64,
    pub monthly_usd: f64,
}

impl From<&RawRateLimit> for Limits {
    fn from(r: &RawRateLimit) -> Limits {
        Limits {
            total_tokens_per_hour: r.total_tokens_per_hour,
            input_tokens_per_hour: r.input_tokens_per_hour,
            output_tokens_per_hour: r.output_tokens_per_hour,
            daily_usd: r.daily_usd,
            monthly_usd: r.monthly_usd,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    pub limits: Limits,
    pub allowed_models: Option<Vec<String>>,
    /// The key's routing section as YAML, parsed by the caller.
    pub routing_yaml: Option<String>,
}

/// What a valid dynamic key may do. Never holds the key or its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    /// `key_<12 hex>`, the public id (also the middle part of the key).
    pub id: String,
    pub name: String,
    pub created_ms: u64,
    pub limits: Limits,
    pub allowed_models: Option<Vec<String>>,
    pub routing_yaml: Option<String>,
}

/// What a key has used so far. Kept per key id for static and dynamic keys alike.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KeyUse {
    pub last_used_ms: Option<u64>,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub spend_usd: f64,
}

/// Where a key is defined: minted into the store, or listed (by hash) in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    Store,
    Config,
}

/// One row of `keys list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyStats {
    pub source: KeySource,
    pub id: String,
    pub name: String,
    pub created_ms: u64,
    pub last_used_ms: Option<u64>,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub spend_usd: f64,
    pub revoked: bool,
    pub limits: Limits,
    /// The key's routing configuration (YAML), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_yaml: Option<String>,
}

impl KeyStats {
    /// A row from a key's identity and use.
    pub fn new(info: KeyInfo, used: KeyUse, source: KeySource, revoked: bool) -> KeyStats {
        KeyStats {
            source,
            id: info.id,
            name: info.name,
            created_ms: info.created_ms,
            last_used_ms: used.last_used_ms,
            requests: used.requests,
            input_tokens: used.input_tokens,
            output_tokens: used.output_tokens,
            spend_usd: used.spend_usd,
            revoked,
            limits: info.limits,
            routing_yaml: info.routing_yaml,
        }
    }
}

const KEY_PREFIX: &str = "sk-sy-";
const ID_HEX: usize = 12;
const SECRET_HEX: usize = 48;

/// A new dynamic key: `sk-sy-<12 hex id>-<48 hex secret>` (192 secret bits). Returns the id hex.
fn mint_key() -> (String, String) {
    let mut id = [0u8; ID_HEX / 2];
    let mut secret = [0u8; SECRET_HEX / 2];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let id = hex::encode(id);
    let key = format!("{KEY_PREFIX}{id}-{}", hex::encode(secret));
    (id, key)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The id hex of a well-formed dynamic key; anything else (a static key, junk) is `None`, so no
/// store call is made for it.
fn key_id_of(presented: &str) -> Option<&str> {
    let (id, secret) = presented.strip_prefix(KEY_PREFIX)?.split_once('-')?;
    (is_hex(id, ID_HEX) && is_hex(secret, SECRET_HEX)).then_some(id)
}

/// Accepts `key_<hex>` or the bare hex.
fn id_hex(id: &str) -> Option<&str> {
    let h = id.strip_prefix("key_").unwrap_or(id);
    is_hex(h, ID_HEX).then_some(h)
}

fn public_id(hex: &str) -> String {
    format!("key_{hex}")
}

/// The stored form: the config's `sha256:<hex>` of the whole key.
fn stored_hash(key: &str) -> String {
    KeyHash::of(key).to_string()
}

/// Constant-time equality, so a mismatch's position is not observable through timing.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

// === Console users ===

/// A Console user as listed; never the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Lower-cased: the user's key.
    pub email: String,
    pub created_ms: u64,
}

/// What sign-in verifies: the user and their argon2id PHC string.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCredential {
    pub user: User,
    pub hash: String,
}

impl std::fmt::Debug for UserCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredential")
            .field("user", &self.user)
            .field("hash", &"[redacted]")
            .finish()
    }
}

/// Emails are case-insensitive: one user per lower-cased address.
fn user_id(email: &str) -> String {
    email.trim().to_lowercase()
}

// === Ledger ===

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Estimate {
    /// Estimated input tokens.
    pub input: u64,
    /// Output tokens to hold: the request's max_tokens, or a configured default.
    pub output: u64,
    pub cost_usd: f64,
}

impl Limits {
    /// Whether any limit or budget is on (else admission needs no store call).
    pub fn any(&self) -> bool {
        (self.total_tokens_per_hour | self.input_tokens_per_hour | self.output_tokens_per_hour) != 0
            || self.daily_usd > 0.0
            || self.monthly_usd > 0.0
    }
}

impl Reservation {
    /// The ledger entry of a request admitted without a store call (its key has no limits):
    /// trued up like any other, so usage and key stats still count it.
    pub fn unreserved(key_id: &str, now_ms: u64) -> Reservation {
        Reservation {
            id: new_reservation_id(),
            key_id: key_id.to_string(),
            at_ms: now_ms,
            estimate: Estimate::default(),
        }
    }
}

/// An admitted request's hold on the ledger; pass it to `true_up` when the request ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub id: String,
    pub key_id: String,
    pub at_ms: u64,
    pub estimate: Estimate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    TotalTokens,
    InputTokens,
    OutputTokens,
    DailyUsd,
    MonthlyUsd,
}

impl LimitKind {
    fn from_code(c: i64) -> Option<LimitKind> {
        Some(match c {
            1 => LimitKind::TotalTokens,
            2 => LimitKind::InputTokens,
            3 => LimitKind::OutputTokens,
            4 => LimitKind::DailyUsd,
            5 => LimitKind::MonthlyUsd,
            _ => return None,
        })
    }

    /// The setting's name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::TotalTokens => "total_tokens_per_hour",
            LimitKind::InputTokens => "input_tokens_per_hour",
            LimitKind::OutputTokens => "output_tokens_per_hour",
            LimitKind::DailyUsd => "daily_usd",
            LimitKind::MonthlyUsd => "monthly_usd",
        }
    }

    fn is_budget(self) -> bool {
        matches!(self, LimitKind::DailyUsd | LimitKind::MonthlyUsd)
    }
}

/// Why a request was refused (→ 429 with `retry-after`).
#[derive(Debug, Clone, PartialEq)]
pub struct Denied {
    pub which: LimitKind,
    pub retry_after_secs: u64,
    pub message: String,
}

/// What a request really used; `model`/`provider` name its usage rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actual {
    pub input: u64,
    pub output: u64,
    pub cost_usd: f64,
    pub model: String,
    pub provider: String,
    pub error: bool,
}

/// Tokens a key has in its window now (reserved or used), e.g. for rate-limit headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowUsage {
    pub input: u64,
    pub output: u64,
}

/// A denial as both backends compute it; `used`/`limit` are tokens or nano-USD.
struct RawDenial {
    kind: LimitKind,
    retry_ms: u64,
    used: u64,
    limit: u64,
    /// The request's estimate alone exceeds the limit: waiting will not help.
    never: bool,
}

impl RawDenial {
    fn into_denied(self, est: &Estimate) -> Denied {
        let retry_after_secs = self.retry_ms.div_ceil(1000).max(1);
        let name = self.kind.as_str();
        let message = if self.kind.is_budget() {
            let usd = |n: u64| n as f64 / NANOS_PER_USD;
            let period = if self.kind == LimitKind::DailyUsd {
                "today"
            } else {
                "this month"
            };
            if self.never {
                format!(
                    "budget {name} (${:.4}) is smaller than this request's estimated cost (${:.4})",
                    usd(self.limit),
                    est.cost_usd
                )
            } else {
                format!(
                    "budget {name} exceeded: ${:.4} spent {period} (UTC) + ${:.4} estimated for this request > ${:.4}; resets in {retry_after_secs} s",
                    usd(self.used),
                    est.cost_usd,
                    usd(self.limit)
                )
            }
        } else {
            let want = match self.kind {
                LimitKind::InputTokens => est.input,
                LimitKind::OutputTokens => est.output,
                _ => est.input + est.output,
            };
            if self.never {
                format!(
                    "token limit {name} ({}) is smaller than this request's estimate ({want} tokens); lower max_tokens or raise the limit",
                    self.limit
                )
            } else {
                format!(
                    "token limit {name} exceeded: {} tokens in the last hour + {want} estimated for this request > {}; retry in {retry_after_secs} s",
                    self.used, self.limit
                )
            }
        };
        Denied {
            which: self.kind,
            retry_after_secs,
            message,
        }
    }
}

fn nanos(usd: f64) -> i64 {
    if usd.is_finite() {
        (usd * NANOS_PER_USD).round() as i64
    } else {
        0
    }
}

fn new_reservation_id() -> String {
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The UTC day and month a timestamp falls in, and when each ends.
struct Period {
    day: String,
    day_end_ms: u64,
    month: String,
    month_end_ms: u64,
}

fn period(now_ms: u64) -> Result<Period, StoreError> {
    use time::{Date, Month, OffsetDateTime};
    let bad = |e: &dyn std::fmt::Display| StoreError::Invalid(format!("timestamp {now_ms}: {e}"));
    let dt = OffsetDateTime::from_unix_timestamp((now_ms / 1000) as i64).map_err(|e| bad(&e))?;
    let date = dt.date();
    let ms = |d: Date| (d.midnight().assume_utc().unix_timestamp().max(0) as u64) * 1000;
    let next_day = date.next_day().ok_or_else(|| bad(&"no next day"))?;
    let (y, m) = if date.month() == Month::December {
        (date.year() + 1, Month::January)
    } else {
        (date.year(), date.month().next())
    };
    let next_month = Date::from_calendar_date(y, m, 1).map_err(|e| bad(&e))?;
    Ok(Period {
        day: format!(
            "{:04}{:02}{:02}",
            date.year(),
            date.month() as u8,
            date.day()
        ),
        day_end_ms: ms(next_day),
        month: format!("{:04}{:02}", date.year(), date.month() as u8),
        month_end_ms: ms(next_month),
    })
}

// === Usage ===

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageBy {
    Key,
    Model,
    Provider,
}

impl UsageBy {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageBy::Key => "key",
            UsageBy::Model => "model",
            UsageBy::Provider => "provider",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageRow {
    pub name: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub errors: u64,
}

/// One bucket of `usage_series`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageBucket {
    pub start_ms: u64,
    /// By cost, then name; only names with usage in the bucket.
    pub rows: Vec<UsageRow>,
}

/// The buckets' rows summed per name, ordered like `usage` (by cost, then name): the period's
/// totals without a second read.
pub fn usage_total(buckets: &[UsageBucket]) -> Vec<UsageRow> {
    let mut sum: HashMap<&str, UsageRow> = HashMap::new();
    for r in buckets.iter().flat_map(|b| &b.rows) {
        let e = sum.entry(r.name.as_str()).or_insert_with(|| UsageRow {
            name: r.name.clone(),
            ..UsageRow::default()
        });
        e.requests += r.requests;
        e.input_tokens += r.input_tokens;
        e.output_tokens += r.output_tokens;
        e.cost_usd += r.cost_usd;
        e.errors += r.errors;
    }
    let mut rows: Vec<UsageRow> = sum.into_values().collect();
    sort_usage_rows(&mut rows);
    rows
}

fn sort_usage_rows(rows: &mut [UsageRow]) {
    rows.sort_by(|a, b| {
        b.cost_usd
            .total_cmp(&a.cost_usd)
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// Integer counters as stored (cost in nano-USD), summed over hours.
#[derive(Debug, Clone, Default)]
struct UsageCounters {
    requests: u64,
    input: u64,
    output: u64,
    cost_nanos: i64,
    errors: u64,
}

impl UsageCounters {
    fn add(&mut self, o: &UsageCounters) {
        self.requests += o.requests;
        self.input += o.input;
        self.output += o.output;
        self.cost_nanos += o.cost_nanos;
        self.errors += o.errors;
    }
}

/// Rows sorted by cost, then name.
fn usage_rows(map: HashMap<String, UsageCounters>) -> Vec<UsageRow> {
    let mut rows: Vec<UsageRow> = map
        .into_iter()
        .map(|(name, c)| UsageRow {
            name,
            requests: c.requests,
            input_tokens: c.input,
            output_tokens: c.output,
            cost_usd: c.cost_nanos as f64 / NANOS_PER_USD,
            errors: c.errors,
        })
        .collect();
    sort_usage_rows(&mut rows);
    rows
}

// === Request log ===

/// Request-log filters (`logs tail`, the Console); all given ones must match.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Key id or key name.
    pub key: Option<String>,
    /// Requested or resolved model.
    pub model: Option<String>,
    pub provider: Option<String>,
    pub status: Option<u16>,
    /// Only records appended at or after this time.
    pub since_ms: Option<u64>,
    /// One request's record (its request id).
    pub id: Option<String>,
}

impl LogFilter {
    /// Whether a record passes the field filters. `since_ms` is not checked here: the stores
    /// apply it to the append time (the entry id) before reading anything.
    pub fn matches(&self, r: &serde_json::Value) -> bool {
        let s = |f: &str| r.get(f).and_then(|v| v.as_str());
        let eq = |f: &str, want: &str| s(f) == Some(want);
        self.id.as_deref().is_none_or(|i| eq("id", i))
            && self
                .key
                .as_deref()
                .is_none_or(|k| eq("key_id", k) || eq("key_name", k))
            && self
                .model
                .as_deref()
                .is_none_or(|m| eq("requested_model", m) || eq("resolved_model", m))
            && self.provider.as_deref().is_none_or(|p| eq("provider", p))
            && self
                .status
                .is_none_or(|st| r.get("status").and_then(|v| v.as_u64()) == Some(u64::from(st)))
    }

    /// `matches`, with `since_ms` checked against the record's own `ts` (when the request
    /// started): for records that have no append time, such as the processor's in-memory ring.
    fn matches_by_ts(&self, r: &serde_json::Value) -> bool {
        self.matches(r)
            && self
                .since_ms
                .is_none_or(|since| record_ts_ms(r).is_some_and(|t| t >= since))
    }

    /// The byte strings a matching record's raw JSON must contain, to skip parsing most of the
    /// records that cannot match. Records are written by serde_json (`RecordSink`), so a string
    /// value appears exactly as serde_json encodes it, quotes included; a status as its digits.
    fn needles(&self) -> Vec<memchr::memmem::Finder<'static>> {
        let quoted = |v: &String| serde_json::to_string(v).unwrap_or_default().into_bytes();
        [&self.id, &self.key, &self.model, &self.provider]
            .into_iter()
            .flatten()
            .map(quoted)
            .chain(self.status.map(|s| s.to_string().into_bytes()))
            .map(|n| memchr::memmem::Finder::new(&n).into_owned())
            .collect()
    }
}

/// `Store::search_logs` over records kept outside the store (the processor's in-memory ring),
/// given newest first as serialized JSON; `since_ms` applies to each record's `ts`. The page's
/// cursor is empty: there is nothing to follow.
pub fn search_raw_logs(
    filter: &LogFilter,
    limit: usize,
    max_scan: usize,
    newest_first: impl IntoIterator<Item = Vec<u8>>,
) -> LogPage {
    let mut scan = LogScan::new(filter, limit, max_scan);
    scan.by_ts = true;
    for raw in newest_first {
        if scan.wants() == 0 {
            return scan.finish(String::new(), false);
        }
        scan.push(&raw);
    }
    scan.finish(String::new(), true)
}

/// A record's `ts` (RFC 3339) in Unix ms.
fn record_ts_ms(r: &serde_json::Value) -> Option<u64> {
    let ts = r.get("ts")?.as_str()?;
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// One newest-first pass over raw log entries, shared by both backends so they search alike:
/// counts what it examines against the scan budget, pre-filters the raw bytes, parses and
/// matches the rest, and stops at `limit` matches.
struct LogScan {
    filter: LogFilter,
    /// Check `since_ms` on each record's `ts` (records without an append time).
    by_ts: bool,
    needles: Vec<memchr::memmem::Finder<'static>>,
    limit: usize,
    max_scan: usize,
    scanned: usize,
    /// Newest first.
    records: Vec<serde_json::Value>,
}

impl LogScan {
    fn new(filter: &LogFilter, limit: usize, max_scan: usize) -> LogScan {
        LogScan {
            filter: filter.clone(),
            by_ts: false,
            needles: filter.needles(),
            limit,
            max_scan,
            scanned: 0,
            records: Vec::new(),
        }
    }

    /// How many more entries to examine: 0 once `limit` matched or the budget is spent.
    fn wants(&self) -> usize {
        if self.records.len() >= self.limit {
            0
        } else {
            self.max_scan - self.scanned
        }
    }

    /// Examine the next (older) entry; call only while `wants() > 0`.
    fn push(&mut self, raw: &[u8]) {
        self.scanned += 1;
        if !self.needles.iter().all(|n| n.find(raw).is_some()) {
            return;
        }
        // Unparsable entries are skipped.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw)
            && if self.by_ts {
                self.filter.matches_by_ts(&v)
            } else {
                self.filter.matches(&v)
            }
        {
            self.records.push(v);
        }
    }

    /// The budget ran out before `limit` matches were found.
    fn budget_spent(&self) -> bool {
        self.records.len() < self.limit && self.scanned >= self.max_scan
    }

    /// `exhausted`: the range had no older entries left when the scan stopped.
    fn finish(mut self, cursor: String, exhausted: bool) -> LogPage {
        let complete = exhausted || !self.budget_spent();
        self.records.reverse();
        LogPage {
            records: self.records,
            cursor,
            scanned: self.scanned,
            complete,
        }
    }
}

/// Records oldest first, and the cursor to `follow_logs` from (the newest entry seen).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogPage {
    pub records: Vec<serde_json::Value>,
    pub cursor: String,
    /// Entries examined (matching or not).
    pub scanned: usize,
    /// False when a search stopped at its scan budget with fewer than `limit` matches: older
    /// entries in the range were not searched.
    pub complete: bool,
}

/// The cursor before any entry.
pub const LOG_START: &str = "0-0";

/// A stream id `ms-seq`.
fn parse_stream_id(s: &str) -> Result<(u64, u64), StoreError> {
    let bad = || StoreError::Invalid(format!("log cursor '{s}' is not <ms>-<seq>"));
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// === The store ===

/// Cheap to clone; clones share the backend.
#[derive(Clone)]
pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

macro_rules! dispatch {
    ($self:ident . $m:ident ( $($a:expr),* )) => {
        match $self {
            Store::Memory(s) => s.$m($($a),*).await,
            Store::Redis(s) => s.$m($($a),*).await,
        }
    };
}

impl Store {
    pub fn memory() -> Store {
        Store::memory_with(StoreOptions::default())
    }

    pub fn memory_with(opts: StoreOptions) -> Store {
        Store::Memory(MemoryStore::new(opts))
    }

    /// Connect (within `connect_timeout`); later outages surface as errors per call while the
    /// connection is re-established in the background.
    pub async fn redis(url: &str, opts: StoreOptions) -> Result<Store, StoreError> {
        Ok(Store::Redis(RedisStore::connect(url, opts).await?))
    }

    /// Create a dynamic key; the returned `sk-sy-…` string is its only copy (only its hash is
    /// stored).
    pub async fn create_key(&self, new: NewKey) -> Result<(KeyInfo, String), StoreError> {
        if new.name.trim().is_empty() {
            return Err(StoreError::Invalid("a key needs a name".into()));
        }
        dispatch!(self.create_key(new))
    }

    /// The key's identity if it is a known, unrevoked dynamic key whose hash matches. One
    /// HGETALL on Redis (one round trip, ~0.1–0.3 ms on a LAN), nothing cached: a revocation
    /// applies to the next request on every replica.
    pub async fn lookup(&self, presented: &str) -> Result<Option<KeyInfo>, StoreError> {
        let Some(id) = key_id_of(presented) else {
            return Ok(None);
        };
        let hash = stored_hash(presented);
        dispatch!(self.lookup(id, &hash))
    }

    /// Every dynamic key (revoked ones too), oldest first. Never the key or its hash.
    pub async fn list_keys(&self) -> Result<Vec<KeyStats>, StoreError> {
        dispatch!(self.list_keys())
    }

    /// The use of each key id (static or dynamic), in order; unknown ids have used nothing.
    pub async fn key_use(&self, ids: &[String]) -> Result<Vec<KeyUse>, StoreError> {
        dispatch!(self.key_use(ids))
    }

    /// Replace (or with `None` remove) a dynamic key's routing configuration; the caller has
    /// validated it. Takes effect on the key's next request on every replica.
    pub async fn set_routing(&self, id: &str, yaml: Option<&str>) -> Result<bool, StoreError> {
        let Some(hex) = id_hex(id) else {
            return Ok(false);
        };
        dispatch!(self.set_routing(hex, yaml))
    }

    /// Replace a dynamic key's limits and budgets (0 = off); false when no such live key exists
    /// (a revoked key is final).
    /// Like routing, takes effect on the key's next request on every replica.
    pub async fn set_limits(&self, id: &str, limits: &Limits) -> Result<bool, StoreError> {
        let Some(hex) = id_hex(id) else {
            return Ok(false);
        };
        dispatch!(self.set_limits(hex, limits))
    }

    /// Revoke by id (`key_<hex>` or the hex); false when no such key exists.
    pub async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let Some(hex) = id_hex(id) else {
            return Ok(false);
        };
        dispatch!(self.revoke(hex))
    }

    /// Store a new Console user with its password hash (a PHC string, hashed by the caller);
    /// `Conflict` when the email is taken.
    pub async fn create_user(&self, email: &str, hash: &str) -> Result<User, StoreError> {
        let user = User {
            email: user_id(email),
            created_ms: now_ms(),
        };
        if dispatch!(self.create_user(&user, hash))? {
            Ok(user)
        } else {
            Err(StoreError::Conflict(format!(
                "a user with email {} already exists",
                user.email
            )))
        }
    }

    /// Every Console user, by email; never their hashes.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let mut users = dispatch!(self.list_users())?;
        users.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(users)
    }

    /// Remove a user; false when there was none.
    pub async fn delete_user(&self, email: &str) -> Result<bool, StoreError> {
        dispatch!(self.delete_user(&user_id(email)))
    }

    /// The user and their hash, for verifying a password (and checking a session's user still
    /// exists). Nothing cached: a deletion applies at once on every replica.
    pub async fn user_credential(&self, email: &str) -> Result<Option<UserCredential>, StoreError> {
        dispatch!(self.user_credential(&user_id(email)))
    }

    /// Admit (and hold the estimate) or deny, atomically across replicas: one script, one
    /// round trip. `key_id` is any principal id, static or dynamic. Limits at 0 are off, so
    /// `Limits::default()` always admits and still records usage. `now_ms` is the caller's
    /// clock: replicas should agree on time (NTP), as a skew of s shifts when their entries
    /// leave the window by s. After a timeout the script may still have run; the estimate then
    /// stays held until it leaves the window (an over-count, never an under-count).
    pub async fn reserve(
        &self,
        key_id: &str,
        limits: &Limits,
        est: Estimate,
        now_ms: u64,
    ) -> Result<Result<Reservation, Denied>, StoreError> {
        let res = Reservation {
            id: new_reservation_id(),
            key_id: key_id.to_string(),
            at_ms: now_ms,
            estimate: est,
        };
        let p = period(now_ms)?;
        let denial = dispatch!(self.reserve(&res, limits, &p))?;
        Ok(match denial {
            None => Ok(res),
            Some(d) => Err(d.into_denied(&est)),
        })
    }

    /// Replace the reservation by actual usage and record it in the key's stats and the usage
    /// counters: one script, one round trip. Applied once per reservation id (for two hours);
    /// returns false for repeats, so a failed or timed-out true-up can simply be retried.
    pub async fn true_up(
        &self,
        res: &Reservation,
        actual: &Actual,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let p = period(res.at_ms)?;
        dispatch!(self.true_up(res, actual, &p, now_ms))
    }

    /// Tokens in the key's window at `now_ms`.
    pub async fn window_usage(&self, key_id: &str, now_ms: u64) -> Result<WindowUsage, StoreError> {
        dispatch!(self.window_usage(key_id, now_ms))
    }

    /// Usage summed over whole hours from the hour containing `since_ms` to the one containing
    /// `now_ms` (hourly precision).
    pub async fn usage(
        &self,
        by: UsageBy,
        since_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let mut sum: HashMap<String, UsageCounters> = HashMap::new();
        for (_, hour) in self.usage_hours(by, since_ms, now_ms).await? {
            for (name, c) in hour {
                sum.entry(name).or_default().add(&c);
            }
        }
        Ok(usage_rows(sum))
    }

    /// Usage over time: buckets of `step_hours` whole hours (aligned to multiples of the step
    /// since the epoch, so daily buckets are UTC days), oldest first, empty ones included, from
    /// the bucket containing `since_ms` to the one containing `now_ms`.
    pub async fn usage_series(
        &self,
        by: UsageBy,
        since_ms: u64,
        now_ms: u64,
        step_hours: u64,
    ) -> Result<Vec<UsageBucket>, StoreError> {
        let step = step_hours.max(1);
        let first = since_ms / HOUR_MS / step;
        let last = now_ms / HOUR_MS / step;
        let mut buckets: Vec<HashMap<String, UsageCounters>> =
            vec![HashMap::new(); (last - first.min(last) + 1) as usize];
        for (hour, counters) in self.usage_hours(by, first * step * HOUR_MS, now_ms).await? {
            let Some(bucket) = (hour / step)
                .checked_sub(first)
                .and_then(|i| buckets.get_mut(i as usize))
            else {
                continue;
            };
            for (name, c) in counters {
                bucket.entry(name).or_default().add(&c);
            }
        }
        Ok(buckets
            .into_iter()
            .enumerate()
            .map(|(i, counters)| UsageBucket {
                start_ms: (first + i as u64) * step * HOUR_MS,
                rows: usage_rows(counters),
            })
            .collect())
    }

    /// The counters of each hour from `since_ms` to `now_ms` that has any, oldest first.
    async fn usage_hours(
        &self,
        by: UsageBy,
        since_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<(u64, HashMap<String, UsageCounters>)>, StoreError> {
        let retention = match self {
            Store::Memory(s) => s.opts().usage_retention,
            Store::Redis(s) => s.opts().usage_retention,
        };
        // Nothing older than the retention is kept: don't ask for it.
        let since_ms = since_ms.max(now_ms.saturating_sub(retention.as_millis() as u64));
        let hours = since_ms / HOUR_MS..=now_ms / HOUR_MS;
        dispatch!(self.usage_hours(by, hours))
    }

    /// Append one JSON record to the capped log stream.
    pub async fn append_log(&self, json: &[u8]) -> Result<(), StoreError> {
        self.append_logs(&[json.to_vec()]).await
    }

    /// Append several records in one round trip.
    pub async fn append_logs(&self, batch: &[Vec<u8>]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        dispatch!(self.append_logs(batch))
    }

    /// The newest `limit` records that match, oldest first, searching the whole range.
    pub async fn read_logs(&self, filter: &LogFilter, limit: usize) -> Result<LogPage, StoreError> {
        self.search_logs(filter, limit, usize::MAX).await
    }

    /// `read_logs` that examines at most the newest `max_scan` entries of the range, so a
    /// filter matching few records costs a bounded time (`LogPage::complete` tells whether
    /// the search reached the range's end or `limit` matches).
    pub async fn search_logs(
        &self,
        filter: &LogFilter,
        limit: usize,
        max_scan: usize,
    ) -> Result<LogPage, StoreError> {
        let scan = LogScan::new(filter, limit, max_scan);
        dispatch!(self.read_logs(scan))
    }

    /// Records appended after `cursor` (waiting up to `block` for one), filtered (`since_ms`
    /// aside); the returned cursor moves past everything read, matching or not. Redis uses a
    /// separate connection for the blocking read, so the hot path never queues behind it.
    pub async fn follow_logs(
        &self,
        filter: &LogFilter,
        cursor: &str,
        block: Duration,
    ) -> Result<LogPage, StoreError> {
        parse_stream_id(cursor)?;
        dispatch!(self.follow_logs(filter, cursor, block))
    }
}

// === Log sink ===

/// Request records on their way to the store: `send` never blocks; the queue holds at most
/// `capacity` records plus one batch being written. When the store is slow or down the writer
/// retries its batch with backoff, the queue fills, and further records are dropped and counted.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

const SINK_BATCH: usize = 256;

impl LogSink {
    /// Start the writer task (needs a tokio runtime). It ends when every sender is dropped.
    pub fn start(store: Store, capacity: usize) -> LogSink {
        let capacity = capacity.max(1);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(capacity);
        let batch_max = capacity.min(SINK_BATCH);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer_dropped = dropped.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(batch_max);
            while rx.recv_many(&mut batch, batch_max).await > 0 {
                let mut backoff = Duration::from_millis(50);
                let mut failures = 0u32;
                while let Err(e) = store.append_logs(&batch).await {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, records = batch.len(), failures, "request-log store write failed; retrying");
                    }
                    // Every sender is gone (shutdown): don't retry a dead store forever.
                    if rx.is_closed() && failures >= 3 {
                        count_drop(&writer_dropped, batch.len() as u64);
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                batch.clear();
            }
        });
        LogSink { tx, dropped }
    }

    /// Queue one serialized record; drops (and counts) it when the queue is full.
    pub fn send(&self, json: Vec<u8>) {
        if self.tx.try_send(json).is_err() {
            count_drop(&self.dropped, 1);
        }
    }

    /// Records dropped so far (export as a metric).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

fn count_drop(dropped: &AtomicU64, n: u64) {
    let before = dropped.fetch_add(n, Ordering::Relaxed);
    // Warn on the first drop and then once per 1000, so an outage cannot flood the log.
    if before == 0 || before / 1000 != (before + n) / 1000 {
        tracing::warn!(
            dropped_total = before + n,
            "request records dropped: log store queue is full or the store is down"
        );
    }
}
