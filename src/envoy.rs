//! The Envoy bootstrap, derived from the gateway config so the user edits one file.
//!
//! Shape: one listener whose HTTP filters are the downstream ext_proc (auth, routing decision)
//! and the router. The processor names the cluster to use in `x-switchyard-cluster`:
//! - `p/<provider>/<slot>`: one cluster per provider (slot > 0 only when a chain visits the same
//!   provider twice). Its *upstream* HTTP filter chain runs ext_proc again for every attempt,
//!   with the provider and slot in the gRPC initial metadata, so the processor re-translates
//!   each attempt for the provider it actually reaches.
//! - `c/<p>/<s>+<p>/<s>…`: an aggregate cluster per provider sequence the config can produce.
//!   The route retries with `previous_priorities`, so attempt N goes to the N-th cluster of the
//!   chain: fallback happens inside Envoy.
//!
//! A provider change (new base URL, new provider, new group order) changes the bootstrap and
//! needs an Envoy restart; `switchyard up` does it. Models, keys, weights and timeouts are
//! processor-only and hot-reload.

use crate::config::{Provider, Snapshot};
use serde_json::{Value, json};
use std::collections::BTreeSet;

pub const CLUSTER_HEADER: &str = "x-switchyard-cluster";
pub const EXTPROC_CLUSTER: &str = "switchyard_extproc";
pub const META_PROVIDER: &str = "x-switchyard-provider";
pub const META_SLOT: &str = "x-switchyard-slot";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub struct BootstrapOptions<'a> {
    pub proxy: &'a str,
    pub envoy_admin: &'a str,
    /// `host:port` or `unix:/path` of the processor's gRPC listener.
    pub extproc: &'a str,
}

pub fn provider_cluster(provider: &str, slot: usize) -> String {
    format!("p/{provider}/{slot}")
}

/// Cluster for a provider sequence: repeated providers take the next slot.
pub fn chain_cluster(snap: &Snapshot, seq: &[usize]) -> String {
    let names = slots(seq).map(|(p, s)| provider_cluster(&snap.providers[p].id, s)).collect::<Vec<_>>();
    if names.len() == 1 { names.into_iter().next().unwrap_or_default() } else { format!("c/{}", names.join("+").replace("p/", "")) }
}

/// (provider, slot) for each position: the slot counts earlier visits to the same provider.
pub fn slots(seq: &[usize]) -> impl Iterator<Item = (usize, usize)> + '_ {
    seq.iter().enumerate().map(|(i, &p)| (p, seq[..i].iter().filter(|&&q| q == p).count()))
}

fn split_addr(addr: &str) -> (String, u16) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']').to_string(), p.parse().unwrap_or(0)),
        None => (addr.to_string(), 0),
    }
}

fn socket_address(addr: &str) -> Value {
    if let Some(path) = addr.strip_prefix("unix:") {
        return json!({ "pipe": { "path": path } });
    }
    let (host, port) = split_addr(addr);
    json!({ "socket_address": { "address": host, "port_value": port } })
}

fn secs(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

fn ext_proc_filter(mode: Value, metadata: Vec<(&str, String)>, message_timeout_ms: u64, upstream: bool) -> Value {
    let mut grpc = json!({ "envoy_grpc": { "cluster_name": EXTPROC_CLUSTER } });
    if !metadata.is_empty() {
        grpc["initial_metadata"] = metadata.into_iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
    }
    let mut cfg = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
        "grpc_service": grpc,
        "failure_mode_allow": false,
        "processing_mode": mode,
        "message_timeout": secs(message_timeout_ms),
        "mutation_rules": { "allow_all_routing": true, "allow_envoy": true },
    });
    if upstream {
        // Lets the processor hold the response headers until the body shows whether the
        // attempt really succeeded, so a failure before the first token can still fall back.
        cfg["send_body_without_waiting_for_header_response"] = json!(true);
    }
    json!({ "name": "envoy.filters.http.ext_proc", "typed_config": cfg })
}

fn provider_clusters(p: &Provider, slots: usize, opts: &Snapshot) -> Vec<Value> {
    let request_ms = opts.limits.request_timeout_ms;
    (0..slots)
        .map(|slot| {
            let upstream_filters = json!([
                ext_proc_filter(
                    json!({
                        "request_header_mode": "SEND", "request_body_mode": "BUFFERED",
                        "response_header_mode": "SEND", "response_body_mode": "STREAMED",
                        "request_trailer_mode": "SKIP", "response_trailer_mode": "SKIP"
                    }),
                    vec![(META_PROVIDER, p.id.clone()), (META_SLOT, slot.to_string())],
                    request_ms,
                    true,
                ),
                { "name": "envoy.filters.http.upstream_codec",
                  "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec" } }
            ]);
            let is_ip = p.endpoint.host.parse::<std::net::IpAddr>().is_ok();
            let mut c = json!({
                "name": provider_cluster(&p.id, slot),
                "type": if is_ip { "STATIC" } else { "STRICT_DNS" },
                "dns_lookup_family": "V4_PREFERRED",
                "connect_timeout": "5s",
                "lb_policy": "ROUND_ROBIN",
                "per_connection_buffer_limit_bytes": (opts.limits.max_body_bytes * 2).max(1 << 20),
                "load_assignment": {
                    "cluster_name": provider_cluster(&p.id, slot),
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                        "socket_address": { "address": p.endpoint.host, "port_value": p.endpoint.port }
                    }}}]}]
                },
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": { "http_protocol_options": {} },
                        "http_filters": upstream_filters
                    }
                }
            });
            if p.endpoint.tls {
                c["transport_socket"] = json!({
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                        "sni": p.endpoint.host,
                        "common_tls_context": { "validation_context": {
                            "trusted_ca": { "filename": CA_BUNDLE },
                            "match_typed_subject_alt_names": [{ "san_type": "DNS", "matcher": { "exact": p.endpoint.host } }]
                        }}
                    }
                });
            }
            c
        })
        .collect()
}

/// Local replies Envoy generates itself (timeouts, connect failures, body too large) speak the
/// same error shape as the processor's.
fn local_reply_config() -> Value {
    let mapper = |flags: &[&str], status: u16, message: &str, kind: &str, code: &str| {
        json!({
            "filter": { "response_flag_filter": { "flags": flags } },
            "status_code": status,
            "body_format_override": { "json_format": { "error": { "message": message, "type": kind, "code": code } } }
        })
    };
    json!({ "mappers": [
        mapper(&["UT"], 504, "The upstream provider did not answer in time", "timeout_error", "upstream_timeout"),
        mapper(&["UF", "UH", "URX", "UC", "UO", "UR", "NR", "DPE", "UPE"], 502, "All backends failed", "upstream_error", "all_backends_failed"),
        json!({
            "filter": { "status_code_filter": { "comparison": { "op": "EQ", "value": { "default_value": 413, "runtime_key": "switchyard.payload_too_large" } } } },
            "body_format_override": { "json_format": { "error": { "message": "Request body is larger than the gateway's limit", "type": "invalid_request_error", "code": "request_too_large" } } }
        }),
    ]})
}

/// The whole bootstrap as a JSON value (Envoy reads it as YAML).
pub fn bootstrap(snap: &Snapshot, opts: &BootstrapOptions<'_>) -> Value {
    let chains = snap.chains();
    let mut slots_needed = vec![1usize; snap.providers.len()];
    for seq in &chains {
        for (p, s) in slots(seq) {
            slots_needed[p] = slots_needed[p].max(s + 1);
        }
    }
    let mut clusters: Vec<Value> = Vec::new();
    clusters.push(json!({
        "name": EXTPROC_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": { "cluster_name": EXTPROC_CLUSTER, "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": socket_address(opts.extproc) } }] }] },
        "typed_extension_protocol_options": { "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": { "http2_protocol_options": {} }
        }}
    }));
    for (i, p) in snap.providers.iter().enumerate() {
        clusters.extend(provider_clusters(p, slots_needed[i], snap));
    }
    let mut seen = BTreeSet::new();
    for seq in chains.iter().filter(|s| s.len() > 1) {
        let name = chain_cluster(snap, seq);
        if !seen.insert(name.clone()) {
            continue;
        }
        let members: Vec<String> = slots(seq).map(|(p, s)| provider_cluster(&snap.providers[p].id, s)).collect();
        clusters.push(json!({
            "name": name,
            "connect_timeout": "5s",
            "lb_policy": "CLUSTER_PROVIDED",
            "cluster_type": { "name": "envoy.clusters.aggregate", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig",
                "clusters": members
            }}
        }));
    }

    let downstream = ext_proc_filter(
        json!({
            "request_header_mode": "SEND", "request_body_mode": "BUFFERED",
            "response_header_mode": "SEND", "response_body_mode": "NONE",
            "request_trailer_mode": "SKIP", "response_trailer_mode": "SKIP"
        }),
        vec![],
        2000,
        false,
    );
    let route = json!({
        "match": { "prefix": "/" },
        "route": {
            "cluster_header": CLUSTER_HEADER,
            // Streams may run long; each attempt is bounded by the per-try timeout instead.
            "timeout": "0s",
            "retry_policy": {
                "retry_on": "connect-failure,refused-stream,reset,5xx,retriable-status-codes",
                "retriable_status_codes": [429],
                "num_retries": 0,
                "retry_priority": { "name": "envoy.retry_priorities.previous_priorities", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                    "update_frequency": 1
                }},
                "retry_back_off": { "base_interval": "0.005s", "max_interval": "0.050s" }
            }
        }
    });
    let hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "switchyard",
        "codec_type": "AUTO",
        "route_config": { "name": "switchyard", "virtual_hosts": [{
            "name": "llm", "domains": ["*"], "include_request_attempt_count": true, "routes": [route]
        }]},
        "http_filters": [downstream, { "name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }],
        "local_reply_config": local_reply_config(),
    });
    json!({
        "admin": { "address": socket_address(opts.envoy_admin) },
        "static_resources": {
            "listeners": [{
                "name": "proxy",
                "address": socket_address(opts.proxy),
                // Bodies are buffered for the processor and for retries; this caps them (413).
                "per_connection_buffer_limit_bytes": snap.limits.max_body_bytes,
                "filter_chains": [{ "filters": [{ "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm }] }]
            }],
            "clusters": clusters
        }
    })
}
