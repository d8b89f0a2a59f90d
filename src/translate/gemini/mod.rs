//! Google Gemini wire: the `generativelanguage` v1beta API (AI Studio) and
//! the identical request/response bodies of Vertex AI
//! (<https://ai.google.dev/api/generate-content>,
//! <https://ai.google.dev/api/embeddings>).
//! The client still speaks OpenAI; `from_openai` holds the translators, this
//! file the wire-level helpers they share.

pub mod from_openai;

use super::Usage;
use serde::Serialize;
use serde_json::Value;

/// Maps a Gemini `finishReason` to an OpenAI `finish_reason`. `had_tool_calls`
/// turns a normal stop into `tool_calls` (Gemini reports `STOP` either way).
pub(crate) fn finish_reason(reason: &str, had_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        // STOP, LANGUAGE, OTHER, MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL,
        // TOO_MANY_TOOL_CALLS, ... and values added later.
        _ if had_tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// `finishReason` when it is set to something meaningful.
pub(crate) fn finish_reason_of(candidate: &Value) -> Option<&str> {
    candidate
        .get("finishReason")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty() && *r != "FINISH_REASON_UNSPECIFIED")
}

/// `promptFeedback.blockReason`, when the prompt itself was blocked.
pub(crate) fn block_reason(response: &Value) -> Option<&str> {
    response
        .get("promptFeedback")
        .and_then(|f| f.get("blockReason"))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty() && *r != "BLOCK_REASON_UNSPECIFIED")
}

/// Token counts from `usageMetadata`, in OpenAI terms.
///
/// `promptTokenCount` already includes `cachedContentTokenCount`;
/// `toolUsePromptTokenCount` (tool results fed back by built-in tools) is
/// prompt-side too. Thinking tokens (`thoughtsTokenCount`) are billed as
/// output, like OpenAI's reasoning tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TokenCounts {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
    pub reasoning: u64,
}

impl TokenCounts {
    pub(crate) fn from_metadata(meta: &Value) -> Self {
        let at = |k: &str| super::u64_at(meta, k);
        Self {
            prompt: at("promptTokenCount").saturating_add(at("toolUsePromptTokenCount")),
            completion: at("candidatesTokenCount").saturating_add(at("thoughtsTokenCount")),
            cached: at("cachedContentTokenCount"),
            reasoning: at("thoughtsTokenCount"),
        }
    }

    pub(crate) fn usage(self) -> Usage {
        Usage {
            input_tokens: self.prompt,
            output_tokens: self.completion,
        }
    }
}

/// OpenAI `usage` object.
#[derive(Serialize)]
pub(crate) struct OaUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
}

impl From<TokenCounts> for OaUsage {
    fn from(t: TokenCounts) -> Self {
        Self {
            prompt_tokens: t.prompt,
            completion_tokens: t.completion,
            total_tokens: t.prompt.saturating_add(t.completion),
            prompt_tokens_details: PromptDetails {
                cached_tokens: t.cached,
            },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: t.reasoning,
            },
        }
    }
}

/// Separates a tool call id from the Gemini thought signature riding in it.
const SIGNATURE_MARK: &str = "__thought__";

/// The OpenAI tool call id for the `n`th function call of a response.
///
/// `tag` (alphanumeric, from the response id) keeps ids unique across turns.
/// Gemini 3 requires the `thoughtSignature` of a function call to be sent
/// back with it on the next turn; OpenAI clients echo only the id, so the
/// signature travels inside it (base64url, after `__thought__`).
pub(crate) fn tool_call_id(tag: &str, n: u32, signature: Option<&str>) -> String {
    let mut id = if tag.is_empty() {
        format!("call_{n}")
    } else {
        format!("call_{tag}_{n}")
    };
    if let Some(sig) = signature.filter(|s| !s.is_empty()) {
        id.push_str(SIGNATURE_MARK);
        id.extend(sig.chars().filter(|c| *c != '=').map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        }));
    }
    id
}

/// The thought signature (standard base64) carried by a tool call id made by
/// [`tool_call_id`], if any.
pub(crate) fn signature_from_id(id: &str) -> Option<String> {
    let (_, sig) = id.split_once(SIGNATURE_MARK)?;
    if sig.is_empty() {
        return None;
    }
    let mut out: String = sig
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    Some(out)
}

/// The alphanumeric tag used in tool call ids: from the response id, else
/// from a hash of the response.
pub(crate) fn id_tag(response_id: &str, fallback_hex: &str) -> String {
    let tag: String = response_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    if tag.is_empty() {
        fallback_hex.chars().take(16).collect()
    } else {
        tag
    }
}

/// Hex of the first 12 bytes of SHA-256(`bytes`): a deterministic id source
/// for responses that carry no `responseId`.
pub(crate) fn short_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    hex::encode(digest.get(..12).unwrap_or_default())
}

/// OpenAI-ish error type for a Google RPC status
/// (<https://ai.google.dev/gemini-api/docs/troubleshooting#error-codes>).
pub(crate) fn kind_for_status(status: &str) -> &'static str {
    match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => "invalid_request_error",
        "UNAUTHENTICATED" => "authentication_error",
        "PERMISSION_DENIED" => "permission_error",
        "NOT_FOUND" => "not_found_error",
        "RESOURCE_EXHAUSTED" => "rate_limit_error",
        _ => "api_error",
    }
}

/// The error object of a Google error body: `{"error":{...}}`, or the same
/// wrapped in a one-element array (seen on streaming endpoints).
pub(crate) fn error_object(v: &Value) -> Option<&Value> {
    match v {
        Value::Array(items) => items.first().and_then(|first| first.get("error")),
        _ => v.get("error"),
    }
}

/// (message, type) of a Google error object `{"code","message","status","details"}`.
pub(crate) fn describe_error(err: &Value) -> (Option<String>, Option<String>) {
    match err {
        Value::String(s) => (Some(s.clone()), None),
        Value::Object(_) => {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned);
            // An invalid API key is reported as 400 INVALID_ARGUMENT with
            // reason API_KEY_INVALID; it is an authentication failure.
            let bad_key = err
                .get("details")
                .and_then(Value::as_array)
                .is_some_and(|d| {
                    d.iter()
                        .any(|x| x.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"))
                });
            let kind = if bad_key {
                Some("authentication_error".to_owned())
            } else {
                err.get("status")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(|s| kind_for_status(s).to_owned())
            };
            (message, kind)
        }
        _ => (None, None),
    }
}

/// Extracts (message, type) from a Google error body.
pub(crate) fn provider_error(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    Some(describe_error(error_object(&v)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::{Wire, provider_error};

    #[test]
    fn provider_error_table() {
        let cases: &[(u16, &str, &str, &str)] = &[
            (
                400,
                r#"{"error":{"code":400,"message":"* GenerateContentRequest.contents: contents is not specified\n","status":"INVALID_ARGUMENT"}}"#,
                "* GenerateContentRequest.contents: contents is not specified\n",
                "invalid_request_error",
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}},{"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":"API key not valid. Please pass a valid API key."}]}}"#,
                "API key not valid. Please pass a valid API key.",
                "authentication_error",
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#,
                "User location is not supported for the API use.",
                "invalid_request_error",
            ),
            (
                401,
                r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#,
                "Request had invalid authentication credentials.",
                "authentication_error",
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}"#,
                "The caller does not have permission",
                "permission_error",
            ),
            (
                404,
                r#"{"error":{"code":404,"message":"models/gemini-9 is not found for API version v1beta, or is not supported for generateContent.","status":"NOT_FOUND"}}"#,
                "models/gemini-9 is not found for API version v1beta, or is not supported for generateContent.",
                "not_found_error",
            ),
            (
                429,
                r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"7s"}]}}"#,
                "You exceeded your current quota, please check your plan and billing details.",
                "rate_limit_error",
            ),
            (
                500,
                r#"[{"error":{"code":500,"message":"An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting","status":"INTERNAL"}}]"#,
                "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
                "api_error",
            ),
            (
                503,
                r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
                "The model is overloaded. Please try again later.",
                "api_error",
            ),
            (
                404,
                r#"{"error":{"code":404,"message":"","status":"NOT_FOUND"}}"#,
                "upstream provider returned HTTP 404",
                "not_found_error",
            ),
            (
                429,
                r#"{"error":{"message":"slow down"}}"#,
                "slow down",
                "rate_limit_error",
            ),
            (
                502,
                r#"{"error":"bad gateway"}"#,
                "bad gateway",
                "api_error",
            ),
            (
                400,
                "[]",
                "upstream provider returned HTTP 400",
                "invalid_request_error",
            ),
            (
                500,
                "Internal Server Error",
                "upstream provider returned HTTP 500",
                "api_error",
            ),
        ];
        for (status, body, message, kind) in cases {
            let e = provider_error(Wire::Gemini, *status, body.as_bytes());
            assert_eq!(e.message, *message, "{body}");
            assert_eq!(e.kind, *kind, "{body}");
        }
    }

    #[test]
    fn finish_reason_table() {
        let cases = [
            ("STOP", false, "stop"),
            ("STOP", true, "tool_calls"),
            ("MAX_TOKENS", false, "length"),
            ("MAX_TOKENS", true, "length"),
            ("SAFETY", false, "content_filter"),
            ("RECITATION", false, "content_filter"),
            ("BLOCKLIST", false, "content_filter"),
            ("PROHIBITED_CONTENT", false, "content_filter"),
            ("SPII", true, "content_filter"),
            ("IMAGE_SAFETY", false, "content_filter"),
            ("MALFORMED_FUNCTION_CALL", false, "stop"),
            ("OTHER", false, "stop"),
            ("LANGUAGE", false, "stop"),
            ("SOMETHING_NEW", true, "tool_calls"),
        ];
        for (reason, tools, expected) in cases {
            assert_eq!(finish_reason(reason, tools), expected, "{reason}");
        }
    }

    #[test]
    fn token_counts() {
        let meta = serde_json::json!({"promptTokenCount": 100, "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30, "cachedContentTokenCount": 64,
            "toolUsePromptTokenCount": 5, "totalTokenCount": 155});
        let t = TokenCounts::from_metadata(&meta);
        assert_eq!(
            t,
            TokenCounts {
                prompt: 105,
                completion: 50,
                cached: 64,
                reasoning: 30
            }
        );
        assert_eq!(
            TokenCounts::from_metadata(&serde_json::Value::Null),
            TokenCounts::default()
        );
    }

    #[test]
    fn tool_call_ids_round_trip_signatures() {
        assert_eq!(tool_call_id("", 0, None), "call_0");
        assert_eq!(tool_call_id("abc", 2, Some("")), "call_abc_2");
        let id = tool_call_id("abc", 1, Some("Zm9v+/8="));
        assert_eq!(id, "call_abc_1__thought__Zm9v-_8");
        assert_eq!(signature_from_id(&id).as_deref(), Some("Zm9v+/8="));
        assert_eq!(signature_from_id("call_abc_1"), None);
        assert_eq!(signature_from_id("call_1__thought__"), None);
        assert_eq!(id_tag("a-b_c+D9", "ffff"), "abcD9");
        assert_eq!(id_tag("--", "0123456789abcdef0123"), "0123456789abcdef");
        assert_eq!(short_hash(b"x").len(), 24);
    }
}
