//! Closed-loop HTTP/1.1 load generator for the benchmark.
//!
//! `--connections N` tasks each own one keep-alive connection and send the next request as soon
//! as the previous answer is read. After `--warmup` seconds, every request that starts and
//! completes inside the next `--seconds` is measured; only 200s count as ok (and as latency
//! samples), anything else — another status, a reset, a timeout — is an error. Prints one JSON
//! line: `{"rps","p50_ms","p99_ms","ok","errors",...}`.
//!
//! `--once` sends a single request and prints its status and body (exit 1 unless 200).

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(about = "Closed-loop HTTP/1.1 load generator for the Switchyard benchmark")]
struct Args {
    /// http://host:port/path
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Measured duration
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Unmeasured warm-up before the measured duration
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// "name: value"; repeatable
    #[arg(long = "header")]
    headers: Vec<String>,
    #[arg(long, default_value = "")]
    body: String,
    #[arg(long, default_value = "POST")]
    method: String,
    /// Per-request timeout in seconds (a timeout is an error and the connection is replaced)
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Runtime worker threads (1 = a single-threaded runtime)
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Send one request, print status and body, exit non-zero unless 200
    #[arg(long)]
    once: bool,
}

/// What every request is built from.
struct Target {
    addr: String,
    method: Method,
    path: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    timeout: Duration,
}

impl Target {
    fn from_args(a: &Args) -> anyhow::Result<Target> {
        let uri: Uri = a
            .url
            .parse()
            .with_context(|| format!("bad --url {}", a.url))?;
        if uri.scheme_str() != Some("http") {
            bail!("--url must be http://host:port/path");
        }
        let authority = uri.authority().context("--url has no host")?.clone();
        let addr = match authority.port_u16() {
            Some(_) => authority.to_string(),
            None => format!("{}:80", authority.host()),
        };
        let path: Uri = uri.path_and_query().map_or("/", |p| p.as_str()).parse()?;
        let mut headers = vec![(HOST, HeaderValue::from_str(authority.as_str())?)];
        for h in &a.headers {
            let (k, v) = h
                .split_once(':')
                .with_context(|| format!("--header '{h}' is not 'name: value'"))?;
            headers.push((
                HeaderName::from_bytes(k.trim().as_bytes())?,
                HeaderValue::from_str(v.trim())?,
            ));
        }
        if !a.body.is_empty() && !headers.iter().any(|(k, _)| k == CONTENT_TYPE) {
            headers.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        }
        Ok(Target {
            addr,
            method: a.method.parse()?,
            path,
            headers,
            body: Bytes::from(a.body.clone()),
            timeout: Duration::from_secs_f64(a.timeout),
        })
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.path.clone();
        let h = req.headers_mut();
        for (k, v) in &self.headers {
            h.append(k.clone(), v.clone());
        }
        req
    }
}

async fn connect(addr: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request on an existing connection: status and the fully read body.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    target: &Target,
) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let resp = sender.send_request(target.request()).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

#[derive(Default)]
struct Tally {
    /// Latencies of measured 200s, in microseconds.
    latencies_us: Vec<u32>,
    errors: u64,
    warmup_errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, in_window: bool, what: impl FnOnce() -> String) {
        if in_window {
            self.errors += 1;
        } else {
            self.warmup_errors += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }
}

/// One connection's closed loop until `end`.
async fn worker(target: Arc<Target>, measure_from: Instant, end: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < end {
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            match connect(&target.addr).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tally.error(Instant::now() >= measure_from, || format!("connect: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(sender) = conn.as_mut() else {
            continue;
        };
        let started = Instant::now();
        let result = tokio::time::timeout(target.timeout, send(sender, &target)).await;
        let done = Instant::now();
        let in_window = done >= measure_from;
        match result {
            Ok(Ok((StatusCode::OK, _))) => {
                if started >= measure_from && done <= end {
                    let us = done.duration_since(started).as_micros();
                    tally
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Ok(Ok((status, body))) => {
                tally.error(in_window, || {
                    format!(
                        "status {}: {}",
                        status.as_u16(),
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    )
                });
            }
            Ok(Err(e)) => {
                tally.error(in_window, || format!("request: {e}"));
                conn = None;
            }
            Err(_) => {
                tally.error(in_window, || format!("timeout after {:?}", target.timeout));
                conn = None;
            }
        }
    }
    tally
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

async fn run(args: Args) -> anyhow::Result<()> {
    let target = Arc::new(Target::from_args(&args)?);
    if args.once {
        let mut sender = connect(&target.addr)
            .await
            .with_context(|| format!("connecting to {}", target.addr))?;
        let (status, body) = tokio::time::timeout(target.timeout, send(&mut sender, &target))
            .await
            .context("request timed out")??;
        println!("{}", status.as_u16());
        println!("{}", String::from_utf8_lossy(&body));
        if status != StatusCode::OK {
            std::process::exit(1);
        }
        return Ok(());
    }

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.seconds);
    let tasks: Vec<_> = (0..args.connections.max(1))
        .map(|_| tokio::spawn(worker(target.clone(), measure_from, end)))
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        let tally = t.await?;
        all.latencies_us.extend(tally.latencies_us);
        all.errors += tally.errors;
        all.warmup_errors += tally.warmup_errors;
        all.first_error = all.first_error.or(tally.first_error);
    }
    all.latencies_us.sort_unstable();
    let ok = all.latencies_us.len() as u64;
    let mean_ms = if ok == 0 {
        0.0
    } else {
        all.latencies_us.iter().map(|&u| f64::from(u)).sum::<f64>() / ok as f64 / 1000.0
    };
    let line = serde_json::json!({
        "rps": (ok as f64 / args.seconds * 10.0).round() / 10.0,
        "p50_ms": percentile_ms(&all.latencies_us, 0.50),
        "p99_ms": percentile_ms(&all.latencies_us, 0.99),
        "ok": ok,
        "errors": all.errors,
        "warmup_errors": all.warmup_errors,
        "mean_ms": (mean_ms * 1000.0).round() / 1000.0,
        "max_ms": percentile_ms(&all.latencies_us, 1.0),
        "connections": args.connections,
        "seconds": args.seconds,
        "first_error": all.first_error,
    });
    println!("{line}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    rt.block_on(run(args))
}
