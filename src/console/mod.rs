//! The Console (seed 000): server-rendered pages and a small JSON API on the admin port, so a
//! platform team gets a UI with the sidecar and no extra service.
//!
//! - **Sign-in** by email and password (Console users, see `crate::users`), or with the admin
//!   token (`SWITCHYARD_ADMIN_TOKEN`): `POST /console/login` sets a session cookie (`HttpOnly;
//!   SameSite=Strict; Path=/console`, `Secure` when the request came over HTTPS via
//!   `x-forwarded-proto`). Sessions are random 256-bit ids kept in memory with an expiry and who
//!   signed in; a restart signs everyone out. A user's session ends once that user is deleted
//!   (checked against the store on each request, so on every replica). Without an admin token
//!   the Console stays closed.
//! - **CSRF**: each session has its own token, required on every state-changing call, as the
//!   `csrf` form field or the `x-csrf-token` header; a cross-origin `Origin` is refused too.
//! - **Everything else needs a session**: pages redirect to the sign-in page, `/console/api/*`
//!   answers 401. Only the sign-in page and the two static assets are public.
//! - Pages: Dashboard, API Keys (+ detail, revoke confirmation), Model Catalog (+ detail),
//!   Request Logs, Usage, Playground, Users (+ delete confirmation). JSON API: see
//!   `docs/openapi.yaml`.
//!
//! Keys are shown once (in the create response, never again) and never logged; passwords and
//! their hashes are never shown or logged.

mod data;
mod pages;
mod playground;
mod routing_form;

use crate::extproc::Shared;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, body::Incoming};
use pages::LoginState;
use rand::RngCore;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Session cookie name.
const COOKIE: &str = "sy_console";
/// How long a session lives after sign-in.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// At most this many live sessions (the oldest is dropped beyond it).
const MAX_SESSIONS: usize = 10_000;
/// Largest request body the Console reads (forms and JSON).
const MAX_BODY: usize = 256 * 1024;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The proxy endpoint shown on the Dashboard and used by the Playground; set by `switchyard up`
/// (which knows the `--proxy` address). `SWITCHYARD_PROXY_URL` overrides it.
static PROXY_ENDPOINT: OnceLock<String> = OnceLock::new();

/// Tell the Console the client-facing proxy base URL (e.g. `http://127.0.0.1:8080/v1`).
pub fn set_proxy_endpoint(url: String) {
    let _ = PROXY_ENDPOINT.set(url);
}

/// The proxy base URL ending in `/v1`.
pub(crate) fn proxy_endpoint(shared: &Shared) -> String {
    if let Some(u) = std::env::var("SWITCHYARD_PROXY_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return u.trim_end_matches('/').to_string();
    }
    if let Some(u) = PROXY_ENDPOINT.get() {
        return u.clone();
    }
    let listen = shared
        .live
        .load()
        .listen
        .proxy
        .replace("0.0.0.0", "127.0.0.1");
    format!("http://{listen}/v1")
}

/// Who signed in to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Who {
    AdminToken,
    /// `created_ms` tells this user from a later one re-created with the same email.
    User {
        email: String,
        created_ms: u64,
    },
}

impl Who {
    /// As the header's "Signed in as …" shows it.
    pub(crate) fn label(&self) -> &str {
        match self {
            Who::AdminToken => "admin token",
            Who::User { email, .. } => email,
        }
    }
}

struct Session {
    csrf: String,
    who: Who,
    expires: Instant,
    created: Instant,
}

/// A live session, as the request presented it.
struct Live {
    id: String,
    csrf: String,
    who: Who,
}

static SESSIONS: LazyLock<Mutex<HashMap<String, Session>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn new_session(who: Who) -> (String, String) {
    let id = random_hex(32);
    let csrf = random_hex(32);
    let now = Instant::now();
    if let Ok(mut s) = SESSIONS.lock() {
        s.retain(|_, v| v.expires > now);
        if s.len() >= MAX_SESSIONS
            && let Some(oldest) = s
                .iter()
                .min_by_key(|(_, v)| v.created)
                .map(|(k, _)| k.clone())
        {
            s.remove(&oldest);
        }
        s.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                who,
                expires: now + SESSION_TTL,
                created: now,
            },
        );
    }
    (id, csrf)
}

/// The request's live session.
fn session_of(req: &Request<Incoming>) -> Option<Live> {
    let id = cookie(req, COOKIE)?;
    let now = Instant::now();
    let mut s = SESSIONS.lock().ok()?;
    match s.get(&id) {
        Some(v) if v.expires > now => Some(Live {
            csrf: v.csrf.clone(),
            who: v.who.clone(),
            id,
        }),
        Some(_) => {
            s.remove(&id);
            None
        }
        None => None,
    }
}

fn end_session(id: &str) {
    if let Ok(mut s) = SESSIONS.lock() {
        s.remove(id);
    }
}

fn cookie(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name && !v.is_empty()).then(|| v.to_string())
        })
}

fn is_https(req: &Request<Incoming>) -> bool {
    req.headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A cross-origin `Origin` (another site posting to us) is refused; no `Origin` is allowed
/// (same-origin navigations from old browsers, CLI clients), the CSRF token still applies.
fn cross_origin(req: &Request<Incoming>) -> bool {
    let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    origin_host != host
}

/// Constant-time string equality.
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

// === responses ===

pub(crate) fn html(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("x-frame-options", "DENY")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "same-origin")
        .header(
            "content-security-policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

pub(crate) fn json_response(status: u16, v: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap_or_default()
}

pub(crate) fn json_error(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({ "error": { "message": message, "type": kind, "code": null, "param": null } }),
    )
}

fn redirect(to: &str, set_cookie: Option<String>) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(303)
        .header("location", to)
        .header("cache-control", "no-store");
    if let Some(c) = set_cookie {
        b = b.header("set-cookie", c);
    }
    b.body(Full::new(Bytes::new())).unwrap_or_default()
}

fn asset(content_type: &str, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", content_type)
        .header("cache-control", "public, max-age=300")
        .header("x-content-type-options", "nosniff")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_default()
}

// === decoding ===

/// Percent-decoding for query strings and form bodies (`+` is a space).
pub(crate) fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-decoding for a path segment, where `+` is itself (`a+tag@example.com`).
pub(crate) fn path_decode(s: &str) -> String {
    url_decode(&s.replace('+', "%2B"))
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encoding for a path segment or query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `a=1&b=2` (query string or form body) as a map; the first value of a name wins.
pub(crate) fn parse_form(s: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for kv in s.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        m.entry(url_decode(k)).or_insert_with(|| url_decode(v));
    }
    m
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(json_error(
            413,
            "invalid_request_error",
            "request body too large or unreadable",
        )),
    }
}

/// Does this path belong to the Console? (`/` redirects to it.)
pub fn owns(path: &str) -> bool {
    path == "/" || path == "/console" || path.starts_with("/console/")
}

/// What a signed-in request carries into the handlers.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Shared,
    pub csrf: String,
    pub who: Who,
    pub query: HashMap<String, String>,
}

/// The Console's entry point, called by the admin server for every path `owns` accepts.
pub async fn handle(
    shared: &Shared,
    admin_token: Option<&str>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let is_api = path.starts_with("/console/api/");
    match (&method, path.as_str()) {
        (&Method::GET, "/" | "/console/") => return redirect("/console", None),
        (&Method::GET, "/console/assets/console.css") => {
            return asset("text/css; charset=utf-8", CSS);
        }
        (&Method::GET, "/console/assets/console.js") => {
            return asset("text/javascript; charset=utf-8", JS);
        }
        (&Method::GET, "/console/login") => {
            if session_of(&req).is_some() {
                return redirect("/console", None);
            }
            return html(
                200,
                pages::login(admin_token.is_some(), &LoginState::default()),
            );
        }
        (&Method::POST, "/console/login") => return login(shared, admin_token, req).await,
        _ => {}
    }
    let Some(Live {
        id: session_id,
        csrf,
        who,
    }) = session_of(&req)
    else {
        return sign_in_first(is_api, &method, admin_token.is_some());
    };
    // A user's session lasts while that user does: deleting them (on any replica) ends it.
    if let Who::User { email, created_ms } = &who {
        match shared.store.user_credential(email).await {
            Ok(Some(c)) if c.user.created_ms == *created_ms => {}
            Ok(_) => {
                end_session(&session_id);
                return sign_in_first(is_api, &method, admin_token.is_some());
            }
            Err(e) => return json_error(503, "api_error", &e.to_string()),
        }
    }
    let query = parse_form(req.uri().query().unwrap_or(""));
    let ctx = Ctx {
        shared,
        csrf,
        who,
        query,
    };
    if method == Method::GET || method == Method::HEAD {
        return if is_api {
            data::api_get(&ctx, &path).await
        } else {
            pages::get(&ctx, &path).await
        };
    }
    // State-changing from here on: same origin and the session's CSRF token.
    if cross_origin(&req) {
        return json_error(403, "permission_error", "cross-origin request refused");
    }
    let header_token = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let form = if is_json {
        HashMap::new()
    } else {
        parse_form(&String::from_utf8_lossy(&body))
    };
    let presented = header_token.or_else(|| form.get("csrf").cloned());
    if !presented.is_some_and(|t| ct_eq(&t, &ctx.csrf)) {
        return if is_api {
            json_error(403, "permission_error", "missing or invalid CSRF token")
        } else {
            html(
                403,
                pages::message(
                    &ctx,
                    "Forbidden",
                    "The form expired or was not sent from the Console (missing or invalid CSRF token). Go back, reload and try again.",
                ),
            )
        };
    }
    if path == "/console/logout" && method == Method::POST {
        end_session(&session_id);
        return redirect("/console/login", Some(clear_cookie()));
    }
    if is_api {
        let v: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return json_error(400, "invalid_request_error", &format!("invalid JSON: {e}"));
                }
            }
        };
        data::api_mutate(&ctx, &method, &path, v).await
    } else {
        pages::post(&ctx, &method, &path, form).await
    }
}

/// The answer to a request without a (live) session.
fn sign_in_first(is_api: bool, method: &Method, enabled: bool) -> Response<Full<Bytes>> {
    if is_api {
        json_error(401, "authentication_error", "sign in first")
    } else if method == Method::GET {
        redirect("/console/login", None)
    } else {
        let state = LoginState {
            error: Some("Sign in first."),
            ..LoginState::default()
        };
        html(401, pages::login(enabled, &state))
    }
}

fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Sign-in by email and password (the form's `email` and `password`), or with the admin token
/// (`token`). Failures answer after the same fixed delay, with one message for an unknown email
/// and a wrong password.
async fn login(
    shared: &Shared,
    admin_token: Option<&str>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let refused = |status: u16, state: &LoginState<'_>| html(status, pages::login(true, state));
    let Some(expected) = admin_token else {
        let state = LoginState {
            error: Some(
                "The Console is disabled: start the processor with SWITCHYARD_ADMIN_TOKEN set.",
            ),
            ..LoginState::default()
        };
        return html(403, pages::login(false, &state));
    };
    if cross_origin(&req) {
        let state = LoginState {
            error: Some("Cross-origin sign-in refused."),
            ..LoginState::default()
        };
        return refused(403, &state);
    }
    let secure = is_https(&req);
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = parse_form(&String::from_utf8_lossy(&body));
    let field = |f: &str| form.get(f).map(String::as_str).unwrap_or("");
    let (who, failure) = if form.contains_key("token") {
        let who = ct_eq(field("token"), expected).then_some(Who::AdminToken);
        let failure = LoginState {
            error: Some("Invalid admin token."),
            token_open: true,
            ..LoginState::default()
        };
        (who, failure)
    } else {
        let who = match crate::users::verify(&shared.store, field("email"), field("password")).await
        {
            Ok(user) => user.map(|u| Who::User {
                email: u.email,
                created_ms: u.created_ms,
            }),
            Err(e) => {
                let message = format!("Sign-in is unavailable: {e}");
                let state = LoginState {
                    error: Some(&message),
                    email: field("email"),
                    ..LoginState::default()
                };
                return refused(503, &state);
            }
        };
        let failure = LoginState {
            error: Some("Invalid email or password."),
            email: field("email"),
            ..LoginState::default()
        };
        (who, failure)
    };
    let Some(who) = who else {
        // A small fixed delay slows down guessing without keeping much state.
        tokio::time::sleep(Duration::from_millis(300)).await;
        return refused(401, &failure);
    };
    let (id, _) = new_session(who);
    let cookie = format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    redirect("/console", Some(cookie))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_and_encoding() {
        assert_eq!(url_decode("a+b%20c%2Fd"), "a b c/d");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz"), "%zz");
        assert_eq!(path_decode("a+tag%40example.com"), "a+tag@example.com");
        assert_eq!(url_encode("gpt-4o/x y"), "gpt-4o%2Fx%20y");
        let f = parse_form("name=a%26b&csrf=x&name=second");
        assert_eq!(f.get("name").map(String::as_str), Some("a&b"));
        assert_eq!(f.get("csrf").map(String::as_str), Some("x"));
    }

    #[test]
    fn sessions_expire_and_end() {
        let (id, csrf) = new_session(Who::AdminToken);
        assert_eq!(csrf.len(), 64);
        assert!(SESSIONS.lock().is_ok_and(|s| s.contains_key(&id)));
        end_session(&id);
        assert!(SESSIONS.lock().is_ok_and(|s| !s.contains_key(&id)));
        assert!(ct_eq("abc", "abc") && !ct_eq("abc", "abd") && !ct_eq("abc", "ab"));
    }

    #[test]
    fn openapi_document_parses_and_lists_the_console_api() {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(include_str!("../../docs/openapi.yaml")).expect("valid YAML");
        assert_eq!(doc["openapi"].as_str(), Some("3.0.3"));
        for p in [
            "/console/login",
            "/console/logout",
            "/console/api/session",
            "/console/api/overview",
            "/console/api/keys",
            "/console/api/keys/{id}",
            "/console/api/keys/{id}/limits",
            "/console/api/keys/{id}/routing",
            "/console/api/models",
            "/console/api/models/{name}",
            "/console/api/logs",
            "/console/api/logs/{id}",
            "/console/api/usage",
            "/console/api/usage/series",
            "/console/api/playground",
            "/console/api/users",
            "/console/api/users/{email}",
            "/admin/keys",
            "/admin/users",
            "/admin/users/{email}",
            "/admin/usage",
            "/admin/logs",
        ] {
            assert!(doc["paths"][p].is_mapping(), "{p} is documented");
        }
    }
}
