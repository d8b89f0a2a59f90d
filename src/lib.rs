//! Switchyard: an LLM gateway built as an Envoy external processor.
//!
//! Envoy terminates clients and streams each request's headers and bodies to this processor
//! over gRPC; the processor authenticates, routes, and rewrites requests and responses for each
//! provider attempt. Module map:
//! - `config`: YAML → validated immutable `Snapshot`, hot-swapped with `ArcSwap`;
//! - `auth`: hashed client keys; `routing`: the pure routing decision;
//! - `translate`: provider wire formats (pure); `extproc`: the ext_proc gRPC exchanges;
//! - `envoy`: the Envoy bootstrap derived from the config; `record`: request records;
//! - `sigv4`: AWS Signature Version 4 request signing (pure, for Bedrock);
//! - `telemetry`: OpenTelemetry traces and metrics (OTLP) and the Prometheus registry;
//! - `store`: dynamic keys, the token/budget ledger, usage and request logs (memory or Redis);
//! - `users`: Console users (email + argon2id password hash) and sign-in verification;
//! - `server`, `admin`, `up`: processes.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_client;
pub mod auth;
pub mod config;
pub mod console;
pub mod envoy;
pub mod errors;
pub mod extproc;
pub mod health;
pub mod record;
pub mod routing;
pub mod server;
pub mod sigv4;
pub mod store;
pub mod telemetry;
pub mod translate;
pub mod up;
pub mod users;
