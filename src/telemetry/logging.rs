//! Process logs through `tracing`: human-readable or JSON lines on stderr. Every line logged
//! inside a request's span (`request_span`) carries that request's `request_id`, `trace_id` and
//! `span_id`, so a log line, its request record and its trace join on the same ids:
//!
//! ```ignore
//! let span = telemetry::request_span(&state.id, trace.as_ref());
//! let _guard = span.enter();                 // synchronous code, or:
//! async { /* … */ }.instrument(span).await;  // futures (tracing::Instrument)
//! tracing::warn!(attempt = 2, "provider answered 503; falling back");
//! // {"timestamp":"…","level":"WARN","attempt":2,"message":"provider answered 503; falling back",
//! //  "target":"switchyard::extproc","span":{"request_id":"req_…","trace_id":"4bf9…","span_id":"00f0…","name":"request"}}
//! ```
//!
//! Never log secrets: log key names and `key_id`s, not presented keys; never a provider's
//! `Secret::expose()`; never collector headers (their `Debug` is redacted).

use super::context::RequestTrace;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// The subscriber `init_logging` installs, writing to `writer` (tests capture it).
/// `level` is an `EnvFilter` directive: `info`, or `warn,switchyard=debug`.
pub fn subscriber<W>(
    json: bool,
    level: &str,
    writer: W,
) -> Result<Box<dyn Subscriber + Send + Sync>, String>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(level).map_err(|e| format!("bad log level '{level}': {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    Ok(if json {
        Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        )
    } else {
        Box::new(builder.finish())
    })
}

/// Install the global logger (stderr). Errors on a bad `level` or when one is already set.
pub fn init_logging(json: bool, level: &str) -> anyhow::Result<()> {
    subscriber(json, level, std::io::stderr)
        .map_err(anyhow::Error::msg)?
        .try_init()?;
    Ok(())
}

/// The span to run a request's work in: its fields appear on every log line inside it. Its
/// level is ERROR so that it is enabled whatever the filter (a span filtered out would take
/// its ids off the warnings logged inside it).
pub fn request_span(request_id: &str, trace: Option<&RequestTrace>) -> tracing::Span {
    let span = tracing::error_span!(
        "request",
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    if let Some(t) = trace {
        span.record("trace_id", t.trace_id_hex().as_str());
        span.record("span_id", t.span_id_hex().as_str());
    }
    span
}
