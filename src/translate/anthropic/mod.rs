//! Anthropic Messages wire (<https://docs.anthropic.com/en/api/messages>).
//! The client still speaks OpenAI chat completions; `from_openai` holds the
//! translators, this file the wire-level helpers they share.

pub mod from_openai;

use serde_json::Value;

/// Maps an Anthropic `stop_reason` to an OpenAI `finish_reason`.
pub(crate) fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Prompt tokens as OpenAI counts them: Anthropic reports cached prompt
/// tokens separately from `input_tokens`, OpenAI includes them.
pub(crate) fn input_tokens(usage: &Value) -> u64 {
    [
        "input_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ]
    .iter()
    .map(|k| super::u64_at(usage, k))
    .fold(0u64, u64::saturating_add)
}

/// Extracts (message, type) from `{"type":"error","error":{"type","message"}}`.
pub(crate) fn provider_error(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?;
    let text = |k: &str| err.get(k).and_then(Value::as_str).map(str::to_owned);
    Some((text("message"), text("type")))
}

#[cfg(test)]
mod tests {
    use crate::translate::{Wire, provider_error};

    #[test]
    fn provider_error_table() {
        let cases: &[(u16, &str, &str, &str)] = &[
            (
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                "Overloaded",
                "overloaded_error",
            ),
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: 100000 > 8192, which is the maximum allowed"},"request_id":"req_011"}"#,
                "max_tokens: 100000 > 8192, which is the maximum allowed",
                "invalid_request_error",
            ),
            (
                401,
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
                "invalid x-api-key",
                "authentication_error",
            ),
            (
                404,
                r#"{"error":{}}"#,
                "upstream provider returned HTTP 404",
                "not_found_error",
            ),
            (
                500,
                "Internal Server Error",
                "upstream provider returned HTTP 500",
                "api_error",
            ),
        ];
        for (status, body, message, kind) in cases {
            let e = provider_error(Wire::Anthropic, *status, body.as_bytes());
            assert_eq!(e.message, *message, "{body}");
            assert_eq!(e.kind, *kind, "{body}");
        }
    }
}
