//! Stream, pass-through, round-trip and garbage tests for the inbound
//! Anthropic module (per-function tables live next to each function).

use super::*;
use crate::translate::sse::SseSplitter;
use crate::translate::test_support::*;
use crate::translate::{
    Inbound, RequestOptions, StreamOutcome, StreamTranslator, TranslateError, Usage, Wire, request,
    response, stream,
};
use serde_json::{Value, json};

// ------------------------------------------------------------ fixtures

/// OpenAI text stream (gpt-4o-mini shape), usage chunk included.
const OA_TEXT: &str = concat!(
    "data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1717000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1717000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1717000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" wörld 👋\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1717000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1717000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
    "data: [DONE]\n\n",
);

/// OpenAI stream: text, then two parallel tool calls, CRLF, a comment.
const OA_TOOLS: &str = concat!(
    ": OPENROUTER PROCESSING\r\n\r\n",
    "data: {\"id\":\"chatcmpl-T\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Checking.\"},\"finish_reason\":null}]}\r\n\r\n",
    "data: {\"id\":\"chatcmpl-T\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_AAA\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\r\n\r\n",
    "data: {\"id\":\"chatcmpl-T\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"ci\"}}]},\"finish_reason\":null}]}\r\n\r\n",
    "data: {\"id\":\"chatcmpl-T\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\": \\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\r\n\r\n",
    "data: {\"id\":\"chatcmpl-T\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_BBB\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\r\n\r\n",
    "data: {\"id\":\"chatcmpl-T\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{\\\"city\\\": \\\"Rome\\\"}\"}}]},\"finish_reason\":null}]}\r\n\r\n",
    "data: {\"id\":\"chatcmpl-T\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\r\n\r\n",
    "data: {\"id\":\"chatcmpl-T\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":80,\"completion_tokens\":40,\"total_tokens\":120,\"prompt_tokens_details\":{\"cached_tokens\":64}}}\r\n\r\n",
    "data: [DONE]\r\n\r\n",
);

/// Gemini's OpenAI-compatible shape: whole tool calls without `index`,
/// `finish_reason: "stop"` with tool calls, usage on the last chunk.
const GEMINI_TOOLS: &str = concat!(
    "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\",\"name\":\"get_weather\"},\"id\":\"call_g1\",\"type\":\"function\"}]},\"index\":0}],\"created\":1,\"id\":\"gem-1\",\"model\":\"gemini-2.5-flash\",\"object\":\"chat.completion.chunk\"}\n\n",
    "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"city\\\":\\\"Rome\\\"}\",\"name\":\"get_weather\"},\"id\":\"call_g2\",\"type\":\"function\"}]},\"finish_reason\":\"stop\",\"index\":0}],\"created\":1,\"id\":\"gem-1\",\"model\":\"gemini-2.5-flash\",\"object\":\"chat.completion.chunk\",\"usage\":{\"completion_tokens\":20,\"prompt_tokens\":50,\"total_tokens\":70}}\n\n",
    "data: [DONE]\n\n",
);

/// Anthropic text stream, as documented (cache read included in usage).
const ANT_TEXT: &str = concat!(
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

/// Anthropic stream with thinking, text and two tool calls (CRLF).
const ANT_TOOLS: &str = concat!(
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
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":472,\"cache_read_input_tokens\":100,\"output_tokens\":89}}\r\n\r\n",
    "event: message_stop\r\n",
    "data: {\"type\":\"message_stop\"}\r\n\r\n",
);

fn usage(input_tokens: u64, output_tokens: u64) -> Usage {
    Usage {
        input_tokens,
        output_tokens,
    }
}

/// AnthropicOut around the OpenAI-wire translator.
fn over_openai() -> Box<dyn StreamTranslator + Send> {
    Box::new(AnthropicOut::new(
        stream(Inbound::ChatCompletions, Wire::OpenAi, true, 1),
        "claude-alias",
    ))
}

/// AnthropicOut around the Anthropic-wire translator (OpenAI in between).
fn over_anthropic() -> Box<dyn StreamTranslator + Send> {
    Box::new(AnthropicOut::new(
        stream(Inbound::ChatCompletions, Wire::Anthropic, true, 1),
        "claude-alias",
    ))
}

fn passthrough() -> Box<dyn StreamTranslator + Send> {
    Box::new(AnthropicPassthroughStream::new())
}

fn ev(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The client's view of a stream, checked the way the official SDK's
/// accumulator reads it: every event named after its `type`, message_start
/// first, blocks opened in index order, one at a time, deltas only to known
/// blocks, message_delta after all blocks closed. Returns the accumulated
/// Message, or `{"error": <error event>}` if the stream ended with one.
fn accumulate(out: &[u8]) -> Value {
    let mut splitter = SseSplitter::new();
    let mut events = Vec::new();
    splitter.feed(out, &mut events).unwrap();
    splitter.finish(&mut events).unwrap();
    let mut msg: Option<Value> = None;
    let mut open: Option<usize> = None;
    let mut json_buf = String::new();
    let mut stopped = false;
    for e in events {
        assert!(!stopped, "event after message_stop");
        let v: Value = serde_json::from_str(&e.data).unwrap();
        let kind = v["type"].as_str().unwrap().to_owned();
        assert_eq!(e.event.as_deref(), Some(kind.as_str()));
        if kind == "error" {
            return json!({ "error": v });
        }
        if kind == "ping" {
            continue;
        }
        let m = if kind == "message_start" {
            assert!(msg.is_none(), "two message_start");
            msg = Some(v["message"].clone());
            continue;
        } else {
            msg.as_mut().expect("event before message_start")
        };
        let content = m["content"].as_array_mut().unwrap();
        match kind.as_str() {
            "content_block_start" => {
                assert_eq!(open, None, "block opened while another is open");
                let index = v["index"].as_u64().unwrap() as usize;
                assert_eq!(index, content.len(), "block index out of order");
                content.push(v["content_block"].clone());
                open = Some(index);
                json_buf.clear();
            }
            "content_block_delta" => {
                let index = v["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index), "delta to a block that is not open");
                let block = &mut content[index];
                match v["delta"]["type"].as_str().unwrap() {
                    "text_delta" => {
                        let t = format!(
                            "{}{}",
                            block["text"].as_str().unwrap(),
                            v["delta"]["text"].as_str().unwrap()
                        );
                        block["text"] = json!(t);
                    }
                    "input_json_delta" => {
                        json_buf.push_str(v["delta"]["partial_json"].as_str().unwrap())
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let index = v["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index));
                if content[index]["type"] == "tool_use" && !json_buf.is_empty() {
                    content[index]["input"] = serde_json::from_str(&json_buf).unwrap();
                }
                open = None;
            }
            "message_delta" => {
                assert_eq!(open, None, "message_delta with an open block");
                m["stop_reason"] = v["delta"]["stop_reason"].clone();
                m["stop_sequence"] = v["delta"]["stop_sequence"].clone();
                for (k, n) in v["usage"].as_object().unwrap() {
                    m["usage"][k] = n.clone();
                }
            }
            "message_stop" => stopped = true,
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(stopped, "no message_stop");
    msg.expect("no message_start")
}

fn error_events(out: &[u8]) -> usize {
    let mut splitter = SseSplitter::new();
    let mut events = Vec::new();
    let _ = splitter.feed(out, &mut events);
    let _ = splitter.finish(&mut events);
    events
        .iter()
        .filter(|e| e.event.as_deref() == Some("error"))
        .count()
}

// ------------------------------------------------------------ AnthropicOut

#[test]
fn out_text_exact() {
    let r = run_all_splits(&over_openai, OA_TEXT.as_bytes());
    let expected = [
        ev(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_chatcmpl-A1","type":"message","role":"assistant","model":"claude-alias","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}"#,
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
        ),
        ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" wörld 👋"}}"#,
        ),
        ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":12,"cache_read_input_tokens":0,"output_tokens":3}}"#,
        ),
        ev("message_stop", r#"{"type":"message_stop"}"#),
    ]
    .concat();
    assert_eq!(r.out_str(), expected);
    assert_eq!(r.outcome, StreamOutcome::Complete);
    assert_eq!(r.usage, usage(12, 3));
    assert!(r.first_token);
    assert_eq!(
        accumulate(&r.out),
        json!({"id":"msg_chatcmpl-A1","type":"message","role":"assistant","model":"claude-alias",
               "content":[{"type":"text","text":"Hello wörld 👋"}],"stop_reason":"end_turn","stop_sequence":null,
               "usage":{"input_tokens":12,"cache_read_input_tokens":0,"output_tokens":3}})
    );
}

#[test]
fn out_tool_calls_exact() {
    let r = run_all_splits(&over_openai, OA_TOOLS.as_bytes());
    let expected = [
        ev(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_chatcmpl-T","type":"message","role":"assistant","model":"claude-alias","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}"#,
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}"#,
        ),
        ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"call_AAA","name":"get_weather","input":{}}}"#,
        ),
        ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"ci"}}"#,
        ),
        ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ty\": \"Paris\"}"}}"#,
        ),
        ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"call_BBB","name":"get_weather","input":{}}}"#,
        ),
        ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Rome\"}"}}"#,
        ),
        ev(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":2}"#,
        ),
        ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":16,"cache_read_input_tokens":64,"output_tokens":40}}"#,
        ),
        ev("message_stop", r#"{"type":"message_stop"}"#),
    ]
    .concat();
    assert_eq!(r.out_str(), expected);
    assert_eq!(r.outcome, StreamOutcome::Complete);
    assert_eq!(r.usage, usage(80, 40));
    assert!(r.first_token);
    let msg = accumulate(&r.out);
    assert_eq!(
        msg["content"],
        json!([{"type":"text","text":"Checking."},
               {"type":"tool_use","id":"call_AAA","name":"get_weather","input":{"city":"Paris"}},
               {"type":"tool_use","id":"call_BBB","name":"get_weather","input":{"city":"Rome"}}])
    );
}

#[test]
fn out_tool_calls_without_index() {
    let r = run_all_splits(&over_openai, GEMINI_TOOLS.as_bytes());
    assert_eq!(r.outcome, StreamOutcome::Complete);
    assert_eq!(r.usage, usage(50, 20));
    let msg = accumulate(&r.out);
    assert_eq!(
        msg,
        json!({"id":"msg_gem-1","type":"message","role":"assistant","model":"claude-alias",
               "content":[
                   {"type":"tool_use","id":"call_g1","name":"get_weather","input":{"city":"Paris"}},
                   {"type":"tool_use","id":"call_g2","name":"get_weather","input":{"city":"Rome"}}],
               "stop_reason":"tool_use","stop_sequence":null,
               "usage":{"input_tokens":50,"output_tokens":20}})
    );
}

#[test]
fn out_stop_reasons_and_refusal() {
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
        )
    };
    // (finish_reason, expected stop_reason)
    for (finish, expected) in [
        (json!("stop"), "end_turn"),
        (json!("length"), "max_tokens"),
        (json!("content_filter"), "refusal"),
        (json!(null), "end_turn"),
    ] {
        let input = format!(
            "{}{}data: [DONE]\n\n",
            chunk(json!({"content":"x"}), Value::Null),
            chunk(json!({}), finish.clone())
        );
        let r = run_all_splits(&over_openai, input.as_bytes());
        assert_eq!(r.outcome, StreamOutcome::Complete);
        assert_eq!(accumulate(&r.out)["stop_reason"], expected, "{finish}");
    }
    let input = format!(
        "{}{}data: [DONE]\n\n",
        chunk(json!({"refusal":"I can't help with that."}), Value::Null),
        chunk(json!({}), json!("stop"))
    );
    let r = run_all_splits(&over_openai, input.as_bytes());
    let msg = accumulate(&r.out);
    assert_eq!(msg["stop_reason"], "refusal");
    assert_eq!(
        msg["content"],
        json!([{"type":"text","text":"I can't help with that."}])
    );
}

#[test]
fn out_empty_completion_and_bare_done() {
    // Provider says nothing but finishes cleanly: an empty message.
    let r = run_all_splits(&over_openai, b"data: [DONE]\n\n");
    assert_eq!(r.outcome, StreamOutcome::Complete);
    assert!(!r.first_token);
    assert_eq!(
        r.out_str(),
        [
            ev(
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_unknown","type":"message","role":"assistant","model":"claude-alias","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}"#
            ),
            ev(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":0,"output_tokens":0}}"#
            ),
            ev("message_stop", r#"{"type":"message_stop"}"#),
        ]
        .concat()
    );
}

#[test]
fn out_truncated_fails_once_at_every_cut() {
    let r = run_all_splits(
        &over_openai,
        &OA_TEXT.as_bytes()[..OA_TEXT.find("data: [DONE]").unwrap()],
    );
    assert!(r.out_str().ends_with(&ev(
        "error",
        r#"{"type":"error","error":{"type":"api_error","message":"upstream stream ended before completion"}}"#
    )));
    assert_eq!(error_events(&r.out), 1);
    assert!(!r.out_str().contains("message_stop"));
    assert_eq!(
        r.outcome,
        StreamOutcome::Failed("upstream stream ended before [DONE]".to_owned())
    );
    assert_eq!(r.usage, usage(12, 3));
    assert!(accumulate(&r.out).get("error").is_some());

    // Any cut before "[DONE]" is complete fails with exactly one error event.
    let done_end = OA_TOOLS.rfind(']').unwrap();
    for end in 0..=done_end {
        let r = run(&over_openai, &[&OA_TOOLS.as_bytes()[..end]]);
        assert!(
            matches!(r.outcome, StreamOutcome::Failed(_)),
            "cut at {end}"
        );
        assert_eq!(error_events(&r.out), 1, "cut at {end}");
        assert!(!r.out_str().contains("message_stop"), "cut at {end}");
    }
    let r = run(&over_openai, &[&OA_TOOLS.as_bytes()[..done_end + 1]]);
    assert_eq!(r.outcome, StreamOutcome::Complete);
    accumulate(&r.out);
}

#[test]
fn out_upstream_error_event() {
    let cut = OA_TEXT.find("data: {\"id\":\"chatcmpl-A1\",\"object\":\"chat.completion.chunk\",\"created\":1717000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{},").unwrap();
    let input = format!(
        "{}data: {{\"error\":{{\"message\":\"The server had an error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}}}\n\n{}",
        &OA_TEXT[..cut],
        &OA_TEXT[cut..]
    );
    let r = run_all_splits(&over_openai, input.as_bytes());
    assert!(r.out_str().ends_with(&ev(
        "error",
        r#"{"type":"error","error":{"type":"api_error","message":"The server had an error"}}"#
    )));
    assert_eq!(error_events(&r.out), 1);
    assert_eq!(
        r.outcome,
        StreamOutcome::Failed("upstream error event: The server had an error".to_owned())
    );
    assert!(r.first_token);
    // Started normally before the error: message_start, text block start, 2 deltas.
    assert_eq!(r.out_str().matches("event: ").count(), 5);
}

#[test]
fn out_over_anthropic_provider_stream() {
    // Anthropic -> OpenAI chunks -> Anthropic again: the content survives
    // (thinking is dropped by the OpenAI leg).
    let r = run_all_splits(&over_anthropic, ANT_TOOLS.as_bytes());
    assert_eq!(r.outcome, StreamOutcome::Complete);
    // AnthropicStream reads input tokens from message_start only.
    assert_eq!(r.usage, usage(472, 89));
    let msg = accumulate(&r.out);
    assert_eq!(
        msg,
        json!({"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-alias",
               "content":[
                   {"type":"text","text":"Checking."},
                   {"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{"location":"San Francisco"}},
                   {"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}],
               "stop_reason":"tool_use","stop_sequence":null,
               "usage":{"input_tokens":472,"output_tokens":89}})
    );

    let r = run_all_splits(&over_anthropic, ANT_TEXT.as_bytes());
    assert_eq!(r.outcome, StreamOutcome::Complete);
    assert_eq!(
        accumulate(&r.out)["content"],
        json!([{"type":"text","text":"Hello! ¿Qué tal? 👋"}])
    );

    // Upstream Anthropic error mid-stream: one Anthropic error event.
    let cut = ANT_TEXT.find("event: content_block_stop").unwrap();
    let input = format!(
        "{}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n{}",
        &ANT_TEXT[..cut],
        &ANT_TEXT[cut..]
    );
    let r = run_all_splits(&over_anthropic, input.as_bytes());
    assert!(r.out_str().ends_with(&ev(
        "error",
        r#"{"type":"error","error":{"type":"api_error","message":"Overloaded"}}"#
    )));
    assert_eq!(error_events(&r.out), 1);
    assert_eq!(
        r.outcome,
        StreamOutcome::Failed("upstream error event: overloaded_error: Overloaded".to_owned())
    );
}

#[test]
fn out_stream_matches_non_streamed_response() {
    // The same completion streamed and not streamed gives the same Message.
    let body = br#"{"id":"chatcmpl-T","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Checking.","tool_calls":[{"id":"call_AAA","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},{"id":"call_BBB","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Rome\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":80,"completion_tokens":40,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":64}}}"#;
    let (whole, u) = from_openai_response(body, "claude-alias").unwrap();
    let whole: Value = serde_json::from_slice(&whole).unwrap();
    let streamed = accumulate(&run(&over_openai, &[OA_TOOLS.as_bytes()]).out);
    assert_eq!(streamed, whole);
    assert_eq!(u, usage(80, 40));
}

#[test]
fn out_finish_is_idempotent_and_feed_after_end_is_ignored() {
    let mut t = over_openai();
    let mut out = Vec::new();
    t.feed(OA_TEXT.as_bytes(), &mut out);
    let len = out.len();
    t.feed(b"data: {\"error\":{\"message\":\"late\"}}\n\n", &mut out);
    assert_eq!(out.len(), len);
    assert_eq!(t.finish(&mut out), StreamOutcome::Complete);
    assert_eq!(t.finish(&mut out), StreamOutcome::Complete);
    assert_eq!(out.len(), len);

    let mut t = over_openai();
    let mut out = Vec::new();
    let first = t.finish(&mut out);
    assert!(matches!(first, StreamOutcome::Failed(_)));
    assert_eq!(t.finish(&mut out), first);
    assert_eq!(error_events(&out), 1);
}

// ------------------------------------------------------------ pass-through

const OPTS: RequestOptions = RequestOptions {
    model: "claude-sonnet-4-5-20250929",
    default_max_tokens: 4096,
};

#[test]
fn passthrough_request_replaces_only_model() {
    let body = json!({"model":"claude-alias","max_tokens":1024,"stream":true,
        "system":[{"type":"text","text":"Long","cache_control":{"type":"ephemeral"}}],
        "thinking":{"type":"enabled","budget_tokens":2048},
        "messages":[{"role":"user","content":[{"type":"text","text":"Hi","cache_control":{"type":"ephemeral","ttl":"1h"}}]}],
        "tools":[{"type":"web_search_20250305","name":"web_search","max_uses":3}],
        "top_k":5,"future_field":{"x":[1,2.5,null]}});
    let up = passthrough_request(&body, &OPTS).unwrap();
    assert_eq!(up.path_suffix, "/messages");
    assert!(up.stream);
    assert!(!up.usage_injected);
    let mut expected = body.clone();
    expected["model"] = json!(OPTS.model);
    assert_eq!(serde_json::from_slice::<Value>(&up.body).unwrap(), expected);

    let up = passthrough_request(&json!({"model":"a","messages":[]}), &OPTS).unwrap();
    assert!(!up.stream);
    assert_eq!(
        serde_json::from_slice::<Value>(&up.body).unwrap(),
        json!({"model":OPTS.model,"messages":[]})
    );
    assert!(matches!(
        passthrough_request(&json!("x"), &OPTS),
        Err(TranslateError::Invalid { .. })
    ));
}

#[test]
fn passthrough_response_table() {
    let body = br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"text","text":"Hi","citations":null}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":6,"service_tier":"standard"}}"#;
    let (out, u) = passthrough_response(body).unwrap();
    assert_eq!(out, body.to_vec());
    assert_eq!(u, usage(20, 6));
    let (_, u) = passthrough_response(b"{}").unwrap();
    assert_eq!(u, Usage::default());
    for bad in [
        &b"nope"[..],
        b"[]",
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    ] {
        assert!(matches!(
            passthrough_response(bad),
            Err(TranslateError::BadUpstream(_))
        ));
    }
}

#[test]
fn passthrough_stream_is_byte_identical() {
    let r = run_all_splits(&passthrough, ANT_TEXT.as_bytes());
    assert_eq!(r.out_str(), ANT_TEXT);
    assert_eq!(r.outcome, StreamOutcome::Complete);
    assert_eq!(r.usage, usage(35, 15));
    assert!(r.first_token);

    // CRLF, thinking, tools; message_delta carries the final input counts.
    let r = run_all_splits(&passthrough, ANT_TOOLS.as_bytes());
    assert_eq!(r.out_str(), ANT_TOOLS);
    assert_eq!(r.outcome, StreamOutcome::Complete);
    assert_eq!(r.usage, usage(572, 89));
    accumulate_passthrough(&r.out);

    // No first token before the first content_block_delta.
    let cut = ANT_TEXT.find("event: content_block_delta").unwrap();
    let r = run(&passthrough, &[&ANT_TEXT.as_bytes()[..cut]]);
    assert!(!r.first_token);
    assert_eq!(r.usage, usage(35, 1));
}

/// The pass-through output of ANT_TOOLS still reads as a valid stream.
fn accumulate_passthrough(out: &[u8]) {
    let mut splitter = SseSplitter::new();
    let mut events = Vec::new();
    splitter.feed(out, &mut events).unwrap();
    let names: Vec<_> = events.iter().filter_map(|e| e.event.clone()).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
}

#[test]
fn passthrough_stream_truncated_fails_once_at_every_cut() {
    let last_brace = ANT_TOOLS.rfind('}').unwrap();
    for end in 0..=last_brace {
        let r = run(&passthrough, &[&ANT_TOOLS.as_bytes()[..end]]);
        assert!(
            matches!(r.outcome, StreamOutcome::Failed(_)),
            "cut at {end}"
        );
        assert_eq!(error_events(&r.out), 1, "cut at {end}");
        assert!(!r.out_str().contains("message_stop"), "cut at {end}");
    }
    let r = run(&passthrough, &[&ANT_TOOLS.as_bytes()[..last_brace + 1]]);
    assert_eq!(r.outcome, StreamOutcome::Complete);

    let cut = ANT_TEXT.find("event: message_stop").unwrap();
    let r = run_all_splits(&passthrough, &ANT_TEXT.as_bytes()[..cut]);
    assert_eq!(
        r.out_str(),
        format!(
            "{}{}",
            &ANT_TEXT[..cut],
            ev(
                "error",
                r#"{"type":"error","error":{"type":"api_error","message":"upstream stream ended before completion"}}"#
            )
        )
    );
    assert_eq!(
        r.outcome,
        StreamOutcome::Failed("upstream stream ended before message_stop".to_owned())
    );
    assert_eq!(r.usage, usage(35, 15));
}

#[test]
fn passthrough_stream_forwards_upstream_error_once() {
    let cut = ANT_TEXT.find("event: content_block_stop").unwrap();
    let err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let input = format!("{}{err}{}", &ANT_TEXT[..cut], &ANT_TEXT[cut..]);
    let r = run_all_splits(&passthrough, input.as_bytes());
    assert_eq!(r.out_str(), format!("{}{err}", &ANT_TEXT[..cut]));
    assert_eq!(error_events(&r.out), 1);
    assert_eq!(
        r.outcome,
        StreamOutcome::Failed("upstream error event: overloaded_error: Overloaded".to_owned())
    );

    // A corrupted event: one gateway error event instead.
    let bad = ANT_TEXT.replacen("\"text\":\"Hello\"}}", "\"text\":\"Hello\"}", 1);
    let r = run_all_splits(&passthrough, bad.as_bytes());
    assert_eq!(error_events(&r.out), 1);
    assert!(r.out_str().ends_with(&ev(
        "error",
        r#"{"type":"error","error":{"type":"api_error","message":"upstream sent an unparsable stream event"}}"#
    )));
    assert!(matches!(r.outcome, StreamOutcome::Failed(_)));
}

// ------------------------------------------------------------ round trips

#[test]
fn request_round_trip_through_anthropic_translator() {
    // Anthropic request -> OpenAI (canonical) -> the existing OpenAI ->
    // Anthropic translator gives back the same request.
    let original = json!({
        "model": OPTS.model, "max_tokens": 512, "system": "You are terse.",
        "messages": [
            {"role":"user","content":"Weather in Paris?"},
            {"role":"assistant","content":[
                {"type":"text","text":"Checking."},
                {"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris","days":[1,2]}}]},
            {"role":"user","content":[
                {"type":"tool_result","tool_use_id":"toolu_01","content":"18C"},
                {"type":"text","text":"And Rome?"}]},
            {"role":"assistant","content":"Let me look."},
            {"role":"user","content":[
                {"type":"text","text":"Also this:"},
                {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
                {"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}}]}],
        "tools": [{"name":"get_weather","description":"Get weather",
                   "input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],
        "tool_choice": {"type":"auto","disable_parallel_tool_use":true},
        "temperature": 0.5, "top_p": 0.9, "stop_sequences": ["END"], "stream": true,
        "metadata": {"user_id":"u-1"}
    });
    let openai = to_openai(&original).unwrap();
    let up = request(Inbound::ChatCompletions, Wire::Anthropic, &openai, &OPTS).unwrap();
    assert!(up.stream);
    assert_eq!(serde_json::from_slice::<Value>(&up.body).unwrap(), original);

    // tool_choice variants survive too.
    for choice in [
        json!({"type":"any"}),
        json!({"type":"none"}),
        json!({"type":"tool","name":"get_weather"}),
        json!({"type":"tool","name":"get_weather","disable_parallel_tool_use":true}),
    ] {
        let mut req = original.clone();
        req["tool_choice"] = choice.clone();
        let openai = to_openai(&req).unwrap();
        let up = request(Inbound::ChatCompletions, Wire::Anthropic, &openai, &OPTS).unwrap();
        let back: Value = serde_json::from_slice(&up.body).unwrap();
        assert_eq!(back["tool_choice"], choice);
    }

    // And the OpenAI form is accepted as-is by the OpenAI wire.
    let up = request(Inbound::ChatCompletions, Wire::OpenAi, &openai, &OPTS).unwrap();
    assert!(up.stream);
    assert!(!up.usage_injected, "include_usage is already requested");
}

#[test]
fn response_round_trip_through_anthropic_translator() {
    // Anthropic Message -> OpenAI (existing translator) -> Anthropic Message.
    let original = br#"{"id":"msg_02","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"location":"San Francisco, CA"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":100,"output_tokens":40}}"#;
    let (openai, u1) = response(Inbound::ChatCompletions, Wire::Anthropic, original, 7).unwrap();
    let (back, u2) = from_openai_response(&openai, "claude-sonnet-4-5").unwrap();
    assert_eq!(u1, u2);
    let mut expected: Value = serde_json::from_slice(original).unwrap();
    expected["id"] = json!("msg_02");
    assert_eq!(serde_json::from_slice::<Value>(&back).unwrap(), expected);
}

// ------------------------------------------------------------ garbage

/// Replaces a random subtree of `v` with random JSON.
fn mutate(rng: &mut Rng, v: &mut Value) {
    let descend = rng.below(3) > 0;
    match v {
        Value::Object(m) if descend && !m.is_empty() => {
            let i = rng.below(m.len() as u64) as usize;
            if let Some(child) = m.values_mut().nth(i) {
                mutate(rng, child);
            }
        }
        Value::Array(a) if descend && !a.is_empty() => {
            let i = rng.below(a.len() as u64) as usize;
            mutate(rng, &mut a[i]);
        }
        _ => *v = rng.json(3),
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0xA17B_0F1C_5EED_1234);
    let valid = json!({
        "model":"m","max_tokens":64,"system":[{"type":"text","text":"s"}],"stream":true,
        "messages":[
            {"role":"user","content":[{"type":"text","text":"q"},
                {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAA"}}]},
            {"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},
                {"type":"tool_use","id":"t1","name":"f","input":{"a":1}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,
                "content":[{"type":"text","text":"r"},{"type":"image","source":{"type":"url","url":"https://x"}}]}]}],
        "tools":[{"name":"f","input_schema":{"type":"object"}}],
        "tool_choice":{"type":"tool","name":"f"},"metadata":{"user_id":"u"},"stop_sequences":["x"]
    });
    assert!(to_openai(&valid).is_ok());
    for round in 0..4000 {
        let v = if round % 2 == 0 {
            rng.json(5)
        } else {
            let mut v = valid.clone();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut rng, &mut v);
            }
            v
        };
        if let Ok(openai) = to_openai(&v) {
            for wire in [Wire::OpenAi, Wire::Anthropic] {
                let _ = request(Inbound::ChatCompletions, wire, &openai, &OPTS);
            }
        }
        let _ = passthrough_request(&v, &OPTS);
        let bytes = serde_json::to_vec(&v).unwrap();
        let _ = from_openai_response(&bytes, "m");
        let _ = passthrough_response(&bytes);
        let _ = from_openai_error(400, &bytes);
    }
    let makers: [Make; 3] = [&over_openai, &over_anthropic, &passthrough];
    for round in 0..600 {
        let data = if round % 3 == 0 {
            let len = rng.below(300) as usize;
            let mut data = rng.bytes(len);
            for b in data.iter_mut() {
                match rng.below(10) {
                    0 => *b = b'\n',
                    1 => *b = b':',
                    2 => *b = b'{',
                    _ => {}
                }
            }
            data.splice(0..0, b"data: ".iter().copied());
            data
        } else {
            // Mutated real streams.
            let src = [OA_TEXT, OA_TOOLS, GEMINI_TOOLS, ANT_TEXT, ANT_TOOLS][rng.below(5) as usize]
                .as_bytes();
            let mut data = src.to_vec();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(data.len() as u64) as usize;
                data[i] = rng.next() as u8;
            }
            data
        };
        for make in makers {
            let whole = run(make, &[&data]);
            // Exactly one error event when (and only when) the stream failed.
            let errors = error_events(&whole.out);
            match &whole.outcome {
                StreamOutcome::Complete => assert_eq!(errors, 0),
                StreamOutcome::Failed(_) => assert_eq!(errors, 1),
            }
            let mid = rng.below(data.len() as u64 + 1) as usize;
            let (a, b) = data.split_at(mid);
            assert_eq!(run(make, &[a, b]), whole);
            let mut t = make();
            let mut out = Vec::new();
            t.feed(&data, &mut out);
            let first = t.finish(&mut out);
            assert_eq!(t.finish(&mut out), first);
        }
    }
}
