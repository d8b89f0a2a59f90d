//! OpenAI client -> OpenAI(-compatible) provider.
//!
//! Requests only get the model swapped (and `include_usage` forced on for
//! streams, so the gateway can count tokens). Non-streamed responses are
//! passed through byte-for-byte; streams are forwarded event-for-event, minus
//! the usage-only chunk when the client never asked for it.
//!
//! Compatible servers differ in where streamed usage goes (see the tests for
//! real samples): OpenAI, Ollama, vLLM and Groq send a usage-only chunk
//! (`choices: []`) when asked; Mistral, Together and DeepSeek put `usage` on the
//! final content/finish chunk; vLLM's `continuous_usage_stats` puts it on every
//! chunk; Groq also reports `x_groq.usage` on its finish chunk. A client that
//! did not ask for usage never sees a `usage` member: usage-only chunks are
//! dropped and other chunks lose just that member (the rest of their bytes,
//! member order included, is kept). Vendor extensions such as `x_groq` pass
//! untouched, as the provider would send them to the client directly.

use super::usage_from;
use crate::translate::sse::{SseEvent, SseSplitter};
use crate::translate::{
    Inbound, RequestOptions, StreamOutcome, StreamTranslator, TranslateError, UpstreamRequest,
    Usage, write_openai_stream_error,
};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

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
    let mut obj = obj.clone();
    obj.insert("model".to_owned(), Value::String(opts.model.to_owned()));
    let (path_suffix, stream, usage_injected) = match inbound {
        Inbound::Embeddings => ("/embeddings", false, false),
        Inbound::Images => ("/images/generations", false, false),
        Inbound::ChatCompletions => {
            let stream = obj.get("stream").and_then(Value::as_bool) == Some(true);
            let client_wants = obj
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                == Some(true);
            let inject = stream && !client_wants;
            if inject {
                let so = obj
                    .entry("stream_options")
                    .or_insert_with(|| Value::Object(Map::new()));
                if !so.is_object() {
                    *so = Value::Object(Map::new());
                }
                if let Value::Object(m) = so {
                    m.insert("include_usage".to_owned(), Value::Bool(true));
                    // vLLM: `continuous_usage_stats` only acts together with
                    // include_usage, which this client did not ask for; keep it
                    // off so usage is not put on every chunk (it would be
                    // stripped again, at the cost of rewriting each chunk).
                    if m.get("continuous_usage_stats") == Some(&Value::Bool(true)) {
                        m.insert("continuous_usage_stats".to_owned(), Value::Bool(false));
                    }
                }
            }
            ("/chat/completions", stream, inject)
        }
    };
    let body = serde_json::to_vec(&Value::Object(obj))
        .map_err(|e| TranslateError::invalid(format!("cannot serialise request: {e}"), None))?;
    Ok(UpstreamRequest {
        path_suffix: path_suffix.to_owned(),
        body,
        stream,
        usage_injected,
    })
}

pub(crate) fn response(inbound: Inbound, body: &[u8]) -> Result<(Vec<u8>, Usage), TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadUpstream(format!("provider sent invalid JSON: {e}")))?;
    if !v.is_object() {
        return Err(TranslateError::BadUpstream(
            "provider response is not a JSON object".to_owned(),
        ));
    }
    let mut usage = v.get("usage").and_then(usage_from).unwrap_or_default();
    if inbound == Inbound::Embeddings {
        usage.output_tokens = 0;
    }
    Ok((body.to_vec(), usage))
}

/// Pass-through stream translator for OpenAI-compatible providers.
pub struct OpenAiStream {
    splitter: SseSplitter,
    events: Vec<SseEvent>,
    client_wants_usage: bool,
    usage: Usage,
    first_token: bool,
    done: bool,
    failed: Option<String>,
}

impl OpenAiStream {
    pub fn new(client_wants_usage: bool) -> Self {
        Self {
            splitter: SseSplitter::new(),
            events: Vec::new(),
            client_wants_usage,
            usage: Usage::default(),
            first_token: false,
            done: false,
            failed: None,
        }
    }

    fn fail(&mut self, reason: String, client_message: &str, out: &mut Vec<u8>) {
        write_openai_stream_error(out, client_message);
        self.failed = Some(reason);
    }

    fn drain_events(&mut self, out: &mut Vec<u8>) {
        let events = std::mem::take(&mut self.events);
        for ev in events {
            if self.failed.is_some() || self.done {
                break;
            }
            self.handle(ev, out);
        }
    }

    fn handle(&mut self, ev: SseEvent, out: &mut Vec<u8>) {
        let data = ev.data.trim();
        if data.is_empty() {
            return;
        }
        if data == "[DONE]" {
            self.done = true;
            out.extend_from_slice(&ev.raw);
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
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            let message = match err {
                Value::String(s) => s.clone(),
                _ => err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream stream error")
                    .to_owned(),
            };
            return self.fail(format!("upstream error event: {message}"), &message, out);
        }
        if ev.event.as_deref() == Some("error") {
            return self.fail(
                format!("upstream error event: {data}"),
                "upstream stream error",
                out,
            );
        }
        let usage = v
            .get("usage")
            .filter(|u| !u.is_null())
            .or_else(|| v.get("x_groq").and_then(|g| g.get("usage")))
            .and_then(usage_from);
        if let Some(u) = usage {
            self.usage = u;
        }
        let choices = v.get("choices").and_then(Value::as_array);
        if choices.is_some_and(|c| c.iter().any(has_token)) {
            self.first_token = true;
        }
        // Some servers omit `choices` entirely on the usage-only chunk.
        let usage_only = choices.is_none_or(Vec::is_empty) && usage.is_some();
        if !self.client_wants_usage {
            if usage_only {
                return;
            }
            // Usage riding on a content/finish chunk (Mistral, Together,
            // DeepSeek, vLLM continuous stats): forward it without `usage`.
            if v.get("usage").is_some_and(|u| !u.is_null())
                && let Some(stripped) = event_without_usage(data)
            {
                out.extend_from_slice(&stripped);
                return;
            }
        }
        out.extend_from_slice(&ev.raw);
    }
}

/// `data: <data minus its top-level "usage" member>\n\n`. Every other member
/// keeps its exact bytes and position; None if `data` is not a JSON object.
fn event_without_usage(data: &str) -> Option<Vec<u8>> {
    let Members(members) = serde_json::from_str(data).ok()?;
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(b"data: {");
    let mut first = true;
    for (key, value) in members.iter().filter(|(k, _)| k != "usage") {
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
    }
    out.extend_from_slice(b"}\n\n");
    Some(out)
}

/// A JSON object's members in wire order, values as raw JSON text.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

fn has_token(choice: &Value) -> bool {
    let Some(delta) = choice.get("delta") else {
        return false;
    };
    // Text the client sees: content, refusals and reasoning (DeepSeek's
    // `reasoning_content`; `reasoning` from vLLM, Ollama and Groq). Mistral's
    // reasoning models stream `content` as an array of chunks.
    let content = ["content", "refusal", "reasoning_content", "reasoning"]
        .iter()
        .any(|k| match delta.get(k) {
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            _ => false,
        });
    let tools = delta
        .get("tool_calls")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    content || tools
}

impl StreamTranslator for OpenAiStream {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.failed.is_some() || self.done {
            return;
        }
        let res = self.splitter.feed(chunk, &mut self.events);
        self.drain_events(out);
        if let Err(e) = res
            && self.failed.is_none()
            && !self.done
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
        if !self.done {
            let res = self.splitter.finish(&mut self.events);
            self.drain_events(out);
            if let Err(e) = res
                && self.failed.is_none()
                && !self.done
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
        if !self.done {
            self.fail(
                "upstream stream ended before [DONE]".to_owned(),
                "upstream stream ended before completion",
                out,
            );
            return StreamOutcome::Failed("upstream stream ended before [DONE]".to_owned());
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
        model: "gpt-4o-mini-2024-07-18",
        default_max_tokens: 1024,
    };

    fn req(inbound: Inbound, body: Value) -> (UpstreamRequest, Value) {
        let r = request(inbound, Wire::OpenAi, &body, &OPTS).unwrap();
        let v = serde_json::from_slice(&r.body).unwrap();
        (r, v)
    }

    #[test]
    fn request_table() {
        let msgs = json!([{"role":"user","content":"hi"}]);
        // (inbound, body, expected body, path, stream, injected)
        let cases = vec![
            (
                Inbound::ChatCompletions,
                json!({"model":"alias","messages":msgs,"temperature":0.2,"seed":7}),
                json!({"model":OPTS.model,"messages":msgs,"temperature":0.2,"seed":7}),
                "/chat/completions",
                false,
                false,
            ),
            (
                Inbound::ChatCompletions,
                json!({"model":"alias","messages":msgs,"stream":true}),
                json!({"model":OPTS.model,"messages":msgs,"stream":true,"stream_options":{"include_usage":true}}),
                "/chat/completions",
                true,
                true,
            ),
            (
                Inbound::ChatCompletions,
                json!({"model":"alias","messages":msgs,"stream":true,"stream_options":{"include_usage":false,"x":1}}),
                json!({"model":OPTS.model,"messages":msgs,"stream":true,"stream_options":{"include_usage":true,"x":1}}),
                "/chat/completions",
                true,
                true,
            ),
            (
                Inbound::ChatCompletions,
                json!({"model":"alias","messages":msgs,"stream":true,"stream_options":{"include_usage":true}}),
                json!({"model":OPTS.model,"messages":msgs,"stream":true,"stream_options":{"include_usage":true}}),
                "/chat/completions",
                true,
                false,
            ),
            (
                Inbound::ChatCompletions,
                json!({"messages":msgs,"stream":false}),
                json!({"model":OPTS.model,"messages":msgs,"stream":false}),
                "/chat/completions",
                false,
                false,
            ),
            (
                Inbound::Embeddings,
                json!({"model":"e","input":["a","b"],"encoding_format":"float"}),
                json!({"model":OPTS.model,"input":["a","b"],"encoding_format":"float"}),
                "/embeddings",
                false,
                false,
            ),
        ];
        for (inbound, body, expected, path, stream, injected) in cases {
            let (r, v) = req(inbound, body.clone());
            assert_eq!(v, expected, "{body}");
            assert_eq!(r.path_suffix, path);
            assert_eq!(r.stream, stream, "{body}");
            assert_eq!(r.usage_injected, injected, "{body}");
        }
        assert!(matches!(
            request(Inbound::ChatCompletions, Wire::OpenAi, &json!([1]), &OPTS),
            Err(TranslateError::Invalid { .. })
        ));
    }

    #[test]
    fn response_passthrough_and_usage() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#;
        let (out, u) = response(Inbound::ChatCompletions, Wire::OpenAi, body, 5).unwrap();
        assert_eq!(out, body.to_vec());
        assert_eq!(
            u,
            Usage {
                input_tokens: 9,
                output_tokens: 3
            }
        );
        let emb = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":5,"total_tokens":5}}"#;
        let (out, u) = response(Inbound::Embeddings, Wire::OpenAi, emb, 5).unwrap();
        assert_eq!(out, emb.to_vec());
        assert_eq!(
            u,
            Usage {
                input_tokens: 5,
                output_tokens: 0
            }
        );
        let (_, u) = response(Inbound::ChatCompletions, Wire::OpenAi, b"{}", 5).unwrap();
        assert_eq!(u, Usage::default());
        for bad in [&b"{nope"[..], b"", b"\"str\""] {
            assert!(matches!(
                response(Inbound::ChatCompletions, Wire::OpenAi, bad, 5),
                Err(TranslateError::BadUpstream(_))
            ));
        }
    }

    const TEXT_CHUNKS: &str = concat!(
        "data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1717000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1717000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1717000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" wörld\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1717000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    );
    const USAGE_CHUNK: &str = "data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1717000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    fn usage(i: u64, o: u64) -> Usage {
        Usage {
            input_tokens: i,
            output_tokens: o,
        }
    }

    #[test]
    fn stream_text_usage_hidden_when_injected() {
        let input = format!("{TEXT_CHUNKS}{USAGE_CHUNK}{DONE}");
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
            input.as_bytes(),
        );
        assert_eq!(r.out_str(), format!("{TEXT_CHUNKS}{DONE}"));
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert_eq!(r.usage, usage(12, 3));
        assert!(r.first_token);
    }

    #[test]
    fn stream_text_usage_kept_when_client_asked() {
        let input = format!("{TEXT_CHUNKS}{USAGE_CHUNK}{DONE}");
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, true, 1),
            input.as_bytes(),
        );
        assert_eq!(r.out_str(), input);
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert_eq!(r.usage, usage(12, 3));
    }

    #[test]
    fn stream_tool_calls_crlf_and_comments() {
        let input = concat!(
            ": OPENROUTER PROCESSING\r\n\r\n",
            "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_abc\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\r\n\r\n",
            "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\r\n\r\n",
            "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\r\n\r\n",
            "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\r\n\r\n",
            "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":80,\"completion_tokens\":17,\"total_tokens\":97}}\r\n\r\n",
            "data: [DONE]\r\n\r\n",
        );
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
            input.as_bytes(),
        );
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert_eq!(r.usage, usage(80, 17));
        assert!(r.first_token);
        let datas = r.datas();
        assert_eq!(datas.len(), 5);
        assert_eq!(datas.last().map(String::as_str), Some("[DONE]"));
        // Events are forwarded byte-identically (CRLF kept), comment dropped.
        assert!(r.out_str().starts_with("data: {\"id\":\"c2\""));
        assert!(r.out_str().ends_with("data: [DONE]\r\n\r\n"));
    }

    #[test]
    fn stream_usage_on_last_content_chunk_and_groq() {
        // Usage riding on the final content chunk: counted, but the client
        // that did not ask gets the chunk without it (and as-is when it asked).
        let ollama = concat!(
            "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama3.2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama3.2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":26,\"completion_tokens\":2,\"total_tokens\":28}}\n\n",
            "data: [DONE]\n\n",
        );
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
            ollama.as_bytes(),
        );
        assert_eq!(
            r.out_str(),
            ollama.replace(
                ",\"usage\":{\"prompt_tokens\":26,\"completion_tokens\":2,\"total_tokens\":28}",
                ""
            )
        );
        assert_eq!(r.usage, usage(26, 2));
        assert_eq!(r.outcome, StreamOutcome::Complete);
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, true, 1),
            ollama.as_bytes(),
        );
        assert_eq!(r.out_str(), ollama);

        let groq = concat!(
            "data: {\"id\":\"chatcmpl-g\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama-3.1-8b-instant\",\"system_fingerprint\":\"fp_x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"x_groq\":{\"id\":\"req_01\"}}\n\n",
            "data: {\"id\":\"chatcmpl-g\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama-3.1-8b-instant\",\"system_fingerprint\":\"fp_x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Yo\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"chatcmpl-g\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama-3.1-8b-instant\",\"system_fingerprint\":\"fp_x\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"x_groq\":{\"id\":\"req_01\",\"usage\":{\"queue_time\":0.01,\"prompt_tokens\":40,\"prompt_time\":0.002,\"completion_tokens\":5,\"completion_time\":0.004,\"total_tokens\":45,\"total_time\":0.006}}}\n\n",
            "data: [DONE]\n\n",
        );
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
            groq.as_bytes(),
        );
        assert_eq!(r.out_str(), groq);
        assert_eq!(r.usage, usage(40, 5));
        assert!(r.first_token);
    }

    fn error_event(message: &str) -> String {
        format!(
            "data: {{\"error\":{{\"message\":\"{message}\",\"type\":\"upstream_error\",\"code\":\"stream_interrupted\",\"param\":null}}}}\n\n"
        )
    }

    #[test]
    fn stream_truncated_fails_once() {
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
            TEXT_CHUNKS.as_bytes(),
        );
        assert_eq!(
            r.out_str(),
            format!(
                "{TEXT_CHUNKS}{}",
                error_event("upstream stream ended before completion")
            )
        );
        assert!(matches!(r.outcome, StreamOutcome::Failed(_)));
        // A half-received event at EOF is flushed and then fails to parse.
        let cut = &TEXT_CHUNKS[..TEXT_CHUNKS.len() - 40];
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
            cut.as_bytes(),
        );
        assert_eq!(r.out_str().matches("\"error\"").count(), 1);
        assert!(!r.out_str().contains("[DONE]"));
        assert!(matches!(r.outcome, StreamOutcome::Failed(_)));
        // Empty body.
        let r = run(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
            &[],
        );
        assert_eq!(
            r.out_str(),
            error_event("upstream stream ended before completion")
        );
        assert!(!r.first_token);
    }

    #[test]
    fn stream_corrupted_event_stops_everything() {
        let input = format!("{TEXT_CHUNKS}data: {{\"id\":\"x\",\"choi\n\n{USAGE_CHUNK}{DONE}");
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
            input.as_bytes(),
        );
        assert_eq!(
            r.out_str(),
            format!(
                "{TEXT_CHUNKS}{}",
                error_event("upstream sent an unparsable stream event")
            )
        );
        assert!(matches!(r.outcome, StreamOutcome::Failed(ref s) if s.starts_with("unparsable")));
        assert_eq!(r.usage, Usage::default());
    }

    #[test]
    fn stream_upstream_error_event() {
        let input = format!(
            "{TEXT_CHUNKS}data: {{\"error\":{{\"message\":\"The server had an error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}}}\n\n{DONE}"
        );
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, true, 1),
            input.as_bytes(),
        );
        assert_eq!(
            r.out_str(),
            format!("{TEXT_CHUNKS}{}", error_event("The server had an error"))
        );
        assert_eq!(
            r.outcome,
            StreamOutcome::Failed("upstream error event: The server had an error".to_owned())
        );
    }

    #[test]
    fn stream_done_without_trailing_blank_line_completes() {
        let input = format!("{TEXT_CHUNKS}data: [DONE]");
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
            input.as_bytes(),
        );
        assert_eq!(r.out_str(), format!("{TEXT_CHUNKS}{DONE}"));
        assert_eq!(r.outcome, StreamOutcome::Complete);
    }
}

/// Samples from the OpenAI-compatible servers the pass-through serves, in the
/// shapes their APIs send (ids and numbers made up). Each stream is what the
/// server sends for a streamed request carrying the injected
/// `stream_options.include_usage: true`.
#[cfg(test)]
mod compat_tests {
    use crate::translate::test_support::*;
    use crate::translate::*;
    use serde_json::{Value, json};

    struct Case {
        provider: &'static str,
        body: &'static str,
        body_usage: (u64, u64),
        stream: &'static str,
        stream_usage: (u64, u64),
        /// `usage` members (with their leading comma) that ride on chunks
        /// with choices: removed for a client that did not ask for usage.
        stripped: &'static [&'static str],
        /// Usage-only events: dropped for that client.
        dropped: &'static [&'static str],
    }

    const MISTRAL_USAGE: &str =
        ",\"usage\":{\"prompt_tokens\":167,\"total_tokens\":200,\"completion_tokens\":33}";
    const GROQ_USAGE_CHUNK: &str = "data: {\"id\":\"chatcmpl-e7ebbb57-834f-48fa-bc73-5abb960c78b5\",\"object\":\"chat.completion.chunk\",\"created\":1745935006,\"model\":\"llama-3.3-70b-versatile\",\"system_fingerprint\":\"fp_3f3b593e33\",\"choices\":[],\"usage\":{\"queue_time\":0.21,\"prompt_tokens\":45,\"prompt_time\":0.0035,\"completion_tokens\":61,\"completion_time\":0.22,\"total_tokens\":106,\"total_time\":0.2235},\"x_groq\":{\"id\":\"req_01jt0xby4ffanamrs6m40mv0fy\"}}\n\n";
    const DEEPSEEK_USAGE: &str = ",\"usage\":{\"prompt_tokens\":13,\"completion_tokens\":86,\"total_tokens\":99,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":80},\"prompt_cache_hit_tokens\":0,\"prompt_cache_miss_tokens\":13}";
    const OLLAMA_USAGE_CHUNK: &str = "data: {\"id\":\"chatcmpl-310\",\"object\":\"chat.completion.chunk\",\"created\":1735000000,\"model\":\"qwen3:0.6b\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":30,\"total_tokens\":42}}\n\n";
    const VLLM_USAGE_0: &str =
        ",\"usage\":{\"prompt_tokens\":20,\"total_tokens\":20,\"completion_tokens\":0}";
    const VLLM_USAGE_1: &str =
        ",\"usage\":{\"prompt_tokens\":20,\"total_tokens\":21,\"completion_tokens\":1}";
    const VLLM_USAGE_4: &str =
        ",\"usage\":{\"prompt_tokens\":20,\"total_tokens\":24,\"completion_tokens\":4}";
    const VLLM_USAGE_CHUNK: &str = "data: {\"id\":\"chatcmpl-b3c2\",\"object\":\"chat.completion.chunk\",\"created\":1736000000,\"model\":\"Qwen/Qwen2.5-1.5B-Instruct\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"total_tokens\":24,\"completion_tokens\":4}}\n\n";
    const TOGETHER_USAGE: &str =
        ",\"usage\":{\"prompt_tokens\":38,\"completion_tokens\":2,\"total_tokens\":40}";

    const CASES: &[Case] = &[
        Case {
            // Usage always on the final chunk (Mistral rejects stream_options,
            // see the report); tool calls arrive whole, in one delta, in the
            // same chunk as finish_reason and usage.
            provider: "mistral",
            body: r#"{"id":"cf79f7daaee244b1a0ae5c7b1444424a","object":"chat.completion","created":1712245440,"model":"mistral-large-latest","choices":[{"index":0,"message":{"role":"assistant","tool_calls":null,"content":"Bonjour !"},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":10,"total_tokens":14,"completion_tokens":4}}"#,
            body_usage: (10, 4),
            stream: concat!(
                "data: {\"id\":\"f798ebd5c41a45d88bb079635121cade\",\"object\":\"chat.completion.chunk\",\"created\":1732548656,\"model\":\"mistral-large-latest\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"f798ebd5c41a45d88bb079635121cade\",\"object\":\"chat.completion.chunk\",\"created\":1732548656,\"model\":\"mistral-large-latest\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Checking.\"},\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"f798ebd5c41a45d88bb079635121cade\",\"object\":\"chat.completion.chunk\",\"created\":1732548656,\"model\":\"mistral-large-latest\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"D681PevKs\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\": \\\"Paris\\\"}\"},\"index\":0},{\"id\":\"x2Pq8LmZt\",\"function\":{\"name\":\"get_time\",\"arguments\":\"{}\"},\"index\":1}]},\"finish_reason\":\"tool_calls\",\"logprobs\":null}],\"usage\":{\"prompt_tokens\":167,\"total_tokens\":200,\"completion_tokens\":33}}\n\n",
                "data: [DONE]\n\n",
            ),
            stream_usage: (167, 33),
            stripped: &[MISTRAL_USAGE],
            dropped: &[],
        },
        Case {
            // `x_groq.usage` on the finish chunk (always sent), then the
            // usage-only chunk that include_usage asks for.
            provider: "groq",
            body: r#"{"id":"chatcmpl-f51b2cd2-bef7-417e-964e-a08f0b513c22","object":"chat.completion","created":1730241104,"model":"llama-3.3-70b-versatile","choices":[{"index":0,"message":{"role":"assistant","content":"Fast language models matter."},"logprobs":null,"finish_reason":"stop"}],"usage":{"queue_time":0.037493756,"prompt_tokens":18,"prompt_time":0.000680594,"completion_tokens":556,"completion_time":0.463333333,"total_tokens":574,"total_time":0.464013927},"system_fingerprint":"fp_179b0f92c9","x_groq":{"id":"req_01jbd6g2qdfw2adyrt2az8hz4w"}}"#,
            body_usage: (18, 556),
            stream: concat!(
                "data: {\"id\":\"chatcmpl-e7ebbb57-834f-48fa-bc73-5abb960c78b5\",\"object\":\"chat.completion.chunk\",\"created\":1745935006,\"model\":\"llama-3.3-70b-versatile\",\"system_fingerprint\":\"fp_3f3b593e33\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"x_groq\":{\"id\":\"req_01jt0xby4ffanamrs6m40mv0fy\"}}\n\n",
                "data: {\"id\":\"chatcmpl-e7ebbb57-834f-48fa-bc73-5abb960c78b5\",\"object\":\"chat.completion.chunk\",\"created\":1745935006,\"model\":\"llama-3.3-70b-versatile\",\"system_fingerprint\":\"fp_3f3b593e33\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"One, two\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"chatcmpl-e7ebbb57-834f-48fa-bc73-5abb960c78b5\",\"object\":\"chat.completion.chunk\",\"created\":1745935006,\"model\":\"llama-3.3-70b-versatile\",\"system_fingerprint\":\"fp_3f3b593e33\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"x_groq\":{\"id\":\"req_01jt0xby4ffanamrs6m40mv0fy\",\"usage\":{\"queue_time\":0.21,\"prompt_tokens\":45,\"prompt_time\":0.0035,\"completion_tokens\":61,\"completion_time\":0.22,\"total_tokens\":106,\"total_time\":0.2235}}}\n\n",
                "data: {\"id\":\"chatcmpl-e7ebbb57-834f-48fa-bc73-5abb960c78b5\",\"object\":\"chat.completion.chunk\",\"created\":1745935006,\"model\":\"llama-3.3-70b-versatile\",\"system_fingerprint\":\"fp_3f3b593e33\",\"choices\":[],\"usage\":{\"queue_time\":0.21,\"prompt_tokens\":45,\"prompt_time\":0.0035,\"completion_tokens\":61,\"completion_time\":0.22,\"total_tokens\":106,\"total_time\":0.2235},\"x_groq\":{\"id\":\"req_01jt0xby4ffanamrs6m40mv0fy\"}}\n\n",
                "data: [DONE]\n\n",
            ),
            stream_usage: (45, 61),
            stripped: &[],
            dropped: &[GROQ_USAGE_CHUNK],
        },
        Case {
            // deepseek-reasoner: `reasoning_content` deltas first (after a
            // keep-alive comment), usage on the finish chunk; prompt_tokens
            // already includes prompt_cache_hit_tokens.
            provider: "deepseek",
            body: r#"{"id":"931809f8-3d1c-44d9-b124-367d05e0f123","object":"chat.completion","created":1739092483,"model":"deepseek-reasoner","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I assist you today?","reasoning_content":"The user said hello."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":92,"total_tokens":1092,"prompt_tokens_details":{"cached_tokens":896},"completion_tokens_details":{"reasoning_tokens":81},"prompt_cache_hit_tokens":896,"prompt_cache_miss_tokens":104},"system_fingerprint":"fp_7e73fd9a08"}"#,
            body_usage: (1000, 92),
            stream: concat!(
                ": keep-alive\n\n",
                "data: {\"id\":\"43a31dda-92f6-4cdf-a333-bb399599a824\",\"object\":\"chat.completion.chunk\",\"created\":1739097227,\"model\":\"deepseek-reasoner\",\"system_fingerprint\":\"fp_7e73fd9a08\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"43a31dda-92f6-4cdf-a333-bb399599a824\",\"object\":\"chat.completion.chunk\",\"created\":1739097227,\"model\":\"deepseek-reasoner\",\"system_fingerprint\":\"fp_7e73fd9a08\",\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"reasoning_content\":\"Okay\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"43a31dda-92f6-4cdf-a333-bb399599a824\",\"object\":\"chat.completion.chunk\",\"created\":1739097227,\"model\":\"deepseek-reasoner\",\"system_fingerprint\":\"fp_7e73fd9a08\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\",\"reasoning_content\":null},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"43a31dda-92f6-4cdf-a333-bb399599a824\",\"object\":\"chat.completion.chunk\",\"created\":1739097227,\"model\":\"deepseek-reasoner\",\"system_fingerprint\":\"fp_7e73fd9a08\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\",\"reasoning_content\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":13,\"completion_tokens\":86,\"total_tokens\":99,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":80},\"prompt_cache_hit_tokens\":0,\"prompt_cache_miss_tokens\":13}}\n\n",
                "data: [DONE]\n\n",
            ),
            stream_usage: (13, 86),
            stripped: &[DEEPSEEK_USAGE],
            dropped: &[],
        },
        Case {
            // Ollama's /v1 endpoint: `reasoning` deltas for thinking models,
            // `role` on every delta, the usage-only chunk only when asked.
            provider: "ollama",
            body: r#"{"id":"chatcmpl-310","object":"chat.completion","created":1735000000,"model":"qwen3:0.6b","system_fingerprint":"fp_ollama","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","reasoning":"User greets."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}}"#,
            body_usage: (12, 30),
            stream: concat!(
                "data: {\"id\":\"chatcmpl-310\",\"object\":\"chat.completion.chunk\",\"created\":1735000000,\"model\":\"qwen3:0.6b\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"reasoning\":\"User greets\"},\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"chatcmpl-310\",\"object\":\"chat.completion.chunk\",\"created\":1735000000,\"model\":\"qwen3:0.6b\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello!\"},\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"chatcmpl-310\",\"object\":\"chat.completion.chunk\",\"created\":1735000000,\"model\":\"qwen3:0.6b\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"stop\"}]}\n\n",
                "data: {\"id\":\"chatcmpl-310\",\"object\":\"chat.completion.chunk\",\"created\":1735000000,\"model\":\"qwen3:0.6b\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":30,\"total_tokens\":42}}\n\n",
                "data: [DONE]\n\n",
            ),
            stream_usage: (12, 30),
            stripped: &[],
            dropped: &[OLLAMA_USAGE_CHUNK],
        },
        Case {
            // vLLM with `continuous_usage_stats` (the client asked for both):
            // cumulative usage on every chunk, then the usage-only chunk.
            provider: "vllm",
            body: r#"{"id":"chatcmpl-b3c2","object":"chat.completion","created":1736000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"message":{"role":"assistant","reasoning_content":null,"content":"Hi there!","tool_calls":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}],"usage":{"prompt_tokens":20,"total_tokens":24,"completion_tokens":4,"prompt_tokens_details":null},"prompt_logprobs":null}"#,
            body_usage: (20, 4),
            stream: concat!(
                "data: {\"id\":\"chatcmpl-b3c2\",\"object\":\"chat.completion.chunk\",\"created\":1736000000,\"model\":\"Qwen/Qwen2.5-1.5B-Instruct\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":20,\"total_tokens\":20,\"completion_tokens\":0}}\n\n",
                "data: {\"id\":\"chatcmpl-b3c2\",\"object\":\"chat.completion.chunk\",\"created\":1736000000,\"model\":\"Qwen/Qwen2.5-1.5B-Instruct\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":20,\"total_tokens\":21,\"completion_tokens\":1}}\n\n",
                "data: {\"id\":\"chatcmpl-b3c2\",\"object\":\"chat.completion.chunk\",\"created\":1736000000,\"model\":\"Qwen/Qwen2.5-1.5B-Instruct\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there!\"},\"logprobs\":null,\"finish_reason\":\"stop\",\"stop_reason\":null}],\"usage\":{\"prompt_tokens\":20,\"total_tokens\":24,\"completion_tokens\":4}}\n\n",
                "data: {\"id\":\"chatcmpl-b3c2\",\"object\":\"chat.completion.chunk\",\"created\":1736000000,\"model\":\"Qwen/Qwen2.5-1.5B-Instruct\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"total_tokens\":24,\"completion_tokens\":4}}\n\n",
                "data: [DONE]\n\n",
            ),
            stream_usage: (20, 4),
            stripped: &[VLLM_USAGE_0, VLLM_USAGE_1, VLLM_USAGE_4],
            dropped: &[VLLM_USAGE_CHUNK],
        },
        Case {
            // Together: `usage: null` on every chunk, the totals on the final
            // chunk next to finish_reason (here its native "eos").
            provider: "together",
            body: r#"{"id":"8e1bd1e0fc9a1f4b-SJC","object":"chat.completion","created":1733160000,"model":"meta-llama/Llama-3.3-70B-Instruct-Turbo","prompt":[],"choices":[{"finish_reason":"eos","seed":1234567890,"logprobs":null,"index":0,"message":{"role":"assistant","content":"Hello! How can I help?","tool_calls":[]}}],"usage":{"prompt_tokens":38,"completion_tokens":9,"total_tokens":47}}"#,
            body_usage: (38, 9),
            stream: concat!(
                "data: {\"id\":\"8e1bd2a4b\",\"object\":\"chat.completion.chunk\",\"created\":1733160000,\"model\":\"meta-llama/Llama-3.3-70B-Instruct-Turbo\",\"choices\":[{\"index\":0,\"text\":\"Hello\",\"logprobs\":null,\"finish_reason\":null,\"seed\":null,\"delta\":{\"token_id\":9906,\"role\":\"assistant\",\"content\":\"Hello\",\"tool_calls\":null}}],\"usage\":null}\n\n",
                "data: {\"id\":\"8e1bd2a4b\",\"object\":\"chat.completion.chunk\",\"created\":1733160000,\"model\":\"meta-llama/Llama-3.3-70B-Instruct-Turbo\",\"choices\":[{\"index\":0,\"text\":\"!\",\"logprobs\":null,\"finish_reason\":null,\"seed\":null,\"delta\":{\"token_id\":0,\"role\":\"assistant\",\"content\":\"!\",\"tool_calls\":null}}],\"usage\":null}\n\n",
                "data: {\"id\":\"8e1bd2a4b\",\"object\":\"chat.completion.chunk\",\"created\":1733160000,\"model\":\"meta-llama/Llama-3.3-70B-Instruct-Turbo\",\"choices\":[{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"eos\",\"seed\":1234567890,\"delta\":{\"token_id\":128009,\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":null}}],\"usage\":{\"prompt_tokens\":38,\"completion_tokens\":2,\"total_tokens\":40}}\n\n",
                "data: [DONE]\n\n",
            ),
            stream_usage: (38, 2),
            stripped: &[TOGETHER_USAGE],
            dropped: &[],
        },
    ];

    fn u((input_tokens, output_tokens): (u64, u64)) -> Usage {
        Usage {
            input_tokens,
            output_tokens,
        }
    }

    #[test]
    fn provider_samples() {
        for c in CASES {
            let p = c.provider;
            let (out, usage) =
                response(Inbound::ChatCompletions, Wire::OpenAi, c.body.as_bytes(), 1).unwrap();
            assert_eq!(out, c.body.as_bytes(), "{p}: body passes through");
            assert_eq!(usage, u(c.body_usage), "{p}: body usage");

            // The client asked for usage: every byte passes through.
            let asked = run_all_splits(
                &|| stream(Inbound::ChatCompletions, Wire::OpenAi, true, 1),
                c.stream.as_bytes(),
            );
            let without_comments: String = c
                .stream
                .split_inclusive("\n\n")
                .filter(|e| !e.starts_with(':'))
                .collect();
            assert_eq!(asked.out_str(), without_comments, "{p}: asked");
            assert_eq!(asked.usage, u(c.stream_usage), "{p}: asked usage");
            assert_eq!(asked.outcome, StreamOutcome::Complete, "{p}");
            assert!(asked.first_token, "{p}");

            // It did not: the same minus every `usage` member, usage still counted.
            let quiet = run_all_splits(
                &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
                c.stream.as_bytes(),
            );
            let mut expected = without_comments.clone();
            for d in c.dropped {
                assert!(expected.contains(d), "{p}: {d}");
                expected = expected.replace(d, "");
            }
            for s in c.stripped {
                assert!(expected.contains(s), "{p}: {s}");
                expected = expected.replace(s, "");
            }
            assert_eq!(quiet.out_str(), expected, "{p}: not asked");
            for chunk in quiet.jsons() {
                assert!(
                    chunk.get("usage").is_none_or(Value::is_null),
                    "{p}: {chunk}"
                );
            }
            assert_eq!(quiet.usage, u(c.stream_usage), "{p}: not asked usage");
            assert_eq!(quiet.outcome, StreamOutcome::Complete, "{p}");
            assert!(quiet.first_token, "{p}");
        }
    }

    #[test]
    fn reasoning_counts_as_first_token() {
        for provider in ["deepseek", "ollama"] {
            let c = CASES.iter().find(|c| c.provider == provider).unwrap();
            let first_reasoning = c
                .stream
                .split_inclusive("\n\n")
                .find(|e| e.contains("reasoning") && !e.contains("\"reasoning_content\":\"\""))
                .unwrap();
            let r = run(
                &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
                &[first_reasoning.as_bytes()],
            );
            assert!(r.first_token, "{provider}");
        }
        // An empty reasoning delta alone is not a token; Mistral's array
        // content (Magistral thinking chunks) is.
        let empty = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"\"}}]}\n\n";
        let magistral = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":[{\"type\":\"thinking\",\"thinking\":[{\"type\":\"text\",\"text\":\"Hmm\"}]}]}}]}\n\n";
        for (input, first) in [(empty, false), (magistral, true)] {
            let r = run(
                &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
                &[input.as_bytes()],
            );
            assert_eq!(r.first_token, first, "{input}");
        }
    }

    #[test]
    fn ollama_without_usage_support_completes_uncounted() {
        // Ollama before include_usage support ignores the option: no usage at all.
        let c = CASES.iter().find(|c| c.provider == "ollama").unwrap();
        let old = c.stream.replace(OLLAMA_USAGE_CHUNK, "");
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, true, 1),
            old.as_bytes(),
        );
        assert_eq!(r.out_str(), old);
        assert_eq!(r.usage, Usage::default());
        assert_eq!(r.outcome, StreamOutcome::Complete);
    }

    #[test]
    fn usage_only_chunk_without_choices_is_dropped() {
        let input = concat!(
            "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"id\":\"x\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n",
            "data: [DONE]\n\n",
        );
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
            input.as_bytes(),
        );
        assert_eq!(r.datas().len(), 2);
        assert_eq!(r.usage, u((3, 1)));
    }

    #[test]
    fn stripping_keeps_other_members_verbatim() {
        let data = r#"{"b\u00e9":1.50,"usage":{"prompt_tokens":1},"choices":[{"delta":{"content":"\u00e9\ud83d\ude00"}}],"n":1e2,"usage":null}"#;
        let out = super::event_without_usage(data).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: {\"bé\":1.50,\"choices\":[{\"delta\":{\"content\":\"\\u00e9\\ud83d\\ude00\"}}],\"n\":1e2}\n\n"
        );
        assert_eq!(super::event_without_usage("[1]"), None);
        assert_eq!(
            super::event_without_usage(r#"{"usage":{}}"#).unwrap(),
            b"data: {}\n\n"
        );
    }

    #[test]
    fn injected_usage_turns_off_vllm_continuous_stats() {
        let opts = RequestOptions {
            model: "m",
            default_max_tokens: 1,
        };
        let msgs = json!([{"role":"user","content":"hi"}]);
        let cases = [
            (
                json!({"messages":msgs,"stream":true,"stream_options":{"continuous_usage_stats":true}}),
                json!({"continuous_usage_stats":false,"include_usage":true}),
            ),
            (
                json!({"messages":msgs,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}),
                json!({"continuous_usage_stats":true,"include_usage":true}),
            ),
        ];
        for (body, so) in cases {
            let r = request(Inbound::ChatCompletions, Wire::OpenAi, &body, &opts).unwrap();
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["stream_options"], so, "{body}");
        }
    }
}
