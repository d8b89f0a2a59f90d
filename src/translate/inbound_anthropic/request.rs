//! Anthropic Messages request -> OpenAI chat request (the canonical form).
//!
//! Mapping (allowlist; anything not listed is dropped):
//! - `system` (string or text blocks, joined with a blank line) -> a leading
//!   `system` message; empty -> none.
//! - `messages`: `user`/`assistant` only. Content is a string or blocks:
//!   - `text` -> text (user: a text part; a lone text part becomes a plain
//!     string; assistant: text blocks are concatenated, as citation-split
//!     text blocks are meant to be read).
//!   - `image` (user) with a `base64` source -> `image_url` with a `data:` URL;
//!     with a `url` source -> `image_url` with that URL. `file` sources are
//!     unsupported.
//!   - `tool_use` (assistant) -> `tool_calls` (`arguments` = JSON text of
//!     `input`).
//!   - `tool_result` (user) -> one `tool` message each, placed before the
//!     rest of the user turn (OpenAI needs them right after the assistant's
//!     `tool_calls`). Text content is joined with `\n`; images inside a tool
//!     result (OpenAI tool messages cannot carry images) move to the start
//!     of the following user message. `is_error: true` is kept as an
//!     `"Error: "` prefix on the content.
//!   - `thinking` / `redacted_thinking` (assistant) are dropped: other
//!     providers can neither verify nor continue Anthropic thinking.
//!   - `cache_control` and `citations` are dropped everywhere.
//!   - server-tool blocks, `document`, `search_result`, ... -> Unsupported.
//! - `tools` (custom tools) -> function tools; server tools (any `type`
//!   other than `custom`) -> Unsupported.
//! - `tool_choice` `auto|any|tool|none` -> `auto|required|{function}|none`;
//!   `disable_parallel_tool_use: true` -> `parallel_tool_calls: false`. Both
//!   are only sent along with tools (OpenAI rejects them without).
//! - `max_tokens` -> `max_tokens`; `stop_sequences` -> `stop`; `temperature`,
//!   `top_p` as-is; `stream: true` -> `stream` + `stream_options.include_usage`;
//!   `metadata.user_id` -> `user`.
//! - `top_k` is validated and then **dropped**: OpenAI has no equivalent and
//!   strict OpenAI servers reject unknown parameters, while rejecting it
//!   would break SDK clients that set it as a mere sampling hint.
//! - `thinking`, `service_tier`, `container` are dropped; a non-empty
//!   `mcp_servers` is Unsupported (it would silently change behaviour).
//!
//! Validation mirrors what Anthropic itself rejects (missing `model` /
//! `max_tokens` / `messages`, wrong types, bad roles, empty content);
//! messages read `"<param>: <reason>"` and `param` names the field.

use crate::translate::TranslateError;
use serde_json::{Map, Value, json};

/// Anthropic Messages request -> OpenAI chat completions request. `model` is
/// kept as sent (the provider translator replaces it).
pub fn to_openai(body: &Value) -> Result<Value, TranslateError> {
    let Value::Object(obj) = body else {
        return Err(TranslateError::invalid(
            "request body must be a JSON object",
            None,
        ));
    };
    reject_unsupported(obj)?;

    let mut out = Map::new();
    let model = match obj.get("model") {
        None | Some(Value::Null) => return Err(required("model")),
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(_) => return Err(invalid("model", "Input should be a non-empty string")),
    };
    out.insert("model".into(), Value::String(model.clone()));
    let max_tokens = match obj.get("max_tokens") {
        None | Some(Value::Null) => return Err(required("max_tokens")),
        Some(v) => v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            invalid(
                "max_tokens",
                "Input should be an integer greater than or equal to 1",
            )
        })?,
    };
    out.insert("max_tokens".into(), max_tokens.into());

    let mut messages = Vec::new();
    if let Some(system) = system_text(obj.get("system"))? {
        messages.push(json!({"role": "system", "content": system}));
    }
    convert_messages(obj.get("messages"), &mut messages)?;
    out.insert("messages".into(), Value::Array(messages));

    for key in ["temperature", "top_p", "top_k"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                if key != "top_k" {
                    out.insert(key.into(), v.clone());
                }
            }
            Some(_) => return Err(invalid(key, "Input should be a valid number")),
        }
    }
    if let Some(stop) = stop_sequences(obj.get("stop_sequences"))? {
        out.insert("stop".into(), stop);
    }
    match obj.get("stream") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), Value::Bool(true));
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Some(_) => return Err(invalid("stream", "Input should be a valid boolean")),
    }
    if let Some(user) = user_id(obj.get("metadata"))? {
        out.insert("user".into(), Value::String(user));
    }
    if let Some(tools) = convert_tools(obj.get("tools"))? {
        out.insert("tools".into(), tools);
        let (choice, no_parallel) = convert_tool_choice(obj.get("tool_choice"))?;
        if let Some(choice) = choice {
            out.insert("tool_choice".into(), choice);
        }
        if no_parallel {
            out.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    } else {
        // Still validated, so a malformed tool_choice fails the same way.
        convert_tool_choice(obj.get("tool_choice"))?;
    }
    Ok(Value::Object(out))
}

/// `"<param>: <reason>"`, with `param` set.
fn invalid(param: impl Into<String>, reason: &str) -> TranslateError {
    let param = param.into();
    TranslateError::invalid(format!("{param}: {reason}"), Some(param))
}

fn required(param: impl Into<String>) -> TranslateError {
    invalid(param, "Field required")
}

fn unsupported(param: impl Into<String>, what: &str) -> TranslateError {
    let param = param.into();
    TranslateError::unsupported(
        format!("{param}: {what} is not supported for this model"),
        Some(param),
    )
}

fn reject_unsupported(obj: &Map<String, Value>) -> Result<(), TranslateError> {
    if obj
        .get("mcp_servers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(unsupported("mcp_servers", "MCP servers"));
    }
    Ok(())
}

fn system_text(system: Option<&Value>) -> Result<Option<String>, TranslateError> {
    let text = match system {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                let param = format!("system[{j}]");
                match block_type(block, &param)? {
                    "text" => texts.push(text_of(block, &param)?),
                    _ => return Err(invalid(format!("{param}.type"), "Input should be 'text'")),
                }
            }
            texts.retain(|t| !t.is_empty());
            texts.join("\n\n")
        }
        Some(_) => {
            return Err(invalid(
                "system",
                "Input should be a valid string or a list of text blocks",
            ));
        }
    };
    Ok((!text.is_empty()).then_some(text))
}

fn block_type<'v>(block: &'v Value, param: &str) -> Result<&'v str, TranslateError> {
    if !block.is_object() {
        return Err(invalid(
            param,
            "Input should be a valid content block object",
        ));
    }
    match block.get("type") {
        Some(Value::String(t)) => Ok(t),
        None | Some(Value::Null) => Err(required(format!("{param}.type"))),
        Some(_) => Err(invalid(
            format!("{param}.type"),
            "Input should be a valid string",
        )),
    }
}

fn text_of<'v>(block: &'v Value, param: &str) -> Result<&'v str, TranslateError> {
    match block.get("text") {
        Some(Value::String(t)) => Ok(t),
        None | Some(Value::Null) => Err(required(format!("{param}.text"))),
        Some(_) => Err(invalid(
            format!("{param}.text"),
            "Input should be a valid string",
        )),
    }
}

fn str_field<'v>(block: &'v Value, key: &str, param: &str) -> Result<&'v str, TranslateError> {
    match block.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(required(format!("{param}.{key}"))),
        Some(_) => Err(invalid(
            format!("{param}.{key}"),
            "Input should be a valid string",
        )),
    }
}

fn convert_messages(messages: Option<&Value>, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let messages = match messages {
        None | Some(Value::Null) => return Err(required("messages")),
        Some(Value::Array(m)) => m,
        Some(_) => return Err(invalid("messages", "Input should be a valid list")),
    };
    if messages.is_empty() {
        return Err(invalid("messages", "at least one message is required"));
    }
    let last = messages.len() - 1;
    for (i, msg) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        if !msg.is_object() {
            return Err(invalid(param, "Input should be a valid message object"));
        }
        let role = match msg.get("role") {
            None | Some(Value::Null) => return Err(required(format!("{param}.role"))),
            Some(Value::String(r)) if r == "user" || r == "assistant" => r.as_str(),
            Some(_) => {
                return Err(invalid(
                    format!("{param}.role"),
                    "Input should be 'user' or 'assistant'",
                ));
            }
        };
        let content = msg.get("content");
        let empty = match content {
            None | Some(Value::Null) => return Err(required(format!("{param}.content"))),
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Array(b)) => b.is_empty(),
            Some(_) => {
                return Err(invalid(
                    format!("{param}.content"),
                    "Input should be a valid string or a list of content blocks",
                ));
            }
        };
        if empty && !(role == "assistant" && i == last) {
            return Err(invalid(
                param,
                "all messages must have non-empty content except for the optional final assistant message",
            ));
        }
        match (role, content) {
            (_, Some(Value::String(s))) => out.push(json!({"role": role, "content": s})),
            ("user", Some(Value::Array(blocks))) => user_blocks(blocks, i, out)?,
            (_, Some(Value::Array(blocks))) => out.push(assistant_blocks(blocks, i)?),
            _ => {}
        }
    }
    Ok(())
}

fn user_blocks(blocks: &[Value], i: usize, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let mut tool_messages = Vec::new();
    // Images lifted out of tool results go first in the user message.
    let mut lifted = Vec::new();
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("messages[{i}].content[{j}]");
        match block_type(block, &param)? {
            "text" => parts.push(json!({"type": "text", "text": text_of(block, &param)?})),
            "image" => parts.push(image_part(block, &param)?),
            "tool_result" => tool_messages.push(tool_result(block, &param, &mut lifted)?),
            kind @ ("tool_use" | "thinking" | "redacted_thinking") => {
                return Err(invalid(
                    format!("{param}.type"),
                    &format!("'{kind}' blocks are only allowed in assistant messages"),
                ));
            }
            other => return Err(unsupported(param, &format!("content block type '{other}'"))),
        }
    }
    out.extend(tool_messages);
    lifted.extend(parts);
    let parts = lifted;
    match parts.as_slice() {
        [] => {}
        [only] if only.get("type").and_then(Value::as_str) == Some("text") => {
            let text = only.get("text").cloned().unwrap_or(Value::Null);
            out.push(json!({"role": "user", "content": text}));
        }
        _ => out.push(json!({"role": "user", "content": parts})),
    }
    Ok(())
}

const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

fn image_part(block: &Value, param: &str) -> Result<Value, TranslateError> {
    let source = match block.get("source") {
        Some(s @ Value::Object(_)) => s,
        None | Some(Value::Null) => return Err(required(format!("{param}.source"))),
        Some(_) => {
            return Err(invalid(
                format!("{param}.source"),
                "Input should be a valid source object",
            ));
        }
    };
    let source_param = format!("{param}.source");
    let url = match block_type(source, &source_param)? {
        "base64" => {
            let media_type = str_field(source, "media_type", &source_param)?;
            if !IMAGE_TYPES.contains(&media_type) {
                return Err(invalid(
                    format!("{source_param}.media_type"),
                    "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
                ));
            }
            let data = str_field(source, "data", &source_param)?;
            format!("data:{media_type};base64,{data}")
        }
        "url" => str_field(source, "url", &source_param)?.to_owned(),
        other => {
            return Err(unsupported(
                format!("{source_param}.type"),
                &format!("image source type '{other}'"),
            ));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn tool_result(
    block: &Value,
    param: &str,
    lifted_images: &mut Vec<Value>,
) -> Result<Value, TranslateError> {
    let id = str_field(block, "tool_use_id", param)?;
    let mut text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for (k, item) in items.iter().enumerate() {
                let item_param = format!("{param}.content[{k}]");
                match block_type(item, &item_param)? {
                    "text" => texts.push(text_of(item, &item_param)?),
                    "image" => lifted_images.push(image_part(item, &item_param)?),
                    other => {
                        return Err(unsupported(
                            item_param,
                            &format!("tool result content type '{other}'"),
                        ));
                    }
                }
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(invalid(
                format!("{param}.content"),
                "Input should be a valid string or a list of content blocks",
            ));
        }
    };
    match block.get("is_error") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            text = if text.is_empty() {
                "Error".to_owned()
            } else {
                format!("Error: {text}")
            };
        }
        Some(_) => {
            return Err(invalid(
                format!("{param}.is_error"),
                "Input should be a valid boolean",
            ));
        }
    }
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

fn assistant_blocks(blocks: &[Value], i: usize) -> Result<Value, TranslateError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("messages[{i}].content[{j}]");
        match block_type(block, &param)? {
            "text" => text.push_str(text_of(block, &param)?),
            "tool_use" => calls.push(tool_call(block, &param)?),
            "thinking" | "redacted_thinking" => {}
            "tool_result" => {
                return Err(invalid(
                    format!("{param}.type"),
                    "'tool_result' blocks are only allowed in user messages",
                ));
            }
            other => return Err(unsupported(param, &format!("content block type '{other}'"))),
        }
    }
    if calls.is_empty() {
        return Ok(json!({"role": "assistant", "content": text}));
    }
    let content = if text.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    Ok(json!({"role": "assistant", "content": content, "tool_calls": calls}))
}

fn tool_call(block: &Value, param: &str) -> Result<Value, TranslateError> {
    let id = str_field(block, "id", param)?;
    let name = str_field(block, "name", param)?;
    let input = match block.get("input") {
        Some(v @ Value::Object(_)) => v,
        None | Some(Value::Null) => return Err(required(format!("{param}.input"))),
        Some(_) => {
            return Err(invalid(
                format!("{param}.input"),
                "Input should be a valid dictionary",
            ));
        }
    };
    Ok(json!({
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": input.to_string()},
    }))
}

fn stop_sequences(stop: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    match stop {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok((!items.is_empty()).then(|| Value::Array(items.clone())))
        }
        Some(_) => Err(invalid(
            "stop_sequences",
            "Input should be a valid list of strings",
        )),
    }
}

fn user_id(metadata: Option<&Value>) -> Result<Option<String>, TranslateError> {
    match metadata {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => match m.get("user_id") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(u)) => Ok(Some(u.clone())),
            Some(_) => Err(invalid(
                "metadata.user_id",
                "Input should be a valid string",
            )),
        },
        Some(_) => Err(invalid("metadata", "Input should be a valid dictionary")),
    }
}

fn convert_tools(tools: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    let items = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) if items.is_empty() => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("tools", "Input should be a valid list")),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, tool) in items.iter().enumerate() {
        let param = format!("tools[{i}]");
        if !tool.is_object() {
            return Err(invalid(param, "Input should be a valid tool object"));
        }
        match tool.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "custom" => {}
            Some(Value::String(t)) => {
                return Err(unsupported(
                    format!("{param}.type"),
                    &format!("server tool '{t}'"),
                ));
            }
            Some(_) => {
                return Err(invalid(
                    format!("{param}.type"),
                    "Input should be a valid string",
                ));
            }
        }
        let name = str_field(tool, "name", &param)?;
        let schema = match tool.get("input_schema") {
            Some(s @ Value::Object(_)) => s.clone(),
            None | Some(Value::Null) => return Err(required(format!("{param}.input_schema"))),
            Some(_) => {
                return Err(invalid(
                    format!("{param}.input_schema"),
                    "Input should be a valid dictionary",
                ));
            }
        };
        let mut function = Map::new();
        function.insert("name".into(), Value::String(name.to_owned()));
        match tool.get("description") {
            None | Some(Value::Null) => {}
            Some(Value::String(d)) => {
                function.insert("description".into(), Value::String(d.clone()));
            }
            Some(_) => {
                return Err(invalid(
                    format!("{param}.description"),
                    "Input should be a valid string",
                ));
            }
        }
        function.insert("parameters".into(), schema);
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(Some(Value::Array(out)))
}

/// (OpenAI `tool_choice`, whether parallel tool calls are disabled).
fn convert_tool_choice(choice: Option<&Value>) -> Result<(Option<Value>, bool), TranslateError> {
    let choice = match choice {
        None | Some(Value::Null) => return Ok((None, false)),
        Some(c @ Value::Object(_)) => c,
        Some(_) => {
            return Err(invalid(
                "tool_choice",
                "Input should be a valid tool choice object",
            ));
        }
    };
    let no_parallel = match choice.get("disable_parallel_tool_use") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(invalid(
                "tool_choice.disable_parallel_tool_use",
                "Input should be a valid boolean",
            ));
        }
    };
    let out = match block_type(choice, "tool_choice")? {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            let name = str_field(choice, "name", "tool_choice")?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(invalid(
                "tool_choice.type",
                "Input should be 'auto', 'any', 'tool' or 'none'",
            ));
        }
    };
    Ok((Some(out), no_parallel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: Value) -> Value {
        to_openai(&body).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    #[test]
    fn request_table() {
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "minimal, string content",
                json!({"model":"claude-x","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}),
                json!({"model":"claude-x","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}),
            ),
            (
                "system string, sampling, stop, stream, metadata, top_k dropped, thinking dropped",
                json!({"model":"m","max_tokens":1024,"system":"Be terse.",
                       "messages":[{"role":"user","content":"Hi"}],
                       "temperature":0.2,"top_p":0.9,"top_k":40,"stop_sequences":["END","STOP"],
                       "stream":true,"metadata":{"user_id":"u-42"},
                       "thinking":{"type":"enabled","budget_tokens":2048},"service_tier":"auto"}),
                json!({"model":"m","max_tokens":1024,
                       "messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"Hi"}],
                       "temperature":0.2,"top_p":0.9,"stop":["END","STOP"],
                       "stream":true,"stream_options":{"include_usage":true},"user":"u-42"}),
            ),
            (
                "system text blocks with cache_control joined; empty block skipped; stream false omitted",
                json!({"model":"m","max_tokens":1,"stream":false,"stop_sequences":[],
                       "system":[{"type":"text","text":"You are Claude Code."},
                                 {"type":"text","text":""},
                                 {"type":"text","text":"Long prompt","cache_control":{"type":"ephemeral"}}],
                       "messages":[{"role":"user","content":[{"type":"text","text":"Hi","cache_control":{"type":"ephemeral"}}]}]}),
                json!({"model":"m","max_tokens":1,"messages":[
                    {"role":"system","content":"You are Claude Code.\n\nLong prompt"},
                    {"role":"user","content":"Hi"}]}),
            ),
            (
                "empty system omitted",
                json!({"model":"m","max_tokens":1,"system":"","messages":[{"role":"user","content":"Hi"}]}),
                json!({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"Hi"}]}),
            ),
            (
                "images: base64 and url sources, multiple text parts",
                json!({"model":"m","max_tokens":10,"messages":[{"role":"user","content":[
                    {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
                    {"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}},
                    {"type":"text","text":"What are these?"},
                    {"type":"text","text":"Be brief."}]}]}),
                json!({"model":"m","max_tokens":10,"messages":[{"role":"user","content":[
                    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
                    {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}},
                    {"type":"text","text":"What are these?"},
                    {"type":"text","text":"Be brief."}]}]}),
            ),
            (
                "tool loop: tool_use, tool_result (string, blocks, is_error), thinking dropped",
                json!({"model":"m","max_tokens":100,"messages":[
                    {"role":"user","content":"Weather in Paris and Rome?"},
                    {"role":"assistant","content":[
                        {"type":"thinking","thinking":"Two calls.","signature":"EqQB"},
                        {"type":"text","text":"Let me check."},
                        {"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris"}},
                        {"type":"tool_use","id":"toolu_02","name":"get_weather","input":{}}]},
                    {"role":"user","content":[
                        {"type":"tool_result","tool_use_id":"toolu_01","content":"18C"},
                        {"type":"tool_result","tool_use_id":"toolu_02","is_error":true,
                         "content":[{"type":"text","text":"timeout"},{"type":"text","text":"retry later"}]},
                        {"type":"text","text":"Thanks"}]}],
                    "tools":[{"name":"get_weather","description":"Get weather",
                              "input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},
                              "cache_control":{"type":"ephemeral"}},
                             {"type":"custom","name":"now","input_schema":{"type":"object"}}],
                    "tool_choice":{"type":"any"}}),
                json!({"model":"m","max_tokens":100,"messages":[
                    {"role":"user","content":"Weather in Paris and Rome?"},
                    {"role":"assistant","content":"Let me check.","tool_calls":[
                        {"id":"toolu_01","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                        {"id":"toolu_02","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
                    {"role":"tool","tool_call_id":"toolu_01","content":"18C"},
                    {"role":"tool","tool_call_id":"toolu_02","content":"Error: timeout\nretry later"},
                    {"role":"user","content":"Thanks"}],
                    "tools":[
                        {"type":"function","function":{"name":"get_weather","description":"Get weather",
                            "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},
                        {"type":"function","function":{"name":"now","parameters":{"type":"object"}}}],
                    "tool_choice":"required"}),
            ),
            (
                "tool-only assistant has null content; tool_result only (no user message); image lifted",
                json!({"model":"m","max_tokens":5,"messages":[
                    {"role":"user","content":"Screenshot please"},
                    {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"shot","input":{"a":[1,2]}}]},
                    {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[
                        {"type":"text","text":"done"},
                        {"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/"}}]}]},
                    {"role":"user","content":[{"type":"tool_result","tool_use_id":"t2"},
                                              {"type":"tool_result","tool_use_id":"t3","is_error":true}]}],
                    "tools":[{"name":"shot","input_schema":{"type":"object"}}],
                    "tool_choice":{"type":"tool","name":"shot","disable_parallel_tool_use":true}}),
                json!({"model":"m","max_tokens":5,"messages":[
                    {"role":"user","content":"Screenshot please"},
                    {"role":"assistant","content":null,"tool_calls":[
                        {"id":"t1","type":"function","function":{"name":"shot","arguments":"{\"a\":[1,2]}"}}]},
                    {"role":"tool","tool_call_id":"t1","content":"done"},
                    {"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/"}}]},
                    {"role":"tool","tool_call_id":"t2","content":""},
                    {"role":"tool","tool_call_id":"t3","content":"Error"}],
                    "tools":[{"type":"function","function":{"name":"shot","parameters":{"type":"object"}}}],
                    "tool_choice":{"type":"function","function":{"name":"shot"}},
                    "parallel_tool_calls":false}),
            ),
            (
                "tool_choice auto/none; disable_parallel_tool_use false is a no-op",
                json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],
                       "tools":[{"name":"f","input_schema":{"type":"object"}}],
                       "tool_choice":{"type":"none","disable_parallel_tool_use":false}}),
                json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],
                       "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
                       "tool_choice":"none"}),
            ),
            (
                "tool_choice auto with no parallel",
                json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],
                       "tools":[{"name":"f","input_schema":{"type":"object"}}],
                       "tool_choice":{"type":"auto","disable_parallel_tool_use":true}}),
                json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],
                       "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
                       "tool_choice":"auto","parallel_tool_calls":false}),
            ),
            (
                "tool_choice without tools dropped; empty tools dropped",
                json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],
                       "tools":[],"tool_choice":{"type":"any","disable_parallel_tool_use":true}}),
                json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}),
            ),
            (
                "prefill: final assistant message (may be empty); assistant string and thinking-only",
                json!({"model":"m","max_tokens":5,"messages":[
                    {"role":"user","content":"a"},
                    {"role":"assistant","content":[{"type":"redacted_thinking","data":"xx"}]},
                    {"role":"user","content":"b"},
                    {"role":"assistant","content":"The answer is"},
                    {"role":"user","content":"c"},
                    {"role":"assistant","content":[]}]}),
                json!({"model":"m","max_tokens":5,"messages":[
                    {"role":"user","content":"a"},
                    {"role":"assistant","content":""},
                    {"role":"user","content":"b"},
                    {"role":"assistant","content":"The answer is"},
                    {"role":"user","content":"c"},
                    {"role":"assistant","content":""}]}),
            ),
            (
                "assistant text blocks concatenated (citation-split)",
                json!({"model":"m","max_tokens":5,"messages":[
                    {"role":"user","content":"q"},
                    {"role":"assistant","content":[{"type":"text","text":"The sky "},
                        {"type":"text","text":"is blue","citations":[{"type":"char_location"}]},
                        {"type":"text","text":"."}]},
                    {"role":"user","content":"ok"}]}),
                json!({"model":"m","max_tokens":5,"messages":[
                    {"role":"user","content":"q"},
                    {"role":"assistant","content":"The sky is blue."},
                    {"role":"user","content":"ok"}]}),
            ),
        ];
        for (name, body, expected) in cases {
            assert_eq!(ok(body), expected, "{name}");
        }
    }

    #[test]
    fn request_errors_table() {
        let user = json!([{"role":"user","content":"x"}]);
        let base = |extra: Value| {
            let mut b = json!({"model":"m","max_tokens":5,"messages":user});
            if let (Value::Object(b), Value::Object(e)) = (&mut b, extra) {
                b.extend(e);
            }
            b
        };
        let msgs = |m: Value| base(json!({ "messages": m }));
        // (body, unsupported?, param, message)
        let cases: Vec<(Value, bool, Option<&str>, &str)> = vec![
            (
                json!([1]),
                false,
                None,
                "request body must be a JSON object",
            ),
            (
                json!({"max_tokens":5,"messages":user}),
                false,
                Some("model"),
                "model: Field required",
            ),
            (
                base(json!({"model":7})),
                false,
                Some("model"),
                "model: Input should be a non-empty string",
            ),
            (
                json!({"model":"m","messages":user}),
                false,
                Some("max_tokens"),
                "max_tokens: Field required",
            ),
            (
                base(json!({"max_tokens":0})),
                false,
                Some("max_tokens"),
                "max_tokens: Input should be an integer greater than or equal to 1",
            ),
            (
                base(json!({"max_tokens":"10"})),
                false,
                Some("max_tokens"),
                "max_tokens: Input should be an integer greater than or equal to 1",
            ),
            (
                base(json!({"max_tokens":1.5})),
                false,
                Some("max_tokens"),
                "max_tokens: Input should be an integer greater than or equal to 1",
            ),
            (
                json!({"model":"m","max_tokens":5}),
                false,
                Some("messages"),
                "messages: Field required",
            ),
            (
                msgs(json!("hi")),
                false,
                Some("messages"),
                "messages: Input should be a valid list",
            ),
            (
                msgs(json!([])),
                false,
                Some("messages"),
                "messages: at least one message is required",
            ),
            (
                msgs(json!(["hi"])),
                false,
                Some("messages[0]"),
                "messages[0]: Input should be a valid message object",
            ),
            (
                msgs(json!([{"role":"system","content":"x"}])),
                false,
                Some("messages[0].role"),
                "messages[0].role: Input should be 'user' or 'assistant'",
            ),
            (
                msgs(json!([{"role":"tool","content":"x"}])),
                false,
                Some("messages[0].role"),
                "messages[0].role: Input should be 'user' or 'assistant'",
            ),
            (
                msgs(json!([{"content":"x"}])),
                false,
                Some("messages[0].role"),
                "messages[0].role: Field required",
            ),
            (
                msgs(json!([{"role":"user"}])),
                false,
                Some("messages[0].content"),
                "messages[0].content: Field required",
            ),
            (
                msgs(json!([{"role":"user","content":5}])),
                false,
                Some("messages[0].content"),
                "messages[0].content: Input should be a valid string or a list of content blocks",
            ),
            (
                msgs(json!([{"role":"user","content":""}])),
                false,
                Some("messages[0]"),
                "messages[0]: all messages must have non-empty content except for the optional final assistant message",
            ),
            (
                msgs(
                    json!([{"role":"user","content":"a"},{"role":"assistant","content":[]},{"role":"user","content":"b"}]),
                ),
                false,
                Some("messages[1]"),
                "messages[1]: all messages must have non-empty content except for the optional final assistant message",
            ),
            (
                msgs(json!([{"role":"user","content":[{"text":"x"}]}])),
                false,
                Some("messages[0].content[0].type"),
                "messages[0].content[0].type: Field required",
            ),
            (
                msgs(json!([{"role":"user","content":["x"]}])),
                false,
                Some("messages[0].content[0]"),
                "messages[0].content[0]: Input should be a valid content block object",
            ),
            (
                msgs(json!([{"role":"user","content":[{"type":"text"}]}])),
                false,
                Some("messages[0].content[0].text"),
                "messages[0].content[0].text: Field required",
            ),
            (
                msgs(
                    json!([{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/bmp","data":"x"}}]}]),
                ),
                false,
                Some("messages[0].content[0].source.media_type"),
                "messages[0].content[0].source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
            ),
            (
                msgs(
                    json!([{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png"}}]}]),
                ),
                false,
                Some("messages[0].content[0].source.data"),
                "messages[0].content[0].source.data: Field required",
            ),
            (
                msgs(json!([{"role":"user","content":[{"type":"image"}]}])),
                false,
                Some("messages[0].content[0].source"),
                "messages[0].content[0].source: Field required",
            ),
            (
                msgs(
                    json!([{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]),
                ),
                true,
                Some("messages[0].content[0].source.type"),
                "messages[0].content[0].source.type: image source type 'file' is not supported for this model",
            ),
            (
                msgs(
                    json!([{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"x"}}]}]),
                ),
                true,
                Some("messages[0].content[0]"),
                "messages[0].content[0]: content block type 'document' is not supported for this model",
            ),
            (
                msgs(
                    json!([{"role":"user","content":[{"type":"tool_use","id":"a","name":"f","input":{}}]}]),
                ),
                false,
                Some("messages[0].content[0].type"),
                "messages[0].content[0].type: 'tool_use' blocks are only allowed in assistant messages",
            ),
            (
                msgs(
                    json!([{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"a"}]}]),
                ),
                false,
                Some("messages[1].content[0].type"),
                "messages[1].content[0].type: 'tool_result' blocks are only allowed in user messages",
            ),
            (
                msgs(
                    json!([{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"server_tool_use","id":"a","name":"web_search","input":{}}]}]),
                ),
                true,
                Some("messages[1].content[0]"),
                "messages[1].content[0]: content block type 'server_tool_use' is not supported for this model",
            ),
            (
                msgs(
                    json!([{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"f","input":"{}"}]}]),
                ),
                false,
                Some("messages[1].content[0].input"),
                "messages[1].content[0].input: Input should be a valid dictionary",
            ),
            (
                msgs(
                    json!([{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"tool_use","name":"f","input":{}}]}]),
                ),
                false,
                Some("messages[1].content[0].id"),
                "messages[1].content[0].id: Field required",
            ),
            (
                msgs(json!([{"role":"user","content":[{"type":"tool_result","content":"x"}]}])),
                false,
                Some("messages[0].content[0].tool_use_id"),
                "messages[0].content[0].tool_use_id: Field required",
            ),
            (
                msgs(
                    json!([{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"document"}]}]}]),
                ),
                true,
                Some("messages[0].content[0].content[0]"),
                "messages[0].content[0].content[0]: tool result content type 'document' is not supported for this model",
            ),
            (
                msgs(
                    json!([{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","is_error":"yes"}]}]),
                ),
                false,
                Some("messages[0].content[0].is_error"),
                "messages[0].content[0].is_error: Input should be a valid boolean",
            ),
            (
                base(json!({"system":[{"type":"image"}]})),
                false,
                Some("system[0].type"),
                "system[0].type: Input should be 'text'",
            ),
            (
                base(json!({"system":5})),
                false,
                Some("system"),
                "system: Input should be a valid string or a list of text blocks",
            ),
            (
                base(json!({"temperature":"hot"})),
                false,
                Some("temperature"),
                "temperature: Input should be a valid number",
            ),
            (
                base(json!({"top_k":"many"})),
                false,
                Some("top_k"),
                "top_k: Input should be a valid number",
            ),
            (
                base(json!({"stop_sequences":"END"})),
                false,
                Some("stop_sequences"),
                "stop_sequences: Input should be a valid list of strings",
            ),
            (
                base(json!({"stop_sequences":[1]})),
                false,
                Some("stop_sequences"),
                "stop_sequences: Input should be a valid list of strings",
            ),
            (
                base(json!({"stream":"yes"})),
                false,
                Some("stream"),
                "stream: Input should be a valid boolean",
            ),
            (
                base(json!({"metadata":"u"})),
                false,
                Some("metadata"),
                "metadata: Input should be a valid dictionary",
            ),
            (
                base(json!({"metadata":{"user_id":1}})),
                false,
                Some("metadata.user_id"),
                "metadata.user_id: Input should be a valid string",
            ),
            (
                base(json!({"tools":{}})),
                false,
                Some("tools"),
                "tools: Input should be a valid list",
            ),
            (
                base(json!({"tools":[{"name":"f"}]})),
                false,
                Some("tools[0].input_schema"),
                "tools[0].input_schema: Field required",
            ),
            (
                base(json!({"tools":[{"input_schema":{}}]})),
                false,
                Some("tools[0].name"),
                "tools[0].name: Field required",
            ),
            (
                base(json!({"tools":[{"type":"web_search_20250305","name":"web_search"}]})),
                true,
                Some("tools[0].type"),
                "tools[0].type: server tool 'web_search_20250305' is not supported for this model",
            ),
            (
                base(json!({"tools":[{"name":"f","input_schema":{},"description":3}]})),
                false,
                Some("tools[0].description"),
                "tools[0].description: Input should be a valid string",
            ),
            (
                base(json!({"tool_choice":"auto"})),
                false,
                Some("tool_choice"),
                "tool_choice: Input should be a valid tool choice object",
            ),
            (
                base(json!({"tool_choice":{"type":"sometimes"}})),
                false,
                Some("tool_choice.type"),
                "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
            ),
            (
                base(
                    json!({"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"tool"}}),
                ),
                false,
                Some("tool_choice.name"),
                "tool_choice.name: Field required",
            ),
            (
                base(json!({"tool_choice":{"type":"auto","disable_parallel_tool_use":1}})),
                false,
                Some("tool_choice.disable_parallel_tool_use"),
                "tool_choice.disable_parallel_tool_use: Input should be a valid boolean",
            ),
            (
                base(json!({"mcp_servers":[{"type":"url","url":"https://x","name":"x"}]})),
                true,
                Some("mcp_servers"),
                "mcp_servers: MCP servers is not supported for this model",
            ),
        ];
        for (body, unsupported, param, message) in cases {
            let err = to_openai(&body).unwrap_err();
            assert_eq!(
                matches!(err, TranslateError::Unsupported { .. }),
                unsupported,
                "{body}: {err}"
            );
            assert_eq!(err.param(), param, "{body}");
            assert_eq!(err.to_string(), message, "{body}");
        }
        // An empty mcp_servers list is harmless.
        assert!(to_openai(&base(json!({"mcp_servers":[]}))).is_ok());
    }
}
