//! The `telemetry:` config section: the raw serde struct (to hang off `RawConfig`) and the
//! validated `TelemetryConfig`. No section (or `enabled: false`) means telemetry is off.
//!
//! ```yaml
//! telemetry:
//!   otlp_endpoint: http://127.0.0.1:4317   # gRPC; for protocol: http the base URL, e.g. :4318
//!   protocol: grpc                         # grpc | http (HTTP/protobuf)
//!   sampling_ratio: 1.0                    # traces only; a client's sampled flag wins
//!   service_name: switchyard
//!   resource_attributes: { deployment.environment: prod }
//!   headers: { authorization: { env: OTLP_TOKEN }, x-tenant: team-a }
//!   export_interval_ms: 5000               # metrics export period
//! ```

use crate::config::ConfigError;
use crate::config::raw::RawSecretRef;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;
use tonic::codegen::http::{HeaderName, HeaderValue, Uri};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// Default true: a `telemetry:` section turns telemetry on; `enabled: false` keeps the
    /// section but turns it off.
    pub enabled: Option<bool>,
    pub otlp_endpoint: Option<String>,
    /// `grpc` (default) or `http`.
    pub protocol: Option<String>,
    /// Share of new traces kept, 0..=1 (default 1). Requests that carry a `traceparent`
    /// follow the client's sampled flag instead.
    pub sampling_ratio: Option<f64>,
    /// `service.name` resource attribute (default `switchyard`).
    pub service_name: Option<String>,
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, String>,
    /// Sent with every export (e.g. the collector's auth token): a plain string or
    /// `{ env: VAR }` / `{ file: PATH }`.
    #[serde(default)]
    pub headers: BTreeMap<String, RawHeaderValue>,
    /// How often metrics are exported over OTLP (default 5000 ms).
    pub export_interval_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawHeaderValue {
    Plain(String),
    Secret(RawSecretRef),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`/v1/traces`, `/v1/metrics`).
    Http,
}

/// Validated telemetry settings. `Debug` never shows header values (they may be credentials).
#[derive(Clone)]
pub struct TelemetryConfig {
    /// `http://host:port[/base]`, validated.
    pub endpoint: Uri,
    pub protocol: Protocol,
    pub sampling_ratio: f64,
    pub service_name: String,
    pub resource_attributes: Vec<(String, String)>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub export_interval: Duration,
    /// How many finished requests' spans may wait for export (the queue is bounded: when full,
    /// spans are dropped and counted, never waited for).
    pub queue_capacity: usize,
    /// Per-export timeout.
    pub export_timeout: Duration,
    /// Spans are sent when this many are waiting, or every `span_flush_interval`.
    pub max_batch_spans: usize,
    pub span_flush_interval: Duration,
}

impl fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryConfig")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("sampling_ratio", &self.sampling_ratio)
            .field("service_name", &self.service_name)
            .field("resource_attributes", &self.resource_attributes)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| format!("{k}: <redacted>"))
                    .collect::<Vec<_>>(),
            )
            .field("export_interval", &self.export_interval)
            .finish_non_exhaustive()
    }
}

impl TelemetryConfig {
    /// Defaults for everything but the endpoint (tests and programmatic use).
    pub fn new(endpoint: Uri, protocol: Protocol) -> TelemetryConfig {
        TelemetryConfig {
            endpoint,
            protocol,
            sampling_ratio: 1.0,
            service_name: "switchyard".into(),
            resource_attributes: Vec::new(),
            headers: Vec::new(),
            export_interval: Duration::from_millis(DEFAULT_EXPORT_INTERVAL_MS),
            queue_capacity: 8192,
            export_timeout: Duration::from_secs(10),
            max_batch_spans: 512,
            span_flush_interval: Duration::from_secs(1),
        }
    }

    /// Validate the raw section; `Ok(None)` when telemetry is off. Every problem is reported,
    /// each naming its path under `telemetry.` and a fix. `base_dir` resolves `file:` secrets.
    pub fn from_raw(
        raw: Option<&RawTelemetry>,
        base_dir: &Path,
    ) -> Result<Option<TelemetryConfig>, Vec<ConfigError>> {
        let Some(raw) = raw else { return Ok(None) };
        if raw.enabled == Some(false) {
            return Ok(None);
        }
        let mut errors = Vec::new();
        let protocol = match raw.protocol.as_deref() {
            None | Some("grpc") => Protocol::Grpc,
            Some("http") | Some("http/protobuf") => Protocol::Http,
            Some(other) => {
                errors.push(err(
                    "telemetry.protocol",
                    format!("unknown protocol '{other}'"),
                    "use grpc (OTLP/gRPC, port 4317) or http (OTLP/HTTP protobuf, port 4318)",
                ));
                Protocol::Grpc
            }
        };
        let endpoint = match raw.otlp_endpoint.as_deref().map(str::trim) {
            None | Some("") => {
                errors.push(err(
                    "telemetry.otlp_endpoint",
                    "telemetry is on but no OTLP endpoint is set",
                    "set otlp_endpoint (e.g. http://127.0.0.1:4317), or remove the telemetry section / set enabled: false",
                ));
                None
            }
            Some(e) => match parse_endpoint(e) {
                Ok(u) => Some(u),
                Err(m) => {
                    errors.push(err(
                        "telemetry.otlp_endpoint",
                        m,
                        "write http://HOST:PORT (plain-text OTLP; run a local collector for TLS)",
                    ));
                    None
                }
            },
        };
        let sampling_ratio = raw.sampling_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sampling_ratio) {
            errors.push(err(
                "telemetry.sampling_ratio",
                format!("sampling_ratio is {sampling_ratio}"),
                "use a share between 0 (no new traces) and 1 (every trace)",
            ));
        }
        let service_name = raw
            .service_name
            .clone()
            .unwrap_or_else(|| "switchyard".into());
        if service_name.trim().is_empty() {
            errors.push(err(
                "telemetry.service_name",
                "service_name is empty",
                "name the service (default: switchyard)",
            ));
        }
        let export_ms = raw.export_interval_ms.unwrap_or(DEFAULT_EXPORT_INTERVAL_MS);
        if export_ms < 100 {
            errors.push(err(
                "telemetry.export_interval_ms",
                format!("export_interval_ms is {export_ms}"),
                "use at least 100 ms (default 5000)",
            ));
        }
        let mut resource_attributes = Vec::new();
        for (k, v) in &raw.resource_attributes {
            if k.trim().is_empty() {
                errors.push(err(
                    "telemetry.resource_attributes",
                    "an attribute has an empty name",
                    "give every resource attribute a name",
                ));
            } else if k == "service.name" {
                errors.push(err(
                    "telemetry.resource_attributes.service.name",
                    "service.name is set by service_name",
                    "move it to telemetry.service_name",
                ));
            } else {
                resource_attributes.push((k.clone(), v.clone()));
            }
        }
        let mut headers = Vec::new();
        for (k, v) in &raw.headers {
            let path = format!("telemetry.headers.{k}");
            let name = match HeaderName::from_bytes(k.as_bytes()) {
                Ok(n) => n,
                Err(_) => {
                    errors.push(err(
                        &path,
                        format!("'{k}' is not a valid header name"),
                        "use letters, digits and dashes (e.g. authorization)",
                    ));
                    continue;
                }
            };
            let value = match read_header_value(&path, v, base_dir) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            match HeaderValue::from_str(&value) {
                Ok(mut hv) => {
                    hv.set_sensitive(true);
                    headers.push((name, hv));
                }
                Err(_) => errors.push(err(
                    &path,
                    "the value has characters a header cannot carry",
                    "use visible ASCII only (no newlines)",
                )),
            }
        }
        match endpoint {
            Some(endpoint) if errors.is_empty() => Ok(Some(TelemetryConfig {
                protocol,
                sampling_ratio,
                service_name,
                resource_attributes,
                headers,
                export_interval: Duration::from_millis(export_ms),
                ..TelemetryConfig::new(endpoint, protocol)
            })),
            _ => Err(errors),
        }
    }
}

const DEFAULT_EXPORT_INTERVAL_MS: u64 = 5000;

fn err(path: &str, message: impl Into<String>, fix: &str) -> ConfigError {
    ConfigError {
        path: path.to_string(),
        message: message.into(),
        fix: fix.to_string(),
    }
}

fn parse_endpoint(e: &str) -> Result<Uri, String> {
    let uri: Uri = e.parse().map_err(|_| format!("'{e}' is not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "'{e}': https is not supported (this build has no TLS client)"
            ));
        }
        _ => return Err(format!("'{e}' must start with http://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("'{e}' has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("'{e}' must not have a query string"));
    }
    Ok(uri)
}

fn read_header_value(
    path: &str,
    v: &RawHeaderValue,
    base_dir: &Path,
) -> Result<String, ConfigError> {
    match v {
        RawHeaderValue::Plain(s) => Ok(s.clone()),
        RawHeaderValue::Secret(r) => match (&r.env, &r.file) {
            (Some(var), None) => std::env::var(var)
                .map(|v| v.trim().to_string())
                .map_err(|_| {
                    err(
                        path,
                        format!("environment variable {var} is not set"),
                        "export the variable, or remove the header",
                    )
                }),
            (None, Some(f)) => std::fs::read_to_string(base_dir.join(f))
                .map(|v| v.trim().to_string())
                .map_err(|e| {
                    err(
                        &format!("{path}.file"),
                        format!("cannot read secret file '{f}': {e}"),
                        "point file: at a readable file holding only the value",
                    )
                }),
            _ => Err(err(
                path,
                "a header value needs exactly one of env or file",
                "write a string, { env: VAR } or { file: PATH }",
            )),
        },
    }
}
