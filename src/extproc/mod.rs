//! The tonic adapter for `envoy.service.ext_proc.v3.ExternalProcessor`.
//!
//! Envoy opens one gRPC stream per HTTP request per filter instance. Two filter instances talk
//! to us:
//! - the *downstream* filter on the listener (no initial metadata): authenticates, parses the
//!   body once, routes, and names the Envoy cluster chain (`downstream.rs`);
//! - the *upstream* filter on each chain cluster (metadata `x-switchyard-phase: upstream`,
//!   plus the chosen endpoint's metadata as an attribute): runs once per attempt, so every retry Envoy makes is re-translated for
//!   the provider it actually reaches (`upstream.rs`).
//!
//! Each stream is one task handling one message at a time. Only the downstream side awaits (the
//! store, for dynamic keys and token limits); locks are never held across those awaits.

pub mod downstream;
mod providers;
pub mod state;
pub mod upstream;

use crate::config::Snapshot;
use crate::envoy::META_PHASE;
use crate::record::RecordSink;
use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option::HeaderAppendAction,
};
pub use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::BodySendMode;
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::{
    ProcessingMode, processing_mode::HeaderSendMode,
};
use envoy_types::pb::envoy::service::ext_proc::v3 as pb;
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use futures::StreamExt;
use pb::{ProcessingRequest, ProcessingResponse};
use state::Registry;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tonic::{Request, Response, Status, Streaming};

/// What every exchange needs: the live config, the registry of in-flight requests, the sink.
pub struct Shared {
    pub live: Arc<ArcSwap<Snapshot>>,
    pub registry: Registry,
    pub sink: RecordSink,
    pub streams: AtomicU64,
    pub health: crate::health::Health,
    /// Dynamic keys and the token/budget ledger (Redis, or in memory).
    pub store: crate::store::Store,
    /// Metrics (always) and traces (when configured).
    pub telemetry: crate::telemetry::Telemetry,
    id_prefix: u64,
    id_counter: AtomicU64,
}

impl Shared {
    pub fn new(
        live: Arc<ArcSwap<Snapshot>>,
        sink: RecordSink,
        store: crate::store::Store,
        telemetry: crate::telemetry::Telemetry,
    ) -> Shared {
        Shared {
            telemetry,
            live,
            registry: Registry::default(),
            sink,
            streams: AtomicU64::new(0),
            health: crate::health::Health::default(),
            store,
            id_prefix: rand::random::<u64>(),
            id_counter: AtomicU64::new(0),
        }
    }

    /// Unique without coordination: a random per-process prefix and a counter.
    pub fn next_request_id(&self) -> String {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        format!(
            "req_{:012x}{:08x}",
            self.id_prefix & 0xffff_ffff_ffff,
            n as u32
        )
    }
}

#[derive(Clone)]
pub struct Processor {
    shared: Arc<Shared>,
}

impl Processor {
    pub fn new(shared: Arc<Shared>) -> Processor {
        Processor { shared }
    }

    pub fn into_service(self) -> ExternalProcessorServer<Processor> {
        ExternalProcessorServer::new(self)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20)
    }
}

/// A handler reply: usually one message, sometimes several (held headers released together
/// with the body chunks queued behind them), sometimes none yet (a chunk held back).
pub type Replies = Vec<ProcessingResponse>;

/// One ext_proc stream's logic, fed one message at a time. The downstream side may await the
/// store (dynamic keys, token limits); the upstream side never does I/O.
pub enum Exchange {
    Downstream(downstream::DownstreamExchange),
    Upstream(upstream::UpstreamExchange),
}

impl Exchange {
    async fn on_message(&mut self, msg: ProcessingRequest) -> Replies {
        match self {
            Exchange::Downstream(d) => d.on_message(msg).await,
            Exchange::Upstream(u) => u.on_message(msg),
        }
    }
}

type ResponseStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for Processor {
    type ProcessStream = ResponseStream;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let upstream = request
            .metadata()
            .get(META_PHASE)
            .is_some_and(|v| v.as_bytes() == b"upstream");
        let shared = self.shared.clone();
        let exchange = if upstream {
            Exchange::Upstream(upstream::UpstreamExchange::new(shared.clone()))
        } else {
            Exchange::Downstream(downstream::DownstreamExchange::new(shared.clone()))
        };
        let inbound = request.into_inner();
        // Replies are produced inline as messages arrive (no task or channel per stream); when
        // Envoy ends the stream tonic drops this state, which releases the request state.
        let guard = StreamGuard::new(shared);
        let replies = futures::stream::unfold(
            (inbound, exchange, guard),
            |(mut inbound, mut exchange, guard)| async move {
                match inbound.message().await {
                    Ok(Some(msg)) => {
                        let out = exchange.on_message(msg).await;
                        Some((
                            futures::stream::iter(out.into_iter().map(Ok)),
                            (inbound, exchange, guard),
                        ))
                    }
                    _ => None,
                }
            },
        )
        .flatten();
        Ok(Response::new(Box::pin(replies)))
    }
}

/// Counts open ext_proc streams for `/admin/status`.
struct StreamGuard(Arc<Shared>);

impl StreamGuard {
    fn new(shared: Arc<Shared>) -> StreamGuard {
        shared.streams.fetch_add(1, Ordering::Relaxed);
        shared.telemetry.metrics().extproc_streams_inc();
        StreamGuard(shared)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
        self.0.telemetry.metrics().extproc_streams_dec();
    }
}

// === helpers shared by both exchanges ===

pub fn header<'a>(h: &'a pb::HttpHeaders, name: &str) -> Option<&'a str> {
    h.headers
        .as_ref()?
        .headers
        .iter()
        .find(|v| v.key == name)
        .and_then(|v| {
            if v.raw_value.is_empty() {
                Some(v.value.as_str())
            } else {
                std::str::from_utf8(&v.raw_value).ok()
            }
        })
}

pub fn header_names(h: &pb::HttpHeaders) -> impl Iterator<Item = &str> {
    h.headers
        .iter()
        .flat_map(|m| m.headers.iter())
        .map(|v| v.key.as_str())
}

#[allow(deprecated)] // `append` is deprecated in favour of `append_action`, which we set.
pub fn set(key: &str, value: impl Into<String>) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_string(),
            value: String::new(),
            raw_value: value.into().into_bytes(),
        }),
        append: None,
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        keep_empty_value: false,
    }
}

#[derive(Default)]
pub struct Mutation {
    pub set: Vec<HeaderValueOption>,
    pub remove: Vec<String>,
}

impl Mutation {
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.set.push(set(key, value));
    }
    pub fn remove(&mut self, key: impl Into<String>) {
        self.remove.push(key.into());
    }
    fn into_pb(self) -> Option<pb::HeaderMutation> {
        if self.set.is_empty() && self.remove.is_empty() {
            None
        } else {
            Some(pb::HeaderMutation {
                set_headers: self.set,
                remove_headers: self.remove,
            })
        }
    }
}

fn common(
    m: Mutation,
    body: Option<pb::body_mutation::Mutation>,
    clear_route_cache: bool,
) -> pb::CommonResponse {
    pb::CommonResponse {
        header_mutation: m.into_pb(),
        body_mutation: body.map(|b| pb::BodyMutation { mutation: Some(b) }),
        clear_route_cache,
        ..Default::default()
    }
}

pub fn request_headers_reply(m: Mutation) -> ProcessingResponse {
    reply(pb::processing_response::Response::RequestHeaders(
        pb::HeadersResponse {
            response: Some(common(m, None, false)),
        },
    ))
}

pub fn request_body_reply(
    m: Mutation,
    body: Option<Vec<u8>>,
    clear_route_cache: bool,
) -> ProcessingResponse {
    let body = body.map(pb::body_mutation::Mutation::Body);
    reply(pb::processing_response::Response::RequestBody(
        pb::BodyResponse {
            response: Some(common(m, body, clear_route_cache)),
        },
    ))
}

pub fn response_headers_reply(m: Mutation) -> ProcessingResponse {
    reply(pb::processing_response::Response::ResponseHeaders(
        pb::HeadersResponse {
            response: Some(common(m, None, false)),
        },
    ))
}

/// Replace one streamed response chunk (`None` = pass it through unchanged).
pub fn response_body_reply(body: Option<Vec<u8>>) -> ProcessingResponse {
    response_body_reply_with(Mutation::default(), body)
}

/// A response body reply that also edits the response headers (BUFFERED bodies only).
pub fn response_body_reply_with(m: Mutation, body: Option<Vec<u8>>) -> ProcessingResponse {
    let mutation = body.map(|b| {
        if b.is_empty() {
            pb::body_mutation::Mutation::ClearBody(true)
        } else {
            pb::body_mutation::Mutation::Body(b)
        }
    });
    reply(pb::processing_response::Response::ResponseBody(
        pb::BodyResponse {
            response: Some(common(m, mutation, false)),
        },
    ))
}

/// Ask Envoy for this request's response body in `mode` (a response-headers reply only; the
/// downstream filter allows the override).
pub fn with_response_body_mode(
    mut r: ProcessingResponse,
    mode: BodySendMode,
) -> ProcessingResponse {
    r.mode_override = Some(ProcessingMode {
        request_header_mode: HeaderSendMode::Send as i32,
        response_header_mode: HeaderSendMode::Send as i32,
        request_body_mode: BodySendMode::Buffered as i32,
        response_body_mode: mode as i32,
        request_trailer_mode: HeaderSendMode::Skip as i32,
        response_trailer_mode: HeaderSendMode::Skip as i32,
    });
    r
}

pub fn immediate(status: u16, body: Vec<u8>, m: Mutation) -> ProcessingResponse {
    reply(pb::processing_response::Response::ImmediateResponse(
        pb::ImmediateResponse {
            status: Some(HttpStatus {
                code: i32::from(status),
            }),
            headers: m.into_pb(),
            body,
            grpc_status: None,
            details: "switchyard".into(),
        },
    ))
}

fn reply(r: pb::processing_response::Response) -> ProcessingResponse {
    ProcessingResponse {
        response: Some(r),
        ..Default::default()
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
