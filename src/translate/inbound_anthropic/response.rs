//! OpenAI `chat.completion` -> Anthropic `Message`.
//!
//! - `id`: `msg_` + the completion id; `model`: what the client asked for.
//! - `content`: the text (if non-empty), then the OpenAI `refusal` text (if
//!   any), then one `tool_use` per tool call with `input` parsed from
//!   `arguments` (empty -> `{}`; not a JSON object -> BadUpstream, as the
//!   Anthropic shape cannot carry it). Reasoning fields some providers add
//!   (`reasoning_content`) are dropped: a thinking block without Anthropic's
//!   signature would be rejected when the client sends it back.
//! - `stop_reason`: `stop` -> `end_turn` (OpenAI never says whether a stop
//!   sequence matched, so never `stop_sequence`; `stop_sequence` is always
//!   null), `length` -> `max_tokens`, `tool_calls` -> `tool_use`,
//!   `content_filter` -> `refusal`. A response carrying tool calls is
//!   `tool_use` when the provider said `stop` (several do), and one carrying
//!   a `refusal` is `refusal`.
//! - `usage`: Anthropic counts cache reads apart from `input_tokens`, so
//!   `input_tokens = prompt_tokens - cached_tokens` and
//!   `cache_read_input_tokens = cached_tokens` when the provider reports
//!   `prompt_tokens_details.cached_tokens`. The returned [`Usage`] keeps the
//!   gateway's convention (prompt tokens including cached ones).

use super::{message_id, stop_reason};
use crate::translate::openai::usage_from;
use crate::translate::{TranslateError, Usage};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Serialize)]
struct Message<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block>,
    stop_reason: &'static str,
    stop_sequence: Option<()>,
    usage: MessageUsage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

#[derive(Serialize)]
pub(crate) struct MessageUsage {
    pub input_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    pub output_tokens: u64,
}

impl MessageUsage {
    /// Anthropic-style usage from the gateway's usage and the provider's
    /// cached prompt tokens.
    pub(crate) fn new(usage: Usage, cached: Option<u64>) -> Self {
        Self {
            input_tokens: usage
                .input_tokens
                .saturating_sub(cached.unwrap_or_default()),
            cache_read_input_tokens: cached,
            output_tokens: usage.output_tokens,
        }
    }
}

/// `usage.prompt_tokens_details.cached_tokens`, if reported.
pub(crate) fn cached_tokens(usage: &Value) -> Option<u64> {
    usage
        .get("prompt_tokens_details")
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64)
}

/// Non-streamed OpenAI chat completion body -> Anthropic Message body +
/// usage. `requested_model` is the model name the client sent.
pub fn from_openai_response(
    openai_body: &[u8],
    requested_model: &str,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    let bad = |m: &str| TranslateError::BadUpstream(m.to_owned());
    let v: Value = serde_json::from_slice(openai_body)
        .map_err(|e| TranslateError::BadUpstream(format!("provider sent invalid JSON: {e}")))?;
    if !v.is_object() {
        return Err(bad("provider response is not a JSON object"));
    }
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        let msg = match err {
            Value::String(s) => s.as_str(),
            _ => err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error"),
        };
        return Err(TranslateError::BadUpstream(format!(
            "provider returned an error: {msg}"
        )));
    }
    let choice = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| bad("provider response has no choices"))?;
    let message = choice.get("message").unwrap_or(&Value::Null);

    let mut content = Vec::new();
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        // Some compatible servers answer with content parts.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    if !text.is_empty() {
        content.push(Block::Text { text });
    }
    let refusal = message
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty());
    if let Some(r) = refusal {
        content.push(Block::Text { text: r.to_owned() });
    }
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (i, call) in calls.iter().enumerate() {
        content.push(tool_use(call, i)?);
    }

    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    let stop = match stop_reason(finish) {
        "end_turn" if !calls.is_empty() => "tool_use",
        "end_turn" if refusal.is_some() => "refusal",
        other => other,
    };

    let usage_v = v.get("usage").unwrap_or(&Value::Null);
    let usage = usage_from(usage_v).unwrap_or_default();
    let msg = Message {
        id: message_id(v.get("id").and_then(Value::as_str)),
        kind: "message",
        role: "assistant",
        model: requested_model,
        content,
        stop_reason: stop,
        stop_sequence: None,
        usage: MessageUsage::new(usage, cached_tokens(usage_v)),
    };
    let out = serde_json::to_vec(&msg)
        .map_err(|e| TranslateError::BadUpstream(format!("cannot serialise response: {e}")))?;
    Ok((out, usage))
}

fn tool_use(call: &Value, i: usize) -> Result<Block, TranslateError> {
    let f = call.get("function").unwrap_or(&Value::Null);
    let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map_or_else(|| format!("call_{i}"), str::to_owned);
    let input = match f.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => match serde_json::from_str(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(TranslateError::BadUpstream(format!(
                    "tool call '{name}' has arguments that are not a JSON object"
                )));
            }
        },
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            return Err(TranslateError::BadUpstream(format!(
                "tool call '{name}' has arguments that are not a JSON object"
            )));
        }
    };
    Ok(Block::ToolUse {
        id,
        name: name.to_owned(),
        input,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(body: &str) -> (String, Usage) {
        let (out, u) = from_openai_response(body.as_bytes(), "claude-alias").unwrap();
        (String::from_utf8(out).unwrap(), u)
    }

    #[test]
    fn text_response_exact() {
        let body = r#"{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there!","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}"#;
        let (out, usage) = conv(body);
        assert_eq!(
            out,
            r#"{"id":"msg_chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","type":"message","role":"assistant","model":"claude-alias","content":[{"type":"text","text":"Hello there!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":93,"cache_read_input_tokens":1024,"output_tokens":46}}"#
        );
        assert_eq!(
            usage,
            Usage {
                input_tokens: 1117,
                output_tokens: 46
            }
        );
    }

    #[test]
    fn tool_calls_response_exact() {
        let body = r#"{"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Checking.","tool_calls":[{"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"units\":[\"c\"]}"}},{"id":"call_def","type":"function","function":{"name":"now","arguments":""}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":80,"completion_tokens":17,"total_tokens":97}}"#;
        let (out, usage) = conv(body);
        assert_eq!(
            out,
            r#"{"id":"msg_chatcmpl-9","type":"message","role":"assistant","model":"claude-alias","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"call_abc","name":"get_weather","input":{"city":"Paris","units":["c"]}},{"type":"tool_use","id":"call_def","name":"now","input":{}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":80,"output_tokens":17}}"#
        );
        assert_eq!(
            usage,
            Usage {
                input_tokens: 80,
                output_tokens: 17
            }
        );
    }

    #[test]
    fn stop_reason_table() {
        // (finish_reason, has tool call, refusal, expected stop_reason)
        let cases: &[(Value, bool, bool, &str)] = &[
            (json!("stop"), false, false, "end_turn"),
            (json!("length"), false, false, "max_tokens"),
            (json!("tool_calls"), true, false, "tool_use"),
            (json!("function_call"), false, false, "tool_use"),
            (json!("content_filter"), false, false, "refusal"),
            (json!(null), false, false, "end_turn"),
            (json!("eos"), false, false, "end_turn"),
            // Ollama/Gemini report "stop" alongside tool calls.
            (json!("stop"), true, false, "tool_use"),
            (json!("stop"), false, true, "refusal"),
            // Truncated tool arguments stay max_tokens.
            (json!("length"), true, false, "max_tokens"),
        ];
        for (finish, tool, refusal, expected) in cases {
            let mut message = json!({"role":"assistant","content":null});
            if *tool {
                message["tool_calls"] =
                    json!([{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]);
            }
            if *refusal {
                message["refusal"] = json!("I can't help with that.");
            }
            let body =
                json!({"id":"x","choices":[{"index":0,"message":message,"finish_reason":finish}]});
            let (out, _) = conv(&body.to_string());
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["stop_reason"], *expected, "{body}");
            assert_eq!(v["stop_sequence"], Value::Null);
        }
    }

    #[test]
    fn odd_but_valid_responses() {
        // Empty content, no usage, no id; content parts; object arguments; missing tool id.
        let (out, usage) = conv(r#"{"choices":[{"message":{"role":"assistant","content":""}}]}"#);
        assert_eq!(
            out,
            r#"{"id":"msg_unknown","type":"message","role":"assistant","model":"claude-alias","content":[],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}"#
        );
        assert_eq!(usage, Usage::default());

        let (out, _) = conv(
            r#"{"id":"msg_keep","choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"refusal":"no","tool_calls":[{"function":{"name":"f","arguments":{"x":1}}}]},"finish_reason":"stop"}],"usage":{"input_tokens":3,"output_tokens":4}}"#,
        );
        assert_eq!(
            out,
            r#"{"id":"msg_keep","type":"message","role":"assistant","model":"claude-alias","content":[{"type":"text","text":"ab"},{"type":"text","text":"no"},{"type":"tool_use","id":"call_0","name":"f","input":{"x":1}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":4}}"#
        );
    }

    #[test]
    fn bad_upstream_table() {
        for bad in [
            "not json",
            "[1]",
            r#"{"error":{"message":"boom","type":"server_error"}}"#,
            r#"{"error":"boom"}"#,
            r#"{"id":"x"}"#,
            r#"{"id":"x","choices":[]}"#,
            r#"{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{bad"}}]}}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"[1]"}}]}}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":7}}]}}]}"#,
        ] {
            assert!(
                matches!(
                    from_openai_response(bad.as_bytes(), "m"),
                    Err(TranslateError::BadUpstream(_))
                ),
                "{bad}"
            );
        }
    }
}
