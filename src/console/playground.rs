//! The Playground: one chat completion sent through the proxy (Envoy → this processor → the
//! provider), exactly as a client would, with the key the user chose.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_RESPONSE: usize = 4 << 20;

pub(crate) struct Reply {
    pub status: u16,
    pub request_id: Option<String>,
    pub latency_ms: u64,
    pub body: Value,
}

impl Reply {
    /// The assistant's text (OpenAI shape), if the call succeeded.
    pub fn content(&self) -> Option<&str> {
        self.body
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
    }

    pub fn error(&self) -> Option<&str> {
        self.body.pointer("/error/message").and_then(Value::as_str)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "status": self.status,
            "request_id": self.request_id,
            "latency_ms": self.latency_ms,
            "model": self.body.get("model"),
            "content": self.content(),
            "usage": self.body.get("usage"),
            "error": self.body.get("error"),
        })
    }
}

/// `http://host:port/prefix` → (`host:port`, `/prefix`). Only plain HTTP: the proxy endpoint
/// the Console talks to is the local Envoy listener.
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!(
            "the Playground needs an http:// proxy endpoint (set SWITCHYARD_PROXY_URL), not {url}"
        )
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    Ok((
        authority.to_string(),
        path.trim_end_matches('/').to_string(),
    ))
}

pub(crate) async fn send(
    endpoint: &str,
    key: &str,
    model: &str,
    message: &str,
) -> Result<Reply, String> {
    let (authority, prefix) = split_url(endpoint)?;
    let body = json!({ "model": model, "messages": [{ "role": "user", "content": message }] });
    let started = Instant::now();
    let run = async {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("cannot reach the proxy at {authority}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("proxy handshake failed: {e}"))?;
        tokio::spawn(conn);
        let req = Request::post(format!("{prefix}/chat/completions"))
            .header("host", &authority)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .header("user-agent", "switchyard-console-playground")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| format!("bad request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("proxy request failed: {e}"))?;
        let status = resp.status().as_u16();
        let request_id = resp
            .headers()
            .get(crate::extproc::downstream::RESPONSE_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| format!("reading the proxy's answer failed: {e}"))?
            .to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) }));
        Ok::<_, String>((status, request_id, body))
    };
    let (status, request_id, body) = tokio::time::timeout(TIMEOUT, run)
        .await
        .map_err(|_| format!("the proxy did not answer within {} s", TIMEOUT.as_secs()))??;
    Ok(Reply {
        status,
        request_id,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        body,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn proxy_urls() {
        assert_eq!(
            super::split_url("http://127.0.0.1:8080/v1/"),
            Ok(("127.0.0.1:8080".into(), "/v1".into()))
        );
        assert!(super::split_url("https://gw.example/v1").is_err());
    }
}
