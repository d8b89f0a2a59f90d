//! The Envoy bootstrap, derived from the gateway config so the user edits one file.
//!
//! Shape: one listener whose HTTP filters are the downstream ext_proc (auth, routing decision)
//! and the router. The processor names the cluster to use in `x-switchyard-cluster`. There is
//! one cluster per provider sequence the config can produce (`c/openai+anthropic`): each
//! provider of the sequence is an endpoint at its own *priority level*, tagged with metadata
//! `switchyard.position`. The route retries with `previous_priorities`, so attempt N goes to
//! priority N: fallback happens inside Envoy. The cluster's *upstream* HTTP filter chain runs
//! ext_proc again for every attempt and sends the chosen endpoint's metadata, so the processor
//! re-translates each attempt for the provider it actually reaches.
//!
//! A provider change (new base URL, new provider, new group order) changes the bootstrap and
//! needs an Envoy restart; `switchyard up` does it. Models, keys, weights and timeouts are
//! processor-only and hot-reload.

use crate::config::Snapshot;
use crate::extproc::downstream::{REQUEST_ID, RESPONSE_REQUEST_ID};
use serde_json::{Value, json};

pub const CLUSTER_HEADER: &str = "x-switchyard-cluster";
pub const EXTPROC_CLUSTER: &str = "switchyard_extproc";
/// gRPC initial metadata that marks the upstream (per-attempt) filter's streams.
pub const META_PHASE: &str = "x-switchyard-phase";
/// Endpoint metadata namespace and the attribute that carries it to the processor.
pub const METADATA_NS: &str = "switchyard";
pub const HOST_METADATA_ATTR: &str = "xds.upstream_host_metadata";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub struct BootstrapOptions<'a> {
    pub proxy: &'a str,
    pub envoy_admin: &'a str,
    /// `host:port` or `unix:/path` of the processor's gRPC listener.
    pub extproc: &'a str,
}

/// Cluster for a provider sequence.
pub fn chain_cluster(snap: &Snapshot, seq: &[usize]) -> String {
    let ids: Vec<&str> = seq.iter().map(|&p| snap.providers[p].id.as_str()).collect();
    format!("c/{}", ids.join("+"))
}

/// Cluster for a single-attempt request the downstream exchange translates itself: the
/// provider alone, without the per-attempt ext_proc filter (one gRPC stream per request
/// instead of two).
pub fn direct_cluster(snap: &Snapshot, provider: usize) -> String {
    format!("d/{}", snap.providers[provider].id)
}

fn split_addr(addr: &str) -> (String, u16) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse().unwrap_or(0),
        ),
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

/// Envoy attribute telling a proxied response (`via_upstream`) from Envoy's own local reply.
pub const CODE_DETAILS_ATTR: &str = "response.code_details";

fn ext_proc_filter(mode: Value, message_timeout_ms: u64, upstream: bool) -> Value {
    let mut grpc = json!({ "envoy_grpc": { "cluster_name": EXTPROC_CLUSTER } });
    let mut cfg = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
        "failure_mode_allow": false,
        "processing_mode": mode,
        "message_timeout": secs(message_timeout_ms),
        "mutation_rules": { "allow_all_routing": true, "allow_envoy": true },
    });
    if upstream {
        grpc["initial_metadata"] = json!([{ "key": META_PHASE, "value": "upstream" }]);
        cfg["request_attributes"] = json!([HOST_METADATA_ATTR]);
        // Lets the processor hold the response headers until the body shows whether the
        // attempt really succeeded, so a failure before the first token can still fall back.
        cfg["send_body_without_waiting_for_header_response"] = json!(true);
    } else {
        // A direct (single-attempt) request asks for the response body per request, in its
        // response-headers reply; other requests never send it.
        cfg["allow_mode_override"] = json!(true);
        cfg["response_attributes"] = json!([CODE_DETAILS_ATTR]);
    }
    cfg["grpc_service"] = grpc;
    json!({ "name": "envoy.filters.http.ext_proc", "typed_config": cfg })
}

/// Envoy's default circuit breakers allow 1024 concurrent requests and only 3 concurrent
/// retries per cluster: under load that silently disables fallback and caps ext_proc streams
/// (two per request). A gateway wants its own limits, so these are set out of the way.
fn circuit_breakers() -> Value {
    let high = 1_000_000;
    json!({ "thresholds": [{
        "priority": "DEFAULT",
        "max_connections": high, "max_pending_requests": high, "max_requests": high, "max_retries": high
    }]})
}

fn tls_socket(host: &str) -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": host,
            "common_tls_context": { "validation_context": {
                "trusted_ca": { "filename": CA_BUNDLE },
                "match_typed_subject_alt_names": [{ "san_type": "DNS", "matcher": { "exact": host } }]
            }}
        }
    })
}

/// A chain cluster (`attempt_filter`: every attempt runs the upstream ext_proc) or a direct
/// one (one provider, nothing between the router and the codec).
fn cluster_config(snap: &Snapshot, seq: &[usize], attempt_filter: bool) -> Value {
    let upstream_filters = json!([
        ext_proc_filter(
            json!({
                "request_header_mode": "SEND", "request_body_mode": "BUFFERED",
                "response_header_mode": "SEND", "response_body_mode": "STREAMED",
                "request_trailer_mode": "SKIP", "response_trailer_mode": "SKIP"
            }),
            snap.limits.request_timeout_ms,
            true,
        ),
        { "name": "envoy.filters.http.upstream_codec",
          "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec" } }
    ]);
    let mut tls_hosts: Vec<&str> = Vec::new();
    let priorities: Vec<Value> = seq
        .iter()
        .enumerate()
        .map(|(position, &p)| {
            let provider = &snap.providers[p];
            let mut filter_metadata = json!({ METADATA_NS: { "position": position, "provider": provider.id } });
            if provider.endpoint.tls {
                // Picks the TLS settings (SNI, SAN) of this endpoint's host.
                filter_metadata["envoy.transport_socket_match"] = json!({ "sni": provider.endpoint.host });
                if !tls_hosts.contains(&provider.endpoint.host.as_str()) {
                    tls_hosts.push(&provider.endpoint.host);
                }
            }
            json!({
                "priority": position,
                "lb_endpoints": [{
                    "endpoint": { "address": { "socket_address": { "address": provider.endpoint.host, "port_value": provider.endpoint.port } } },
                    "metadata": { "filter_metadata": filter_metadata }
                }]
            })
        })
        .collect();
    let name = if attempt_filter {
        chain_cluster(snap, seq)
    } else {
        direct_cluster(snap, seq[0])
    };
    let mut protocol_options = json!({
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": { "http_protocol_options": {} },
    });
    if attempt_filter {
        protocol_options["http_filters"] = upstream_filters;
    }
    let mut c = json!({
        "name": name,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "5s",
        "lb_policy": "ROUND_ROBIN",
        "circuit_breakers": circuit_breakers(),
        "per_connection_buffer_limit_bytes": (snap.limits.max_body_bytes * 2).max(1 << 20),
        "load_assignment": { "cluster_name": name, "endpoints": priorities },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": protocol_options
        }
    });
    if !tls_hosts.is_empty() {
        c["transport_socket_matches"] =
            tls_hosts.iter().map(|h| json!({ "name": format!("tls-{h}"), "match": { "sni": h }, "transport_socket": tls_socket(h) })).collect();
    }
    c
}

/// Local replies Envoy generates itself (timeouts, connect failures, body too large) speak the
/// same error shape as the processor's: Anthropic's on `/v1/messages`, OpenAI's elsewhere.
/// Mappers are tried in order, so the Anthropic ones come first.
fn local_reply_config() -> Value {
    // (response flags, status, message, OpenAI type, code, Anthropic type); no flags = the 413.
    type Reply = (
        &'static [&'static str],
        u16,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );
    const REPLIES: [Reply; 3] = [
        (
            &["UT"],
            504,
            "The upstream provider did not answer in time",
            "timeout_error",
            "upstream_timeout",
            "timeout_error",
        ),
        (
            &["UF", "UH", "URX", "UC", "UO", "UR", "NR", "DPE", "UPE"],
            502,
            "All backends failed",
            "upstream_error",
            "all_backends_failed",
            "api_error",
        ),
        (
            &[],
            413,
            "Request body is larger than the gateway's limit",
            "invalid_request_error",
            "request_too_large",
            "request_too_large",
        ),
    ];
    let filter = |flags: &[&str], status: u16| {
        if flags.is_empty() {
            json!({ "status_code_filter": { "comparison": { "op": "EQ", "value": { "default_value": status, "runtime_key": "switchyard.payload_too_large" } } } })
        } else {
            json!({ "response_flag_filter": { "flags": flags } })
        }
    };
    let messages_path = json!({ "header_filter": { "header": { "name": ":path", "string_match": { "prefix": "/v1/messages" } } } });
    let mut mappers = Vec::new();
    // The request id the processor put on the request: a reply the processor does not see again
    // (a direct request's upstream reset after its headers) still carries it.
    let request_id = json!([{
        "header": { "key": RESPONSE_REQUEST_ID, "value": format!("%REQ({REQUEST_ID})%") },
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
    }]);
    for (flags, status, message, _, _, anthropic_type) in REPLIES {
        mappers.push(json!({
            "filter": { "and_filter": { "filters": [messages_path.clone(), filter(flags, status)] } },
            "status_code": status,
            "headers_to_add": request_id,
            "body_format_override": { "json_format": { "type": "error", "error": { "type": anthropic_type, "message": message } } }
        }));
    }
    for (flags, status, message, kind, code, _) in REPLIES {
        mappers.push(json!({
            "filter": filter(flags, status),
            "status_code": status,
            "headers_to_add": request_id,
            "body_format_override": { "json_format": { "error": { "message": message, "type": kind, "code": code, "param": null } } }
        }));
    }
    json!({ "mappers": mappers })
}

/// The whole bootstrap as a JSON value (Envoy reads it as YAML).
pub fn bootstrap(snap: &Snapshot, opts: &BootstrapOptions<'_>) -> Value {
    let mut clusters: Vec<Value> = Vec::new();
    clusters.push(json!({
        "name": EXTPROC_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "circuit_breakers": circuit_breakers(),
        "load_assignment": { "cluster_name": EXTPROC_CLUSTER, "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": socket_address(opts.extproc) } }] }] },
        "typed_extension_protocol_options": { "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": { "http2_protocol_options": {} }
        }}
    }));
    for seq in snap.chains() {
        clusters.push(cluster_config(snap, &seq, true));
    }
    for p in 0..snap.providers.len() {
        clusters.push(cluster_config(snap, &[p], false));
    }

    let downstream = ext_proc_filter(
        json!({
            "request_header_mode": "SEND", "request_body_mode": "BUFFERED",
            "response_header_mode": "SEND", "response_body_mode": "NONE",
            "request_trailer_mode": "SKIP", "response_trailer_mode": "SKIP"
        }),
        2000,
        false,
    );
    let route = json!({
        "match": { "prefix": "/" },
        // Read for routing only; a direct request has no attempt filter to strip them.
        "request_headers_to_remove": [CLUSTER_HEADER, "x-envoy-expected-rq-timeout-ms"],
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
