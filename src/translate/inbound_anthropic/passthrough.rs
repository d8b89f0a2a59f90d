//! Anthropic client -> Anthropic provider: nothing is translated, so nothing
//! is lost (`cache_control`, thinking, citations, server tools, betas...).
//! Only `model` is replaced; responses and stream events are forwarded
//! byte-for-byte while usage and the first token are read from them.

use crate::translate::anthropic::input_tokens;
use crate::translate::sse::{SseEvent, SseSplitter};
use crate::translate::{
    RequestOptions, StreamOutcome, StreamTranslator, TranslateError, UpstreamRequest, Usage, u64_at,
};
use serde_json::Value;

use super::write_stream_error;

/// The client's body with `model` replaced by the provider model. Everything
/// else, `max_tokens` included, is kept as sent (Anthropic validates it and
/// its errors reach the client as they are).
pub fn passthrough_request(
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
    let stream = obj.get("stream").and_then(Value::as_bool) == Some(true);
    let body = serde_json::to_vec(&Value::Object(obj))
        .map_err(|e| TranslateError::invalid(format!("cannot serialise request: {e}"), None))?;
    Ok(UpstreamRequest {
        path_suffix: "/messages".to_owned(),
        body,
        stream,
        // Anthropic always reports usage in its stream.
        usage_injected: false,
    })
}

/// A non-streamed 2xx Anthropic Message: the bytes unchanged, plus usage
/// (input counted the gateway's way: input + cache reads + cache writes).
pub fn passthrough_response(body: &[u8]) -> Result<(Vec<u8>, Usage), TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadUpstream(format!("anthropic sent invalid JSON: {e}")))?;
    if !v.is_object() {
        return Err(TranslateError::BadUpstream(
            "anthropic response is not a JSON object".to_owned(),
        ));
    }
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
    let usage = v.get("usage").unwrap_or(&Value::Null);
    Ok((
        body.to_vec(),
        Usage {
            input_tokens: input_tokens(usage),
            output_tokens: u64_at(usage, "output_tokens"),
        },
    ))
}

/// Forwards an Anthropic event stream event-for-event (only whole events,
/// byte-identical), reading usage from `message_start` / `message_delta`.
/// The first `content_block_delta` counts as the first token. A stream that
/// ends without `message_stop`, or carries an unparsable event, gets one
/// Anthropic `error` event and fails; an upstream `error` event is forwarded
/// as the one error event.
pub struct AnthropicPassthroughStream {
    splitter: SseSplitter,
    events: Vec<SseEvent>,
    usage: Usage,
    first_token: bool,
    stopped: bool,
    failed: Option<String>,
}

impl Default for AnthropicPassthroughStream {
    fn default() -> Self {
        Self::new()
    }
}

impl AnthropicPassthroughStream {
    pub fn new() -> Self {
        Self {
            splitter: SseSplitter::new(),
            events: Vec::new(),
            usage: Usage::default(),
            first_token: false,
            stopped: false,
            failed: None,
        }
    }

    fn fail(&mut self, reason: String, client_message: &str, out: &mut Vec<u8>) {
        write_stream_error(out, client_message);
        self.failed = Some(reason);
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        let events = std::mem::take(&mut self.events);
        for ev in events {
            if self.failed.is_some() || self.stopped {
                break;
            }
            self.handle(ev, out);
        }
    }

    fn handle(&mut self, ev: SseEvent, out: &mut Vec<u8>) {
        // Every Anthropic event carries JSON; an empty one (e.g. a cut-off
        // `data` line) would only make the client's JSON parse fail.
        if ev.data.trim().is_empty() {
            return;
        }
        let v: Value = match serde_json::from_str(&ev.data) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return self.fail(
                    "unparsable upstream event".to_owned(),
                    "upstream sent an unparsable stream event",
                    out,
                );
            }
        };
        // Clients dispatch on the `event:` line, so an `error` there is an
        // error whatever the JSON says; otherwise the JSON `type` decides.
        let kind = match ev.event.as_deref() {
            Some("error") => "error",
            event => v
                .get("type")
                .and_then(Value::as_str)
                .or(event)
                .unwrap_or_default(),
        };
        match kind {
            "message_start" => {
                let usage = v
                    .get("message")
                    .and_then(|m| m.get("usage"))
                    .unwrap_or(&Value::Null);
                self.usage.input_tokens = input_tokens(usage);
                self.usage.output_tokens = u64_at(usage, "output_tokens");
            }
            "message_delta" => {
                let usage = v.get("usage").unwrap_or(&Value::Null);
                if let Some(n) = usage.get("output_tokens").and_then(Value::as_u64) {
                    self.usage.output_tokens = n;
                }
                // Newer API versions repeat the (final) input counts here.
                if usage.get("input_tokens").and_then(Value::as_u64).is_some() {
                    self.usage.input_tokens = input_tokens(usage);
                }
            }
            "content_block_delta" => self.first_token = true,
            "message_stop" => self.stopped = true,
            "error" => {
                out.extend_from_slice(&ev.raw);
                let err = v.get("error").unwrap_or(&Value::Null);
                let text = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or_default();
                self.failed = Some(format!(
                    "upstream error event: {}: {}",
                    text("type"),
                    text("message")
                ));
                return;
            }
            _ => {}
        }
        out.extend_from_slice(&ev.raw);
    }
}

impl StreamTranslator for AnthropicPassthroughStream {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.failed.is_some() || self.stopped {
            return;
        }
        let res = self.splitter.feed(chunk, &mut self.events);
        self.drain(out);
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
        if self.failed.is_none() && !self.stopped {
            let res = self.splitter.finish(&mut self.events);
            self.drain(out);
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
