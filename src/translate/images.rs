//! `/v1/images/generations`. Only OpenAI-wire providers (OpenAI, Azure, compatible servers)
//! generate images through this API, so the request is forwarded with the model swapped and
//! the response passed through; `gpt-image-*` models report token usage, which we read.

use super::{RequestOptions, TranslateError, UpstreamRequest, Usage, Wire, u64_at};
use serde_json::Value;

pub(crate) fn request(
    wire: Wire,
    body: &Value,
    opts: &RequestOptions,
) -> Result<UpstreamRequest, TranslateError> {
    if wire != Wire::OpenAi {
        return Err(TranslateError::unsupported(
            "image generation is only available from OpenAI-compatible providers",
            Some("model".into()),
        ));
    }
    let Value::Object(obj) = body else {
        return Err(TranslateError::invalid(
            "request body must be a JSON object",
            None,
        ));
    };
    if !obj.get("prompt").is_some_and(Value::is_string) {
        return Err(TranslateError::invalid(
            "`prompt` is required and must be a string",
            Some("prompt".into()),
        ));
    }
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(TranslateError::unsupported(
            "streamed image generation is not supported by the gateway",
            Some("stream".into()),
        ));
    }
    let mut obj = obj.clone();
    obj.insert("model".into(), Value::String(opts.model.to_owned()));
    let body = serde_json::to_vec(&obj)
        .map_err(|e| TranslateError::invalid(format!("cannot serialise request: {e}"), None))?;
    Ok(UpstreamRequest {
        path_suffix: "/images/generations".to_owned(),
        body,
        stream: false,
        usage_injected: false,
    })
}

pub(crate) fn response(body: &[u8]) -> Result<(Vec<u8>, Usage), TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::BadUpstream(format!("provider sent invalid JSON: {e}")))?;
    if !v.get("data").is_some_and(Value::is_array) {
        return Err(TranslateError::BadUpstream(
            "image response has no `data` list".to_owned(),
        ));
    }
    let usage = v.get("usage").map_or(Usage::default(), |u| Usage {
        input_tokens: u64_at(u, "input_tokens"),
        output_tokens: u64_at(u, "output_tokens"),
    });
    Ok((body.to_vec(), usage))
}

/// What an image request asks for, priced per image from the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageOrder {
    pub n: u64,
    pub size: String,
    pub quality: String,
}

impl ImageOrder {
    /// The order in a client body, with OpenAI's defaults (1 image, 1024x1024, standard).
    pub fn of(body: &Value) -> ImageOrder {
        let text = |k: &str, default: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_owned()
        };
        ImageOrder {
            n: body.get("n").and_then(Value::as_u64).unwrap_or(1),
            size: text("size", "1024x1024"),
            quality: text("quality", "standard"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::{Inbound, request as translate_request};
    use serde_json::json;

    const OPTS: RequestOptions = RequestOptions {
        model: "dall-e-3",
        default_max_tokens: 0,
    };

    #[test]
    fn forwards_with_the_model_swapped_and_rejects_other_wires() {
        let body =
            json!({"model": "images", "prompt": "a lighthouse", "n": 2, "size": "1024x1792"});
        let up = translate_request(Inbound::Images, Wire::OpenAi, &body, &OPTS).unwrap();
        assert_eq!(up.path_suffix, "/images/generations");
        let sent: Value = serde_json::from_slice(&up.body).unwrap();
        assert_eq!(sent["model"], "dall-e-3");
        assert_eq!(sent["n"], 2);
        let e = translate_request(Inbound::Images, Wire::Anthropic, &body, &OPTS).unwrap_err();
        assert!(matches!(e, TranslateError::Unsupported { .. }));
        let e = translate_request(Inbound::Images, Wire::OpenAi, &json!({"model": "x"}), &OPTS)
            .unwrap_err();
        assert_eq!(e.param(), Some("prompt"));
    }

    #[test]
    fn reads_usage_and_orders() {
        let (out, u) =
            response(br#"{"created":1,"data":[{"url":"u"}],"usage":{"input_tokens":9,"output_tokens":4160,"total_tokens":4169}}"#).unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (9, 4160));
        assert!(out.starts_with(b"{\"created\""));
        assert!(response(b"{}").is_err());
        assert_eq!(
            ImageOrder::of(&json!({"prompt": "x", "n": 3, "quality": "hd"})),
            ImageOrder {
                n: 3,
                size: "1024x1024".into(),
                quality: "hd".into()
            }
        );
    }
}
