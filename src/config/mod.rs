//! Configuration: the YAML file is parsed into `raw` structs, validated once into an immutable
//! `Snapshot` (providers, catalog, groups, hashed keys, precomputed Envoy chains), and published
//! through one `ArcSwap` so every request sees one consistent version. A file that fails
//! validation never replaces the running snapshot.

pub mod raw;

use crate::auth::{KeyHash, Principal};
use raw::RawConfig;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const DEFAULT_PROXY: &str = "127.0.0.1:8080";
pub const DEFAULT_EXTPROC: &str = "127.0.0.1:50051";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8081";
const DEFAULT_MAX_BODY: u64 = 4 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS: u64 = 60_000;
const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 300_000;
const DEFAULT_MAX_TOKENS: u64 = 4096;
/// Per body kept in a record: a typical chat turn fits; 1k streams in flight hold at most
/// 16 MiB of captures.
pub const DEFAULT_LOG_BODY_MAX: usize = 8 * 1024;
/// Largest per-body cap accepted: past it, the ring's byte budget holds only a handful of records.
const MAX_LOG_BODY_MAX: usize = 1024 * 1024;
/// Longest fallback chain Envoy is given; longer groups are cut (and linted).
pub const MAX_CHAIN: usize = 6;

// === Errors ===

/// One validation problem: where it is in the file, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.path, self.message, self.fix)
    }
}

/// Every problem found in one file, reported together.
#[derive(Debug)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {e}", self.file.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

fn err(path: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
        fix: fix.into(),
    }
}

// === Secrets ===

/// A provider credential. `Debug` never shows it, so it cannot leak through logs.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

// === Snapshot ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    OpenAiCompatible,
    AzureOpenAi,
    Anthropic,
    Gemini,
    Vertex,
    Bedrock,
    Cohere,
}

impl ProviderKind {
    /// The wire format spoken to this provider for `model` (Vertex serves Gemini and Claude
    /// models, each in its own format).
    pub fn wire(self, model: &str) -> crate::translate::Wire {
        use crate::translate::Wire;
        match self {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible | ProviderKind::AzureOpenAi => {
                Wire::OpenAi
            }
            ProviderKind::Anthropic => Wire::Anthropic,
            ProviderKind::Gemini => Wire::Gemini,
            ProviderKind::Vertex if is_vertex_claude(model) => Wire::Anthropic,
            ProviderKind::Vertex => Wire::Gemini,
            ProviderKind::Bedrock => Wire::Bedrock,
            ProviderKind::Cohere => Wire::Cohere,
        }
    }
}

/// Vertex AI serves Anthropic's models (publisher `anthropic`) beside Google's.
pub fn is_vertex_claude(model: &str) -> bool {
    model.starts_with("claude")
}

/// Settings only some provider kinds use.
#[derive(Debug, Default)]
pub struct ProviderOptions {
    /// `azure_openai`: the `api-version` query parameter.
    pub api_version: String,
    /// OpenAI-style providers: the gateway may add `stream_options` to a client's stream.
    pub stream_options: bool,
    /// `bedrock`: SigV4 credentials (the secret access key is `Provider::secret`).
    pub aws: Option<AwsAuth>,
}

#[derive(Debug)]
pub struct AwsAuth {
    pub region: String,
    pub access_key_id: Secret,
    pub session_token: Option<Secret>,
}

/// Azure OpenAI's GA data-plane API version used when the config names none.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// Where a provider lives, split once so Envoy clusters and per-attempt paths need no parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash, e.g. `/v1`.
    pub prefix: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "base_url '{url}' must start with http:// or https://"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("bad port in base_url '{url}'"))?;
                (h, port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(format!("base_url '{url}' has no host"));
        }
        Ok(Endpoint {
            tls,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// The `:authority` sent upstream (port only when not the scheme's default).
    pub fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug)]
pub struct Provider {
    pub id: String,
    pub kind: ProviderKind,
    pub endpoint: Endpoint,
    pub secret: Secret,
    pub default_max_tokens: u64,
    pub options: ProviderOptions,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Pricing {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// USD per generated image by `SIZE/QUALITY`, `SIZE` or `default` (shared, cheap to clone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_image: Option<std::sync::Arc<std::collections::BTreeMap<String, f64>>>,
}

impl Pricing {
    /// The price of an image order; 0 when the catalog has no matching entry.
    pub fn image_cost(&self, order: &crate::translate::images::ImageOrder) -> f64 {
        let Some(table) = &self.per_image else {
            return 0.0;
        };
        let exact = format!("{}/{}", order.size, order.quality);
        let each = [exact.as_str(), order.size.as_str(), "default"]
            .iter()
            .find_map(|k| table.get(*k))
            .copied()
            .unwrap_or(0.0);
        each * order.n as f64
    }

    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_per_mtok + output_tokens as f64 * self.output_per_mtok)
            / 1_000_000.0
    }
}

#[derive(Debug)]
pub struct Model {
    pub name: String,
    pub provider: usize,
    pub provider_model: String,
    pub context_window: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub pricing: Pricing,
    pub capabilities: Vec<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    Fallback,
    Weighted,
    /// Cheapest estimated cost for this request (catalog pricing).
    LowestCost,
    /// Cheapest whose estimated cost fits `budget_per_request_usd`; else the most capable.
    Cost {
        budget_usd: f64,
    },
    /// Lowest live EWMA time to first token.
    LeastLatency,
    /// By prompt complexity: simple prompts to the cheap/fast model, complex ones to the most
    /// capable (capability inferred from pricing).
    Intelligent {
        axis: Axis,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Cost,
    Performance,
    Intelligence,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Fallback => "fallback",
            Strategy::Weighted => "weighted",
            Strategy::LowestCost => "lowest_cost",
            Strategy::Cost { .. } => "cost",
            Strategy::LeastLatency => "least_latency",
            Strategy::Intelligent { .. } => "intelligent",
        }
    }
}

/// One backend a request may be sent to: a provider and the model id it understands.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: usize,
    pub provider_model: String,
    pub pricing: Pricing,
    pub max_output_tokens: Option<u64>,
    pub context_window: Option<u64>,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub target: Target,
    pub timeout_ms: u64,
    pub weight: u32,
    pub tag: Option<String>,
}

/// A set of members chosen by a strategy: a model group, or a key's routes.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub strategy: Strategy,
    pub session_affinity: bool,
    pub members: Vec<Member>,
}

impl Group {
    /// Every order in which the strategy may try the members. Routing picks one of these; the
    /// Envoy bootstrap gets one cluster chain per distinct provider sequence among them, so the
    /// two can never disagree.
    pub fn orders(&self) -> Vec<Vec<usize>> {
        let enabled: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].target.enabled)
            .collect();
        match self.strategy {
            Strategy::Fallback => vec![enabled],
            // The chosen member first, the rest in config order as fallbacks.
            Strategy::Weighted
            | Strategy::LowestCost
            | Strategy::Cost { .. }
            | Strategy::LeastLatency
            | Strategy::Intelligent { .. } => enabled
                .iter()
                .map(|&first| {
                    let mut order = vec![first];
                    order.extend(enabled.iter().copied().filter(|&i| i != first));
                    order
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: u64,
    pub request_timeout_ms: u64,
    pub default_timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub proxy: String,
    pub extproc: String,
    pub admin: String,
}

#[derive(Debug, Clone)]
pub struct Records {
    pub path: PathBuf,
    pub ring: usize,
    pub log_bodies: bool,
    pub log_body_max_bytes: usize,
}

impl Records {
    /// How many bytes of each body a record keeps; `None` when bodies are not logged.
    pub fn body_cap(&self) -> Option<usize> {
        self.log_bodies.then_some(self.log_body_max_bytes)
    }
}

/// A validated, immutable configuration. Built once per file version; shared by `Arc`.
#[derive(Debug)]
pub struct Snapshot {
    pub listen: Listen,
    pub limits: Limits,
    pub records: Records,
    pub providers: Vec<Provider>,
    pub models: HashMap<String, Model>,
    /// Catalog order, for listings.
    pub model_order: Vec<String>,
    pub groups: HashMap<String, Group>,
    pub keys: HashMap<KeyHash, Arc<Principal>>,
    pub redis_url: Option<String>,
    pub health: crate::health::Policy,
    pub warnings: Vec<String>,
    /// Secret files the providers read (`secret_key_ref: { file }`): a change to one reloads
    /// the config like a change to the file itself, so rotated credentials (Kubernetes secret
    /// mounts, a refreshed Vertex access token) take effect without a restart.
    pub secret_files: Vec<PathBuf>,
    /// OpenTelemetry export (`None` = off). Read at start; a change needs a restart.
    pub telemetry: Option<crate::telemetry::TelemetryConfig>,
    /// Dynamic keys' routing validated against this snapshot, by YAML text.
    routing_cache: RoutingCache,
}

/// The store hands back a dynamic key's routing YAML on every request; parsing and validating
/// it each time cost more than the rest of the request. Kept per snapshot, so a config reload
/// revalidates everything; a changed YAML is a new entry.
#[derive(Debug, Default)]
struct RoutingCache(std::sync::Mutex<HashMap<String, (String, RoutingResult)>>);

/// What a routing YAML validated to against one snapshot.
type RoutingResult = Result<KeyRouting, Vec<ConfigError>>;

/// Bounds the cache; past it, the cache starts over.
const ROUTING_CACHE_MAX: usize = 4096;

impl Snapshot {
    pub fn provider_index(&self, id: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.id == id)
    }

    pub fn from_file(path: &Path) -> Result<Snapshot, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: path.to_path_buf(),
            errors: vec![err(
                "",
                format!("cannot read file: {e}"),
                "check the path and permissions",
            )],
        })?;
        Self::from_yaml(&text, path)
    }

    pub fn from_yaml(text: &str, file: &Path) -> Result<Snapshot, ConfigErrors> {
        let raw = raw::parse(text).map_err(|e| ConfigErrors {
            file: file.to_path_buf(),
            errors: vec![yaml_error(&e)],
        })?;
        Self::build(raw, file)
    }

    /// Validate everything, collecting all problems, then precompute lookup tables.
    pub fn build(raw: RawConfig, file: &Path) -> Result<Snapshot, ConfigErrors> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let base_dir = file.parent().unwrap_or(Path::new("."));

        let listen = Listen {
            proxy: raw.listen.proxy.unwrap_or_else(|| DEFAULT_PROXY.into()),
            extproc: raw.listen.extproc.unwrap_or_else(|| DEFAULT_EXTPROC.into()),
            admin: raw.listen.admin.unwrap_or_else(|| DEFAULT_ADMIN.into()),
        };
        let limits = Limits {
            max_body_bytes: raw.limits.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
            request_timeout_ms: raw
                .limits
                .request_timeout_ms
                .unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
            default_timeout_ms: raw.limits.default_timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
        };
        let records = Records {
            path: raw
                .records
                .path
                .map(|p| base_dir.join(p))
                .unwrap_or_else(|| PathBuf::from("switchyard-requests.jsonl")),
            ring: raw.records.ring.unwrap_or(10_000),
            log_bodies: raw.records.log_bodies.unwrap_or(false),
            log_body_max_bytes: raw
                .records
                .log_body_max_bytes
                .unwrap_or(DEFAULT_LOG_BODY_MAX),
        };
        if !(1..=MAX_LOG_BODY_MAX).contains(&records.log_body_max_bytes) {
            errors.push(err(
                "records.log_body_max_bytes",
                format!(
                    "{} is outside 1..={MAX_LOG_BODY_MAX}",
                    records.log_body_max_bytes
                ),
                "use a cap such as 8192; set records.log_bodies: false to keep no bodies",
            ));
        }

        let secret_files: Vec<PathBuf> = raw
            .providers
            .iter()
            .flat_map(|p| {
                [
                    &p.secret_key_ref,
                    &p.access_key_id_ref,
                    &p.session_token_ref,
                ]
            })
            .filter_map(|r| r.as_ref()?.file.as_ref())
            .map(|f| base_dir.join(f))
            .collect();
        let providers = build_providers(raw.providers, base_dir, &mut errors, &mut warnings);
        let health = build_health(&raw.health, &mut errors);
        // Without a `telemetry:` section, the standard OpenTelemetry environment variables
        // turn export on (what the Helm chart sets).
        let from_env = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .map(|endpoint| crate::telemetry::RawTelemetry {
                otlp_endpoint: Some(endpoint),
                protocol: std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").ok(),
                service_name: std::env::var("OTEL_SERVICE_NAME").ok(),
                ..Default::default()
            });
        let telemetry = match crate::telemetry::TelemetryConfig::from_raw(
            raw.telemetry.as_ref().or(from_env.as_ref()),
            base_dir,
        ) {
            Ok(t) => t,
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        let provider_ix: HashMap<&str, usize> = providers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i))
            .collect();

        let mut models = HashMap::new();
        let mut model_order = Vec::new();
        for (i, m) in raw.models.into_iter().enumerate() {
            let path = format!("models[{i}]");
            let Some(&provider) = provider_ix.get(m.provider.as_str()) else {
                errors.push(err(
                    format!("{path}.provider"),
                    format!("unknown provider '{}' for model '{}'", m.provider, m.name),
                    format!(
                        "add a provider with id '{}' under providers:, or use one of: {}",
                        m.provider,
                        known(provider_ix.keys())
                    ),
                ));
                continue;
            };
            let enabled = match m.status.as_deref() {
                None | Some("enabled") => true,
                Some("disabled") => false,
                Some(other) => {
                    errors.push(err(
                        format!("{path}.status"),
                        format!("unknown status '{other}'"),
                        "use enabled or disabled",
                    ));
                    true
                }
            };
            if models.contains_key(&m.name) {
                errors.push(err(
                    format!("{path}.name"),
                    format!("duplicate model name '{}'", m.name),
                    "model names must be unique; remove or rename one",
                ));
                continue;
            }
            model_order.push(m.name.clone());
            models.insert(
                m.name.clone(),
                Model {
                    provider_model: m.provider_model.unwrap_or_else(|| m.name.clone()),
                    name: m.name,
                    provider,
                    context_window: m.context_window,
                    max_output_tokens: m.max_output_tokens,
                    pricing: m
                        .pricing
                        .map(|p| Pricing {
                            input_per_mtok: p.input_per_mtok,
                            output_per_mtok: p.output_per_mtok,
                            per_image: p.per_image.map(std::sync::Arc::new),
                        })
                        .unwrap_or_default(),
                    capabilities: m.capabilities,
                    enabled,
                },
            );
        }

        let resolve = |path: &str,
                       model: &str,
                       provider: Option<&str>,
                       errors: &mut Vec<ConfigError>|
         -> Option<Target> {
            resolve_target(&models, &provider_ix, path, model, provider, errors)
        };

        let mut groups = HashMap::new();
        for (gi, g) in raw.model_groups.into_iter().enumerate() {
            let path = format!("model_groups[{gi}]");
            if groups.contains_key(&g.name) {
                errors.push(err(
                    format!("{path}.name"),
                    format!("duplicate model group name '{}'", g.name),
                    "group names must be unique; rename or merge the groups",
                ));
                continue;
            }
            if models.contains_key(&g.name) {
                warnings.push(format!(
                    "{path}.name: group '{}' shadows the catalog model of the same name",
                    g.name
                ));
            }
            let strategy = match g.strategy.as_deref() {
                None | Some("fallback") => Strategy::Fallback,
                Some("weighted") => Strategy::Weighted,
                Some("lowest_cost") => Strategy::LowestCost,
                Some("least_latency") => Strategy::LeastLatency,
                Some("cost") => match g.budget_per_request_usd {
                    Some(b) if b > 0.0 && b.is_finite() => Strategy::Cost { budget_usd: b },
                    _ => {
                        errors.push(err(
                            format!("{path}.budget_per_request_usd"),
                            format!("strategy 'cost' in group '{}' needs a positive budget_per_request_usd", g.name),
                            "add budget_per_request_usd: 0.01 (USD per request)",
                        ));
                        Strategy::Fallback
                    }
                },
                Some("intelligent") => match g.axis.as_deref() {
                    None | Some("performance") => Strategy::Intelligent {
                        axis: Axis::Performance,
                    },
                    Some("cost") => Strategy::Intelligent { axis: Axis::Cost },
                    Some("intelligence") => Strategy::Intelligent {
                        axis: Axis::Intelligence,
                    },
                    Some(a) => {
                        errors.push(err(
                            format!("{path}.axis"),
                            format!("unknown axis '{a}'"),
                            "use cost, performance or intelligence",
                        ));
                        Strategy::Fallback
                    }
                },
                Some(s) => {
                    errors.push(err(
                        format!("{path}.strategy"),
                        format!("unknown strategy '{s}'"),
                        "use fallback, weighted, lowest_cost, cost, least_latency or intelligent",
                    ));
                    Strategy::Fallback
                }
            };
            if g.models.is_empty() {
                errors.push(err(
                    format!("{path}.models"),
                    format!("model group '{}' has no models", g.name),
                    "list at least one model",
                ));
            }
            if g.models.len() > MAX_CHAIN {
                errors.push(err(
                    format!("{path}.models"),
                    format!(
                        "model group '{}' has {} models; at most {MAX_CHAIN} are supported",
                        g.name,
                        g.models.len()
                    ),
                    "split the group",
                ));
            }
            let mut members = Vec::new();
            for (mi, m) in g.models.iter().enumerate() {
                let mpath = format!("{path}.models[{mi}]");
                if let Some(target) = resolve(&mpath, &m.model, m.provider.as_deref(), &mut errors)
                {
                    warn_disabled(&mut warnings, &mpath, &m.model, &target);
                    members.push(Member {
                        target,
                        timeout_ms: m.timeout_ms.unwrap_or(limits.default_timeout_ms),
                        weight: m.weight.unwrap_or(0),
                        tag: m.tag.clone(),
                    });
                }
            }
            if strategy == Strategy::Weighted {
                let given = g.models.iter().filter(|m| m.weight.is_some()).count();
                let sum: u64 = g
                    .models
                    .iter()
                    .filter_map(|m| m.weight)
                    .map(u64::from)
                    .sum();
                if given == 0 {
                    // No weights: an even split.
                    members.iter_mut().for_each(|m| m.weight = 1);
                } else if given != g.models.len() || sum != 100 {
                    errors.push(err(
                        format!("{path}.models"),
                        format!("weights must sum to 100 (group '{}' sums to {sum} over {given} of {} models)", g.name, g.models.len()),
                        "give every model a weight and make them add up to 100",
                    ));
                }
            }
            groups.insert(
                g.name.clone(),
                Group {
                    name: g.name,
                    strategy,
                    session_affinity: g.session_affinity,
                    members,
                },
            );
        }

        let mut keys = HashMap::new();
        for (ki, k) in raw.keys.into_iter().enumerate() {
            let path = format!("keys[{ki}]");
            let hash = match KeyHash::parse(&k.hash) {
                Ok(h) => h,
                Err(e) => {
                    errors.push(err(format!("{path}.hash"), e, "use `switchyard keys create --name NAME` and paste the printed hash (sha256:<64 hex>)"));
                    continue;
                }
            };
            let routing = k.routing.and_then(|r| {
                build_key_routing(
                    &format!("{path}.routing"),
                    &k.name,
                    r,
                    &limits,
                    &resolve,
                    &mut errors,
                    &mut warnings,
                )
            });
            if keys
                .insert(
                    hash,
                    Arc::new(Principal {
                        id: hash.short_id(),
                        name: k.name.clone(),
                        limits: k
                            .rate_limit
                            .as_ref()
                            .map(crate::store::Limits::from)
                            .unwrap_or_default(),
                        allowed_models: k.allowed_models,
                        routing,
                    }),
                )
                .is_some()
            {
                errors.push(err(
                    format!("{path}.hash"),
                    format!("key '{}' has the same hash as another key", k.name),
                    "every key needs its own secret; create a new one",
                ));
            }
        }

        if !errors.is_empty() {
            return Err(ConfigErrors {
                file: file.to_path_buf(),
                errors,
            });
        }
        Ok(Snapshot {
            listen,
            limits,
            records,
            providers,
            models,
            model_order,
            groups,
            keys,
            redis_url: raw.store.redis_url,
            health,
            warnings,
            secret_files,
            telemetry,
            routing_cache: RoutingCache::default(),
        })
    }

    /// Every group-like routing table in the config: model groups and active key routes.
    pub fn all_groups(&self) -> impl Iterator<Item = &Group> {
        let key_groups = self
            .keys
            .values()
            .filter_map(|k| k.routing.as_ref())
            .flat_map(|r| std::iter::once(&r.group).chain(r.rule_groups.iter()));
        self.groups.values().chain(key_groups)
    }

    /// Provider sequences Envoy needs a cluster chain for, derived from the same `orders` the
    /// router picks from (and their subsequences, for plans with cooling backends removed).
    pub fn chains(&self) -> BTreeSet<Vec<usize>> {
        let mut out = BTreeSet::new();
        for p in 0..self.providers.len() {
            out.insert(vec![p]);
        }
        for g in self.all_groups() {
            for order in g.orders() {
                let seq: Vec<usize> = order
                    .iter()
                    .map(|&i| g.members[i].target.provider)
                    .take(MAX_CHAIN)
                    .collect();
                // Every order-preserving subsequence too: routing drops backends that are
                // cooling down, and the remaining chain must exist in Envoy.
                for mask in 1u32..(1 << seq.len()) {
                    out.insert(
                        seq.iter()
                            .enumerate()
                            .filter(|(i, _)| mask & (1 << i) != 0)
                            .map(|(_, &p)| p)
                            .collect(),
                    );
                }
            }
        }
        out
    }
}

pub fn target_of(m: &Model) -> Target {
    Target {
        provider: m.provider,
        provider_model: m.provider_model.clone(),
        pricing: m.pricing.clone(),
        max_output_tokens: m.max_output_tokens,
        context_window: m.context_window,
        enabled: m.enabled,
    }
}

/// A key's own routing configuration (seed 000). Routes with a `name` answer only requests for
/// that logical model; unnamed routes answer any model.
#[derive(Debug, Clone)]
pub struct KeyRouting {
    pub active: bool,
    /// Evaluated before the strategy; first match wins.
    pub rules: Vec<crate::routing::rules::Rule>,
    /// Each rule's `use` list as a fallback group (parallel to `rules`).
    pub rule_groups: Vec<Group>,
    pub group: Group,
    /// Logical name per member (parallel to `group.members`).
    pub names: Vec<Option<String>>,
}

/// Resolves a (path, model, optional provider) reference to a target, recording errors.
/// A route's `model` (optionally pinned to a `provider`) → the target it names.
fn resolve_target(
    models: &HashMap<String, Model>,
    provider_ix: &HashMap<&str, usize>,
    path: &str,
    model: &str,
    provider: Option<&str>,
    errors: &mut Vec<ConfigError>,
) -> Option<Target> {
    if let Some(pid) = provider {
        let Some(&p) = provider_ix.get(pid) else {
            errors.push(err(
                format!("{path}.provider"),
                format!("unknown provider '{pid}' in model group"),
                format!(
                    "add a provider with id '{pid}' under providers:, or use one of: {}",
                    known(provider_ix.keys())
                ),
            ));
            return None;
        };
        // A catalog entry for the same provider lends its pricing.
        let cat = models.get(model).filter(|m| m.provider == p);
        return Some(Target {
            provider: p,
            provider_model: cat.map_or_else(|| model.to_string(), |m| m.provider_model.clone()),
            pricing: cat.map(|m| m.pricing.clone()).unwrap_or_default(),
            max_output_tokens: cat.and_then(|m| m.max_output_tokens),
            context_window: cat.and_then(|m| m.context_window),
            enabled: cat.is_none_or(|m| m.enabled),
        });
    }
    match models.get(model) {
        Some(m) => Some(target_of(m)),
        None => {
            errors.push(err(
                format!("{path}.model"),
                format!("unknown model '{model}'"),
                "add it to models: (the catalog), or give the entry a provider:",
            ));
            None
        }
    }
}

impl Snapshot {
    /// A dynamic key's routing configuration (YAML, the same `routing:` section a static key
    /// has), validated against this snapshot's catalog exactly as `lint` validates the file.
    pub fn key_routing_from_yaml(
        &self,
        key_name: &str,
        yaml: &str,
    ) -> Result<KeyRouting, Vec<ConfigError>> {
        let cache = || {
            self.routing_cache
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if let Some((name, routing)) = cache().get(yaml)
            && name == key_name
        {
            return routing.clone();
        }
        let routing = self.parse_key_routing(key_name, yaml);
        let mut cache = cache();
        if cache.len() >= ROUTING_CACHE_MAX {
            cache.clear();
        }
        cache.insert(yaml.to_string(), (key_name.to_string(), routing.clone()));
        routing
    }

    fn parse_key_routing(
        &self,
        key_name: &str,
        yaml: &str,
    ) -> Result<KeyRouting, Vec<ConfigError>> {
        let raw: raw::RawRouting = serde_yaml::from_str(yaml).map_err(|e| {
            vec![err(
                "routing",
                format!("invalid routing configuration: {e}"),
                "write the same routing: section a key in the config file has",
            )]
        })?;
        let provider_ix: HashMap<&str, usize> = self
            .providers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i))
            .collect();
        let resolve = |path: &str,
                       model: &str,
                       provider: Option<&str>,
                       errors: &mut Vec<ConfigError>|
         -> Option<Target> {
            resolve_target(&self.models, &provider_ix, path, model, provider, errors)
        };
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        let routing = build_key_routing(
            "routing",
            key_name,
            raw,
            &self.limits,
            &resolve,
            &mut errors,
            &mut warnings,
        );
        match routing {
            Some(r) if errors.is_empty() => Ok(r),
            _ => Err(errors),
        }
    }
}

type Resolver<'a> = dyn Fn(&str, &str, Option<&str>, &mut Vec<ConfigError>) -> Option<Target> + 'a;

fn build_key_routing(
    path: &str,
    key_name: &str,
    r: raw::RawRouting,
    limits: &Limits,
    resolve: &Resolver<'_>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<KeyRouting> {
    let strategy = match r.strategy.as_deref() {
        None | Some("fallback") => Strategy::Fallback,
        Some("traffic_split") => Strategy::Weighted,
        // Rules pick first; requests no rule matches use the routes in priority order.
        Some("rules") => Strategy::Fallback,
        Some(s) => {
            errors.push(err(
                format!("{path}.strategy"),
                format!("unknown strategy '{s}'"),
                "use fallback, traffic_split or rules",
            ));
            return None;
        }
    };
    let rules = match crate::routing::rules::build(&format!("{path}.rules"), &r.rules) {
        Ok(rules) => rules,
        Err(es) => {
            errors.extend(es.into_iter().map(|e| err(e.path, e.message, e.fix)));
            Vec::new()
        }
    };
    for (i, rule) in rules.iter().enumerate() {
        if rule.when.never_true() {
            warnings.push(format!(
                "{path}.rules[{i}]: can never match: its conditions contradict each other ({})",
                crate::routing::rules::describe(&rule.when)
            ));
        }
    }
    if let Some(i) = rules.iter().position(|r| r.when.always_true())
        && i + 1 < rules.len()
    {
        warnings.push(format!(
            "{path}.rules[{}]: can never match: rule {i} matches every request",
            i + 1
        ));
    }
    let mut rule_groups = Vec::new();
    for (ri, rule) in rules.iter().enumerate() {
        let mut members = Vec::new();
        for (ui, u) in rule.use_models.iter().enumerate() {
            if let Some(target) = resolve(
                &format!("{path}.rules[{ri}].use[{ui}]"),
                &u.model,
                None,
                errors,
            ) {
                warn_disabled(
                    warnings,
                    &format!("{path}.rules[{ri}].use[{ui}]"),
                    &u.model,
                    &target,
                );
                members.push(Member {
                    target,
                    timeout_ms: u.timeout_ms.unwrap_or(limits.default_timeout_ms),
                    weight: 1,
                    tag: None,
                });
            }
        }
        rule_groups.push(Group {
            name: format!("key:{key_name}/rule[{ri}]"),
            strategy: Strategy::Fallback,
            session_affinity: false,
            members,
        });
    }
    if r.active && r.routes.is_empty() {
        errors.push(err(
            format!("{path}.routes"),
            format!("active routing for key '{key_name}' has no routes"),
            "add routes, or set active: false",
        ));
    }
    let mut routes: Vec<(u32, usize, &raw::RawRoute)> = r
        .routes
        .iter()
        .enumerate()
        .map(|(i, rt)| (rt.priority.unwrap_or(i as u32), i, rt))
        .collect();
    routes.sort_by_key(|(p, i, _)| (*p, *i));
    let mut members = Vec::new();
    let mut names = Vec::new();
    for (_, i, rt) in routes {
        if let Some(target) = resolve(&format!("{path}.routes[{i}]"), &rt.model, None, errors) {
            warn_disabled(warnings, &format!("{path}.routes[{i}]"), &rt.model, &target);
            members.push(Member {
                target,
                timeout_ms: rt.timeout_ms.unwrap_or(limits.default_timeout_ms),
                weight: rt.weight.unwrap_or(1),
                tag: None,
            });
            names.push(rt.name.clone());
        }
    }
    Some(KeyRouting {
        active: r.active,
        rules,
        rule_groups,
        group: Group {
            name: format!("key:{key_name}"),
            strategy,
            session_affinity: false,
            members,
        },
        names,
    })
}

fn build_providers(
    raw: Vec<raw::RawProvider>,
    base_dir: &Path,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<Provider> {
    let mut out: Vec<Provider> = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let path = format!("providers[{i}]");
        if out.iter().any(|q| q.id == p.id) {
            errors.push(err(
                format!("{path}.id"),
                format!("duplicate provider id '{}'", p.id),
                "provider ids must be unique",
            ));
            continue;
        }
        if p.id.is_empty()
            || !p
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errors.push(err(
                format!("{path}.id"),
                format!("provider id '{}' must be letters, digits, '-' or '_'", p.id),
                "rename the provider",
            ));
            continue;
        }
        let kind = match p.kind.as_str() {
            "openai" => ProviderKind::OpenAi,
            "openai_compatible" => ProviderKind::OpenAiCompatible,
            "anthropic" => ProviderKind::Anthropic,
            "azure_openai" => ProviderKind::AzureOpenAi,
            "gemini" => ProviderKind::Gemini,
            "vertex" => ProviderKind::Vertex,
            "bedrock" => ProviderKind::Bedrock,
            "cohere" => ProviderKind::Cohere,
            k => {
                errors.push(err(format!("{path}.kind"), format!("unknown provider kind '{k}'"), "use one of: openai, azure_openai, anthropic, gemini, vertex, bedrock, openai_compatible, cohere"));
                continue;
            }
        };
        let endpoint = match Endpoint::parse(&p.base_url) {
            Ok(e) => e,
            Err(e) => {
                errors.push(err(
                    format!("{path}.base_url"),
                    e,
                    "write the full URL, e.g. https://api.openai.com/v1",
                ));
                continue;
            }
        };
        let mut ok = true;
        let mut read = |field: &str, r: &Option<raw::RawSecretRef>| {
            let got = read_secret(&format!("{path}.{field}"), &p.id, r.as_ref(), base_dir);
            match got {
                Ok(Some(s)) => Some(s),
                Ok(None) => None,
                Err(Problem::Error(e)) => {
                    errors.push(e);
                    ok = false;
                    None
                }
                Err(Problem::Warning(w)) => {
                    warnings.push(w);
                    Some(Secret::default())
                }
            }
        };
        let secret = read("secret_key_ref", &p.secret_key_ref);
        let aws = (kind == ProviderKind::Bedrock).then(|| {
            (
                read("access_key_id_ref", &p.access_key_id_ref),
                read("session_token_ref", &p.session_token_ref),
            )
        });
        let secret = match (secret, kind) {
            (Some(s), _) => s,
            (None, ProviderKind::OpenAiCompatible) => Secret::default(),
            (None, _) => {
                errors.push(err(
                    format!("{path}.secret_key_ref"),
                    format!("missing secret_key_ref for provider '{}'", p.id),
                    "add secret_key_ref: { env: NAME_OF_ENV_VAR } holding the provider's API key",
                ));
                continue;
            }
        };
        let options = ProviderOptions {
            api_version: p
                .api_version
                .clone()
                .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_string()),
            stream_options: p.stream_options.unwrap_or(true),
            aws: match aws {
                None => None,
                Some((access_key_id, session_token)) => {
                    let region = p.region.clone().or_else(|| aws_region(&endpoint.host));
                    match (region, access_key_id) {
                        (Some(region), Some(access_key_id)) => Some(AwsAuth {
                            region,
                            access_key_id,
                            session_token,
                        }),
                        (None, _) => {
                            errors.push(err(
                                format!("{path}.region"),
                                format!("no AWS region for provider '{}'", p.id),
                                "set region: us-east-1 (or use a bedrock-runtime.<region>.amazonaws.com base_url)",
                            ));
                            continue;
                        }
                        (_, None) => {
                            errors.push(err(
                                format!("{path}.access_key_id_ref"),
                                format!("missing access_key_id_ref for provider '{}'", p.id),
                                "add access_key_id_ref: { env: AWS_ACCESS_KEY_ID }; secret_key_ref holds the secret access key",
                            ));
                            continue;
                        }
                    }
                }
            },
        };
        if !ok {
            continue;
        }
        out.push(Provider {
            id: p.id,
            kind,
            endpoint,
            secret,
            default_max_tokens: p.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            options,
        });
    }
    out
}

enum Problem {
    Error(ConfigError),
    Warning(String),
}

/// Reads a `{ env: VAR }` or `{ file: PATH }` secret. An unset variable is a warning (the
/// gateway still starts, e.g. for `lint` on a laptop); an unreadable file is an error.
fn read_secret(
    path: &str,
    provider: &str,
    r: Option<&raw::RawSecretRef>,
    base_dir: &Path,
) -> Result<Option<Secret>, Problem> {
    let Some(r) = r else { return Ok(None) };
    match (&r.env, &r.file) {
        (Some(var), None) => match std::env::var(var) {
            Ok(v) => Ok(Some(Secret(v.trim().to_string()))),
            Err(_) => Err(Problem::Warning(format!(
                "{path}: environment variable {var} is not set; requests to '{provider}' will be sent without credentials"
            ))),
        },
        (None, Some(f)) => match std::fs::read_to_string(base_dir.join(f)) {
            Ok(v) => Ok(Some(Secret(v.trim().to_string()))),
            Err(e) => Err(Problem::Error(err(
                format!("{path}.file"),
                format!("cannot read secret file '{f}': {e}"),
                "point file: at a readable file holding only the secret",
            ))),
        },
        _ => Err(Problem::Error(err(
            path,
            format!(
                "{} needs exactly one of env or file",
                path.rsplit('.').next().unwrap_or(path)
            ),
            "write { env: VAR } or { file: PATH }",
        ))),
    }
}

/// `bedrock-runtime.us-east-1.amazonaws.com` → `us-east-1`.
fn aws_region(host: &str) -> Option<String> {
    let rest = host.strip_prefix("bedrock-runtime.")?;
    let (region, tail) = rest.split_once('.')?;
    tail.starts_with("amazonaws.com")
        .then(|| region.to_string())
}

fn build_health(raw: &raw::RawHealth, errors: &mut Vec<ConfigError>) -> crate::health::Policy {
    let default = crate::health::Policy::default();
    let window = raw.error_rate_window.unwrap_or(default.error_rate_window);
    if !(1..=64).contains(&window) {
        errors.push(err(
            "health.error_rate_window",
            format!("error_rate_window is {window}"),
            "use a window between 1 and 64 attempts",
        ));
    }
    let error_rate = raw.error_rate.unwrap_or(default.error_rate);
    if error_rate.is_nan() || error_rate <= 0.0 {
        errors.push(err(
            "health.error_rate",
            format!("error_rate is {error_rate}"),
            "use a share in (0, 1], or a value above 1 to turn the error-rate rule off",
        ));
    }
    crate::health::Policy {
        consecutive_failures: raw
            .consecutive_failures
            .unwrap_or(default.consecutive_failures),
        cooldown: raw
            .cooldown_ms
            .map_or(default.cooldown, std::time::Duration::from_millis),
        error_rate,
        error_rate_window: window,
    }
}

fn warn_disabled(warnings: &mut Vec<String>, path: &str, model: &str, target: &Target) {
    if !target.enabled {
        warnings.push(format!(
            "{path}: model '{model}' is disabled and will never be selected"
        ));
    }
}

fn known<'a>(ids: impl Iterator<Item = &'a &'a str>) -> String {
    let mut v: Vec<&str> = ids.copied().collect();
    v.sort_unstable();
    if v.is_empty() {
        "(none defined)".into()
    } else {
        v.join(", ")
    }
}

fn yaml_error(e: &serde_yaml::Error) -> ConfigError {
    let path = e
        .location()
        .map(|l| format!("line {} column {}", l.line(), l.column()))
        .unwrap_or_default();
    err(
        path,
        e.to_string(),
        "correct the YAML at that position (see the SPEC's config section for field names)",
    )
}

#[cfg(test)]
mod tests;
