//! Amazon Bedrock Runtime wire: the Converse / ConverseStream API for chat
//! (<https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>)
//! and InvokeModel for Titan and Cohere embeddings. The client still speaks
//! OpenAI; `from_openai` holds the translators, `eventstream` the binary
//! framing of streamed responses, this file the wire-level helpers.
//!
//! Requests must be SigV4-signed for service `bedrock` (see `crate::sigv4`);
//! that happens outside this pure module.

pub mod eventstream;
pub mod from_openai;

use serde_json::Value;

/// Maps a Converse `stopReason` to an OpenAI `finish_reason`.
pub(crate) fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence and anything new.
        _ => "stop",
    }
}

/// Prompt tokens as OpenAI counts them: Converse reports cache reads and
/// writes separately from `inputTokens`, OpenAI includes them.
pub(crate) fn input_tokens(usage: &Value) -> u64 {
    [
        "inputTokens",
        "cacheReadInputTokens",
        "cacheWriteInputTokens",
    ]
    .iter()
    .map(|k| super::u64_at(usage, k))
    .fold(0u64, u64::saturating_add)
}

/// Extracts the message from a Bedrock error body, `{"message":"..."}`
/// (`{"Message":"..."}` on some paths). The error name travels in the
/// `x-amzn-ErrorType` header, which this body-only API never sees, so the
/// type is left to the status-based fallback.
pub(crate) fn provider_error(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let message = ["message", "Message"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(str::to_owned);
    Some((message, None))
}

/// Percent-encodes one URI path label the way the AWS SDKs do for
/// `{modelId}`: everything but RFC 3986 unreserved characters, so `:` is
/// `%3A` and the `/` of an ARN is `%2F`.
pub(crate) fn encode_label(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for &b in label.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::{Wire, provider_error as dispatch_error};

    #[test]
    fn label_encoding_matches_the_sdks() {
        // Expected values are what botocore puts on the wire.
        assert_eq!(
            encode_label("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            "anthropic.claude-3-5-sonnet-20240620-v1%3A0"
        );
        assert_eq!(
            encode_label(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
            ),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-sonnet-20240620-v1%3A0"
        );
        assert_eq!(encode_label("a b~é"), "a%20b~%C3%A9");
    }

    #[test]
    fn finish_reasons() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
            ("something_new", "stop"),
        ] {
            assert_eq!(finish_reason(stop), finish, "{stop}");
        }
    }

    #[test]
    fn provider_error_table() {
        let cases: &[(u16, &str, &str, &str)] = &[
            (
                400,
                r#"{"message":"This model doesn't support the image field for user messages. Remove image and try again."}"#,
                "This model doesn't support the image field for user messages. Remove image and try again.",
                "invalid_request_error",
            ),
            (
                429,
                r#"{"message":"Too many requests, please wait before trying again."}"#,
                "Too many requests, please wait before trying again.",
                "rate_limit_error",
            ),
            (
                403,
                r#"{"Message":"User: arn:aws:iam::123456789012:user/x is not authorized to perform: bedrock:InvokeModel"}"#,
                "User: arn:aws:iam::123456789012:user/x is not authorized to perform: bedrock:InvokeModel",
                "permission_error",
            ),
            (
                404,
                r#"{"message":"Could not resolve the foundation model from the provided model identifier."}"#,
                "Could not resolve the foundation model from the provided model identifier.",
                "not_found_error",
            ),
            (
                424,
                r#"{"message":"Received error from model","originalStatusCode":500}"#,
                "Received error from model",
                "api_error",
            ),
            (
                503,
                r#"{"message":""}"#,
                "upstream provider returned HTTP 503",
                "api_error",
            ),
            (
                500,
                "<html>oops</html>",
                "upstream provider returned HTTP 500",
                "api_error",
            ),
        ];
        for (status, body, message, kind) in cases {
            let e = dispatch_error(Wire::Bedrock, *status, body.as_bytes());
            assert_eq!(e.message, *message, "{body}");
            assert_eq!(e.kind, *kind, "{body}");
        }
    }
}
