//! The OTLP exporter: one background task owns the transport. Requests hand it finished spans
//! through a bounded queue with `try_send` (never waiting); the task batches them, and sends
//! metrics every `export_interval`. When the collector is slow or down, exports time out or
//! fail, their spans are dropped and counted, and the queue's bound keeps memory flat.
//!
//! Transports: OTLP/gRPC through tonic's client (`tonic::client::Grpc` + `tonic-prost`, the
//! same stack the ext_proc server uses) and OTLP/HTTP (protobuf bodies, `POST /v1/traces`,
//! `/v1/metrics`) through hyper's HTTP/1.1 client with a kept-alive connection. Plain-text only.

use super::config::{Protocol, TelemetryConfig};
use super::metrics::Metrics;
use super::proto;
use super::wire;
use super::{ProviderNames, unix_nanos_now};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tonic::codegen::http::{self, Uri, uri::PathAndQuery};
use tonic::transport::{Channel, Endpoint};

const TRACE_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const METRICS_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
/// At most one warning per this long about failing exports (the counters count them all).
const WARN_EVERY: Duration = Duration::from_secs(60);

pub enum Msg {
    /// One request's encoded spans (`ScopeSpans.spans` entries) and how many there are.
    Spans { bytes: Vec<u8>, count: usize },
    /// Export everything queued so far (spans and metrics), then answer.
    Flush(oneshot::Sender<()>),
}

pub struct Exporter {
    rx: mpsc::Receiver<Msg>,
    cfg: TelemetryConfig,
    metrics: Arc<Metrics>,
    names: Arc<ProviderNames>,
    transport: Transport,
    resource: proto::Resource,
    scope: proto::InstrumentationScope,
    /// `resource` and `scope`, encoded once.
    resource_bytes: Vec<u8>,
    scope_bytes: Vec<u8>,
    start_ns: u64,
    /// Encoded spans waiting for the next export, and their number.
    pending: Vec<u8>,
    pending_spans: usize,
    last_warn: Option<Instant>,
}

enum Transport {
    Grpc {
        channel: Channel,
        metadata: tonic::metadata::MetadataMap,
    },
    Http(HttpClient),
}

impl Exporter {
    pub fn new(
        rx: mpsc::Receiver<Msg>,
        cfg: TelemetryConfig,
        metrics: Arc<Metrics>,
        names: Arc<ProviderNames>,
    ) -> Result<Exporter, String> {
        let transport = match cfg.protocol {
            Protocol::Grpc => {
                let channel = Endpoint::from_shared(cfg.endpoint.to_string())
                    .map_err(|e| format!("OTLP endpoint {}: {e}", cfg.endpoint))?
                    .connect_timeout(cfg.export_timeout.min(Duration::from_secs(5)))
                    .timeout(cfg.export_timeout)
                    .connect_lazy();
                let mut headers = http::HeaderMap::new();
                for (k, v) in &cfg.headers {
                    headers.append(k.clone(), v.clone());
                }
                Transport::Grpc {
                    channel,
                    metadata: tonic::metadata::MetadataMap::from_headers(headers),
                }
            }
            Protocol::Http => Transport::Http(HttpClient::new(&cfg)?),
        };
        let mut attrs = vec![
            proto::kv_str("service.name", cfg.service_name.as_str()),
            proto::kv_str("service.version", env!("CARGO_PKG_VERSION")),
            proto::kv_str("telemetry.sdk.name", "switchyard"),
            proto::kv_str("telemetry.sdk.language", "rust"),
        ];
        attrs.extend(
            cfg.resource_attributes
                .iter()
                .map(|(k, v)| proto::kv_str(k, v.as_str())),
        );
        let resource = proto::Resource { attributes: attrs };
        let scope = proto::InstrumentationScope {
            name: "switchyard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        Ok(Exporter {
            rx,
            metrics,
            names,
            transport,
            resource_bytes: resource.encode_to_vec(),
            scope_bytes: scope.encode_to_vec(),
            resource,
            scope,
            start_ns: unix_nanos_now(),
            pending: Vec::new(),
            pending_spans: 0,
            last_warn: None,
            cfg,
        })
    }

    pub async fn run(mut self) {
        let mut span_tick = tokio::time::interval_at(
            Instant::now() + self.cfg.span_flush_interval,
            self.cfg.span_flush_interval,
        );
        span_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut metrics_tick = tokio::time::interval_at(
            Instant::now() + self.cfg.export_interval,
            self.cfg.export_interval,
        );
        metrics_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(Msg::Spans { bytes, count }) => {
                        self.add(&bytes, count);
                        if self.pending_spans >= self.cfg.max_batch_spans {
                            self.export_spans().await;
                        }
                    }
                    Some(Msg::Flush(done)) => {
                        let mut waiting = vec![done];
                        while let Ok(m) = self.rx.try_recv() {
                            match m {
                                Msg::Spans { bytes, count } => self.add(&bytes, count),
                                Msg::Flush(d) => waiting.push(d),
                            }
                            if self.pending_spans >= self.cfg.max_batch_spans {
                                self.export_spans().await;
                            }
                        }
                        self.export_spans().await;
                        self.export_metrics().await;
                        for d in waiting {
                            let _ = d.send(());
                        }
                    }
                    None => {
                        self.export_spans().await;
                        self.export_metrics().await;
                        return;
                    }
                },
                _ = span_tick.tick() => self.export_spans().await,
                _ = metrics_tick.tick() => self.export_metrics().await,
            }
        }
    }

    fn add(&mut self, bytes: &[u8], count: usize) {
        self.pending.extend_from_slice(bytes);
        self.pending_spans += count;
    }

    /// `ExportTraceServiceRequest { resource_spans: [{ resource, scope_spans: [{ scope,
    /// spans }] }] }` around the pending spans, which are copied once.
    fn trace_request(&self) -> Bytes {
        let scope_spans = wire::len_field_len(1, self.scope_bytes.len()) + self.pending.len();
        let resource_spans =
            wire::len_field_len(1, self.resource_bytes.len()) + wire::len_field_len(2, scope_spans);
        let mut b = Vec::with_capacity(wire::len_field_len(1, resource_spans));
        wire::len_prefix(&mut b, 1, resource_spans);
        wire::bytes_field(&mut b, 1, &self.resource_bytes);
        wire::len_prefix(&mut b, 2, scope_spans);
        wire::bytes_field(&mut b, 1, &self.scope_bytes);
        b.extend_from_slice(&self.pending);
        Bytes::from(b)
    }

    async fn export_spans(&mut self) {
        if self.pending_spans == 0 {
            return;
        }
        let body = self.trace_request();
        let n = self.pending_spans as u64;
        self.pending.clear();
        self.pending_spans = 0;
        if self.pending.capacity() > 4 << 20 {
            self.pending.shrink_to(1 << 20);
        }
        let sent: Result<proto::ExportTraceServiceResponse, String> = match &mut self.transport {
            Transport::Grpc { channel, metadata } => {
                grpc_export(channel, metadata, TRACE_PATH, body, self.cfg.export_timeout).await
            }
            Transport::Http(c) => c.export("/v1/traces", body, self.cfg.export_timeout).await,
        };
        let m = &self.metrics;
        match sent {
            Ok(resp) => {
                let rejected = resp
                    .partial_success
                    .map_or(0, |p| u64::try_from(p.rejected).unwrap_or(0))
                    .min(n);
                m.spans_exported.fetch_add(n - rejected, Ordering::Relaxed);
                m.spans_dropped.fetch_add(rejected, Ordering::Relaxed);
            }
            Err(e) => {
                m.spans_dropped.fetch_add(n, Ordering::Relaxed);
                m.exports_failed.fetch_add(1, Ordering::Relaxed);
                self.warn("spans", n, &e);
            }
        }
    }

    async fn export_metrics(&mut self) {
        let names = self.names.load();
        let metrics = self
            .metrics
            .to_otlp(self.start_ns, unix_nanos_now(), &names);
        let req = proto::ExportMetricsServiceRequest {
            resource_metrics: vec![proto::ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![proto::ScopeMetrics {
                    scope: Some(self.scope.clone()),
                    metrics,
                }],
            }],
        };
        let body = Bytes::from(req.encode_to_vec());
        let sent: Result<proto::ExportMetricsServiceResponse, String> = match &mut self.transport {
            Transport::Grpc { channel, metadata } => {
                grpc_export(
                    channel,
                    metadata,
                    METRICS_PATH,
                    body,
                    self.cfg.export_timeout,
                )
                .await
            }
            Transport::Http(c) => c.export("/v1/metrics", body, self.cfg.export_timeout).await,
        };
        if let Err(e) = sent {
            self.metrics.exports_failed.fetch_add(1, Ordering::Relaxed);
            self.warn("metrics", 0, &e);
        }
    }

    fn warn(&mut self, what: &str, dropped: u64, error: &str) {
        let now = Instant::now();
        if self
            .last_warn
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            return;
        }
        self.last_warn = Some(now);
        tracing::warn!(
            endpoint = %self.cfg.endpoint,
            signal = what,
            dropped,
            spans_dropped_total = self.metrics.spans_dropped(),
            error,
            "OTLP export failed (further failures are counted, not logged, for a minute)"
        );
    }
}

async fn grpc_export<Resp>(
    channel: &Channel,
    metadata: &tonic::metadata::MetadataMap,
    path: &'static str,
    body: Bytes,
    timeout: Duration,
) -> Result<Resp, String>
where
    Resp: Message + Default + Send + 'static,
{
    let call = async {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready()
            .await
            .map_err(|e| format!("collector unavailable: {e}"))?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = metadata.clone();
        grpc.unary(
            request,
            PathAndQuery::from_static(path),
            RawCodec::<Resp>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| format!("collector answered {:?}: {}", s.code(), s.message()))
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// A gRPC codec sending already-encoded protobuf bytes and decoding the answer with prost.
struct RawCodec<Resp>(std::marker::PhantomData<fn() -> Resp>);

impl<Resp> Default for RawCodec<Resp> {
    fn default() -> Self {
        RawCodec(std::marker::PhantomData)
    }
}

struct RawEncoder;
struct ProstDecoder<Resp>(std::marker::PhantomData<fn() -> Resp>);

impl<Resp: Message + Default + Send + 'static> tonic::codec::Codec for RawCodec<Resp> {
    type Encode = Bytes;
    type Decode = Resp;
    type Encoder = RawEncoder;
    type Decoder = ProstDecoder<Resp>;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder(std::marker::PhantomData)
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl<Resp: Message + Default> tonic::codec::Decoder for ProstDecoder<Resp> {
    type Item = Resp;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Resp>, tonic::Status> {
        Resp::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable answer: {e}")))
    }
}

/// OTLP/HTTP over one kept-alive HTTP/1.1 connection, reopened after an error.
struct HttpClient {
    addr: String,
    authority: String,
    base_path: String,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    conn: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl HttpClient {
    fn new(cfg: &TelemetryConfig) -> Result<HttpClient, String> {
        let uri: &Uri = &cfg.endpoint;
        let host = uri
            .host()
            .ok_or_else(|| format!("OTLP endpoint {uri} has no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let authority = uri
            .authority()
            .map_or_else(|| host.to_string(), |a| a.as_str().to_string());
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(HttpClient {
            addr: if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            },
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
            headers: cfg.headers.clone(),
            conn: None,
        })
    }

    async fn export<Resp: Message + Default>(
        &mut self,
        path: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Resp, String> {
        let result = tokio::time::timeout(timeout, self.send(path, body)).await;
        match result {
            Ok(Ok(bytes)) => Resp::decode(bytes).or_else(|_| Ok(Resp::default())),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(format!("no answer within {} ms", timeout.as_millis()))
            }
        }
    }

    async fn send(&mut self, path: &str, body: Bytes) -> Result<Bytes, String> {
        let reuse = match self.conn.take() {
            Some(mut c) => c.ready().await.is_ok().then_some(c),
            None => None,
        };
        let mut conn = match reuse {
            Some(c) => c,
            None => {
                let stream = tokio::net::TcpStream::connect(&self.addr)
                    .await
                    .map_err(|e| format!("cannot connect to {}: {e}", self.addr))?;
                let _ = stream.set_nodelay(true);
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| format!("HTTP handshake with {}: {e}", self.addr))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                send
            }
        };
        let mut builder = http::Request::post(format!("{}{path}", self.base_path))
            .header(http::header::HOST, self.authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf");
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| format!("building the export request: {e}"))?;
        let resp = conn
            .send_request(request)
            .await
            .map_err(|e| format!("sending to {}: {e}", self.addr))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the collector's answer: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("collector answered HTTP {status}"));
        }
        self.conn = Some(conn);
        Ok(bytes)
    }
}
