//! Fake OpenAI-compatible upstream for the benchmark: answers every POST with the same
//! non-streamed `chat.completion` (with usage) over keep-alive HTTP/1.1, as cheaply as it can,
//! so the measurement is of what sits between the load generator and this server.
//!
//! `cargo run --release --example bench-upstream -- --listen 127.0.0.1:18000`

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::net::TcpListener;

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the bench upstream."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}}"#;

#[derive(Parser)]
#[command(about = "Fake OpenAI chat.completion upstream for the Switchyard benchmark")]
struct Args {
    /// host:port to listen on
    #[arg(long, default_value = "127.0.0.1:18000")]
    listen: String,
    /// Runtime worker threads (1 = a single-threaded runtime)
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    runtime(args.threads)?.block_on(serve(&args.listen))
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

async fn serve(addr: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("bench-upstream listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle));
            // A client closing its connection mid-request is normal at the end of a run.
            let _ = conn.await;
        });
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method_ok = req.method() == Method::POST;
    // Read the whole request body, as a real provider would, before answering.
    let _ = req.into_body().collect().await;
    let mut resp = if method_ok {
        Response::new(Full::new(Bytes::from_static(COMPLETION.as_bytes())))
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(
            br#"{"error":{"message":"use POST","type":"invalid_request_error","code":null,"param":null}}"#,
        )));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        r
    };
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}
