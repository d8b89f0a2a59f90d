#![no_main]
//! The Anthropic Messages dialect: request conversion, pass-through responses, and both stream
//! adaptors (OpenAI chunks → Anthropic events, and Anthropic pass-through).

use switchyard::translate::inbound_anthropic as ia;
use switchyard::translate::{self, Inbound, StreamTranslator, Wire};

fn feed(t: &mut dyn StreamTranslator, rest: &[u8], step0: usize) {
    let mut out = Vec::new();
    let (mut at, mut step) = (0, step0);
    while at < rest.len() {
        let end = (at + step).min(rest.len());
        t.feed(&rest[at..end], &mut out);
        at = end;
        step = 1 + (step * 7 + usize::from(rest[end - 1])) % 64;
    }
    let _ = t.finish(&mut out);
    let _ = (t.usage(), t.first_token_seen());
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => {
            if let Ok(body) = serde_json::from_slice::<serde_json::Value>(rest) {
                let _ = ia::to_openai(&body);
            }
        }
        1 => {
            let _ = ia::from_openai_response(rest, "fuzz-model");
            let _ = ia::passthrough_response(rest);
        }
        2 => {
            let _ = ia::from_openai_error(400 + u16::from(mode), rest);
        }
        3 => {
            let inner = translate::stream(Inbound::ChatCompletions, Wire::OpenAi, true, 1);
            feed(&mut ia::AnthropicOut::new(inner, "fuzz-model"), rest, 1 + usize::from(mode >> 3));
        }
        _ => feed(&mut ia::AnthropicPassthroughStream::new(), rest, 1 + usize::from(mode >> 3)),
    }
});
