//! Request/response translation between the client-facing OpenAI API and the
//! provider wire formats (OpenAI-compatible, Anthropic Messages and Gemini).
//!
//! The module is pure: no I/O, no clock, no randomness. Callers pass in the
//! already-parsed request body, timestamps and flags, and get bytes back.
//! Every entry point dispatches on the provider [`Wire`]; the client side is
//! always OpenAI-shaped (chat completions or embeddings).

pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod embeddings;
pub mod gemini;
#[cfg(test)]
mod golden;
pub mod images;
pub mod inbound_anthropic;
pub mod openai;
pub(crate) mod openai_shapes;
pub mod sse;

use serde::Serialize;

/// Which OpenAI endpoint the client called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    ChatCompletions,
    Embeddings,
    /// `/v1/images/generations`: OpenAI-wire providers only, forwarded with the model swapped.
    Images,
}

/// The provider's wire protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
    Cohere,
}

/// Token counts for one exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Per-request values the translator needs but cannot know itself.
#[derive(Clone, Copy, Debug)]
pub struct RequestOptions<'a> {
    /// The provider-side model name that replaces the client's `model`.
    pub model: &'a str,
    /// Used when the provider requires `max_tokens` and the client sent none.
    pub default_max_tokens: u64,
}

/// What to send upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// Appended to the provider's base URL, e.g. `/chat/completions` or, where the model is
    /// part of the path, `/models/gemini-2.5-flash:generateContent`.
    pub path_suffix: String,
    pub body: Vec<u8>,
    pub stream: bool,
    /// True when the translator added `stream_options.include_usage` itself,
    /// so the usage-only chunk must be hidden from the client.
    pub usage_injected: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// Valid request that the target provider cannot serve.
    #[error("{what}")]
    Unsupported { what: String, param: Option<String> },
    /// Malformed client request.
    #[error("{message}")]
    Invalid {
        message: String,
        param: Option<String>,
    },
    /// The provider answered 2xx with something we cannot understand.
    #[error("invalid upstream response: {0}")]
    BadUpstream(String),
}

impl TranslateError {
    pub(crate) fn invalid(message: impl Into<String>, param: Option<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            param,
        }
    }

    pub(crate) fn unsupported(what: impl Into<String>, param: Option<String>) -> Self {
        Self::Unsupported {
            what: what.into(),
            param,
        }
    }

    /// The offending request parameter, if known.
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::Unsupported { param, .. } | Self::Invalid { param, .. } => param.as_deref(),
            Self::BadUpstream(_) => None,
        }
    }
}

/// A provider's error, reduced to what the client needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderError {
    pub message: String,
    pub kind: String,
}

/// How a response stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamOutcome {
    Complete,
    Failed(String),
}

/// Translates one streamed response, chunk by chunk.
pub trait StreamTranslator {
    /// Feed one chunk as it arrived (arbitrary boundaries). Appends bytes for
    /// the client to `out`; only complete SSE events are ever emitted.
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>);
    /// Upstream body ended. Appends whatever must close the stream. An
    /// incomplete, corrupted or upstream-errored stream yields exactly one
    /// client-dialect error event overall and `StreamOutcome::Failed`.
    fn finish(&mut self, out: &mut Vec<u8>) -> StreamOutcome;
    fn usage(&self) -> Usage;
    /// True once any content/tool-call token has been emitted to the client.
    fn first_token_seen(&self) -> bool;
}

/// Request: `body` is the client's JSON already parsed once by the caller.
pub fn request(
    inbound: Inbound,
    wire: Wire,
    body: &serde_json::Value,
    opts: &RequestOptions,
) -> Result<UpstreamRequest, TranslateError> {
    if inbound == Inbound::Images {
        return images::request(wire, body, opts);
    }
    match wire {
        Wire::OpenAi => openai::from_openai::request(inbound, body, opts),
        Wire::Anthropic => anthropic::from_openai::request(inbound, body, opts),
        Wire::Gemini => gemini::from_openai::request(inbound, body, opts),
        Wire::Bedrock => bedrock::from_openai::request(inbound, body, opts),
        Wire::Cohere => cohere::from_openai::request(inbound, body, opts),
    }
}

/// Non-streamed 2xx response body from the provider -> body for the client
/// (OpenAI shape) + usage. `created` is unix seconds supplied by the caller.
pub fn response(
    inbound: Inbound,
    wire: Wire,
    body: &[u8],
    created: u64,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    if inbound == Inbound::Images {
        return images::response(body);
    }
    match wire {
        Wire::OpenAi => openai::from_openai::response(inbound, body),
        Wire::Anthropic => anthropic::from_openai::response(inbound, body, created),
        Wire::Gemini => gemini::from_openai::response(inbound, body, created),
        Wire::Bedrock => bedrock::from_openai::response(inbound, body, created),
        Wire::Cohere => cohere::from_openai::response(inbound, body, created),
    }
}

/// Provider error body (any status >= 400) -> the provider's human message
/// (fallback: a generic message with the status) and error type string.
pub fn provider_error(wire: Wire, status: u16, body: &[u8]) -> ProviderError {
    let parsed = match wire {
        Wire::OpenAi => openai::provider_error(body),
        Wire::Anthropic => anthropic::provider_error(body),
        Wire::Gemini => gemini::provider_error(body),
        Wire::Bedrock => bedrock::provider_error(body),
        Wire::Cohere => cohere::provider_error(status, body),
    };
    let (message, kind) = parsed.unwrap_or((None, None));
    ProviderError {
        message: message
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("upstream provider returned HTTP {status}")),
        kind: kind
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| kind_for_status(status).to_owned()),
    }
}

/// Streaming translator for one response stream. `client_wants_usage` is
/// whether the client itself asked for `stream_options.include_usage`.
pub fn stream(
    inbound: Inbound,
    wire: Wire,
    client_wants_usage: bool,
    created: u64,
) -> Box<dyn StreamTranslator + Send> {
    // Both wires answer in the OpenAI dialect; embeddings never stream, so
    // `inbound` does not change how a stream is read.
    let _ = inbound;
    match wire {
        Wire::OpenAi => Box::new(openai::from_openai::OpenAiStream::new(client_wants_usage)),
        Wire::Anthropic => Box::new(anthropic::from_openai::AnthropicStream::new(
            client_wants_usage,
            created,
        )),
        Wire::Gemini => Box::new(gemini::from_openai::GeminiStream::new(
            client_wants_usage,
            created,
        )),
        Wire::Bedrock => Box::new(bedrock::from_openai::BedrockStream::new(
            client_wants_usage,
            created,
        )),
        Wire::Cohere => Box::new(cohere::from_openai::CohereStream::new(
            client_wants_usage,
            created,
        )),
    }
}

fn kind_for_status(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

#[derive(Serialize)]
struct StreamErrorEnvelope<'a> {
    error: StreamErrorBody<'a>,
}

#[derive(Serialize)]
struct StreamErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'static str,
    param: Option<&'a str>,
}

/// Appends `data: <json>\n\n`.
pub(crate) fn write_data_event<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    // Serialising our own plain structs cannot fail; if it somehow did, writing
    // nothing keeps the stream well-formed.
    if let Ok(json) = serde_json::to_vec(value) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
    }
}

/// The one OpenAI-dialect error event sent when a stream breaks. No `[DONE]`
/// follows it: the official SDKs raise on a chunk carrying `error`.
pub(crate) fn write_openai_stream_error(out: &mut Vec<u8>, message: &str) {
    write_data_event(
        out,
        &StreamErrorEnvelope {
            error: StreamErrorBody {
                message,
                kind: "upstream_error",
                code: "stream_interrupted",
                param: None,
            },
        },
    );
}

/// `v[key]` as u64, 0 when absent or not a non-negative integer.
pub(crate) fn u64_at(v: &serde_json::Value, key: &str) -> u64 {
    v.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0)
}

/// One function tool of an OpenAI `tools` array.
pub(crate) struct FunctionTool<'a> {
    /// Its position in `tools`, for error params.
    pub index: usize,
    /// The `function` object.
    pub function: &'a serde_json::Value,
    pub name: &'a str,
}

/// An OpenAI `tools` array checked the same way for every provider translator: an array of
/// `{type: "function", function: {name, ...}}`; `None` when absent, null or empty. Other tool
/// types are refused as not supported by `provider`.
pub(crate) fn function_tools<'a>(
    tools: Option<&'a serde_json::Value>,
    provider: &str,
) -> Result<Option<Vec<FunctionTool<'a>>>, TranslateError> {
    use serde_json::Value;
    let items = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) if items.is_empty() => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(TranslateError::invalid(
                "tools must be an array",
                Some("tools".into()),
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (index, tool) in items.iter().enumerate() {
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function");
        if kind != "function" {
            return Err(TranslateError::unsupported(
                format!("tool type '{kind}' is not supported by {provider}"),
                Some(format!("tools[{index}].type")),
            ));
        }
        let function = tool
            .get("function")
            .filter(|f| f.is_object())
            .ok_or_else(|| {
                TranslateError::invalid(
                    "tool is missing its function object",
                    Some(format!("tools[{index}].function")),
                )
            })?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                TranslateError::invalid(
                    "tool function is missing its name",
                    Some(format!("tools[{index}].function.name")),
                )
            })?;
        out.push(FunctionTool {
            index,
            function,
            name,
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    pub struct Run {
        pub out: Vec<u8>,
        pub outcome: StreamOutcome,
        pub usage: Usage,
        pub first_token: bool,
    }

    impl Run {
        pub fn out_str(&self) -> String {
            String::from_utf8(self.out.clone()).unwrap()
        }

        /// The `data:` payloads of the output, in order.
        pub fn datas(&self) -> Vec<String> {
            let mut s = sse::SseSplitter::new();
            let mut ev = Vec::new();
            s.feed(&self.out, &mut ev).unwrap();
            s.finish(&mut ev).unwrap();
            ev.into_iter().map(|e| e.data).collect()
        }

        pub fn jsons(&self) -> Vec<serde_json::Value> {
            self.datas()
                .iter()
                .filter(|d| d.as_str() != "[DONE]")
                .map(|d| serde_json::from_str(d).unwrap())
                .collect()
        }
    }

    pub type Make<'a> = &'a dyn Fn() -> Box<dyn StreamTranslator + Send>;

    pub fn run(make: Make, chunks: &[&[u8]]) -> Run {
        let mut t = make();
        let mut out = Vec::new();
        for c in chunks {
            t.feed(c, &mut out);
        }
        let outcome = t.finish(&mut out);
        Run {
            out,
            outcome,
            usage: t.usage(),
            first_token: t.first_token_seen(),
        }
    }

    /// Feeds `input` whole, split at every offset, and byte by byte, and
    /// asserts every way gives the same result.
    pub fn run_all_splits(make: Make, input: &[u8]) -> Run {
        let whole = run(make, &[input]);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(run(make, &[a, b]), whole, "split at byte {i}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(make, &bytes), whole, "byte by byte");
        whole
    }

    /// Tiny deterministic xorshift generator for fuzz-style tests.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        pub fn below(&mut self, n: u64) -> u64 {
            if n == 0 { 0 } else { self.next() % n }
        }

        pub fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }

        /// Random JSON value of bounded depth, biased toward API-ish keys.
        pub fn json(&mut self, depth: u32) -> serde_json::Value {
            use serde_json::{Value, json};
            const KEYS: &[&str] = &[
                "model",
                "messages",
                "role",
                "content",
                "type",
                "text",
                "image_url",
                "url",
                "tool_calls",
                "function",
                "name",
                "arguments",
                "tools",
                "tool_choice",
                "stop",
                "max_tokens",
                "n",
                "stream",
                "stream_options",
                "include_usage",
                "user",
                "system",
                "tool_call_id",
                "parameters",
                "response_format",
                "logprobs",
                "usage",
                "error",
                "message",
                "choices",
                "delta",
                "input",
                "id",
            ];
            const STRS: &[&str] = &[
                "user",
                "assistant",
                "system",
                "tool",
                "developer",
                "text",
                "image_url",
                "function",
                "auto",
                "required",
                "none",
                "data:image/png;base64,AAA",
                "data:x",
                "https://x/y.png",
                "{\"a\":1}",
                "{bad",
                "",
                "json_object",
                "tool_use",
            ];
            let pick = if depth == 0 {
                self.below(4)
            } else {
                self.below(7)
            };
            match pick {
                0 => Value::Null,
                1 => Value::Bool(self.below(2) == 1),
                2 => json!(self.below(5) as i64 - 1),
                3 => Value::String(STRS[self.below(STRS.len() as u64) as usize].to_owned()),
                4 => Value::Array((0..self.below(4)).map(|_| self.json(depth - 1)).collect()),
                _ => {
                    let mut m = serde_json::Map::new();
                    for _ in 0..self.below(6) {
                        let k = KEYS[self.below(KEYS.len() as u64) as usize];
                        m.insert(k.to_owned(), self.json(depth - 1));
                    }
                    Value::Object(m)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    const WIRES: [Wire; 5] = [
        Wire::OpenAi,
        Wire::Anthropic,
        Wire::Gemini,
        Wire::Bedrock,
        Wire::Cohere,
    ];
    const INBOUNDS: [Inbound; 2] = [Inbound::ChatCompletions, Inbound::Embeddings];

    #[test]
    fn stream_error_event_is_exact() {
        let mut out = Vec::new();
        write_openai_stream_error(&mut out, "boom \"x\"");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: {\"error\":{\"message\":\"boom \\\"x\\\"\",\"type\":\"upstream_error\",\"code\":\"stream_interrupted\",\"param\":null}}\n\n"
        );
    }

    #[test]
    fn provider_error_fallbacks() {
        for wire in WIRES {
            let e = provider_error(wire, 502, b"<html>bad gateway</html>");
            assert_eq!(e.message, "upstream provider returned HTTP 502");
            assert_eq!(e.kind, "api_error");
            let e = provider_error(wire, 429, b"");
            assert_eq!(e.kind, "rate_limit_error");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let opts = RequestOptions {
            model: "m",
            default_max_tokens: 16,
        };
        for _ in 0..3000 {
            let v = rng.json(5);
            for wire in WIRES {
                for inbound in INBOUNDS {
                    let _ = request(inbound, wire, &v, &opts);
                    let bytes = serde_json::to_vec(&v).unwrap();
                    let _ = response(inbound, wire, &bytes, 1);
                    let _ = provider_error(wire, 400, &bytes);
                }
            }
        }
        for round in 0..400 {
            let len = rng.below(300) as usize;
            let mut data = rng.bytes(len);
            // Sprinkle SSE structure so the parsers get past the splitter.
            if round % 2 == 0 {
                for b in data.iter_mut() {
                    match rng.below(10) {
                        0 => *b = b'\n',
                        1 => *b = b':',
                        2 => *b = b'{',
                        _ => {}
                    }
                }
                data.splice(0..0, b"data: ".iter().copied());
            }
            for wire in WIRES {
                for inbound in INBOUNDS {
                    let _ = response(inbound, wire, &data, 1);
                    let _ = provider_error(wire, 500, &data);
                    for wants in [false, true] {
                        let mut t = stream(inbound, wire, wants, 1);
                        let mut out = Vec::new();
                        let mut rest = data.as_slice();
                        while !rest.is_empty() {
                            let n = (rng.below(17) as usize + 1).min(rest.len());
                            let (a, b) = rest.split_at(n);
                            t.feed(a, &mut out);
                            rest = b;
                        }
                        let _ = t.finish(&mut out);
                        let _ = t.finish(&mut out);
                        let _ = (t.usage(), t.first_token_seen());
                    }
                }
            }
        }
    }
}
