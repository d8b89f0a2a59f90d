//! Cohere v2 wire (<https://docs.cohere.com/reference/chat>, `POST /v2/chat` and
//! `POST /v2/embed`). The client still speaks OpenAI; `from_openai` holds the
//! translators, this file the wire-level helpers they share.

pub mod from_openai;

use super::Usage;
use serde_json::Value;

/// Maps a Cohere `finish_reason` to an OpenAI `finish_reason`. `ERROR` is not
/// mapped here: the translators treat it as a failed generation.
pub(crate) fn finish_reason(reason: &str) -> &'static str {
    match reason {
        // TIMEOUT: generation was cut short, like a token limit.
        "MAX_TOKENS" | "TIMEOUT" => "length",
        "TOOL_CALL" => "tool_calls",
        // COMPLETE, STOP_SEQUENCE and anything new.
        _ => "stop",
    }
}

/// A token count that Cohere may send as an integer or (in `billed_units`) as a
/// float such as `5.0`; 0 when absent or not a non-negative number.
fn count(v: Option<&Value>) -> Option<u64> {
    let v = v?;
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            // `as` saturates, so an absurd float cannot wrap or panic.
            .map(|f| f.round() as u64)
    })
}

/// Usage from a Cohere `usage` object. `tokens` (what the model actually
/// processed, the OpenAI meaning) is preferred field by field over
/// `billed_units` (what Cohere invoices, which can be smaller).
pub(crate) fn usage(u: &Value) -> Usage {
    let field = |key: &str| {
        count(u.get("tokens").and_then(|t| t.get(key)))
            .or_else(|| count(u.get("billed_units").and_then(|b| b.get(key))))
            .unwrap_or(0)
    };
    Usage {
        input_tokens: field("input_tokens"),
        output_tokens: field("output_tokens"),
    }
}

/// Prompt tokens of an embed response: `meta.tokens.input_tokens`, else
/// `meta.billed_units.input_tokens`.
pub(crate) fn embed_input_tokens(meta: &Value) -> u64 {
    usage(meta).input_tokens
}

/// Extracts (message, type) from a Cohere error body: `{"message": "..."}` or
/// `{"id": "...", "message": "..."}`; the SDK's `{"data": "..."}` and an
/// OpenAI-style `{"error": {...}}` (from proxies in front of Cohere) are
/// accepted too. Cohere sends no error type, so a few Cohere-only statuses get
/// one here; the rest fall back to the generic status mapping.
pub(crate) fn provider_error(status: u16, body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let kind = match status {
        402 => Some("billing_error".to_owned()),
        // "Unsafe request": blocked by Cohere's usage-policy filter.
        498 => Some("invalid_request_error".to_owned()),
        _ => None,
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let message = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        text(v.get("message"))
            .or_else(|| text(v.get("data")))
            .or_else(|| text(v.get("error").and_then(|e| e.get("message"))))
            .or_else(|| text(v.get("error")))
    });
    Some((message, kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::{Wire, provider_error as dispatch_error};
    use serde_json::json;

    #[test]
    fn provider_error_table() {
        let cases: &[(u16, &str, &str, &str)] = &[
            (
                401,
                r#"{"message":"invalid api token"}"#,
                "invalid api token",
                "authentication_error",
            ),
            (
                400,
                r#"{"id":"3b0d9a3e-52b7-4f4f-8c1a-3f1f5b0e6d2a","message":"invalid request: message must be at least 1 token long or tool results must be specified."}"#,
                "invalid request: message must be at least 1 token long or tool results must be specified.",
                "invalid_request_error",
            ),
            (
                429,
                r#"{"id":"a1","message":"You are using a Trial key, which is limited to 10 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'. Contact us on 'https://discord.gg/XW44jPfYJu' or email us at support@cohere.com with any questions"}"#,
                "You are using a Trial key, which is limited to 10 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'. Contact us on 'https://discord.gg/XW44jPfYJu' or email us at support@cohere.com with any questions",
                "rate_limit_error",
            ),
            (
                402,
                r#"{"id":"b2","message":"Please add or update your payment method at https://dashboard.cohere.com/billing?tab=payment to continue"}"#,
                "Please add or update your payment method at https://dashboard.cohere.com/billing?tab=payment to continue",
                "billing_error",
            ),
            (
                404,
                r#"{"id":"c3","message":"model 'command-x' not found, make sure the correct model ID was used and that you have access to the model."}"#,
                "model 'command-x' not found, make sure the correct model ID was used and that you have access to the model.",
                "not_found_error",
            ),
            (
                498,
                r#"{"id":"d4","message":"blocked output: please adjust your prompt and try again, as this request may violate our usage guidelines"}"#,
                "blocked output: please adjust your prompt and try again, as this request may violate our usage guidelines",
                "invalid_request_error",
            ),
            (
                500,
                r#"{"id":"e5","message":"internal server error, this has been reported to our developers. id e5"}"#,
                "internal server error, this has been reported to our developers. id e5",
                "api_error",
            ),
            (
                429,
                r#"{"data":"too many requests"}"#,
                "too many requests",
                "rate_limit_error",
            ),
            (
                503,
                r#"{"error":{"message":"upstream overloaded","type":"x"}}"#,
                "upstream overloaded",
                "api_error",
            ),
            (
                502,
                "<html>bad gateway</html>",
                "upstream provider returned HTTP 502",
                "api_error",
            ),
            (
                402,
                "",
                "upstream provider returned HTTP 402",
                "billing_error",
            ),
            (
                400,
                r#"{"message":""}"#,
                "upstream provider returned HTTP 400",
                "invalid_request_error",
            ),
        ];
        for (status, body, message, kind) in cases {
            let e = dispatch_error(Wire::Cohere, *status, body.as_bytes());
            assert_eq!(e.message, *message, "{body}");
            assert_eq!(e.kind, *kind, "{status} {body}");
        }
    }

    #[test]
    fn usage_prefers_tokens_field_by_field() {
        let cases = [
            (
                json!({"billed_units":{"input_tokens":5,"output_tokens":2},"tokens":{"input_tokens":70,"output_tokens":2}}),
                (70, 2),
            ),
            (
                json!({"billed_units":{"input_tokens":50.0,"output_tokens":26.0},"cached_tokens":176}),
                (50, 26),
            ),
            (
                json!({"billed_units":{"input_tokens":9,"output_tokens":3},"tokens":{}}),
                (9, 3),
            ),
            (
                json!({"tokens":{"input_tokens":-1,"output_tokens":"7"}}),
                (0, 0),
            ),
            (json!(null), (0, 0)),
        ];
        for (u, (i, o)) in cases {
            assert_eq!(
                usage(&u),
                Usage {
                    input_tokens: i,
                    output_tokens: o
                },
                "{u}"
            );
        }
    }

    #[test]
    fn finish_reasons() {
        for (c, o) in [
            ("COMPLETE", "stop"),
            ("STOP_SEQUENCE", "stop"),
            ("MAX_TOKENS", "length"),
            ("TIMEOUT", "length"),
            ("TOOL_CALL", "tool_calls"),
            ("SOMETHING_NEW", "stop"),
        ] {
            assert_eq!(finish_reason(c), o);
        }
    }
}
