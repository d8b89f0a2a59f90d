//! One harness for every translator: the first byte picks request, response or stream; the
//! rest is the input. Streams are fed in chunks whose sizes come from the input itself, so the
//! fuzzer explores event boundaries too. Any panic or runaway allocation is a finding.

use switchyard::translate::{self, Inbound, RequestOptions, Wire};

pub fn run(wire: Wire, data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let inbound = if mode & 0x80 == 0 {
        Inbound::ChatCompletions
    } else {
        Inbound::Embeddings
    };
    match mode % 4 {
        0 => {
            if let Ok(body) = serde_json::from_slice::<serde_json::Value>(rest) {
                let opts = RequestOptions {
                    model: "fuzz-model",
                    default_max_tokens: 1024,
                };
                let _ = translate::request(inbound, wire, &body, &opts);
            }
        }
        1 => {
            let _ = translate::response(inbound, wire, rest, 1_700_000_000);
        }
        2 => {
            let _ = translate::provider_error(wire, 400 + u16::from(mode), rest);
        }
        _ => {
            let mut t = translate::stream(inbound, wire, mode & 0x40 != 0, 1_700_000_000);
            let mut out = Vec::new();
            let mut at = 0;
            let mut step = 1 + usize::from(mode >> 2);
            while at < rest.len() {
                let end = (at + step).min(rest.len());
                t.feed(&rest[at..end], &mut out);
                at = end;
                step = 1 + (step * 7 + usize::from(rest[end - 1])) % 64;
            }
            let _ = t.finish(&mut out);
            let _ = (t.usage(), t.first_token_seen());
        }
    }
}
