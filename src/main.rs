//! `switchyard`: an LLM gateway as an Envoy external processor. CLI only; see `lib.rs`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use switchyard::auth::{KeyHash, Principal, mint_key};
use switchyard::config::Snapshot;
use switchyard::envoy::BootstrapOptions;
use switchyard::record;
use switchyard::server::{self, Addrs, Loader};
use switchyard::up;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "LLM gateway as an Envoy ext_proc sidecar"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct ListenArgs {
    /// ext_proc gRPC address (host:port or unix:/path); default from config
    #[arg(long)]
    extproc: Option<String>,
    /// Admin HTTP address; default from config
    #[arg(long)]
    admin: Option<String>,
}

#[derive(clap::Args)]
struct UpArgs {
    #[arg(long, short)]
    config: PathBuf,
    #[command(flatten)]
    listen: ListenArgs,
    /// Client-facing proxy address; default from config
    #[arg(long)]
    proxy: Option<String>,
    #[arg(long, default_value = "127.0.0.1:9901")]
    envoy_admin: String,
    /// Envoy binary (default: $ENVOY_BIN, .venv/bin/envoy, PATH)
    #[arg(long)]
    envoy: Option<PathBuf>,
    /// Where the generated bootstrap and Envoy's log go
    #[arg(long, default_value = ".run")]
    workdir: PathBuf,
    /// Use this demo key instead of minting one (tests)
    #[arg(long, env = "SWITCHYARD_DEMO_KEY", hide = true)]
    demo_key: Option<String>,
}

impl ListenArgs {
    /// Flags win over the config's `listen:` section.
    fn addrs(self, snap: &Snapshot) -> Addrs {
        Addrs {
            extproc: self.extproc.unwrap_or_else(|| snap.listen.extproc.clone()),
            admin: self.admin.unwrap_or_else(|| snap.listen.admin.clone()),
            admin_token: switchyard::admin::token_from_env(),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the processor (ext_proc gRPC + admin HTTP) for an Envoy you run yourself
    Serve {
        #[arg(long, short)]
        config: PathBuf,
        #[command(flatten)]
        listen: ListenArgs,
    },
    /// Run Envoy and the processor together; prints the proxy endpoint and a demo key
    Up(UpArgs),
    /// Validate a config file; errors name the path in the file and the fix
    Lint { file: PathBuf },
    /// Print the Envoy bootstrap derived from a config (for running Envoy yourself)
    Bootstrap {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        proxy: Option<String>,
        #[arg(long)]
        extproc: Option<String>,
        #[arg(long, default_value = "127.0.0.1:9901")]
        envoy_admin: String,
    },
    /// Manage client keys
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Manage Console users (sign-in by email and password)
    Users {
        #[command(subcommand)]
        cmd: UsersCmd,
    },
    /// Read request records
    Logs {
        #[command(subcommand)]
        cmd: LogsCmd,
    },
    /// Requests, tokens, cost and errors from the store, by key, model or provider
    Usage {
        #[arg(long, default_value = "key")]
        by: String,
        /// Window: e.g. 24h, 7d
        #[arg(long, default_value = "24h")]
        since: String,
        #[arg(long, env = "SWITCHYARD_ADMIN", default_value = "127.0.0.1:8081")]
        admin: String,
    },
    /// Explain how a request would be routed
    Route {
        #[command(subcommand)]
        cmd: RouteCmd,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Mint a key and print it once. With --admin: a dynamic key in the running gateway's
    /// store; without: a static key, with the hash to put under `keys:`
    Create {
        #[arg(long)]
        name: String,
        /// Admin address of a running processor (needs SWITCHYARD_ADMIN_TOKEN)
        #[arg(long, env = "SWITCHYARD_ADMIN")]
        admin: Option<String>,
        #[arg(long, default_value_t = 0)]
        total_tokens_per_hour: u64,
        #[arg(long, default_value_t = 0)]
        input_tokens_per_hour: u64,
        #[arg(long, default_value_t = 0)]
        output_tokens_per_hour: u64,
        #[arg(long, default_value_t = 0.0)]
        daily_usd: f64,
        #[arg(long, default_value_t = 0.0)]
        monthly_usd: f64,
        /// With --admin: a YAML file holding the key's `routing:` section (validated like lint)
        #[arg(long)]
        routing: Option<PathBuf>,
    },
    /// Dynamic keys with their usage (never the keys themselves)
    List {
        #[arg(long, env = "SWITCHYARD_ADMIN", default_value = "127.0.0.1:8081")]
        admin: String,
    },
    /// Revoke a dynamic key: the next request with it fails on every replica
    Revoke {
        id: String,
        /// Confirm the revocation
        #[arg(long)]
        yes: bool,
        #[arg(long, env = "SWITCHYARD_ADMIN", default_value = "127.0.0.1:8081")]
        admin: String,
    },
}

#[derive(Subcommand)]
enum UsersCmd {
    /// Add a Console user; the password is the first line of stdin (8 to 1024 characters)
    Create {
        email: String,
        #[arg(long, env = "SWITCHYARD_ADMIN", default_value = "127.0.0.1:8081")]
        admin: String,
    },
    /// Console users (never their password hashes)
    List {
        #[arg(long, env = "SWITCHYARD_ADMIN", default_value = "127.0.0.1:8081")]
        admin: String,
    },
    /// Delete a Console user: they cannot sign in again and their sessions end
    Delete {
        email: String,
        /// Confirm the deletion
        #[arg(long)]
        yes: bool,
        #[arg(long, env = "SWITCHYARD_ADMIN", default_value = "127.0.0.1:8081")]
        admin: String,
    },
}

#[derive(Subcommand)]
enum LogsCmd {
    /// Show the most recent request records
    Tail {
        /// Config whose records.path to read
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Records file (overrides --config)
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, default_value = "table")]
        output: String,
        /// key=value (model, provider, status, key, outcome, tag); repeatable
        #[arg(long)]
        filter: Vec<String>,
        /// Read from the running gateway's store (admin API) instead of a file
        #[arg(long, env = "SWITCHYARD_ADMIN")]
        admin: Option<String>,
        /// With --admin: keep printing new records as they arrive
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Subcommand)]
enum RouteCmd {
    /// Show the ordered attempts for a model (as an unrestricted key would get)
    Explain {
        #[arg(long, short)]
        config: PathBuf,
        /// The requested model (default: the body's `model`)
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        session_id: Option<String>,
        /// Route as this configured key would (its routing and rules)
        #[arg(long)]
        key: Option<String>,
        /// `k=v,k2=v2`, as the x-switchyard-tags header
        #[arg(long)]
        tags: Option<String>,
        /// A request body (JSON file) to route, as the live request would be
        #[arg(long)]
        body: Option<PathBuf>,
        /// `name: value` request header (repeatable), for rules on headers
        #[arg(long)]
        header: Vec<String>,
    },
}

/// Logs on stderr: `SWITCHYARD_LOG` sets the level (EnvFilter syntax, default info),
/// `SWITCHYARD_LOG_FORMAT=json` one JSON object per line with the request's id and trace id.
fn init_tracing() {
    let level = std::env::var("SWITCHYARD_LOG").unwrap_or_else(|_| "info".into());
    let json = std::env::var("SWITCHYARD_LOG_FORMAT").is_ok_and(|v| v == "json");
    if let Err(e) = switchyard::telemetry::init_logging(json, &level) {
        eprintln!("switchyard: {e}; logging at info");
        let _ = switchyard::telemetry::init_logging(json, "info");
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Lint { file } => lint(&file),
        Cmd::Keys {
            cmd: KeysCmd::Create {
                name, admin: None, ..
            },
        } => {
            let key = mint_key();
            let hash = KeyHash::of(&key);
            println!("{key}");
            eprintln!("Store this key now; it is not shown again. Add it to the config:");
            eprintln!("keys:\n  - name: {name}\n    hash: \"{hash}\"");
            Ok(())
        }
        Cmd::Keys {
            cmd:
                KeysCmd::Create {
                    name,
                    admin: Some(admin),
                    total_tokens_per_hour,
                    input_tokens_per_hour,
                    output_tokens_per_hour,
                    daily_usd,
                    monthly_usd,
                    routing,
                },
        } => admin_command(
            &admin,
            "POST",
            "/admin/keys",
            Some(serde_json::json!({
                "name": name,
                "routing": match routing {
                    Some(f) => Some(std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?),
                    None => None,
                },
                "rate_limit": { "total_tokens_per_hour": total_tokens_per_hour, "input_tokens_per_hour": input_tokens_per_hour,
                                "output_tokens_per_hour": output_tokens_per_hour, "daily_usd": daily_usd, "monthly_usd": monthly_usd },
            })),
            |v| {
                println!("{}", v["key"].as_str().unwrap_or_default());
                eprintln!(
                    "Created key {} ({}). Store it now; it is not shown again.",
                    v["id"].as_str().unwrap_or_default(),
                    name
                );
            },
        ),
        Cmd::Keys {
            cmd: KeysCmd::List { admin },
        } => admin_command(&admin, "GET", "/admin/keys", None, |v| {
            println!(
                "{:<18} {:<28} {:>9} {:>12} {:>12} {:>10}  last used",
                "ID", "NAME", "REQUESTS", "IN TOKENS", "OUT TOKENS", "SPEND $"
            );
            for k in v["keys"].as_array().into_iter().flatten() {
                println!(
                    "{:<18} {:<28} {:>9} {:>12} {:>12} {:>10.4}  {}{}",
                    k["id"].as_str().unwrap_or_default(),
                    k["name"].as_str().unwrap_or_default(),
                    k["requests"],
                    k["input_tokens"],
                    k["output_tokens"],
                    k["spend_usd"].as_f64().unwrap_or(0.0),
                    k["last_used_ms"]
                        .as_u64()
                        .map_or("never".into(), record::rfc3339_ms),
                    if k["revoked"].as_bool() == Some(true) {
                        "  (revoked)"
                    } else {
                        ""
                    }
                );
            }
        }),
        Cmd::Keys {
            cmd: KeysCmd::Revoke { id, yes, admin },
        } => {
            if !yes {
                anyhow::bail!(
                    "revoking {id} makes every request with it fail; repeat with --yes to confirm"
                );
            }
            admin_command(&admin, "DELETE", &format!("/admin/keys/{id}"), None, |_| {
                println!("revoked {id}");
            })
        }
        Cmd::Users {
            cmd: UsersCmd::Create { email, admin },
        } => {
            let password = password_from_stdin(&email)?;
            admin_command(
                &admin,
                "POST",
                "/admin/users",
                Some(serde_json::json!({ "email": email, "password": password })),
                |v| println!("created {}", v["email"].as_str().unwrap_or_default()),
            )
        }
        Cmd::Users {
            cmd: UsersCmd::List { admin },
        } => admin_command(&admin, "GET", "/admin/users", None, |v| {
            println!("{:<48} CREATED", "EMAIL");
            for u in v["users"].as_array().into_iter().flatten() {
                println!(
                    "{:<48} {}",
                    u["email"].as_str().unwrap_or_default(),
                    u["created"].as_str().unwrap_or_default()
                );
            }
        }),
        Cmd::Users {
            cmd: UsersCmd::Delete { email, yes, admin },
        } => {
            if !yes {
                anyhow::bail!(
                    "deleting {email} stops them signing in to the Console; repeat with --yes to confirm"
                );
            }
            let path = format!("/admin/users/{}", switchyard::console::url_encode(&email));
            admin_command(&admin, "DELETE", &path, None, |_| {
                println!("deleted {email}");
            })
        }
        Cmd::Usage { by, since, admin } => {
            let hours = parse_hours(&since)?;
            admin_command(
                &admin,
                "GET",
                &format!("/admin/usage?by={by}&since_hours={hours}"),
                None,
                |v| {
                    println!(
                        "{:<32} {:>9} {:>12} {:>12} {:>11} {:>7}",
                        by.to_uppercase(),
                        "REQUESTS",
                        "IN TOKENS",
                        "OUT TOKENS",
                        "COST $",
                        "ERRORS"
                    );
                    for r in v["usage"].as_array().into_iter().flatten() {
                        println!(
                            "{:<32} {:>9} {:>12} {:>12} {:>11.6} {:>7}",
                            r["name"].as_str().unwrap_or_default(),
                            r["requests"],
                            r["input_tokens"],
                            r["output_tokens"],
                            r["cost_usd"].as_f64().unwrap_or(0.0),
                            r["errors"]
                        );
                    }
                },
            )
        }
        Cmd::Logs {
            cmd:
                LogsCmd::Tail {
                    config,
                    file,
                    limit,
                    output,
                    filter,
                    admin: None,
                    follow: _,
                },
        } => logs_tail(config, file, limit, &output, &filter),
        Cmd::Logs {
            cmd:
                LogsCmd::Tail {
                    limit,
                    output,
                    filter,
                    admin: Some(admin),
                    follow,
                    ..
                },
        } => logs_from_store(&admin, limit, &output, &filter, follow),
        Cmd::Route {
            cmd:
                RouteCmd::Explain {
                    config,
                    model,
                    session_id,
                    key,
                    tags,
                    body,
                    header,
                },
        } => explain(
            &config,
            model,
            session_id.as_deref(),
            key.as_deref(),
            tags,
            body,
            header,
        ),
        Cmd::Bootstrap {
            config,
            proxy,
            extproc,
            envoy_admin,
        } => {
            let snap = Snapshot::from_file(&config)?;
            let proxy = proxy.unwrap_or_else(|| snap.listen.proxy.clone());
            let extproc = extproc.unwrap_or_else(|| snap.listen.extproc.clone());
            let b = switchyard::envoy::bootstrap(
                &snap,
                &BootstrapOptions {
                    proxy: &proxy,
                    envoy_admin: &envoy_admin,
                    extproc: &extproc,
                },
            );
            print!("{}", serde_yaml::to_string(&b)?);
            Ok(())
        }
        Cmd::Serve { config, listen } => {
            init_tracing();
            runtime()?.block_on(async move {
                let loader = Loader {
                    path: server::resolve_path(&config),
                    session_keys: vec![],
                };
                let snap = loader.load()?;
                let addrs = listen.addrs(&snap);
                server::start(loader, addrs).await?;
                shutdown_signal().await;
                Ok(())
            })
        }
        Cmd::Up(args) => {
            init_tracing();
            runtime()?.block_on(run_up(args))
        }
    }
}

/// Worker threads: `SWITCHYARD_WORKERS`, else tokio's default (one per core).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("SWITCHYARD_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        b.worker_threads(n);
    }
    Ok(b.enable_all().build()?)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

async fn run_up(args: UpArgs) -> anyhow::Result<()> {
    let UpArgs {
        config,
        listen,
        proxy,
        envoy_admin,
        envoy,
        workdir,
        demo_key,
    } = args;
    let envoy_bin = up::find_envoy(envoy.as_deref())?;
    let demo_key = demo_key.unwrap_or_else(mint_key);
    let demo = Arc::new(Principal {
        id: KeyHash::of(&demo_key).short_id(),
        name: "demo".into(),
        limits: Default::default(),
        allowed_models: None,
        routing: None,
    });
    let loader = Loader {
        path: server::resolve_path(&config),
        session_keys: vec![(KeyHash::of(&demo_key), demo)],
    };
    let snap = loader.load()?;
    let proxy = proxy.unwrap_or_else(|| snap.listen.proxy.clone());
    let addrs = listen.addrs(&snap);
    let bootstrap = up::write_bootstrap(
        &snap,
        &BootstrapOptions {
            proxy: &proxy,
            envoy_admin: &envoy_admin,
            extproc: &addrs.extproc,
        },
        &workdir,
    )?;
    // `up` is for a laptop: the Console and admin API are on, with a fresh token unless one is
    // given (printed below, like the demo key).
    let admin_token = addrs.admin_token.clone().unwrap_or_else(|| {
        let mut b = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
        hex::encode(b)
    });
    server::start(
        loader,
        Addrs {
            extproc: addrs.extproc.clone(),
            admin: addrs.admin.clone(),
            admin_token: Some(admin_token.clone()),
        },
    )
    .await?;
    let log_path = workdir.join("envoy.log");
    let mut child = up::spawn_envoy(&envoy_bin, &bootstrap, &log_path)?;
    up::wait_ready(&envoy_admin, &mut child, &log_path).await?;
    let host = proxy.replace("0.0.0.0", "127.0.0.1");
    switchyard::console::set_proxy_endpoint(format!("http://{host}/v1"));
    // A Console user to sign in with (seed 000 signs in by email and password); shown once, like
    // the demo key. Kept if the store already has it (a shared Redis across restarts).
    let demo_email = "demo@switchyard.local";
    let demo_password = {
        let mut b = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
        hex::encode(b)
    };
    let body = serde_json::json!({ "email": demo_email, "password": demo_password });
    let demo_user = match switchyard::admin_client::call_as(
        &addrs.admin,
        &admin_token,
        "POST",
        "/admin/users",
        Some(&body),
    )
    .await
    {
        Ok(_) => format!("{demo_email} / {demo_password}"),
        Err(e) => format!("not created ({e})"),
    };
    println!("Switchyard is up.");
    println!("  Proxy endpoint:  http://{host}/v1");
    println!("  Demo key:        {demo_key}");
    println!("  Console:         http://{}/console", addrs.admin);
    println!("  Console user:    {demo_user}   (email / password)");
    println!(
        "  Admin token:     {admin_token}   (Console sign-in too; SWITCHYARD_ADMIN_TOKEN for the CLI)"
    );
    println!("  Envoy log:       {}", log_path.display());
    println!(
        "Try:  curl http://{host}/v1/chat/completions -H 'Authorization: Bearer {demo_key}' -H 'content-type: application/json' -d '{{\"model\":\"demo-chat\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
    );
    tokio::select! {
        _ = shutdown_signal() => {}
        status = child.wait() => {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            anyhow::bail!("envoy exited unexpectedly ({:?}):\n{log}", status.ok());
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    println!("Switchyard stopped.");
    Ok(())
}

fn lint(file: &std::path::Path) -> anyhow::Result<()> {
    match Snapshot::from_file(file) {
        Ok(snap) => {
            for w in &snap.warnings {
                println!("{}: warning: {w}", file.display());
            }
            println!(
                "{}: ok ({} providers, {} models, {} model groups, {} keys)",
                file.display(),
                snap.providers.len(),
                snap.models.len(),
                snap.groups.len(),
                snap.keys.len()
            );
            Ok(())
        }
        Err(errors) => {
            eprintln!("{errors}");
            std::process::exit(1);
        }
    }
}

fn logs_tail(
    config: Option<PathBuf>,
    file: Option<PathBuf>,
    limit: usize,
    output: &str,
    filter: &[String],
) -> anyhow::Result<()> {
    let path = match (file, config) {
        (Some(f), _) => f,
        (None, Some(c)) => Snapshot::from_file(&c)?.records.path,
        (None, None) => PathBuf::from("switchyard-requests.jsonl"),
    };
    let filters = pairs(filter, '=', "--filter takes key=value")?;
    let records =
        record::read_file(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut picked: Vec<_> = records
        .into_iter()
        .rev()
        .filter(|r| record::matches(r, &filters))
        .take(limit)
        .collect();
    picked.reverse();
    print_records(&picked, output, true)
}

/// `logs tail --admin`: records from the store (Redis stream) with the store's filters
/// (key, model, provider, status); `--follow` keeps reading new ones.
fn logs_from_store(
    admin: &str,
    limit: usize,
    output: &str,
    filter: &[String],
    follow: bool,
) -> anyhow::Result<()> {
    let mut query = format!("limit={limit}");
    for (k, v) in pairs(filter, '=', "--filter takes key=value")? {
        if !["key", "model", "provider", "status"].contains(&k.as_str()) {
            anyhow::bail!("--filter {k}: the store filters by key, model, provider and status");
        }
        query.push_str(&format!("&{k}={v}"));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let page = |q: String| {
        rt.block_on(switchyard::admin_client::call(
            admin,
            "GET",
            &format!("/admin/logs?{q}"),
            None,
        ))
    };
    let records = |v: &serde_json::Value| -> Vec<record::Record> {
        v["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| serde_json::from_value(r.clone()).ok())
            .collect()
    };
    let first = page(query.clone())?;
    print_records(&records(&first), output, true)?;
    let mut cursor = first["cursor"].as_str().unwrap_or("0-0").to_string();
    if !follow {
        return Ok(());
    }
    loop {
        let next = page(format!("{query}&follow={cursor}"))?;
        print_records(&records(&next), output, false)?;
        if let Some(c) = next["cursor"].as_str() {
            cursor = c.to_string();
        }
    }
}

fn print_records(picked: &[record::Record], output: &str, header: bool) -> anyhow::Result<()> {
    match output {
        "json" => println!("{}", serde_json::to_string_pretty(&picked)?),
        "jsonl" => {
            for r in picked {
                println!("{}", serde_json::to_string(r)?);
            }
        }
        "table" => {
            if header {
                println!(
                    "{:<26} {:<20} {:<18} {:<22} {:<12} {:>6} {:>4} {:>7} {:>7} {:>9} {:>10}",
                    "id",
                    "ts",
                    "requested",
                    "resolved",
                    "provider",
                    "status",
                    "fb",
                    "in",
                    "out",
                    "ms",
                    "usd"
                );
            }
            for r in picked {
                println!(
                    "{:<26} {:<20} {:<18} {:<22} {:<12} {:>6} {:>4} {:>7} {:>7} {:>9.1} {:>10.6}",
                    r.id,
                    r.ts.get(..19).unwrap_or(&r.ts),
                    r.requested_model.as_deref().unwrap_or("-"),
                    r.resolved_model.as_deref().unwrap_or("-"),
                    r.provider.as_deref().unwrap_or("-"),
                    r.status,
                    r.fallback_count,
                    r.input_tokens,
                    r.output_tokens,
                    r.latency_ms,
                    r.cost_usd
                );
            }
        }
        other => anyhow::bail!("unknown --output {other}: use json, jsonl or table"),
    }
    Ok(())
}

/// `k<sep>v` command-line pairs, trimmed.
fn pairs(
    items: &[String],
    sep: char,
    usage: &'static str,
) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|i| {
            i.split_once(sep)
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .context(usage)
        })
        .collect()
}

fn explain(
    config: &std::path::Path,
    model: Option<String>,
    session_id: Option<&str>,
    key: Option<&str>,
    tags: Option<String>,
    body: Option<PathBuf>,
    header: Vec<String>,
) -> anyhow::Result<()> {
    let snap = Snapshot::from_file(config)?;
    let anyone = Principal {
        id: "explain".into(),
        name: "explain".into(),
        limits: Default::default(),
        allowed_models: None,
        routing: None,
    };
    let tags = tags
        .as_deref()
        .map(switchyard::routing::rules::parse_tags)
        .unwrap_or_default();
    let headers: Vec<(String, String)> = pairs(&header, ':', "--header takes name: value")?
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let body: serde_json::Value = match body {
        Some(path) => serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not JSON", path.display()))?,
        None => serde_json::json!({}),
    };
    let model = model
        .or_else(|| {
            body.get("model")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .context("give --model or a --body with a model")?;
    let attrs =
        switchyard::routing::RequestAttrs::from_body(&model, &body, session_id, &tags, &headers);
    let principal = match key {
        Some(name) => snap
            .keys
            .values()
            .find(|k| k.name == name)
            .map(|k| k.as_ref())
            .with_context(|| format!("no key named {name} in the config"))?,
        None => &anyone,
    };
    match switchyard::routing::plan(&snap, principal, &attrs, 0) {
        Ok(plan) => {
            println!("route: {}  strategy: {}", plan.route, plan.strategy);
            if let Some(rule) = &plan.rule {
                println!("rule: {rule}");
            }
            if let Some(reason) = &plan.reason {
                println!("reason: {reason}");
            }
            for (i, a) in plan.attempts.iter().enumerate() {
                println!(
                    "  {}. {} on {} (timeout {} ms)",
                    i + 1,
                    a.target.provider_model,
                    snap.providers[a.target.provider].id,
                    a.timeout_ms
                );
            }
            Ok(())
        }
        Err(e) => anyhow::bail!("{e}"),
    }
}

/// The first line of stdin without its line ending; refuses an empty one. Never echoed back.
fn password_from_stdin(email: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprint!("Password for {email} (typed text is visible; pipe it in to avoid that): ");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!(
            "no password: give it as the first line of stdin, e.g. printf '%s\\n' \"$PASSWORD\" | switchyard users create {email}"
        );
    }
    Ok(password.to_string())
}

/// Runs one admin API call on a small runtime and prints its answer with `show`.
fn admin_command(
    admin: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    show: impl FnOnce(&serde_json::Value),
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let v = rt.block_on(switchyard::admin_client::call(
        admin,
        method,
        path,
        body.as_ref(),
    ))?;
    show(&v);
    Ok(())
}

/// `24h`, `7d` or a number of hours.
fn parse_hours(since: &str) -> anyhow::Result<u64> {
    let (n, unit) = since.split_at(
        since
            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .len(),
    );
    let n: u64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("--since {since}: use e.g. 24h or 7d"))?;
    match unit {
        "" | "h" => Ok(n),
        "d" => Ok(n * 24),
        _ => anyhow::bail!("--since {since}: use e.g. 24h or 7d"),
    }
}
