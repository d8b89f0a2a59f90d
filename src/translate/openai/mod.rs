//! OpenAI wire (OpenAI and OpenAI-compatible providers such as Ollama, vLLM
//! and Groq). Requests and responses pass through nearly untouched; this file
//! holds the wire-level helpers shared by the translators.

pub mod from_openai;

use super::Usage;
use serde_json::Value;

/// Reads an OpenAI-style usage object. Some compatible servers use
/// `input_tokens`/`output_tokens`, so those are accepted as fallbacks.
pub(crate) fn usage_from(v: &Value) -> Option<Usage> {
    let obj = v.as_object()?;
    let pick = |a: &str, b: &str| {
        obj.get(a)
            .or_else(|| obj.get(b))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Some(Usage {
        input_tokens: pick("prompt_tokens", "input_tokens"),
        output_tokens: pick("completion_tokens", "output_tokens"),
    })
}

/// Extracts (message, type) from an OpenAI-compatible error body. Handles
/// `{"error":{"message","type","code"}}`, `{"error":"text"}` (Ollama),
/// `{"object":"error","message","type"}` (vLLM) and `{"detail": ...}`.
pub(crate) fn provider_error(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let as_string = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    match v.get("error") {
        Some(err @ Value::Object(_)) => {
            let message = as_string(err.get("message"));
            let kind = as_string(err.get("type")).or_else(|| as_string(err.get("code")));
            Some((message, kind))
        }
        Some(Value::String(s)) => Some((Some(s.clone()), None)),
        _ => {
            let message = as_string(v.get("message")).or_else(|| match v.get("detail") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(d @ (Value::Array(_) | Value::Object(_))) => Some(d.to_string()),
                _ => None,
            });
            Some((message, as_string(v.get("type"))))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::translate::{Wire, provider_error};

    #[test]
    fn provider_error_table() {
        let cases: &[(u16, &str, &str, &str)] = &[
            (
                401,
                r#"{"error":{"message":"Incorrect API key provided: sk-xx.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
                "Incorrect API key provided: sk-xx.",
                "invalid_request_error",
            ),
            (
                429,
                r#"{"error":{"message":"Rate limit reached","type":null,"code":"rate_limit_exceeded"}}"#,
                "Rate limit reached",
                "rate_limit_exceeded",
            ),
            (
                404,
                r#"{"error":"model 'llama9' not found"}"#,
                "model 'llama9' not found",
                "not_found_error",
            ),
            (
                400,
                r#"{"object":"error","message":"max_tokens is too large","type":"BadRequestError","param":null,"code":400}"#,
                "max_tokens is too large",
                "BadRequestError",
            ),
            (
                422,
                r#"{"detail":"Not Found"}"#,
                "Not Found",
                "invalid_request_error",
            ),
            (
                500,
                r#"{"error":{"message":"","type":"server_error"}}"#,
                "upstream provider returned HTTP 500",
                "server_error",
            ),
            (
                503,
                "upstream connect error",
                "upstream provider returned HTTP 503",
                "api_error",
            ),
            (
                400,
                "[1,2]",
                "upstream provider returned HTTP 400",
                "invalid_request_error",
            ),
        ];
        for (status, body, message, kind) in cases {
            let e = provider_error(Wire::OpenAi, *status, body.as_bytes());
            assert_eq!(e.message, *message, "{body}");
            assert_eq!(e.kind, *kind, "{body}");
        }
    }
}
