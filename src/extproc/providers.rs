//! How each provider kind is addressed and authenticated: the upstream path, authority and
//! credentials of one attempt. One place per kind, so the translators stay pure and the
//! exchange code stays kind-agnostic.

use super::Mutation;
use crate::config::{Provider, ProviderKind};
use crate::translate::UpstreamRequest;

/// Credential headers any kind may set. Header edits on one attempt persist into Envoy's copy
/// for the next, so every attempt clears the others' before setting its own.
const CREDENTIAL_HEADERS: [&str; 4] =
    ["authorization", "x-api-key", "api-key", "anthropic-version"];

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
        _ => format!("{prefix}{}", up.path_suffix),
    };
    m.set(":path", path);
    m.set(":authority", provider.endpoint.authority());
    m.set("content-type", "application/json");
    m.set("content-length", up.body.len().to_string());
    let secret = provider.secret.expose();
    let mut credentials: Vec<(&str, String)> = Vec::with_capacity(2);
    match provider.kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible | ProviderKind::Cohere => {
            if !secret.is_empty() {
                credentials.push(("authorization", format!("Bearer {secret}")));
            }
        }
        ProviderKind::AzureOpenAi => credentials.push(("api-key", secret.to_string())),
        ProviderKind::Anthropic => {
            credentials.push(("x-api-key", secret.to_string()));
            credentials.push(("anthropic-version", "2023-06-01".to_string()));
        }
        ProviderKind::Gemini | ProviderKind::Vertex | ProviderKind::Bedrock => {}
    }
    // Removing a header we also set would race with the set (Envoy applies removals last).
    for h in CREDENTIAL_HEADERS {
        if !credentials.iter().any(|(name, _)| *name == h) {
            m.remove(h);
        }
    }
    for (name, value) in credentials {
        m.set(name, value);
    }
}
