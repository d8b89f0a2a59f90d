//! Error bodies in the Anthropic shape,
//! `{"type":"error","error":{"type":…,"message":…}}`
//! (<https://docs.claude.com/en/api/errors>).

use super::ErrorEnvelope;
use crate::errors::Rejection;
use serde_json::Value;

/// Anthropic's error `type` for an HTTP status, per the documented list:
/// 400 invalid_request_error, 401 authentication_error, 402 billing_error,
/// 403 permission_error, 404 not_found_error, 413 request_too_large,
/// 429 rate_limit_error, 500 api_error, 504 timeout_error,
/// 529 overloaded_error. Other 4xx are invalid_request_error (as the docs
/// say Anthropic does), other 5xx (502, 503, …) api_error.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type":<by status>,"message":message}}`.
pub fn anthropic_error_body(status: u16, message: &str) -> Vec<u8> {
    serde_json::to_vec(&ErrorEnvelope::new(anthropic_error_type(status), message))
        .unwrap_or_default()
}

/// A gateway rejection, in the Anthropic shape.
pub fn rejection_body(rejection: &Rejection) -> Vec<u8> {
    anthropic_error_body(rejection.status, &rejection.message)
}

/// Any OpenAI-shaped error body the gateway produced
/// (`{"error":{"message","type","code","param"}}`, or `{"error":"text"}`)
/// -> the Anthropic shape, typed by `status`. A body without a usable
/// message gets `"request failed with HTTP <status>"`.
pub fn from_openai_error(status: u16, openai_body: &[u8]) -> Vec<u8> {
    let parsed: Option<Value> = serde_json::from_slice(openai_body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(|e| match e {
            Value::String(s) => Some(s.as_str()),
            _ => e.get("message").and_then(Value::as_str),
        })
        .filter(|m| !m.trim().is_empty())
        .map_or_else(
            || format!("request failed with HTTP {status}"),
            str::to_owned,
        );
    anthropic_error_body(status, &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (405, "invalid_request_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "api_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
            (200, "api_error"),
        ];
        for (status, kind) in cases {
            assert_eq!(anthropic_error_type(status), kind, "{status}");
        }
    }

    #[test]
    fn body_exact() {
        assert_eq!(
            String::from_utf8(anthropic_error_body(529, "Overloaded")).unwrap(),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
        );
        assert_eq!(
            String::from_utf8(anthropic_error_body(400, "bad \"x\"\n")).unwrap(),
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad \"x\"\n"}}"#
        );
    }

    #[test]
    fn from_openai_table() {
        let missing = Rejection::missing_key();
        let cases: Vec<(u16, Vec<u8>, &str)> = vec![
            (
                401,
                missing.body(),
                r#"{"type":"error","error":{"type":"authentication_error","message":"Missing API key: send `Authorization: Bearer sk-…` or `x-api-key: sk-…`"}}"#,
            ),
            (
                404,
                br#"{"error":{"message":"model 'x' not found","type":"invalid_request_error","code":"model_not_found","param":null}}"#.to_vec(),
                r#"{"type":"error","error":{"type":"not_found_error","message":"model 'x' not found"}}"#,
            ),
            (
                400,
                br#"{"error":{"message":"max_tokens: Field required","type":"invalid_request_error","code":"invalid_request","param":"max_tokens"}}"#.to_vec(),
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#,
            ),
            (
                502,
                br#"{"error":{"message":"All backends failed; last error: status 503","type":"upstream_error","code":"all_backends_failed","param":null}}"#.to_vec(),
                r#"{"type":"error","error":{"type":"api_error","message":"All backends failed; last error: status 503"}}"#,
            ),
            (
                429,
                br#"{"error":"slow down"}"#.to_vec(),
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
            ),
            (
                503,
                b"<html>oops</html>".to_vec(),
                r#"{"type":"error","error":{"type":"api_error","message":"request failed with HTTP 503"}}"#,
            ),
            (
                500,
                br#"{"error":{"message":"  "}}"#.to_vec(),
                r#"{"type":"error","error":{"type":"api_error","message":"request failed with HTTP 500"}}"#,
            ),
            (
                413,
                Rejection::too_large(1024).body(),
                r#"{"type":"error","error":{"type":"request_too_large","message":"Request body is larger than the gateway's limit of 1024 bytes"}}"#,
            ),
        ];
        for (status, body, expected) in cases {
            assert_eq!(
                String::from_utf8(from_openai_error(status, &body)).unwrap(),
                expected,
                "{status}"
            );
        }
        let r = Rejection::malformed("bad json");
        assert_eq!(
            String::from_utf8(rejection_body(&r)).unwrap(),
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad json"}}"#
        );
    }
}
