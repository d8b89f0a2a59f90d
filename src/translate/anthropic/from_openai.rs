//! OpenAI chat client -> Anthropic Messages provider.
//!
//! Requests are rebuilt field by field (an allowlist: OpenAI-only knobs are
//! dropped, ones that would silently change behaviour are rejected).
//! Responses and streams are rebuilt in the OpenAI `chat.completion` /
//! `chat.completion.chunk` shapes.

use super::{finish_reason, input_tokens};
use crate::translate::openai_shapes::{
    ChatCompletion, Choice, Chunk, ChunkChoice, Delta, FunctionCall, FunctionDelta, Message,
    ToolCall, ToolCallDelta,
};
use crate::translate::sse::{SseEvent, SseSplitter};
use crate::translate::{
    Inbound, RequestOptions, StreamOutcome, StreamTranslator, TranslateError, UpstreamRequest,
    Usage, u64_at, write_data_event, write_openai_stream_error,
};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------- request

pub(crate) fn request(
    inbound: Inbound,
    body: &Value,
    opts: &RequestOptions,
) -> Result<UpstreamRequest, TranslateError> {
    if inbound == Inbound::Embeddings {
        return Err(TranslateError::unsupported(
            "anthropic has no embeddings endpoint",
            None,
        ));
    }
    let Value::Object(obj) = body else {
        return Err(TranslateError::invalid(
            "request body must be a JSON object",
            None,
        ));
    };
    reject_unsupported(obj)?;

    let mut out = Map::new();
    out.insert("model".into(), Value::String(opts.model.to_owned()));
    out.insert("max_tokens".into(), max_tokens(obj, opts)?.into());
    let (system, messages) = convert_messages(obj.get("messages"))?;
    if let Some(system) = system {
        out.insert("system".into(), Value::String(system));
    }
    out.insert("messages".into(), Value::Array(messages));
    for key in ["temperature", "top_p", "top_k"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                out.insert(key.into(), v.clone());
            }
            Some(_) => {
                return Err(TranslateError::invalid(
                    format!("{key} must be a number"),
                    Some(key.into()),
                ));
            }
        }
    }
    if let Some(stop) = stop_sequences(obj.get("stop"))? {
        out.insert("stop_sequences".into(), stop);
    }
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => {
            out.insert("stream".into(), Value::Bool(*b));
            *b
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "stream must be a boolean",
                Some("stream".into()),
            ));
        }
    };
    if let Some(Value::String(user)) = obj.get("user") {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(tools) = convert_tools(obj.get("tools"))? {
        out.insert("tools".into(), tools);
    }
    let no_parallel = obj.get("parallel_tool_calls") == Some(&Value::Bool(false));
    if let Some(choice) = convert_tool_choice(obj.get("tool_choice"), no_parallel)? {
        out.insert("tool_choice".into(), choice);
    } else if no_parallel && out.contains_key("tools") {
        out.insert(
            "tool_choice".into(),
            json!({"type": "auto", "disable_parallel_tool_use": true}),
        );
    }

    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| TranslateError::invalid(format!("cannot serialise request: {e}"), None))?;
    Ok(UpstreamRequest {
        path_suffix: "/messages".to_owned(),
        body,
        stream,
        // Anthropic always reports usage in its stream; nothing to inject.
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
            "n > 1 is not supported by anthropic",
            Some("n".into()),
        ));
    }
    if obj.get("logprobs") == Some(&Value::Bool(true)) {
        return Err(TranslateError::unsupported(
            "logprobs is not supported by anthropic",
            Some("logprobs".into()),
        ));
    }
    let format = obj
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str);
    if let Some(kind @ ("json_object" | "json_schema")) = format {
        return Err(TranslateError::unsupported(
            format!("response_format {kind} is not supported by anthropic"),
            Some("response_format".into()),
        ));
    }
    Ok(())
}

fn max_tokens(obj: &Map<String, Value>, opts: &RequestOptions) -> Result<u64, TranslateError> {
    for key in ["max_completion_tokens", "max_tokens"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                return v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                    TranslateError::invalid(
                        format!("{key} must be a positive integer"),
                        Some(key.into()),
                    )
                });
            }
        }
    }
    Ok(opts.default_max_tokens)
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
        Some(Value::Array(items)) => {
            if items.iter().all(Value::is_string) {
                Ok(Some(Value::Array(items.clone())))
            } else {
                Err(bad())
            }
        }
        Some(_) => Err(bad()),
    }
}

fn convert_tools(tools: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    let Some(tools) = crate::translate::function_tools(tools, "anthropic")? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(tools.len());
    for crate::translate::FunctionTool {
        function: f, name, ..
    } in tools
    {
        let mut t = Map::new();
        t.insert("name".into(), Value::String(name.to_owned()));
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            t.insert("description".into(), Value::String(d.to_owned()));
        }
        let schema = match f.get("parameters") {
            Some(p @ Value::Object(_)) => p.clone(),
            _ => json!({"type": "object"}),
        };
        t.insert("input_schema".into(), schema);
        out.push(Value::Object(t));
    }
    Ok(Some(Value::Array(out)))
}

fn convert_tool_choice(
    choice: Option<&Value>,
    no_parallel: bool,
) -> Result<Option<Value>, TranslateError> {
    let bad = || {
        TranslateError::invalid(
            "tool_choice must be \"auto\", \"required\", \"none\" or a function choice",
            Some("tool_choice".into()),
        )
    };
    let mut out = match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => return Ok(Some(json!({"type": "none"}))),
            _ => return Err(bad()),
        },
        Some(obj @ Value::Object(_)) => {
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(bad)?;
            json!({"type": "tool", "name": name})
        }
        Some(_) => return Err(bad()),
    };
    if no_parallel && let Value::Object(m) = &mut out {
        m.insert("disable_parallel_tool_use".into(), Value::Bool(true));
    }
    Ok(Some(out))
}

/// Message content while building: plain string until a merge or a
/// non-text part forces the block form.
enum Content {
    Text(String),
    Blocks(Vec<Value>),
}

impl Content {
    fn into_blocks(self) -> Vec<Value> {
        match self {
            // Anthropic rejects empty text blocks, so an empty string vanishes.
            Content::Text(s) if s.is_empty() => Vec::new(),
            Content::Text(s) => vec![text_block(s)],
            Content::Blocks(b) => b,
        }
    }

    fn into_value(self) -> Value {
        match self {
            Content::Text(s) => Value::String(s),
            Content::Blocks(b) => Value::Array(b),
        }
    }
}

fn text_block(text: String) -> Value {
    json!({"type": "text", "text": text})
}

fn convert_messages(
    messages: Option<&Value>,
) -> Result<(Option<String>, Vec<Value>), TranslateError> {
    let Some(Value::Array(messages)) = messages else {
        return Err(TranslateError::invalid(
            "messages must be an array",
            Some("messages".into()),
        ));
    };
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(&'static str, Content)> = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let role = msg.get("role").and_then(Value::as_str).ok_or_else(|| {
            TranslateError::invalid(
                "message is missing its role",
                Some(format!("messages[{i}].role")),
            )
        })?;
        let (role, content) = match role {
            "system" | "developer" => {
                system.push(system_text(msg.get("content"), i)?);
                continue;
            }
            "user" => ("user", user_content(msg.get("content"), i)?),
            "assistant" => ("assistant", assistant_content(msg, i)?),
            "tool" => ("user", tool_result(msg, i)?),
            other => {
                return Err(TranslateError::unsupported(
                    format!("message role '{other}' is not supported by anthropic"),
                    Some(format!("messages[{i}].role")),
                ));
            }
        };
        // Anthropic requires alternating roles: fold runs into one message.
        match turns.last_mut() {
            Some((last_role, last)) if *last_role == role => {
                let prev = std::mem::replace(last, Content::Blocks(Vec::new()));
                let mut blocks = prev.into_blocks();
                blocks.extend(content.into_blocks());
                *last = Content::Blocks(blocks);
            }
            _ => turns.push((role, content)),
        }
    }
    let system = system
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>();
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    let turns = turns
        .into_iter()
        .map(|(role, c)| json!({"role": role, "content": c.into_value()}))
        .collect();
    Ok((system, turns))
}

fn system_text(content: Option<&Value>, i: usize) -> Result<String, TranslateError> {
    let bad = || {
        TranslateError::invalid(
            "system message content must be a string or text parts",
            Some(format!("messages[{i}].content")),
        )
    };
    match content {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => texts.push(t.as_str()),
                    _ => return Err(bad()),
                }
            }
            Ok(texts.join("\n\n"))
        }
        _ => Err(bad()),
    }
}

fn user_content(content: Option<&Value>, i: usize) -> Result<Content, TranslateError> {
    match content {
        Some(Value::String(s)) => Ok(Content::Text(s.clone())),
        Some(Value::Array(parts)) => {
            let blocks = parts
                .iter()
                .enumerate()
                .map(|(j, p)| content_part(p, i, j))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Content::Blocks(blocks))
        }
        _ => Err(TranslateError::invalid(
            "user message content must be a string or an array of parts",
            Some(format!("messages[{i}].content")),
        )),
    }
}

fn content_part(part: &Value, i: usize, j: usize) -> Result<Value, TranslateError> {
    let param = || Some(format!("messages[{i}].content[{j}]"));
    match part.get("type").and_then(Value::as_str) {
        Some("text") => match part.get("text") {
            Some(Value::String(t)) => Ok(text_block(t.clone())),
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
            image_block(url).ok_or_else(|| {
                TranslateError::invalid(
                    "image url must be a base64 data URL or an http(s) URL",
                    param(),
                )
            })
        }
        Some(other) => Err(TranslateError::unsupported(
            format!("content part type '{other}' is not supported by anthropic"),
            param(),
        )),
        None => Err(TranslateError::invalid(
            "content part is missing its type",
            param(),
        )),
    }
}

fn image_block(url: &str) -> Option<Value> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',')?;
        let media_type = meta.strip_suffix(";base64")?;
        if media_type.is_empty() || data.is_empty() {
            return None;
        }
        return Some(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Some(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    None
}

fn assistant_content(msg: &Value, i: usize) -> Result<Content, TranslateError> {
    let mut blocks = Vec::new();
    let text = match msg.get("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let text = match part.get("type").and_then(Value::as_str) {
                    Some("text") => part.get("text"),
                    Some("refusal") => part.get("refusal"),
                    _ => None,
                };
                match text {
                    Some(Value::String(t)) if !t.is_empty() => blocks.push(text_block(t.clone())),
                    Some(Value::String(_)) => {}
                    _ => {
                        return Err(TranslateError::invalid(
                            "assistant content parts must be text or refusal",
                            Some(format!("messages[{i}].content[{j}]")),
                        ));
                    }
                }
            }
            None
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
    if calls.is_empty() {
        if let Some(text) = text {
            return Ok(Content::Text(text));
        }
    } else if let Some(text) = text.filter(|t| !t.is_empty()) {
        blocks.push(text_block(text));
    }
    for call in calls {
        blocks.push(tool_use_block(call, i)?);
    }
    Ok(Content::Blocks(blocks))
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
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

fn tool_result(msg: &Value, i: usize) -> Result<Content, TranslateError> {
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
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) => Value::Array(
            parts
                .iter()
                .enumerate()
                .map(|(j, p)| content_part(p, i, j))
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => {
            return Err(TranslateError::invalid(
                "tool message content must be a string or an array of parts",
                Some(format!("messages[{i}].content")),
            ));
        }
    };
    Ok(Content::Blocks(vec![json!({
        "type": "tool_result",
        "tool_use_id": id,
        "content": content,
    })]))
}

// ---------------------------------------------------------------- response

pub(crate) fn response(
    inbound: Inbound,
    body: &[u8],
    created: u64,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    if inbound == Inbound::Embeddings {
        return Err(TranslateError::unsupported(
            "anthropic has no embeddings endpoint",
            None,
        ));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadUpstream(format!("anthropic sent invalid JSON: {e}")))?;
    if v.get("type").and_then(Value::as_str) == Some("error") {
        let msg = v
            .get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        return Err(TranslateError::BadUpstream(format!(
            "anthropic returned an error: {msg}"
        )));
    }
    let blocks = v.get("content").and_then(Value::as_array).ok_or_else(|| {
        TranslateError::BadUpstream("anthropic response has no content array".to_owned())
    })?;
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                text.get_or_insert_with(String::new).push_str(t);
            }
            Some("tool_use") => tool_calls.push(ToolCall {
                id: str_at(block, "id").to_owned(),
                kind: "function",
                function: FunctionCall {
                    name: str_at(block, "name").to_owned(),
                    arguments: block
                        .get("input")
                        .map_or_else(|| "{}".to_owned(), Value::to_string),
                },
            }),
            // thinking, redacted_thinking, server tool blocks: no OpenAI equivalent.
            _ => {}
        }
    }
    let usage_v = v.get("usage").unwrap_or(&Value::Null);
    let usage = Usage {
        input_tokens: input_tokens(usage_v),
        output_tokens: u64_at(usage_v, "output_tokens"),
    };
    let completion = ChatCompletion {
        id: str_at(&v, "id"),
        object: "chat.completion",
        created,
        model: str_at(&v, "model"),
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: text,
                tool_calls,
            },
            finish_reason: finish_reason(str_at(&v, "stop_reason")),
            logprobs: None,
        }],
        usage: usage.into(),
    };
    let out = serde_json::to_vec(&completion)
        .map_err(|e| TranslateError::BadUpstream(format!("cannot serialise response: {e}")))?;
    Ok((out, usage))
}

fn str_at<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

// ---------------------------------------------------------------- stream

/// Anthropic SSE -> OpenAI `chat.completion.chunk` SSE.
pub struct AnthropicStream {
    splitter: SseSplitter,
    events: Vec<SseEvent>,
    client_wants_usage: bool,
    created: u64,
    id: String,
    model: String,
    usage: Usage,
    role_sent: bool,
    finish_sent: bool,
    stopped: bool,
    first_token: bool,
    failed: Option<String>,
    /// (Anthropic content block index, OpenAI tool call index).
    tool_blocks: Vec<(u64, u32)>,
}

impl AnthropicStream {
    pub fn new(client_wants_usage: bool, created: u64) -> Self {
        Self {
            splitter: SseSplitter::new(),
            events: Vec::new(),
            client_wants_usage,
            created,
            id: String::new(),
            model: String::new(),
            usage: Usage::default(),
            role_sent: false,
            finish_sent: false,
            stopped: false,
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
                model: &self.model,
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

    /// The role chunk goes first, even if an upstream skipped message_start.
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
        if ev.data.trim().is_empty() {
            return;
        }
        let v: Value = match serde_json::from_str(&ev.data) {
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
        match kind {
            "message_start" => {
                let msg = v.get("message").unwrap_or(&Value::Null);
                self.id = str_at(msg, "id").to_owned();
                self.model = str_at(msg, "model").to_owned();
                let usage = msg.get("usage").unwrap_or(&Value::Null);
                self.usage.input_tokens = input_tokens(usage);
                self.usage.output_tokens = u64_at(usage, "output_tokens");
                self.ensure_role(out);
            }
            "content_block_start" => {
                self.ensure_role(out);
                let block = v.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let tool_index = u32::try_from(self.tool_blocks.len()).unwrap_or(u32::MAX);
                        self.tool_blocks.push((u64_at(&v, "index"), tool_index));
                        self.first_token = true;
                        let delta = Delta {
                            tool_calls: Some([ToolCallDelta {
                                index: tool_index,
                                id: Some(str_at(block, "id")),
                                kind: Some("function"),
                                function: FunctionDelta {
                                    name: Some(str_at(block, "name")),
                                    arguments: "",
                                },
                            }]),
                            ..Delta::default()
                        };
                        self.chunk(out, delta, None);
                    }
                    Some("text") => {
                        let text = str_at(block, "text");
                        if !text.is_empty() {
                            self.first_token = true;
                            self.chunk(out, text_delta(text), None);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                self.ensure_role(out);
                let delta = v.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = str_at(delta, "text");
                        if !text.is_empty() {
                            self.first_token = true;
                            self.chunk(out, text_delta(text), None);
                        }
                    }
                    Some("input_json_delta") => {
                        let block = u64_at(&v, "index");
                        let tool = self.tool_blocks.iter().find(|(b, _)| *b == block);
                        if let Some(&(_, tool_index)) = tool {
                            let delta = Delta {
                                tool_calls: Some([ToolCallDelta {
                                    index: tool_index,
                                    id: None,
                                    kind: None,
                                    function: FunctionDelta {
                                        name: None,
                                        arguments: str_at(delta, "partial_json"),
                                    },
                                }]),
                                ..Delta::default()
                            };
                            self.chunk(out, delta, None);
                        }
                    }
                    // thinking_delta, signature_delta, citations_delta: dropped.
                    _ => {}
                }
            }
            "message_delta" => {
                self.ensure_role(out);
                if let Some(n) = v
                    .get("usage")
                    .and_then(|u| u.get("output_tokens"))
                    .and_then(Value::as_u64)
                {
                    self.usage.output_tokens = n;
                }
                if let Some(reason) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.finish_sent = true;
                    self.chunk(out, Delta::default(), Some(finish_reason(reason)));
                }
            }
            "message_stop" => {
                self.ensure_role(out);
                if !self.finish_sent {
                    self.finish_sent = true;
                    self.chunk(out, Delta::default(), Some("stop"));
                }
                if self.client_wants_usage {
                    write_data_event(
                        out,
                        &Chunk {
                            id: &self.id,
                            object: "chat.completion.chunk",
                            created: self.created,
                            model: &self.model,
                            choices: Vec::new(),
                            usage: Some(self.usage.into()),
                        },
                    );
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.stopped = true;
            }
            "error" => {
                let err = v.get("error").unwrap_or(&Value::Null);
                let message = err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream stream error")
                    .to_owned();
                let kind = str_at(err, "type");
                self.fail(
                    format!("upstream error event: {kind}: {message}"),
                    &message,
                    out,
                );
            }
            // ping, content_block_stop and future event types.
            _ => {}
        }
    }
}

fn text_delta(text: &str) -> Delta<'_> {
    Delta {
        content: Some(text),
        ..Delta::default()
    }
}

impl StreamTranslator for AnthropicStream {
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
            let reason = "upstream stream ended before message_stop".to_owned();
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
        model: "claude-sonnet-4-5",
        default_max_tokens: 4096,
    };

    fn translate(body: Value) -> Result<(UpstreamRequest, Value), TranslateError> {
        let r = request(Inbound::ChatCompletions, Wire::Anthropic, &body, &OPTS)?;
        let v = serde_json::from_slice(&r.body).unwrap();
        Ok((r, v))
    }

    #[test]
    fn request_table() {
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "minimal with default max_tokens, dropped OpenAI-only fields",
                json!({"model":"x","messages":[{"role":"user","content":"Hi"}],
                       "frequency_penalty":0.5,"presence_penalty":0.1,"seed":3,"store":true,
                       "metadata":{"a":"b"},"stream_options":{"include_usage":true},"n":1,
                       "logprobs":false,"response_format":{"type":"text"}}),
                json!({"model":"claude-sonnet-4-5","max_tokens":4096,
                       "messages":[{"role":"user","content":"Hi"}]}),
            ),
            (
                "system and developer joined, content parts",
                json!({"messages":[
                    {"role":"system","content":"You are terse."},
                    {"role":"developer","content":[{"type":"text","text":"Be nice."},{"type":"text","text":"Really."}]},
                    {"role":"user","content":"Hi"}],
                    "max_tokens":100,"temperature":0.3,"top_p":0.9,"stop":"END","stream":true,"user":"u-1"}),
                json!({"model":"claude-sonnet-4-5","max_tokens":100,
                       "system":"You are terse.\n\nBe nice.\n\nReally.",
                       "messages":[{"role":"user","content":"Hi"}],
                       "temperature":0.3,"top_p":0.9,"stop_sequences":["END"],"stream":true,
                       "metadata":{"user_id":"u-1"}}),
            ),
            (
                "max_completion_tokens wins, stop array",
                json!({"messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":7,
                       "max_tokens":9,"stop":["a","b"]}),
                json!({"model":"claude-sonnet-4-5","max_tokens":7,"stop_sequences":["a","b"],
                       "messages":[{"role":"user","content":"Hi"}]}),
            ),
            (
                "multi-turn with merged consecutive users",
                json!({"messages":[
                    {"role":"user","content":"one"},
                    {"role":"user","content":[{"type":"text","text":"two"}]},
                    {"role":"assistant","content":"ok"},
                    {"role":"user","content":"three"}]}),
                json!({"model":"claude-sonnet-4-5","max_tokens":4096,"messages":[
                    {"role":"user","content":[{"type":"text","text":"one"},{"type":"text","text":"two"}]},
                    {"role":"assistant","content":"ok"},
                    {"role":"user","content":"three"}]}),
            ),
            (
                "images: data URL and https URL",
                json!({"messages":[{"role":"user","content":[
                    {"type":"text","text":"What is this?"},
                    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}},
                    {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]}),
                json!({"model":"claude-sonnet-4-5","max_tokens":4096,"messages":[{"role":"user","content":[
                    {"type":"text","text":"What is this?"},
                    {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
                    {"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]}]}),
            ),
            (
                "tools, tool calls and tool results",
                json!({"messages":[
                    {"role":"user","content":"Weather in Paris and Rome?"},
                    {"role":"assistant","content":"Let me check.","tool_calls":[
                        {"id":"toolu_01","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                        {"id":"toolu_02","type":"function","function":{"name":"get_weather","arguments":""}}]},
                    {"role":"tool","tool_call_id":"toolu_01","content":"18C"},
                    {"role":"tool","tool_call_id":"toolu_02","content":[{"type":"text","text":"21C"}]},
                    {"role":"user","content":"Thanks"}],
                    "tools":[
                        {"type":"function","function":{"name":"get_weather","description":"Get weather",
                            "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}},
                        {"type":"function","function":{"name":"now"}}],
                    "tool_choice":"required","parallel_tool_calls":true}),
                json!({"model":"claude-sonnet-4-5","max_tokens":4096,"messages":[
                    {"role":"user","content":"Weather in Paris and Rome?"},
                    {"role":"assistant","content":[
                        {"type":"text","text":"Let me check."},
                        {"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris"}},
                        {"type":"tool_use","id":"toolu_02","name":"get_weather","input":{}}]},
                    {"role":"user","content":[
                        {"type":"tool_result","tool_use_id":"toolu_01","content":"18C"},
                        {"type":"tool_result","tool_use_id":"toolu_02","content":[{"type":"text","text":"21C"}]},
                        {"type":"text","text":"Thanks"}]}],
                    "tools":[
                        {"name":"get_weather","description":"Get weather",
                         "input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},
                        {"name":"now","input_schema":{"type":"object"}}],
                    "tool_choice":{"type":"any"}}),
            ),
            (
                "assistant with null content and tool_calls; tool_choice function; no parallel",
                json!({"messages":[
                    {"role":"user","content":"x"},
                    {"role":"assistant","content":null,"tool_calls":[
                        {"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]},
                    {"role":"tool","tool_call_id":"t1","content":"done"}],
                    "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
                    "tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false}),
                json!({"model":"claude-sonnet-4-5","max_tokens":4096,"messages":[
                    {"role":"user","content":"x"},
                    {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{"a":[1,2]}}]},
                    {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"done"}]}],
                    "tools":[{"name":"f","input_schema":{"type":"object"}}],
                    "tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true}}),
            ),
            (
                "tool_choice auto/none",
                json!({"messages":[{"role":"user","content":"x"}],"tool_choice":"none",
                       "tools":[{"type":"function","function":{"name":"f"}}]}),
                json!({"model":"claude-sonnet-4-5","max_tokens":4096,
                       "messages":[{"role":"user","content":"x"}],
                       "tools":[{"name":"f","input_schema":{"type":"object"}}],
                       "tool_choice":{"type":"none"}}),
            ),
            (
                "tool_choice auto",
                json!({"messages":[{"role":"user","content":"x"}],"tool_choice":"auto"}),
                json!({"model":"claude-sonnet-4-5","max_tokens":4096,
                       "messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"auto"}}),
            ),
        ];
        for (name, body, expected) in cases {
            let (r, v) = translate(body.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(v, expected, "{name}");
            assert_eq!(r.path_suffix, "/messages");
            assert_eq!(r.stream, body.get("stream") == Some(&json!(true)), "{name}");
            assert!(!r.usage_injected);
        }
    }

    #[test]
    fn request_errors_table() {
        let user = json!([{"role":"user","content":"x"}]);
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
                json!({"messages":user,"tool_choice":"sometimes"}),
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
        let err = request(
            Inbound::Embeddings,
            Wire::Anthropic,
            &json!({"input":"x"}),
            &OPTS,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "anthropic has no embeddings endpoint");
        let err = translate(json!({"messages":user,"n":3}))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.to_string(), "n > 1 is not supported by anthropic");
    }

    #[test]
    fn response_table() {
        let text = br#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hello"},{"type":"text","text":" there"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":6}}"#;
        let (out, usage) = response(
            Inbound::ChatCompletions,
            Wire::Anthropic,
            text,
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(
            usage,
            Usage {
                input_tokens: 20,
                output_tokens: 6
            }
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","object":"chat.completion","created":1700000000,"model":"claude-sonnet-4-5-20250929","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":20,"completion_tokens":6,"total_tokens":26}}"#
        );

        let tool = br#"{"id":"msg_02","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"hmm","signature":"x"},{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"location":"San Francisco, CA"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":100,"output_tokens":40}}"#;
        let (out, usage) = response(Inbound::ChatCompletions, Wire::Anthropic, tool, 7).unwrap();
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
            json!({"id":"msg_02","object":"chat.completion","created":7,"model":"claude-sonnet-4-5",
                "choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
                    {"id":"toolu_01A09q90qw90lq917835lq9","type":"function",
                     "function":{"name":"get_weather","arguments":"{\"location\":\"San Francisco, CA\"}"}}]},
                    "finish_reason":"tool_calls","logprobs":null}],
                "usage":{"prompt_tokens":100,"completion_tokens":40,"total_tokens":140}})
        );

        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
            ("something_new", "stop"),
        ] {
            let body = json!({"id":"m","model":"c","content":[],"stop_reason":stop,"usage":{"input_tokens":1,"output_tokens":1}});
            let (out, _) = response(
                Inbound::ChatCompletions,
                Wire::Anthropic,
                body.to_string().as_bytes(),
                0,
            )
            .unwrap();
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["choices"][0]["finish_reason"], finish, "{stop}");
        }

        for bad in [
            &b"not json"[..],
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            br#"{"id":"m"}"#,
        ] {
            assert!(matches!(
                response(Inbound::ChatCompletions, Wire::Anthropic, bad, 0),
                Err(TranslateError::BadUpstream(_))
            ));
        }
    }

    // Transcript in the shape documented at
    // https://docs.anthropic.com/en/docs/build-with-claude/streaming
    const TEXT_STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5-20250929\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":10,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"! ¿Qué tal? 👋\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    const TOOL_STREAM: &str = concat!(
        "event: message_start\r\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}\r\n\r\n",
        "event: content_block_start\r\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\r\n\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Need weather.\"}}\r\n\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQB\"}}\r\n\r\n",
        "event: content_block_stop\r\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\n",
        "event: content_block_start\r\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking.\"}}\r\n\r\n",
        "event: content_block_stop\r\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\r\n\r\n",
        "event: ping\r\n",
        "data: {\"type\": \"ping\"}\r\n\r\n",
        "event: content_block_start\r\n",
        "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\r\n\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\r\n\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"San Fra\"}}\r\n\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"ncisco\\\"}\"}}\r\n\r\n",
        "event: content_block_stop\r\n",
        "data: {\"type\":\"content_block_stop\",\"index\":2}\r\n\r\n",
        "event: content_block_start\r\n",
        "data: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_02\",\"name\":\"get_time\",\"input\":{}}}\r\n\r\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\r\n\r\n",
        "event: content_block_stop\r\n",
        "data: {\"type\":\"content_block_stop\",\"index\":3}\r\n\r\n",
        "event: message_delta\r\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\r\n\r\n",
        "event: message_stop\r\n",
        "data: {\"type\":\"message_stop\"}\r\n\r\n",
    );

    fn make(wants_usage: bool) -> impl Fn() -> Box<dyn StreamTranslator + Send> {
        move || {
            stream(
                Inbound::ChatCompletions,
                Wire::Anthropic,
                wants_usage,
                1_700_000_000,
            )
        }
    }

    const CHUNK_HEAD: &str = "{\"id\":\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"claude-sonnet-4-5-20250929\"";

    #[test]
    fn stream_text_exact() {
        let r = run_all_splits(&make(true), TEXT_STREAM.as_bytes());
        let h = CHUNK_HEAD;
        let expected = [
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"Hello\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"! ¿Qué tal? 👋\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\",\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[],\"usage\":{{\"prompt_tokens\":35,\"completion_tokens\":15,\"total_tokens\":50}}}}\n\n"),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        assert_eq!(r.out_str(), expected);
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 35,
                output_tokens: 15
            }
        );
        assert!(r.first_token);

        // Without include_usage: same minus the usage chunk.
        let r2 = run_all_splits(&make(false), TEXT_STREAM.as_bytes());
        assert_eq!(r2.datas().len(), 5);
        assert!(!r2.out_str().contains("\"usage\""));
        assert_eq!(r2.usage, r.usage);
    }

    #[test]
    fn stream_tool_calls() {
        let r = run_all_splits(&make(false), TOOL_STREAM.as_bytes());
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 472,
                output_tokens: 89
            }
        );
        assert!(r.first_token);
        assert_eq!(r.datas().last().map(String::as_str), Some("[DONE]"));
        let deltas: Vec<Value> = r
            .jsons()
            .iter()
            .map(|c| {
                assert_eq!(c["object"], "chat.completion.chunk");
                assert_eq!(c["id"], "msg_014p7gG3wDgGV9EUtLvnow3U");
                assert_eq!(c["model"], "claude-sonnet-4-5");
                json!([c["choices"][0]["delta"], c["choices"][0]["finish_reason"]])
            })
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!([{"role":"assistant","content":""}, null]),
                json!([{"content":"Checking."}, null]),
                json!([{"tool_calls":[{"index":0,"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function","function":{"name":"get_weather","arguments":""}}]}, null]),
                json!([{"tool_calls":[{"index":0,"function":{"arguments":""}}]}, null]),
                json!([{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\": \"San Fra"}}]}, null]),
                json!([{"tool_calls":[{"index":0,"function":{"arguments":"ncisco\"}"}}]}, null]),
                json!([{"tool_calls":[{"index":1,"id":"toolu_02","type":"function","function":{"name":"get_time","arguments":""}}]}, null]),
                json!([{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}, null]),
                json!([{}, "tool_calls"]),
            ]
        );
    }

    fn error_event(message: &str) -> String {
        format!(
            "data: {{\"error\":{{\"message\":\"{message}\",\"type\":\"upstream_error\",\"code\":\"stream_interrupted\",\"param\":null}}}}\n\n"
        )
    }

    #[test]
    fn stream_truncated() {
        let cut = TEXT_STREAM.find("event: message_stop").unwrap();
        let r = run_all_splits(&make(true), &TEXT_STREAM.as_bytes()[..cut]);
        assert!(
            r.out_str()
                .ends_with(&error_event("upstream stream ended before completion"))
        );
        assert_eq!(r.out_str().matches("\"error\"").count(), 1);
        assert!(!r.out_str().contains("[DONE]"));
        assert_eq!(
            r.outcome,
            StreamOutcome::Failed("upstream stream ended before message_stop".to_owned())
        );
        assert_eq!(r.usage.output_tokens, 15);

        // Every truncation point before message_stop's JSON is complete fails
        // with exactly one error event (an unterminated final event is flushed).
        let last_brace = TOOL_STREAM.rfind('}').unwrap();
        for end in 0..=last_brace {
            let r = run(&make(false), &[&TOOL_STREAM.as_bytes()[..end]]);
            assert!(
                matches!(r.outcome, StreamOutcome::Failed(_)),
                "cut at {end}"
            );
            assert_eq!(r.out_str().matches("\"error\":").count(), 1, "cut at {end}");
            assert!(!r.out_str().contains("[DONE]"), "cut at {end}");
        }
        let r = run(&make(false), &[&TOOL_STREAM.as_bytes()[..last_brace + 1]]);
        assert_eq!(r.outcome, StreamOutcome::Complete);
    }

    #[test]
    fn stream_corrupted_event() {
        let bad = TOOL_STREAM.replacen("\"partial_json\":\"{}\"}}", "\"partial_json\":\"{}\"}", 1);
        let r = run_all_splits(&make(true), bad.as_bytes());
        assert!(
            r.out_str()
                .ends_with(&error_event("upstream sent an unparsable stream event"))
        );
        assert_eq!(r.out_str().matches("\"error\":").count(), 1);
        assert!(
            matches!(r.outcome, StreamOutcome::Failed(ref s) if s.starts_with("unparsable upstream event"))
        );
    }

    #[test]
    fn stream_upstream_error_event() {
        let cut = TEXT_STREAM.find("event: content_block_stop").unwrap();
        let input = format!(
            "{}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n{}",
            &TEXT_STREAM[..cut],
            &TEXT_STREAM[cut..]
        );
        let r = run_all_splits(&make(true), input.as_bytes());
        assert_eq!(r.datas().len(), 4);
        assert!(r.out_str().ends_with(&error_event("Overloaded")));
        assert_eq!(
            r.outcome,
            StreamOutcome::Failed("upstream error event: overloaded_error: Overloaded".to_owned())
        );
        assert!(r.first_token);
    }

    #[test]
    fn stream_mutations_never_panic() {
        let mut rng = Rng(42);
        for _ in 0..300 {
            let mut bytes = TOOL_STREAM.as_bytes().to_vec();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(bytes.len() as u64) as usize;
                if let Some(b) = bytes.get_mut(i) {
                    *b = rng.next() as u8;
                }
            }
            let whole = run(&make(true), &[&bytes]);
            let mid = rng.below(bytes.len() as u64) as usize;
            let (a, b) = bytes.split_at(mid);
            assert_eq!(run(&make(true), &[a, b]), whole);
        }
    }
}
