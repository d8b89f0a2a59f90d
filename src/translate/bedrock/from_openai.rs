//! OpenAI chat/embeddings client -> Amazon Bedrock Runtime provider.
//!
//! Chat goes to `POST /model/{modelId}/converse` (or `/converse-stream`),
//! rebuilt field by field: OpenAI-only knobs are dropped, ones that would
//! silently change behaviour are rejected. Embeddings go to
//! `POST /model/{modelId}/invoke` with the model family's own body (Amazon
//! Titan or Cohere Embed). Responses are rebuilt in the OpenAI shapes;
//! streams arrive as AWS event-stream frames and leave as
//! `chat.completion.chunk` SSE.
//!
//! Converse responses carry neither an id nor the model name: the id is
//! derived from `created` and the upstream bytes (deterministic, no clock or
//! randomness) and `model` is left empty.

use super::eventstream::{Decoder, Frame};
use super::{encode_label, finish_reason, input_tokens};
use crate::translate::openai_shapes::{
    ChatCompletion, Choice, Chunk, ChunkChoice, Delta, FunctionCall, FunctionDelta, Message,
    ToolCall, ToolCallDelta,
};
use crate::translate::{
    Inbound, RequestOptions, StreamOutcome, StreamTranslator, TranslateError, UpstreamRequest,
    Usage, u64_at, write_data_event, write_openai_stream_error,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------- request

pub(crate) fn request(
    inbound: Inbound,
    body: &Value,
    opts: &RequestOptions,
) -> Result<UpstreamRequest, TranslateError> {
    let Value::Object(obj) = body else {
        return Err(TranslateError::invalid(
            "request body must be a JSON object",
            None,
        ));
    };
    // Images never get here: `translate::request` serves them itself.
    if inbound == Inbound::Embeddings {
        embeddings_request(obj, opts)
    } else {
        chat_request(obj, opts)
    }
}

fn chat_request(
    obj: &Map<String, Value>,
    opts: &RequestOptions,
) -> Result<UpstreamRequest, TranslateError> {
    reject_unsupported(obj)?;
    let converted = convert_messages(obj.get("messages"))?;

    let mut out = Map::new();
    if !converted.system.is_empty() {
        out.insert("system".into(), Value::Array(converted.system));
    }
    out.insert("messages".into(), Value::Array(converted.messages));
    let inference = inference_config(obj)?;
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(tool_config) = tool_config(obj, converted.has_tool_blocks)? {
        out.insert("toolConfig".into(), tool_config);
    }
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(TranslateError::invalid(
                "stream must be a boolean",
                Some("stream".into()),
            ));
        }
    };

    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| TranslateError::invalid(format!("cannot serialise request: {e}"), None))?;
    let action = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    Ok(UpstreamRequest {
        path_suffix: format!("/model/{}/{action}", encode_label(opts.model)),
        body,
        stream,
        // ConverseStream always ends with a `metadata` event carrying usage.
        usage_injected: false,
    })
}

fn reject_unsupported(obj: &Map<String, Value>) -> Result<(), TranslateError> {
    if obj
        .get("n")
        .and_then(Value::as_f64)
        .is_some_and(|n| n > 1.0)
    {
        return Err(TranslateError::unsupported(
            "n > 1 is not supported by bedrock",
            Some("n".into()),
        ));
    }
    if obj.get("logprobs") == Some(&Value::Bool(true)) {
        return Err(TranslateError::unsupported(
            "logprobs is not supported by bedrock",
            Some("logprobs".into()),
        ));
    }
    let format = obj
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str);
    if let Some(kind @ ("json_object" | "json_schema")) = format {
        return Err(TranslateError::unsupported(
            format!("response_format {kind} is not supported by bedrock"),
            Some("response_format".into()),
        ));
    }
    Ok(())
}

/// `inferenceConfig`: maxTokens, temperature, topP, stopSequences. Bedrock
/// does not require maxTokens (the model's maximum is the default), so none
/// is invented when the client sent none.
fn inference_config(obj: &Map<String, Value>) -> Result<Map<String, Value>, TranslateError> {
    let mut out = Map::new();
    for key in ["max_completion_tokens", "max_tokens"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let n = v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                    TranslateError::invalid(
                        format!("{key} must be a positive integer"),
                        Some(key.into()),
                    )
                })?;
                out.insert("maxTokens".into(), n.into());
                break;
            }
        }
    }
    for (key, wire) in [("temperature", "temperature"), ("top_p", "topP")] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                out.insert(wire.into(), v.clone());
            }
            Some(_) => {
                return Err(TranslateError::invalid(
                    format!("{key} must be a number"),
                    Some(key.into()),
                ));
            }
        }
    }
    let bad_stop = || {
        TranslateError::invalid(
            "stop must be a string or an array of strings",
            Some("stop".into()),
        )
    };
    match obj.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            out.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(items)) if items.is_empty() => {}
        Some(Value::Array(items)) => {
            if !items.iter().all(Value::is_string) {
                return Err(bad_stop());
            }
            out.insert("stopSequences".into(), Value::Array(items.clone()));
        }
        Some(_) => return Err(bad_stop()),
    }
    Ok(out)
}

fn tool_config(
    obj: &Map<String, Value>,
    has_tool_blocks: bool,
) -> Result<Option<Value>, TranslateError> {
    let tools = convert_tools(obj.get("tools"))?;
    let bad_choice = || {
        TranslateError::invalid(
            "tool_choice must be \"auto\", \"required\", \"none\" or a function choice",
            Some("tool_choice".into()),
        )
    };
    let needs_tools = |what: &str| {
        TranslateError::invalid(
            format!("tool_choice {what} requires tools"),
            Some("tool_choice".into()),
        )
    };
    let choice = match obj.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"auto": {}})),
            "required" => {
                if tools.is_none() {
                    return Err(needs_tools("\"required\""));
                }
                Some(json!({"any": {}}))
            }
            "none" => {
                // Converse has no "none": leaving the tools out is the same
                // thing, unless the history holds tool blocks (Bedrock then
                // requires toolConfig and the model could still call tools).
                if tools.is_some() && has_tool_blocks {
                    return Err(TranslateError::unsupported(
                        "tool_choice \"none\" with tool calls in the conversation is not supported by bedrock",
                        Some("tool_choice".into()),
                    ));
                }
                return Ok(None);
            }
            _ => return Err(bad_choice()),
        },
        Some(choice @ Value::Object(_)) => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(bad_choice)?;
            if tools.is_none() {
                return Err(needs_tools("for a function"));
            }
            Some(json!({"tool": {"name": name}}))
        }
        Some(_) => return Err(bad_choice()),
    };
    // parallel_tool_calls has no Converse equivalent and is dropped.
    let Some(tools) = tools else {
        return Ok(None);
    };
    let mut config = Map::new();
    config.insert("tools".into(), tools);
    if let Some(choice) = choice {
        config.insert("toolChoice".into(), choice);
    }
    Ok(Some(Value::Object(config)))
}

fn convert_tools(tools: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    let Some(tools) = crate::translate::function_tools(tools, "bedrock")? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(tools.len());
    for crate::translate::FunctionTool {
        function: f, name, ..
    } in tools
    {
        let mut spec = Map::new();
        spec.insert("name".into(), Value::String(name.to_owned()));
        if let Some(d) = f
            .get("description")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
        {
            spec.insert("description".into(), Value::String(d.to_owned()));
        }
        let schema = match f.get("parameters") {
            Some(p @ Value::Object(_)) => p.clone(),
            _ => json!({"type": "object", "properties": {}}),
        };
        spec.insert("inputSchema".into(), json!({ "json": schema }));
        out.push(json!({ "toolSpec": spec }));
    }
    Ok(Some(Value::Array(out)))
}

struct Converted {
    system: Vec<Value>,
    messages: Vec<Value>,
    has_tool_blocks: bool,
}

fn convert_messages(messages: Option<&Value>) -> Result<Converted, TranslateError> {
    let Some(Value::Array(messages)) = messages else {
        return Err(TranslateError::invalid(
            "messages must be an array",
            Some("messages".into()),
        ));
    };
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut has_tool_blocks = false;
    for (i, msg) in messages.iter().enumerate() {
        let role = msg.get("role").and_then(Value::as_str).ok_or_else(|| {
            TranslateError::invalid(
                "message is missing its role",
                Some(format!("messages[{i}].role")),
            )
        })?;
        let (role, blocks) = match role {
            "system" | "developer" => {
                for text in system_texts(msg.get("content"), i)? {
                    system.push(json!({ "text": text }));
                }
                continue;
            }
            "user" => ("user", user_blocks(msg.get("content"), i)?),
            "assistant" => {
                let blocks = assistant_blocks(msg, i)?;
                has_tool_blocks |= blocks.iter().any(|b| b.get("toolUse").is_some());
                ("assistant", blocks)
            }
            "tool" => {
                has_tool_blocks = true;
                ("user", vec![tool_result(msg, i)?])
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("message role '{other}' is not supported by bedrock"),
                    Some(format!("messages[{i}].role")),
                ));
            }
        };
        // Converse rejects blank content and requires alternating roles:
        // empty messages vanish and runs of one role fold into one message
        // (consecutive tool results become one user message).
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last_role, last)) if *last_role == role => last.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok(Converted {
        system,
        messages,
        has_tool_blocks,
    })
}

/// System prompt texts (each becomes one `{text}` block; blanks are dropped
/// because Converse rejects empty system text).
fn system_texts(content: Option<&Value>, i: usize) -> Result<Vec<String>, TranslateError> {
    let bad = || {
        TranslateError::invalid(
            "system message content must be a string or text parts",
            Some(format!("messages[{i}].content")),
        )
    };
    let texts = match content {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => texts.push(t.clone()),
                    _ => return Err(bad()),
                }
            }
            texts
        }
        _ => return Err(bad()),
    };
    Ok(texts.into_iter().filter(|t| !t.is_empty()).collect())
}

fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({ "text": text }))
}

fn user_blocks(content: Option<&Value>, i: usize) -> Result<Vec<Value>, TranslateError> {
    match content {
        Some(Value::String(s)) => Ok(text_block(s).into_iter().collect()),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                blocks.extend(content_part(part, i, j)?);
            }
            Ok(blocks)
        }
        _ => Err(TranslateError::invalid(
            "user message content must be a string or an array of parts",
            Some(format!("messages[{i}].content")),
        )),
    }
}

/// One OpenAI content part as a Converse block (`None` for empty text).
fn content_part(part: &Value, i: usize, j: usize) -> Result<Option<Value>, TranslateError> {
    let param = || Some(format!("messages[{i}].content[{j}]"));
    match part.get("type").and_then(Value::as_str) {
        Some("text") => match part.get("text") {
            Some(Value::String(t)) => Ok(text_block(t)),
            _ => Err(TranslateError::invalid(
                "text part is missing its text",
                param(),
            )),
        },
        Some("image_url") => {
            let url = match part.get("image_url") {
                Some(Value::String(u)) => Some(u.as_str()),
                Some(obj) => obj.get("url").and_then(Value::as_str),
                None => None,
            }
            .ok_or_else(|| TranslateError::invalid("image_url part is missing its url", param()))?;
            image_block(url, param).map(Some)
        }
        Some(other) => Err(TranslateError::unsupported(
            format!("content part type '{other}' is not supported by bedrock"),
            param(),
        )),
        None => Err(TranslateError::invalid(
            "content part is missing its type",
            param(),
        )),
    }
}

/// `data:image/png;base64,...` -> `{image:{format, source:{bytes}}}`. The
/// JSON form of Converse's blob is the base64 text itself.
fn image_block(url: &str, param: impl Fn() -> Option<String>) -> Result<Value, TranslateError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Err(TranslateError::unsupported(
            "bedrock accepts images only as base64 data: URLs, not http(s) URLs",
            param(),
        ));
    }
    let invalid = || {
        TranslateError::invalid(
            "image url must be a base64 data URL (data:image/<type>;base64,<data>)",
            param(),
        )
    };
    let rest = url.strip_prefix("data:").ok_or_else(invalid)?;
    let (meta, data) = rest.split_once(',').ok_or_else(invalid)?;
    let media_type = meta.strip_suffix(";base64").ok_or_else(invalid)?;
    let is_base64 = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=');
    if data.is_empty() || !data.bytes().all(is_base64) {
        return Err(invalid());
    }
    let format = match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(TranslateError::unsupported(
                format!("image type '{other}' is not supported by bedrock (png, jpeg, gif, webp)"),
                param(),
            ));
        }
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

fn assistant_blocks(msg: &Value, i: usize) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = Vec::new();
    match msg.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => blocks.extend(text_block(s)),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let text = match part.get("type").and_then(Value::as_str) {
                    Some("text") => part.get("text"),
                    Some("refusal") => part.get("refusal"),
                    _ => None,
                };
                match text {
                    Some(Value::String(t)) => blocks.extend(text_block(t)),
                    _ => {
                        return Err(TranslateError::invalid(
                            "assistant content parts must be text or refusal",
                            Some(format!("messages[{i}].content[{j}]")),
                        ));
                    }
                }
            }
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "assistant content must be a string, an array of parts or null",
                Some(format!("messages[{i}].content")),
            ));
        }
    }
    match msg.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            for call in calls {
                blocks.push(tool_use_block(call, i)?);
            }
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "tool_calls must be an array",
                Some(format!("messages[{i}].tool_calls")),
            ));
        }
    }
    Ok(blocks)
}

fn tool_use_block(call: &Value, i: usize) -> Result<Value, TranslateError> {
    let param = || Some(format!("messages[{i}].tool_calls"));
    let id = call.get("id").and_then(Value::as_str);
    let f = call.get("function");
    let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
    let (Some(id), Some(name)) = (id, name) else {
        return Err(TranslateError::invalid(
            "tool call needs an id and a function name",
            param(),
        ));
    };
    let input = match f.and_then(|f| f.get("arguments")) {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
            TranslateError::invalid(
                format!("tool call '{name}' has arguments that are not valid JSON: {e}"),
                param(),
            )
        })?,
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            return Err(TranslateError::invalid(
                "tool call arguments must be a JSON string",
                param(),
            ));
        }
    };
    Ok(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}))
}

fn tool_result(msg: &Value, i: usize) -> Result<Value, TranslateError> {
    let id = msg
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            TranslateError::invalid(
                "tool message is missing tool_call_id",
                Some(format!("messages[{i}].tool_call_id")),
            )
        })?;
    let content: Vec<Value> = match msg.get("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => text_block(s).into_iter().collect(),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                blocks.extend(content_part(part, i, j)?);
            }
            blocks
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "tool message content must be a string or an array of parts",
                Some(format!("messages[{i}].content")),
            ));
        }
    };
    Ok(json!({"toolResult": {"toolUseId": id, "content": content}}))
}

/// Embeddings go through InvokeModel, whose body is the model family's own.
fn embeddings_request(
    obj: &Map<String, Value>,
    opts: &RequestOptions,
) -> Result<UpstreamRequest, TranslateError> {
    let bad_input = || {
        TranslateError::invalid(
            "input must be a string or an array of strings",
            Some("input".into()),
        )
    };
    let texts: Vec<&str> = match obj.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(TranslateError::invalid(
                "input must not be empty",
                Some("input".into()),
            ));
        }
        Some(Value::Array(items)) => {
            if items.iter().any(|v| v.is_array() || v.is_number()) {
                return Err(TranslateError::unsupported(
                    "token array inputs are not supported by bedrock",
                    Some("input".into()),
                ));
            }
            items
                .iter()
                .map(|v| v.as_str().ok_or_else(bad_input))
                .collect::<Result<_, _>>()?
        }
        _ => return Err(bad_input()),
    };
    match obj.get("encoding_format") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == "float" || f == "base64" => {}
        Some(_) => {
            return Err(TranslateError::invalid(
                "encoding_format must be \"float\" or \"base64\"",
                Some("encoding_format".into()),
            ));
        }
    }
    let dimensions = match obj.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            TranslateError::invalid(
                "dimensions must be a positive integer",
                Some("dimensions".into()),
            )
        })?),
    };
    let model = opts.model;
    let body = if model.contains("amazon.titan-embed") {
        let [text] = texts.as_slice() else {
            return Err(TranslateError::unsupported(
                "amazon titan embeddings take exactly one input string per request",
                Some("input".into()),
            ));
        };
        let mut body = Map::new();
        body.insert("inputText".into(), Value::String((*text).to_owned()));
        if let Some(n) = dimensions {
            body.insert("dimensions".into(), n.into());
        }
        Value::Object(body)
    } else if model.contains("cohere.embed") {
        if dimensions.is_some() {
            return Err(TranslateError::unsupported(
                "dimensions is not supported by bedrock cohere embeddings",
                Some("dimensions".into()),
            ));
        }
        json!({"texts": texts, "input_type": "search_document"})
    } else {
        return Err(TranslateError::unsupported(
            format!(
                "bedrock embeddings support amazon.titan-embed* and cohere.embed* models, not '{model}'"
            ),
            Some("model".into()),
        ));
    };
    let body = serde_json::to_vec(&body)
        .map_err(|e| TranslateError::invalid(format!("cannot serialise request: {e}"), None))?;
    Ok(UpstreamRequest {
        path_suffix: format!("/model/{}/invoke", encode_label(model)),
        body,
        stream: false,
        usage_injected: false,
    })
}

// ---------------------------------------------------------------- shapes

#[derive(Serialize)]
struct EmbeddingList {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'static str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    /// The float array, or its base64 form (see `embeddings_response`).
    embedding: Value,
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// `chatcmpl-` + 24 hex digits of SHA-256(created, bytes): stable for the
/// same upstream answer, distinct across answers.
pub(crate) fn completion_id(created: u64, bytes: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(created.to_be_bytes())
        .chain_update(bytes)
        .finalize();
    let hex = hex::encode(digest);
    format!("chatcmpl-{}", hex.get(..24).unwrap_or(&hex))
}

// ---------------------------------------------------------------- response

pub(crate) fn response(
    inbound: Inbound,
    body: &[u8],
    created: u64,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadUpstream(format!("bedrock sent invalid JSON: {e}")))?;
    if inbound == Inbound::Embeddings {
        embeddings_response(&v)
    } else {
        chat_response(&v, body, created)
    }
}

fn chat_response(v: &Value, body: &[u8], created: u64) -> Result<(Vec<u8>, Usage), TranslateError> {
    let blocks = v
        .get("output")
        .and_then(|o| o.get("message"))
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .ok_or_else(|| {
            TranslateError::BadUpstream(
                "bedrock response has no output.message.content array".to_owned(),
            )
        })?;
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in blocks {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.get_or_insert_with(String::new).push_str(t);
        } else if let Some(tool) = block.get("toolUse") {
            tool_calls.push(ToolCall {
                id: str_at(tool, "toolUseId").to_owned(),
                kind: "function",
                function: FunctionCall {
                    name: str_at(tool, "name").to_owned(),
                    arguments: tool
                        .get("input")
                        .map_or_else(|| "{}".to_owned(), Value::to_string),
                },
            });
        }
        // reasoningContent, citations, images...: no OpenAI equivalent.
    }
    let usage_v = v.get("usage").unwrap_or(&Value::Null);
    let usage = Usage {
        input_tokens: input_tokens(usage_v),
        output_tokens: u64_at(usage_v, "outputTokens"),
    };
    let id = completion_id(created, body);
    let completion = ChatCompletion {
        id: &id,
        object: "chat.completion",
        created,
        model: "",
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: text,
                tool_calls,
            },
            finish_reason: finish_reason(str_at(v, "stopReason")),
            logprobs: None,
        }],
        usage: usage.into(),
    };
    let out = serde_json::to_vec(&completion)
        .map_err(|e| TranslateError::BadUpstream(format!("cannot serialise response: {e}")))?;
    Ok((out, usage))
}

/// Titan `{embedding, inputTextTokenCount}` or Cohere `{embeddings:[[..]]}`
/// (`{embeddings:{float:[[..]]}}` when typed) -> OpenAI embeddings list.
/// Cohere on Bedrock reports no token count in the body, so usage is 0.
/// (`encoding_format: "base64"` is applied by the caller: `translate::embeddings`.)
fn embeddings_response(v: &Value) -> Result<(Vec<u8>, Usage), TranslateError> {
    let bad =
        |what: &str| TranslateError::BadUpstream(format!("bedrock embeddings response {what}"));
    let (vectors, tokens): (Vec<&Value>, u64) = if let Some(e) = v.get("embedding") {
        if !e.is_array() {
            return Err(bad("has a non-array embedding"));
        }
        (vec![e], u64_at(v, "inputTextTokenCount"))
    } else if let Some(e) = v.get("embeddings") {
        let list = match e {
            Value::Array(list) => list,
            Value::Object(by_type) => by_type
                .get("float")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("has no float embeddings"))?,
            _ => return Err(bad("has malformed embeddings")),
        };
        if !list.iter().all(Value::is_array) {
            return Err(bad("has a non-array embedding"));
        }
        (list.iter().collect(), 0)
    } else {
        return Err(bad("has neither embedding nor embeddings"));
    };
    let mut data = Vec::with_capacity(vectors.len());
    for (index, vector) in vectors.into_iter().enumerate() {
        if !vector
            .as_array()
            .is_some_and(|x| x.iter().all(Value::is_number))
        {
            return Err(bad("has a non-numeric value"));
        }
        let embedding = vector.clone();
        data.push(EmbeddingItem {
            object: "embedding",
            index,
            embedding,
        });
    }
    let out = EmbeddingList {
        object: "list",
        data,
        model: "",
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    let body = serde_json::to_vec(&out)
        .map_err(|e| TranslateError::BadUpstream(format!("cannot serialise response: {e}")))?;
    Ok((
        body,
        Usage {
            input_tokens: tokens,
            output_tokens: 0,
        },
    ))
}

fn str_at<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

// ---------------------------------------------------------------- stream

/// ConverseStream event-stream frames -> OpenAI `chat.completion.chunk` SSE.
///
/// The stream is complete once both `messageStop` (finish reason) and
/// `metadata` (usage) have arrived, in either order; then the optional
/// usage chunk and `[DONE]` follow.
pub struct BedrockStream {
    decoder: Decoder,
    frames: Vec<Frame>,
    client_wants_usage: bool,
    created: u64,
    id: String,
    usage: Usage,
    role_sent: bool,
    stop_seen: bool,
    metadata_seen: bool,
    done: bool,
    first_token: bool,
    failed: Option<String>,
    /// (Converse content block index, OpenAI tool call index).
    tool_blocks: Vec<(u64, u32)>,
}

const UNPARSABLE: &str = "upstream sent an unparsable stream event";

impl BedrockStream {
    pub fn new(client_wants_usage: bool, created: u64) -> Self {
        Self {
            decoder: Decoder::default(),
            frames: Vec::new(),
            client_wants_usage,
            created,
            id: String::new(),
            usage: Usage::default(),
            role_sent: false,
            stop_seen: false,
            metadata_seen: false,
            done: false,
            first_token: false,
            failed: None,
            tool_blocks: Vec::new(),
        }
    }

    fn fail(&mut self, reason: String, client_message: &str, out: &mut Vec<u8>) {
        write_openai_stream_error(out, client_message);
        self.failed = Some(reason);
    }

    fn chunk(&self, out: &mut Vec<u8>, delta: Delta, finish: Option<&'static str>) {
        write_data_event(
            out,
            &Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: "",
                choices: vec![ChunkChoice {
                    index: 0,
                    delta,
                    finish_reason: finish,
                    logprobs: None,
                }],
                usage: None,
            },
        );
    }

    /// The role chunk goes first, even if an upstream skipped messageStart.
    fn ensure_role(&mut self, out: &mut Vec<u8>) {
        if !self.role_sent {
            self.role_sent = true;
            let delta = Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Delta::default()
            };
            self.chunk(out, delta, None);
        }
    }

    fn drain_frames(&mut self, out: &mut Vec<u8>) {
        let frames = std::mem::take(&mut self.frames);
        for frame in frames {
            if self.failed.is_some() || self.done {
                break;
            }
            self.handle(&frame, out);
        }
    }

    fn handle(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        match frame.header_str(":message-type") {
            Some("event") => {}
            Some("exception") => {
                let kind = frame.header_str(":exception-type").unwrap_or("exception");
                let message = exception_message(&frame.payload);
                return self.fail(
                    format!("upstream exception event: {kind}: {message}"),
                    &message,
                    out,
                );
            }
            Some("error") => {
                let code = frame.header_str(":error-code").unwrap_or("error");
                let message = frame
                    .header_str(":error-message")
                    .filter(|m| !m.is_empty())
                    .unwrap_or("upstream stream error")
                    .to_owned();
                return self.fail(
                    format!("upstream error frame: {code}: {message}"),
                    &message,
                    out,
                );
            }
            other => {
                return self.fail(
                    format!("event stream frame with :message-type {other:?}"),
                    UNPARSABLE,
                    out,
                );
            }
        }
        if self.id.is_empty() {
            self.id = completion_id(self.created, &frame.payload);
        }
        let v: Value = if frame.payload.is_empty() {
            Value::Object(Map::new())
        } else {
            match serde_json::from_slice(&frame.payload) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => {
                    return self.fail(
                        "unparsable upstream event: not a JSON object".to_owned(),
                        UNPARSABLE,
                        out,
                    );
                }
                Err(e) => {
                    return self.fail(format!("unparsable upstream event: {e}"), UNPARSABLE, out);
                }
            }
        };
        match frame.header_str(":event-type").unwrap_or_default() {
            "messageStart" => self.ensure_role(out),
            "contentBlockStart" => {
                self.ensure_role(out);
                let start = v.get("start").unwrap_or(&Value::Null);
                if let Some(tool) = start.get("toolUse") {
                    let tool_index = u32::try_from(self.tool_blocks.len()).unwrap_or(u32::MAX);
                    self.tool_blocks
                        .push((u64_at(&v, "contentBlockIndex"), tool_index));
                    self.first_token = true;
                    let delta = Delta {
                        tool_calls: Some([ToolCallDelta {
                            index: tool_index,
                            id: Some(str_at(tool, "toolUseId")),
                            kind: Some("function"),
                            function: FunctionDelta {
                                name: Some(str_at(tool, "name")),
                                arguments: "",
                            },
                        }]),
                        ..Delta::default()
                    };
                    self.chunk(out, delta, None);
                }
            }
            "contentBlockDelta" => {
                self.ensure_role(out);
                let delta = v.get("delta").unwrap_or(&Value::Null);
                if let Some(text) = delta.get("text").and_then(Value::as_str) {
                    if !text.is_empty() {
                        self.first_token = true;
                        let d = Delta {
                            content: Some(text),
                            ..Delta::default()
                        };
                        self.chunk(out, d, None);
                    }
                } else if let Some(tool) = delta.get("toolUse") {
                    let block = u64_at(&v, "contentBlockIndex");
                    let known = self.tool_blocks.iter().find(|(b, _)| *b == block);
                    if let Some(&(_, tool_index)) = known {
                        let d = Delta {
                            tool_calls: Some([ToolCallDelta {
                                index: tool_index,
                                id: None,
                                kind: None,
                                function: FunctionDelta {
                                    name: None,
                                    arguments: str_at(tool, "input"),
                                },
                            }]),
                            ..Delta::default()
                        };
                        self.chunk(out, d, None);
                    }
                }
                // reasoningContent, citation deltas: no OpenAI equivalent.
            }
            "messageStop" => {
                self.ensure_role(out);
                if !self.stop_seen {
                    self.stop_seen = true;
                    let reason = finish_reason(str_at(&v, "stopReason"));
                    self.chunk(out, Delta::default(), Some(reason));
                }
                self.maybe_complete(out);
            }
            "metadata" => {
                let usage = v.get("usage").unwrap_or(&Value::Null);
                self.usage = Usage {
                    input_tokens: input_tokens(usage),
                    output_tokens: u64_at(usage, "outputTokens"),
                };
                self.metadata_seen = true;
                self.maybe_complete(out);
            }
            // contentBlockStop and future event types.
            _ => {}
        }
    }

    fn maybe_complete(&mut self, out: &mut Vec<u8>) {
        if !(self.stop_seen && self.metadata_seen) {
            return;
        }
        if self.client_wants_usage {
            write_data_event(
                out,
                &Chunk {
                    id: &self.id,
                    object: "chat.completion.chunk",
                    created: self.created,
                    model: "",
                    choices: Vec::new(),
                    usage: Some(self.usage.into()),
                },
            );
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }
}

/// The human message of an exception frame's `{"message": ...}` payload.
fn exception_message(payload: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(payload).ok();
    parsed
        .as_ref()
        .and_then(|v| {
            ["message", "Message"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_str))
        })
        .filter(|m| !m.is_empty())
        .unwrap_or("upstream stream error")
        .to_owned()
}

impl StreamTranslator for BedrockStream {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.failed.is_some() || self.done {
            return;
        }
        let res = self.decoder.feed(chunk, &mut self.frames);
        self.drain_frames(out);
        if let Err(e) = res
            && self.failed.is_none()
            && !self.done
        {
            self.fail(
                format!("corrupted upstream event stream: {e}"),
                "upstream sent a corrupted event stream",
                out,
            );
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> StreamOutcome {
        if let Some(reason) = &self.failed {
            return StreamOutcome::Failed(reason.clone());
        }
        if self.done {
            return StreamOutcome::Complete;
        }
        let reason = match self.decoder.finish() {
            Err(e) => format!("upstream stream ended inside an event stream frame: {e}"),
            Ok(()) => "upstream stream ended before messageStop and metadata".to_owned(),
        };
        self.fail(
            reason.clone(),
            "upstream stream ended before completion",
            out,
        );
        StreamOutcome::Failed(reason)
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    fn first_token_seen(&self) -> bool {
        self.first_token
    }
}

#[cfg(test)]
mod tests {
    use super::completion_id;
    use crate::translate::bedrock::eventstream::{encode_event, encode_exception};
    use crate::translate::test_support::*;
    use crate::translate::*;
    use serde_json::{Value, json};

    const OPTS: RequestOptions = RequestOptions {
        model: "anthropic.claude-3-5-sonnet-20240620-v1:0",
        default_max_tokens: 4096,
    };
    const CONVERSE: &str = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse";

    fn translate(body: Value) -> Result<(UpstreamRequest, Value), TranslateError> {
        let r = request(Inbound::ChatCompletions, Wire::Bedrock, &body, &OPTS)?;
        let v = serde_json::from_slice(&r.body).unwrap();
        Ok((r, v))
    }

    #[test]
    fn request_table() {
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "minimal: no invented maxTokens, OpenAI-only fields dropped",
                json!({"model":"x","messages":[{"role":"user","content":"Hi"}],
                       "frequency_penalty":0.5,"presence_penalty":0.1,"seed":3,"store":true,
                       "metadata":{"a":"b"},"stream_options":{"include_usage":true},"n":1,
                       "logprobs":false,"response_format":{"type":"text"},"user":"u-1",
                       "parallel_tool_calls":false,"top_k":5}),
                json!({"messages":[{"role":"user","content":[{"text":"Hi"}]}]}),
            ),
            (
                "system blocks, inferenceConfig",
                json!({"messages":[
                    {"role":"system","content":"You are terse."},
                    {"role":"developer","content":[{"type":"text","text":"Be nice."},{"type":"text","text":""}]},
                    {"role":"system","content":""},
                    {"role":"user","content":"Hi"}],
                    "max_tokens":100,"temperature":0.3,"top_p":0.9,"stop":"END","stream":true}),
                json!({"system":[{"text":"You are terse."},{"text":"Be nice."}],
                       "messages":[{"role":"user","content":[{"text":"Hi"}]}],
                       "inferenceConfig":{"maxTokens":100,"temperature":0.3,"topP":0.9,"stopSequences":["END"]}}),
            ),
            (
                "max_completion_tokens wins, stop array",
                json!({"messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":7,
                       "max_tokens":9,"stop":["a","b"]}),
                json!({"messages":[{"role":"user","content":[{"text":"Hi"}]}],
                       "inferenceConfig":{"maxTokens":7,"stopSequences":["a","b"]}}),
            ),
            (
                "consecutive roles merged, empty messages dropped",
                json!({"messages":[
                    {"role":"user","content":"one"},
                    {"role":"user","content":[{"type":"text","text":"two"}]},
                    {"role":"assistant","content":""},
                    {"role":"user","content":""},
                    {"role":"assistant","content":"ok"},
                    {"role":"user","content":"three"}]}),
                json!({"messages":[
                    {"role":"user","content":[{"text":"one"},{"text":"two"}]},
                    {"role":"assistant","content":[{"text":"ok"}]},
                    {"role":"user","content":[{"text":"three"}]}]}),
            ),
            (
                "images from data URLs",
                json!({"messages":[{"role":"user","content":[
                    {"type":"text","text":"What is this?"},
                    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}},
                    {"type":"image_url","image_url":"data:image/JPG;base64,/9j/4AAQ"},
                    {"type":"image_url","image_url":{"url":"data:image/gif;base64,R0lG"}},
                    {"type":"image_url","image_url":{"url":"data:image/webp;base64,UklG"}}]}]}),
                json!({"messages":[{"role":"user","content":[
                    {"text":"What is this?"},
                    {"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}},
                    {"image":{"format":"jpeg","source":{"bytes":"/9j/4AAQ"}}},
                    {"image":{"format":"gif","source":{"bytes":"R0lG"}}},
                    {"image":{"format":"webp","source":{"bytes":"UklG"}}}]}]}),
            ),
            (
                "tools, tool calls and merged tool results",
                json!({"messages":[
                    {"role":"user","content":"Weather in Paris and Rome?"},
                    {"role":"assistant","content":"Let me check.","tool_calls":[
                        {"id":"tooluse_01","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                        {"id":"tooluse_02","type":"function","function":{"name":"get_weather","arguments":""}}]},
                    {"role":"tool","tool_call_id":"tooluse_01","content":"18C"},
                    {"role":"tool","tool_call_id":"tooluse_02","content":[{"type":"text","text":"21C"}]},
                    {"role":"user","content":"Thanks"}],
                    "tools":[
                        {"type":"function","function":{"name":"get_weather","description":"Get weather",
                            "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}},
                        {"type":"function","function":{"name":"now","description":""}}],
                    "tool_choice":"required"}),
                json!({"messages":[
                    {"role":"user","content":[{"text":"Weather in Paris and Rome?"}]},
                    {"role":"assistant","content":[
                        {"text":"Let me check."},
                        {"toolUse":{"toolUseId":"tooluse_01","name":"get_weather","input":{"city":"Paris"}}},
                        {"toolUse":{"toolUseId":"tooluse_02","name":"get_weather","input":{}}}]},
                    {"role":"user","content":[
                        {"toolResult":{"toolUseId":"tooluse_01","content":[{"text":"18C"}]}},
                        {"toolResult":{"toolUseId":"tooluse_02","content":[{"text":"21C"}]}},
                        {"text":"Thanks"}]}],
                    "toolConfig":{"tools":[
                        {"toolSpec":{"name":"get_weather","description":"Get weather",
                            "inputSchema":{"json":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}},
                        {"toolSpec":{"name":"now","inputSchema":{"json":{"type":"object","properties":{}}}}}],
                        "toolChoice":{"any":{}}}}),
            ),
            (
                "assistant null content with tool call; function tool_choice; empty tool result",
                json!({"messages":[
                    {"role":"user","content":"x"},
                    {"role":"assistant","content":null,"tool_calls":[
                        {"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]},
                    {"role":"tool","tool_call_id":"t1","content":""}],
                    "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
                    "tool_choice":{"type":"function","function":{"name":"f"}}}),
                json!({"messages":[
                    {"role":"user","content":[{"text":"x"}]},
                    {"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"f","input":{"a":[1,2]}}}]},
                    {"role":"user","content":[{"toolResult":{"toolUseId":"t1","content":[]}}]}],
                    "toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}],
                        "toolChoice":{"tool":{"name":"f"}}}}),
            ),
            (
                "tool_choice none without tool history drops the tools",
                json!({"messages":[{"role":"user","content":"x"}],"tool_choice":"none",
                       "tools":[{"type":"function","function":{"name":"f"}}]}),
                json!({"messages":[{"role":"user","content":[{"text":"x"}]}]}),
            ),
            (
                "tool_choice auto; auto without tools is ignored",
                json!({"messages":[{"role":"user","content":"x"}],"tool_choice":"auto",
                       "tools":[{"type":"function","function":{"name":"f"}}]}),
                json!({"messages":[{"role":"user","content":[{"text":"x"}]}],
                       "toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object","properties":{}}}}}],
                           "toolChoice":{"auto":{}}}}),
            ),
            (
                "assistant refusal and text parts",
                json!({"messages":[{"role":"user","content":"x"},
                    {"role":"assistant","content":[{"type":"refusal","refusal":"No."},{"type":"text","text":"Sorry."}]},
                    {"role":"user","content":"ok"}],"tool_choice":"auto"}),
                json!({"messages":[{"role":"user","content":[{"text":"x"}]},
                    {"role":"assistant","content":[{"text":"No."},{"text":"Sorry."}]},
                    {"role":"user","content":[{"text":"ok"}]}]}),
            ),
        ];
        for (name, body, expected) in cases {
            let (r, v) = translate(body.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(v, expected, "{name}");
            let stream = body.get("stream") == Some(&json!(true));
            assert_eq!(r.stream, stream, "{name}");
            let path = if stream {
                format!("{CONVERSE}-stream")
            } else {
                CONVERSE.to_owned()
            };
            assert_eq!(r.path_suffix, path, "{name}");
            assert!(!r.usage_injected);
        }
    }

    #[test]
    fn request_path_encodes_arns() {
        let opts = RequestOptions {
            model: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            default_max_tokens: 1,
        };
        let body = json!({"messages":[{"role":"user","content":"x"}],"stream":true});
        let r = request(Inbound::ChatCompletions, Wire::Bedrock, &body, &opts).unwrap();
        assert_eq!(
            r.path_suffix,
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
        );
    }

    #[test]
    fn request_errors_table() {
        let user = json!([{"role":"user","content":"x"}]);
        let tool_history = json!([
            {"role":"user","content":"x"},
            {"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"a","content":"r"}]);
        let f = json!([{"type":"function","function":{"name":"f"}}]);
        // (body, unsupported?, param)
        let cases: Vec<(Value, bool, Option<&str>)> = vec![
            (json!({"messages":user,"n":2}), true, Some("n")),
            (
                json!({"messages":user,"logprobs":true}),
                true,
                Some("logprobs"),
            ),
            (
                json!({"messages":user,"response_format":{"type":"json_object"}}),
                true,
                Some("response_format"),
            ),
            (
                json!({"messages":user,"response_format":{"type":"json_schema","json_schema":{}}}),
                true,
                Some("response_format"),
            ),
            (
                json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}),
                true,
                Some("messages[0].content[0]"),
            ),
            (
                json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}]}]}),
                true,
                Some("messages[0].content[0]"),
            ),
            (
                json!({"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}),
                true,
                Some("messages[0].content[0]"),
            ),
            (
                json!({"messages":[{"role":"function","name":"f","content":"x"}]}),
                true,
                Some("messages[0].role"),
            ),
            (
                json!({"messages":user,"tools":[{"type":"custom","custom":{"name":"x"}}]}),
                true,
                Some("tools[0].type"),
            ),
            (
                json!({"messages":tool_history,"tools":f,"tool_choice":"none"}),
                true,
                Some("tool_choice"),
            ),
            (
                json!({"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[
                {"id":"a","type":"function","function":{"name":"f","arguments":"{not json"}}]}]}),
                false,
                Some("messages[1].tool_calls"),
            ),
            (
                json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]}),
                false,
                Some("messages[0].content[0]"),
            ),
            (
                json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}),
                false,
                Some("messages[0].content[0]"),
            ),
            (
                json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,a b"}}]}]}),
                false,
                Some("messages[0].content[0]"),
            ),
            (
                json!({"messages":[{"role":"tool","content":"x"}]}),
                false,
                Some("messages[0].tool_call_id"),
            ),
            (
                json!({"messages":[{"content":"x"}]}),
                false,
                Some("messages[0].role"),
            ),
            (
                json!({"messages":user,"max_tokens":0}),
                false,
                Some("max_tokens"),
            ),
            (
                json!({"messages":user,"max_tokens":"9"}),
                false,
                Some("max_tokens"),
            ),
            (json!({"messages":user,"stop":[1]}), false, Some("stop")),
            (
                json!({"messages":user,"stream":"yes"}),
                false,
                Some("stream"),
            ),
            (
                json!({"messages":user,"tool_choice":"sometimes"}),
                false,
                Some("tool_choice"),
            ),
            (
                json!({"messages":user,"tool_choice":"required"}),
                false,
                Some("tool_choice"),
            ),
            (
                json!({"messages":user,"tool_choice":{"type":"function","function":{"name":"f"}}}),
                false,
                Some("tool_choice"),
            ),
            (
                json!({"messages":user,"temperature":"hot"}),
                false,
                Some("temperature"),
            ),
            (json!({"messages":"hi"}), false, Some("messages")),
            (json!({}), false, Some("messages")),
            (json!([]), false, None),
        ];
        for (body, unsupported, param) in cases {
            let err = translate(body.clone()).map(|_| ()).unwrap_err();
            assert_eq!(
                matches!(err, TranslateError::Unsupported { .. }),
                unsupported,
                "{body}: {err}"
            );
            assert_eq!(err.param(), param, "{body}");
        }
        let err = translate(json!({"messages":[{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}))
        .map(|_| ())
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "bedrock accepts images only as base64 data: URLs, not http(s) URLs"
        );
    }

    fn embed(model: &str, body: Value) -> Result<(UpstreamRequest, Value), TranslateError> {
        let opts = RequestOptions {
            model,
            default_max_tokens: 1,
        };
        let r = request(Inbound::Embeddings, Wire::Bedrock, &body, &opts)?;
        let v = serde_json::from_slice(&r.body).unwrap();
        Ok((r, v))
    }

    #[test]
    fn embeddings_requests() {
        let titan = "amazon.titan-embed-text-v2:0";
        let cohere = "cohere.embed-english-v3";
        let cases: Vec<(&str, Value, &str, Value)> = vec![
            (
                titan,
                json!({"model":"e","input":"hello world","encoding_format":"float","user":"u"}),
                "/model/amazon.titan-embed-text-v2%3A0/invoke",
                json!({"inputText":"hello world"}),
            ),
            (
                titan,
                json!({"input":["only one"],"dimensions":256,"encoding_format":"base64"}),
                "/model/amazon.titan-embed-text-v2%3A0/invoke",
                json!({"inputText":"only one","dimensions":256}),
            ),
            (
                "amazon.titan-embed-text-v1",
                json!({"input":"a"}),
                "/model/amazon.titan-embed-text-v1/invoke",
                json!({"inputText":"a"}),
            ),
            (
                cohere,
                json!({"input":["a","b"]}),
                "/model/cohere.embed-english-v3/invoke",
                json!({"texts":["a","b"],"input_type":"search_document"}),
            ),
            (
                "us.cohere.embed-multilingual-v3",
                json!({"input":"a"}),
                "/model/us.cohere.embed-multilingual-v3/invoke",
                json!({"texts":["a"],"input_type":"search_document"}),
            ),
        ];
        for (model, body, path, expected) in cases {
            let (r, v) = embed(model, body.clone()).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(v, expected, "{body}");
            assert_eq!(r.path_suffix, path);
            assert!(!r.stream && !r.usage_injected);
        }
        // (model, body, unsupported?, param)
        let errors: Vec<(&str, Value, bool, Option<&str>)> = vec![
            (titan, json!({"input":["a","b"]}), true, Some("input")),
            (
                cohere,
                json!({"input":"a","dimensions":256}),
                true,
                Some("dimensions"),
            ),
            (
                "meta.llama3-8b-instruct-v1:0",
                json!({"input":"a"}),
                true,
                Some("model"),
            ),
            (cohere, json!({"input":[[1,2,3]]}), true, Some("input")),
            (cohere, json!({"input":[1,2,3]}), true, Some("input")),
            (cohere, json!({"input":[]}), false, Some("input")),
            (cohere, json!({"input":["a",null]}), false, Some("input")),
            (cohere, json!({}), false, Some("input")),
            (
                titan,
                json!({"input":"a","dimensions":0}),
                false,
                Some("dimensions"),
            ),
            (
                titan,
                json!({"input":"a","encoding_format":"int8"}),
                false,
                Some("encoding_format"),
            ),
        ];
        for (model, body, unsupported, param) in errors {
            let err = embed(model, body.clone()).map(|_| ()).unwrap_err();
            assert_eq!(
                matches!(err, TranslateError::Unsupported { .. }),
                unsupported,
                "{body}: {err}"
            );
            assert_eq!(err.param(), param, "{body}");
        }
    }

    #[test]
    fn completion_id_is_pinned() {
        // sha256(be64(1700000000) || "abc") starts with the hex below.
        assert_eq!(
            completion_id(1_700_000_000, b"abc"),
            "chatcmpl-55e24bba0db8d5ec70198917"
        );
        assert_ne!(completion_id(1, b"abc"), completion_id(2, b"abc"));
        assert_ne!(completion_id(1, b"abc"), completion_id(1, b"abd"));
    }

    // Shape of a real Converse answer (vercel/ai fixture amazon-bedrock-text.json).
    const TEXT_RESPONSE: &str = r#"{"metrics":{"latencyMs":1864},"output":{"message":{"content":[{"text":"There are **3** r's."},{"text":" Done."}],"role":"assistant"}},"stopReason":"end_turn","usage":{"cacheReadInputTokenCount":0,"cacheReadInputTokens":4,"cacheWriteInputTokenCount":0,"cacheWriteInputTokens":2,"inputTokens":22,"outputTokens":57,"serverToolUsage":{},"totalTokens":85}}"#;

    #[test]
    fn response_table() {
        let (out, usage) = response(
            Inbound::ChatCompletions,
            Wire::Bedrock,
            TEXT_RESPONSE.as_bytes(),
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(
            usage,
            Usage {
                input_tokens: 28,
                output_tokens: 57
            }
        );
        let id = completion_id(1_700_000_000, TEXT_RESPONSE.as_bytes());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                r#"{{"id":"{id}","object":"chat.completion","created":1700000000,"model":"","choices":[{{"index":0,"message":{{"role":"assistant","content":"There are **3** r's. Done."}},"finish_reason":"stop","logprobs":null}}],"usage":{{"prompt_tokens":28,"completion_tokens":57,"total_tokens":85}}}}"#
            )
        );

        let tool = br#"{"output":{"message":{"role":"assistant","content":[{"reasoningContent":{"reasoningText":{"text":"hmm","signature":"x"}}},{"text":"Checking."},{"toolUse":{"toolUseId":"tooluse_kZJMlvQmRJ6eAyJE5GIl7Q","name":"get_weather","input":{"location":"San Francisco, CA"}}},{"toolUse":{"toolUseId":"tooluse_2","name":"now","input":{}}}]}},"stopReason":"tool_use","usage":{"inputTokens":100,"outputTokens":40,"totalTokens":140},"metrics":{"latencyMs":5}}"#;
        let (out, usage) = response(Inbound::ChatCompletions, Wire::Bedrock, tool, 7).unwrap();
        assert_eq!(
            usage,
            Usage {
                input_tokens: 100,
                output_tokens: 40
            }
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"id":completion_id(7, tool),"object":"chat.completion","created":7,"model":"",
                "choices":[{"index":0,"message":{"role":"assistant","content":"Checking.","tool_calls":[
                    {"id":"tooluse_kZJMlvQmRJ6eAyJE5GIl7Q","type":"function",
                     "function":{"name":"get_weather","arguments":"{\"location\":\"San Francisco, CA\"}"}},
                    {"id":"tooluse_2","type":"function","function":{"name":"now","arguments":"{}"}}]},
                    "finish_reason":"tool_calls","logprobs":null}],
                "usage":{"prompt_tokens":100,"completion_tokens":40,"total_tokens":140}})
        );

        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
        ] {
            let body = json!({"output":{"message":{"role":"assistant","content":[]}},"stopReason":stop,
                              "usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}});
            let (out, _) = response(
                Inbound::ChatCompletions,
                Wire::Bedrock,
                body.to_string().as_bytes(),
                0,
            )
            .unwrap();
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["choices"][0]["finish_reason"], finish, "{stop}");
            assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        }

        for bad in [
            &b"not json"[..],
            br#"{"message":"The security token included in the request is invalid."}"#,
            br#"{"output":{"message":{"content":"x"}}}"#,
            br#"[1]"#,
        ] {
            assert!(matches!(
                response(Inbound::ChatCompletions, Wire::Bedrock, bad, 0),
                Err(TranslateError::BadUpstream(_))
            ));
        }
    }

    #[test]
    fn embeddings_responses() {
        let titan = br#"{"embedding":[0.12,-0.5,3e-7],"inputTextTokenCount":4,"embeddingsByType":{"float":[0.12,-0.5,3e-7]}}"#;
        let (out, usage) = response(Inbound::Embeddings, Wire::Bedrock, titan, 1).unwrap();
        assert_eq!(
            usage,
            Usage {
                input_tokens: 4,
                output_tokens: 0
            }
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.12,-0.5,3e-7]}],"model":"","usage":{"prompt_tokens":4,"total_tokens":4}}"#
        );

        let cohere = br#"{"embeddings":[[0.1,0.2],[0.3,0.4]],"id":"6d5a0d0e-5d9b-4b3e-8f46-8b9c7f0e0a9c","response_type":"embeddings_floats","texts":["a","b"]}"#;
        let (out, usage) = response(Inbound::Embeddings, Wire::Bedrock, cohere, 1).unwrap();
        assert_eq!(usage, Usage::default());
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"object":"list","data":[
                {"object":"embedding","index":0,"embedding":[0.1,0.2]},
                {"object":"embedding","index":1,"embedding":[0.3,0.4]}],
                "model":"","usage":{"prompt_tokens":0,"total_tokens":0}})
        );
        let typed = br#"{"embeddings":{"float":[[1.5]]},"response_type":"embeddings_by_type"}"#;
        let (out, _) = response(Inbound::Embeddings, Wire::Bedrock, typed, 1).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["data"][0]["embedding"], json!([1.5]));

        assert!(matches!(
            response(
                Inbound::Embeddings,
                Wire::Bedrock,
                br#"{"embeddings":[["x"]]}"#,
                1
            ),
            Err(TranslateError::BadUpstream(_))
        ));

        for bad in [
            &b"{}"[..],
            br#"{"embedding":"x"}"#,
            br#"{"embeddings":{"int8":[[1]]}}"#,
            br#"{"embeddings":[1,2]}"#,
            br#"{"embeddings":"x"}"#,
            b"nope",
        ] {
            assert!(matches!(
                response(Inbound::Embeddings, Wire::Bedrock, bad, 0),
                Err(TranslateError::BadUpstream(_))
            ));
        }
    }

    // ---------------------------------------------------------- streams

    /// A real ConverseStream body (eu.anthropic.claude-sonnet-4-6, "Reply with
    /// exactly OK."), from vercel/ai's issue-18994-live-converse-stream.json.
    /// Note the random-length "p" padding Bedrock adds to every payload and
    /// that the text block has no contentBlockStart.
    const LIVE_HEX: &str = concat!(
        "000000b400000052050041650b3a6576656e742d7479706507000c6d65737361676553746172740d3a636f6e74656e74",
        "2d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22",
        "70223a226162636465666768696a6b6c6d6e6f707172737475767778797a4142434445464748494a4b4c4d4e4f505152",
        "535455565758595a303132222c22726f6c65223a22617373697374616e74227d9f5f7f2d000000b300000057c74a69fa",
        "0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d747970650700",
        "106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74",
        "426c6f636b496e646578223a302c2264656c7461223a7b2274657874223a224f4b227d2c2270223a2261626364656667",
        "68696a6b6c6d6e6f707172737475767778227d76c14e5c000000be000000573fdaad4b0b3a6576656e742d7479706507",
        "0011636f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d747970650700106170706c69636174696f6e2f",
        "6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74426c6f636b496e646578223a30",
        "2c2264656c7461223a7b2274657874223a222e227d2c2270223a226162636465666768696a6b6c6d6e6f707172737475",
        "767778797a4142434445464748494a227d865d1d250000008600000056d98c6e9a0b3a6576656e742d74797065070010",
        "636f6e74656e74426c6f636b53746f700d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f",
        "6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74426c6f636b496e646578223a302c2270",
        "223a226162227df3388a20000000d900000051fdaba3230b3a6576656e742d7479706507000b6d65737361676553746f",
        "700d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d74797065",
        "0700056576656e747b226164646974696f6e616c4d6f64656c526573706f6e73654669656c6473223a7b2264656c7461",
        "223a7b2273746f705f73657175656e6365223a6e756c6c7d7d2c2270223a226162636465666768696a6b6c6d6e6f7071",
        "727374757677222c2273746f70526561736f6e223a22656e645f7475726e227d20e248d0000001010000004e027a49eb",
        "0b3a6576656e742d747970650700086d657461646174610d3a636f6e74656e742d747970650700106170706c69636174",
        "696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b226d657472696373223a7b226c6174656e",
        "63794d73223a3830327d2c2270223a226162636465666768696a6b6c6d6e6f707172737475767778797a414243444546",
        "4748494a4b4c4d4e4f50515253222c227573616765223a7b22696e707574546f6b656e73223a31322c226f7574707574",
        "546f6b656e73223a352c22736572766572546f6f6c5573616765223a7b7d2c22746f74616c546f6b656e73223a31377d",
        "7dad236550",
    );

    const LIVE_MESSAGE_START: &[u8] =
        br#"{"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012","role":"assistant"}"#;

    fn live() -> Vec<u8> {
        hex::decode(LIVE_HEX).unwrap()
    }

    fn make(wants_usage: bool) -> impl Fn() -> Box<dyn StreamTranslator + Send> {
        move || {
            stream(
                Inbound::ChatCompletions,
                Wire::Bedrock,
                wants_usage,
                1_700_000_000,
            )
        }
    }

    #[test]
    fn stream_live_capture_exact() {
        let r = run_all_splits(&make(true), &live());
        let id = completion_id(1_700_000_000, LIVE_MESSAGE_START);
        let h = format!(
            "{{\"id\":\"{id}\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"\""
        );
        let expected = [
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"OK\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\".\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\",\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":5,\"total_tokens\":17}}}}\n\n"),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        assert_eq!(r.out_str(), expected);
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 5
            }
        );
        assert!(r.first_token);

        // Without include_usage: the same minus the usage chunk.
        let r2 = run_all_splits(&make(false), &live());
        assert_eq!(r2.datas().len(), 5);
        assert!(!r2.out_str().contains("\"usage\""));
        assert_eq!(r2.usage, r.usage);
    }

    fn tool_stream() -> Vec<u8> {
        [
            encode_event("messageStart", r#"{"p":"abc","role":"assistant"}"#),
            encode_event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Checking ¿qué? 👋"},"p":"ab"}"#),
            encode_event("contentBlockStop", r#"{"contentBlockIndex":0,"p":"abcd"}"#),
            encode_event("contentBlockStart", r#"{"contentBlockIndex":1,"p":"a","start":{"toolUse":{"name":"get_weather","toolUseId":"tooluse_Kx1"}}}"#),
            encode_event("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":""}},"p":"ab"}"#),
            encode_event("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"location\": \"San Fra"}},"p":"ab"}"#),
            encode_event("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"ncisco\"}"}},"p":"ab"}"#),
            encode_event("contentBlockStop", r#"{"contentBlockIndex":1,"p":"abcd"}"#),
            encode_event("contentBlockStart", r#"{"contentBlockIndex":2,"start":{"toolUse":{"name":"now","toolUseId":"tooluse_2"}}}"#),
            encode_event("contentBlockDelta", r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{}"}}}"#),
            encode_event("contentBlockDelta", r#"{"contentBlockIndex":7,"delta":{"toolUse":{"input":"orphan"}}}"#),
            encode_event("contentBlockDelta", r#"{"contentBlockIndex":3,"delta":{"reasoningContent":{"text":"hidden"}}}"#),
            encode_event("contentBlockStop", r#"{"contentBlockIndex":2}"#),
            encode_event("someFutureEvent", r#"{"x":1}"#),
            encode_event("messageStop", r#"{"p":"abc","stopReason":"tool_use"}"#),
            encode_event("metadata", r#"{"metrics":{"latencyMs":2040},"p":"ab","usage":{"cacheReadInputTokens":100,"cacheWriteInputTokens":10,"inputTokens":472,"outputTokens":89,"totalTokens":671}}"#),
        ]
        .concat()
    }

    #[test]
    fn stream_tool_calls() {
        let input = tool_stream();
        let r = run_all_splits(&make(false), &input);
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 582,
                output_tokens: 89
            }
        );
        assert!(r.first_token);
        assert_eq!(r.datas().last().map(String::as_str), Some("[DONE]"));
        let id = completion_id(1_700_000_000, br#"{"p":"abc","role":"assistant"}"#);
        let deltas: Vec<Value> = r
            .jsons()
            .iter()
            .map(|c| {
                assert_eq!(c["object"], "chat.completion.chunk");
                assert_eq!(c["id"], id.as_str());
                assert_eq!(c["created"], 1_700_000_000);
                json!([c["choices"][0]["delta"], c["choices"][0]["finish_reason"]])
            })
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!([{"role":"assistant","content":""}, null]),
                json!([{"content":"Checking ¿qué? 👋"}, null]),
                json!([{"tool_calls":[{"index":0,"id":"tooluse_Kx1","type":"function","function":{"name":"get_weather","arguments":""}}]}, null]),
                json!([{"tool_calls":[{"index":0,"function":{"arguments":""}}]}, null]),
                json!([{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\": \"San Fra"}}]}, null]),
                json!([{"tool_calls":[{"index":0,"function":{"arguments":"ncisco\"}"}}]}, null]),
                json!([{"tool_calls":[{"index":1,"id":"tooluse_2","type":"function","function":{"name":"now","arguments":""}}]}, null]),
                json!([{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}, null]),
                json!([{}, "tool_calls"]),
            ]
        );
    }

    #[test]
    fn stream_metadata_before_message_stop() {
        // Order seen in some captures: usage first, then the stop reason.
        let input = [
            encode_event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#),
            encode_event("metadata", r#"{"usage":{"inputTokens":3,"outputTokens":1,"totalTokens":4},"metrics":{"latencyMs":1}}"#),
            encode_event("messageStop", r#"{"stopReason":"max_tokens"}"#),
        ]
        .concat();
        let r = run_all_splits(&make(true), &input);
        assert_eq!(r.outcome, StreamOutcome::Complete);
        let datas = r.datas();
        assert_eq!(datas.len(), 5, "{datas:?}");
        let jsons = r.jsons();
        // The role chunk is sent even though messageStart never came.
        assert_eq!(
            jsons[0]["choices"][0]["delta"],
            json!({"role":"assistant","content":""})
        );
        assert_eq!(jsons[2]["choices"][0]["finish_reason"], "length");
        assert_eq!(
            jsons[3]["usage"],
            json!({"prompt_tokens":3,"completion_tokens":1,"total_tokens":4})
        );
        assert_eq!(datas[4], "[DONE]");
        // Bytes after completion are ignored.
        let mut more = input.clone();
        more.extend(b"garbage after the end");
        assert_eq!(run(&make(true), &[&more]), r);
    }

    fn error_event(message: &str) -> String {
        format!(
            "data: {{\"error\":{{\"message\":\"{message}\",\"type\":\"upstream_error\",\"code\":\"stream_interrupted\",\"param\":null}}}}\n\n"
        )
    }

    /// Byte offsets where each frame of `input` ends.
    fn frame_ends(input: &[u8]) -> Vec<usize> {
        let mut ends = Vec::new();
        let mut at = 0;
        while at + 4 <= input.len() {
            let len = u32::from_be_bytes(input[at..at + 4].try_into().unwrap()) as usize;
            at += len;
            ends.push(at);
        }
        ends
    }

    #[test]
    fn stream_truncated_everywhere() {
        let input = live();
        let ends = frame_ends(&input);
        assert_eq!(ends.len(), 6);
        assert_eq!(*ends.last().unwrap(), input.len());
        // Cut at a frame boundary before metadata: a clean cut, still a failure.
        let cut = ends[4];
        let r = run_all_splits(&make(true), &input[..cut]);
        assert!(
            r.out_str()
                .ends_with(&error_event("upstream stream ended before completion"))
        );
        assert_eq!(
            r.outcome,
            StreamOutcome::Failed(
                "upstream stream ended before messageStop and metadata".to_owned()
            )
        );
        assert!(r.out_str().contains("\"finish_reason\":\"stop\""));
        // Every truncation point fails with exactly one error event and no [DONE].
        for end in 0..input.len() {
            let r = run(&make(false), &[&input[..end]]);
            assert!(
                matches!(r.outcome, StreamOutcome::Failed(_)),
                "cut at {end}"
            );
            assert_eq!(r.out_str().matches("\"error\":").count(), 1, "cut at {end}");
            assert!(!r.out_str().contains("[DONE]"), "cut at {end}");
            let mid_frame = !ends.contains(&end) && end != 0;
            if let StreamOutcome::Failed(reason) = &r.outcome {
                assert_eq!(
                    reason.starts_with("upstream stream ended inside an event stream frame"),
                    mid_frame,
                    "cut at {end}: {reason}"
                );
            }
        }
        let r = run(&make(false), &[&input]);
        assert_eq!(r.outcome, StreamOutcome::Complete);
    }

    #[test]
    fn stream_exception_frame() {
        let input = live();
        let ends = frame_ends(&input);
        let mut with_exception = input[..ends[1]].to_vec();
        with_exception.extend(encode_exception(
            "throttlingException",
            r#"{"message":"Too many tokens, please wait before trying again."}"#,
        ));
        with_exception.extend(&input[ends[1]..]);
        let r = run_all_splits(&make(true), &with_exception);
        assert_eq!(r.datas().len(), 3);
        assert!(r.out_str().ends_with(&error_event(
            "Too many tokens, please wait before trying again."
        )));
        assert_eq!(r.out_str().matches("\"error\":").count(), 1);
        assert_eq!(
            r.outcome,
            StreamOutcome::Failed(
                "upstream exception event: throttlingException: Too many tokens, please wait before trying again."
                    .to_owned()
            )
        );
        assert!(r.first_token);

        // The real modelStreamErrorException frame as the whole body.
        let real = hex::decode("000000dd00000067c791907a0d3a6d6573736167652d74797065070009657863657074696f6e0f3a657863657074696f6e2d747970650700196d6f64656c53747265616d4572726f72457863657074696f6e0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e7b226d657373616765223a224d6f64656c2053747265616d204572726f72222c226f726967696e616c537461747573436f6465223a3530302c226f726967696e616c4d657373616765223a22546865206d6f64656c2073747265616d206661696c65642e227d57334313").unwrap();
        let r = run_all_splits(&make(false), &real);
        assert_eq!(r.out_str(), error_event("Model Stream Error"));
        assert!(!r.first_token);

        // Exception without a usable message.
        let r = run(
            &make(false),
            &[&encode_exception("internalServerException", "{}")],
        );
        assert_eq!(r.out_str(), error_event("upstream stream error"));
    }

    #[test]
    fn stream_corrupted_frames() {
        let input = live();
        let ends = frame_ends(&input);
        // A flipped payload byte in the third frame: the CRC catches it after
        // the first two frames were translated.
        let mut bad = input.clone();
        bad[ends[1] + 60] ^= 0x20;
        let r = run_all_splits(&make(true), &bad);
        assert_eq!(r.datas().len(), 3);
        assert!(
            r.out_str()
                .ends_with(&error_event("upstream sent a corrupted event stream"))
        );
        assert_eq!(
            r.outcome,
            StreamOutcome::Failed(
                "corrupted upstream event stream: event stream message CRC mismatch".to_owned()
            )
        );

        // Valid frames whose payload is not JSON, or whose type is unknown.
        for frame in [
            encode_event("contentBlockDelta", "{not json"),
            encode_event("contentBlockDelta", "[1,2]"),
            crate::translate::bedrock::eventstream::encode_frame(&[], b"{}").unwrap(),
        ] {
            let r = run_all_splits(&make(false), &frame);
            assert_eq!(
                r.out_str(),
                error_event("upstream sent an unparsable stream event")
            );
            assert!(matches!(r.outcome, StreamOutcome::Failed(_)));
        }

        // An SSE body (wrong content type upstream) is garbage, not a panic.
        let r = run_all_splits(&make(false), b"data: {\"x\":1}\n\n");
        assert_eq!(r.out_str().matches("\"error\":").count(), 1);
        assert!(matches!(r.outcome, StreamOutcome::Failed(_)));
    }

    #[test]
    fn stream_mutations_never_panic() {
        let mut rng = Rng(42);
        let base = tool_stream();
        for _ in 0..300 {
            let mut bytes = base.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(bytes.len() as u64) as usize;
                if let Some(b) = bytes.get_mut(i) {
                    *b = rng.next() as u8;
                }
            }
            let whole = run(&make(true), &[&bytes]);
            assert!(whole.out_str().matches("\"error\":").count() <= 1);
            let mid = rng.below(bytes.len() as u64) as usize;
            let (a, b) = bytes.split_at(mid);
            assert_eq!(run(&make(true), &[a, b]), whole);
        }
    }
}
