//! `encoding_format: "base64"` for providers that only answer floats (Gemini, Bedrock, Cohere):
//! the exchange remembers what the client asked and re-encodes the translated OpenAI list. The
//! OpenAI SDKs ask for base64 by default, and openai-node decodes whatever comes back as base64,
//! so floats there would be read as garbage.

use super::TranslateError;
use serde_json::Value;

/// Whether an OpenAI embeddings request asked for base64 vectors.
pub fn wants_base64(body: &Value) -> bool {
    body.get("encoding_format").and_then(Value::as_str) == Some("base64")
}

/// An OpenAI embeddings list with each float vector as the base64 of its little-endian f32
/// values, as OpenAI answers `encoding_format: "base64"`. Vectors already in base64 stay.
pub fn to_base64(list: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let bad = |what: &str| TranslateError::BadUpstream(format!("embeddings response {what}"));
    let mut v: Value = serde_json::from_slice(list).map_err(|_| bad("is not JSON"))?;
    let data = v
        .get_mut("data")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| bad("has no data"))?;
    for item in data {
        let Some(e) = item.get_mut("embedding") else {
            continue;
        };
        if e.is_array() {
            *e = Value::String(f32_base64(e).ok_or_else(|| bad("has a non-numeric value"))?);
        }
    }
    serde_json::to_vec(&v).map_err(|e| bad(&format!("cannot be serialised: {e}")))
}

/// Base64 of a JSON number array as little-endian f32; `None` if any element is not a number.
fn f32_base64(vector: &Value) -> Option<String> {
    let mut bytes = Vec::new();
    for x in vector.as_array()? {
        // f32 is the wire type OpenAI uses for base64 embeddings.
        bytes.extend_from_slice(&(x.as_f64()? as f32).to_le_bytes());
    }
    Some(base64_encode(&bytes))
}

/// Standard base64 (RFC 4648, padded).
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        let sym = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sym(18));
        out.push(sym(12));
        out.push(if chunk.len() > 1 { sym(6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(0) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn float_vectors_become_little_endian_f32_base64() {
        let list = json!({"object":"list","data":[
            {"object":"embedding","index":0,"embedding":[0.12, -0.5, 3e-7]},
            {"object":"embedding","index":1,"embedding":"AAAAAA=="}],
            "model":"","usage":{"prompt_tokens":3,"total_tokens":3}});
        let out: Value =
            serde_json::from_slice(&to_base64(list.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(out["data"][0]["embedding"], "j8L1PQAAAL+wD6E0");
        assert_eq!(
            out["data"][1]["embedding"], "AAAAAA==",
            "already base64: kept"
        );
        assert_eq!(out["usage"], list["usage"]);
        for bad in [
            &br#"{"data":[{"embedding":["x"]}]}"#[..],
            b"{}",
            b"not json",
        ] {
            assert!(matches!(
                to_base64(bad),
                Err(TranslateError::BadUpstream(_))
            ));
        }
        assert_eq!(
            [b"".as_slice(), b"f", b"fo", b"foo", b"foob"].map(base64_encode),
            ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg=="]
        );
    }

    #[test]
    fn only_an_explicit_base64_asks_for_it() {
        assert!(wants_base64(
            &json!({"input":"a","encoding_format":"base64"})
        ));
        assert!(!wants_base64(
            &json!({"input":"a","encoding_format":"float"})
        ));
        assert!(!wants_base64(&json!({"input":"a"})));
    }
}
