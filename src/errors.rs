//! One place maps every failure to the status and body a client sees. Bodies use the OpenAI
//! error shape `{"error":{"message","type","code","param"}}`, or on the Anthropic Messages
//! endpoint Anthropic's `{"type":"error","error":{"type","message"}}`.

use crate::routing::RouteError;
use crate::translate::TranslateError;

#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: u16,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    /// Seconds for a `retry-after` header (rate limits).
    pub retry_after: Option<u64>,
}

impl Rejection {
    pub fn new(
        status: u16,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Rejection {
        Rejection {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn with_param(mut self, param: Option<String>) -> Rejection {
        self.param = param;
        self
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "error": { "message": self.message, "type": self.kind, "code": self.code, "param": self.param }
        }))
        .unwrap_or_default()
    }

    /// The body in the client's dialect.
    pub fn body_in(&self, dialect: Dialect) -> Vec<u8> {
        match dialect {
            Dialect::OpenAi => self.body(),
            Dialect::Anthropic => crate::translate::inbound_anthropic::rejection_body(self),
        }
    }

    pub fn missing_key() -> Rejection {
        Rejection::new(
            401,
            "authentication_error",
            "missing_api_key",
            "Missing API key: send `Authorization: Bearer sk-…` or `x-api-key: sk-…`",
        )
    }
    pub fn unknown_key() -> Rejection {
        Rejection::new(
            401,
            "authentication_error",
            "invalid_api_key",
            "Invalid API key",
        )
    }
    pub fn malformed(message: impl Into<String>) -> Rejection {
        Rejection::new(400, "invalid_request_error", "invalid_request", message)
    }
    pub fn too_large(limit: u64) -> Rejection {
        Rejection::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("Request body is larger than the gateway's limit of {limit} bytes"),
        )
    }
    pub fn not_found_path(path: &str) -> Rejection {
        Rejection::new(
            404,
            "invalid_request_error",
            "unknown_url",
            format!("Unknown endpoint: {path}"),
        )
    }
    pub fn method_not_allowed(method: &str, path: &str) -> Rejection {
        Rejection::new(
            405,
            "invalid_request_error",
            "method_not_allowed",
            format!("{method} is not supported on {path}"),
        )
    }
    pub fn all_failed(detail: &str) -> Rejection {
        Rejection::new(
            502,
            "upstream_error",
            "all_backends_failed",
            format!("All backends failed; last error: {detail}"),
        )
    }
    /// A token limit or budget would be exceeded.
    pub fn limited(denied: &crate::store::Denied) -> Rejection {
        let mut r = Rejection::new(
            429,
            "rate_limit_error",
            "rate_limit_exceeded",
            denied.message.clone(),
        );
        r.retry_after = Some(denied.retry_after_secs.max(1));
        r
    }
    pub fn store_unavailable() -> Rejection {
        Rejection::new(
            503,
            "api_error",
            "key_store_unavailable",
            "The key store is unavailable; try again shortly",
        )
    }
    pub fn internal(message: impl Into<String>) -> Rejection {
        Rejection::new(500, "internal_error", "internal_error", message)
    }
}

/// Which API the client speaks, for error bodies and response shapes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    #[default]
    OpenAi,
    Anthropic,
}

impl From<&RouteError> for Rejection {
    // Exhaustive on purpose: a new variant must decide its status here.
    fn from(e: &RouteError) -> Rejection {
        match e {
            RouteError::UnknownModel(_) => Rejection::new(
                404,
                "invalid_request_error",
                "model_not_found",
                e.to_string(),
            ),
            RouteError::Disabled(_) => Rejection::new(
                404,
                "invalid_request_error",
                "model_not_found",
                e.to_string(),
            ),
            RouteError::NotAllowed(_) => {
                Rejection::new(403, "permission_error", "model_not_allowed", e.to_string())
            }
        }
    }
}

impl From<&TranslateError> for Rejection {
    fn from(e: &TranslateError) -> Rejection {
        let (status, kind, code, param) = match e {
            TranslateError::Unsupported { param, .. } => (
                400,
                "invalid_request_error",
                "unsupported_parameter",
                param.clone(),
            ),
            TranslateError::Invalid { param, .. } => (
                400,
                "invalid_request_error",
                "invalid_request",
                param.clone(),
            ),
            TranslateError::BadUpstream(_) => {
                (502, "upstream_error", "bad_upstream_response", None)
            }
        };
        Rejection::new(status, kind, code, e.to_string()).with_param(param)
    }
}
