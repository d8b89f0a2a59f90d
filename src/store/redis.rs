//! The Redis backend: one multiplexed `ConnectionManager` (reconnects in the background) for
//! every call, plus a separate connection for blocking stream reads so an `XREAD BLOCK` never
//! stalls the hot path queued behind it. Every call is bounded by a timeout. Keys (prefix `p`):
//!
//! - `p key:<hex>` hash: name, hash, created_ms, revoked, limits, allowed_models, routing_yaml;
//!   `p keys` set of ids; `p ks:<key id>` hash: requests, tokens, spend_nanos, last_used_ms
//! - `p w:<key id>` window hash (see reserve.lua); `p sd:<key id>:<yyyymmdd>`,
//!   `p sm:<key id>:<yyyymm>` spend; `p done:<reservation id>` true-up markers
//! - `p u:<key|model|provider>:<hour>` usage hash: `<name>|r|i|o|c|e`
//! - `p logs` the request-log stream, one field `r` holding the JSON record
//! - `p user:<lower-cased email>` hash: hash (argon2id PHC string), created_ms; `p users` set
//!   of emails
//!
//! Not for Redis Cluster: the scripts touch keys of several hash slots.

use super::memory::FOLLOW_COUNT;
use super::*;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use ::redis::{AsyncConnectionConfig, Client, RedisResult, Script, cmd, pipe};
use std::collections::HashMap;
use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::Mutex;

#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    client: Client,
    /// An idle connection for blocking reads; taken while in use, so followers never share one.
    follow: Mutex<Option<MultiplexedConnection>>,
    opts: StoreOptions,
    reserve: Script,
    true_up: Script,
    /// `create_key.lua`: a record (key or user) plus its id in a set, unless the id is taken.
    create_record: Script,
    update_key: Script,
    revoke: Script,
}

type Fields = HashMap<String, String>;
/// XRANGE-style entries: (id, [field, value, …]).
type Entries = Vec<(String, Vec<Vec<u8>>)>;

const PAGE: usize = 500;

async fn timed<T>(
    op: &'static str,
    limit: Duration,
    f: impl Future<Output = RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StoreError::Backend {
            op,
            msg: e.to_string(),
        }),
        Err(_) => Err(StoreError::Timeout {
            op,
            ms: limit.as_millis() as u64,
        }),
    }
}

fn num(h: &Fields, f: &str) -> u64 {
    h.get(f).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn float(h: &Fields, f: &str) -> f64 {
    h.get(f).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

fn limits_of(h: &Fields) -> Limits {
    Limits {
        total_tokens_per_hour: num(h, "lim_total"),
        input_tokens_per_hour: num(h, "lim_in"),
        output_tokens_per_hour: num(h, "lim_out"),
        daily_usd: float(h, "lim_daily_usd"),
        monthly_usd: float(h, "lim_monthly_usd"),
    }
}

/// The key record's limit fields (read back by `limits_of`).
fn limit_fields(l: &Limits) -> [(&'static str, String); 5] {
    [
        ("lim_total", l.total_tokens_per_hour.to_string()),
        ("lim_in", l.input_tokens_per_hour.to_string()),
        ("lim_out", l.output_tokens_per_hour.to_string()),
        ("lim_daily_usd", l.daily_usd.to_string()),
        ("lim_monthly_usd", l.monthly_usd.to_string()),
    ]
}

/// An hour's usage hash (`u:<by>:<hour>`, fields `<name>|<counter letter>`, kept by
/// `true_up.lua`).
fn usage_counters<'a>(
    fields: impl Iterator<Item = (&'a str, &'a str)>,
) -> HashMap<String, UsageCounters> {
    let mut out: HashMap<String, UsageCounters> = HashMap::new();
    for (f, v) in fields {
        // Names may contain '|': the counter letter is after the last one.
        let Some((name, c)) = f.rsplit_once('|') else {
            continue;
        };
        let n: i64 = v.parse().unwrap_or(0);
        // Five counters per name: allocate the name once.
        let e = match out.get_mut(name) {
            Some(e) => e,
            None => out.entry(name.to_string()).or_default(),
        };
        match c {
            "r" => e.requests += n.max(0) as u64,
            "i" => e.input += n.max(0) as u64,
            "o" => e.output += n.max(0) as u64,
            "c" => e.cost_nanos += n,
            "e" => e.errors += n.max(0) as u64,
            _ => {}
        }
    }
    out
}

/// A key stats hash (`ks:<id>`, kept by `true_up.lua`).
fn key_use(s: &Fields) -> KeyUse {
    KeyUse {
        last_used_ms: s.get("last_used_ms").and_then(|v| v.parse().ok()),
        requests: num(s, "requests"),
        input_tokens: num(s, "input_tokens"),
        output_tokens: num(s, "output_tokens"),
        spend_usd: s
            .get("spend_nanos")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0) as f64
            / NANOS_PER_USD,
    }
}

fn key_info(hex: &str, h: &Fields) -> KeyInfo {
    KeyInfo {
        id: public_id(hex),
        name: h.get("name").cloned().unwrap_or_default(),
        created_ms: num(h, "created_ms"),
        limits: limits_of(h),
        allowed_models: h
            .get("allowed_models")
            .and_then(|j| serde_json::from_str(j).ok()),
        routing_yaml: h.get("routing_yaml").cloned(),
    }
}

/// A HGETALL reply's (field, value) pairs as text, borrowed (RESP2 array or RESP3 map).
fn hash_pairs(v: &::redis::Value) -> Box<dyn Iterator<Item = (&str, &str)> + '_> {
    use ::redis::Value;
    fn text(v: &Value) -> Option<&str> {
        match v {
            Value::BulkString(b) => std::str::from_utf8(b).ok(),
            Value::SimpleString(s) => Some(s.as_str()),
            _ => None,
        }
    }
    match v {
        Value::Array(items) => Box::new(
            items
                .chunks(2)
                .filter_map(|kv| Some((text(kv.first()?)?, text(kv.get(1)?)?))),
        ),
        Value::Map(pairs) => Box::new(pairs.iter().filter_map(|(k, v)| Some((text(k)?, text(v)?)))),
        _ => Box::new(std::iter::empty()),
    }
}

/// The raw JSON record of a stream entry (field `r`; empty if it has none).
fn raw_record(fields: &[Vec<u8>]) -> &[u8] {
    fields
        .chunks(2)
        .find(|kv| kv[0] == b"r")
        .and_then(|kv| kv.get(1))
        .map_or(&[], Vec::as_slice)
}

/// The JSON record of a stream entry; unparsable entries are skipped.
fn record(fields: &[Vec<u8>]) -> Option<serde_json::Value> {
    serde_json::from_slice(raw_record(fields)).ok()
}

impl RedisStore {
    pub(super) async fn connect(url: &str, opts: StoreOptions) -> Result<RedisStore, StoreError> {
        let client = Client::open(url).map_err(|e| StoreError::Backend {
            op: "connect",
            msg: e.to_string(),
        })?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(opts.connect_timeout))
            // A backstop only: each call has its own, usually shorter, timeout.
            .set_response_timeout(Some(opts.admin_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(opts.connect_timeout);
        let conn = timed(
            "connect",
            opts.connect_timeout,
            ConnectionManager::new_with_config(client.clone(), cfg),
        )
        .await?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conn,
                client,
                follow: Mutex::new(None),
                opts,
                reserve: Script::new(include_str!("lua/reserve.lua")),
                true_up: Script::new(include_str!("lua/true_up.lua")),
                create_record: Script::new(include_str!("lua/create_key.lua")),
                update_key: Script::new(include_str!("lua/update_key.lua")),
                revoke: Script::new(include_str!("lua/revoke.lua")),
            }),
        })
    }

    pub(super) fn opts(&self) -> &StoreOptions {
        &self.inner.opts
    }

    fn k(&self, rest: &str) -> String {
        format!("{}{rest}", self.inner.opts.prefix)
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    fn hot(&self) -> Duration {
        self.inner.opts.op_timeout
    }

    fn admin(&self) -> Duration {
        self.inner.opts.admin_timeout
    }

    pub(super) async fn create_key(&self, new: NewKey) -> Result<(KeyInfo, String), StoreError> {
        let created_ms = now_ms();
        let l = &new.limits;
        let mut fields: Vec<(&str, String)> = vec![
            ("name", new.name.clone()),
            ("created_ms", created_ms.to_string()),
            ("revoked", "0".into()),
        ];
        fields.extend(limit_fields(l));
        if let Some(m) = &new.allowed_models {
            let json = serde_json::to_string(m).map_err(|e| StoreError::Invalid(e.to_string()))?;
            fields.push(("allowed_models", json));
        }
        if let Some(r) = &new.routing_yaml {
            fields.push(("routing_yaml", r.clone()));
        }
        // 48-bit random ids: a collision is rare, and the script refuses to overwrite one.
        for _ in 0..5 {
            let (hex, key) = mint_key();
            let mut inv = self.inner.create_record.key(self.k(&format!("key:{hex}")));
            inv.key(self.k("keys")).arg(&hex);
            inv.arg("hash").arg(stored_hash(&key));
            for (f, v) in &fields {
                inv.arg(*f).arg(v);
            }
            let mut conn = self.conn();
            let created: i64 =
                timed("create_key", self.admin(), inv.invoke_async(&mut conn)).await?;
            if created == 1 {
                let info = KeyInfo {
                    id: public_id(&hex),
                    name: new.name,
                    created_ms,
                    limits: new.limits,
                    allowed_models: new.allowed_models,
                    routing_yaml: new.routing_yaml,
                };
                return Ok((info, key));
            }
        }
        Err(StoreError::Invalid(
            "could not allocate a free key id".into(),
        ))
    }

    pub(super) async fn lookup(
        &self,
        hex: &str,
        hash: &str,
    ) -> Result<Option<KeyInfo>, StoreError> {
        let mut conn = self.conn();
        let h: Fields = timed(
            "lookup",
            self.hot(),
            cmd("HGETALL")
                .arg(self.k(&format!("key:{hex}")))
                .query_async(&mut conn),
        )
        .await?;
        let valid = h.get("revoked").is_some_and(|r| r == "0")
            && h.get("hash")
                .is_some_and(|s| ct_eq(s.as_bytes(), hash.as_bytes()));
        Ok(valid.then(|| key_info(hex, &h)))
    }

    pub(super) async fn list_keys(&self) -> Result<Vec<KeyStats>, StoreError> {
        let mut conn = self.conn();
        let ids: Vec<String> = timed(
            "list_keys",
            self.admin(),
            cmd("SMEMBERS").arg(self.k("keys")).query_async(&mut conn),
        )
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = pipe();
        for hex in &ids {
            p.cmd("HGETALL").arg(self.k(&format!("key:{hex}")));
            p.cmd("HGETALL")
                .arg(self.k(&format!("ks:{}", public_id(hex))));
        }
        let maps: Vec<Fields> = timed("list_keys", self.admin(), p.query_async(&mut conn)).await?;
        let mut out: Vec<KeyStats> = ids
            .iter()
            .zip(maps.chunks(2))
            .filter_map(|(hex, m)| {
                let [k, s] = m else { return None };
                if k.is_empty() {
                    return None;
                }
                let revoked = k.get("revoked").is_some_and(|r| r != "0");
                Some(KeyStats::new(
                    key_info(hex, k),
                    key_use(s),
                    KeySource::Store,
                    revoked,
                ))
            })
            .collect();
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    pub(super) async fn key_use(&self, ids: &[String]) -> Result<Vec<KeyUse>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = pipe();
        for id in ids {
            p.cmd("HGETALL").arg(self.k(&format!("ks:{id}")));
        }
        let mut conn = self.conn();
        let maps: Vec<Fields> = timed("key_use", self.admin(), p.query_async(&mut conn)).await?;
        Ok(maps.iter().map(key_use).collect())
    }

    /// Set fields of an existing key record (an empty value removes the field); false when
    /// the key does not exist.
    pub(super) async fn update_key(
        &self,
        hex: &str,
        fields: &[(&str, String)],
    ) -> Result<bool, StoreError> {
        let mut inv = self.inner.update_key.key(self.k(&format!("key:{hex}")));
        for (f, v) in fields {
            inv.arg(*f).arg(v);
        }
        let mut conn = self.conn();
        let n: i64 = timed("update_key", self.admin(), inv.invoke_async(&mut conn)).await?;
        Ok(n == 1)
    }

    pub(super) async fn set_routing(
        &self,
        hex: &str,
        yaml: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.update_key(hex, &[("routing_yaml", yaml.unwrap_or("").to_string())])
            .await
    }

    pub(super) async fn set_limits(&self, hex: &str, l: &Limits) -> Result<bool, StoreError> {
        self.update_key(hex, &limit_fields(l)).await
    }

    pub(super) async fn revoke(&self, hex: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let inv = self.inner.revoke.key(self.k(&format!("key:{hex}")));
        let n: i64 = timed("revoke", self.admin(), inv.invoke_async(&mut conn)).await?;
        Ok(n == 1)
    }

    pub(super) async fn create_user(&self, user: &User, hash: &str) -> Result<bool, StoreError> {
        let mut inv = self
            .inner
            .create_record
            .key(self.k(&format!("user:{}", user.email)));
        inv.key(self.k("users"))
            .arg(&user.email)
            .arg("hash")
            .arg(hash)
            .arg("created_ms")
            .arg(user.created_ms);
        let mut conn = self.conn();
        let created: i64 = timed("create_user", self.admin(), inv.invoke_async(&mut conn)).await?;
        Ok(created == 1)
    }

    pub(super) async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let mut conn = self.conn();
        let emails: Vec<String> = timed(
            "list_users",
            self.admin(),
            cmd("SMEMBERS").arg(self.k("users")).query_async(&mut conn),
        )
        .await?;
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = pipe();
        for email in &emails {
            p.cmd("HGET")
                .arg(self.k(&format!("user:{email}")))
                .arg("created_ms");
        }
        let created: Vec<Option<u64>> =
            timed("list_users", self.admin(), p.query_async(&mut conn)).await?;
        Ok(emails
            .into_iter()
            .zip(created)
            .filter_map(|(email, c)| {
                Some(User {
                    email,
                    created_ms: c?,
                })
            })
            .collect())
    }

    pub(super) async fn delete_user(&self, email: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let (deleted, _): (i64, i64) = timed(
            "delete_user",
            self.admin(),
            pipe()
                .atomic()
                .cmd("DEL")
                .arg(self.k(&format!("user:{email}")))
                .cmd("SREM")
                .arg(self.k("users"))
                .arg(email)
                .query_async(&mut conn),
        )
        .await?;
        Ok(deleted == 1)
    }

    pub(super) async fn user_credential(
        &self,
        email: &str,
    ) -> Result<Option<UserCredential>, StoreError> {
        let mut conn = self.conn();
        let (hash, created): (Option<String>, Option<u64>) = timed(
            "user_credential",
            self.admin(),
            cmd("HMGET")
                .arg(self.k(&format!("user:{email}")))
                .arg("hash")
                .arg("created_ms")
                .query_async(&mut conn),
        )
        .await?;
        Ok(hash.zip(created).map(|(hash, created_ms)| UserCredential {
            user: User {
                email: email.to_string(),
                created_ms,
            },
            hash,
        }))
    }

    pub(super) async fn reserve(
        &self,
        res: &Reservation,
        limits: &Limits,
        p: &Period,
    ) -> Result<Option<RawDenial>, StoreError> {
        let (est, now, key) = (&res.estimate, res.at_ms, &res.key_id);
        let mut inv = self.inner.reserve.key(self.k(&format!("w:{key}")));
        inv.key(self.k(&format!("sd:{key}:{}", p.day)))
            .key(self.k(&format!("sm:{key}:{}", p.month)))
            .arg(now)
            .arg(est.input)
            .arg(est.output)
            .arg(nanos(est.cost_usd).max(0))
            .arg(limits.total_tokens_per_hour)
            .arg(limits.input_tokens_per_hour)
            .arg(limits.output_tokens_per_hour)
            .arg(nanos(limits.daily_usd))
            .arg(nanos(limits.monthly_usd))
            .arg(p.day_end_ms)
            .arg(p.month_end_ms)
            .arg(WINDOW_MS + 2 * BUCKET_MS)
            .arg(p.day_end_ms.saturating_sub(now) + HOUR_MS)
            .arg(p.month_end_ms.saturating_sub(now) + HOUR_MS);
        let mut conn = self.conn();
        let r: Vec<i64> = timed("reserve", self.hot(), inv.invoke_async(&mut conn)).await?;
        match r.as_slice() {
            [1] => Ok(None),
            &[0, kind, retry, used, limit, never] => Ok(Some(RawDenial {
                kind: LimitKind::from_code(kind)
                    .ok_or_else(|| StoreError::Invalid(format!("limit code {kind}")))?,
                retry_ms: retry.max(0) as u64,
                used: used.max(0) as u64,
                limit: limit.max(0) as u64,
                never: never == 1,
            })),
            other => Err(StoreError::Invalid(format!(
                "reserve script returned {other:?}"
            ))),
        }
    }

    pub(super) async fn true_up(
        &self,
        res: &Reservation,
        a: &Actual,
        p: &Period,
        now: u64,
    ) -> Result<bool, StoreError> {
        let (est, key) = (&res.estimate, &res.key_id);
        let hour = now / HOUR_MS;
        let cost = nanos(a.cost_usd).max(0);
        let mut inv = self.inner.true_up.key(self.k(&format!("done:{}", res.id)));
        inv.key(self.k(&format!("w:{key}")))
            .key(self.k(&format!("sd:{key}:{}", p.day)))
            .key(self.k(&format!("sm:{key}:{}", p.month)))
            .key(self.k(&format!("ks:{key}")))
            .key(self.k(&format!("u:key:{hour}")))
            .key(self.k(&format!("u:model:{hour}")))
            .key(self.k(&format!("u:provider:{hour}")))
            .arg(DONE_TTL_MS)
            .arg(res.at_ms / BUCKET_MS)
            .arg(a.input as i64 - est.input as i64)
            .arg(a.output as i64 - est.output as i64)
            .arg(cost - nanos(est.cost_usd).max(0))
            .arg(a.input)
            .arg(a.output)
            .arg(cost)
            .arg(u8::from(a.error))
            .arg(now)
            .arg(self.inner.opts.usage_retention.as_millis() as u64)
            .arg(key)
            .arg(&a.model)
            .arg(&a.provider);
        let mut conn = self.conn();
        let n: i64 = timed("true_up", self.hot(), inv.invoke_async(&mut conn)).await?;
        Ok(n == 1)
    }

    pub(super) async fn window_usage(
        &self,
        key_id: &str,
        now: u64,
    ) -> Result<WindowUsage, StoreError> {
        let mut conn = self.conn();
        let h: Fields = timed(
            "window_usage",
            self.hot(),
            cmd("HGETALL")
                .arg(self.k(&format!("w:{key_id}")))
                .query_async(&mut conn),
        )
        .await?;
        let oldest = (now / BUCKET_MS).saturating_sub(WINDOW_BUCKETS);
        let mut u = WindowUsage::default();
        for (f, v) in &h {
            let Some((minute, kind)) = f.split_once(':') else {
                continue;
            };
            if minute.parse::<u64>().is_ok_and(|m| m >= oldest) {
                let v: u64 = v.parse().unwrap_or(0);
                match kind {
                    "i" => u.input += v,
                    _ => u.output += v,
                }
            }
        }
        Ok(u)
    }

    pub(super) async fn usage_hours(
        &self,
        by: UsageBy,
        hours: RangeInclusive<u64>,
    ) -> Result<Vec<(u64, HashMap<String, UsageCounters>)>, StoreError> {
        let mut p = pipe();
        for h in hours.clone() {
            p.cmd("HGETALL")
                .arg(self.k(&format!("u:{}:{h}", by.as_str())));
        }
        let mut conn = self.conn();
        // Raw replies, read in place: a month by key is ~70k fields, and converting each hour
        // to a map of owned strings first cost more than Redis took to send them.
        let hashes: Vec<::redis::Value> =
            timed("usage", self.admin(), p.query_async(&mut conn)).await?;
        Ok(hours
            .zip(&hashes)
            .map(|(h, v)| (h, usage_counters(hash_pairs(v))))
            .filter(|(_, c)| !c.is_empty())
            .collect())
    }

    pub(super) async fn append_logs(&self, batch: &[Vec<u8>]) -> Result<(), StoreError> {
        let key = self.k("logs");
        let o = &self.inner.opts;
        let mut p = pipe();
        for json in batch {
            p.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(o.log_max_len.max(1))
                .arg("*")
                .arg("r")
                .arg(json.as_slice())
                .ignore();
        }
        // XADD takes one trim strategy; the age cap is a second, approximate trim.
        let min_id = now_ms().saturating_sub(o.log_max_age.as_millis() as u64);
        p.cmd("XTRIM")
            .arg(&key)
            .arg("MINID")
            .arg("~")
            .arg(min_id)
            .ignore();
        let mut conn = self.conn();
        timed("append_log", self.admin(), p.query_async::<()>(&mut conn)).await
    }

    pub(super) async fn read_logs(&self, mut scan: LogScan) -> Result<LogPage, StoreError> {
        let key = self.k("logs");
        let start = scan
            .filter
            .since_ms
            .map_or("-".to_string(), |s| s.to_string());
        let count = |scan: &LogScan| scan.wants().min(PAGE);
        let mut conn = self.conn();
        // The cursor (newest entry) and the first page in one transaction, so nothing appended
        // between them is missed by both this read and a follow from the cursor.
        let (newest, mut page): (Entries, Entries) = timed(
            "read_logs",
            self.admin(),
            pipe()
                .atomic()
                .cmd("XREVRANGE")
                .arg(&key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .cmd("XREVRANGE")
                .arg(&key)
                .arg("+")
                .arg(&start)
                .arg("COUNT")
                .arg(count(&scan).max(1))
                .query_async(&mut conn),
        )
        .await?;
        let cursor = newest
            .first()
            .map_or(LOG_START.to_string(), |(id, _)| id.clone());
        // Newest first, page by page, until enough match, the budget is spent or the range
        // is exhausted. `exhausted` must be exact, as in the memory store: a full last page is
        // followed by one more read (a peek, when the budget is spent).
        let mut asked = count(&scan).max(1);
        loop {
            let mut examined = 0;
            for (_, fields) in &page {
                if scan.wants() == 0 {
                    break;
                }
                scan.push(raw_record(fields));
                examined += 1;
            }
            if examined < page.len() {
                return Ok(scan.finish(cursor, false));
            }
            let Some((last, _)) = page.last().filter(|_| page.len() == asked) else {
                return Ok(scan.finish(cursor, true));
            };
            if scan.wants() == 0 && !scan.budget_spent() {
                return Ok(scan.finish(cursor, false));
            }
            asked = count(&scan).max(1);
            let end = format!("({last}");
            page = timed(
                "read_logs",
                self.admin(),
                cmd("XREVRANGE")
                    .arg(&key)
                    .arg(&end)
                    .arg(&start)
                    .arg("COUNT")
                    .arg(asked)
                    .query_async(&mut conn),
            )
            .await?;
        }
    }

    pub(super) async fn follow_logs(
        &self,
        f: &LogFilter,
        cursor: &str,
        block: Duration,
    ) -> Result<LogPage, StoreError> {
        let idle = self.inner.follow.lock().ok().and_then(|mut c| c.take());
        let mut conn = match idle {
            Some(c) => c,
            None => {
                let cfg = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.inner.opts.connect_timeout))
                    .set_response_timeout(None);
                timed(
                    "follow_logs",
                    self.inner.opts.connect_timeout,
                    self.inner
                        .client
                        .get_multiplexed_async_connection_with_config(&cfg),
                )
                .await?
            }
        };
        let mut c = cmd("XREAD");
        c.arg("COUNT").arg(FOLLOW_COUNT);
        // BLOCK 0 would wait forever; no wait asked means no BLOCK at all.
        if !block.is_zero() {
            c.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        c.arg("STREAMS").arg(self.k("logs")).arg(cursor);
        type Reply = Option<Vec<(String, Entries)>>;
        // On error or timeout the connection is dropped, not returned: a late reply would
        // otherwise be waiting on it.
        let reply: Reply = timed(
            "follow_logs",
            block + self.admin(),
            c.query_async(&mut conn),
        )
        .await?;
        if let Ok(mut slot) = self.inner.follow.lock() {
            slot.get_or_insert(conn);
        }
        let entries: Entries = reply.into_iter().flatten().flat_map(|(_, e)| e).collect();
        let next = entries
            .last()
            .map_or(cursor.to_string(), |(id, _)| id.clone());
        let records = entries
            .iter()
            .filter_map(|(_, fields)| record(fields))
            .filter(|v| f.matches(v))
            .collect();
        Ok(LogPage {
            scanned: entries.len(),
            records,
            cursor: next,
            complete: true,
        })
    }
}
