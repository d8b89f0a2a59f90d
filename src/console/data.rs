//! What the pages show, as JSON values (one source for the HTML and the JSON API), and the
//! `/console/api/*` handlers.

use super::{Ctx, json_error, json_response};
use crate::auth::Principal;
use crate::config::Snapshot;
use crate::extproc::Shared;
use crate::store::{
    KeyInfo, KeySource, KeyStats, Limits, LogFilter, NewKey, Store, StoreError, UsageBucket,
    UsageBy, UsageRow,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The periods the Dashboard and Usage pages offer.
pub(crate) const PERIODS: [(&str, &str, u64); 3] = [
    ("24h", "Last 24 hours", 24),
    ("7d", "Last 7 days", 24 * 7),
    ("30d", "Last 30 days", 24 * 30),
];

/// `(id, hours)` of `?period=`, 24 h by default.
pub(crate) fn period(ctx: &Ctx<'_>) -> (&'static str, u64) {
    let want = ctx.query.get("period").map(String::as_str).unwrap_or("");
    PERIODS
        .iter()
        .find(|(id, _, _)| *id == want)
        .map_or(("24h", 24), |(id, _, h)| (id, *h))
}

pub(crate) fn now_ms() -> u64 {
    crate::extproc::state::now_ms()
}

fn store_failed(e: StoreError) -> Response<Full<Bytes>> {
    json_error(503, "api_error", &e.to_string())
}

fn user_failed(e: &crate::users::UserError) -> Response<Full<Bytes>> {
    let (status, kind) = e.status();
    json_error(status, kind, &e.to_string())
}

// === keys ===

/// Every key: the store's (newest first, revoked last), then the config file's (by name), each
/// with its use so far.
pub(crate) async fn keys(shared: &Shared) -> Result<Vec<KeyStats>, StoreError> {
    let mut keys = shared.store.list_keys().await?;
    keys.sort_by(|a, b| {
        a.revoked
            .cmp(&b.revoked)
            .then(b.created_ms.cmp(&a.created_ms))
    });
    let snap = shared.live.load();
    let mut configured: Vec<&Principal> = snap.keys.values().map(|p| &**p).collect();
    configured.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    let ids: Vec<String> = configured.iter().map(|p| p.id.clone()).collect();
    let used = shared.store.key_use(&ids).await?;
    keys.extend(configured.iter().zip(used).map(|(p, used)| {
        let info = KeyInfo {
            id: p.id.clone(),
            name: p.name.clone(),
            created_ms: 0,
            limits: p.limits,
            allowed_models: p.allowed_models.clone(),
            routing_yaml: None,
        };
        KeyStats::new(info, used, KeySource::Config, false)
    }));
    Ok(keys)
}

/// A validated create request: `name` and optional per-key limits.
pub(crate) struct CreateKey {
    pub name: String,
    pub limits: Limits,
}

/// Validation shared by the form and the JSON API; the error names the field.
pub(crate) fn validate_create(
    name: Option<&str>,
    limit: &dyn Fn(&str) -> Option<String>,
) -> Result<CreateKey, String> {
    let name = name.map(str::trim).unwrap_or("");
    if name.is_empty() {
        return Err("name: required".into());
    }
    if name.chars().count() > 100 {
        return Err("name: at most 100 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("name: no control characters".into());
    }
    Ok(CreateKey {
        name: name.to_string(),
        limits: parse_limits(limit)?,
    })
}

/// The three per-hour token limits: (field, label), in the order the pages show them.
pub(crate) const TOKEN_LIMITS: [(&str, &str); 3] = [
    ("total_tokens_per_hour", "Total tokens"),
    ("input_tokens_per_hour", "Input tokens"),
    ("output_tokens_per_hour", "Output tokens"),
];

/// Limits from named fields (`total_tokens_per_hour`, …, `monthly_usd`); absent or empty = 0 =
/// off. The error names the field.
pub(crate) fn parse_limits(limit: &dyn Fn(&str) -> Option<String>) -> Result<Limits, String> {
    let tokens = |f: &str| -> Result<u64, String> {
        match limit(f).as_deref().map(str::trim) {
            None | Some("") => Ok(0),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| format!("{f}: a whole number of tokens ≥ 0 (0 or empty = off)")),
        }
    };
    let usd = |f: &str| -> Result<f64, String> {
        match limit(f).as_deref().map(str::trim) {
            None | Some("") => Ok(0.0),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("{f}: an amount in USD ≥ 0 (0 or empty = off)")),
        }
    };
    Ok(Limits {
        total_tokens_per_hour: tokens("total_tokens_per_hour")?,
        input_tokens_per_hour: tokens("input_tokens_per_hour")?,
        output_tokens_per_hour: tokens("output_tokens_per_hour")?,
        daily_usd: usd("daily_usd")?,
        monthly_usd: usd("monthly_usd")?,
    })
}

/// The key page's Rate Limit form: the section toggle (`enabled`) and each token limit's own
/// toggle (`<field>_on`) decide which values count, so switching a limit off keeps nothing
/// enforced behind the user's back. The spend budgets sit outside the toggle.
pub(crate) fn limits_from_form(form: &HashMap<String, String>) -> Result<Limits, String> {
    let on = |f: &str| form.get(f).is_some_and(|v| v == "on");
    let section = on("enabled");
    parse_limits(&|f: &str| {
        let is_token_limit = TOKEN_LIMITS.iter().any(|(t, _)| *t == f);
        if is_token_limit && !(section && on(&format!("{f}_on"))) {
            return None;
        }
        form.get(f).cloned()
    })
}

/// A JSON object's field as text for `parse_limits` (numbers and strings alike).
fn json_field(obj: &Value, f: &str) -> Option<String> {
    match obj.get(f)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        v => Some(v.to_string()),
    }
}

/// Creates the key; the returned string is the key itself, to be shown once.
pub(crate) async fn create_key(
    store: &Store,
    c: CreateKey,
) -> Result<(crate::store::KeyInfo, String), StoreError> {
    store
        .create_key(NewKey {
            name: c.name,
            limits: c.limits,
            allowed_models: None,
            routing_yaml: None,
        })
        .await
}

// === models ===

pub(crate) fn provider_kind(snap: &Snapshot, i: usize) -> String {
    snap.providers
        .get(i)
        .map(|p| format!("{:?}", p.kind).to_lowercase())
        .unwrap_or_default()
}

/// The model a dated snapshot belongs to: `gpt-4o-2024-08-06` and `claude-sonnet-4-20250514`
/// are snapshots of `gpt-4o` and `claude-sonnet-4`. The Catalog groups them under it.
pub(crate) fn snapshot_of(name: &str) -> Option<&str> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let is_date = |d: &str| match d.len() {
        8 => digits(d),
        10 => {
            let b = d.as_bytes();
            b[4] == b'-' && b[7] == b'-' && digits(&d[..4]) && digits(&d[5..7]) && digits(&d[8..])
        }
        _ => false,
    };
    [8, 10].into_iter().find_map(|n| {
        let cut = name.len().checked_sub(n + 1)?;
        let (parent, date) = (name.get(..cut)?, name.get(cut + 1..)?);
        (name.as_bytes()[cut] == b'-'
            && is_date(date)
            && (date.starts_with("19") || date.starts_with("20"))
            && !parent.is_empty())
        .then_some(parent)
    })
}

/// The catalog grouped by `snapshot_of`: each model's group name, and whether it heads the
/// group (the parent model itself when listed, else the group's first snapshot).
pub(crate) fn snapshot_groups(models: &[Value]) -> Vec<(String, bool)> {
    let name = |m: &Value| {
        m.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let names: Vec<String> = models.iter().map(name).collect();
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .map(|n| {
            let group = snapshot_of(n).unwrap_or(n).to_string();
            let parent_listed = names.contains(&group);
            let head = if parent_listed {
                *n == group
            } else {
                seen.insert(group.clone())
            };
            (group, head)
        })
        .collect()
}

pub(crate) fn model_json(snap: &Snapshot, name: &str) -> Option<Value> {
    let m = snap.models.get(name)?;
    Some(json!({
        "name": m.name,
        "snapshot_of": snapshot_of(&m.name),
        "provider": snap.providers.get(m.provider).map(|p| p.id.as_str()).unwrap_or(""),
        "provider_kind": provider_kind(snap, m.provider),
        "provider_model": m.provider_model,
        "context_window": m.context_window,
        "max_output_tokens": m.max_output_tokens,
        "pricing": {
            "input_per_mtok": m.pricing.input_per_mtok,
            "output_per_mtok": m.pricing.output_per_mtok,
            "per_image": m.pricing.per_image,
        },
        "capabilities": m.capabilities,
        "status": if m.enabled { "enabled" } else { "disabled" },
    }))
}

/// The catalog in config order, filtered by `q` (substring of the name, case-insensitive),
/// `provider` (comma-separated ids) and `status` (enabled | disabled).
pub(crate) fn models(snap: &Snapshot, q: &str, providers: &[String], status: &str) -> Vec<Value> {
    let q = q.trim().to_lowercase();
    snap.model_order
        .iter()
        .filter_map(|n| model_json(snap, n))
        .filter(|m| {
            let s = |f: &str| m.get(f).and_then(Value::as_str).unwrap_or("");
            (q.is_empty() || s("name").to_lowercase().contains(&q))
                && (providers.is_empty() || providers.iter().any(|p| p == s("provider")))
                && (status.is_empty() || status == s("status"))
        })
        .collect()
}

pub(crate) fn provider_list(ctx: &Ctx<'_>) -> Vec<String> {
    ctx.query
        .get("provider")
        .map(|p| {
            p.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

// === logs ===

/// Filters from the query: `key`, `model`, `status`, `since` (1h | 24h | 7d | 30d), `limit`.
pub(crate) fn log_filter(ctx: &Ctx<'_>) -> (LogFilter, usize) {
    let text = |k: &str| {
        ctx.query
            .get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let since_hours = match text("since").as_deref() {
        Some("1h") => Some(1),
        Some("24h") => Some(24),
        Some("7d") => Some(24 * 7),
        Some("30d") => Some(24 * 30),
        _ => None,
    };
    let filter = LogFilter {
        key: text("key"),
        model: text("model"),
        provider: text("provider"),
        status: text("status").and_then(|s| s.parse().ok()),
        since_ms: since_hours.map(|h: u64| now_ms().saturating_sub(h * 3_600_000)),
        id: None,
    };
    let limit = text("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100usize)
        .clamp(1, 1000);
    (filter, limit)
}

/// How many of the newest records one Console log search examines at most. Filtering is
/// a scan (cheap byte pre-filter, then JSON), so a filter that matches little would otherwise
/// read the whole log (100k records: about a second); past this the page says how far it
/// looked, and a time range narrows the search.
pub(crate) const LOG_SCAN_BUDGET: usize = 20_000;

/// A Console log search: records newest first, how many were examined, and whether older
/// records were left unsearched (the budget ran out first).
pub(crate) struct LogResults {
    pub records: Vec<Value>,
    pub scanned: usize,
    pub complete: bool,
}

/// The store's request log when Redis is configured (every replica's requests), else this
/// processor's in-memory ring of recent records; both searched the same way.
pub(crate) async fn logs(
    ctx: &Ctx<'_>,
    filter: &LogFilter,
    limit: usize,
) -> Result<LogResults, StoreError> {
    let page = match &ctx.shared.store {
        Store::Redis(_) => {
            ctx.shared
                .store
                .search_logs(filter, limit, LOG_SCAN_BUDGET)
                .await?
        }
        // One record past the budget tells whether the budget cut the search short.
        _ => {
            let ring = ctx.shared.sink.recent(LOG_SCAN_BUDGET + 1);
            let newest_first = ring.iter().rev().filter_map(|r| serde_json::to_vec(r).ok());
            crate::store::search_raw_logs(filter, limit, LOG_SCAN_BUDGET, newest_first)
        }
    };
    let mut records = page.records;
    // Shown by request start time; the log is in completion order.
    records.sort_by(|a, b| {
        let ts = |r: &Value| {
            r.get("ts")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        ts(b).cmp(&ts(a))
    });
    Ok(LogResults {
        records,
        scanned: page.scanned,
        complete: page.complete,
    })
}

/// One request's record, searched like any filter (within the scan budget).
pub(crate) async fn log_by_id(ctx: &Ctx<'_>, id: &str) -> Result<Option<Value>, StoreError> {
    let filter = LogFilter {
        id: Some(id.to_string()),
        ..LogFilter::default()
    };
    Ok(logs(ctx, &filter, 1).await?.records.pop())
}

// === usage ===

pub(crate) async fn usage(
    store: &Store,
    by: UsageBy,
    hours: u64,
) -> Result<Vec<UsageRow>, StoreError> {
    let now = now_ms();
    store
        .usage(by, now.saturating_sub(hours * 3_600_000), now)
        .await
}

/// A period's chart buckets: hours for a day, quarter days for a week, days beyond.
pub(crate) fn step_hours(period_hours: u64) -> u64 {
    match period_hours {
        0..=24 => 1,
        25..=168 => 6,
        _ => 24,
    }
}

/// Usage over the period in `step_hours(hours)` buckets, oldest first.
pub(crate) async fn usage_series(
    store: &Store,
    by: UsageBy,
    hours: u64,
) -> Result<Vec<UsageBucket>, StoreError> {
    let now = now_ms();
    let step = step_hours(hours);
    // `hours` buckets' worth back from the current one, so the chart has exactly
    // hours / step columns.
    let since = now.saturating_sub(hours.saturating_sub(step) * 3_600_000);
    store.usage_series(by, since, now, step).await
}

fn usage_by(s: &str) -> Option<UsageBy> {
    match s {
        "key" => Some(UsageBy::Key),
        "model" => Some(UsageBy::Model),
        "provider" => Some(UsageBy::Provider),
        _ => None,
    }
}

// === the JSON API ===

pub(crate) async fn api_get(ctx: &Ctx<'_>, path: &str) -> Response<Full<Bytes>> {
    let store = &ctx.shared.store;
    let rest = &path["/console/api/".len()..];
    match rest {
        "session" => json_response(200, &json!({ "csrf": ctx.csrf, "user": ctx.who.label() })),
        "users" => match store.list_users().await {
            Ok(users) => json_response(
                200,
                &json!({ "users": users.iter().map(crate::users::to_json).collect::<Vec<_>>() }),
            ),
            Err(e) => store_failed(e),
        },
        "overview" => {
            let (pid, hours) = period(ctx);
            let (keys, rows) = match (
                keys(ctx.shared).await,
                usage(store, UsageBy::Key, hours).await,
            ) {
                (Ok(k), Ok(r)) => (k, r),
                (Err(e), _) | (_, Err(e)) => return store_failed(e),
            };
            let requests: u64 = rows.iter().map(|r| r.requests).sum();
            let spend: f64 = rows.iter().map(|r| r.cost_usd).sum();
            json_response(
                200,
                &json!({
                    "proxy_endpoint": super::proxy_endpoint(ctx.shared),
                    "period": pid,
                    "total_requests": requests,
                    "total_spend_usd": spend,
                    "keys": keys.iter().map(|k| {
                        let u = rows.iter().find(|r| r.name == k.id);
                        json!({ "id": k.id, "name": k.name, "revoked": k.revoked,
                                "requests": u.map_or(0, |u| u.requests),
                                "spend_usd": u.map_or(0.0, |u| u.cost_usd) })
                    }).collect::<Vec<_>>(),
                }),
            )
        }
        "keys" => match keys(ctx.shared).await {
            Ok(k) => json_response(200, &json!({ "keys": k })),
            Err(e) => store_failed(e),
        },
        "models" => {
            let snap = ctx.shared.live.load();
            let q = ctx.query.get("q").map(String::as_str).unwrap_or("");
            let status = ctx.query.get("status").map(String::as_str).unwrap_or("");
            if !["", "enabled", "disabled"].contains(&status) {
                return json_error(
                    400,
                    "invalid_request_error",
                    "status: use enabled or disabled",
                );
            }
            let mut list = models(&snap, q, &provider_list(ctx), status);
            // `group=true`: one row per model, its dated snapshots listed under it.
            if ctx.query.get("group").is_some_and(|g| g == "true") {
                let groups = snapshot_groups(&list);
                let mut heads: Vec<(String, Value)> = Vec::new();
                let mut members: HashMap<String, Vec<Value>> = HashMap::new();
                for (m, (group, head)) in list.into_iter().zip(groups) {
                    if head {
                        heads.push((group, m));
                    } else {
                        members.entry(group).or_default().push(m["name"].clone());
                    }
                }
                list = heads
                    .into_iter()
                    .map(|(group, mut m)| {
                        m["snapshots"] = Value::Array(members.remove(&group).unwrap_or_default());
                        m
                    })
                    .collect();
            }
            json_response(200, &json!({ "models": list }))
        }
        "logs" => {
            if let Some(s) = ctx.query.get("status").filter(|s| !s.is_empty())
                && s.parse::<u16>().is_err()
            {
                return json_error(400, "invalid_request_error", "status: an HTTP status code");
            }
            let (filter, limit) = log_filter(ctx);
            match logs(ctx, &filter, limit).await {
                Ok(r) => json_response(
                    200,
                    &json!({ "records": r.records, "scanned": r.scanned, "complete": r.complete }),
                ),
                Err(e) => store_failed(e),
            }
        }
        "usage" | "usage/series" => {
            let (pid, hours) = period(ctx);
            let by_s = ctx.query.get("by").map(String::as_str).unwrap_or("key");
            let Some(by) = usage_by(by_s) else {
                return json_error(
                    400,
                    "invalid_request_error",
                    "by: use key, model or provider",
                );
            };
            if rest == "usage/series" {
                return match usage_series(store, by, hours).await {
                    Ok(buckets) => json_response(
                        200,
                        &json!({ "period": pid, "by": by_s, "step_hours": step_hours(hours),
                                 "buckets": buckets }),
                    ),
                    Err(e) => store_failed(e),
                };
            }
            match usage(store, by, hours).await {
                Ok(rows) => {
                    json_response(200, &json!({ "period": pid, "by": by_s, "usage": rows }))
                }
                Err(e) => store_failed(e),
            }
        }
        _ if rest.starts_with("models/") => {
            let name = super::url_decode(&rest["models/".len()..]);
            match model_json(&ctx.shared.live.load(), &name) {
                Some(m) => json_response(200, &m),
                None => json_error(404, "not_found_error", &format!("no model named {name}")),
            }
        }
        _ if rest.starts_with("logs/") => {
            let id = super::url_decode(&rest["logs/".len()..]);
            match log_by_id(ctx, &id).await {
                Ok(Some(r)) => json_response(200, &r),
                Ok(None) => json_error(404, "not_found_error", "no such request in the log"),
                Err(e) => store_failed(e),
            }
        }
        _ => json_error(404, "not_found_error", "not found"),
    }
}

pub(crate) async fn api_mutate(
    ctx: &Ctx<'_>,
    method: &Method,
    path: &str,
    body: Value,
) -> Response<Full<Bytes>> {
    let store = &ctx.shared.store;
    let rest = &path["/console/api/".len()..];
    match (method, rest) {
        (&Method::POST, "keys") => {
            let rl = body.get("rate_limit").cloned().unwrap_or(Value::Null);
            if !(rl.is_null() || rl.is_object()) {
                return json_error(400, "invalid_request_error", "rate_limit: an object");
            }
            let field = |f: &str| json_field(&rl, f);
            let name = match body.get("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => {
                    return json_error(400, "invalid_request_error", "name: a string");
                }
            };
            let c = match validate_create(name, &field) {
                Ok(c) => c,
                Err(e) => return json_error(400, "invalid_request_error", &e),
            };
            match create_key(store, c).await {
                Ok((info, key)) => json_response(
                    201,
                    &json!({ "id": info.id, "name": info.name, "key": key, "limits": info.limits,
                             "proxy_endpoint": super::proxy_endpoint(ctx.shared),
                             "note": "the key is shown only once; only its hash is stored" }),
                ),
                Err(e) => store_failed(e),
            }
        }
        (&Method::PUT, r) if r.starts_with("keys/") && r.ends_with("/limits") => {
            let id = super::url_decode(&r["keys/".len()..r.len() - "/limits".len()]);
            if !body.is_object() {
                return json_error(
                    400,
                    "invalid_request_error",
                    "body: a JSON object of limits",
                );
            }
            let limits = match parse_limits(&|f: &str| json_field(&body, f)) {
                Ok(l) => l,
                Err(e) => return json_error(400, "invalid_request_error", &e),
            };
            match store.set_limits(&id, &limits).await {
                Ok(true) => json_response(200, &json!({ "id": id, "limits": limits })),
                Ok(false) => json_error(404, "not_found_error", &format!("no key with id {id}")),
                Err(e) => store_failed(e),
            }
        }
        (&Method::PUT, r) if r.starts_with("keys/") && r.ends_with("/routing") => {
            let id = super::url_decode(&r["keys/".len()..r.len() - "/routing".len()]);
            let key = match keys(ctx.shared).await {
                Ok(keys) => keys
                    .into_iter()
                    .find(|k| k.id == id && !k.revoked && k.source == KeySource::Store),
                Err(e) => return store_failed(e),
            };
            let Some(key) = key else {
                return json_error(404, "not_found_error", &format!("no key with id {id}"));
            };
            let yaml = match crate::admin::routing_from(ctx.shared, &key.name, body.get("routing"))
            {
                Ok(y) => y,
                Err(refused) => return *refused,
            };
            match store.set_routing(&key.id, yaml.as_deref()).await {
                Ok(_) => json_response(200, &json!({ "id": key.id, "routing": yaml })),
                Err(e) => store_failed(e),
            }
        }
        (&Method::DELETE, r) if r.starts_with("keys/") => {
            let id = super::url_decode(&r["keys/".len()..]);
            match store.revoke(&id).await {
                Ok(true) => json_response(200, &json!({ "id": id, "revoked": true })),
                Ok(false) => json_error(404, "not_found_error", &format!("no key with id {id}")),
                Err(e) => store_failed(e),
            }
        }
        (&Method::POST, "users") => match crate::users::create_from_json(store, &body).await {
            Ok(u) => json_response(201, &crate::users::to_json(&u)),
            Err(e) => user_failed(&e),
        },
        (&Method::DELETE, r) if r.starts_with("users/") => {
            let email = super::path_decode(&r["users/".len()..]);
            match crate::users::delete(store, &email).await {
                Ok(email) => json_response(200, &json!({ "email": email, "deleted": true })),
                Err(e) => user_failed(&e),
            }
        }
        (&Method::POST, "playground") => {
            let s = |f: &str| body.get(f).and_then(Value::as_str).unwrap_or("").trim();
            let (key, model, message) = (s("key"), s("model"), s("message"));
            if key.is_empty() || model.is_empty() || message.is_empty() {
                return json_error(
                    400,
                    "invalid_request_error",
                    "key, model and message are required",
                );
            }
            let out =
                super::playground::send(&super::proxy_endpoint(ctx.shared), key, model, message)
                    .await;
            match out {
                Ok(r) => json_response(200, &r.to_json()),
                Err(e) => json_error(502, "api_error", &e),
            }
        }
        _ => json_error(
            405,
            "invalid_request_error",
            &format!("{method} is not supported on {path}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_snapshots_group_under_their_model() {
        assert_eq!(snapshot_of("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(
            snapshot_of("claude-sonnet-4-20250514"),
            Some("claude-sonnet-4")
        );
        for plain in [
            "gpt-4o",
            "llama3.1:8b",
            "x-12345678",
            "-20250514",
            "m-2024-8-06",
            "é-20250514x",
        ] {
            assert_eq!(snapshot_of(plain), None, "{plain}");
        }
        let list: Vec<Value> = [
            "a-20240101",
            "gpt-4o",
            "gpt-4o-2024-08-06",
            "a-20250101",
            "solo",
        ]
        .iter()
        .map(|n| json!({ "name": n }))
        .collect();
        let groups = snapshot_groups(&list);
        let heads: Vec<(&str, bool)> = groups.iter().map(|(g, h)| (g.as_str(), *h)).collect();
        assert_eq!(
            heads,
            [
                ("a", true),
                ("gpt-4o", true),
                ("gpt-4o", false),
                ("a", false),
                ("solo", true)
            ]
        );
    }
}
