//! OpenAI client -> Cohere v2 provider (`/v2/chat`, `/v2/embed`).
//!
//! Requests are rebuilt field by field (an allowlist: OpenAI-only knobs with no
//! effect on the output are dropped, ones that would silently change behaviour
//! are rejected). Responses and streams are rebuilt in the OpenAI
//! `chat.completion` / `chat.completion.chunk` / embeddings `list` shapes.
//!
//! Cohere's responses carry no model name and the translator is not told the
//! request's, so the OpenAI `model` field is the empty string.

use super::{embed_input_tokens, finish_reason, usage as cohere_usage};
use crate::translate::openai_shapes::{
    ChatCompletion, Choice, Chunk, ChunkChoice, Delta, FunctionCall, FunctionDelta, Message,
    ToolCall, ToolCallDelta,
};
use crate::translate::sse::{SseEvent, SseSplitter};
use crate::translate::{
    Inbound, RequestOptions, StreamOutcome, StreamTranslator, TranslateError, UpstreamRequest,
    Usage, write_data_event, write_openai_stream_error,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// Cohere never names the model in a response (see the module docs).
const MODEL: &str = "";

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
    let (path, out, stream) = match inbound {
        Inbound::Embeddings => ("/v2/embed", embed_request(obj, opts)?, false),
        Inbound::ChatCompletions => {
            let (out, stream) = chat_request(obj, opts)?;
            ("/v2/chat", out, stream)
        }
        // The dispatcher routes images elsewhere; kept total for safety.
        Inbound::Images => return Err(no_images()),
    };
    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| TranslateError::invalid(format!("cannot serialise request: {e}"), None))?;
    Ok(UpstreamRequest {
        path_suffix: path.to_owned(),
        body,
        stream,
        // Cohere always reports usage in `message-end`; nothing to inject.
        usage_injected: false,
    })
}

fn chat_request(
    obj: &Map<String, Value>,
    opts: &RequestOptions,
) -> Result<(Map<String, Value>, bool), TranslateError> {
    reject_unsupported(obj)?;
    let mut out = Map::new();
    out.insert("model".into(), Value::String(opts.model.to_owned()));
    out.insert("messages".into(), convert_messages(obj.get("messages"))?);

    let (tools, strict) = convert_tools(obj.get("tools"))?;
    let (tools, choice) = convert_tool_choice(obj.get("tool_choice"), tools)?;
    if let Some(tools) = tools {
        out.insert("tools".into(), Value::Array(tools));
        if strict {
            out.insert("strict_tools".into(), Value::Bool(true));
        }
    }
    if let Some(choice) = choice {
        out.insert("tool_choice".into(), Value::String(choice.to_owned()));
    }

    // Cohere does not require max_tokens (it defaults to the model's limit),
    // so `default_max_tokens` is not applied.
    if let Some(n) = max_tokens(obj)? {
        out.insert("max_tokens".into(), n.into());
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "p"),
        // Not an OpenAI parameter, but common in OpenAI-shaped clients.
        ("top_k", "k"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
    ] {
        match obj.get(from) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                out.insert(to.into(), v.clone());
            }
            Some(_) => {
                return Err(TranslateError::invalid(
                    format!("{from} must be a number"),
                    Some(from.into()),
                ));
            }
        }
    }
    match obj.get("seed") {
        None | Some(Value::Null) => {}
        Some(v) if v.is_i64() || v.is_u64() => {
            out.insert("seed".into(), v.clone());
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "seed must be an integer",
                Some("seed".into()),
            ));
        }
    }
    if let Some(stop) = stop_sequences(obj.get("stop"))? {
        out.insert("stop_sequences".into(), stop);
    }
    if let Some(format) = response_format(obj.get("response_format"))? {
        out.insert("response_format".into(), format);
    }
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => {
            if *b {
                out.insert("stream".into(), Value::Bool(true));
            }
            *b
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "stream must be a boolean",
                Some("stream".into()),
            ));
        }
    };
    Ok((out, stream))
}

fn unsupported(what: &str, param: &str) -> TranslateError {
    TranslateError::unsupported(
        format!("{what} is not supported by cohere"),
        Some(param.into()),
    )
}

fn no_images() -> TranslateError {
    TranslateError::unsupported("cohere has no image generation endpoint", None)
}

fn reject_unsupported(obj: &Map<String, Value>) -> Result<(), TranslateError> {
    if obj
        .get("n")
        .and_then(Value::as_f64)
        .is_some_and(|n| n > 1.0)
    {
        return Err(unsupported("n > 1", "n"));
    }
    // Cohere has logprobs, but in a shape that does not map onto OpenAI's.
    if obj.get("logprobs") == Some(&Value::Bool(true)) {
        return Err(unsupported("logprobs", "logprobs"));
    }
    if obj
        .get("logit_bias")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        return Err(unsupported("logit_bias", "logit_bias"));
    }
    if obj.get("audio").is_some_and(|a| !a.is_null()) {
        return Err(unsupported("audio output", "audio"));
    }
    let has_tools = obj
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    if has_tools && obj.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        return Err(unsupported(
            "parallel_tool_calls=false (cohere may always call tools in parallel)",
            "parallel_tool_calls",
        ));
    }
    Ok(())
}

fn max_tokens(obj: &Map<String, Value>) -> Result<Option<u64>, TranslateError> {
    for key in ["max_completion_tokens", "max_tokens"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                return v.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
                    TranslateError::invalid(
                        format!("{key} must be a positive integer"),
                        Some(key.into()),
                    )
                });
            }
        }
    }
    Ok(None)
}

fn stop_sequences(stop: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    let bad = || {
        TranslateError::invalid(
            "stop must be a string or an array of strings",
            Some("stop".into()),
        )
    };
    match stop {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(Value::Array(items)) if items.is_empty() => Ok(None),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(Some(Value::Array(items.clone())))
        }
        Some(_) => Err(bad()),
    }
}

/// OpenAI `response_format` -> Cohere `response_format`. Both JSON modes map
/// to Cohere's `json_object`, a schema riding along as `json_schema`.
fn response_format(format: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    let param = || Some("response_format".to_owned());
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let schema = format.get("json_schema").and_then(|s| s.get("schema"));
            match schema {
                None | Some(Value::Null) => Ok(Some(json!({"type": "json_object"}))),
                Some(s @ Value::Object(_)) => {
                    Ok(Some(json!({"type": "json_object", "json_schema": s})))
                }
                Some(_) => Err(TranslateError::invalid(
                    "response_format.json_schema.schema must be an object",
                    param(),
                )),
            }
        }
        Some(other) => Err(TranslateError::unsupported(
            format!("response_format type '{other}' is not supported by cohere"),
            param(),
        )),
        None => Err(TranslateError::invalid(
            "response_format is missing its type",
            param(),
        )),
    }
}

/// OpenAI tools -> Cohere v2 tools (same `{type, function}` shape, only the
/// known keys kept). Also reports whether any tool asked for `strict`, which
/// Cohere offers per request as `strict_tools`.
fn convert_tools(tools: Option<&Value>) -> Result<(Option<Vec<Value>>, bool), TranslateError> {
    let Some(tools) = crate::translate::function_tools(tools, "cohere")? else {
        return Ok((None, false));
    };
    let mut strict = false;
    let mut out = Vec::with_capacity(tools.len());
    for crate::translate::FunctionTool {
        function: f, name, ..
    } in tools
    {
        let mut func = Map::new();
        func.insert("name".into(), Value::String(name.to_owned()));
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            func.insert("description".into(), Value::String(d.to_owned()));
        }
        let params = match f.get("parameters") {
            Some(p @ Value::Object(_)) => p.clone(),
            _ => json!({"type": "object", "properties": {}}),
        };
        func.insert("parameters".into(), params);
        strict |= f.get("strict") == Some(&Value::Bool(true));
        out.push(json!({"type": "function", "function": func}));
    }
    Ok((Some(out), strict))
}

/// OpenAI `tool_choice` -> Cohere's `REQUIRED` / `NONE` (absent = auto).
/// Cohere cannot force one named tool, but offering only that tool and
/// requiring a call is equivalent, so the tool list is narrowed.
fn convert_tool_choice(
    choice: Option<&Value>,
    tools: Option<Vec<Value>>,
) -> Result<(Option<Vec<Value>>, Option<&'static str>), TranslateError> {
    let param = || Some("tool_choice".to_owned());
    let bad = || {
        TranslateError::invalid(
            "tool_choice must be \"auto\", \"required\", \"none\" or a function choice",
            param(),
        )
    };
    match choice {
        None | Some(Value::Null) => Ok((tools, None)),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok((tools, None)),
            "required" => Ok((tools, Some("REQUIRED"))),
            "none" => Ok((tools, Some("NONE"))),
            _ => Err(bad()),
        },
        Some(obj @ Value::Object(_)) => {
            let kind = obj
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("function");
            if kind != "function" {
                return Err(TranslateError::unsupported(
                    format!("tool_choice type '{kind}' is not supported by cohere"),
                    param(),
                ));
            }
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(bad)?;
            let chosen: Vec<Value> = tools
                .unwrap_or_default()
                .into_iter()
                .filter(|t| {
                    t.get("function")
                        .and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                        == Some(name)
                })
                .collect();
            if chosen.is_empty() {
                return Err(TranslateError::invalid(
                    format!("tool_choice names function '{name}', which is not in tools"),
                    param(),
                ));
            }
            Ok((Some(chosen), Some("REQUIRED")))
        }
        Some(_) => Err(bad()),
    }
}

fn convert_messages(messages: Option<&Value>) -> Result<Value, TranslateError> {
    let Some(Value::Array(messages)) = messages else {
        return Err(TranslateError::invalid(
            "messages must be an array",
            Some("messages".into()),
        ));
    };
    let mut out = Vec::with_capacity(messages.len());
    for (i, msg) in messages.iter().enumerate() {
        let role = msg.get("role").and_then(Value::as_str).ok_or_else(|| {
            TranslateError::invalid(
                "message is missing its role",
                Some(format!("messages[{i}].role")),
            )
        })?;
        // Cohere v2 takes system messages anywhere in the list, so order and
        // position are kept as sent.
        let converted = match role {
            "system" | "developer" => {
                json!({"role": "system", "content": system_content(msg.get("content"), i)?})
            }
            "user" => json!({"role": "user", "content": user_content(msg.get("content"), i)?}),
            "assistant" => assistant_message(msg, i)?,
            "tool" => tool_message(msg, i)?,
            other => {
                return Err(TranslateError::unsupported(
                    format!("message role '{other}' is not supported by cohere"),
                    Some(format!("messages[{i}].role")),
                ));
            }
        };
        out.push(converted);
    }
    Ok(Value::Array(out))
}

/// A text-only content value: a string stays a string, text parts become
/// Cohere `{"type":"text","text"}` items (extra keys dropped).
fn text_content(content: Option<&Value>, i: usize, who: &str) -> Result<Value, TranslateError> {
    let bad = || {
        TranslateError::invalid(
            format!("{who} message content must be a string or text parts"),
            Some(format!("messages[{i}].content")),
        )
    };
    match content {
        Some(Value::String(s)) => Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => {
            let mut items = Vec::with_capacity(parts.len());
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => {
                        items.push(json!({"type": "text", "text": t}));
                    }
                    _ => return Err(bad()),
                }
            }
            Ok(Value::Array(items))
        }
        _ => Err(bad()),
    }
}

fn system_content(content: Option<&Value>, i: usize) -> Result<Value, TranslateError> {
    text_content(content, i, "system")
}

fn user_content(content: Option<&Value>, i: usize) -> Result<Value, TranslateError> {
    match content {
        Some(Value::String(s)) => Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| user_part(p, i, j))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        _ => Err(TranslateError::invalid(
            "user message content must be a string or an array of parts",
            Some(format!("messages[{i}].content")),
        )),
    }
}

fn user_part(part: &Value, i: usize, j: usize) -> Result<Value, TranslateError> {
    let param = || Some(format!("messages[{i}].content[{j}]"));
    match part.get("type").and_then(Value::as_str) {
        Some("text") => match part.get("text") {
            Some(Value::String(t)) => Ok(json!({"type": "text", "text": t})),
            _ => Err(TranslateError::invalid(
                "text part is missing its text",
                param(),
            )),
        },
        Some("image_url") => {
            let image = part.get("image_url");
            let url = match image {
                Some(Value::String(u)) => Some(u.as_str()),
                Some(obj) => obj.get("url").and_then(Value::as_str),
                None => None,
            }
            .ok_or_else(|| TranslateError::invalid("image_url part is missing its url", param()))?;
            if !valid_image_url(url) {
                return Err(TranslateError::invalid(
                    "image url must be a base64 data URL or an http(s) URL",
                    param(),
                ));
            }
            let mut img = Map::new();
            img.insert("url".into(), Value::String(url.to_owned()));
            if let Some(detail) = image.and_then(|o| o.get("detail")).and_then(Value::as_str) {
                img.insert("detail".into(), Value::String(detail.to_owned()));
            }
            Ok(json!({"type": "image_url", "image_url": img}))
        }
        Some(other) => Err(TranslateError::unsupported(
            format!("content part type '{other}' is not supported by cohere"),
            param(),
        )),
        None => Err(TranslateError::invalid(
            "content part is missing its type",
            param(),
        )),
    }
}

/// Cohere takes an image as a base64 data URI or a web URL.
fn valid_image_url(url: &str) -> bool {
    if let Some(rest) = url.strip_prefix("data:") {
        return rest
            .split_once(',')
            .is_some_and(|(meta, data)| meta.ends_with(";base64") && !data.is_empty());
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Assistant turn. With tool calls, Cohere wants the accompanying text as
/// `tool_plan` (its "reasoning before calling tools") rather than `content`;
/// responses map `tool_plan` back to `content`, so a conversation round-trips.
fn assistant_message(msg: &Value, i: usize) -> Result<Value, TranslateError> {
    let text = match msg.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                let t = match part.get("type").and_then(Value::as_str) {
                    Some("text") => part.get("text"),
                    Some("refusal") => part.get("refusal"),
                    _ => None,
                };
                match t {
                    Some(Value::String(t)) => text.push_str(t),
                    _ => {
                        return Err(TranslateError::invalid(
                            "assistant content parts must be text or refusal",
                            Some(format!("messages[{i}].content[{j}]")),
                        ));
                    }
                }
            }
            text
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "assistant content must be a string, an array of parts or null",
                Some(format!("messages[{i}].content")),
            ));
        }
    };
    let calls = match msg.get("tool_calls") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(calls)) => calls.as_slice(),
        Some(_) => {
            return Err(TranslateError::invalid(
                "tool_calls must be an array",
                Some(format!("messages[{i}].tool_calls")),
            ));
        }
    };
    let mut out = Map::new();
    out.insert("role".into(), Value::String("assistant".into()));
    if calls.is_empty() {
        out.insert("content".into(), Value::String(text));
        return Ok(Value::Object(out));
    }
    if !text.is_empty() {
        out.insert("tool_plan".into(), Value::String(text));
    }
    let calls = calls
        .iter()
        .map(|c| tool_call(c, i))
        .collect::<Result<Vec<_>, _>>()?;
    out.insert("tool_calls".into(), Value::Array(calls));
    Ok(Value::Object(out))
}

fn tool_call(call: &Value, i: usize) -> Result<Value, TranslateError> {
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
    let arguments = match f.and_then(|f| f.get("arguments")) {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(Value::String(s)) if s.trim().is_empty() => "{}".to_owned(),
        Some(Value::String(s)) => {
            // Cohere rejects unparsable arguments; say so in OpenAI terms first.
            serde_json::from_str::<serde::de::IgnoredAny>(s).map_err(|e| {
                TranslateError::invalid(
                    format!("tool call '{name}' has arguments that are not valid JSON: {e}"),
                    param(),
                )
            })?;
            s.clone()
        }
        Some(v @ Value::Object(_)) => v.to_string(),
        Some(_) => {
            return Err(TranslateError::invalid(
                "tool call arguments must be a JSON string",
                param(),
            ));
        }
    };
    Ok(json!({
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }))
}

fn tool_message(msg: &Value, i: usize) -> Result<Value, TranslateError> {
    let id = msg
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            TranslateError::invalid(
                "tool message is missing tool_call_id",
                Some(format!("messages[{i}].tool_call_id")),
            )
        })?;
    let content = match msg.get("content") {
        None | Some(Value::Null) => Value::String(String::new()),
        other => text_content(other, i, "tool")?,
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

fn embed_request(
    obj: &Map<String, Value>,
    opts: &RequestOptions,
) -> Result<Map<String, Value>, TranslateError> {
    let texts = match obj.get("input") {
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {
            items.clone()
        }
        Some(Value::Array(items)) if !items.is_empty() => {
            return Err(TranslateError::unsupported(
                "token-array input is not supported by cohere",
                Some("input".into()),
            ));
        }
        _ => {
            return Err(TranslateError::invalid(
                "input must be a string or a non-empty array of strings",
                Some("input".into()),
            ));
        }
    };
    match obj.get("encoding_format") {
        None | Some(Value::Null) => {}
        // base64: the exchange re-encodes the floats asked for here (translate::embeddings).
        Some(Value::String(s)) if s == "float" || s == "base64" => {}
        Some(_) => {
            return Err(TranslateError::invalid(
                "encoding_format must be \"float\" or \"base64\"",
                Some("encoding_format".into()),
            ));
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), Value::String(opts.model.to_owned()));
    out.insert("texts".into(), Value::Array(texts));
    out.insert("input_type".into(), Value::String("search_document".into()));
    out.insert("embedding_types".into(), json!(["float"]));
    match obj.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let n = v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                TranslateError::invalid(
                    "dimensions must be a positive integer",
                    Some("dimensions".into()),
                )
            })?;
            out.insert("output_dimension".into(), n.into());
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- shapes

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Embedding<'a>>,
    model: &'static str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct Embedding<'a> {
    object: &'static str,
    index: usize,
    /// Forwarded verbatim: no float is re-printed.
    embedding: &'a RawValue,
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

// ---------------------------------------------------------------- response

pub(crate) fn response(
    inbound: Inbound,
    body: &[u8],
    created: u64,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    match inbound {
        Inbound::ChatCompletions => chat_response(body, created),
        Inbound::Embeddings => embed_response(body),
        Inbound::Images => Err(no_images()),
    }
}

fn chat_response(body: &[u8], created: u64) -> Result<(Vec<u8>, Usage), TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadUpstream(format!("cohere sent invalid JSON: {e}")))?;
    let msg = v
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| TranslateError::BadUpstream("cohere response has no message".to_owned()))?;
    let reason = str_at(&v, "finish_reason");
    if reason == "ERROR" {
        let detail = v
            .get("error_message")
            .or_else(|| v.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("generation failed");
        return Err(TranslateError::BadUpstream(format!(
            "cohere returned finish_reason ERROR: {detail}"
        )));
    }
    let mut text: Option<String> = None;
    for item in msg
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // "thinking" items (reasoning models) have no OpenAI equivalent.
        if item.get("type").and_then(Value::as_str) == Some("text") {
            text.get_or_insert_with(String::new)
                .push_str(str_at(item, "text"));
        }
    }
    let tool_calls: Vec<ToolCall> = msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let f = c.get("function").unwrap_or(&Value::Null);
            ToolCall {
                id: str_at(c, "id").to_owned(),
                kind: "function",
                function: FunctionCall {
                    name: str_at(f, "name").to_owned(),
                    arguments: match f.get("arguments") {
                        Some(Value::String(s)) => s.clone(),
                        None | Some(Value::Null) => "{}".to_owned(),
                        Some(other) => other.to_string(),
                    },
                },
            }
        })
        .collect();
    // The tool plan is the text a tool-calling turn comes with.
    if text.is_none() && !tool_calls.is_empty() {
        text = Some(str_at(msg, "tool_plan").to_owned()).filter(|p| !p.is_empty());
    }
    let usage = cohere_usage(v.get("usage").unwrap_or(&Value::Null));
    let completion = ChatCompletion {
        id: str_at(&v, "id"),
        object: "chat.completion",
        created,
        model: MODEL,
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: text,
                tool_calls,
            },
            finish_reason: finish_reason(reason),
            logprobs: None,
        }],
        usage: usage.into(),
    };
    let out = serde_json::to_vec(&completion)
        .map_err(|e| TranslateError::BadUpstream(format!("cannot serialise response: {e}")))?;
    Ok((out, usage))
}

#[derive(Deserialize)]
struct EmbedBody<'a> {
    #[serde(borrow)]
    embeddings: &'a RawValue,
    #[serde(default)]
    meta: Value,
}

#[derive(Deserialize)]
struct ByType<'a> {
    #[serde(borrow)]
    float: Vec<&'a RawValue>,
}

fn embed_response(body: &[u8]) -> Result<(Vec<u8>, Usage), TranslateError> {
    let bad = |e: String| TranslateError::BadUpstream(format!("cohere embed response: {e}"));
    let text = std::str::from_utf8(body).map_err(|e| bad(e.to_string()))?;
    let parsed: EmbedBody = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    // `embeddings_by_type` (what we ask for) or the legacy bare float array.
    // (Checked by shape: serde would also read a struct from an array.)
    let raw = parsed.embeddings.get();
    let vectors: Vec<&RawValue> = if raw.trim_start().starts_with('{') {
        serde_json::from_str::<ByType>(raw).map(|b| b.float)
    } else {
        serde_json::from_str(raw)
    }
    .map_err(|_| bad("no float embeddings".to_owned()))?;
    if !vectors.iter().all(|v| v.get().starts_with('[')) {
        return Err(bad("an embedding is not an array".to_owned()));
    }
    let input_tokens = embed_input_tokens(&parsed.meta);
    let list = EmbeddingList {
        object: "list",
        data: vectors
            .into_iter()
            .enumerate()
            .map(|(index, embedding)| Embedding {
                object: "embedding",
                index,
                embedding,
            })
            .collect(),
        model: MODEL,
        usage: EmbeddingUsage {
            prompt_tokens: input_tokens,
            total_tokens: input_tokens,
        },
    };
    let out = serde_json::to_vec(&list).map_err(|e| bad(e.to_string()))?;
    Ok((
        out,
        Usage {
            input_tokens,
            output_tokens: 0,
        },
    ))
}

fn str_at<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

// ---------------------------------------------------------------- stream

/// Cohere v2 SSE -> OpenAI `chat.completion.chunk` SSE.
pub struct CohereStream {
    splitter: SseSplitter,
    events: Vec<SseEvent>,
    client_wants_usage: bool,
    created: u64,
    id: String,
    usage: Usage,
    role_sent: bool,
    stopped: bool,
    first_token: bool,
    failed: Option<String>,
    /// (Cohere tool-call index, OpenAI tool call index).
    tools: Vec<(u64, u32)>,
}

impl CohereStream {
    pub fn new(client_wants_usage: bool, created: u64) -> Self {
        Self {
            splitter: SseSplitter::new(),
            events: Vec::new(),
            client_wants_usage,
            created,
            id: String::new(),
            usage: Usage::default(),
            role_sent: false,
            stopped: false,
            first_token: false,
            failed: None,
            tools: Vec::new(),
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
                model: MODEL,
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

    /// The role chunk goes first, even if an upstream skipped message-start.
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

    fn text(&mut self, out: &mut Vec<u8>, text: &str) {
        self.ensure_role(out);
        if !text.is_empty() {
            self.first_token = true;
            let delta = Delta {
                content: Some(text),
                ..Delta::default()
            };
            self.chunk(out, delta, None);
        }
    }

    fn drain_events(&mut self, out: &mut Vec<u8>) {
        let events = std::mem::take(&mut self.events);
        for ev in events {
            if self.failed.is_some() || self.stopped {
                break;
            }
            self.handle(ev, out);
        }
    }

    fn handle(&mut self, ev: SseEvent, out: &mut Vec<u8>) {
        let data = ev.data.trim();
        // Some Cohere deployments close with an OpenAI-style `[DONE]`; the
        // stream is judged by `message-end` alone.
        if data.is_empty() || data == "[DONE]" {
            return;
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return self.fail(
                    "unparsable upstream event: not a JSON object".to_owned(),
                    "upstream sent an unparsable stream event",
                    out,
                );
            }
            Err(e) => {
                return self.fail(
                    format!("unparsable upstream event: {e}"),
                    "upstream sent an unparsable stream event",
                    out,
                );
            }
        };
        // The JSON `type` is authoritative; the `event:` line is a fallback.
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or_default();
        let message = v
            .get("delta")
            .and_then(|d| d.get("message"))
            .unwrap_or(&Value::Null);
        match kind {
            "message-start" => {
                self.id = str_at(&v, "id").to_owned();
                self.ensure_role(out);
            }
            "content-start" | "content-delta" => {
                // Text blocks carry `text`; reasoning models' "thinking"
                // blocks carry `thinking`, which has no OpenAI equivalent.
                let content = message.get("content").unwrap_or(&Value::Null);
                let text = str_at(content, "text");
                self.text(out, text);
            }
            "tool-plan-delta" => {
                let plan = str_at(message, "tool_plan");
                self.text(out, plan);
            }
            "tool-call-start" => {
                self.ensure_role(out);
                let call = tool_call_of(message);
                let f = call.get("function").unwrap_or(&Value::Null);
                let tool_index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                let cohere_index = v
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::from(tool_index));
                self.tools.push((cohere_index, tool_index));
                self.first_token = true;
                let delta = Delta {
                    tool_calls: Some([ToolCallDelta {
                        index: tool_index,
                        id: Some(str_at(call, "id")),
                        kind: Some("function"),
                        function: FunctionDelta {
                            name: Some(str_at(f, "name")),
                            arguments: str_at(f, "arguments"),
                        },
                    }]),
                    ..Delta::default()
                };
                self.chunk(out, delta, None);
            }
            "tool-call-delta" => {
                self.ensure_role(out);
                let target = match v.get("index").and_then(Value::as_u64) {
                    Some(i) => self.tools.iter().find(|(c, _)| *c == i),
                    None => self.tools.last(),
                };
                if let Some(&(_, tool_index)) = target {
                    let call = tool_call_of(message);
                    let args = call
                        .get("function")
                        .map(|f| str_at(f, "arguments"))
                        .unwrap_or_default();
                    let delta = Delta {
                        tool_calls: Some([ToolCallDelta {
                            index: tool_index,
                            id: None,
                            kind: None,
                            function: FunctionDelta {
                                name: None,
                                arguments: args,
                            },
                        }]),
                        ..Delta::default()
                    };
                    self.chunk(out, delta, None);
                }
            }
            "message-end" => self.message_end(&v, out),
            "" if v.get("message").is_some_and(Value::is_string) => {
                // An error body in place of an event.
                let message = str_at(&v, "message").to_owned();
                self.fail(format!("upstream error event: {message}"), &message, out);
            }
            // content-end, tool-call-end, citation-start/-end, debug and
            // future event types.
            _ => {}
        }
    }

    fn message_end(&mut self, v: &Value, out: &mut Vec<u8>) {
        self.ensure_role(out);
        let delta = v.get("delta").unwrap_or(&Value::Null);
        if let Some(u) = delta.get("usage").filter(|u| u.is_object()) {
            self.usage = cohere_usage(u);
        }
        let reason = str_at(delta, "finish_reason");
        let error = str_at(delta, "error");
        if reason == "ERROR" || !error.is_empty() {
            let message = if error.is_empty() {
                "upstream generation failed"
            } else {
                error
            };
            return self.fail(format!("upstream error event: {message}"), message, out);
        }
        self.chunk(out, Delta::default(), Some(finish_reason(reason)));
        if self.client_wants_usage {
            write_data_event(
                out,
                &Chunk {
                    id: &self.id,
                    object: "chat.completion.chunk",
                    created: self.created,
                    model: MODEL,
                    choices: Vec::new(),
                    usage: Some(self.usage.into()),
                },
            );
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.stopped = true;
    }
}

/// `delta.message.tool_calls` is one object in Cohere's stream; accept a
/// one-element array too.
fn tool_call_of(message: &Value) -> &Value {
    match message.get("tool_calls") {
        Some(Value::Array(items)) => items.first().unwrap_or(&Value::Null),
        Some(v) => v,
        None => &Value::Null,
    }
}

impl StreamTranslator for CohereStream {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.failed.is_some() || self.stopped {
            return;
        }
        let res = self.splitter.feed(chunk, &mut self.events);
        self.drain_events(out);
        if let Err(e) = res
            && self.failed.is_none()
            && !self.stopped
        {
            self.fail(
                e.to_string(),
                "upstream sent an oversized stream event",
                out,
            );
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> StreamOutcome {
        if let Some(reason) = &self.failed {
            return StreamOutcome::Failed(reason.clone());
        }
        if !self.stopped {
            let res = self.splitter.finish(&mut self.events);
            self.drain_events(out);
            if let Err(e) = res
                && self.failed.is_none()
                && !self.stopped
            {
                self.fail(
                    e.to_string(),
                    "upstream sent an oversized stream event",
                    out,
                );
            }
        }
        if let Some(reason) = &self.failed {
            return StreamOutcome::Failed(reason.clone());
        }
        if !self.stopped {
            let reason = "upstream stream ended before message-end".to_owned();
            self.fail(
                reason.clone(),
                "upstream stream ended before completion",
                out,
            );
            return StreamOutcome::Failed(reason);
        }
        StreamOutcome::Complete
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
    use crate::translate::test_support::*;
    use crate::translate::*;
    use serde_json::{Value, json};

    const OPTS: RequestOptions = RequestOptions {
        model: "command-a-03-2025",
        default_max_tokens: 4096,
    };

    fn translate(
        inbound: Inbound,
        body: Value,
    ) -> Result<(UpstreamRequest, Value), TranslateError> {
        let r = request(inbound, Wire::Cohere, &body, &OPTS)?;
        let v = serde_json::from_slice(&r.body).unwrap();
        Ok((r, v))
    }

    fn chat(body: Value) -> Result<(UpstreamRequest, Value), TranslateError> {
        translate(Inbound::ChatCompletions, body)
    }

    #[test]
    fn request_table() {
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "minimal; no default max_tokens; OpenAI-only knobs dropped",
                json!({"model":"alias","messages":[{"role":"user","content":"Hi"}],
                       "user":"u-1","store":true,"metadata":{"a":"b"},"n":1,"logprobs":false,
                       "stream_options":{"include_usage":true},"response_format":{"type":"text"},
                       "logit_bias":{},"parallel_tool_calls":false,"service_tier":"auto"}),
                json!({"model":"command-a-03-2025","messages":[{"role":"user","content":"Hi"}]}),
            ),
            (
                "sampling parameters renamed; stop string; stream",
                json!({"messages":[{"role":"user","content":"Hi"}],"max_tokens":100,
                       "temperature":0.3,"top_p":0.9,"top_k":40,"seed":7,
                       "frequency_penalty":0.2,"presence_penalty":0.1,"stop":"END","stream":true}),
                json!({"model":"command-a-03-2025","messages":[{"role":"user","content":"Hi"}],
                       "max_tokens":100,"temperature":0.3,"p":0.9,"k":40,"seed":7,
                       "frequency_penalty":0.2,"presence_penalty":0.1,
                       "stop_sequences":["END"],"stream":true}),
            ),
            (
                "max_completion_tokens wins; stop array; stream false omitted",
                json!({"messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":7,
                       "max_tokens":9,"stop":["a","b"],"stream":false}),
                json!({"model":"command-a-03-2025","messages":[{"role":"user","content":"Hi"}],
                       "max_tokens":7,"stop_sequences":["a","b"]}),
            ),
            (
                "system/developer kept in place; text parts cleaned",
                json!({"messages":[
                    {"role":"system","content":"You are terse."},
                    {"role":"user","content":"one"},
                    {"role":"developer","content":[{"type":"text","text":"Be nice.","cache_control":{"type":"ephemeral"}}]},
                    {"role":"assistant","content":"ok"},
                    {"role":"user","content":[{"type":"text","text":"two"}],"name":"bob"}]}),
                json!({"model":"command-a-03-2025","messages":[
                    {"role":"system","content":"You are terse."},
                    {"role":"user","content":"one"},
                    {"role":"system","content":[{"type":"text","text":"Be nice."}]},
                    {"role":"assistant","content":"ok"},
                    {"role":"user","content":[{"type":"text","text":"two"}]}]}),
            ),
            (
                "images: data URL with detail and https URL",
                json!({"messages":[{"role":"user","content":[
                    {"type":"text","text":"What is this?"},
                    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}},
                    {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]}),
                json!({"model":"command-a-03-2025","messages":[{"role":"user","content":[
                    {"type":"text","text":"What is this?"},
                    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}},
                    {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]}),
            ),
            (
                "tools, tool calls (text becomes tool_plan), tool results, required",
                json!({"messages":[
                    {"role":"user","content":"Weather in Paris and Rome?"},
                    {"role":"assistant","content":"I will look up the weather.","tool_calls":[
                        {"id":"get_weather_1byjy32y4hvq","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}},
                        {"id":"get_weather_2","type":"function","function":{"name":"get_weather","arguments":""}}]},
                    {"role":"tool","tool_call_id":"get_weather_1byjy32y4hvq","content":"{\"temperature\":18}"},
                    {"role":"tool","tool_call_id":"get_weather_2","content":[{"type":"text","text":"21C"}]},
                    {"role":"user","content":"Thanks"}],
                    "tools":[
                        {"type":"function","function":{"name":"get_weather","description":"Gets the weather",
                            "parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}},
                        {"type":"function","function":{"name":"now"}}],
                    "tool_choice":"required","parallel_tool_calls":true}),
                json!({"model":"command-a-03-2025","messages":[
                    {"role":"user","content":"Weather in Paris and Rome?"},
                    {"role":"assistant","tool_plan":"I will look up the weather.","tool_calls":[
                        {"id":"get_weather_1byjy32y4hvq","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}},
                        {"id":"get_weather_2","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
                    {"role":"tool","tool_call_id":"get_weather_1byjy32y4hvq","content":"{\"temperature\":18}"},
                    {"role":"tool","tool_call_id":"get_weather_2","content":[{"type":"text","text":"21C"}]},
                    {"role":"user","content":"Thanks"}],
                    "tools":[
                        {"type":"function","function":{"name":"get_weather","description":"Gets the weather",
                            "parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}},
                        {"type":"function","function":{"name":"now","parameters":{"type":"object","properties":{}}}}],
                    "tool_choice":"REQUIRED"}),
            ),
            (
                "null assistant content with tool calls; null tool content; strict tools",
                json!({"messages":[
                    {"role":"user","content":"x"},
                    {"role":"assistant","content":null,"tool_calls":[
                        {"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]},
                    {"role":"tool","tool_call_id":"t1","content":null}],
                    "tools":[{"type":"function","function":{"name":"f","strict":true,"parameters":{"type":"object"}}}],
                    "tool_choice":"none"}),
                json!({"model":"command-a-03-2025","messages":[
                    {"role":"user","content":"x"},
                    {"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]},
                    {"role":"tool","tool_call_id":"t1","content":""}],
                    "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
                    "strict_tools":true,"tool_choice":"NONE"}),
            ),
            (
                "named tool_choice narrows the tools and requires a call",
                json!({"messages":[{"role":"user","content":"x"}],
                       "tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"g"}}],
                       "tool_choice":{"type":"function","function":{"name":"g"}}}),
                json!({"model":"command-a-03-2025","messages":[{"role":"user","content":"x"}],
                       "tools":[{"type":"function","function":{"name":"g","parameters":{"type":"object","properties":{}}}}],
                       "tool_choice":"REQUIRED"}),
            ),
            (
                "tool_choice auto is Cohere's default; assistant parts joined",
                json!({"messages":[{"role":"user","content":"x"},
                       {"role":"assistant","content":[{"type":"text","text":"a"},{"type":"refusal","refusal":"b"}]}],
                       "tool_choice":"auto"}),
                json!({"model":"command-a-03-2025","messages":[{"role":"user","content":"x"},
                       {"role":"assistant","content":"ab"}]}),
            ),
            (
                "json_object",
                json!({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}),
                json!({"model":"command-a-03-2025","messages":[{"role":"user","content":"x"}],
                       "response_format":{"type":"json_object"}}),
            ),
            (
                "json_schema becomes json_object with json_schema",
                json!({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema",
                       "json_schema":{"name":"person","strict":true,"schema":{"type":"object",
                       "properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}}}}),
                json!({"model":"command-a-03-2025","messages":[{"role":"user","content":"x"}],
                       "response_format":{"type":"json_object","json_schema":{"type":"object",
                       "properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}}}),
            ),
        ];
        for (name, body, expected) in cases {
            let (r, v) = chat(body.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(v, expected, "{name}");
            assert_eq!(r.path_suffix, "/v2/chat");
            assert_eq!(r.stream, body.get("stream") == Some(&json!(true)), "{name}");
            assert!(!r.usage_injected);
        }
    }

    #[test]
    fn request_errors_table() {
        let user = json!([{"role":"user","content":"x"}]);
        let tools = json!([{"type":"function","function":{"name":"f"}}]);
        // (body, unsupported?, param)
        let cases: Vec<(Value, bool, Option<&str>)> = vec![
            (json!({"messages":user,"n":2}), true, Some("n")),
            (
                json!({"messages":user,"logprobs":true}),
                true,
                Some("logprobs"),
            ),
            (
                json!({"messages":user,"logit_bias":{"50256":-100}}),
                true,
                Some("logit_bias"),
            ),
            (
                json!({"messages":user,"audio":{"voice":"alloy","format":"wav"}}),
                true,
                Some("audio"),
            ),
            (
                json!({"messages":user,"tools":tools,"parallel_tool_calls":false}),
                true,
                Some("parallel_tool_calls"),
            ),
            (
                json!({"messages":user,"response_format":{"type":"grammar"}}),
                true,
                Some("response_format"),
            ),
            (
                json!({"messages":user,"response_format":{"json_schema":{}}}),
                false,
                Some("response_format"),
            ),
            (
                json!({"messages":user,"response_format":{"type":"json_schema","json_schema":{"schema":"x"}}}),
                false,
                Some("response_format"),
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
                json!({"messages":user,"tools":tools,"tool_choice":{"type":"allowed_tools","allowed_tools":{}}}),
                true,
                Some("tool_choice"),
            ),
            (
                json!({"messages":user,"tools":tools,"tool_choice":{"type":"function","function":{"name":"g"}}}),
                false,
                Some("tool_choice"),
            ),
            (
                json!({"messages":user,"tool_choice":"sometimes"}),
                false,
                Some("tool_choice"),
            ),
            (
                json!({"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[
                {"id":"a","type":"function","function":{"name":"f","arguments":"{not json"}}]}]}),
                false,
                Some("messages[1].tool_calls"),
            ),
            (
                json!({"messages":[{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f"}}]}]}),
                false,
                Some("messages[0].tool_calls"),
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
                json!({"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}),
                false,
                Some("messages[0].content"),
            ),
            (
                json!({"messages":[{"role":"tool","tool_call_id":"t","content":[{"type":"image_url"}]}]}),
                false,
                Some("messages[0].content"),
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
                json!({"messages":user,"max_completion_tokens":"9"}),
                false,
                Some("max_completion_tokens"),
            ),
            (json!({"messages":user,"stop":[1]}), false, Some("stop")),
            (
                json!({"messages":user,"temperature":"hot"}),
                false,
                Some("temperature"),
            ),
            (json!({"messages":user,"top_p":[]}), false, Some("top_p")),
            (json!({"messages":user,"seed":1.5}), false, Some("seed")),
            (
                json!({"messages":user,"stream":"yes"}),
                false,
                Some("stream"),
            ),
            (json!({"messages":user,"tools":{}}), false, Some("tools")),
            (
                json!({"messages":user,"tools":[{"type":"function"}]}),
                false,
                Some("tools[0].function"),
            ),
            (json!({"messages":"hi"}), false, Some("messages")),
            (json!({}), false, Some("messages")),
            (json!([]), false, None),
        ];
        for (body, unsupported, param) in cases {
            let err = chat(body.clone()).map(|_| ()).unwrap_err();
            assert_eq!(
                matches!(err, TranslateError::Unsupported { .. }),
                unsupported,
                "{body}: {err}"
            );
            assert_eq!(err.param(), param, "{body}");
        }
        let err = chat(json!({"messages":user,"n":3}))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.to_string(), "n > 1 is not supported by cohere");
    }

    #[test]
    fn embed_request_table() {
        let cases = vec![
            (
                json!({"model":"text-embedding-3-small","input":"hello","encoding_format":"float","user":"u"}),
                json!({"model":"command-a-03-2025","texts":["hello"],"input_type":"search_document","embedding_types":["float"]}),
            ),
            (
                json!({"input":["a","b"],"dimensions":512}),
                json!({"model":"command-a-03-2025","texts":["a","b"],"input_type":"search_document","embedding_types":["float"],"output_dimension":512}),
            ),
        ];
        for (body, expected) in cases {
            let (r, v) = translate(Inbound::Embeddings, body.clone()).unwrap();
            assert_eq!(v, expected, "{body}");
            assert_eq!(r.path_suffix, "/v2/embed");
            assert!(!r.stream && !r.usage_injected);
        }
        // (body, unsupported?, param)
        let errors = vec![
            (json!({"input":[[1,2,3]]}), true, "input"),
            (json!({"input":[1,2]}), true, "input"),
            (json!({"input":[]}), false, "input"),
            (json!({"input":7}), false, "input"),
            (json!({}), false, "input"),
            (
                json!({"input":"x","encoding_format":"hex"}),
                false,
                "encoding_format",
            ),
            (json!({"input":"x","dimensions":0}), false, "dimensions"),
        ];
        for (body, unsupported, param) in errors {
            let err = translate(Inbound::Embeddings, body.clone())
                .map(|_| ())
                .unwrap_err();
            assert_eq!(
                matches!(err, TranslateError::Unsupported { .. }),
                unsupported,
                "{body}"
            );
            assert_eq!(err.param(), Some(param), "{body}");
        }
    }

    fn respond(body: &[u8]) -> Result<(Value, Usage), TranslateError> {
        let (out, usage) = response(Inbound::ChatCompletions, Wire::Cohere, body, 1_700_000_000)?;
        Ok((serde_json::from_slice(&out).unwrap(), usage))
    }

    #[test]
    fn response_text_exact() {
        // Shape as documented at https://docs.cohere.com/reference/chat
        let body = br#"{"id":"c14c80c3-18eb-4519-9460-6c92edd8cfb4","finish_reason":"COMPLETE","message":{"role":"assistant","content":[{"type":"text","text":"LLMs stand for Large Language Models"},{"type":"text","text":", which are AI systems."}]},"usage":{"billed_units":{"input_tokens":5,"output_tokens":418},"tokens":{"input_tokens":71,"output_tokens":418}}}"#;
        let (out, usage) =
            response(Inbound::ChatCompletions, Wire::Cohere, body, 1_700_000_000).unwrap();
        assert_eq!(
            usage,
            Usage {
                input_tokens: 71,
                output_tokens: 418
            }
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":"c14c80c3-18eb-4519-9460-6c92edd8cfb4","object":"chat.completion","created":1700000000,"model":"","choices":[{"index":0,"message":{"role":"assistant","content":"LLMs stand for Large Language Models, which are AI systems."},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":71,"completion_tokens":418,"total_tokens":489}}"#
        );
    }

    #[test]
    fn response_tool_calls_and_reasoning() {
        let body = br#"{"id":"7a9a1a2e","finish_reason":"TOOL_CALL","message":{"role":"assistant","tool_plan":"I will find the weather for Toronto.","tool_calls":[{"id":"get_weather_1byjy32y4hvq","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Toronto\"}"}},{"id":"get_time_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},"usage":{"billed_units":{"input_tokens":37,"output_tokens":28},"tokens":{"input_tokens":1048,"output_tokens":54},"cached_tokens":512}}"#;
        let (v, usage) = respond(body).unwrap();
        assert_eq!(
            usage,
            Usage {
                input_tokens: 1048,
                output_tokens: 54
            }
        );
        assert_eq!(
            v,
            json!({"id":"7a9a1a2e","object":"chat.completion","created":1_700_000_000u64,"model":"",
                "choices":[{"index":0,"message":{"role":"assistant","content":"I will find the weather for Toronto.",
                    "tool_calls":[
                        {"id":"get_weather_1byjy32y4hvq","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Toronto\"}"}},
                        {"id":"get_time_2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
                    "finish_reason":"tool_calls","logprobs":null}],
                "usage":{"prompt_tokens":1048,"completion_tokens":54,"total_tokens":1102}})
        );

        // Reasoning model: the thinking item is dropped; billed_units-only usage.
        let body = br#"{"id":"r1","finish_reason":"MAX_TOKENS","message":{"role":"assistant","content":[{"type":"thinking","thinking":"Let me think."},{"type":"text","text":"42"}]},"usage":{"billed_units":{"input_tokens":12.0,"output_tokens":30.0}}}"#;
        let (v, usage) = respond(body).unwrap();
        assert_eq!(
            v["choices"][0]["message"],
            json!({"role":"assistant","content":"42"})
        );
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(
            usage,
            Usage {
                input_tokens: 12,
                output_tokens: 30
            }
        );

        // Tool calls with neither text nor plan: content is null; object arguments stringified.
        let body = br#"{"id":"t","finish_reason":"TOOL_CALL","message":{"role":"assistant","tool_plan":"","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":{"x":1}}}]}}"#;
        let (v, usage) = respond(body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"x\":1}"
        );
        assert_eq!(usage, Usage::default());
    }

    #[test]
    fn response_finish_reasons_and_errors() {
        for (reason, finish) in [
            ("COMPLETE", "stop"),
            ("STOP_SEQUENCE", "stop"),
            ("MAX_TOKENS", "length"),
            ("TIMEOUT", "length"),
            ("TOOL_CALL", "tool_calls"),
            ("SOMETHING_NEW", "stop"),
        ] {
            let body = json!({"id":"x","finish_reason":reason,"message":{"role":"assistant","content":[]}});
            let (v, _) = respond(body.to_string().as_bytes()).unwrap();
            assert_eq!(v["choices"][0]["finish_reason"], finish, "{reason}");
            // Empty content list: no text at all.
            assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        }
        let err = respond(
            br#"{"id":"x","finish_reason":"ERROR","message":{"role":"assistant","content":[]},"error_message":"model overloaded"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid upstream response: cohere returned finish_reason ERROR: model overloaded"
        );
        for bad in [
            &b"not json"[..],
            br#"{"id":"x","message":"invalid api token"}"#,
            br#"{"message":"invalid api token"}"#,
            b"[]",
        ] {
            assert!(
                matches!(respond(bad), Err(TranslateError::BadUpstream(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn embed_response_exact() {
        // Shape as documented at https://docs.cohere.com/reference/embed
        let body = br#"{"id":"da6e531f-54c6-4a73-bf92-f60566d8d753","embeddings":{"float":[[0.016296387,-0.008354187,-0.04699707],[-0.00000012,1e-7,0.5]]},"texts":["hello","goodbye"],"meta":{"api_version":{"version":"2"},"billed_units":{"input_tokens":2}},"response_type":"embeddings_by_type"}"#;
        let (out, usage) = response(Inbound::Embeddings, Wire::Cohere, body, 5).unwrap();
        assert_eq!(
            usage,
            Usage {
                input_tokens: 2,
                output_tokens: 0
            }
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.016296387,-0.008354187,-0.04699707]},{"object":"embedding","index":1,"embedding":[-0.00000012,1e-7,0.5]}],"model":"","usage":{"prompt_tokens":2,"total_tokens":2}}"#
        );
        // Legacy `embeddings_floats` response; meta.tokens preferred.
        let legacy = br#"{"id":"x","embeddings":[[1.5,2]],"texts":["a"],"meta":{"billed_units":{"input_tokens":1},"tokens":{"input_tokens":3}},"response_type":"embeddings_floats"}"#;
        let (out, usage) = response(Inbound::Embeddings, Wire::Cohere, legacy, 5).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["data"][0]["embedding"], json!([1.5, 2]));
        assert_eq!(usage.input_tokens, 3);
        for bad in [
            &b"{}"[..],
            br#"{"embeddings":{"int8":[[1]]}}"#,
            br#"{"embeddings":{"float":"x"}}"#,
            br#"{"embeddings":{"float":[1,2]}}"#,
            b"\xff\xfe",
            br#"{"message":"invalid api token"}"#,
        ] {
            assert!(
                matches!(
                    response(Inbound::Embeddings, Wire::Cohere, bad, 5),
                    Err(TranslateError::BadUpstream(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    // Transcript in the shape documented at https://docs.cohere.com/docs/streaming
    const TEXT_STREAM: &str = concat!(
        "event: message-start\n",
        "data: {\"id\":\"29f14a5a-11de-4cae-9800-25e4747408ea\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\",\"content\":[],\"tool_plan\":\"\",\"tool_calls\":[],\"citations\":[]}}}\n\n",
        "event: content-start\n",
        "data: {\"type\":\"content-start\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"type\":\"text\",\"text\":\"\"}}}}\n\n",
        "event: content-delta\n",
        "data: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"Hello\"}}}}\n\n",
        "event: content-delta\n",
        "data: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"! ¿Qué tal? 👋\"}}}}\n\n",
        "event: content-end\n",
        "data: {\"type\":\"content-end\",\"index\":0}\n\n",
        "event: message-end\n",
        "data: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\",\"usage\":{\"billed_units\":{\"input_tokens\":5,\"output_tokens\":9},\"tokens\":{\"input_tokens\":71,\"output_tokens\":9}}}}\n\n",
    );

    // Tool-calling step as in https://docs.cohere.com/v2/docs/tool-use-streaming,
    // with CRLF framing and a trailing `data: [DONE]`.
    const TOOL_STREAM: &str = concat!(
        "event: message-start\r\n",
        "data: {\"id\":\"fba98ad3-e5a1-413c-a8de-84fbf9baabf7\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\",\"content\":[],\"tool_plan\":\"\",\"tool_calls\":[],\"citations\":[]}}}\r\n\r\n",
        "event: tool-plan-delta\r\n",
        "data: {\"type\":\"tool-plan-delta\",\"delta\":{\"message\":{\"tool_plan\":\"I\"}}}\r\n\r\n",
        "event: tool-plan-delta\r\n",
        "data: {\"type\":\"tool-plan-delta\",\"delta\":{\"message\":{\"tool_plan\":\" will check.\"}}}\r\n\r\n",
        "event: tool-call-start\r\n",
        "data: {\"type\":\"tool-call-start\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"get_weather_p0dage9q1nv4\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}}}}\r\n\r\n",
        "event: tool-call-delta\r\n",
        "data: {\"type\":\"tool-call-delta\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"{\\n    \\\"\"}}}}}\r\n\r\n",
        "event: tool-call-delta\r\n",
        "data: {\"type\":\"tool-call-delta\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"location\\\": \\\"Madrid\\\"\\n}\"}}}}}\r\n\r\n",
        "event: tool-call-end\r\n",
        "data: {\"type\":\"tool-call-end\",\"index\":0}\r\n\r\n",
        "event: tool-call-start\r\n",
        "data: {\"type\":\"tool-call-start\",\"index\":1,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"get_weather_m3yg9kkm7qdd\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}}}}\r\n\r\n",
        "event: tool-call-delta\r\n",
        "data: {\"type\":\"tool-call-delta\",\"index\":1,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"{\\\"location\\\": \\\"Brasilia\\\"}\"}}}}}\r\n\r\n",
        "event: tool-call-end\r\n",
        "data: {\"type\":\"tool-call-end\",\"index\":1}\r\n\r\n",
        "event: message-end\r\n",
        "data: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"TOOL_CALL\",\"usage\":{\"billed_units\":{\"input_tokens\":37,\"output_tokens\":28},\"tokens\":{\"input_tokens\":913,\"output_tokens\":83},\"cached_tokens\":176}}}\r\n\r\n",
        "data: [DONE]\r\n\r\n",
    );

    fn make(wants_usage: bool) -> impl Fn() -> Box<dyn StreamTranslator + Send> {
        move || {
            stream(
                Inbound::ChatCompletions,
                Wire::Cohere,
                wants_usage,
                1_700_000_000,
            )
        }
    }

    const CHUNK_HEAD: &str = "{\"id\":\"29f14a5a-11de-4cae-9800-25e4747408ea\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"\"";

    #[test]
    fn stream_text_exact() {
        let r = run_all_splits(&make(true), TEXT_STREAM.as_bytes());
        let h = CHUNK_HEAD;
        let expected = [
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"Hello\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"! ¿Qué tal? 👋\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\",\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[],\"usage\":{{\"prompt_tokens\":71,\"completion_tokens\":9,\"total_tokens\":80}}}}\n\n"),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        assert_eq!(r.out_str(), expected);
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 71,
                output_tokens: 9
            }
        );
        assert!(r.first_token);

        // Without include_usage: the same minus the usage chunk.
        let r2 = run_all_splits(&make(false), TEXT_STREAM.as_bytes());
        assert_eq!(r2.datas().len(), 5);
        assert!(!r2.out_str().contains("\"usage\""));
        assert_eq!(r2.usage, r.usage);
        assert_eq!(r2.outcome, StreamOutcome::Complete);
    }

    #[test]
    fn stream_tool_calls() {
        let r = run_all_splits(&make(false), TOOL_STREAM.as_bytes());
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 913,
                output_tokens: 83
            }
        );
        assert!(r.first_token);
        assert_eq!(r.datas().last().map(String::as_str), Some("[DONE]"));
        assert_eq!(r.out_str().matches("[DONE]").count(), 1);
        let deltas: Vec<Value> = r
            .jsons()
            .iter()
            .map(|c| {
                assert_eq!(c["object"], "chat.completion.chunk");
                assert_eq!(c["id"], "fba98ad3-e5a1-413c-a8de-84fbf9baabf7");
                assert_eq!(c["created"], 1_700_000_000u64);
                json!([c["choices"][0]["delta"], c["choices"][0]["finish_reason"]])
            })
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!([{"role":"assistant","content":""}, null]),
                json!([{"content":"I"}, null]),
                json!([{"content":" will check."}, null]),
                json!([{"tool_calls":[{"index":0,"id":"get_weather_p0dage9q1nv4","type":"function","function":{"name":"get_weather","arguments":""}}]}, null]),
                json!([{"tool_calls":[{"index":0,"function":{"arguments":"{\n    \""}}]}, null]),
                json!([{"tool_calls":[{"index":0,"function":{"arguments":"location\": \"Madrid\"\n}"}}]}, null]),
                json!([{"tool_calls":[{"index":1,"id":"get_weather_m3yg9kkm7qdd","type":"function","function":{"name":"get_weather","arguments":""}}]}, null]),
                json!([{"tool_calls":[{"index":1,"function":{"arguments":"{\"location\": \"Brasilia\"}"}}]}, null]),
                json!([{}, "tool_calls"]),
            ]
        );
    }

    #[test]
    fn stream_reasoning_model_and_odd_framing() {
        // Thinking block first (dropped), then text; no `event:` lines, so the
        // JSON `type` alone drives it; tool-call-delta without index goes to
        // the last tool; unknown events and citations are ignored.
        let input = concat!(
            "data: {\"id\":\"r-1\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\"}}}\n\n",
            "data: {\"type\":\"content-start\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"type\":\"thinking\",\"thinking\":\"\"}}}}\n\n",
            "data: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"thinking\":\"Let me think.\"}}}}\n\n",
            "data: {\"type\":\"content-end\",\"index\":0}\n\n",
            ": keep-alive\n\n",
            "data: {\"type\":\"citation-start\",\"index\":0,\"delta\":{\"message\":{\"citations\":{\"start\":0,\"end\":2,\"text\":\"42\",\"sources\":[]}}}}\n\n",
            "data: {\"type\":\"debug\",\"prompt\":\"...\"}\n\n",
            "data: {\"type\":\"content-start\",\"index\":1,\"delta\":{\"message\":{\"content\":{\"type\":\"text\",\"text\":\"4\"}}}}\n\n",
            "data: {\"type\":\"content-delta\",\"index\":1,\"delta\":{\"message\":{\"content\":{\"text\":\"2\"}}},\"logprobs\":{\"token_ids\":[17],\"logprobs\":[-0.1]}}\n\n",
            "data: {\"type\":\"tool-call-start\",\"delta\":{\"message\":{\"tool_calls\":[{\"id\":\"t\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]}}}\n\n",
            "data: {\"type\":\"tool-call-delta\",\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"}\"}}}}}\n\n",
            "data: {\"type\":\"tool-call-delta\",\"index\":9,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"lost\"}}}}}\n\n",
            "data: {\"type\":\"message-end\",\"id\":\"r-1\",\"delta\":{\"finish_reason\":\"MAX_TOKENS\",\"usage\":{\"billed_units\":{\"input_tokens\":8,\"output_tokens\":40}}}}",
        );
        let r = run_all_splits(&make(true), input.as_bytes());
        assert_eq!(r.outcome, StreamOutcome::Complete);
        let deltas: Vec<Value> = r
            .jsons()
            .iter()
            .map(|c| {
                json!([
                    c["choices"][0]["delta"],
                    c["choices"][0]["finish_reason"],
                    c["usage"]
                ])
            })
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!([{"role":"assistant","content":""}, null, null]),
                json!([{"content":"4"}, null, null]),
                json!([{"content":"2"}, null, null]),
                json!([{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":"{"}}]}, null, null]),
                json!([{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]}, null, null]),
                json!([{}, "length", null]),
                json!([null, null, {"prompt_tokens":8,"completion_tokens":40,"total_tokens":48}]),
            ]
        );
        assert_eq!(r.datas().last().map(String::as_str), Some("[DONE]"));

        // A stream of only thinking never reports a first token.
        let thinking_only = concat!(
            "event: message-start\ndata: {\"id\":\"t\",\"type\":\"message-start\"}\n\n",
            "event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"thinking\":\"hmm\"}}}}\n\n",
        );
        let r = run(&make(false), &[thinking_only.as_bytes()]);
        assert!(!r.first_token);
    }

    fn error_event(message: &str) -> String {
        format!(
            "data: {{\"error\":{{\"message\":\"{message}\",\"type\":\"upstream_error\",\"code\":\"stream_interrupted\",\"param\":null}}}}\n\n"
        )
    }

    #[test]
    fn stream_truncated() {
        let cut = TEXT_STREAM.find("event: message-end").unwrap();
        let r = run_all_splits(&make(true), &TEXT_STREAM.as_bytes()[..cut]);
        assert!(
            r.out_str()
                .ends_with(&error_event("upstream stream ended before completion"))
        );
        assert_eq!(r.out_str().matches("\"error\"").count(), 1);
        assert!(!r.out_str().contains("[DONE]"));
        assert_eq!(
            r.outcome,
            StreamOutcome::Failed("upstream stream ended before message-end".to_owned())
        );
        assert!(r.first_token);

        // Every truncation point before message-end's JSON is complete fails
        // with exactly one error event (an unterminated final event is flushed).
        let end = TOOL_STREAM.find("data: [DONE]").unwrap();
        let last_brace = TOOL_STREAM[..end].rfind('}').unwrap();
        for cut in 0..=last_brace {
            let r = run(&make(false), &[&TOOL_STREAM.as_bytes()[..cut]]);
            assert!(
                matches!(r.outcome, StreamOutcome::Failed(_)),
                "cut at {cut}"
            );
            assert_eq!(r.out_str().matches("\"error\":").count(), 1, "cut at {cut}");
            assert!(!r.out_str().contains("[DONE]"), "cut at {cut}");
        }
        for cut in last_brace + 1..=TOOL_STREAM.len() {
            let r = run(&make(false), &[&TOOL_STREAM.as_bytes()[..cut]]);
            assert_eq!(r.outcome, StreamOutcome::Complete, "cut at {cut}");
            assert_eq!(r.out_str().matches("[DONE]").count(), 1, "cut at {cut}");
        }
        // Empty body, and `[DONE]` without message-end.
        for input in [&b""[..], b"data: [DONE]\n\n"] {
            let r = run(&make(false), &[input]);
            assert_eq!(
                r.out_str(),
                error_event("upstream stream ended before completion")
            );
            assert!(!r.first_token);
        }
    }

    #[test]
    fn stream_corrupted_event() {
        let bad = TEXT_STREAM.replacen("{\"text\":\"Hello\"}}}}", "{\"text\":\"Hello\"}}}", 1);
        let r = run_all_splits(&make(true), bad.as_bytes());
        assert_eq!(r.datas().len(), 2);
        assert!(
            r.out_str()
                .ends_with(&error_event("upstream sent an unparsable stream event"))
        );
        assert_eq!(r.out_str().matches("\"error\":").count(), 1);
        assert!(
            matches!(r.outcome, StreamOutcome::Failed(ref s) if s.starts_with("unparsable upstream event"))
        );
        assert_eq!(r.usage, Usage::default());
        let r = run(&make(true), &[b"data: [1,2]\n\n"]);
        assert!(
            matches!(r.outcome, StreamOutcome::Failed(ref s) if s.ends_with("not a JSON object"))
        );
    }

    #[test]
    fn stream_upstream_errors() {
        // message-end with finish_reason ERROR and an error text.
        let cut = TEXT_STREAM.find("event: message-end").unwrap();
        let input = format!(
            "{}event: message-end\ndata: {{\"type\":\"message-end\",\"delta\":{{\"finish_reason\":\"ERROR\",\"error\":\"internal model error\",\"usage\":{{\"billed_units\":{{\"input_tokens\":5,\"output_tokens\":2}}}}}}}}\n\n",
            &TEXT_STREAM[..cut]
        );
        let r = run_all_splits(&make(true), input.as_bytes());
        assert_eq!(r.datas().len(), 4);
        assert!(r.out_str().ends_with(&error_event("internal model error")));
        assert_eq!(
            r.outcome,
            StreamOutcome::Failed("upstream error event: internal model error".to_owned())
        );
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 5,
                output_tokens: 2
            }
        );

        // ERROR without text.
        let r = run(
            &make(false),
            &[b"data: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\"}}\n\n"],
        );
        assert_eq!(r.out_str().matches("\"error\":").count(), 1);
        assert!(
            r.out_str()
                .ends_with(&error_event("upstream generation failed"))
        );

        // An error body where an event should be.
        let input = format!(
            "{}data: {{\"id\":\"x\",\"message\":\"internal server error\"}}\n\n",
            &TEXT_STREAM[..cut]
        );
        let r = run_all_splits(&make(false), input.as_bytes());
        assert!(r.out_str().ends_with(&error_event("internal server error")));
        assert_eq!(r.out_str().matches("\"error\":").count(), 1);
        assert!(matches!(r.outcome, StreamOutcome::Failed(_)));
    }

    #[test]
    fn stream_ignores_everything_after_message_end() {
        let input = format!("{TEXT_STREAM}data: {{garbage\n\nevent: message-end\ndata: {{}}\n\n");
        let r = run_all_splits(&make(false), input.as_bytes());
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert_eq!(r.out_str().matches("[DONE]").count(), 1);
        // finish() twice stays Complete and writes nothing more.
        let mut t = make(false)();
        let mut out = Vec::new();
        t.feed(TEXT_STREAM.as_bytes(), &mut out);
        assert_eq!(t.finish(&mut out), StreamOutcome::Complete);
        let len = out.len();
        assert_eq!(t.finish(&mut out), StreamOutcome::Complete);
        assert_eq!(out.len(), len);
    }

    #[test]
    fn stream_mutations_never_panic() {
        let mut rng = Rng(7);
        for _ in 0..300 {
            let mut bytes = TOOL_STREAM.as_bytes().to_vec();
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
