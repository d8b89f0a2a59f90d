//! How each provider kind is addressed and authenticated: the upstream path, authority and
//! credentials of one attempt. One place per kind, so the translators stay pure and the
//! exchange code stays kind-agnostic.

use super::Mutation;
use crate::config::{Provider, ProviderKind, is_vertex_claude};
use crate::translate::UpstreamRequest;

/// Credential headers any kind may set. Header edits on one attempt persist into Envoy's copy
/// for the next, so every attempt clears the others' before setting its own.
const CREDENTIAL_HEADERS: [&str; 4] =
    ["authorization", "x-api-key", "api-key", "anthropic-version"];

/// Provider-specific body changes after translation: providers that refuse `stream_options`,
/// and Vertex, which serves Anthropic's Messages format with the model in the path instead of
/// the body and its own `anthropic_version`.
pub fn adapt(provider: &Provider, model: &str, up: &mut UpstreamRequest) {
    if up.stream && !provider.options.stream_options {
        // The provider rejects `stream_options` (and reports a stream's usage on its own,
        // which the stream translator reads and forwards to clients that asked for it).
        if let Ok(serde_json::Value::Object(mut body)) = serde_json::from_slice(&up.body)
            && body.remove("stream_options").is_some()
            && let Ok(bytes) = serde_json::to_vec(&body)
        {
            up.body = bytes;
            up.usage_injected = false;
        }
        return;
    }
    if provider.kind != ProviderKind::Vertex || !is_vertex_claude(model) {
        return;
    }
    if let Ok(serde_json::Value::Object(mut body)) = serde_json::from_slice(&up.body) {
        body.remove("model");
        body.insert("anthropic_version".into(), VERTEX_ANTHROPIC_VERSION.into());
        if let Ok(bytes) = serde_json::to_vec(&body) {
            up.body = bytes;
        }
    }
    let method = if up.stream {
        "streamRawPredict"
    } else {
        "rawPredict"
    };
    up.path_suffix = format!("/models/{model}:{method}");
}

const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Sets `:path`, `:authority`, content headers and credentials for sending `up` to `provider`.
pub fn address(provider: &Provider, model: &str, up: &UpstreamRequest, m: &mut Mutation) {
    let prefix = &provider.endpoint.prefix;
    let path = match provider.kind {
        // Azure names the deployment in the path; the catalog's provider model is the
        // deployment name. The body's `model` is ignored by Azure.
        ProviderKind::AzureOpenAi => format!(
            "{prefix}/deployments/{}{}?api-version={}",
            model, up.path_suffix, provider.options.api_version
        ),
        // The base URL names project and location; models live under their publisher.
        ProviderKind::Vertex => {
            let publisher = if is_vertex_claude(model) {
                "anthropic"
            } else {
                "google"
            };
            format!("{prefix}/publishers/{publisher}{}", up.path_suffix)
        }
        _ => format!("{prefix}{}", up.path_suffix),
    };
    m.set(":path", path.clone());
    m.set(":authority", provider.endpoint.authority());
    m.set("content-type", "application/json");
    m.set("content-length", up.body.len().to_string());
    let secret = provider.secret.expose();
    let mut credentials: Vec<(String, String)> = Vec::with_capacity(2);
    match provider.kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible | ProviderKind::Cohere => {
            if !secret.is_empty() {
                credentials.push(("authorization".into(), format!("Bearer {secret}")));
            }
        }
        ProviderKind::AzureOpenAi => credentials.push(("api-key".into(), secret.to_string())),
        ProviderKind::Anthropic => {
            credentials.push(("x-api-key".into(), secret.to_string()));
            credentials.push(("anthropic-version".into(), "2023-06-01".to_string()));
        }
        ProviderKind::Gemini => credentials.push(("x-goog-api-key".into(), secret.to_string())),
        // An OAuth access token (e.g. from `gcloud auth print-access-token`).
        ProviderKind::Vertex => {
            credentials.push(("authorization".into(), format!("Bearer {secret}")))
        }
        ProviderKind::Bedrock => {
            // SigV4 covers host, date and the body hash; any other header may still change.
            if let Some(aws) = &provider.options.aws {
                let creds = crate::sigv4::Credentials {
                    access_key_id: aws.access_key_id.expose().to_string(),
                    secret_access_key: secret.to_string(),
                    session_token: aws.session_token.as_ref().map(|t| t.expose().to_string()),
                };
                let (path, query) = path.split_once('?').unwrap_or((&path, ""));
                let signed = crate::sigv4::sign(
                    &creds,
                    &aws.region,
                    "bedrock",
                    "POST",
                    &provider.endpoint.authority(),
                    path,
                    query,
                    &up.body,
                    time::OffsetDateTime::now_utc(),
                );
                credentials.extend(signed);
            }
        }
    }
    // Removing a header we also set would race with the set (Envoy applies removals last).
    for h in CREDENTIAL_HEADERS {
        if !credentials.iter().any(|(name, _)| *name == h) {
            m.remove(h);
        }
    }
    for (name, value) in credentials {
        m.set(&name, value);
    }
}
