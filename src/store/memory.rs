//! The in-process backend: the same algorithms as the Lua scripts, over maps behind one mutex
//! (which gives the atomicity the scripts get from Redis). Expiry uses the callers' `now_ms`.

use super::*;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// Minute bucket → (input, output) tokens reserved or used in it.
pub(super) type Window = BTreeMap<u64, (u64, u64)>;

/// Most entries one `follow_logs` call returns (as Redis's XREAD COUNT).
pub(super) const FOLLOW_COUNT: usize = 1000;

#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Mem>>,
    appended: Arc<Notify>,
    opts: Arc<StoreOptions>,
}

#[derive(Default)]
struct Mem {
    keys: BTreeMap<String, MemKey>,
    stats: HashMap<String, KeyCounters>,
    windows: HashMap<String, Window>,
    /// `d:<key>:<day>` / `m:<key>:<month>` → (nano-USD, expires at).
    spend: HashMap<String, (i64, u64)>,
    /// Applied true-ups → expires at.
    done: HashMap<String, u64>,
    usage: BTreeMap<u64, HashMap<(UsageBy, String), UsageCounters>>,
    logs: VecDeque<((u64, u64), Vec<u8>)>,
    last_log_id: (u64, u64),
    true_ups: u64,
    /// Console users: email → (PHC hash, created_ms).
    users: BTreeMap<String, (String, u64)>,
}

struct MemKey {
    name: String,
    hash: String,
    created_ms: u64,
    revoked: bool,
    limits: Limits,
    allowed_models: Option<Vec<String>>,
    routing_yaml: Option<String>,
}

#[derive(Default)]
struct KeyCounters {
    requests: u64,
    input: u64,
    output: u64,
    spend_nanos: i64,
    last_used_ms: Option<u64>,
}

impl KeyCounters {
    fn to_use(&self) -> KeyUse {
        KeyUse {
            last_used_ms: self.last_used_ms,
            requests: self.requests,
            input_tokens: self.input,
            output_tokens: self.output,
            spend_usd: self.spend_nanos as f64 / NANOS_PER_USD,
        }
    }
}

/// The admission decision, shared in spirit with `reserve.lua` (keep the two in step): each
/// enabled token limit must hold `used + estimate <= limit` over the buckets still in the window,
/// each budget `spent + estimated cost <= limit`. Of several failures the one that needs the
/// longest wait is reported; one the estimate alone breaks is reported first.
pub(super) fn decide(
    w: &Window,
    now: u64,
    est: &Estimate,
    lim: &Limits,
    spent: [i64; 2],
    p: &Period,
) -> Option<RawDenial> {
    let mut best: Option<RawDenial> = None;
    let mut consider = |d: RawDenial| {
        let better = match &best {
            None => true,
            Some(b) => (d.never && !b.never) || (d.never == b.never && d.retry_ms > b.retry_ms),
        };
        if better {
            best = Some(d);
        }
    };
    let used_in: u64 = w.values().map(|b| b.0).sum();
    let used_out: u64 = w.values().map(|b| b.1).sum();
    /// (limit, its setting, tokens used, tokens wanted, a bucket's tokens for it)
    type Check = (LimitKind, u64, u64, u64, fn(&(u64, u64)) -> u64);
    let checks: [Check; 3] = [
        (
            LimitKind::TotalTokens,
            lim.total_tokens_per_hour,
            used_in + used_out,
            est.input + est.output,
            |b| b.0 + b.1,
        ),
        (
            LimitKind::InputTokens,
            lim.input_tokens_per_hour,
            used_in,
            est.input,
            |b| b.0,
        ),
        (
            LimitKind::OutputTokens,
            lim.output_tokens_per_hour,
            used_out,
            est.output,
            |b| b.1,
        ),
    ];
    for (kind, limit, used, want, pick) in checks {
        if limit == 0 || used + want <= limit {
            continue;
        }
        let mut d = RawDenial {
            kind,
            retry_ms: WINDOW_MS,
            used,
            limit,
            never: want > limit,
        };
        if !d.never {
            // Wait until the oldest buckets holding `need` tokens have left the window.
            let need = used + want - limit;
            let mut freed = 0;
            for (&m, b) in w {
                freed += pick(b);
                if freed >= need {
                    d.retry_ms = ((m + WINDOW_BUCKETS + 1) * BUCKET_MS).saturating_sub(now);
                    break;
                }
            }
        }
        consider(d);
    }
    let est_cost = nanos(est.cost_usd).max(0);
    let budgets = [
        (LimitKind::DailyUsd, lim.daily_usd, spent[0], p.day_end_ms),
        (
            LimitKind::MonthlyUsd,
            lim.monthly_usd,
            spent[1],
            p.month_end_ms,
        ),
    ];
    for (kind, usd, spent, end_ms) in budgets {
        let limit = nanos(usd);
        if limit <= 0 || spent + est_cost <= limit {
            continue;
        }
        consider(RawDenial {
            kind,
            retry_ms: end_ms.saturating_sub(now),
            used: spent.max(0) as u64,
            limit: limit as u64,
            never: est_cost > limit,
        });
    }
    best
}

fn stream_id((ms, seq): (u64, u64)) -> String {
    format!("{ms}-{seq}")
}

impl MemoryStore {
    pub(super) fn new(opts: StoreOptions) -> MemoryStore {
        MemoryStore {
            inner: Arc::default(),
            appended: Arc::new(Notify::new()),
            opts: Arc::new(opts),
        }
    }

    pub(super) fn opts(&self) -> &StoreOptions {
        &self.opts
    }

    fn lock(&self) -> Result<MutexGuard<'_, Mem>, StoreError> {
        self.inner.lock().map_err(|_| StoreError::Backend {
            op: "lock",
            msg: "memory store mutex poisoned".into(),
        })
    }

    pub(super) async fn create_key(&self, new: NewKey) -> Result<(KeyInfo, String), StoreError> {
        let mut m = self.lock()?;
        let (hex, key) = loop {
            let (hex, key) = mint_key();
            if !m.keys.contains_key(&hex) {
                break (hex, key);
            }
        };
        let created_ms = now_ms();
        m.keys.insert(
            hex.clone(),
            MemKey {
                name: new.name.clone(),
                hash: stored_hash(&key),
                created_ms,
                revoked: false,
                limits: new.limits,
                allowed_models: new.allowed_models.clone(),
                routing_yaml: new.routing_yaml.clone(),
            },
        );
        let info = KeyInfo {
            id: public_id(&hex),
            name: new.name,
            created_ms,
            limits: new.limits,
            allowed_models: new.allowed_models,
            routing_yaml: new.routing_yaml,
        };
        Ok((info, key))
    }

    pub(super) async fn lookup(
        &self,
        hex: &str,
        hash: &str,
    ) -> Result<Option<KeyInfo>, StoreError> {
        let m = self.lock()?;
        Ok(m.keys.get(hex).and_then(|k| {
            (!k.revoked && ct_eq(k.hash.as_bytes(), hash.as_bytes())).then(|| KeyInfo {
                id: public_id(hex),
                name: k.name.clone(),
                created_ms: k.created_ms,
                limits: k.limits,
                allowed_models: k.allowed_models.clone(),
                routing_yaml: k.routing_yaml.clone(),
            })
        }))
    }

    pub(super) async fn list_keys(&self) -> Result<Vec<KeyStats>, StoreError> {
        let m = self.lock()?;
        let mut out: Vec<KeyStats> = m
            .keys
            .iter()
            .map(|(hex, k)| {
                let info = KeyInfo {
                    id: public_id(hex),
                    name: k.name.clone(),
                    created_ms: k.created_ms,
                    limits: k.limits,
                    allowed_models: None,
                    routing_yaml: k.routing_yaml.clone(),
                };
                let used = m.stats.get(&info.id).map(KeyCounters::to_use);
                KeyStats::new(info, used.unwrap_or_default(), KeySource::Store, k.revoked)
            })
            .collect();
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    pub(super) async fn set_routing(
        &self,
        hex: &str,
        yaml: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut m = self.lock()?;
        Ok(m.keys
            .get_mut(hex)
            .filter(|k| !k.revoked)
            .map(|k| k.routing_yaml = yaml.map(str::to_string))
            .is_some())
    }

    pub(super) async fn key_use(&self, ids: &[String]) -> Result<Vec<KeyUse>, StoreError> {
        let m = self.lock()?;
        Ok(ids
            .iter()
            .map(|id| m.stats.get(id).map(KeyCounters::to_use).unwrap_or_default())
            .collect())
    }

    pub(super) async fn set_limits(&self, hex: &str, l: &Limits) -> Result<bool, StoreError> {
        let mut m = self.lock()?;
        Ok(m.keys
            .get_mut(hex)
            .filter(|k| !k.revoked)
            .map(|k| k.limits = *l)
            .is_some())
    }

    pub(super) async fn revoke(&self, hex: &str) -> Result<bool, StoreError> {
        let mut m = self.lock()?;
        Ok(m.keys.get_mut(hex).map(|k| k.revoked = true).is_some())
    }

    pub(super) async fn create_user(&self, user: &User, hash: &str) -> Result<bool, StoreError> {
        let mut m = self.lock()?;
        if m.users.contains_key(&user.email) {
            return Ok(false);
        }
        m.users
            .insert(user.email.clone(), (hash.to_string(), user.created_ms));
        Ok(true)
    }

    pub(super) async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let m = self.lock()?;
        Ok(m.users
            .iter()
            .map(|(email, (_, created_ms))| User {
                email: email.clone(),
                created_ms: *created_ms,
            })
            .collect())
    }

    pub(super) async fn delete_user(&self, email: &str) -> Result<bool, StoreError> {
        Ok(self.lock()?.users.remove(email).is_some())
    }

    pub(super) async fn user_credential(
        &self,
        email: &str,
    ) -> Result<Option<UserCredential>, StoreError> {
        let m = self.lock()?;
        Ok(m.users.get(email).map(|(hash, created_ms)| UserCredential {
            user: User {
                email: email.to_string(),
                created_ms: *created_ms,
            },
            hash: hash.clone(),
        }))
    }

    pub(super) async fn reserve(
        &self,
        res: &Reservation,
        limits: &Limits,
        p: &Period,
    ) -> Result<Option<RawDenial>, StoreError> {
        let mut guard = self.lock()?;
        let m = &mut *guard;
        let now = res.at_ms;
        let cur = now / BUCKET_MS;
        let day_key = format!("d:{}:{}", res.key_id, p.day);
        let month_key = format!("m:{}:{}", res.key_id, p.month);
        let spent = |k: &str| {
            m.spend
                .get(k)
                .filter(|(_, exp)| *exp > now)
                .map_or(0, |(v, _)| *v)
        };
        let spent = [spent(&day_key), spent(&month_key)];
        let w = m.windows.entry(res.key_id.clone()).or_default();
        *w = w.split_off(&cur.saturating_sub(WINDOW_BUCKETS));
        if let Some(d) = decide(w, now, &res.estimate, limits, spent, p) {
            return Ok(Some(d));
        }
        let b = w.entry(cur).or_default();
        b.0 += res.estimate.input;
        b.1 += res.estimate.output;
        let cost = nanos(res.estimate.cost_usd).max(0);
        for (k, end) in [(day_key, p.day_end_ms), (month_key, p.month_end_ms)] {
            let e = m.spend.entry(k).or_insert((0, 0));
            if e.1 <= now {
                e.0 = 0;
            }
            e.0 += cost;
            e.1 = end + HOUR_MS;
        }
        Ok(None)
    }

    pub(super) async fn true_up(
        &self,
        res: &Reservation,
        a: &Actual,
        p: &Period,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut guard = self.lock()?;
        let m = &mut *guard;
        m.true_ups += 1;
        if m.true_ups.is_multiple_of(1024) {
            m.done.retain(|_, exp| *exp > now);
            m.spend.retain(|_, (_, exp)| *exp > now);
            let keep_from =
                now.saturating_sub(self.opts.usage_retention.as_millis() as u64) / HOUR_MS;
            m.usage = m.usage.split_off(&keep_from);
        }
        if m.done.get(&res.id).is_some_and(|exp| *exp > now) {
            return Ok(false);
        }
        m.done.insert(res.id.clone(), now + DONE_TTL_MS);

        let est = &res.estimate;
        let d_in = a.input as i64 - est.input as i64;
        let d_out = a.output as i64 - est.output as i64;
        if let Some(b) = m
            .windows
            .get_mut(&res.key_id)
            .and_then(|w| w.get_mut(&(res.at_ms / BUCKET_MS)))
        {
            b.0 = b.0.saturating_add_signed(d_in);
            b.1 = b.1.saturating_add_signed(d_out);
        }
        let cost = nanos(a.cost_usd).max(0);
        let d_cost = cost - nanos(est.cost_usd).max(0);
        for k in [
            format!("d:{}:{}", res.key_id, p.day),
            format!("m:{}:{}", res.key_id, p.month),
        ] {
            if let Some(e) = m.spend.get_mut(&k).filter(|(_, exp)| *exp > now) {
                e.0 += d_cost;
            }
        }
        let s = m.stats.entry(res.key_id.clone()).or_default();
        s.requests += 1;
        s.input += a.input;
        s.output += a.output;
        s.spend_nanos += cost;
        s.last_used_ms = Some(now);
        let add = UsageCounters {
            requests: 1,
            input: a.input,
            output: a.output,
            cost_nanos: cost,
            errors: u64::from(a.error),
        };
        let hour = m.usage.entry(now / HOUR_MS).or_default();
        for (by, name) in [
            (UsageBy::Key, &res.key_id),
            (UsageBy::Model, &a.model),
            (UsageBy::Provider, &a.provider),
        ] {
            hour.entry((by, name.clone())).or_default().add(&add);
        }
        Ok(true)
    }

    pub(super) async fn window_usage(
        &self,
        key_id: &str,
        now: u64,
    ) -> Result<WindowUsage, StoreError> {
        let m = self.lock()?;
        let oldest = (now / BUCKET_MS).saturating_sub(WINDOW_BUCKETS);
        let mut u = WindowUsage::default();
        for (_, b) in m
            .windows
            .get(key_id)
            .into_iter()
            .flat_map(|w| w.range(oldest..))
        {
            u.input += b.0;
            u.output += b.1;
        }
        Ok(u)
    }

    pub(super) async fn usage_hours(
        &self,
        by: UsageBy,
        hours: RangeInclusive<u64>,
    ) -> Result<Vec<(u64, HashMap<String, UsageCounters>)>, StoreError> {
        let m = self.lock()?;
        Ok(m.usage
            .range(hours)
            .map(|(h, hour)| {
                let counters: HashMap<String, UsageCounters> = hour
                    .iter()
                    .filter(|((b, _), _)| *b == by)
                    .map(|((_, name), c)| (name.clone(), c.clone()))
                    .collect();
                (*h, counters)
            })
            .filter(|(_, c)| !c.is_empty())
            .collect())
    }

    pub(super) async fn append_logs(&self, batch: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut m = self.lock()?;
        let now = now_ms();
        for json in batch {
            let (ms, seq) = m.last_log_id;
            let id = if now > ms { (now, 0) } else { (ms, seq + 1) };
            m.last_log_id = id;
            m.logs.push_back((id, json.clone()));
        }
        let max_len = self.opts.log_max_len.max(1) as usize;
        let min_ms = now.saturating_sub(self.opts.log_max_age.as_millis() as u64);
        while m.logs.len() > max_len || m.logs.front().is_some_and(|(id, _)| id.0 < min_ms) {
            m.logs.pop_front();
        }
        drop(m);
        self.appended.notify_waiters();
        Ok(())
    }

    pub(super) async fn read_logs(&self, mut scan: LogScan) -> Result<LogPage, StoreError> {
        let m = self.lock()?;
        let since = scan.filter.since_ms.unwrap_or(0);
        let cursor = m
            .logs
            .back()
            .map_or(LOG_START.to_string(), |(id, _)| stream_id(*id));
        for (id, json) in m.logs.iter().rev() {
            if id.0 < since {
                break;
            }
            if scan.wants() == 0 {
                return Ok(scan.finish(cursor, false));
            }
            scan.push(json);
        }
        Ok(scan.finish(cursor, true))
    }

    pub(super) async fn follow_logs(
        &self,
        f: &LogFilter,
        cursor: &str,
        block: Duration,
    ) -> Result<LogPage, StoreError> {
        let after = parse_stream_id(cursor)?;
        let deadline = tokio::time::Instant::now() + block;
        loop {
            // Register for the wake-up before looking, so an append in between is not missed.
            let appended = self.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            {
                let m = self.lock()?;
                let start = m.logs.partition_point(|(id, _)| *id <= after);
                let new: Vec<_> = m.logs.range(start..).take(FOLLOW_COUNT).collect();
                if let Some((last, _)) = new.last() {
                    let records = new
                        .iter()
                        .filter_map(|(_, j)| serde_json::from_slice(j).ok())
                        .filter(|v| f.matches(v))
                        .collect();
                    return Ok(LogPage {
                        scanned: new.len(),
                        records,
                        cursor: stream_id(*last),
                        complete: true,
                    });
                }
            }
            if tokio::time::timeout_at(deadline, appended).await.is_err() {
                return Ok(LogPage {
                    records: Vec::new(),
                    cursor: cursor.to_string(),
                    scanned: 0,
                    complete: true,
                });
            }
        }
    }
}
