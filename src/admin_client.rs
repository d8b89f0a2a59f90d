//! The CLI side of the admin API (`keys create|list|revoke --admin`, `users`, `usage`): one small
//! HTTP/1.1 request per command over a plain TCP connection to the processor's admin port.

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one request and returns the JSON answer; non-2xx answers become errors carrying
/// the server's message.
pub async fn call(
    admin: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let token = std::env::var(crate::admin::ADMIN_TOKEN_ENV).unwrap_or_default();
    call_as(admin, &token, method, path, body).await
}

/// `call` with the admin token given (`switchyard up` holds the one it minted).
pub async fn call_as(
    admin: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let addr = admin.trim_start_matches("http://").trim_end_matches('/');
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot reach the admin API at {addr}"))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
        payload.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed admin API answer")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed admin API status line")?;
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let message = value
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or(body);
        bail!("admin API answered {status}: {message}");
    }
    Ok(value)
}
