//! `switchyard serve`: the ext_proc gRPC server, the admin HTTP server and the config watcher.

use crate::auth::{KeyHash, Principal};
use crate::config::{ConfigErrors, Snapshot};
use crate::extproc::{Processor, Shared};
use crate::record::RecordSink;
use crate::store::{LogSink, Store, StoreOptions};
use crate::telemetry::Telemetry;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Loads the config file and adds keys that live only in this process (the `up` demo key).
#[derive(Clone)]
pub struct Loader {
    pub path: PathBuf,
    pub session_keys: Vec<(KeyHash, Arc<Principal>)>,
}

impl Loader {
    pub fn load(&self) -> Result<Snapshot, ConfigErrors> {
        let mut snap = Snapshot::from_file(&self.path)?;
        for (h, p) in &self.session_keys {
            snap.keys.entry(*h).or_insert_with(|| p.clone());
        }
        Ok(snap)
    }
}

pub struct Addrs {
    pub extproc: String,
    pub admin: String,
    /// The admin API and Console token (`None`: both closed).
    pub admin_token: Option<String>,
}

pub struct Running {
    pub shared: Arc<Shared>,
}

/// Start everything in the current runtime; returns once the listeners are bound.
pub async fn start(loader: Loader, addrs: Addrs) -> anyhow::Result<Running> {
    let snap = loader.load()?;
    for w in &snap.warnings {
        tracing::warn!(config = %loader.path.display(), "{w}");
    }
    // The store is chosen at start: changing `store.redis_url` needs a restart.
    let (store, store_log) = match &snap.redis_url {
        Some(url) => {
            let store = Store::redis(url, StoreOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("cannot use the Redis store: {e}"))?;
            let log = LogSink::start(store.clone(), 10_000);
            (store, Some(log))
        }
        None => (Store::memory(), None),
    };
    let telemetry = Telemetry::start(snap.telemetry.clone());
    telemetry.set_providers(&snap);
    let sink = RecordSink::start(snap.records.path.clone(), snap.records.ring, store_log);
    let live = Arc::new(ArcSwap::from_pointee(snap));
    let shared = Arc::new(Shared::new(live.clone(), sink, store, telemetry.clone()));
    spawn_watcher(loader, live, telemetry);

    let service = Processor::new(shared.clone()).into_service();
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_adaptive_window(Some(true))
        .add_service(service);
    if let Some(path) = addrs.extproc.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
        let uds = tokio::net::UnixListener::bind(path)?;
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(uds);
        tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming(incoming).await {
                tracing::error!(error = %e, "ext_proc server stopped");
            }
        });
    } else {
        let listener = tokio::net::TcpListener::bind(&addrs.extproc).await?;
        // `Server::tcp_nodelay` does not apply to a listener we bind ourselves; without it small
        // ext_proc replies wait on delayed ACKs (~40 ms per message).
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming(incoming).await {
                tracing::error!(error = %e, "ext_proc server stopped");
            }
        });
    }
    crate::admin::spawn(&addrs.admin, shared.clone(), addrs.admin_token.clone()).await?;
    tracing::info!(extproc = %addrs.extproc, admin = %addrs.admin, "switchyard processor listening");
    Ok(Running { shared })
}

fn spawn_watcher(loader: Loader, live: Arc<ArcSwap<Snapshot>>, telemetry: Telemetry) {
    // The watcher re-reads through the loader so session keys survive reloads.
    tokio::spawn(async move {
        let path = loader.path.clone();
        let mut last = fingerprint(&path, &live.load().secret_files).await;
        let mut tick = tokio::time::interval(Duration::from_millis(300));
        loop {
            tick.tick().await;
            let Some(now) = fingerprint(&path, &live.load().secret_files).await else {
                continue;
            };
            if last.as_ref() == Some(&now) {
                continue;
            }
            last = Some(now);
            match loader.load() {
                Ok(next) => {
                    for w in &next.warnings {
                        tracing::warn!(config = %path.display(), "{w}");
                    }
                    telemetry.set_providers(&next);
                    telemetry.metrics().config_reload(true);
                    live.store(Arc::new(next));
                    tracing::info!(config = %path.display(), "config reloaded");
                }
                Err(errors) => {
                    telemetry.metrics().config_reload(false);
                    tracing::error!(config = %path.display(), errors = %errors, "config reload rejected; keeping the running config");
                }
            }
        }
    });
}

/// The config file's bytes and its secret files' hashes: what a reload depends on. Content,
/// not mtime, so a ConfigMap's symlink swap (same mtime games) is seen too.
async fn fingerprint(config: &Path, secrets: &[PathBuf]) -> Option<Vec<u8>> {
    use sha2::{Digest, Sha256};
    let mut out = tokio::fs::read(config).await.ok()?;
    for f in secrets {
        // A missing secret file is part of the state too (its reappearance reloads).
        let bytes = tokio::fs::read(f).await.unwrap_or_default();
        out.extend_from_slice(&Sha256::digest(&bytes));
    }
    Some(out)
}

/// An absolute path that keeps its symlinks: a Kubernetes ConfigMap mount swaps
/// `..data -> ..<timestamp>` on update and deletes the old directory, so the watcher must keep
/// reading through `gateway.yaml -> ..data/gateway.yaml`, not the resolved target.
pub fn resolve_path(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
