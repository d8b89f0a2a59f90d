//! OpenAI client -> OpenAI(-compatible) provider.
//!
//! Requests only get the model swapped (and `include_usage` forced on for
//! streams, so the gateway can count tokens). Non-streamed responses are
//! passed through byte-for-byte; streams are forwarded event-for-event, minus
//! the usage-only chunk when the client never asked for it.

use super::usage_from;
use crate::translate::sse::{SseEvent, SseSplitter};
use crate::translate::{
    Inbound, RequestOptions, StreamOutcome, StreamTranslator, TranslateError, UpstreamRequest,
    Usage, write_openai_stream_error,
};
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
        let usage_only = choices.is_some_and(Vec::is_empty) && usage.is_some();
        if usage_only && !self.client_wants_usage {
            return;
        }
        out.extend_from_slice(&ev.raw);
    }
}

fn has_token(choice: &Value) -> bool {
    let Some(delta) = choice.get("delta") else {
        return false;
    };
    let content = delta
        .get("content")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
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
        // Ollama/vLLM style: usage rides on the final content chunk; it is kept.
        let ollama = concat!(
            "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama3.2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama3.2\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":26,\"completion_tokens\":2,\"total_tokens\":28}}\n\n",
            "data: [DONE]\n\n",
        );
        let r = run_all_splits(
            &|| stream(Inbound::ChatCompletions, Wire::OpenAi, false, 1),
            ollama.as_bytes(),
        );
        assert_eq!(r.out_str(), ollama);
        assert_eq!(r.usage, usage(26, 2));
        assert_eq!(r.outcome, StreamOutcome::Complete);

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
