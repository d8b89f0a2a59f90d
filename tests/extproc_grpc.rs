//! The processor driven directly over gRPC, as Envoy would, without Envoy: message sequences
//! Envoy never sends in that order, garbage bodies, and the decisions a reply carries.

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    HttpBody, HttpHeaders, ProcessingRequest, ProcessingResponse, processing_request::Request,
    processing_response::Response,
};
use std::io::Write;
use switchyard::server::{self, Addrs, Loader};
use tokio_stream::StreamExt;

const KEY: &str = "sk-grpc-test";

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

async fn start() -> String {
    let dir = tempfile::tempdir().unwrap().keep();
    let cfg = dir.join("gw.yaml");
    let hash = switchyard::auth::KeyHash::of(KEY);
    let mut f = std::fs::File::create(&cfg).unwrap();
    write!(
        f,
        "records: {{ path: records.jsonl }}\nproviders:\n  - {{ id: oa, kind: openai_compatible, base_url: \"http://127.0.0.1:9/v1\" }}\nmodels:\n  - {{ name: m, provider: oa }}\nkeys:\n  - {{ name: k, hash: \"{hash}\" }}\n"
    )
    .unwrap();
    let extproc = free_addr();
    server::start(
        Loader {
            path: cfg,
            session_keys: vec![],
        },
        Addrs {
            extproc: extproc.clone(),
            admin: free_addr(),
            admin_token: None,
        },
    )
    .await
    .unwrap();
    format!("http://{extproc}")
}

fn headers(pairs: &[(&str, &str)], end_of_stream: bool) -> Request {
    Request::RequestHeaders(HttpHeaders {
        headers: Some(HeaderMap {
            headers: pairs
                .iter()
                .map(|(k, v)| HeaderValue {
                    key: k.to_string(),
                    value: String::new(),
                    raw_value: v.as_bytes().to_vec(),
                })
                .collect(),
        }),
        end_of_stream,
        ..Default::default()
    })
}

fn body(bytes: &[u8]) -> Request {
    Request::RequestBody(HttpBody {
        body: bytes.to_vec(),
        end_of_stream: true,
        ..Default::default()
    })
}

/// Send the messages on one stream, collecting one reply per message (or fewer if it ends).
async fn exchange(url: &str, msgs: Vec<Request>, upstream: bool) -> Vec<ProcessingResponse> {
    let mut client = ExternalProcessorClient::connect(url.to_string())
        .await
        .unwrap();
    let n = msgs.len();
    let reqs = tokio_stream::iter(msgs.into_iter().map(|r| ProcessingRequest {
        request: Some(r),
        ..Default::default()
    }));
    let mut req = tonic::Request::new(reqs);
    if upstream {
        req.metadata_mut()
            .insert("x-switchyard-phase", "upstream".parse().unwrap());
    }
    let mut replies = client.process(req).await.unwrap().into_inner();
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(std::time::Duration::from_secs(2), replies.next()).await {
            Ok(Some(Ok(r))) => out.push(r),
            _ => break,
        }
    }
    out
}

fn immediate_status(r: &ProcessingResponse) -> Option<(i32, serde_json::Value)> {
    match &r.response {
        Some(Response::ImmediateResponse(i)) => Some((
            i.status.as_ref()?.code,
            serde_json::from_slice(&i.body).ok()?,
        )),
        _ => None,
    }
}

const POST: [(&str, &str); 2] = [(":method", "POST"), (":path", "/v1/chat/completions")];

#[tokio::test]
async fn missing_key_is_an_immediate_401() {
    let url = start().await;
    let out = exchange(&url, vec![headers(&POST, false)], false).await;
    let (status, body) = immediate_status(&out[0]).unwrap();
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "missing_api_key");
}

/// A single-attempt, non-stream chat is direct: its own provider cluster, translated here.
/// A stream keeps the chain cluster, whose attempt filter translates it.
#[tokio::test]
async fn routed_body_names_the_cluster_and_clears_the_route_cache() {
    let url = start().await;
    let auth = format!("Bearer {KEY}");
    let h = [POST[0], POST[1], ("authorization", auth.as_str())];
    for (sent, cluster, translated) in [
        (&br#"{"model":"m","messages":[]}"#[..], "d/oa", true),
        (
            br#"{"model":"m","stream":true,"messages":[]}"#,
            "c/oa",
            false,
        ),
    ] {
        let out = exchange(&url, vec![headers(&h, false), body(sent)], false).await;
        assert_eq!(out.len(), 2);
        let Some(Response::RequestBody(b)) = &out[1].response else {
            panic!("{:?}", out[1])
        };
        let common = b.response.as_ref().unwrap();
        assert!(common.clear_route_cache);
        let set = &common.header_mutation.as_ref().unwrap().set_headers;
        let value = |name: &str| {
            set.iter()
                .map(|h| h.header.as_ref().unwrap())
                .find(|h| h.key == name)
                .map(|h| h.raw_value.clone())
        };
        assert_eq!(value("x-switchyard-cluster").unwrap(), cluster.as_bytes());
        assert_eq!(value(":path").is_some(), translated);
        assert_eq!(common.body_mutation.is_some(), translated);
    }
}

#[tokio::test]
async fn garbage_bodies_get_400_and_the_processor_lives_on() {
    let url = start().await;
    let auth = format!("Bearer {KEY}");
    let h = [POST[0], POST[1], ("authorization", auth.as_str())];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..200 {
        let len = (i * 7) % 300;
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed & 0xff) as u8
            })
            .collect();
        let out = exchange(&url, vec![headers(&h, false), body(&junk)], false).await;
        let (status, _) = immediate_status(&out[1]).unwrap();
        assert_eq!(status, 400);
    }
    let out = exchange(
        &url,
        vec![headers(&h, false), body(br#"{"model":"m"}"#)],
        false,
    )
    .await;
    assert!(matches!(out[1].response, Some(Response::RequestBody(_))));
}

#[tokio::test]
async fn out_of_order_and_orphan_messages_never_panic() {
    let url = start().await;
    // An upstream attempt for a request the processor never saw fails cleanly (500, our shape).
    let out = exchange(
        &url,
        vec![headers(&[("x-request-id", "req_nope")], false)],
        true,
    )
    .await;
    let (status, error) = immediate_status(&out[0]).unwrap();
    assert_eq!(status, 500);
    assert_eq!(error["error"]["type"], "internal_error");
    // Bodies and response phases with no headers first: answered, not crashed.
    let orphan = vec![
        body(b"{}"),
        Request::ResponseHeaders(HttpHeaders::default()),
        Request::ResponseBody(HttpBody {
            body: b"data: x\n\n".to_vec(),
            end_of_stream: true,
            ..Default::default()
        }),
    ];
    assert_eq!(exchange(&url, orphan.clone(), true).await.len(), 3);
    assert_eq!(exchange(&url, orphan, false).await.len(), 3);
    // Still serving.
    let out = exchange(&url, vec![headers(&POST, false)], false).await;
    assert_eq!(immediate_status(&out[0]).unwrap().0, 401);
}
