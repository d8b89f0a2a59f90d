//! Admin HTTP on the admin port: health, readiness and recent request records.

use crate::extproc::Shared;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use std::sync::Arc;

pub async fn spawn(addr: &str, shared: Arc<Shared>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&shared, req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(())
}

fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let json = |status: u16, v: serde_json::Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(v.to_string())))
            .unwrap_or_default()
    };
    match req.uri().path() {
        "/healthz" | "/readyz" => json(200, serde_json::json!({ "status": "ok" })),
        "/admin/records" => {
            let limit = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            json(
                200,
                serde_json::json!({ "records": shared.sink.recent(limit), "dropped": shared.sink.dropped() }),
            )
        }
        "/admin/status" => json(
            200,
            serde_json::json!({
                "ext_proc_streams": shared.streams.load(std::sync::atomic::Ordering::Relaxed),
                "in_flight": shared.registry.len(),
                "records_dropped": shared.sink.dropped(),
                "cooling_backends": shared.health.cooling(std::time::Instant::now()),
            }),
        ),
        _ => json(
            404,
            serde_json::json!({ "error": { "message": "not found", "type": "invalid_request_error", "code": "unknown_url", "param": null } }),
        ),
    }
}
