//! What the pages show, as JSON values (one source for the HTML and the JSON API), and the
//! `/console/api/*` handlers.

use super::{Ctx, json_error, json_response};
use crate::config::Snapshot;
use crate::store::{KeyStats, Limits, LogFilter, NewKey, Store, StoreError, UsageBy, UsageRow};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response};
use serde_json::{Value, json};

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

pub(crate) async fn keys(store: &Store) -> Result<Vec<KeyStats>, StoreError> {
    let mut keys = store.list_keys().await?;
    keys.sort_by(|a, b| {
        a.revoked
            .cmp(&b.revoked)
            .then(b.created_ms.cmp(&a.created_ms))
    });
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
    Ok(CreateKey {
        name: name.to_string(),
        limits: Limits {
            total_tokens_per_hour: tokens("total_tokens_per_hour")?,
            input_tokens_per_hour: tokens("input_tokens_per_hour")?,
            output_tokens_per_hour: tokens("output_tokens_per_hour")?,
            daily_usd: usd("daily_usd")?,
            monthly_usd: usd("monthly_usd")?,
        },
    })
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

pub(crate) fn model_json(snap: &Snapshot, name: &str) -> Option<Value> {
    let m = snap.models.get(name)?;
    Some(json!({
        "name": m.name,
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
    };
    let limit = text("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100usize)
        .clamp(1, 1000);
    (filter, limit)
}

fn ts_ms(r: &Value) -> Option<u64> {
    let ts = r.get("ts")?.as_str()?;
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn matches(f: &LogFilter, r: &Value) -> bool {
    let s = |k: &str| r.get(k).and_then(Value::as_str);
    f.key
        .as_deref()
        .is_none_or(|k| s("key_id") == Some(k) || s("key_name") == Some(k))
        && f.model
            .as_deref()
            .is_none_or(|m| s("requested_model") == Some(m) || s("resolved_model") == Some(m))
        && f.provider
            .as_deref()
            .is_none_or(|p| s("provider") == Some(p))
        && f.status
            .is_none_or(|st| r.get("status").and_then(Value::as_u64) == Some(u64::from(st)))
        && f.since_ms
            .is_none_or(|since| ts_ms(r).is_some_and(|t| t >= since))
}

/// Newest first: the store's request log when Redis is configured (every replica's requests),
/// else this processor's in-memory ring of recent records.
pub(crate) async fn logs(
    ctx: &Ctx<'_>,
    filter: &LogFilter,
    limit: usize,
) -> Result<Vec<Value>, StoreError> {
    let mut records: Vec<Value> = match &ctx.shared.store {
        Store::Redis(_) => ctx.shared.store.read_logs(filter, limit).await?.records,
        _ => ctx
            .shared
            .sink
            .recent(usize::MAX)
            .into_iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .filter(|r| matches(filter, r))
            .collect(),
    };
    records.sort_by(|a, b| {
        let ts = |r: &Value| {
            r.get("ts")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        ts(b).cmp(&ts(a))
    });
    records.truncate(limit);
    Ok(records)
}

pub(crate) async fn log_by_id(ctx: &Ctx<'_>, id: &str) -> Result<Option<Value>, StoreError> {
    let all = logs(ctx, &LogFilter::default(), 1000).await?;
    Ok(all
        .into_iter()
        .find(|r| r.get("id").and_then(Value::as_str) == Some(id)))
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
            let (keys, rows) = match (keys(store).await, usage(store, UsageBy::Key, hours).await) {
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
        "keys" => match keys(store).await {
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
            json_response(
                200,
                &json!({ "models": models(&snap, q, &provider_list(ctx), status) }),
            )
        }
        "logs" => {
            if let Some(s) = ctx.query.get("status").filter(|s| !s.is_empty())
                && s.parse::<u16>().is_err()
            {
                return json_error(400, "invalid_request_error", "status: an HTTP status code");
            }
            let (filter, limit) = log_filter(ctx);
            match logs(ctx, &filter, limit).await {
                Ok(r) => json_response(200, &json!({ "records": r })),
                Err(e) => store_failed(e),
            }
        }
        "usage" => {
            let (pid, hours) = period(ctx);
            let by_s = ctx.query.get("by").map(String::as_str).unwrap_or("key");
            let Some(by) = usage_by(by_s) else {
                return json_error(
                    400,
                    "invalid_request_error",
                    "by: use key, model or provider",
                );
            };
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
            let field = |f: &str| -> Option<String> {
                match rl.get(f)? {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    v => Some(v.to_string()),
                }
            };
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
