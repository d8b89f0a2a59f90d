//! OpenAI `chat.completion.chunk` SSE (from any provider's translator) ->
//! Anthropic Messages event stream, as the official API emits it:
//!
//! ```text
//! event: message_start        {"type":"message_start","message":{id,type,role,model,content:[],stop_reason:null,stop_sequence:null,usage}}
//! event: content_block_start  {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}
//! event: content_block_delta  {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}
//! event: content_block_stop   {"type":"content_block_stop","index":0}
//! event: content_block_start  {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id","name","input":{}}}
//! event: content_block_delta  {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}
//! event: content_block_stop   {"type":"content_block_stop","index":1}
//! event: message_delta        {"type":"message_delta","delta":{"stop_reason","stop_sequence":null},"usage":{input_tokens,output_tokens}}
//! event: message_stop         {"type":"message_stop"}
//! ```
//!
//! Notes:
//! - OpenAI reports usage only at the end, so `message_start` carries zero
//!   usage and the final counts ride on `message_delta` (`input_tokens`,
//!   `cache_read_input_tokens` when known, `output_tokens`), which the
//!   current Anthropic API and SDKs also do. `message_delta` is therefore
//!   sent at `[DONE]`, after the usage chunk.
//! - Blocks are opened lazily and closed when the next one starts or the
//!   choice finishes. Tool calls are keyed by their OpenAI `index` (a new
//!   `id` on the same index starts a new call, for providers that omit
//!   indices). Arguments arriving for an already closed tool block (calls
//!   interleaved by the provider) are still sent with that block's index;
//!   the SDK accumulates by index.
//! - `refusal` deltas are text; reasoning deltas (`reasoning_content`) are
//!   dropped (see `response.rs`). No `ping` events are emitted.
//! - The wrapped translator must be created with `client_wants_usage =
//!   true`; the usage-only chunk is consumed here and never forwarded.
//! - An error from the inner translator (its one OpenAI error event) becomes
//!   one `event: error` with `{"type":"error","error":{"type":"api_error",…}}`.

use super::response::{MessageUsage, cached_tokens};
use super::{message_id, stop_reason, write_event, write_stream_error};
use crate::translate::sse::{SseEvent, SseSplitter};
use crate::translate::{StreamOutcome, StreamTranslator, Usage};
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: StartMessage<'a>,
}

#[derive(Serialize)]
struct StartMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: MessageUsage,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: StartBlock<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock<'a> {
    Text {
        text: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: EmptyObject,
    },
}

/// Serialises as `{}`.
#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: DeltaBody<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DeltaBody<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct BlockStop {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct MessageDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopDelta,
    usage: MessageUsage,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u32),
    Tool(u32),
}

struct ToolSlot {
    openai_index: u64,
    id: String,
    block: u32,
}

/// Wraps an OpenAI-emitting [`StreamTranslator`] and re-emits its output as
/// the Anthropic Messages event stream.
pub struct AnthropicOut {
    inner: Box<dyn StreamTranslator + Send>,
    model: String,
    splitter: SseSplitter,
    events: Vec<SseEvent>,
    scratch: Vec<u8>,
    id: String,
    started: bool,
    open: Option<Open>,
    next_index: u32,
    tools: Vec<ToolSlot>,
    finish: Option<&'static str>,
    refusal: bool,
    cached: Option<u64>,
    done: bool,
    /// Set (with the one error event written) on any failure.
    failed: Option<String>,
    /// The failure came from the inner translator's own error event.
    failed_upstream: bool,
    outcome: Option<StreamOutcome>,
}

impl AnthropicOut {
    /// `inner`: the provider's stream translator, created with
    /// `client_wants_usage = true`. `requested_model`: the model the client
    /// asked for, echoed in `message_start`.
    pub fn new(inner: Box<dyn StreamTranslator + Send>, requested_model: &str) -> Self {
        Self {
            inner,
            model: requested_model.to_owned(),
            splitter: SseSplitter::new(),
            events: Vec::new(),
            scratch: Vec::new(),
            id: String::new(),
            started: false,
            open: None,
            next_index: 0,
            tools: Vec::new(),
            finish: None,
            refusal: false,
            cached: None,
            done: false,
            failed: None,
            failed_upstream: false,
            outcome: None,
        }
    }

    fn active(&self) -> bool {
        !self.done && self.failed.is_none() && self.outcome.is_none()
    }

    fn fail(&mut self, reason: String, client_message: &str, out: &mut Vec<u8>) {
        write_stream_error(out, client_message);
        self.failed = Some(reason);
    }

    /// Converts bytes the inner translator emitted (always whole events).
    fn consume(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let res = self.splitter.feed(bytes, &mut self.events);
        self.drain(out);
        if let Err(e) = res
            && self.active()
        {
            self.fail(
                e.to_string(),
                "upstream sent an oversized stream event",
                out,
            );
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        let events = std::mem::take(&mut self.events);
        for ev in events {
            if !self.active() {
                break;
            }
            self.handle(&ev, out);
        }
    }

    fn handle(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        let data = ev.data.trim();
        if data.is_empty() {
            return;
        }
        if data == "[DONE]" {
            return self.complete(out);
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return self.fail(
                    "unparsable event from the provider translator".to_owned(),
                    "upstream sent an unparsable stream event",
                    out,
                );
            }
        };
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            let message = match err {
                Value::String(s) => s.as_str(),
                _ => err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream stream error"),
            }
            .to_owned();
            self.failed_upstream = true;
            return self.fail(format!("upstream error event: {message}"), &message, out);
        }
        self.ensure_started(v.get("id").and_then(Value::as_str), out);
        if let Some(usage) = v.get("usage").filter(|u| u.is_object()) {
            self.cached = cached_tokens(usage).or(self.cached);
        }
        let choices = v.get("choices").and_then(Value::as_array);
        // Anthropic clients never ask for n > 1: only choice 0 matters.
        let Some(choice) = choices.and_then(|c| {
            c.iter()
                .find(|ch| ch.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        }) else {
            return;
        };
        if let Some(delta) = choice.get("delta") {
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                self.text(text, out);
            }
            if let Some(text) = delta.get("refusal").and_then(Value::as_str)
                && !text.is_empty()
            {
                self.refusal = true;
                self.text(text, out);
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for (pos, call) in calls.iter().enumerate() {
                    self.tool_call(pos, call, out);
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(stop_reason(reason));
            self.close_block(out);
        }
    }

    fn ensure_started(&mut self, openai_id: Option<&str>, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = message_id(openai_id);
        write_event(
            out,
            "message_start",
            &MessageStart {
                kind: "message_start",
                message: StartMessage {
                    id: &self.id,
                    kind: "message",
                    role: "assistant",
                    model: &self.model,
                    content: [],
                    stop_reason: None,
                    stop_sequence: None,
                    // Not `inner.usage()`: what the inner translator has
                    // seen by now depends on how the input was chunked.
                    usage: MessageUsage::new(Usage::default(), None),
                },
            },
        );
    }

    fn next_block(&mut self) -> u32 {
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        index
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some(Open::Text(index) | Open::Tool(index)) = self.open.take() {
            write_event(
                out,
                "content_block_stop",
                &BlockStop {
                    kind: "content_block_stop",
                    index,
                },
            );
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        let index = match self.open {
            Some(Open::Text(index)) => index,
            _ => {
                self.close_block(out);
                let index = self.next_block();
                write_event(
                    out,
                    "content_block_start",
                    &BlockStart {
                        kind: "content_block_start",
                        index,
                        content_block: StartBlock::Text { text: "" },
                    },
                );
                self.open = Some(Open::Text(index));
                index
            }
        };
        write_event(
            out,
            "content_block_delta",
            &BlockDelta {
                kind: "content_block_delta",
                index,
                delta: DeltaBody::TextDelta { text },
            },
        );
    }

    fn tool_call(&mut self, pos: usize, call: &Value, out: &mut Vec<u8>) {
        let openai_index = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(pos as u64);
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        let function = call.get("function").unwrap_or(&Value::Null);
        let args = function
            .get("arguments")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let existing = self
            .tools
            .iter()
            .rev()
            .find(|t| t.openai_index == openai_index && id.is_none_or(|id| id == t.id))
            .map(|t| t.block);
        let index = match existing {
            Some(index) => index,
            None => {
                self.close_block(out);
                let index = self.next_block();
                let id = id.map_or_else(|| format!("call_{}", self.tools.len()), str::to_owned);
                let name = function
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                write_event(
                    out,
                    "content_block_start",
                    &BlockStart {
                        kind: "content_block_start",
                        index,
                        content_block: StartBlock::ToolUse {
                            id: &id,
                            name,
                            input: EmptyObject {},
                        },
                    },
                );
                self.tools.push(ToolSlot {
                    openai_index,
                    id,
                    block: index,
                });
                self.open = Some(Open::Tool(index));
                index
            }
        };
        if !args.is_empty() {
            write_event(
                out,
                "content_block_delta",
                &BlockDelta {
                    kind: "content_block_delta",
                    index,
                    delta: DeltaBody::InputJsonDelta { partial_json: args },
                },
            );
        }
    }

    /// `[DONE]`: close the message with the final stop reason and usage.
    fn complete(&mut self, out: &mut Vec<u8>) {
        self.ensure_started(None, out);
        self.close_block(out);
        let stop = match self.finish {
            Some("end_turn") | None if !self.tools.is_empty() => "tool_use",
            Some("end_turn") | None if self.refusal => "refusal",
            Some(reason) => reason,
            None => "end_turn",
        };
        write_event(
            out,
            "message_delta",
            &MessageDelta {
                kind: "message_delta",
                delta: StopDelta {
                    stop_reason: stop,
                    stop_sequence: None,
                },
                usage: MessageUsage::new(self.inner.usage(), self.cached),
            },
        );
        write_event(
            out,
            "message_stop",
            &TypeOnly {
                kind: "message_stop",
            },
        );
        self.done = true;
    }
}

impl StreamTranslator for AnthropicOut {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if !self.active() {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        self.inner.feed(chunk, &mut scratch);
        if !scratch.is_empty() {
            self.consume(&scratch, out);
        }
        self.scratch = scratch;
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> StreamOutcome {
        if let Some(outcome) = &self.outcome {
            return outcome.clone();
        }
        let mut tail = Vec::new();
        let inner = self.inner.finish(&mut tail);
        if self.active() {
            self.consume(&tail, out);
            let res = self.splitter.finish(&mut self.events);
            self.drain(out);
            if let Err(e) = res
                && self.active()
            {
                self.fail(
                    e.to_string(),
                    "upstream sent an oversized stream event",
                    out,
                );
            }
        }
        let outcome = match (&self.failed, inner) {
            (Some(reason), _) if !self.failed_upstream => StreamOutcome::Failed(reason.clone()),
            (failed, StreamOutcome::Failed(reason)) => {
                if failed.is_none() {
                    write_stream_error(out, "upstream stream ended before completion");
                }
                StreamOutcome::Failed(reason)
            }
            (Some(reason), StreamOutcome::Complete) => StreamOutcome::Failed(reason.clone()),
            (None, StreamOutcome::Complete) if self.done => StreamOutcome::Complete,
            (None, StreamOutcome::Complete) => {
                let reason = "provider stream ended before [DONE]".to_owned();
                write_stream_error(out, "upstream stream ended before completion");
                StreamOutcome::Failed(reason)
            }
        };
        self.outcome = Some(outcome.clone());
        outcome
    }

    fn usage(&self) -> Usage {
        self.inner.usage()
    }

    fn first_token_seen(&self) -> bool {
        self.inner.first_token_seen()
    }
}
