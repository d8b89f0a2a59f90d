//! Golden files: what each provider wire receives for a fixed set of client requests, kept in
//! `tests/data/golden/<case>.<wire>.json` so a change to any translator shows up as a reviewable
//! diff. `SWITCHYARD_UPDATE_GOLDEN=1 cargo test golden` rewrites them.

use super::{Inbound, RequestOptions, TranslateError, Wire, request};
use serde_json::{Value, json};
use std::path::PathBuf;

const WIRES: [(Wire, &str); 5] = [
    (Wire::OpenAi, "openai"),
    (Wire::Anthropic, "anthropic"),
    (Wire::Gemini, "gemini"),
    (Wire::Bedrock, "bedrock"),
    (Wire::Cohere, "cohere"),
];

fn cases() -> Vec<(&'static str, Inbound, Value)> {
    vec![
        (
            "chat_system_multiturn",
            Inbound::ChatCompletions,
            json!({"model": "m", "max_tokens": 200, "temperature": 0.2, "top_p": 0.9, "stop": ["END"],
                   "messages": [{"role": "system", "content": "You are terse."},
                                {"role": "user", "content": "Hi"},
                                {"role": "assistant", "content": "Hello."},
                                {"role": "user", "content": "Weather in Paris?"}]}),
        ),
        (
            "chat_tools_round_trip",
            Inbound::ChatCompletions,
            json!({"model": "m", "max_tokens": 100, "tool_choice": "auto",
                   "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
                   "messages": [{"role": "user", "content": "Weather in Paris?"},
                                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                                   "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                                {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}]}),
        ),
        (
            "chat_vision_stream",
            Inbound::ChatCompletions,
            json!({"model": "m", "max_tokens": 50, "stream": true,
                   "messages": [{"role": "user", "content": [
                       {"type": "text", "text": "What is this?"},
                       {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}),
        ),
        (
            "chat_json_mode",
            Inbound::ChatCompletions,
            json!({"model": "m", "max_tokens": 64, "response_format": {"type": "json_object"},
                   "messages": [{"role": "user", "content": "Give me a JSON greeting"}]}),
        ),
        (
            "embeddings_list",
            Inbound::Embeddings,
            json!({"model": "m", "input": ["first", "second"]}),
        ),
    ]
}

/// The golden form: path and body, or the error a wire gives for a request it cannot serve.
fn render(result: Result<super::UpstreamRequest, TranslateError>) -> Value {
    match result {
        Ok(up) => json!({
            "path": up.path_suffix,
            "stream": up.stream,
            "body": serde_json::from_slice::<Value>(&up.body).unwrap_or(Value::Null),
        }),
        Err(e) => json!({ "error": e.to_string(), "param": e.param() }),
    }
}

#[test]
fn translations_match_the_golden_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden");
    let update = std::env::var_os("SWITCHYARD_UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (name, inbound, body) in cases() {
        for (wire, wire_name) in WIRES {
            let model = if inbound == Inbound::Embeddings {
                "embed-model"
            } else {
                "provider-model"
            };
            let opts = RequestOptions {
                model,
                default_max_tokens: 1024,
            };
            let got = render(request(inbound, wire, &body, &opts));
            let path = dir.join(format!("{name}.{wire_name}.json"));
            let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
            if update {
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "translations differ from the golden files (review, then SWITCHYARD_UPDATE_GOLDEN=1 cargo test golden): {stale:#?}"
    );
}
