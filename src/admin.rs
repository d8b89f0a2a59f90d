//! Admin HTTP on the admin port: health, readiness, status, recent request records, and the
//! store's admin API (dynamic keys, usage, request logs) behind an admin token.
//!
//! Store endpoints (JSON; `Authorization: Bearer $SWITCHYARD_ADMIN_TOKEN`):
//! - `POST /admin/keys` `{name, rate_limit?: {total_tokens_per_hour, input_tokens_per_hour,
//!   output_tokens_per_hour, daily_usd, monthly_usd}, allowed_models?}` → the key, shown once;
//! - `GET /admin/keys` → name, created, last used, requests, tokens, spend (never the key);
//! - `DELETE /admin/keys/{id}` → revoked on the next request on every replica;
//! - `GET /admin/usage?by=key|model|provider&since_hours=24`;
//! - `GET /admin/logs?key=&model=&provider=&status=&since_ms=&limit=` and `&follow=CURSOR`;
//! - `POST /admin/users` `{email, password}` → 201 `{email, created}` (409 when the email is
//!   taken); `GET /admin/users`; `DELETE /admin/users/{email}` (ends that user's Console
//!   sessions). Console sign-in users; never their password hashes.

use crate::extproc::Shared;
use crate::store::{LogFilter, NewKey, UsageBy};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The environment variable holding the admin token (server and CLI).
pub const ADMIN_TOKEN_ENV: &str = "SWITCHYARD_ADMIN_TOKEN";

/// The admin token from the environment (`serve`), if set.
pub fn token_from_env() -> Option<String> {
    std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
}

pub async fn spawn(
    addr: &str,
    shared: Arc<Shared>,
    admin_token: Option<String>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let token: Arc<Option<String>> = Arc::new(admin_token);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (shared, token) = (shared.clone(), token.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let (shared, token) = (shared.clone(), token.clone());
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            handle(&shared, token.as_deref(), req).await,
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(())
}

fn json_response(status: u16, v: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap_or_default()
}

fn error(status: u16, kind: &str, message: impl Into<String>) -> Response<Full<Bytes>> {
    let message: String = message.into();
    json_response(
        status,
        json!({ "error": { "message": message, "type": kind, "code": null, "param": null } }),
    )
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Constant-time comparison of the presented admin token; `Some(answer)` refuses.
fn refusal(token: Option<&str>, req: &Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    let Some(expected) = token else {
        return Some(error(
            403,
            "permission_error",
            format!("the admin API is disabled: start the processor with {ADMIN_TOKEN_ENV} set"),
        ));
    };
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = presented.len() == expected.len()
        && presented
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    (!same).then(|| error(401, "authentication_error", "invalid admin token"))
}

async fn handle(
    shared: &Shared,
    token: Option<&str>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let query = query.as_deref();
    match (req.method(), path.as_str()) {
        (_, "/healthz" | "/readyz") => json_response(200, json!({ "status": "ok" })),
        (_, "/metrics") => Response::builder()
            .header("content-type", crate::telemetry::PROMETHEUS_CONTENT_TYPE)
            .body(Full::new(Bytes::from(
                shared.telemetry.metrics().render_prometheus(),
            )))
            .unwrap_or_default(),
        (_, "/admin/records") => {
            let limit = query_param(query, "limit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            json_response(
                200,
                json!({ "records": shared.sink.recent(limit), "dropped": shared.sink.dropped() }),
            )
        }
        (_, "/admin/status") => json_response(
            200,
            json!({
                "ext_proc_streams": shared.streams.load(std::sync::atomic::Ordering::Relaxed),
                "in_flight": shared.registry.len(),
                "records_dropped": shared.sink.dropped(),
                "cooling_backends": shared.health.cooling(std::time::Instant::now()),
                "store": if matches!(shared.store, crate::store::Store::Redis(_)) { "redis" } else { "memory" },
            }),
        ),
        (_, p)
            if p.starts_with("/admin/keys")
                || p.starts_with("/admin/users")
                || p == "/admin/usage"
                || p == "/admin/logs" =>
        {
            if let Some(denied) = refusal(token, &req) {
                return denied;
            }
            let method = req.method().clone();
            store_api(shared, &method, &path, query, req).await
        }
        (_, p) if crate::console::owns(p) => crate::console::handle(shared, token, req).await,
        _ => error(404, "invalid_request_error", "not found"),
    }
}

/// A key's routing configuration from a request: the same `routing:` section a static key
/// has, as YAML text or JSON, validated against the live catalog exactly like `lint` (and
/// again on every use). `Ok(None)` when absent or null.
pub fn routing_from(
    shared: &Shared,
    key_name: &str,
    v: Option<&Value>,
) -> Result<Option<String>, Box<Response<Full<Bytes>>>> {
    let yaml = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(yaml)) => yaml.clone(),
        Some(obj) => serde_yaml::to_string(obj)
            .map_err(|e| Box::new(error(400, "invalid_request_error", format!("routing: {e}"))))?,
    };
    match validate_routing(shared, key_name, &yaml) {
        Ok(()) => Ok(Some(yaml)),
        Err(list) => Err(Box::new(json_response(
            400,
            json!({ "error": { "message": format!("invalid routing configuration: {}", list.join("; ")),
                               "type": "invalid_request_error", "code": "invalid_routing", "param": "routing" },
                    "errors": list }),
        ))),
    }
}

/// Every problem with a routing configuration, each naming its path and fix (as `lint`).
pub fn validate_routing(shared: &Shared, key_name: &str, yaml: &str) -> Result<(), Vec<String>> {
    shared
        .live
        .load()
        .key_routing_from_yaml(key_name, yaml)
        .map(|_| ())
        .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
}

/// The request's JSON body, or the 400 answer.
async fn json_body(req: Request<Incoming>) -> Result<Value, Box<Response<Full<Bytes>>>> {
    let Ok(body) = req.into_body().collect().await else {
        return Err(Box::new(error(
            400,
            "invalid_request_error",
            "cannot read the request body",
        )));
    };
    serde_json::from_slice(&body.to_bytes()).map_err(|e| {
        Box::new(error(
            400,
            "invalid_request_error",
            format!("invalid JSON: {e}"),
        ))
    })
}

fn user_error(e: &crate::users::UserError) -> Response<Full<Bytes>> {
    let (status, kind) = e.status();
    error(status, kind, e.to_string())
}

async fn store_api(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let store = &shared.store;
    let failed = |e: crate::store::StoreError| error(503, "api_error", e.to_string());
    match (method, path) {
        (&Method::POST, "/admin/keys") => {
            let v = match json_body(req).await {
                Ok(v) => v,
                Err(refused) => return *refused,
            };
            let Some(name) = v
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            else {
                return error(400, "invalid_request_error", "`name` is required");
            };
            let limits = match v.get("rate_limit") {
                None | Some(Value::Null) => Default::default(),
                Some(rl) => {
                    match serde_json::from_value::<crate::config::raw::RawRateLimit>(rl.clone()) {
                        Ok(raw) => crate::store::Limits::from(&raw),
                        Err(e) => {
                            return error(400, "invalid_request_error", format!("rate_limit: {e}"));
                        }
                    }
                }
            };
            let allowed_models = v.get("allowed_models").and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect()
            });
            let routing_yaml = match routing_from(shared, name, v.get("routing")) {
                Ok(r) => r,
                Err(refused) => return *refused,
            };
            let new = NewKey {
                name: name.to_string(),
                limits,
                allowed_models,
                routing_yaml,
            };
            match store.create_key(new).await {
                Ok((info, key)) => json_response(
                    201,
                    json!({ "id": info.id, "name": info.name, "key": key, "limits": info.limits,
                            "note": "the key is shown only once; only its hash is stored" }),
                ),
                Err(e) => failed(e),
            }
        }
        (&Method::GET, "/admin/keys") => match store.list_keys().await {
            Ok(keys) => json_response(200, json!({ "keys": keys })),
            Err(e) => failed(e),
        },
        (&Method::PUT, p) if p.starts_with("/admin/keys/") && p.ends_with("/routing") => {
            let id = &p["/admin/keys/".len()..p.len() - "/routing".len()];
            let v = match json_body(req).await {
                Ok(v) => v,
                Err(refused) => return *refused,
            };
            let name = match store.list_keys().await {
                Ok(keys) => keys
                    .into_iter()
                    .find(|k| k.id == id || k.id == format!("key_{id}")),
                Err(e) => return failed(e),
            };
            let Some(key) = name else {
                return error(404, "not_found_error", format!("no key with id {id}"));
            };
            let routing_yaml = match routing_from(shared, &key.name, v.get("routing")) {
                Ok(r) => r,
                Err(refused) => return *refused,
            };
            match store.set_routing(&key.id, routing_yaml.as_deref()).await {
                Ok(true) => json_response(200, json!({ "id": key.id, "routing": routing_yaml })),
                Ok(false) => error(404, "not_found_error", format!("no key with id {id}")),
                Err(e) => failed(e),
            }
        }
        (&Method::DELETE, p) if p.starts_with("/admin/keys/") => {
            let id = &p["/admin/keys/".len()..];
            match store.revoke(id).await {
                Ok(true) => json_response(200, json!({ "id": id, "revoked": true })),
                Ok(false) => error(404, "not_found_error", format!("no key with id {id}")),
                Err(e) => failed(e),
            }
        }
        (&Method::POST, "/admin/users") => {
            let v = match json_body(req).await {
                Ok(v) => v,
                Err(refused) => return *refused,
            };
            match crate::users::create_from_json(store, &v).await {
                Ok(u) => json_response(201, crate::users::to_json(&u)),
                Err(e) => user_error(&e),
            }
        }
        (&Method::GET, "/admin/users") => match store.list_users().await {
            Ok(users) => json_response(
                200,
                json!({ "users": users.iter().map(crate::users::to_json).collect::<Vec<_>>() }),
            ),
            Err(e) => failed(e),
        },
        (&Method::DELETE, p) if p.starts_with("/admin/users/") => {
            let email = crate::console::path_decode(&p["/admin/users/".len()..]);
            match crate::users::delete(store, &email).await {
                Ok(email) => json_response(200, json!({ "email": email, "deleted": true })),
                Err(e) => user_error(&e),
            }
        }
        (&Method::GET, "/admin/usage") => {
            let by = match query_param(query, "by").unwrap_or("key") {
                "key" => UsageBy::Key,
                "model" => UsageBy::Model,
                "provider" => UsageBy::Provider,
                other => {
                    return error(
                        400,
                        "invalid_request_error",
                        format!("by={other}: use key, model or provider"),
                    );
                }
            };
            let hours: u64 = query_param(query, "since_hours")
                .and_then(|h| h.parse().ok())
                .unwrap_or(24);
            let now = crate::extproc::state::now_ms();
            match store
                .usage(by, now.saturating_sub(hours * 3_600_000), now)
                .await
            {
                Ok(rows) => json_response(200, json!({ "usage": rows })),
                Err(e) => failed(e),
            }
        }
        (&Method::GET, "/admin/logs") => {
            let text = |k| {
                query_param(query, k)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            let filter = LogFilter {
                key: text("key"),
                model: text("model"),
                provider: text("provider"),
                status: text("status").and_then(|s| s.parse().ok()),
                since_ms: text("since_ms").and_then(|s| s.parse().ok()),
                id: None,
            };
            let page = match query_param(query, "follow") {
                Some(cursor) => {
                    store
                        .follow_logs(&filter, cursor, Duration::from_secs(5))
                        .await
                }
                None => {
                    let limit = text("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
                    store.read_logs(&filter, limit).await
                }
            };
            match page {
                Ok(p) => json_response(200, json!({ "records": p.records, "cursor": p.cursor })),
                Err(e) => failed(e),
            }
        }
        _ => error(
            405,
            "invalid_request_error",
            format!("{method} is not supported on {path}"),
        ),
    }
}
