//! Server-rendered pages. Every value that reaches the HTML goes through `esc`.

use super::data::{self, PERIODS};
use super::routing_form::{self, RoutingForm};
use super::{Ctx, html, url_encode};
use crate::store::{KeySource, KeyStats, UsageBy};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write;

/// HTML-escapes text and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn usd(v: f64) -> String {
    if v == 0.0 {
        "$0.00".into()
    } else if v < 0.01 {
        format!("${v:.6}")
    } else {
        format!("${v:.2}")
    }
}

fn num(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn when(ms: u64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    format!(
        "{}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

const NAV: [(&str, &str); 7] = [
    ("/console", "Dashboard"),
    ("/console/keys", "API Keys"),
    ("/console/models", "Model Catalog"),
    ("/console/logs", "Request Logs"),
    ("/console/usage", "Usage"),
    ("/console/playground", "Playground"),
    ("/console/users", "Users"),
];

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Switchyard Console</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <script src=\"/console/assets/console.js\" defer></script></head>",
        esc(title)
    )
}

/// A signed-in page: navigation, who is signed in, sign-out, the content.
fn layout(ctx: &Ctx<'_>, current: &str, title: &str, body: &str) -> String {
    let mut nav = String::new();
    for (href, label) in NAV {
        let cur = if href == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<li><a href=\"{href}\"{cur}>{label}</a></li>");
    }
    format!(
        "{}<body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header class=\"top\"><span class=\"brand\">Switchyard Console</span>\
         <nav aria-label=\"Main\"><ul>{nav}</ul></nav>\
         <span class=\"who\" data-testid=\"signed-in-as\">Signed in as {}</span>\
         <form method=\"post\" action=\"/console/logout\" class=\"signout\">{}\
         <button type=\"submit\" class=\"link\">Sign out</button></form></header>\
         <main id=\"main\" tabindex=\"-1\"><h1>{}</h1>{body}</main></body></html>",
        head(title),
        esc(ctx.who.label()),
        csrf_field(ctx),
        esc(title)
    )
}

fn csrf_field(ctx: &Ctx<'_>) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&ctx.csrf)
    )
}

/// What the sign-in page shows again after a refused attempt.
#[derive(Default)]
pub(crate) struct LoginState<'a> {
    pub error: Option<&'a str>,
    /// The email typed, kept in its field.
    pub email: &'a str,
    /// Open the admin-token form (its attempt failed).
    pub token_open: bool,
}

/// Email and password first; the admin token folded away below.
pub(crate) fn login(enabled: bool, state: &LoginState<'_>) -> String {
    let err = state.error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))
    });
    let form = if enabled {
        format!(
            "<form method=\"post\" action=\"/console/login\" class=\"card narrow\">\
             <label for=\"email\">Email</label>\
             <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" value=\"{}\" required{}>\
             <label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\">Sign in</button></form>\
             <details class=\"card narrow\"{}><summary>Sign in with the admin token</summary>\
             <form method=\"post\" action=\"/console/login\">\
             <label for=\"token\">Admin token</label>\
             <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required>\
             <button type=\"submit\">Sign in with the token</button></form></details>",
            esc(state.email),
            if state.token_open { "" } else { " autofocus" },
            if state.token_open { " open" } else { "" },
        )
    } else {
        "<p class=\"card narrow\">The Console is disabled: start the processor with \
         <code>SWITCHYARD_ADMIN_TOKEN</code> set, then sign in with that token.</p>"
            .to_string()
    };
    format!(
        "{}<body><main id=\"main\" class=\"login\"><h1>Sign in to Switchyard Console</h1>{err}{form}</main></body></html>",
        head("Sign in")
    )
}

pub(crate) fn message(ctx: &Ctx<'_>, title: &str, text: &str) -> String {
    layout(ctx, "", title, &format!("<p>{}</p>", esc(text)))
}

fn copyable(id: &str, label: &str, value: &str) -> String {
    format!(
        "<div class=\"copy\"><label for=\"{id}\">{label}</label>\
         <input id=\"{id}\" readonly value=\"{}\" class=\"mono\">\
         <button type=\"button\" data-copy=\"{id}\" aria-label=\"Copy {label}\">Copy</button></div>",
        esc(value)
    )
}

fn period_picker(current: &str, action: &str, extra: &str) -> String {
    let mut opts = String::new();
    for (id, label, _) in PERIODS {
        let sel = if id == current { " selected" } else { "" };
        let _ = write!(opts, "<option value=\"{id}\"{sel}>{label}</option>");
    }
    format!(
        "<form method=\"get\" action=\"{action}\" class=\"inline\">{extra}\
         <label for=\"period\">Period</label>\
         <select id=\"period\" name=\"period\" data-autosubmit>{opts}</select>\
         <button type=\"submit\">Apply</button></form>"
    )
}

fn store_error(ctx: &Ctx<'_>, e: &crate::store::StoreError) -> Response<Full<Bytes>> {
    html(
        503,
        message(
            ctx,
            "Store unavailable",
            &format!("The store did not answer: {e}"),
        ),
    )
}

pub(crate) async fn get(ctx: &Ctx<'_>, path: &str) -> Response<Full<Bytes>> {
    match path {
        "/console" => dashboard(ctx).await,
        "/console/keys" => keys_page(ctx, None, None).await,
        "/console/models" => models_page(ctx),
        "/console/logs" => logs_page(ctx).await,
        "/console/usage" => usage_page(ctx).await,
        "/console/playground" => html(200, playground_page(ctx, None, None)),
        "/console/users" => users_page(ctx, None).await,
        p if p.starts_with("/console/users/") && p.ends_with("/delete") => {
            user_delete_confirm(ctx, &user_in_path(p)).await
        }
        p if p.starts_with("/console/models/") => {
            model_page(ctx, &super::url_decode(&p["/console/models/".len()..]))
        }
        p if p.starts_with("/console/keys/") && p.ends_with("/revoke") => {
            let id = &p["/console/keys/".len()..p.len() - "/revoke".len()];
            revoke_confirm(ctx, &super::url_decode(id)).await
        }
        p if p.starts_with("/console/keys/") => {
            key_page(ctx, &super::url_decode(&p["/console/keys/".len()..])).await
        }
        _ => html(404, message(ctx, "Not found", "There is no such page.")),
    }
}

pub(crate) async fn post(
    ctx: &Ctx<'_>,
    method: &Method,
    path: &str,
    form: HashMap<String, String>,
) -> Response<Full<Bytes>> {
    match (method, path) {
        (&Method::POST, "/console/keys") => {
            let field = |f: &str| form.get(f).cloned();
            match data::validate_create(form.get("name").map(String::as_str), &field) {
                Err(e) => keys_page(ctx, None, Some(&e)).await,
                Ok(c) => match data::create_key(&ctx.shared.store, c).await {
                    Ok((info, key)) => keys_page(ctx, Some((&info.name, &key)), None).await,
                    Err(e) => store_error(ctx, &e),
                },
            }
        }
        (&Method::POST, p) if p.starts_with("/console/keys/") && p.ends_with("/revoke") => {
            let id = super::url_decode(&p["/console/keys/".len()..p.len() - "/revoke".len()]);
            match ctx.shared.store.revoke(&id).await {
                Ok(true) => {
                    super::redirect(&format!("/console/keys?revoked={}", url_encode(&id)), None)
                }
                Ok(false) => html(404, message(ctx, "Not found", "No such key.")),
                Err(e) => store_error(ctx, &e),
            }
        }
        (&Method::POST, p) if p.starts_with("/console/keys/") && p.ends_with("/limits") => {
            let id = super::url_decode(&p["/console/keys/".len()..p.len() - "/limits".len()]);
            let limits = match data::limits_from_form(&form) {
                Ok(l) => l,
                Err(e) => return key_page_with(ctx, &id, None, &[], Some(&e)).await,
            };
            match ctx.shared.store.set_limits(&id, &limits).await {
                Ok(true) => super::redirect(&format!("/console/keys/{}", url_encode(&id)), None),
                Ok(false) => html(404, message(ctx, "Not found", "No such key.")),
                Err(e) => store_error(ctx, &e),
            }
        }
        (&Method::POST, p) if p.starts_with("/console/keys/") && p.ends_with("/routing") => {
            let id = super::url_decode(&p["/console/keys/".len()..p.len() - "/routing".len()]);
            let k = match find_key(ctx, &id).await {
                Ok(Some(k)) => k,
                Ok(None) => return html(404, message(ctx, "Not found", "No such key.")),
                Err(e) => return store_error(ctx, &e),
            };
            // The YAML editor posts `routing`; the form editor posts its fields.
            let draft = match form.get("routing") {
                Some(yaml) => yaml.trim().to_string(),
                None => {
                    let f = RoutingForm::from_post(&form);
                    if f.backends.is_empty() && f.rules.is_empty() {
                        String::new()
                    } else {
                        f.to_yaml()
                    }
                }
            };
            if !draft.is_empty()
                && let Err(errors) = crate::admin::validate_routing(ctx.shared, &k.name, &draft)
            {
                return key_page_with(ctx, &id, Some(&draft), &errors, None).await;
            }
            let yaml = (!draft.is_empty()).then_some(draft.as_str());
            match ctx.shared.store.set_routing(&k.id, yaml).await {
                Ok(true) => super::redirect(&format!("/console/keys/{}", url_encode(&k.id)), None),
                Ok(false) => html(404, message(ctx, "Not found", "No such live key.")),
                Err(e) => store_error(ctx, &e),
            }
        }
        (&Method::POST, "/console/users") => {
            let field = |f: &str| form.get(f).map(String::as_str).unwrap_or("");
            match crate::users::create(&ctx.shared.store, field("email"), field("password")).await {
                Ok(u) => super::redirect(
                    &format!("/console/users?added={}", url_encode(&u.email)),
                    None,
                ),
                Err(e) => users_page(ctx, Some((&e, field("email")))).await,
            }
        }
        (&Method::POST, p) if p.starts_with("/console/users/") && p.ends_with("/delete") => {
            let email = user_in_path(p);
            match crate::users::delete(&ctx.shared.store, &email).await {
                Ok(email) => super::redirect(
                    &format!("/console/users?deleted={}", url_encode(&email)),
                    None,
                ),
                Err(e) => html(e.status().0, message(ctx, "Not deleted", &e.to_string())),
            }
        }
        (&Method::POST, "/console/playground") => {
            let s = |f: &str| form.get(f).map(|v| v.trim()).unwrap_or("");
            let (key, model, msg) = (s("key"), s("model"), s("message"));
            if key.is_empty() || model.is_empty() || msg.is_empty() {
                return html(
                    400,
                    playground_page(
                        ctx,
                        Some(&form),
                        Some(Err("Key, model and message are all required.".into())),
                    ),
                );
            }
            let out =
                super::playground::send(&super::proxy_endpoint(ctx.shared), key, model, msg).await;
            html(200, playground_page(ctx, Some(&form), Some(out)))
        }
        _ => html(
            405,
            message(ctx, "Not allowed", "This action is not supported here."),
        ),
    }
}

async fn dashboard(ctx: &Ctx<'_>) -> Response<Full<Bytes>> {
    let (pid, hours) = data::period(ctx);
    let store = &ctx.shared.store;
    let (keys, rows) = match (
        data::keys(ctx.shared).await,
        data::usage(store, UsageBy::Key, hours).await,
    ) {
        (Ok(k), Ok(r)) => (k, r),
        (Err(e), _) | (_, Err(e)) => return store_error(ctx, &e),
    };
    let requests: u64 = rows.iter().map(|r| r.requests).sum();
    let spend: f64 = rows.iter().map(|r| r.cost_usd).sum();
    let mut cards = String::new();
    for k in keys.iter().filter(|k| !k.revoked) {
        let u = rows.iter().find(|r| r.name == k.id);
        let _ = write!(
            cards,
            "<li class=\"card\"><h3><a href=\"/console/keys/{}\">{}</a></h3>\
             <p class=\"mono small\">{}</p><dl><dt>Requests</dt><dd>{}</dd>\
             <dt>Tokens</dt><dd>{}</dd><dt>Spend</dt><dd>{}</dd>\
             <dt>Last used</dt><dd>{}</dd></dl></li>",
            url_encode(&k.id),
            esc(&k.name),
            esc(&k.id),
            num(u.map_or(0, |u| u.requests)),
            num(u.map_or(0, |u| u.input_tokens + u.output_tokens)),
            usd(u.map_or(0.0, |u| u.cost_usd)),
            k.last_used_ms.map_or("never".into(), when),
        );
    }
    if cards.is_empty() {
        cards = "<li class=\"card\">No API keys yet. <a href=\"/console/keys#create\">Create one</a>.</li>".into();
    }
    let body = format!(
        "<section aria-labelledby=\"ep\"><h2 id=\"ep\">Proxy endpoint</h2>{}\
         <p class=\"small\">OpenAI- and Anthropic-compatible; send <code>Authorization: Bearer sk-…</code>.</p></section>\
         <section aria-labelledby=\"sum\"><h2 id=\"sum\">Summary</h2>{}\
         <div class=\"stats\"><div class=\"stat\"><span>Total requests</span><strong data-testid=\"total-requests\">{}</strong></div>\
         <div class=\"stat\"><span>Total spend</span><strong data-testid=\"total-spend\">{}</strong></div></div></section>\
         <section aria-labelledby=\"qa\"><h2 id=\"qa\">Quick actions</h2>\
         <p><a class=\"button\" href=\"/console/keys#create\">Create API key</a> \
         <a class=\"button secondary\" href=\"/console/playground\">Open Playground</a></p></section>\
         <section aria-labelledby=\"kc\"><h2 id=\"kc\">API keys</h2><ul class=\"cards\">{cards}</ul></section>",
        copyable(
            "proxy-endpoint",
            "Proxy endpoint",
            &super::proxy_endpoint(ctx.shared)
        ),
        period_picker(pid, "/console", ""),
        num(requests),
        usd(spend),
    );
    html(200, layout(ctx, "/console", "Dashboard", &body))
}

fn limits_text(k: &KeyStats) -> String {
    let l = &k.limits;
    let mut parts = Vec::new();
    if l.total_tokens_per_hour > 0 {
        parts.push(format!("{} total tok/h", num(l.total_tokens_per_hour)));
    }
    if l.input_tokens_per_hour > 0 {
        parts.push(format!("{} input tok/h", num(l.input_tokens_per_hour)));
    }
    if l.output_tokens_per_hour > 0 {
        parts.push(format!("{} output tok/h", num(l.output_tokens_per_hour)));
    }
    if l.daily_usd > 0.0 {
        parts.push(format!("{}/day", usd(l.daily_usd)));
    }
    if l.monthly_usd > 0.0 {
        parts.push(format!("{}/month", usd(l.monthly_usd)));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

async fn keys_page(
    ctx: &Ctx<'_>,
    created: Option<(&str, &str)>,
    error: Option<&str>,
) -> Response<Full<Bytes>> {
    let keys = match data::keys(ctx.shared).await {
        Ok(k) => k,
        Err(e) => return store_error(ctx, &e),
    };
    let endpoint = super::proxy_endpoint(ctx.shared);
    let mut body = String::new();
    if let Some((name, key)) = created {
        let _ = write!(
            body,
            "<section class=\"card created\" role=\"status\" aria-labelledby=\"created-h\">\
             <h2 id=\"created-h\">Key “{}” created</h2>\
             <p><strong>Copy it now: it is shown only once</strong> and cannot be retrieved later \
             (only its hash is stored). If it is lost, revoke it and create another.</p>{}{}</section>",
            esc(name),
            copyable("new-key", "API key", key),
            copyable("proxy-endpoint", "Proxy endpoint", &endpoint),
        );
    } else {
        body.push_str(&copyable("proxy-endpoint", "Proxy endpoint", &endpoint));
    }
    if let Some(id) = ctx.query.get("revoked") {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"status\">Key <span class=\"mono\">{}</span> revoked.</p>",
            esc(id)
        );
    }
    let mut rows = String::new();
    for k in &keys {
        let from_config = k.source == KeySource::Config;
        let actions = if from_config {
            "<span class=\"small\">in the config file</span>".to_string()
        } else if k.revoked {
            "<span class=\"badge off\">revoked</span>".to_string()
        } else {
            format!(
                "<a href=\"/console/keys/{id}\">Configure</a> · \
                 <a href=\"/console/keys/{id}/revoke\" class=\"danger\">Revoke</a>",
                id = url_encode(&k.id)
            )
        };
        let _ = write!(
            rows,
            "<tr><td><a href=\"/console/keys/{}\">{}</a><div class=\"mono small\">{}</div></td>\
             <td>{}</td><td class=\"num\">{}</td><td class=\"num\">{} / {}</td><td class=\"num\">{}</td>\
             <td>{}</td><td>{}</td></tr>",
            url_encode(&k.id),
            esc(&k.name),
            esc(&k.id),
            created_at(k),
            num(k.requests),
            num(k.input_tokens),
            num(k.output_tokens),
            usd(k.spend_usd),
            esc(&limits_text(k)),
            actions
        );
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=\"7\">No API keys yet.</td></tr>".into();
    }
    let err = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))
    });
    let _ = write!(
        body,
        "<table><caption>API keys (created here or with <code>switchyard keys create</code>, then those of the config file)</caption>\
         <thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Created</th><th scope=\"col\">Total requests</th>\
         <th scope=\"col\">Tokens in / out</th><th scope=\"col\">Total spend</th><th scope=\"col\">Rate limits</th>\
         <th scope=\"col\">Actions</th></tr></thead><tbody>{rows}</tbody></table>\
         <section id=\"create\" class=\"card\" aria-labelledby=\"create-h\"><h2 id=\"create-h\">Create API key</h2>{err}\
         <form method=\"post\" action=\"/console/keys\">{}\
         <label for=\"key-name\">Name</label>\
         <input id=\"key-name\" name=\"name\" required maxlength=\"100\" placeholder=\"checkout-service-prod\">\
         <fieldset><legend>Rate limit (optional; empty or 0 = off; rolling hour)</legend>\
         <label for=\"rl-total\">Total tokens per hour</label><input id=\"rl-total\" name=\"total_tokens_per_hour\" inputmode=\"numeric\">\
         <label for=\"rl-in\">Input tokens per hour</label><input id=\"rl-in\" name=\"input_tokens_per_hour\" inputmode=\"numeric\">\
         <label for=\"rl-out\">Output tokens per hour</label><input id=\"rl-out\" name=\"output_tokens_per_hour\" inputmode=\"numeric\">\
         <label for=\"rl-day\">Daily budget (USD)</label><input id=\"rl-day\" name=\"daily_usd\" inputmode=\"decimal\">\
         <label for=\"rl-month\">Monthly budget (USD)</label><input id=\"rl-month\" name=\"monthly_usd\" inputmode=\"decimal\">\
         </fieldset><button type=\"submit\">Create</button></form></section>",
        csrf_field(ctx)
    );
    let status = if error.is_some() {
        400
    } else if created.is_some() {
        201
    } else {
        200
    };
    html(status, layout(ctx, "/console/keys", "API Keys", &body))
}

/// When a key was created; config-file keys have no creation time of their own.
fn created_at(k: &KeyStats) -> String {
    match k.source {
        KeySource::Config => "config file".into(),
        KeySource::Store => when(k.created_ms),
    }
}

async fn find_key(ctx: &Ctx<'_>, id: &str) -> Result<Option<KeyStats>, crate::store::StoreError> {
    let want = if id.starts_with("key_") {
        id.to_string()
    } else {
        format!("key_{id}")
    };
    Ok(data::keys(ctx.shared)
        .await?
        .into_iter()
        .find(|k| k.id == want))
}

async fn key_page(ctx: &Ctx<'_>, id: &str) -> Response<Full<Bytes>> {
    key_page_with(ctx, id, None, &[], None).await
}

/// The key page's Rate Limit section (seed 000): a section toggle, then the three per-hour token
/// limits, each with its own toggle, a slider and a number field (the number is what is sent;
/// the script keeps the slider in step). Spend budgets sit beside them, outside the toggle.
fn limits_section(ctx: &Ctx<'_>, k: &KeyStats, error: Option<&str>) -> String {
    let l = &k.limits;
    let values = [
        l.total_tokens_per_hour,
        l.input_tokens_per_hour,
        l.output_tokens_per_hour,
    ];
    let section_on = values.iter().any(|v| *v > 0);
    let mut rows = String::new();
    for ((field, label), value) in data::TOKEN_LIMITS.iter().zip(values) {
        let on = if value > 0 { " checked" } else { "" };
        // The slider spans 0–1M tokens (or the current value, if larger); the field takes any.
        let max = value.max(1_000_000);
        let _ = write!(
            rows,
            "<div class=\"limit\"><label class=\"toggle\"><input type=\"checkbox\" name=\"{field}_on\" \
             id=\"{field}-on\"{on}> {label}</label>\
             <input type=\"range\" id=\"{field}-range\" min=\"0\" max=\"{max}\" step=\"1000\" \
             value=\"{value}\" data-mirror=\"{field}\" aria-label=\"{label} per hour (slider)\">\
             <label class=\"sr\" for=\"{field}\">{label} per hour</label>\
             <input type=\"number\" id=\"{field}\" name=\"{field}\" min=\"0\" step=\"1\" value=\"{value}\" \
             data-mirror=\"{field}-range\"> <span class=\"small\">tokens</span></div>"
        );
    }
    let usd_value = |v: f64| {
        if v > 0.0 {
            v.to_string()
        } else {
            String::new()
        }
    };
    format!(
        "<section class=\"card\" aria-labelledby=\"rl-h\"><h2 id=\"rl-h\">Rate limit</h2>{err}\
         <form method=\"post\" action=\"/console/keys/{id}/limits\">{csrf}\
         <p><label class=\"toggle\"><input type=\"checkbox\" name=\"enabled\" id=\"rl-enabled\"{section}> \
         Rate limit</label> <span class=\"small\">Rolling one-hour window; each enabled limit is \
         checked on its own and a request that would exceed one gets 429.</span></p>\
         <fieldset id=\"rl-limits\" class=\"limits\"><legend>Token budgets per hour</legend>{rows}</fieldset>\
         <fieldset class=\"limits\"><legend>Spend budgets (USD, empty = off)</legend>\
         <label for=\"rl-day\">Daily</label><input id=\"rl-day\" name=\"daily_usd\" inputmode=\"decimal\" value=\"{day}\">\
         <label for=\"rl-month\">Monthly</label><input id=\"rl-month\" name=\"monthly_usd\" inputmode=\"decimal\" value=\"{month}\">\
         </fieldset><button type=\"submit\">Save limits</button></form></section>",
        err = error.map_or(String::new(), |e| {
            format!(
                "<p class=\"error\" role=\"alert\">Not saved: {}</p>",
                esc(e)
            )
        }),
        id = url_encode(&k.id),
        csrf = csrf_field(ctx),
        section = if section_on { " checked" } else { "" },
        day = usd_value(l.daily_usd),
        month = usd_value(l.monthly_usd),
    )
}

/// The Routing Configuration section: the form editor (or why the form cannot show this
/// configuration), and the YAML editor for everything.
fn routing_section(ctx: &Ctx<'_>, k: &KeyStats, draft: Option<&str>, errors: &[String]) -> String {
    let yaml = draft.or(k.routing_yaml.as_deref());
    let catalog: Vec<(String, String, bool)> = data::models(&ctx.shared.live.load(), "", &[], "")
        .iter()
        .map(|m| {
            let s = |f: &str| m.get(f).and_then(Value::as_str).unwrap_or("").to_string();
            (s("name"), s("provider"), s("status") == "enabled")
        })
        .collect();
    let form = match yaml.map(RoutingForm::from_yaml) {
        None => Ok(RoutingForm::default()),
        Some(parsed) => parsed,
    };
    let id = url_encode(&k.id);
    let csrf = csrf_field(ctx);
    let editor = match &form {
        Ok(f) => format!(
            "<form method=\"post\" action=\"/console/keys/{id}/routing\" id=\"routing-form\">{csrf}\
             {}<button type=\"submit\">Save routing</button></form>",
            routing_form::render(f, &catalog)
        ),
        Err(why) => format!(
            "<p class=\"notice\">This configuration cannot be shown as a form ({}); edit it as \
             YAML below.</p>",
            esc(why)
        ),
    };
    let errors_html = if errors.is_empty() {
        String::new()
    } else {
        format!(
            "<div id=\"rc-errors\" class=\"error\" role=\"alert\"><p>Not saved:</p><ul>{}</ul></div>",
            errors
                .iter()
                .map(|e| format!("<li>{}</li>", esc(e)))
                .collect::<String>()
        )
    };
    let state = match (&k.routing_yaml, &form) {
        (None, _) => "<span class=\"badge off\">none</span> requests go to the model they name",
        (Some(_), Ok(f)) if !f.active => {
            "<span class=\"badge off\">inactive</span> saved but not enforced"
        }
        _ => "<span class=\"badge on\">configured</span>",
    };
    format!(
        "<section class=\"card\" aria-labelledby=\"rc\"><h2 id=\"rc\">Routing configuration</h2>\
         <p>{state}</p>{errors_html}{editor}\
         <details{open}><summary>Edit as YAML</summary>\
         <p class=\"small\">The key's <code>routing:</code> section, as in the config file: \
         <code>active</code>, <code>strategy</code> (fallback, traffic_split, rules), \
         <code>routes</code> with logical names, priorities and weights, and <code>rules</code>. \
         It is checked exactly like <code>switchyard lint</code>; empty = no routing \
         configuration.</p>\
         <form method=\"post\" action=\"/console/keys/{id}/routing\">{csrf}\
         <label for=\"rc-yaml\">Routing configuration (YAML)</label>\
         <textarea id=\"rc-yaml\" name=\"routing\" rows=\"10\" class=\"mono\" aria-describedby=\"rc-errors\">{yaml}</textarea>\
         <button type=\"submit\">Save YAML</button></form></details></section>",
        open = if form.is_err() { " open" } else { "" },
        yaml = esc(yaml.unwrap_or("")),
    )
}

/// The key page; `draft` and `errors` when a routing save was refused, `limits_error` when a
/// limits save was.
async fn key_page_with(
    ctx: &Ctx<'_>,
    id: &str,
    draft: Option<&str>,
    errors: &[String],
    limits_error: Option<&str>,
) -> Response<Full<Bytes>> {
    let k = match find_key(ctx, id).await {
        Ok(Some(k)) => k,
        Ok(None) => return html(404, message(ctx, "Not found", "No such key.")),
        Err(e) => return store_error(ctx, &e),
    };
    let from_config = k.source == KeySource::Config;
    let revoke = if from_config {
        String::new()
    } else if k.revoked {
        "<p><span class=\"badge off\">revoked</span></p>".to_string()
    } else {
        format!(
            "<p><a class=\"button danger\" href=\"/console/keys/{}/revoke\">Revoke key</a></p>",
            url_encode(&k.id)
        )
    };
    let body = format!(
        "<dl class=\"detail\"><dt>Id</dt><dd class=\"mono\">{}</dd><dt>Created</dt><dd>{}</dd>\
         <dt>Last used</dt><dd>{}</dd><dt>Total requests</dt><dd>{}</dd>\
         <dt>Tokens in / out</dt><dd>{} / {}</dd><dt>Total spend</dt><dd>{}</dd>\
         <dt>Rate limits</dt><dd>{}</dd></dl>{}{}\
         <p><a href=\"/console/logs?key={}\">Request logs for this key</a></p>{revoke}",
        esc(&k.id),
        created_at(&k),
        k.last_used_ms.map_or("never".into(), when),
        num(k.requests),
        num(k.input_tokens),
        num(k.output_tokens),
        usd(k.spend_usd),
        esc(&limits_text(&k)),
        // Only a live store key is configured here.
        if from_config {
            "<p class=\"notice\">This key is defined in the config file (<code>keys:</code>); its \
             routing and limits are changed there, and take effect on reload.</p>"
                .to_string()
        } else if k.revoked {
            String::new()
        } else {
            routing_section(ctx, &k, draft, errors)
        },
        if from_config || k.revoked {
            String::new()
        } else {
            limits_section(ctx, &k, limits_error)
        },
        url_encode(&k.id),
    );
    let status = if errors.is_empty() && limits_error.is_none() {
        200
    } else {
        400
    };
    html(status, layout(ctx, "/console/keys", &k.name, &body))
}

async fn revoke_confirm(ctx: &Ctx<'_>, id: &str) -> Response<Full<Bytes>> {
    let k = match find_key(ctx, id).await {
        Ok(Some(k)) if !k.revoked => k,
        Ok(_) => return html(404, message(ctx, "Not found", "No such active key.")),
        Err(e) => return store_error(ctx, &e),
    };
    let body = format!(
        "<div class=\"card narrow\" role=\"alertdialog\" aria-labelledby=\"rv-h\" aria-describedby=\"rv-d\">\
         <h2 id=\"rv-h\">Revoke “{}”?</h2>\
         <p id=\"rv-d\">Revocation is immediate and cannot be undone: every request with this key \
         will get an authentication error. A replacement key has to be created.</p>\
         <form method=\"post\" action=\"/console/keys/{}/revoke\">{}\
         <button type=\"submit\" class=\"danger\" autofocus>Revoke permanently</button> \
         <a href=\"/console/keys\">Cancel</a></form></div>",
        esc(&k.name),
        url_encode(&k.id),
        csrf_field(ctx)
    );
    html(200, layout(ctx, "/console/keys", "Revoke API key", &body))
}

/// The email in `/console/users/{email}/delete`.
fn user_in_path(p: &str) -> String {
    super::path_decode(&p["/console/users/".len()..p.len() - "/delete".len()])
}

/// The users and the add form; `failed` is a refused add and the email typed.
async fn users_page(
    ctx: &Ctx<'_>,
    failed: Option<(&crate::users::UserError, &str)>,
) -> Response<Full<Bytes>> {
    let users = match ctx.shared.store.list_users().await {
        Ok(u) => u,
        Err(e) => return store_error(ctx, &e),
    };
    let mut body = String::new();
    for (param, what) in [("added", "added"), ("deleted", "deleted")] {
        if let Some(email) = ctx.query.get(param) {
            let _ = write!(
                body,
                "<p class=\"notice\" role=\"status\">User {} {what}.</p>",
                esc(email)
            );
        }
    }
    let mut rows = String::new();
    for u in &users {
        let you = if ctx.who.label() == u.email {
            " <span class=\"small\">(you)</span>"
        } else {
            ""
        };
        let _ = write!(
            rows,
            "<tr><td>{}{you}</td><td>{}</td>\
             <td><a href=\"/console/users/{}/delete\" class=\"danger\" aria-label=\"Delete {}\">Delete</a></td></tr>",
            esc(&u.email),
            when(u.created_ms),
            url_encode(&u.email),
            esc(&u.email),
        );
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=\"3\">No users yet: until one is added, sign in with the admin token.</td></tr>".into();
    }
    let err = failed.map_or(String::new(), |(e, _)| {
        format!(
            "<p class=\"error\" role=\"alert\" id=\"add-error\">{}</p>",
            esc(&e.to_string())
        )
    });
    let _ = write!(
        body,
        "<table><caption>Console users (sign-in by email and password)</caption>\
         <thead><tr><th scope=\"col\">Email</th><th scope=\"col\">Created</th>\
         <th scope=\"col\">Actions</th></tr></thead><tbody>{rows}</tbody></table>\
         <section id=\"add\" class=\"card narrow\" aria-labelledby=\"add-h\"><h2 id=\"add-h\">Add user</h2>{err}\
         <form method=\"post\" action=\"/console/users\">{}\
         <label for=\"user-email\">Email</label>\
         <input id=\"user-email\" name=\"email\" type=\"email\" required maxlength=\"{}\" autocomplete=\"off\" value=\"{}\">\
         <label for=\"user-password\">Password</label>\
         <input id=\"user-password\" name=\"password\" type=\"password\" required minlength=\"{}\" maxlength=\"{}\" \
         autocomplete=\"new-password\" aria-describedby=\"pw-hint\">\
         <p class=\"small\" id=\"pw-hint\">{} to {} characters; stored only as an argon2id hash.</p>\
         <button type=\"submit\">Add user</button></form></section>",
        csrf_field(ctx),
        crate::users::MAX_EMAIL_LEN,
        esc(failed.map_or("", |(_, email)| email)),
        crate::users::PASSWORD_CHARS.start(),
        crate::users::PASSWORD_CHARS.end(),
        crate::users::PASSWORD_CHARS.start(),
        crate::users::PASSWORD_CHARS.end(),
    );
    let status = failed.map_or(200, |(e, _)| e.status().0);
    html(status, layout(ctx, "/console/users", "Users", &body))
}

async fn user_delete_confirm(ctx: &Ctx<'_>, email: &str) -> Response<Full<Bytes>> {
    let user = match ctx.shared.store.user_credential(email).await {
        Ok(Some(c)) => c.user,
        Ok(None) => return html(404, message(ctx, "Not found", "No such user.")),
        Err(e) => return store_error(ctx, &e),
    };
    let body = format!(
        "<div class=\"card narrow\" role=\"alertdialog\" aria-labelledby=\"du-h\" aria-describedby=\"du-d\">\
         <h2 id=\"du-h\">Delete “{}”?</h2>\
         <p id=\"du-d\">They can no longer sign in, and their Console sessions end at once.</p>\
         <form method=\"post\" action=\"/console/users/{}/delete\">{}\
         <button type=\"submit\" class=\"danger\" autofocus>Delete user</button> \
         <a href=\"/console/users\">Cancel</a></form></div>",
        esc(&user.email),
        url_encode(&user.email),
        csrf_field(ctx)
    );
    html(200, layout(ctx, "/console/users", "Delete user", &body))
}

fn models_page(ctx: &Ctx<'_>) -> Response<Full<Bytes>> {
    let snap = ctx.shared.live.load();
    let q = ctx.query.get("q").cloned().unwrap_or_default();
    let status = ctx.query.get("status").cloned().unwrap_or_default();
    let chosen = data::provider_list(ctx);
    // Server-side filtering (works without JavaScript); the script filters as you type.
    let models = data::models(&snap, &q, &chosen, &status);
    let mut provs = String::new();
    for p in &snap.providers {
        let sel = if chosen.contains(&p.id) {
            " selected"
        } else {
            ""
        };
        let _ = write!(provs, "<option value=\"{0}\"{sel}>{0}</option>", esc(&p.id));
    }
    let mut st = String::new();
    for (v, label) in [
        ("", "Any status"),
        ("enabled", "Enabled"),
        ("disabled", "Disabled"),
    ] {
        let sel = if v == status { " selected" } else { "" };
        let _ = write!(st, "<option value=\"{v}\"{sel}>{label}</option>");
    }
    // Group Snapshots (on unless the form said otherwise): dated versions fold under their model.
    let grouped = !ctx.query.contains_key("grouped") || ctx.query.contains_key("group");
    let groups = data::snapshot_groups(&models);
    let mut rows = String::new();
    for (m, (group, head)) in models.iter().zip(&groups) {
        let s = |f: &str| m.get(f).and_then(Value::as_str).unwrap_or("").to_string();
        let price = |f: &str| {
            m.pointer(&format!("/pricing/{f}"))
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
        };
        let folded = groups.iter().filter(|(g, h)| g == group && !h).count();
        let (attrs, note) = if *head {
            let note = if folded > 0 {
                format!(
                    " <span class=\"small\" data-snapshot-count>+{folded} snapshot{}</span>",
                    if folded == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            };
            (String::new(), note)
        } else {
            let hidden = if grouped { " hidden" } else { "" };
            (
                format!(" data-snapshot-of=\"{}\"{hidden}", esc(group)),
                String::new(),
            )
        };
        let _ = write!(
            rows,
            "<tr data-name=\"{}\" data-provider=\"{}\" data-status=\"{}\"{attrs}>\
             <td><a href=\"/console/models/{}\">{}</a>{note}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{} / {}</td><td><span class=\"badge {}\">{}</span></td></tr>",
            esc(&s("name").to_lowercase()),
            esc(&s("provider")),
            esc(&s("status")),
            url_encode(&s("name")),
            esc(&s("name")),
            esc(&s("provider")),
            m.get("context_window")
                .and_then(Value::as_u64)
                .map_or("—".into(), num),
            usd(price("input_per_mtok")),
            usd(price("output_per_mtok")),
            if s("status") == "enabled" {
                "on"
            } else {
                "off"
            },
            esc(&s("status")),
        );
    }
    let body = format!(
        "<form method=\"get\" action=\"/console/models\" class=\"filters\" id=\"model-filters\">\
         <label for=\"q\">Search</label><input id=\"q\" name=\"q\" type=\"search\" value=\"{}\" placeholder=\"Model name\" autocomplete=\"off\">\
         <label for=\"provider\">Provider</label><select id=\"provider\" name=\"provider\" multiple size=\"{}\">{provs}</select>\
         <label for=\"status\">Status</label><select id=\"status\" name=\"status\">{st}</select>\
         <input type=\"hidden\" name=\"grouped\" value=\"1\">\
         <label class=\"toggle\"><input type=\"checkbox\" id=\"group\" name=\"group\"{group_on}> Group snapshots</label>\
         <button type=\"submit\">Filter</button></form>\
         <p class=\"small\" aria-live=\"polite\" id=\"model-count\">{} models</p>\
         <table id=\"models\"><caption>Model catalog (pricing per 1M tokens, input / output)</caption>\
         <thead><tr><th scope=\"col\">Model name</th><th scope=\"col\">Provider</th><th scope=\"col\">Context window</th>\
         <th scope=\"col\">Pricing / 1M tokens</th><th scope=\"col\">Status</th></tr></thead><tbody>{rows}</tbody></table>",
        esc(&q),
        snap.providers.len().clamp(2, 6),
        if grouped {
            groups.iter().filter(|(_, head)| *head).count()
        } else {
            models.len()
        },
        group_on = if grouped { " checked" } else { "" },
    );
    html(200, layout(ctx, "/console/models", "Model Catalog", &body))
}

fn model_page(ctx: &Ctx<'_>, name: &str) -> Response<Full<Bytes>> {
    let snap = ctx.shared.live.load();
    let Some(m) = data::model_json(&snap, name) else {
        return html(
            404,
            message(ctx, "Not found", "No such model in the catalog."),
        );
    };
    let s = |f: &str| m.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let u = |f: &str| m.get(f).and_then(Value::as_u64).map_or("—".into(), num);
    let price = |f: &str| {
        m.pointer(&format!("/pricing/{f}"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    let caps: Vec<String> = m
        .get("capabilities")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(esc).collect())
        .unwrap_or_default();
    let caps = if caps.is_empty() {
        "chat completions".to_string()
    } else {
        caps.join(", ")
    };
    let body = format!(
        "<dl class=\"detail\"><dt>Model name</dt><dd class=\"mono\">{}</dd>\
         <dt>Provider</dt><dd>{} ({})</dd><dt>Provider model</dt><dd class=\"mono\">{}</dd>\
         <dt>Context window</dt><dd>{} tokens</dd><dt>Max output tokens</dt><dd>{}</dd>\
         <dt>Input price</dt><dd>{} per 1M tokens</dd><dt>Output price</dt><dd>{} per 1M tokens</dd>\
         <dt>Capabilities</dt><dd>{caps}</dd><dt>Status</dt><dd><span class=\"badge {}\">{}</span></dd></dl>\
         <p><a href=\"/console/models\">Back to the catalog</a></p>",
        esc(&s("name")),
        esc(&s("provider")),
        esc(&s("provider_kind")),
        esc(&s("provider_model")),
        u("context_window"),
        u("max_output_tokens"),
        usd(price("input_per_mtok")),
        usd(price("output_per_mtok")),
        if s("status") == "enabled" {
            "on"
        } else {
            "off"
        },
        esc(&s("status")),
    );
    html(200, layout(ctx, "/console/models", name, &body))
}

fn text_of(r: &Value, f: &str) -> String {
    match r.get(f) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "—".into(),
        Some(v) => v.to_string(),
    }
}

/// The request and response content of a record (escaped, JSON pretty-printed), or how to have
/// it recorded when this gateway does not log bodies.
fn log_bodies(r: &Value, logging_on: bool) -> String {
    let fields = [
        (
            "Request",
            "request_body",
            "request_body_truncated",
            "request-body",
        ),
        (
            "Response",
            "response_body",
            "response_body_truncated",
            "response-body",
        ),
    ];
    if !logging_on && fields.iter().all(|(_, f, _, _)| r.get(*f).is_none()) {
        return "<dt>Content</dt><dd class=\"small\" data-field=\"bodies-off\">Not recorded. \
                Set <code>records: { log_bodies: true }</code> in the gateway config to keep each \
                request's and response's content (up to <code>log_body_max_bytes</code> each, \
                default 8 KiB).</dd>"
            .to_string();
    }
    let mut out = String::new();
    for (label, field, cut, data) in fields {
        let Some(text) = r.get(field).and_then(Value::as_str) else {
            let _ = write!(out, "<dt>{label}</dt><dd>—</dd>");
            continue;
        };
        let shown = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| text.to_string());
        let note = if r.get(cut) == Some(&Value::Bool(true)) {
            "<p class=\"small\">Truncated: longer than <code>records.log_body_max_bytes</code>.</p>"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<dt>{label}</dt><dd><pre class=\"body\" data-field=\"{data}\">{}</pre>{note}</dd>",
            esc(&shown)
        );
    }
    out
}

fn log_row(r: &Value, bodies_logged: bool) -> String {
    let t = |f: &str| esc(&text_of(r, f));
    let n = |f: &str| r.get(f).and_then(Value::as_u64).unwrap_or(0);
    let f = |f: &str| r.get(f).and_then(Value::as_f64).unwrap_or(0.0);
    let status = n("status");
    let mut trace = String::new();
    for (label, field) in [
        ("Strategy", "strategy"),
        ("Route", "route"),
        ("Rule", "rule"),
        ("Reason", "reason"),
    ] {
        if r.get(field).is_some_and(|v| !v.is_null()) {
            let _ = write!(trace, "<li>{label}: {}</li>", t(field));
        }
    }
    for a in r
        .get("attempts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = write!(
            trace,
            "<li>Attempt: {} / {} → {} in {:.0} ms{}</li>",
            esc(&text_of(a, "provider")),
            esc(&text_of(a, "model")),
            esc(&text_of(a, "status")),
            a.get("latency_ms").and_then(Value::as_f64).unwrap_or(0.0),
            a.get("error")
                .and_then(Value::as_str)
                .map_or(String::new(), |e| format!(" ({})", esc(e)))
        );
    }
    for s in r
        .get("skipped")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = write!(
            trace,
            "<li>Skipped: {} / {}: {}</li>",
            esc(&text_of(s, "provider")),
            esc(&text_of(s, "model")),
            esc(&text_of(s, "reason"))
        );
    }
    let cls = if (200..300).contains(&status) {
        "on"
    } else {
        "off"
    };
    format!(
        "<li class=\"log\"><details data-request-id=\"{id}\"><summary>\
         <span class=\"mono\">{ts}</span> <span>{key}</span> <span class=\"mono\">{req_model}</span> \
         <span class=\"badge {cls}\">{status}</span> <span>{lat:.0} ms</span> <span>{cost}</span></summary>\
         <dl class=\"detail\"><dt>Request id</dt><dd class=\"mono\">{id}</dd>\
         <dt>API key</dt><dd>{key} <span class=\"mono small\">{key_id}</span></dd>\
         <dt>Requested model</dt><dd class=\"mono\">{req_model}</dd>\
         <dt>Resolved model</dt><dd class=\"mono\" data-field=\"resolved-model\">{model}</dd>\
         <dt>Provider</dt><dd data-field=\"provider\">{provider}</dd>\
         <dt>Tokens in / out</dt><dd data-field=\"tokens\">{inp} / {out}</dd>\
         <dt>Latency</dt><dd data-field=\"latency\">{lat:.0} ms (gateway overhead {ovh:.1} ms)</dd>\
         <dt>Cost</dt><dd data-field=\"cost\">{cost}</dd>\
         <dt>Outcome</dt><dd>{outcome} {error}</dd><dt>Endpoint</dt><dd class=\"mono\">{endpoint}</dd>\
         <dt>Decision trace</dt><dd><ul class=\"trace\">{trace}</ul></dd>{bodies}</dl></details></li>",
        id = t("id"),
        ts = t("ts"),
        key = t("key_name"),
        key_id = t("key_id"),
        req_model = t("requested_model"),
        model = t("resolved_model"),
        provider = t("provider"),
        inp = num(n("input_tokens")),
        out = num(n("output_tokens")),
        lat = f("latency_ms"),
        ovh = f("overhead_ms"),
        cost = usd(f("cost_usd")),
        outcome = t("outcome"),
        error = r
            .get("error")
            .and_then(Value::as_str)
            .map_or(String::new(), |e| format!("({})", esc(e))),
        endpoint = t("endpoint"),
        bodies = log_bodies(r, bodies_logged),
    )
}

async fn logs_page(ctx: &Ctx<'_>) -> Response<Full<Bytes>> {
    let (filter, limit) = data::log_filter(ctx);
    let found = match data::logs(ctx, &filter, limit).await {
        Ok(r) => r,
        Err(e) => return store_error(ctx, &e),
    };
    let records = &found.records;
    let q = |k: &str| esc(ctx.query.get(k).map(String::as_str).unwrap_or(""));
    let since = ctx.query.get("since").cloned().unwrap_or_default();
    let mut since_opts = String::new();
    for (v, label) in [
        ("", "Any time"),
        ("1h", "Last hour"),
        ("24h", "Last 24 hours"),
        ("7d", "Last 7 days"),
        ("30d", "Last 30 days"),
    ] {
        let sel = if v == since { " selected" } else { "" };
        let _ = write!(since_opts, "<option value=\"{v}\"{sel}>{label}</option>");
    }
    let bodies_logged = ctx.shared.live.load().records.log_bodies;
    let rows: String = records.iter().map(|r| log_row(r, bodies_logged)).collect();
    let source = if matches!(ctx.shared.store, crate::store::Store::Redis(_)) {
        "the shared request log (all replicas)"
    } else {
        "this processor's recent requests"
    };
    let body = format!(
        "<form method=\"get\" action=\"/console/logs\" class=\"filters\">\
         <label for=\"f-key\">API key (name or id)</label><input id=\"f-key\" name=\"key\" value=\"{}\">\
         <label for=\"f-model\">Model</label><input id=\"f-model\" name=\"model\" value=\"{}\">\
         <label for=\"f-status\">Status</label><input id=\"f-status\" name=\"status\" inputmode=\"numeric\" value=\"{}\">\
         <label for=\"f-since\">Time range</label><select id=\"f-since\" name=\"since\">{since_opts}</select>\
         <button type=\"submit\">Filter</button></form>\
         <p class=\"small\">{} requests from {source}, newest first. Expand a row for its detail.</p>{partial}\
         <ul class=\"logs\" id=\"logs\">{}</ul>",
        q("key"),
        q("model"),
        q("status"),
        records.len(),
        if rows.is_empty() {
            "<li>No requests match.</li>".to_string()
        } else {
            rows
        },
        partial = if found.complete {
            String::new()
        } else {
            format!(
                "<p class=\"notice\" role=\"status\" id=\"logs-partial\">Searched the newest {} records \
                 only; older ones may match too. Narrow the time range to search further back.</p>",
                num(found.scanned as u64)
            )
        },
    );
    html(200, layout(ctx, "/console/logs", "Request Logs", &body))
}

async fn usage_page(ctx: &Ctx<'_>) -> Response<Full<Bytes>> {
    let (pid, hours) = data::period(ctx);
    let store = &ctx.shared.store;
    let names: HashMap<String, String> = match data::keys(ctx.shared).await {
        Ok(k) => k.into_iter().map(|k| (k.id, k.name)).collect(),
        Err(e) => return store_error(ctx, &e),
    };
    let mut body = period_picker(pid, "/console/usage", "");
    // Over time: spend and requests per bucket, stacked by the chosen dimension.
    let series_by = ctx
        .query
        .get("series")
        .map(String::as_str)
        .unwrap_or("model");
    let by = match series_by {
        "key" => UsageBy::Key,
        "provider" => UsageBy::Provider,
        _ => UsageBy::Model,
    };
    let series_dim = by;
    let buckets = match data::usage_series(store, by, hours).await {
        Ok(b) => b,
        Err(e) => return store_error(ctx, &e),
    };
    let label = |name: &str| match by {
        UsageBy::Key => names.get(name).cloned().unwrap_or_else(|| name.to_string()),
        _ => name.to_string(),
    };
    let mut picker = String::new();
    for (v, text) in [
        ("model", "model"),
        ("provider", "provider"),
        ("key", "API key"),
    ] {
        let sel = if v == by.as_str() { " selected" } else { "" };
        let _ = write!(picker, "<option value=\"{v}\"{sel}>{text}</option>");
    }
    let _ = write!(
        body,
        "<h2>Over time</h2><form method=\"get\" action=\"/console/usage\" class=\"inline\">\
         <input type=\"hidden\" name=\"period\" value=\"{pid}\">\
         <label for=\"series\">Stacked by</label><select id=\"series\" name=\"series\" data-autosubmit>{picker}</select>\
         <noscript><button type=\"submit\">Show</button></noscript></form>{}{}",
        series_chart(
            "Spend over time",
            &buckets,
            data::step_hours(hours),
            &label,
            |r| r.cost_usd,
            usd
        ),
        series_chart(
            "Requests over time",
            &buckets,
            data::step_hours(hours),
            &label,
            |r| r.requests as f64,
            |v| num(v as u64)
        ),
    );
    for (by, title) in [
        (UsageBy::Key, "By API key"),
        (UsageBy::Model, "By model"),
        (UsageBy::Provider, "By provider"),
    ] {
        // The over-time dimension's totals come from its buckets: one read less.
        let rows = if by == series_dim {
            crate::store::usage_total(&buckets)
        } else {
            match data::usage(store, by, hours).await {
                Ok(r) => r,
                Err(e) => return store_error(ctx, &e),
            }
        };
        let mut tr = String::new();
        for r in &rows {
            let label = match (by, names.get(&r.name)) {
                (UsageBy::Key, Some(n)) => format!(
                    "{} <span class=\"mono small\">{}</span>",
                    esc(n),
                    esc(&r.name)
                ),
                _ => esc(&r.name),
            };
            let _ = write!(
                tr,
                "<tr><td>{label}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                num(r.requests),
                num(r.input_tokens),
                num(r.output_tokens),
                usd(r.cost_usd),
                num(r.errors)
            );
        }
        if tr.is_empty() {
            tr = "<tr><td colspan=\"6\">No usage in this period.</td></tr>".into();
        }
        let label_of = |r: &crate::store::UsageRow| match by {
            UsageBy::Key => names
                .get(&r.name)
                .cloned()
                .unwrap_or_else(|| r.name.clone()),
            _ => r.name.clone(),
        };
        let _ = write!(body, "<h2>{title}</h2>");
        body.push_str(&usage_chart(title, &rows, label_of));
        let _ = write!(
            body,
            "<table><caption>{title}</caption><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Requests</th>\
             <th scope=\"col\">Input tokens</th><th scope=\"col\">Output tokens</th><th scope=\"col\">Spend</th>\
             <th scope=\"col\">Errors</th></tr></thead><tbody>{tr}</tbody></table>"
        );
    }
    html(200, layout(ctx, "/console/usage", "Usage", &body))
}

/// Spend and request volume per row as horizontal bars (inline SVG: no script, no inline
/// styles, so the strict CSP holds); the table below carries the same numbers for screen readers.
fn usage_chart(
    title: &str,
    rows: &[crate::store::UsageRow],
    label_of: impl Fn(&crate::store::UsageRow) -> String,
) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let max_cost = rows.iter().map(|r| r.cost_usd).fold(0.0_f64, f64::max);
    let max_req = rows.iter().map(|r| r.requests).max().unwrap_or(0).max(1);
    let (row_h, label_w, bar_w) = (34u32, 260u32, 360u32);
    let height = row_h * rows.len() as u32 + 24;
    let mut svg = format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {} {height}\" width=\"100%\" role=\"img\" \
         aria-label=\"{} — spend and requests per row; the table below has the numbers\">\
         <text x=\"{label_w}\" y=\"14\" class=\"legend\">spend</text>\
         <text x=\"{}\" y=\"14\" class=\"legend\">requests</text>",
        label_w + 2 * bar_w + 140,
        esc(title),
        label_w + bar_w + 70,
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 24 + row_h * i as u32;
        let cost_w = if max_cost > 0.0 {
            (r.cost_usd / max_cost * f64::from(bar_w)).round() as u32
        } else {
            0
        };
        let req_w = (r.requests as f64 / max_req as f64 * f64::from(bar_w)).round() as u32;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\">{}</text>\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{cost_w}\" height=\"12\" class=\"bar-cost\"/>\
             <text x=\"{}\" y=\"{}\" class=\"small\">{}</text>\
             <rect x=\"{}\" y=\"{y}\" width=\"{req_w}\" height=\"12\" class=\"bar-req\"/>\
             <text x=\"{}\" y=\"{}\" class=\"small\">{}</text>",
            y + 11,
            esc(&label_of(r)),
            label_w + cost_w + 6,
            y + 11,
            usd(r.cost_usd),
            label_w + bar_w + 70,
            label_w + bar_w + 70 + req_w + 6,
            y + 11,
            num(r.requests),
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// Series beyond this many are summed as "other", so a chart stays readable.
const SERIES_SHOWN: usize = 5;

/// One value per bucket as stacked columns, a color per name (the top `SERIES_SHOWN` over the
/// period, the rest as "other"), in inline SVG (no script, no inline styles: the strict CSP holds).
/// A table of the same numbers follows for screen readers and exact values.
fn series_chart(
    title: &str,
    buckets: &[crate::store::UsageBucket],
    step_hours: u64,
    label_of: &dyn Fn(&str) -> String,
    value: fn(&crate::store::UsageRow) -> f64,
    fmt: fn(f64) -> String,
) -> String {
    // The names with the most over the whole period get their own color.
    let mut totals: HashMap<&str, f64> = HashMap::new();
    for r in buckets.iter().flat_map(|b| &b.rows) {
        *totals.entry(r.name.as_str()).or_default() += value(r);
    }
    let mut top: Vec<(&str, f64)> = totals.into_iter().filter(|(_, v)| *v > 0.0).collect();
    if top.is_empty() {
        return format!(
            "<p class=\"small\">{}: no usage in this period.</p>",
            esc(title)
        );
    }
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<&str> = top.iter().take(SERIES_SHOWN).map(|(n, _)| *n).collect();
    let has_other = top.len() > SERIES_SHOWN;
    // Per bucket: the shown names' values, then "other".
    let columns: Vec<Vec<f64>> = buckets
        .iter()
        .map(|b| {
            let mut col = vec![0.0; shown.len() + 1];
            for r in &b.rows {
                let i = shown
                    .iter()
                    .position(|n| *n == r.name)
                    .unwrap_or(shown.len());
                col[i] += value(r);
            }
            col
        })
        .collect();
    let max = columns
        .iter()
        .map(|c| c.iter().sum::<f64>())
        .fold(0.0_f64, f64::max);
    let (left, top_pad, plot_w, plot_h) = (70.0, 10.0, 860.0, 160.0);
    let slot = plot_w / buckets.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let mut svg = format!(
        "<figure class=\"chart\"><figcaption>{t}</figcaption><svg viewBox=\"0 0 940 {h}\" width=\"100%\" \
         role=\"img\" aria-label=\"{t}: stacked columns per {step}; the table below has the numbers\">\
         <text x=\"0\" y=\"{y_max}\" class=\"small\">{max}</text><text x=\"0\" y=\"{y0}\" class=\"small\">0</text>\
         <line x1=\"{left}\" y1=\"{y0}\" x2=\"{x_end}\" y2=\"{y0}\" class=\"axis\"/>",
        t = esc(title),
        h = top_pad + plot_h + 60.0,
        step = if step_hours == 1 {
            "hour".to_string()
        } else if step_hours == 24 {
            "day".to_string()
        } else {
            format!("{step_hours} hours")
        },
        y_max = top_pad + 10.0,
        max = esc(&fmt(max)),
        y0 = top_pad + plot_h,
        x_end = left + plot_w,
    );
    let label_every = (buckets.len() / 8).max(1);
    for (i, (b, col)) in buckets.iter().zip(&columns).enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = top_pad + plot_h;
        for (s, v) in col.iter().enumerate() {
            if *v <= 0.0 || max <= 0.0 {
                continue;
            }
            let h = v / max * plot_h;
            y -= h;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" class=\"s{s}\"/>"
            );
        }
        if i % label_every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{}\" class=\"small\">{}</text>",
                top_pad + plot_h + 16.0,
                esc(&bucket_label(b.start_ms, step_hours))
            );
        }
    }
    // Legend.
    let mut names: Vec<String> = shown.iter().map(|n| label_of(n)).collect();
    if has_other {
        names.push("other".into());
    }
    let mut x = left;
    for (s, n) in names.iter().enumerate() {
        let y = top_pad + plot_h + 40.0;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{}\" width=\"10\" height=\"10\" class=\"s{s}\"/>\
             <text x=\"{:.1}\" y=\"{y}\" class=\"legend\">{}</text>",
            y - 9.0,
            x + 14.0,
            esc(n)
        );
        x += 24.0 + 7.0 * n.chars().count().min(28) as f64;
    }
    svg.push_str("</svg></figure>");
    // The same numbers as a table, folded away.
    let mut head = String::new();
    for n in &names {
        let _ = write!(head, "<th scope=\"col\">{}</th>", esc(n));
    }
    let mut rows = String::new();
    for (b, col) in buckets.iter().zip(&columns) {
        if col.iter().all(|v| *v == 0.0) {
            continue;
        }
        let _ = write!(
            rows,
            "<tr><th scope=\"row\">{}</th>",
            esc(&bucket_label(b.start_ms, step_hours))
        );
        for v in col.iter().take(names.len()) {
            let _ = write!(rows, "<td class=\"num\">{}</td>", esc(&fmt(*v)));
        }
        rows.push_str("</tr>");
    }
    let _ = write!(
        svg,
        "<details><summary>{} as a table</summary><table><thead><tr><th scope=\"col\">From</th>{head}</tr></thead>\
         <tbody>{rows}</tbody></table></details>",
        esc(title)
    );
    svg
}

/// A bucket's start, as short as its size allows (UTC).
fn bucket_label(ms: u64, step_hours: u64) -> String {
    let full = when(ms); // "YYYY-MM-DD HH:MM UTC"
    match step_hours {
        1 => full.get(11..16).unwrap_or(&full).to_string(),
        24 => full.get(5..10).unwrap_or(&full).to_string(),
        _ => full.get(5..13).map_or(full.clone(), |s| format!("{s}h")),
    }
}

fn playground_page(
    ctx: &Ctx<'_>,
    form: Option<&HashMap<String, String>>,
    out: Option<Result<super::playground::Reply, String>>,
) -> String {
    let snap = ctx.shared.live.load();
    let prev = |k: &str| form.and_then(|f| f.get(k)).cloned().unwrap_or_default();
    let chosen = prev("model");
    let mut opts = String::new();
    for name in &snap.model_order {
        if snap.models.get(name).is_some_and(|m| m.enabled) {
            let sel = if *name == chosen { " selected" } else { "" };
            let _ = write!(opts, "<option{sel}>{}</option>", esc(name));
        }
    }
    let result = match out {
        None => String::new(),
        Some(Err(e)) => format!("<p class=\"error\" role=\"alert\">{}</p>", esc(&e)),
        Some(Ok(r)) => {
            let text = r
                .content()
                .or(r.error())
                .map_or_else(|| r.body.to_string(), str::to_string);
            let logs_link = r.request_id.as_deref().map_or(String::new(), |id| {
                format!(
                    " · <a href=\"/console/logs#{}\">See it in Request Logs</a> (request <span class=\"mono\">{}</span>)",
                    esc(id),
                    esc(id)
                )
            });
            format!(
                "<section class=\"card\" aria-live=\"polite\" aria-labelledby=\"resp-h\"><h2 id=\"resp-h\">Response</h2>\
                 <p>Status <span class=\"badge {}\" data-testid=\"pg-status\">{}</span> · model <span class=\"mono\">{}</span> · {} ms{logs_link}</p>\
                 <pre class=\"answer\" data-testid=\"pg-answer\">{}</pre></section>",
                if (200..300).contains(&r.status) {
                    "on"
                } else {
                    "off"
                },
                r.status,
                esc(r.body.get("model").and_then(Value::as_str).unwrap_or("—")),
                r.latency_ms,
                esc(&text)
            )
        }
    };
    let msg = prev("message");
    let body = format!(
        "<p>Sends one chat completion through the proxy at <span class=\"mono\">{}</span>, \
         as a client would: routing, limits and logging all apply.</p>\
         <form method=\"post\" action=\"/console/playground\" class=\"card\">{}\
         <label for=\"pg-key\">API key</label>\
         <input id=\"pg-key\" name=\"key\" type=\"password\" autocomplete=\"off\" required placeholder=\"sk-…\">\
         <label for=\"pg-model\">Model</label><select id=\"pg-model\" name=\"model\">{opts}</select>\
         <label for=\"pg-message\">Message</label>\
         <textarea id=\"pg-message\" name=\"message\" rows=\"4\" required>{}</textarea>\
         <button type=\"submit\">Send</button></form>{result}",
        esc(&super::proxy_endpoint(ctx.shared)),
        csrf_field(ctx),
        if msg.is_empty() {
            "Explain the concept of AI routing in one sentence.".to_string()
        } else {
            esc(&msg)
        }
    );
    layout(ctx, "/console/playground", "Playground", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_formatting() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(num(1234567), "1,234,567");
        assert_eq!(num(12), "12");
        assert_eq!(usd(0.0000125), "$0.000013");
        assert_eq!(usd(3.5), "$3.50");
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
    }

    #[test]
    fn logged_bodies_are_escaped_pretty_printed_and_marked_when_cut() {
        let r = serde_json::json!({
            "request_body": r#"{"messages":[{"content":"<script>alert(1)</script>"}]}"#,
            "response_body": "data: {\"x\":1}\n\ndata: [DONE]\n\n",
            "response_body_truncated": true,
        });
        let html = log_bodies(&r, false);
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("{\n  &quot;messages&quot;: ["), "{html}");
        assert!(
            html.contains("data: [DONE]") && html.contains("Truncated"),
            "{html}"
        );
        assert_eq!(html.matches("Truncated").count(), 1);
        let none = serde_json::json!({});
        assert!(log_bodies(&none, false).contains("log_bodies: true"));
        assert!(!log_bodies(&none, true).contains("log_bodies: true"));
    }

    #[test]
    fn login_page_has_labelled_email_password_and_token_fields() {
        let state = LoginState {
            error: Some("<bad>"),
            email: "a\"@b",
            token_open: false,
        };
        let p = login(true, &state);
        for label in ["email", "password", "token"] {
            assert!(p.contains(&format!("<label for=\"{label}\">")), "{label}");
        }
        assert!(p.contains("&lt;bad&gt;") && p.contains("value=\"a&quot;@b\""));
        // The email form comes first; the token form is folded away unless its attempt failed.
        assert!(p.find("id=\"email\"") < p.find("id=\"token\""));
        assert!(p.contains("<details class=\"card narrow\"><summary>"));
        let token_failed = LoginState {
            token_open: true,
            ..LoginState::default()
        };
        assert!(login(true, &token_failed).contains("<details class=\"card narrow\" open>"));
        assert!(!login(false, &LoginState::default()).contains("<form"));
    }
}
