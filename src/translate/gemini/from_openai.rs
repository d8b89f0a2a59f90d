//! OpenAI client -> Google Gemini provider (`generateContent`,
//! `streamGenerateContent?alt=sse`, `batchEmbedContents`).
//!
//! Requests are rebuilt field by field (an allowlist: OpenAI-only knobs are
//! dropped, ones that would silently change behaviour are rejected).
//! Responses and streams are rebuilt in the OpenAI `chat.completion` /
//! `chat.completion.chunk` / embeddings shapes.

use super::{
    OaUsage, TokenCounts, block_reason, describe_error, error_object, finish_reason,
    finish_reason_of, id_tag, short_hash, signature_from_id, tool_call_id,
};
use crate::translate::sse::{SseEvent, SseSplitter};
use crate::translate::{
    Inbound, RequestOptions, StreamOutcome, StreamTranslator, TranslateError, UpstreamRequest,
    Usage, u64_at, write_data_event, write_openai_stream_error,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

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
    // `models/x` and `x` name the same model; the path adds `models/` itself.
    let model = opts.model.strip_prefix("models/").unwrap_or(opts.model);
    if model.is_empty() {
        return Err(TranslateError::invalid(
            "no gemini model configured for this route",
            Some("model".into()),
        ));
    }
    // Any other inbound (images) is dispatched before reaching a wire.
    let (path_suffix, out, stream) = match inbound {
        Inbound::Embeddings => (
            format!("/models/{model}:batchEmbedContents"),
            embeddings_request(obj, model)?,
            false,
        ),
        _ => {
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
            let path = if stream {
                format!("/models/{model}:streamGenerateContent?alt=sse")
            } else {
                format!("/models/{model}:generateContent")
            };
            (path, chat_request(obj)?, stream)
        }
    };
    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| TranslateError::invalid(format!("cannot serialise request: {e}"), None))?;
    Ok(UpstreamRequest {
        path_suffix,
        body,
        stream,
        // Gemini reports usageMetadata in every stream; nothing to inject.
        usage_injected: false,
    })
}

fn embeddings_request(
    obj: &Map<String, Value>,
    model: &str,
) -> Result<Map<String, Value>, TranslateError> {
    let param = || Some("input".to_owned());
    let token_arrays = || {
        TranslateError::unsupported(
            "gemini embeddings take text only; token-array input is not supported",
            param(),
        )
    };
    let texts: Vec<&str> = match obj.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(TranslateError::invalid("input must not be empty", param()));
        }
        Some(Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => texts.push(s.as_str()),
                    Value::Number(_) | Value::Array(_) => return Err(token_arrays()),
                    _ => {
                        return Err(TranslateError::invalid(
                            "input must be a string or an array of strings",
                            param(),
                        ));
                    }
                }
            }
            texts
        }
        _ => {
            return Err(TranslateError::invalid(
                "input must be a string or an array of strings",
                param(),
            ));
        }
    };
    let dimensions = match obj.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            TranslateError::invalid(
                "dimensions must be a positive integer",
                Some("dimensions".into()),
            )
        })?),
    };
    match obj.get("encoding_format").and_then(Value::as_str) {
        // base64: the exchange re-encodes the floats Gemini answers (translate::embeddings).
        None | Some("float" | "base64") => {}
        Some(other) => {
            return Err(TranslateError::invalid(
                format!("encoding_format '{other}' is not one of float, base64"),
                Some("encoding_format".into()),
            ));
        }
    }
    let model_name = format!("models/{model}");
    let requests = texts
        .into_iter()
        .map(|text| {
            let mut r = Map::new();
            r.insert("model".into(), Value::String(model_name.clone()));
            r.insert("content".into(), json!({"parts": [{"text": text}]}));
            if let Some(d) = dimensions {
                r.insert("outputDimensionality".into(), d.into());
            }
            Value::Object(r)
        })
        .collect();
    let mut out = Map::new();
    out.insert("requests".into(), Value::Array(requests));
    Ok(out)
}

fn chat_request(obj: &Map<String, Value>) -> Result<Map<String, Value>, TranslateError> {
    reject_unsupported(obj)?;
    let mut out = Map::new();
    let (system, contents) = convert_messages(obj.get("messages"))?;
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    let tools = convert_tools(obj.get("tools"))?;
    let has_tools = tools.is_some();
    if let Some(decls) = tools {
        out.insert("tools".into(), json!([{ "functionDeclarations": decls }]));
    }
    if let Some(config) = convert_tool_choice(obj.get("tool_choice"), has_tools)? {
        out.insert(
            "toolConfig".into(),
            json!({ "functionCallingConfig": config }),
        );
    }
    let config = generation_config(obj)?;
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(out)
}

fn reject_unsupported(obj: &Map<String, Value>) -> Result<(), TranslateError> {
    let unsupported = |what: &str, param: &str| {
        Err(TranslateError::unsupported(
            format!("{what} is not supported by gemini"),
            Some(param.to_owned()),
        ))
    };
    let present = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
    if obj
        .get("n")
        .and_then(Value::as_f64)
        .is_some_and(|n| n > 1.0)
    {
        return unsupported("n > 1", "n");
    }
    if obj.get("logprobs") == Some(&Value::Bool(true)) {
        return unsupported("logprobs", "logprobs");
    }
    if obj
        .get("top_logprobs")
        .and_then(Value::as_f64)
        .is_some_and(|n| n > 0.0)
    {
        return unsupported("top_logprobs", "top_logprobs");
    }
    if obj
        .get("logit_bias")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        return unsupported("logit_bias", "logit_bias");
    }
    if present("functions") {
        return unsupported("the legacy functions parameter (use tools)", "functions");
    }
    if present("function_call") {
        return unsupported(
            "the legacy function_call parameter (use tool_choice)",
            "function_call",
        );
    }
    if present("audio") {
        return unsupported("audio output", "audio");
    }
    if obj
        .get("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|x| x.as_str() != Some("text")))
    {
        return unsupported("non-text output modalities", "modalities");
    }
    if present("web_search_options") {
        return unsupported("web_search_options", "web_search_options");
    }
    Ok(())
}

fn generation_config(obj: &Map<String, Value>) -> Result<Map<String, Value>, TranslateError> {
    let mut out = Map::new();
    for (key, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                out.insert(to.into(), v.clone());
            }
            Some(_) => {
                return Err(TranslateError::invalid(
                    format!("{key} must be a number"),
                    Some(key.into()),
                ));
            }
        }
    }
    // Zero penalties are the default; leaving them out keeps models that do
    // not accept penalties at all working.
    for (key, to) in [
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(n)) => {
                if n.as_f64() != Some(0.0) {
                    out.insert(to.into(), v.clone());
                }
            }
            Some(_) => {
                return Err(TranslateError::invalid(
                    format!("{key} must be a number"),
                    Some(key.into()),
                ));
            }
        }
    }
    // top_k is not OpenAI's, but some clients send it for Gemini/Anthropic.
    for (key, to) in [("top_k", "topK"), ("seed", "seed")] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(v) if v.is_i64() || v.is_u64() => {
                out.insert(to.into(), v.clone());
            }
            Some(_) => {
                return Err(TranslateError::invalid(
                    format!("{key} must be an integer"),
                    Some(key.into()),
                ));
            }
        }
    }
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
                out.insert("maxOutputTokens".into(), n.into());
                break;
            }
        }
    }
    if let Some(stop) = stop_sequences(obj.get("stop"))? {
        out.insert("stopSequences".into(), stop);
    }
    response_format(obj.get("response_format"), &mut out)?;
    Ok(out)
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

fn response_format(
    format: Option<&Value>,
    config: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let param = || Some("response_format".to_owned());
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(());
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        Some("json_schema") => {
            config.insert("responseMimeType".into(), "application/json".into());
            match format.get("json_schema").and_then(|s| s.get("schema")) {
                None | Some(Value::Null) => {}
                // responseJsonSchema takes standard JSON Schema as OpenAI
                // clients write it (responseSchema only an OpenAPI subset).
                Some(schema @ Value::Object(_)) => {
                    config.insert("responseJsonSchema".into(), schema.clone());
                }
                Some(_) => {
                    return Err(TranslateError::invalid(
                        "response_format.json_schema.schema must be an object",
                        param(),
                    ));
                }
            }
        }
        Some(other) => {
            return Err(TranslateError::invalid(
                format!(
                    "response_format type '{other}' is not one of text, json_object, json_schema"
                ),
                param(),
            ));
        }
        None => {
            return Err(TranslateError::invalid(
                "response_format is missing its type",
                param(),
            ));
        }
    }
    Ok(())
}

fn convert_tools(tools: Option<&Value>) -> Result<Option<Vec<Value>>, TranslateError> {
    let Some(tools) = crate::translate::function_tools(tools, "gemini")? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(tools.len());
    for crate::translate::FunctionTool {
        index: i,
        function: f,
        name,
    } in tools
    {
        let mut d = Map::new();
        d.insert("name".into(), Value::String(name.to_owned()));
        if let Some(desc) = f.get("description").and_then(Value::as_str) {
            d.insert("description".into(), Value::String(desc.to_owned()));
        }
        match f.get("parameters") {
            None | Some(Value::Null) => {}
            // parametersJsonSchema takes the client's JSON Schema unchanged.
            Some(p @ Value::Object(_)) => {
                d.insert("parametersJsonSchema".into(), p.clone());
            }
            Some(_) => {
                return Err(TranslateError::invalid(
                    "tool parameters must be a JSON Schema object",
                    Some(format!("tools[{i}].function.parameters")),
                ));
            }
        }
        out.push(Value::Object(d));
    }
    Ok(Some(out))
}

/// `toolConfig.functionCallingConfig` for an OpenAI `tool_choice`.
fn convert_tool_choice(
    choice: Option<&Value>,
    has_tools: bool,
) -> Result<Option<Value>, TranslateError> {
    let param = || Some("tool_choice".to_owned());
    let bad = || {
        TranslateError::invalid(
            "tool_choice must be \"auto\", \"required\", \"none\" or a function choice",
            param(),
        )
    };
    let needs_tools =
        || TranslateError::invalid("tool_choice requires tools to be specified", param());
    let name_of = |v: &Value| {
        v.get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let config = match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            "required" if has_tools => json!({"mode": "ANY"}),
            "required" => return Err(needs_tools()),
            _ => return Err(bad()),
        },
        Some(obj @ Value::Object(_)) => match obj.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = name_of(obj).ok_or_else(bad)?;
                if !has_tools {
                    return Err(needs_tools());
                }
                json!({"mode": "ANY", "allowedFunctionNames": [name]})
            }
            Some("allowed_tools") => {
                let allowed = obj.get("allowed_tools").unwrap_or(&Value::Null);
                let names = allowed
                    .get("tools")
                    .and_then(Value::as_array)
                    .map(|tools| tools.iter().map(name_of).collect::<Option<Vec<_>>>())
                    .unwrap_or_default()
                    .filter(|n| !n.is_empty())
                    .ok_or_else(bad)?;
                if !has_tools {
                    return Err(needs_tools());
                }
                // VALIDATED: call one of the allowed functions or answer in text.
                let mode = match allowed.get("mode").and_then(Value::as_str) {
                    Some("required") => "ANY",
                    Some("auto") => "VALIDATED",
                    _ => return Err(bad()),
                };
                json!({"mode": mode, "allowedFunctionNames": names})
            }
            _ => return Err(bad()),
        },
        Some(_) => return Err(bad()),
    };
    // auto/none without tools mean nothing to Gemini.
    Ok(has_tools.then_some(config))
}

type Parts = Vec<Value>;

/// (systemInstruction parts, contents).
fn convert_messages(messages: Option<&Value>) -> Result<(Parts, Vec<Value>), TranslateError> {
    let Some(Value::Array(messages)) = messages else {
        return Err(TranslateError::invalid(
            "messages must be an array",
            Some("messages".into()),
        ));
    };
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Parts)> = Vec::new();
    // tool_call id -> function name; later calls with a reused id win.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (i, msg) in messages.iter().enumerate() {
        let role = msg.get("role").and_then(Value::as_str).ok_or_else(|| {
            TranslateError::invalid(
                "message is missing its role",
                Some(format!("messages[{i}].role")),
            )
        })?;
        let (role, parts) = match role {
            "system" | "developer" => {
                system.extend(system_parts(msg.get("content"), i)?);
                continue;
            }
            "user" => ("user", user_parts(msg.get("content"), i)?),
            "assistant" => ("model", assistant_parts(msg, i, &mut call_names)?),
            // Gemini takes function results in a user turn.
            "tool" => ("user", vec![function_response(msg, i, &call_names)?]),
            other => {
                return Err(TranslateError::unsupported(
                    format!("message role '{other}' is not supported by gemini"),
                    Some(format!("messages[{i}].role")),
                ));
            }
        };
        if parts.is_empty() {
            continue;
        }
        // Gemini wants alternating turns: fold runs into one.
        match turns.last_mut() {
            Some((last_role, last)) if *last_role == role => last.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    if turns.is_empty() {
        return Err(TranslateError::invalid(
            "messages must include at least one non-empty user or assistant message",
            Some("messages".into()),
        ));
    }
    let contents = turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok((system, contents))
}

fn text_part(text: &str) -> Option<Value> {
    // Gemini rejects empty text parts.
    (!text.is_empty()).then(|| json!({ "text": text }))
}

fn system_parts(content: Option<&Value>, i: usize) -> Result<Parts, TranslateError> {
    let bad = || {
        TranslateError::invalid(
            "system message content must be a string or text parts",
            Some(format!("messages[{i}].content")),
        )
    };
    match content {
        Some(Value::String(s)) => Ok(text_part(s).into_iter().collect()),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => out.extend(text_part(t)),
                    _ => return Err(bad()),
                }
            }
            Ok(out)
        }
        _ => Err(bad()),
    }
}

fn user_parts(content: Option<&Value>, i: usize) -> Result<Parts, TranslateError> {
    match content {
        Some(Value::String(s)) => Ok(text_part(s).into_iter().collect()),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                out.extend(content_part(p, i, j)?);
            }
            Ok(out)
        }
        _ => Err(TranslateError::invalid(
            "user message content must be a string or an array of parts",
            Some(format!("messages[{i}].content")),
        )),
    }
}

fn content_part(part: &Value, i: usize, j: usize) -> Result<Option<Value>, TranslateError> {
    let param = || Some(format!("messages[{i}].content[{j}]"));
    match part.get("type").and_then(Value::as_str) {
        Some("text") => match part.get("text") {
            Some(Value::String(t)) => Ok(text_part(t)),
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
            image_part(url).map(Some).ok_or_else(|| {
                TranslateError::invalid(
                    "image url must be a base64 data URL or an http(s) or gs:// URL",
                    param(),
                )
            })
        }
        Some("input_audio") => {
            let audio = part.get("input_audio");
            let data = audio.and_then(|a| a.get("data")).and_then(Value::as_str);
            let format = audio.and_then(|a| a.get("format")).and_then(Value::as_str);
            match (data, format) {
                (Some(data), Some(format)) if !data.is_empty() && !format.is_empty() => {
                    let mime = match format {
                        "mp3" => "audio/mp3".to_owned(),
                        "wav" => "audio/wav".to_owned(),
                        other => format!("audio/{other}"),
                    };
                    Ok(Some(
                        json!({"inlineData": {"mimeType": mime, "data": data}}),
                    ))
                }
                _ => Err(TranslateError::invalid(
                    "input_audio part needs data and format",
                    param(),
                )),
            }
        }
        Some("file") => {
            let file = part.get("file").unwrap_or(&Value::Null);
            if let Some(data) = file.get("file_data").and_then(Value::as_str) {
                return parse_data_url(data)
                    .map(|(mime, data)| {
                        Some(json!({"inlineData": {"mimeType": mime, "data": data}}))
                    })
                    .ok_or_else(|| {
                        TranslateError::invalid(
                            "file_data must be a base64 data URL (data:<mime>;base64,...)",
                            param(),
                        )
                    });
            }
            if file.get("file_id").is_some() {
                return Err(TranslateError::unsupported(
                    "OpenAI file ids are not supported by gemini; send file_data",
                    param(),
                ));
            }
            Err(TranslateError::invalid(
                "file part needs file_data",
                param(),
            ))
        }
        Some(other) => Err(TranslateError::unsupported(
            format!("content part type '{other}' is not supported by gemini"),
            param(),
        )),
        None => Err(TranslateError::invalid(
            "content part is missing its type",
            param(),
        )),
    }
}

/// `data:<mime>[;params];base64,<data>` -> (mime, data).
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let meta = meta.strip_suffix(";base64")?;
    let mime = meta.split(';').next().unwrap_or_default().trim();
    (!mime.is_empty() && !data.is_empty()).then_some((mime, data))
}

/// data: URLs are sent inline; http(s) and gs:// URLs as `fileData`, which
/// Gemini fetches itself. `fileData.mimeType` (required on Vertex) is guessed
/// from the file extension, defaulting to image/jpeg.
fn image_part(url: &str) -> Option<Value> {
    if url.starts_with("data:") {
        let (mime, data) = parse_data_url(url)?;
        return Some(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://")
        || lower.starts_with("http://")
        || lower.starts_with("gs://"))
    {
        return None;
    }
    let path = lower.split(['?', '#']).next().unwrap_or_default();
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    let mime = match ext {
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => "image/jpeg",
    };
    Some(json!({"fileData": {"mimeType": mime, "fileUri": url}}))
}

fn assistant_parts<'m>(
    msg: &'m Value,
    i: usize,
    call_names: &mut HashMap<&'m str, &'m str>,
) -> Result<Parts, TranslateError> {
    let mut parts = Vec::new();
    match msg.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => parts.extend(text_part(s)),
        Some(Value::Array(items)) => {
            for (j, part) in items.iter().enumerate() {
                let text = match part.get("type").and_then(Value::as_str) {
                    Some("text") => part.get("text"),
                    Some("refusal") => part.get("refusal"),
                    _ => None,
                };
                match text {
                    Some(Value::String(t)) => parts.extend(text_part(t)),
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
    for call in calls {
        let (id, name, part) = function_call(call, i)?;
        call_names.insert(id, name);
        parts.push(part);
    }
    Ok(parts)
}

/// (tool call id, function name, `functionCall` part).
fn function_call(call: &Value, i: usize) -> Result<(&str, &str, Value), TranslateError> {
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
    let not_object = || {
        TranslateError::invalid(
            format!("tool call '{name}' arguments must be a JSON object"),
            param(),
        )
    };
    let args = match f.and_then(|f| f.get("arguments")) {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Err(not_object()),
            Err(e) => {
                return Err(TranslateError::invalid(
                    format!("tool call '{name}' has arguments that are not valid JSON: {e}"),
                    param(),
                ));
            }
        },
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(not_object()),
    };
    let mut part = Map::new();
    part.insert("functionCall".into(), json!({"name": name, "args": args}));
    if let Some(sig) = signature_from_id(id) {
        part.insert("thoughtSignature".into(), Value::String(sig));
    }
    Ok((id, name, Value::Object(part)))
}

fn function_response(
    msg: &Value,
    i: usize,
    call_names: &HashMap<&str, &str>,
) -> Result<Value, TranslateError> {
    let id_param = || Some(format!("messages[{i}].tool_call_id"));
    let id = msg
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            TranslateError::invalid("tool message is missing tool_call_id", id_param())
        })?;
    let name = call_names.get(id).ok_or_else(|| {
        TranslateError::invalid(
            format!("tool message answers tool_call_id '{id}', which no earlier assistant message called"),
            id_param(),
        )
    })?;
    let text = match msg.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => texts.push(t.as_str()),
                    _ => {
                        return Err(TranslateError::unsupported(
                            "gemini function responses take text parts only",
                            Some(format!("messages[{i}].content[{j}]")),
                        ));
                    }
                }
            }
            texts.concat()
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "tool message content must be a string or an array of parts",
                Some(format!("messages[{i}].content")),
            ));
        }
    };
    // `response` must be an object: a JSON object result is passed as is,
    // anything else is wrapped.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "content": text }),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

// ---------------------------------------------------------------- shapes

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice>,
    usage: OaUsage,
}

#[derive(Serialize)]
struct Choice {
    index: u64,
    message: Message,
    finish_reason: &'static str,
    logprobs: Option<()>,
}

#[derive(Serialize)]
struct Message {
    role: &'static str,
    content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall>,
}

#[derive(Serialize)]
struct ToolCall {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall,
}

#[derive(Serialize)]
struct FunctionCall {
    name: String,
    arguments: String,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OaUsage>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'static str>,
    logprobs: Option<()>,
}

#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem<'a>>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingItem<'a> {
    object: &'static str,
    index: usize,
    embedding: &'a Value,
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
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadUpstream(format!("gemini sent invalid JSON: {e}")))?;
    if let Some(err) = error_object(&v) {
        let (message, _) = describe_error(err);
        return Err(TranslateError::BadUpstream(format!(
            "gemini returned an error: {}",
            message.as_deref().unwrap_or("unknown error")
        )));
    }
    if !v.is_object() {
        return Err(TranslateError::BadUpstream(
            "gemini response is not a JSON object".to_owned(),
        ));
    }
    match inbound {
        Inbound::Embeddings => embeddings_response(&v),
        _ => chat_response(&v, body, created),
    }
}

fn chat_response(v: &Value, body: &[u8], created: u64) -> Result<(Vec<u8>, Usage), TranslateError> {
    let counts = TokenCounts::from_metadata(v.get("usageMetadata").unwrap_or(&Value::Null));
    let response_id = str_at(v, "responseId");
    let hash = short_hash(body);
    let id = if response_id.is_empty() {
        format!("chatcmpl-gemini-{hash}")
    } else {
        response_id.to_owned()
    };
    let tag = id_tag(response_id, &hash);
    let candidates = v
        .get("candidates")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut choices = Vec::with_capacity(candidates.len().max(1));
    let mut next_call = 0u32;
    for (pos, cand) in candidates.iter().enumerate() {
        let mut text: Option<String> = None;
        let mut tool_calls = Vec::new();
        let parts = cand
            .get("content")
            .and_then(|c| c.get("parts"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for part in parts {
            // Thought summaries (includeThoughts) are not answer text.
            if part.get("thought") == Some(&Value::Bool(true)) {
                continue;
            }
            if let Some(t) = part.get("text").and_then(Value::as_str) {
                text.get_or_insert_with(String::new).push_str(t);
            } else if let Some(call) = part.get("functionCall") {
                let signature = part.get("thoughtSignature").and_then(Value::as_str);
                tool_calls.push(ToolCall {
                    id: tool_call_id(&tag, next_call, signature),
                    kind: "function",
                    function: FunctionCall {
                        name: str_at(call, "name").to_owned(),
                        arguments: args_json(call),
                    },
                });
                next_call = next_call.saturating_add(1);
            }
            // inlineData, executableCode, codeExecutionResult: no OpenAI equivalent.
        }
        let reason = finish_reason_of(cand).unwrap_or("STOP");
        choices.push(Choice {
            index: cand
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(pos as u64),
            finish_reason: finish_reason(reason, !tool_calls.is_empty()),
            message: Message {
                role: "assistant",
                content: text,
                tool_calls,
            },
            logprobs: None,
        });
    }
    if choices.is_empty() {
        if block_reason(v).is_none() {
            return Err(TranslateError::BadUpstream(
                "gemini response has no candidates".to_owned(),
            ));
        }
        // The prompt was blocked: an empty answer filtered for content.
        choices.push(Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: None,
                tool_calls: Vec::new(),
            },
            finish_reason: "content_filter",
            logprobs: None,
        });
    }
    let completion = ChatCompletion {
        id: &id,
        object: "chat.completion",
        created,
        model: str_at(v, "modelVersion"),
        choices,
        usage: counts.into(),
    };
    let out = serde_json::to_vec(&completion)
        .map_err(|e| TranslateError::BadUpstream(format!("cannot serialise response: {e}")))?;
    Ok((out, counts.usage()))
}

fn embeddings_response(v: &Value) -> Result<(Vec<u8>, Usage), TranslateError> {
    // batchEmbedContents answers {"embeddings":[...]}, embedContent {"embedding":{...}}.
    let items: Vec<&Value> = match (v.get("embeddings"), v.get("embedding")) {
        (Some(Value::Array(items)), _) => items.iter().collect(),
        (_, Some(one @ Value::Object(_))) => vec![one],
        _ => {
            return Err(TranslateError::BadUpstream(
                "gemini embeddings response has no embeddings".to_owned(),
            ));
        }
    };
    let mut data = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let values = item.get("values").filter(|x| x.is_array()).ok_or_else(|| {
            TranslateError::BadUpstream(format!("gemini embedding {index} has no values"))
        })?;
        data.push(EmbeddingItem {
            object: "embedding",
            index,
            embedding: values,
        });
    }
    // Gemini does not report embedding tokens today; use them if it ever does.
    let prompt_tokens = v
        .get("usageMetadata")
        .map(|m| u64_at(m, "promptTokenCount"))
        .unwrap_or(0);
    let list = EmbeddingList {
        object: "list",
        data,
        // Not in the response, and the request is not visible here.
        model: "",
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    };
    let out = serde_json::to_vec(&list)
        .map_err(|e| TranslateError::BadUpstream(format!("cannot serialise response: {e}")))?;
    Ok((
        out,
        Usage {
            input_tokens: prompt_tokens,
            output_tokens: 0,
        },
    ))
}

fn str_at<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A functionCall's `args` as the JSON string OpenAI puts in `arguments`.
fn args_json(call: &Value) -> String {
    match call.get("args") {
        Some(args @ Value::Object(_)) => args.to_string(),
        _ => "{}".to_owned(),
    }
}

// ---------------------------------------------------------------- stream

/// Gemini `alt=sse` stream (each `data:` a whole GenerateContentResponse)
/// -> OpenAI `chat.completion.chunk` SSE.
///
/// Text parts become content deltas; a functionCall arrives whole and becomes
/// one tool-call delta carrying id, name and all arguments. Some models put a
/// `finishReason` on chunks before the last, so the finish chunk, the usage
/// chunk and `[DONE]` are written when the upstream body ends; a stream that
/// ended without any finishReason (or prompt blockReason) is truncated.
pub struct GeminiStream {
    splitter: SseSplitter,
    events: Vec<SseEvent>,
    client_wants_usage: bool,
    created: u64,
    id: String,
    model: String,
    tag: String,
    counts: TokenCounts,
    started: bool,
    tool_calls: u32,
    /// Gemini finish reason (or prompt block reason) seen last.
    finish: Option<&'static str>,
    done: bool,
    first_token: bool,
    failed: Option<String>,
}

impl GeminiStream {
    pub fn new(client_wants_usage: bool, created: u64) -> Self {
        Self {
            splitter: SseSplitter::new(),
            events: Vec::new(),
            client_wants_usage,
            created,
            id: String::new(),
            model: String::new(),
            tag: String::new(),
            counts: TokenCounts::default(),
            started: false,
            tool_calls: 0,
            finish: None,
            done: false,
            first_token: false,
            failed: None,
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

    fn drain_events(&mut self, out: &mut Vec<u8>) {
        let events = std::mem::take(&mut self.events);
        for ev in events {
            if self.failed.is_some() {
                break;
            }
            self.handle(&ev, out);
        }
    }

    fn unparsable(&mut self, reason: String, out: &mut Vec<u8>) {
        self.fail(
            format!("unparsable upstream event: {reason}"),
            "upstream sent an unparsable stream event",
            out,
        );
    }

    fn handle(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        let data = ev.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return;
        }
        match serde_json::from_str::<Value>(data) {
            Ok(v @ Value::Object(_)) => self.handle_response(&v, data, out),
            // A JSON array of responses (or of one error) is read element-wise.
            Ok(Value::Array(items)) => {
                for item in &items {
                    if self.failed.is_some() {
                        break;
                    }
                    if item.is_object() {
                        self.handle_response(item, data, out);
                    } else {
                        self.unparsable("not a JSON object".to_owned(), out);
                    }
                }
            }
            Ok(_) => self.unparsable("not a JSON object".to_owned(), out),
            Err(e) => self.unparsable(e.to_string(), out),
        }
    }

    fn handle_response(&mut self, v: &Value, data: &str, out: &mut Vec<u8>) {
        if let Some(err) = v.get("error") {
            let (message, _) = describe_error(err);
            let message = message
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| "upstream stream error".to_owned());
            let status = err.get("status").and_then(Value::as_str).unwrap_or("error");
            return self.fail(
                format!("upstream error event: {status}: {message}"),
                &message,
                out,
            );
        }
        if !self.started {
            self.started = true;
            let response_id = str_at(v, "responseId");
            let hash = short_hash(data.as_bytes());
            self.id = if response_id.is_empty() {
                format!("chatcmpl-gemini-{hash}")
            } else {
                response_id.to_owned()
            };
            self.tag = id_tag(response_id, &hash);
            self.model = str_at(v, "modelVersion").to_owned();
            let delta = Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Delta::default()
            };
            self.chunk(out, delta, None);
        }
        if let Some(meta) = v.get("usageMetadata").filter(|m| m.is_object()) {
            self.counts = TokenCounts::from_metadata(meta);
        }
        let candidate = v
            .get("candidates")
            .and_then(Value::as_array)
            .and_then(|c| c.first());
        let Some(candidate) = candidate else {
            if block_reason(v).is_some() {
                self.finish = Some("content_filter");
            }
            return;
        };
        let parts = candidate
            .get("content")
            .and_then(|c| c.get("parts"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for part in parts {
            if part.get("thought") == Some(&Value::Bool(true)) {
                continue;
            }
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                if !text.is_empty() {
                    self.first_token = true;
                    let delta = Delta {
                        content: Some(text),
                        ..Delta::default()
                    };
                    self.chunk(out, delta, None);
                }
            } else if let Some(call) = part.get("functionCall") {
                let index = self.tool_calls;
                self.tool_calls = self.tool_calls.saturating_add(1);
                self.first_token = true;
                let signature = part.get("thoughtSignature").and_then(Value::as_str);
                let id = tool_call_id(&self.tag, index, signature);
                let arguments = args_json(call);
                let delta = Delta {
                    tool_calls: Some([ToolCallDelta {
                        index,
                        id: &id,
                        kind: "function",
                        function: FunctionDelta {
                            name: str_at(call, "name"),
                            arguments: &arguments,
                        },
                    }]),
                    ..Delta::default()
                };
                self.chunk(out, delta, None);
            }
        }
        if let Some(reason) = finish_reason_of(candidate) {
            // Mapped at the end, once all tool calls are known.
            self.finish = Some(finish_reason(reason, false));
        }
    }

    fn finish_oversized(
        &mut self,
        res: Result<(), crate::translate::sse::SseError>,
        out: &mut Vec<u8>,
    ) {
        if let Err(e) = res
            && self.failed.is_none()
        {
            self.fail(
                e.to_string(),
                "upstream sent an oversized stream event",
                out,
            );
        }
    }
}

impl StreamTranslator for GeminiStream {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.failed.is_some() || self.done {
            return;
        }
        let res = self.splitter.feed(chunk, &mut self.events);
        self.drain_events(out);
        self.finish_oversized(res, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> StreamOutcome {
        if let Some(reason) = &self.failed {
            return StreamOutcome::Failed(reason.clone());
        }
        if self.done {
            return StreamOutcome::Complete;
        }
        let res = self.splitter.finish(&mut self.events);
        self.drain_events(out);
        self.finish_oversized(res, out);
        if let Some(reason) = &self.failed {
            return StreamOutcome::Failed(reason.clone());
        }
        let Some(finish) = self.finish else {
            let reason = "upstream stream ended without a finishReason".to_owned();
            self.fail(
                reason.clone(),
                "upstream stream ended before completion",
                out,
            );
            return StreamOutcome::Failed(reason);
        };
        let finish = if finish == "stop" && self.tool_calls > 0 {
            "tool_calls"
        } else {
            finish
        };
        self.chunk(out, Delta::default(), Some(finish));
        if self.client_wants_usage {
            write_data_event(
                out,
                &Chunk {
                    id: &self.id,
                    object: "chat.completion.chunk",
                    created: self.created,
                    model: &self.model,
                    choices: Vec::new(),
                    usage: Some(self.counts.into()),
                },
            );
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
        StreamOutcome::Complete
    }

    fn usage(&self) -> Usage {
        self.counts.usage()
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
        model: "gemini-2.5-flash",
        default_max_tokens: 4096,
    };

    fn translate(body: Value) -> Result<(UpstreamRequest, Value), TranslateError> {
        let r = request(Inbound::ChatCompletions, Wire::Gemini, &body, &OPTS)?;
        let v = serde_json::from_slice(&r.body).unwrap();
        Ok((r, v))
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "parts": [{"text": text}]})
    }

    #[test]
    fn request_table() {
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "minimal; OpenAI-only and no-op fields dropped",
                json!({"model":"x","messages":[{"role":"user","content":"Hi"}],
                       "store":true,"metadata":{"a":"b"},"user":"u-1","n":1,"logprobs":false,
                       "top_logprobs":null,"logit_bias":{},"response_format":{"type":"text"},
                       "stream_options":{"include_usage":true},"parallel_tool_calls":false,
                       "reasoning_effort":"low","presence_penalty":0,"frequency_penalty":0.0,
                       "service_tier":"auto","modalities":["text"],"stream":false}),
                json!({"contents":[user("Hi")]}),
            ),
            (
                "system and developer messages; full generationConfig",
                json!({"messages":[
                    {"role":"system","content":"You are terse."},
                    {"role":"developer","content":[{"type":"text","text":"Be nice."},{"type":"text","text":""}]},
                    {"role":"user","content":"Hi"}],
                    "temperature":0.3,"top_p":0.9,"top_k":40,"max_tokens":100,"stop":"END",
                    "seed":7,"presence_penalty":0.5,"frequency_penalty":-0.25,"stream":true}),
                json!({"systemInstruction":{"parts":[{"text":"You are terse."},{"text":"Be nice."}]},
                       "contents":[user("Hi")],
                       "generationConfig":{"temperature":0.3,"topP":0.9,"topK":40,"maxOutputTokens":100,
                           "stopSequences":["END"],"seed":7,"presencePenalty":0.5,"frequencyPenalty":-0.25}}),
            ),
            (
                "max_completion_tokens wins; stop list; json_object",
                json!({"messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":7,
                       "max_tokens":9,"stop":["a","b"],"response_format":{"type":"json_object"}}),
                json!({"contents":[user("Hi")],
                       "generationConfig":{"maxOutputTokens":7,"stopSequences":["a","b"],
                           "responseMimeType":"application/json"}}),
            ),
            (
                "json_schema -> responseJsonSchema",
                json!({"messages":[{"role":"user","content":"Hi"}],
                       "response_format":{"type":"json_schema","json_schema":{"name":"r","strict":true,
                           "schema":{"type":"object","properties":{"k":{"type":"string"}},
                                     "required":["k"],"additionalProperties":false}}}}),
                json!({"contents":[user("Hi")],
                       "generationConfig":{"responseMimeType":"application/json",
                           "responseJsonSchema":{"type":"object","properties":{"k":{"type":"string"}},
                                                 "required":["k"],"additionalProperties":false}}}),
            ),
            (
                "roles user/model, consecutive turns merged, empty turns dropped",
                json!({"messages":[
                    {"role":"user","content":"one"},
                    {"role":"user","content":[{"type":"text","text":"two"}]},
                    {"role":"assistant","content":"ok"},
                    {"role":"assistant","content":[{"type":"text","text":"more"},{"type":"refusal","refusal":"no"}]},
                    {"role":"user","content":""},
                    {"role":"assistant","content":null},
                    {"role":"user","content":"three"}]}),
                json!({"contents":[
                    {"role":"user","parts":[{"text":"one"},{"text":"two"}]},
                    {"role":"model","parts":[{"text":"ok"},{"text":"more"},{"text":"no"}]},
                    user("three")]}),
            ),
            (
                "images, audio and files",
                json!({"messages":[{"role":"user","content":[
                    {"type":"text","text":"What is this?"},
                    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}},
                    {"type":"image_url","image_url":{"url":"https://example.com/cat.PNG?size=2"}},
                    {"type":"image_url","image_url":{"url":"https://example.com/photo"}},
                    {"type":"image_url","image_url":"gs://bucket/dog.webp"},
                    {"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}},
                    {"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0="}}]}]}),
                json!({"contents":[{"role":"user","parts":[
                    {"text":"What is this?"},
                    {"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},
                    {"fileData":{"mimeType":"image/png","fileUri":"https://example.com/cat.PNG?size=2"}},
                    {"fileData":{"mimeType":"image/jpeg","fileUri":"https://example.com/photo"}},
                    {"fileData":{"mimeType":"image/webp","fileUri":"gs://bucket/dog.webp"}},
                    {"inlineData":{"mimeType":"audio/wav","data":"UklGRg=="}},
                    {"inlineData":{"mimeType":"application/pdf","data":"JVBERi0="}}]}]}),
            ),
            (
                "tools, tool calls (one carrying a thought signature) and tool results",
                json!({"messages":[
                    {"role":"user","content":"Weather in Paris and Rome?"},
                    {"role":"assistant","content":"Let me check.","tool_calls":[
                        {"id":"call_abc_0__thought__Zm9v-_8","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                        {"id":"call_abc_1","type":"function","function":{"name":"get_time","arguments":""}}]},
                    {"role":"tool","tool_call_id":"call_abc_0__thought__Zm9v-_8","content":"18C"},
                    {"role":"tool","tool_call_id":"call_abc_1","content":[{"type":"text","text":"{\"now\":"},{"type":"text","text":"\"noon\"}"}]},
                    {"role":"user","content":"Thanks"}],
                    "tools":[
                        {"type":"function","function":{"name":"get_weather","description":"Get weather",
                            "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}},
                        {"type":"function","function":{"name":"get_time"}}],
                    "tool_choice":"required"}),
                json!({"contents":[
                    user("Weather in Paris and Rome?"),
                    {"role":"model","parts":[
                        {"text":"Let me check."},
                        {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"Zm9v+/8="},
                        {"functionCall":{"name":"get_time","args":{}}}]},
                    {"role":"user","parts":[
                        {"functionResponse":{"name":"get_weather","response":{"content":"18C"}}},
                        {"functionResponse":{"name":"get_time","response":{"now":"noon"}}},
                        {"text":"Thanks"}]}],
                    "tools":[{"functionDeclarations":[
                        {"name":"get_weather","description":"Get weather",
                         "parametersJsonSchema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},
                        {"name":"get_time"}]}],
                    "toolConfig":{"functionCallingConfig":{"mode":"ANY"}}}),
            ),
            (
                "reused tool call ids resolve to the latest call; tool_choice function",
                json!({"messages":[
                    {"role":"user","content":"x"},
                    {"role":"assistant","tool_calls":[{"id":"call_0","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]},
                    {"role":"tool","tool_call_id":"call_0","content":"[1]"},
                    {"role":"assistant","content":"","tool_calls":[{"id":"call_0","type":"function","function":{"name":"g","arguments":{"b":true}}}]},
                    {"role":"tool","tool_call_id":"call_0","content":null}],
                    "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}},
                             {"function":{"name":"g"}}],
                    "tool_choice":{"type":"function","function":{"name":"g"}}}),
                json!({"contents":[
                    user("x"),
                    {"role":"model","parts":[{"functionCall":{"name":"f","args":{"a":[1,2]}}}]},
                    {"role":"user","parts":[{"functionResponse":{"name":"f","response":{"content":"[1]"}}}]},
                    {"role":"model","parts":[{"functionCall":{"name":"g","args":{"b":true}}}]},
                    {"role":"user","parts":[{"functionResponse":{"name":"g","response":{"content":""}}}]}],
                    "tools":[{"functionDeclarations":[{"name":"f","parametersJsonSchema":{"type":"object"}},{"name":"g"}]}],
                    "toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["g"]}}}),
            ),
            (
                "tool_choice none",
                json!({"messages":[{"role":"user","content":"x"}],"tool_choice":"none",
                       "tools":[{"type":"function","function":{"name":"f"}}]}),
                json!({"contents":[user("x")],"tools":[{"functionDeclarations":[{"name":"f"}]}],
                       "toolConfig":{"functionCallingConfig":{"mode":"NONE"}}}),
            ),
            (
                "tool_choice auto",
                json!({"messages":[{"role":"user","content":"x"}],"tool_choice":"auto",
                       "tools":[{"type":"function","function":{"name":"f"}}]}),
                json!({"contents":[user("x")],"tools":[{"functionDeclarations":[{"name":"f"}]}],
                       "toolConfig":{"functionCallingConfig":{"mode":"AUTO"}}}),
            ),
            (
                "tool_choice allowed_tools auto -> VALIDATED",
                json!({"messages":[{"role":"user","content":"x"}],
                       "tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto",
                           "tools":[{"type":"function","function":{"name":"f"}}]}},
                       "tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"g"}}]}),
                json!({"contents":[user("x")],"tools":[{"functionDeclarations":[{"name":"f"},{"name":"g"}]}],
                       "toolConfig":{"functionCallingConfig":{"mode":"VALIDATED","allowedFunctionNames":["f"]}}}),
            ),
            (
                "tool_choice auto/none without tools is dropped",
                json!({"messages":[{"role":"user","content":"x"}],"tool_choice":"none","tools":[]}),
                json!({"contents":[user("x")]}),
            ),
        ];
        for (name, body, expected) in cases {
            let (r, v) = translate(body.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(v, expected, "{name}");
            let stream = body.get("stream") == Some(&json!(true));
            assert_eq!(r.stream, stream, "{name}");
            let path = if stream {
                "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
            } else {
                "/models/gemini-2.5-flash:generateContent"
            };
            assert_eq!(r.path_suffix, path, "{name}");
            assert!(!r.usage_injected);
        }

        // A configured "models/..." name is not doubled in the path.
        let opts = RequestOptions {
            model: "models/gemini-2.5-pro",
            default_max_tokens: 1,
        };
        let r = request(
            Inbound::ChatCompletions,
            Wire::Gemini,
            &json!({"messages":[{"role":"user","content":"x"}],"stream":true}),
            &opts,
        )
        .unwrap();
        assert_eq!(
            r.path_suffix,
            "/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn request_errors_table() {
        let u = json!([{"role":"user","content":"x"}]);
        let tools = json!([{"type":"function","function":{"name":"f"}}]);
        // (body, unsupported?, param)
        let cases: Vec<(Value, bool, Option<&str>)> = vec![
            (json!({"messages":u,"n":2}), true, Some("n")),
            (
                json!({"messages":u,"logprobs":true}),
                true,
                Some("logprobs"),
            ),
            (
                json!({"messages":u,"top_logprobs":3}),
                true,
                Some("top_logprobs"),
            ),
            (
                json!({"messages":u,"logit_bias":{"50256":-100}}),
                true,
                Some("logit_bias"),
            ),
            (
                json!({"messages":u,"functions":[{"name":"f"}]}),
                true,
                Some("functions"),
            ),
            (
                json!({"messages":u,"function_call":"auto"}),
                true,
                Some("function_call"),
            ),
            (
                json!({"messages":u,"audio":{"voice":"x","format":"wav"}}),
                true,
                Some("audio"),
            ),
            (
                json!({"messages":u,"modalities":["text","audio"]}),
                true,
                Some("modalities"),
            ),
            (
                json!({"messages":u,"web_search_options":{}}),
                true,
                Some("web_search_options"),
            ),
            (
                json!({"messages":[{"role":"user","content":[{"type":"video","video":{}}]}]}),
                true,
                Some("messages[0].content[0]"),
            ),
            (
                json!({"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}),
                true,
                Some("messages[0].content[0]"),
            ),
            (
                json!({"messages":[{"role":"function","name":"f","content":"x"}]}),
                true,
                Some("messages[0].role"),
            ),
            (
                json!({"messages":u,"tools":[{"type":"custom","custom":{"name":"x"}}]}),
                true,
                Some("tools[0].type"),
            ),
            (
                json!({"messages":[{"role":"user","content":"x"},
                    {"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
                    {"role":"tool","tool_call_id":"a","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}),
                true,
                Some("messages[2].content[0]"),
            ),
            (
                json!({"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[
                    {"id":"a","type":"function","function":{"name":"f","arguments":"{not json"}}]}]}),
                false,
                Some("messages[1].tool_calls"),
            ),
            (
                json!({"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[
                    {"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}),
                false,
                Some("messages[1].tool_calls"),
            ),
            (
                json!({"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[
                    {"type":"function","function":{"name":"f"}}]}]}),
                false,
                Some("messages[1].tool_calls"),
            ),
            (
                json!({"messages":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"nope","content":"1"}]}),
                false,
                Some("messages[1].tool_call_id"),
            ),
            (
                json!({"messages":[{"role":"tool","content":"x"}]}),
                false,
                Some("messages[0].tool_call_id"),
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
                json!({"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x"}}]}]}),
                false,
                Some("messages[0].content[0]"),
            ),
            (
                json!({"messages":[{"role":"system","content":[{"type":"image_url"}]},{"role":"user","content":"x"}]}),
                false,
                Some("messages[0].content"),
            ),
            (
                json!({"messages":[{"content":"x"}]}),
                false,
                Some("messages[0].role"),
            ),
            (
                json!({"messages":[{"role":"system","content":"only"}]}),
                false,
                Some("messages"),
            ),
            (json!({"messages":[]}), false, Some("messages")),
            (
                json!({"messages":u,"max_tokens":0}),
                false,
                Some("max_tokens"),
            ),
            (
                json!({"messages":u,"max_completion_tokens":"9"}),
                false,
                Some("max_completion_tokens"),
            ),
            (json!({"messages":u,"stop":[1]}), false, Some("stop")),
            (json!({"messages":u,"seed":1.5}), false, Some("seed")),
            (
                json!({"messages":u,"temperature":"hot"}),
                false,
                Some("temperature"),
            ),
            (
                json!({"messages":u,"presence_penalty":"x"}),
                false,
                Some("presence_penalty"),
            ),
            (json!({"messages":u,"stream":"yes"}), false, Some("stream")),
            (
                json!({"messages":u,"tool_choice":"sometimes","tools":tools}),
                false,
                Some("tool_choice"),
            ),
            (
                json!({"messages":u,"tool_choice":"required"}),
                false,
                Some("tool_choice"),
            ),
            (
                json!({"messages":u,"tool_choice":{"type":"function","function":{"name":"f"}}}),
                false,
                Some("tool_choice"),
            ),
            (
                json!({"messages":u,"tools":tools,"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"x","tools":[{"type":"function","function":{"name":"f"}}]}}}),
                false,
                Some("tool_choice"),
            ),
            (
                json!({"messages":u,"tools":[{"type":"function","function":{"name":"f","parameters":"x"}}]}),
                false,
                Some("tools[0].function.parameters"),
            ),
            (
                json!({"messages":u,"tools":[{"type":"function"}]}),
                false,
                Some("tools[0].function"),
            ),
            (json!({"messages":u,"tools":{}}), false, Some("tools")),
            (
                json!({"messages":u,"response_format":{"type":"xml"}}),
                false,
                Some("response_format"),
            ),
            (
                json!({"messages":u,"response_format":{"type":"json_schema","json_schema":{"schema":true}}}),
                false,
                Some("response_format"),
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
            assert_eq!(err.param(), param, "{body}: {err}");
        }
        let err = translate(json!({"messages":u,"n":3}))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.to_string(), "n > 1 is not supported by gemini");
        let no_model = RequestOptions {
            model: "",
            default_max_tokens: 1,
        };
        let err = request(
            Inbound::ChatCompletions,
            Wire::Gemini,
            &json!({"messages":u}),
            &no_model,
        )
        .unwrap_err();
        assert_eq!(err.param(), Some("model"));
    }

    fn embed(body: Value) -> Result<(UpstreamRequest, Value), TranslateError> {
        let r = request(Inbound::Embeddings, Wire::Gemini, &body, &OPTS)?;
        let v = serde_json::from_slice(&r.body).unwrap();
        Ok((r, v))
    }

    #[test]
    fn embeddings_request_table() {
        let opts = RequestOptions {
            model: "gemini-embedding-001",
            default_max_tokens: 1,
        };
        let r = request(
            Inbound::Embeddings,
            Wire::Gemini,
            &json!({"model":"e","input":"hello","encoding_format":"float","user":"u"}),
            &opts,
        )
        .unwrap();
        assert_eq!(
            r.path_suffix,
            "/models/gemini-embedding-001:batchEmbedContents"
        );
        assert!(!r.stream && !r.usage_injected);
        assert_eq!(
            serde_json::from_slice::<Value>(&r.body).unwrap(),
            json!({"requests":[{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"hello"}]}}]})
        );

        let (_, v) =
            embed(json!({"input":["a","b"],"dimensions":768,"encoding_format":"base64"})).unwrap();
        assert_eq!(
            v,
            json!({"requests":[
                {"model":"models/gemini-2.5-flash","content":{"parts":[{"text":"a"}]},"outputDimensionality":768},
                {"model":"models/gemini-2.5-flash","content":{"parts":[{"text":"b"}]},"outputDimensionality":768}]})
        );

        let cases: Vec<(Value, bool, &str)> = vec![
            (json!({"input":[1,2,3]}), true, "input"),
            (json!({"input":[[1,2],[3]]}), true, "input"),
            (json!({"input":[]}), false, "input"),
            (json!({"input":[null]}), false, "input"),
            (json!({}), false, "input"),
            (json!({"input":"x","dimensions":0}), false, "dimensions"),
            (
                json!({"input":"x","encoding_format":"int8"}),
                false,
                "encoding_format",
            ),
        ];
        for (body, unsupported, param) in cases {
            let err = embed(body.clone()).map(|_| ()).unwrap_err();
            assert_eq!(
                matches!(err, TranslateError::Unsupported { .. }),
                unsupported,
                "{body}: {err}"
            );
            assert_eq!(err.param(), Some(param), "{body}");
        }
        let err = embed(json!({"input":[1]})).map(|_| ()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gemini embeddings take text only; token-array input is not supported"
        );
    }

    fn respond(body: &[u8]) -> (Value, Usage) {
        let (out, usage) = response(Inbound::ChatCompletions, Wire::Gemini, body, 1_700_000_000)
            .unwrap_or_else(|e| panic!("{e}"));
        (serde_json::from_slice(&out).unwrap(), usage)
    }

    #[test]
    fn response_text_exact() {
        let body = br#"{"candidates":[{"content":{"parts":[{"text":"Hello"},{"text":"thinking...","thought":true},{"text":" there"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":6,"totalTokenCount":48,"cachedContentTokenCount":8,"thoughtsTokenCount":30,"promptTokensDetails":[{"modality":"TEXT","tokenCount":12}]},"modelVersion":"gemini-2.5-flash","responseId":"Zq9CaK3FO9-rnvgPpJGgqQs"}"#;
        let (out, usage) =
            response(Inbound::ChatCompletions, Wire::Gemini, body, 1_700_000_000).unwrap();
        assert_eq!(
            usage,
            Usage {
                input_tokens: 12,
                output_tokens: 36
            }
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":"Zq9CaK3FO9-rnvgPpJGgqQs","object":"chat.completion","created":1700000000,"model":"gemini-2.5-flash","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":12,"completion_tokens":36,"total_tokens":48,"prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":30}}}"#
        );
    }

    #[test]
    fn response_tool_calls() {
        let body = br#"{"candidates":[{"content":{"parts":[{"text":"Checking."},{"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"CiQB+/9="},{"functionCall":{"name":"get_time"}}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":50,"candidatesTokenCount":20,"totalTokenCount":70},"modelVersion":"gemini-3-pro-preview","responseId":"abc-DEF_123"}"#;
        let (v, usage) = respond(body);
        assert_eq!(
            usage,
            Usage {
                input_tokens: 50,
                output_tokens: 20
            }
        );
        assert_eq!(
            v["choices"],
            json!([{"index":0,"message":{"role":"assistant","content":"Checking.","tool_calls":[
                {"id":"call_abcDEF123_0__thought__CiQB-_9","type":"function",
                 "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"call_abcDEF123_1","type":"function",
                 "function":{"name":"get_time","arguments":"{}"}}]},
                "finish_reason":"tool_calls","logprobs":null}])
        );
        // The ids round-trip: the next request carries the signature back.
        let call = v["choices"][0]["message"]["tool_calls"][0].clone();
        let (_, req) = translate(json!({"messages":[
            {"role":"user","content":"x"},
            {"role":"assistant","content":null,"tool_calls":[call]},
            {"role":"tool","tool_call_id":"call_abcDEF123_0__thought__CiQB-_9","content":"{\"t\":18}"}]}))
        .unwrap();
        assert_eq!(
            req["contents"][1],
            json!({"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"CiQB+/9="}]})
        );
        assert_eq!(
            req["contents"][2],
            json!({"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"t":18}}}]})
        );
    }

    #[test]
    fn response_finish_reasons_and_edge_cases() {
        for (reason, finish) in [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("SPII", "content_filter"),
            ("MALFORMED_FUNCTION_CALL", "stop"),
            ("OTHER", "stop"),
            ("FINISH_REASON_UNSPECIFIED", "stop"),
        ] {
            let body = json!({"candidates":[{"content":{"parts":[{"text":"x"}],"role":"model"},"finishReason":reason}],"modelVersion":"m"});
            let (v, _) = respond(body.to_string().as_bytes());
            assert_eq!(v["choices"][0]["finish_reason"], finish, "{reason}");
        }

        // A candidate with no content (e.g. all budget spent thinking).
        let (v, usage) = respond(br#"{"candidates":[{"finishReason":"MAX_TOKENS","index":0}],"usageMetadata":{"promptTokenCount":5,"totalTokenCount":105,"thoughtsTokenCount":100},"modelVersion":"gemini-2.5-pro","responseId":"r1"}"#);
        assert_eq!(
            v["choices"],
            json!([{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"length","logprobs":null}])
        );
        assert_eq!(usage.output_tokens, 100);

        // A blocked prompt: no candidates, promptFeedback.blockReason.
        let blocked = br#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9},"modelVersion":"gemini-2.5-flash","responseId":"b1"}"#;
        let (v, usage) = respond(blocked);
        assert_eq!(
            v,
            json!({"id":"b1","object":"chat.completion","created":1_700_000_000u64,"model":"gemini-2.5-flash",
                "choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"content_filter","logprobs":null}],
                "usage":{"prompt_tokens":9,"completion_tokens":0,"total_tokens":9,
                         "prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}})
        );
        assert_eq!(usage.input_tokens, 9);

        // No responseId: a deterministic id from the body.
        let anon =
            br#"{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"STOP"}]}"#;
        let (a, _) = respond(anon);
        let (b, _) = respond(anon);
        assert_eq!(a["id"], b["id"]);
        let id = a["id"].as_str().unwrap();
        assert!(
            id.starts_with("chatcmpl-gemini-") && id.len() == 16 + 24,
            "{id}"
        );
        assert_eq!(a["model"], "");

        // Several candidates become several choices.
        let (v, _) = respond(br#"{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"STOP"},{"content":{"parts":[{"text":"b"}]},"finishReason":"MAX_TOKENS","index":1}]}"#);
        assert_eq!(v["choices"][1]["index"], 1);
        assert_eq!(v["choices"][1]["message"]["content"], "b");
        assert_eq!(v["choices"][1]["finish_reason"], "length");

        for bad in [
            &b"not json"[..],
            br#"{"error":{"code":500,"message":"Internal error encountered.","status":"INTERNAL"}}"#,
            br#"[{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}]"#,
            br#"{"candidates":[]}"#,
            br#"{}"#,
            br#"[1]"#,
        ] {
            assert!(
                matches!(
                    response(Inbound::ChatCompletions, Wire::Gemini, bad, 0),
                    Err(TranslateError::BadUpstream(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn embeddings_response_table() {
        let body = br#"{"embeddings":[{"values":[0.1,-0.2,0.3]},{"values":[0.5,0.25,-1]}]}"#;
        let (out, usage) = response(Inbound::Embeddings, Wire::Gemini, body, 0).unwrap();
        assert_eq!(usage, Usage::default());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2,0.3]},{"object":"embedding","index":1,"embedding":[0.5,0.25,-1]}],"model":"","usage":{"prompt_tokens":0,"total_tokens":0}}"#
        );
        let single = br#"{"embedding":{"values":[1.0]},"usageMetadata":{"promptTokenCount":3}}"#;
        let (out, usage) = response(Inbound::Embeddings, Wire::Gemini, single, 0).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["data"],
            json!([{"object":"embedding","index":0,"embedding":[1.0]}])
        );
        assert_eq!(v["usage"], json!({"prompt_tokens":3,"total_tokens":3}));
        assert_eq!(usage.input_tokens, 3);
        for bad in [
            &br#"{"embeddings":[{"value":[1]}]}"#[..],
            br#"{"embeddings":{}}"#,
            br#"{"error":{"code":400,"message":"x","status":"INVALID_ARGUMENT"}}"#,
            b"nope",
        ] {
            assert!(matches!(
                response(Inbound::Embeddings, Wire::Gemini, bad, 0),
                Err(TranslateError::BadUpstream(_))
            ));
        }
    }

    // Shape as sent by streamGenerateContent?alt=sse: one whole
    // GenerateContentResponse per event, CRLF framing, usage on every chunk
    // (complete on the last), finishReason on the last.
    const TEXT_STREAM: &str = concat!(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 10,\"totalTokenCount\": 10,\"promptTokensDetails\": [{\"modality\": \"TEXT\",\"tokenCount\": 10}]},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"ibRCaOfLGfuQ1PIPqNma8Aw\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"! ¿Qué tal? 👋\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 10,\"totalTokenCount\": 10},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"ibRCaOfLGfuQ1PIPqNma8Aw\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 10,\"candidatesTokenCount\": 5,\"totalTokenCount\": 27,\"cachedContentTokenCount\": 4,\"thoughtsTokenCount\": 12},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"ibRCaOfLGfuQ1PIPqNma8Aw\"}\r\n\r\n",
    );

    const TOOL_STREAM: &str = concat!(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"**Planning**\",\"thought\": true},{\"text\": \"Checking.\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 72,\"totalTokenCount\": 72},\"modelVersion\": \"gemini-3-pro-preview\",\"responseId\": \"tool-resp-1\"}\n\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"get_weather\",\"args\": {\"city\": \"Paris\"}},\"thoughtSignature\": \"CiQB/w==\"},{\"functionCall\": {\"name\": \"get_time\",\"args\": {}}}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 72,\"totalTokenCount\": 72},\"modelVersion\": \"gemini-3-pro-preview\",\"responseId\": \"tool-resp-1\"}\n\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 72,\"candidatesTokenCount\": 31,\"totalTokenCount\": 103},\"modelVersion\": \"gemini-3-pro-preview\",\"responseId\": \"tool-resp-1\"}\n\n",
    );

    fn make(wants_usage: bool) -> impl Fn() -> Box<dyn StreamTranslator + Send> {
        move || {
            stream(
                Inbound::ChatCompletions,
                Wire::Gemini,
                wants_usage,
                1_700_000_000,
            )
        }
    }

    const CHUNK_HEAD: &str = "{\"id\":\"ibRCaOfLGfuQ1PIPqNma8Aw\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gemini-2.5-flash\"";

    fn error_event(message: &str) -> String {
        format!(
            "data: {{\"error\":{{\"message\":\"{message}\",\"type\":\"upstream_error\",\"code\":\"stream_interrupted\",\"param\":null}}}}\n\n"
        )
    }

    #[test]
    fn stream_text_exact() {
        let r = run_all_splits(&make(true), TEXT_STREAM.as_bytes());
        let h = CHUNK_HEAD;
        let expected = [
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"Hello\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"! ¿Qué tal? 👋\"}},\"finish_reason\":null,\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\",\"logprobs\":null}}]}}\n\n"),
            format!("data: {h},\"choices\":[],\"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":17,\"total_tokens\":27,\"prompt_tokens_details\":{{\"cached_tokens\":4}},\"completion_tokens_details\":{{\"reasoning_tokens\":12}}}}}}\n\n"),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        assert_eq!(r.out_str(), expected);
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 10,
                output_tokens: 17
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
                input_tokens: 72,
                output_tokens: 31
            }
        );
        assert!(r.first_token);
        assert_eq!(r.datas().last().map(String::as_str), Some("[DONE]"));
        let deltas: Vec<Value> = r
            .jsons()
            .iter()
            .map(|c| {
                assert_eq!(c["object"], "chat.completion.chunk");
                assert_eq!(c["id"], "tool-resp-1");
                assert_eq!(c["model"], "gemini-3-pro-preview");
                json!([c["choices"][0]["delta"], c["choices"][0]["finish_reason"]])
            })
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!([{"role":"assistant","content":""}, null]),
                json!([{"content":"Checking."}, null]),
                json!([{"tool_calls":[{"index":0,"id":"call_toolresp1_0__thought__CiQB_w","type":"function",
                    "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}, null]),
                json!([{"tool_calls":[{"index":1,"id":"call_toolresp1_1","type":"function",
                    "function":{"name":"get_time","arguments":"{}"}}]}, null]),
                json!([{}, "tool_calls"]),
            ]
        );
    }

    #[test]
    fn stream_finish_reason_before_last_chunk() {
        // Older models mark intermediate chunks STOP; the last reason wins and
        // content after it is still delivered.
        let input = concat!(
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"a\"}],\"role\": \"model\"},\"finishReason\": \"STOP\"}]}\n\n",
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"b\"}],\"role\": \"model\"}}]}\n\n",
            "data: {\"candidates\": [{\"finishReason\": \"MAX_TOKENS\"}],\"usageMetadata\": {\"promptTokenCount\": 3,\"candidatesTokenCount\": 2,\"totalTokenCount\": 5}}\n\n",
        );
        let r = run_all_splits(&make(true), input.as_bytes());
        assert_eq!(r.outcome, StreamOutcome::Complete);
        let chunks = r.jsons();
        let contents: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0))
            .map(|c| &c["delta"])
            .collect();
        assert_eq!(
            contents,
            vec![
                &json!({"role":"assistant","content":""}),
                &json!({"content":"a"}),
                &json!({"content":"b"}),
                &json!({})
            ]
        );
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "length");
        // No responseId: one deterministic id for every chunk.
        let id = chunks[0]["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-gemini-"));
        assert!(chunks.iter().all(|c| c["id"] == id));
        assert_eq!(chunks[4]["usage"]["total_tokens"], 5);
    }

    #[test]
    fn stream_blocked_prompt() {
        let input = "data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\",\"safetyRatings\": []},\"usageMetadata\": {\"promptTokenCount\": 8,\"totalTokenCount\": 8},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"blk\"}\r\n\r\n";
        let r = run_all_splits(&make(false), input.as_bytes());
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert!(!r.first_token);
        assert_eq!(r.usage.input_tokens, 8);
        let chunks = r.jsons();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(r.datas().last().map(String::as_str), Some("[DONE]"));
    }

    #[test]
    fn stream_truncated() {
        let cut = TEXT_STREAM.rfind("data: ").unwrap();
        let r = run_all_splits(&make(true), &TEXT_STREAM.as_bytes()[..cut]);
        assert!(
            r.out_str()
                .ends_with(&error_event("upstream stream ended before completion"))
        );
        assert_eq!(r.out_str().matches("\"error\"").count(), 1);
        assert!(!r.out_str().contains("[DONE]"));
        assert_eq!(
            r.outcome,
            StreamOutcome::Failed("upstream stream ended without a finishReason".to_owned())
        );
        assert_eq!(r.usage.input_tokens, 10);
        assert!(r.first_token);

        // Any cut before the final event's JSON is complete fails with
        // exactly one error event (an unterminated last event is flushed).
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

        let r = run_all_splits(&make(true), b"");
        assert_eq!(
            r.out_str(),
            error_event("upstream stream ended before completion")
        );
    }

    #[test]
    fn stream_corrupted_event() {
        let bad = TEXT_STREAM.replacen("\"role\": \"model\"}", "\"role\": \"model\"", 2);
        let r = run_all_splits(&make(true), bad.as_bytes());
        assert!(
            r.out_str()
                .ends_with(&error_event("upstream sent an unparsable stream event"))
        );
        assert_eq!(r.out_str().matches("\"error\":").count(), 1);
        assert!(
            matches!(r.outcome, StreamOutcome::Failed(ref s) if s.starts_with("unparsable upstream event"))
        );
        for junk in ["data: 42\n\n", "data: [1]\n\n", "data: {not json\n\n"] {
            let r = run_all_splits(&make(false), junk.as_bytes());
            assert_eq!(
                r.out_str(),
                error_event("upstream sent an unparsable stream event"),
                "{junk}"
            );
        }
    }

    #[test]
    fn stream_upstream_error_event() {
        let cut = TEXT_STREAM.rfind("data: ").unwrap();
        let input = format!(
            "{}data: {{\"error\": {{\"code\": 503,\"message\": \"The model is overloaded. Please try again later.\",\"status\": \"UNAVAILABLE\"}}}}\r\n\r\n{}",
            &TEXT_STREAM[..cut],
            &TEXT_STREAM[cut..]
        );
        let r = run_all_splits(&make(true), input.as_bytes());
        assert_eq!(r.datas().len(), 4);
        assert!(r.out_str().ends_with(&error_event(
            "The model is overloaded. Please try again later."
        )));
        assert_eq!(
            r.outcome,
            StreamOutcome::Failed(
                "upstream error event: UNAVAILABLE: The model is overloaded. Please try again later."
                    .to_owned()
            )
        );
        assert!(r.first_token);

        // The array-wrapped form, as the very first event.
        let input = "data: [{\"error\": {\"code\": 500,\"message\": \"Internal error encountered.\",\"status\": \"INTERNAL\"}}]\n\n";
        let r = run_all_splits(&make(true), input.as_bytes());
        assert_eq!(r.out_str(), error_event("Internal error encountered."));
        assert!(!r.first_token);
        assert!(matches!(r.outcome, StreamOutcome::Failed(_)));
    }

    #[test]
    fn stream_oversized_event_fails_once() {
        let mut t = crate::translate::gemini::from_openai::GeminiStream::new(false, 0);
        t.splitter = crate::translate::sse::SseSplitter::with_limit(64);
        let mut out = Vec::new();
        t.feed(
            b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"",
            &mut out,
        );
        t.feed(&[b'x'; 100], &mut out);
        t.feed(b"\"}]}}]}\n\n", &mut out);
        assert!(matches!(t.finish(&mut out), StreamOutcome::Failed(_)));
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, error_event("upstream sent an oversized stream event"));
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
            let errors = whole.out_str().matches("\"stream_interrupted\"").count();
            assert!(errors <= 1);
            assert_eq!(
                matches!(whole.outcome, StreamOutcome::Failed(_)),
                errors == 1
            );
            let mid = rng.below(bytes.len() as u64) as usize;
            let (a, b) = bytes.split_at(mid);
            assert_eq!(run(&make(true), &[a, b]), whole);
        }
    }

    #[test]
    fn random_requests_never_panic() {
        let mut rng = Rng(0xC0FF_EE00_1234_5678);
        for _ in 0..3000 {
            let mut v = rng.json(5);
            // Bias toward chat-shaped bodies so the message paths are hit.
            if rng.below(2) == 0 {
                v = json!({"messages": [rng.json(3), rng.json(3)], "tools": rng.json(2),
                           "tool_choice": rng.json(1)});
            }
            for inbound in [Inbound::ChatCompletions, Inbound::Embeddings] {
                let _ = request(inbound, Wire::Gemini, &v, &OPTS);
            }
        }
    }
}
