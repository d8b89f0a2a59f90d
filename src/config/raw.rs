//! The config file as written: plain serde structs with `deny_unknown_fields`, so a typo is an
//! error that names the field instead of a setting silently ignored. Nothing here is validated;
//! `Snapshot::build` does that once.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub listen: RawListen,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub records: RawRecords,
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    #[serde(default)]
    pub models: Vec<RawModel>,
    #[serde(default)]
    pub model_groups: Vec<RawGroup>,
    #[serde(default)]
    pub keys: Vec<RawKey>,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub telemetry: Option<crate::telemetry::RawTelemetry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// Consecutive failed attempts that put a backend in cooldown (default 3).
    pub consecutive_failures: Option<u32>,
    /// How long a backend is skipped before a probe request (default 30 s).
    pub cooldown_ms: Option<u64>,
    /// Share of failed attempts over the last `error_rate_window` that cools a backend
    /// (default 0.5; above 1 turns the rule off).
    pub error_rate: Option<f64>,
    /// Number of recent attempts the error rate is computed over (default 20, at most 64).
    pub error_rate_window: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub proxy: Option<String>,
    pub extproc: Option<String>,
    pub admin: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest request body accepted; bigger bodies get 413.
    pub max_body_bytes: Option<u64>,
    /// Overall time budget for one request across all attempts.
    pub request_timeout_ms: Option<u64>,
    /// Per-attempt timeout when a model entry sets none.
    pub default_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecords {
    /// JSON-lines file every request record is appended to.
    pub path: Option<String>,
    /// How many recent records the processor keeps in memory.
    pub ring: Option<usize>,
    /// Keep the client's request body and the response it received in each record (default
    /// false: prompts and completions often hold personal data, and bodies grow every record).
    pub log_bodies: Option<bool>,
    /// Cap per body when `log_bodies` is on (default 8 KiB); longer bodies are cut and marked.
    pub log_body_max_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub id: String,
    pub kind: String,
    pub base_url: String,
    pub secret_key_ref: Option<RawSecretRef>,
    /// `max_tokens` injected for providers that require it (Anthropic) when the client sent none
    /// and the catalog has no `max_output_tokens` for the model.
    pub default_max_tokens: Option<u64>,
    /// `azure_openai`: the `api-version` query parameter (default 2024-10-21).
    pub api_version: Option<String>,
    /// OpenAI-style providers: whether the gateway may add `stream_options.include_usage` to
    /// count a stream's tokens (default true). Mistral rejects the field (and reports usage on
    /// its last chunk anyway): set false there.
    pub stream_options: Option<bool>,
    /// `bedrock`: the AWS region signed into requests (default: from the base URL's host).
    pub region: Option<String>,
    /// `bedrock`: the access key id (`secret_key_ref` holds the secret access key).
    pub access_key_id_ref: Option<RawSecretRef>,
    /// `bedrock`: an optional session token for temporary credentials.
    pub session_token_ref: Option<RawSecretRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretRef {
    pub env: Option<String>,
    pub file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub name: String,
    pub provider: String,
    /// The provider's own identifier, when it differs from `name`.
    pub provider_model: Option<String>,
    pub context_window: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub pricing: Option<RawPricing>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPricing {
    #[serde(default)]
    pub input_per_mtok: f64,
    #[serde(default)]
    pub output_per_mtok: f64,
    /// Image models: USD per image, keyed `SIZE/QUALITY` (e.g. `1024x1024/hd`), `SIZE`, or
    /// `default`; the most specific key wins.
    pub per_image: Option<std::collections::BTreeMap<String, f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: String,
    pub strategy: Option<String>,
    #[serde(default)]
    pub session_affinity: bool,
    pub budget_per_request_usd: Option<f64>,
    /// For `intelligent`: cost | performance | intelligence.
    pub axis: Option<String>,
    #[serde(default)]
    pub models: Vec<RawGroupMember>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroupMember {
    pub model: String,
    /// Optional: pin the member to a provider (a model id the catalog may not list).
    pub provider: Option<String>,
    pub timeout_ms: Option<u64>,
    pub weight: Option<u32>,
    pub tag: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: String,
    pub hash: String,
    pub rate_limit: Option<RawRateLimit>,
    /// Models (or group names) the key may use; absent = all.
    pub allowed_models: Option<Vec<String>>,
    pub routing: Option<RawRouting>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    #[serde(default)]
    pub total_tokens_per_hour: u64,
    #[serde(default)]
    pub input_tokens_per_hour: u64,
    #[serde(default)]
    pub output_tokens_per_hour: u64,
    /// Spend limits in USD per UTC day / calendar month (0 = off).
    #[serde(default)]
    pub daily_usd: f64,
    #[serde(default)]
    pub monthly_usd: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    #[serde(default)]
    pub active: bool,
    pub strategy: Option<String>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Rule conditions are kept as written; the rules engine interprets them.
    #[serde(default)]
    pub rules: Vec<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    pub model: String,
    pub priority: Option<u32>,
    pub weight: Option<u32>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub redis_url: Option<String>,
}

/// Parse YAML into the raw config; serde's message already names the line and field.
pub fn parse(text: &str) -> Result<RawConfig, serde_yaml::Error> {
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    serde_yaml::from_str(text)
}
