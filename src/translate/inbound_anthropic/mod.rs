//! Inbound Anthropic Messages API (`POST /v1/messages`, as used by the
//! official `anthropic` SDKs, streaming included) served by any provider.
//!
//! Two paths:
//! - **Any provider** (canonical form): [`to_openai`] turns the client's
//!   Anthropic request into an OpenAI chat request, which then goes through
//!   the usual `translate::request` for the provider's wire. The provider's
//!   OpenAI-shaped answer comes back through [`from_openai_response`]
//!   (non-streamed) or the [`AnthropicOut`] adaptor wrapped around the usual
//!   `translate::stream` translator (streamed; create it with
//!   `client_wants_usage = true`).
//! - **Anthropic provider** (pass-through, nothing lost: `cache_control`,
//!   thinking, citations, server tools...): [`passthrough_request`] only
//!   swaps `model`; [`passthrough_response`] and
//!   [`AnthropicPassthroughStream`] forward the provider's bytes unchanged
//!   while reading usage.
//!
//! Errors the gateway produces itself are OpenAI-shaped; [`from_openai_error`]
//! / [`anthropic_error_body`] / [`rejection_body`] give the Anthropic shape.
//!
//! Pure like the rest of `translate`: no I/O, clock or randomness.

mod errors;
mod passthrough;
mod request;
mod response;
mod stream;

pub use errors::{anthropic_error_body, anthropic_error_type, from_openai_error, rejection_body};
pub use passthrough::{AnthropicPassthroughStream, passthrough_request, passthrough_response};
pub use request::to_openai;
pub use response::from_openai_response;
pub use stream::AnthropicOut;

use serde::Serialize;

/// Appends one named SSE event, `event: <name>\ndata: <json>\n\n`. The
/// official SDKs dispatch on the `event:` line, so it is never omitted.
pub(crate) fn write_event<T: Serialize>(out: &mut Vec<u8>, name: &str, value: &T) {
    // Serialising our own plain structs cannot fail; writing nothing if it
    // somehow did keeps the stream well-formed.
    if let Ok(json) = serde_json::to_vec(value) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
    }
}

#[derive(Serialize)]
pub(crate) struct ErrorEnvelope<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub message: &'a str,
}

impl<'a> ErrorEnvelope<'a> {
    pub(crate) fn new(kind: &'a str, message: &'a str) -> Self {
        Self {
            kind: "error",
            error: ErrorDetail { kind, message },
        }
    }
}

/// The one Anthropic-dialect error event sent when a stream breaks:
/// `event: error` + `{"type":"error","error":{"type":"api_error","message":…}}`.
/// The official SDKs raise on it.
pub(crate) fn write_stream_error(out: &mut Vec<u8>, message: &str) {
    write_event(out, "error", &ErrorEnvelope::new("api_error", message));
}

/// OpenAI `finish_reason` -> Anthropic `stop_reason`. OpenAI never says which
/// stop sequence matched, so a stop is always `end_turn` (never
/// `stop_sequence`).
pub(crate) fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic message id for an OpenAI completion id (`chatcmpl-x` ->
/// `msg_chatcmpl-x`; ids that already look Anthropic are kept).
pub(crate) fn message_id(openai_id: Option<&str>) -> String {
    match openai_id.filter(|id| !id.is_empty()) {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) => format!("msg_{id}"),
        None => "msg_unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests;
