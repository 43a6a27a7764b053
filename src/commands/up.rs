//! `lienthong up`: the whole bus on one machine, in one process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use lienthong_adapters::ingress::{Ingress, IngressConfig};
use lienthong_adapters::{AdapterConfig, AdapterContext};
use lienthong_bus::server::{NatsServer, ServerOptions};
use lienthong_bus::{CredentialSet, Publisher, SchemaRegistry};
use lienthong_replay::service::DEFAULT_LISTEN;
use lienthong_replay::ReadStore;
use tokio::sync::watch;
use tracing::{error, info};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Feed the adapters from the subsystem simulators: a synthetic 2023 for the whole city.
    #[arg(long)]
    demo: bool,
    /// Size of the demo city (1.0: ~12,000 sign-on users, ~10,000 register entries).
    #[arg(long, default_value_t = 1.0)]
    demo_scale: f64,
    /// Where the server store, read models and credentials live.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// NATS client address.
    #[arg(long, default_value = "127.0.0.1")]
    nats_host: String,
    #[arg(long, default_value_t = 4222)]
    nats_port: u16,
    /// HTTP address of the read models and dashboard.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    http: String,
    /// Address of the HTTP CloudEvents ingress (with --demo or --ingress-config).
    #[arg(long, default_value = "127.0.0.1:8090")]
    ingress: std::net::SocketAddr,
    /// Ingress configuration (callers and their token hashes); see adapters/examples/ingress.toml.
    #[arg(long, value_name = "FILE")]
    ingress_config: Option<PathBuf>,
    /// Adapter configurations to run (TOML), in addition to the demo's.
    #[arg(long = "adapter-config", value_name = "FILE")]
    adapter_configs: Vec<PathBuf>,
    /// Durable mode: the server writes every event to disk (fsync) before acknowledging it
    /// (`sync_interval: always`). Slower per event; bulk imports use atomic batches to
    /// keep their pace. See docs/performance.md.
    #[arg(long)]
    durable: bool,
}

pub type Task = tokio::task::JoinHandle<anyhow::Result<()>>;

async fn connect_role(
    creds: &CredentialSet,
    url: &str,
    role: &str,
) -> anyhow::Result<async_nats::jetstream::Context> {
    let client = creds
        .settings(role, url)?
        .connect(&format!("lienthong-up-{role}"))
        .await?;
    Ok(async_nats::jetstream::new(client))
}

pub async fn run(global: &Global, a: Args) -> anyhow::Result<ExitCode> {
    let registry: Arc<SchemaRegistry> = global.registry()?;
    let url = format!("nats://{}:{}", a.nats_host, a.nats_port);
    let creds_dir = a.data.join("credentials");
    let creds = CredentialSet::load_or_generate(&creds_dir, &url)
        .with_context(|| format!("credentials in {}", creds_dir.display()))?;

    if std::net::TcpListener::bind((a.nats_host.as_str(), a.nats_port)).is_err() {
        anyhow::bail!(
            "{}:{} is in use: another nats-server (or `lienthong up`) is running. Stop it, or pass --nats-port",
            a.nats_host,
            a.nats_port
        );
    }
    let server = NatsServer::start(
        ServerOptions {
            bin: None,
            data_dir: a.data.join("nats"),
            host: a.nats_host.clone(),
            port: Some(a.nats_port),
            sync_always: a.durable,
        },
        &creds,
    )
    .await?;
    for p in lienthong_bus::provision(&connect_role(&creds, &url, "operator").await?).await? {
        info!("{p}");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = {
        let rx = stop_rx.clone();
        move || -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
            let mut rx = rx.clone();
            Box::pin(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
        }
    };
    let mut tasks: Vec<(&str, Task)> = Vec::new();
    let mut lines: Vec<String> = Vec::new();

    // What to run: the demo's adapters and ingress caller, then the ones given.
    let mut configs: Vec<AdapterConfig> = Vec::new();
    let mut ingress: Option<IngressConfig> = None;
    let mut sso_push = None;
    if a.demo {
        let (demo, ingress_cfg, token) = super::demo::prepare(&a.data, a.demo_scale, &stop).await?;
        configs.extend(demo.configs);
        tasks.extend(demo.tasks);
        lines.extend(demo.lines);
        sso_push = demo.sso_push;
        let env =
            super::demo::write_ingress_env(&creds_dir, &format!("http://{}", a.ingress), &token)?;
        lines.push(format!("  Ingress demo       {}", env.display()));
        ingress = Some(IngressConfig {
            listen: a.ingress,
            ..ingress_cfg
        });
    }
    if let Some(path) = &a.ingress_config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut cfg: IngressConfig = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid ingress configuration", path.display()))?;
        if let Some(demo) = ingress.take() {
            cfg.callers.extend(demo.callers);
        }
        ingress = Some(cfg);
    }
    for path in &a.adapter_configs {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        configs.push(
            toml::from_str(&text).with_context(|| {
                format!("{} is not a valid adapter configuration", path.display())
            })?,
        );
    }
    for cfg in configs {
        let ctx = AdapterContext {
            js: connect_role(&creds, &url, &format!("adapter-{}", cfg.subsystem())).await?,
            registry: registry.clone(),
        };
        let s = stop();
        let name = cfg.subsystem();
        tasks.push((
            name,
            tokio::spawn(async move { cfg.run(ctx, s).await.map_err(Into::into) }),
        ));
    }
    if let Some(cfg) = ingress {
        let addr = cfg.listen;
        let publisher = Publisher::new(
            connect_role(&creds, &url, "ingress").await?,
            registry.clone(),
            "urn:lienthong:ingress",
        );
        let ingress = Ingress::new(cfg, publisher)?;
        let s = stop();
        tasks.push((
            "ingress",
            tokio::spawn(async move { ingress.serve(s).await.map_err(Into::into) }),
        ));
        lines.push(format!("  CloudEvents ingress http://{addr}/events"));
    }
    if let Some((hook, token, events)) = sso_push {
        let data = a.data.clone();
        tokio::spawn(async move {
            if let Err(e) = super::demo::push_sso(&data, hook, token, events).await {
                error!("pushing the demo's sign-on events: {e:#}");
            }
        });
    }

    // The audit key: checkpoints are signed with it; its public half is for auditors.
    let audit_key = lienthong_audit::checkpoint::load_or_generate_signing_key(
        &creds_dir.join("audit-signing.key"),
    )?;
    let public_key_file = a.data.join("audit-public.key");
    std::fs::write(
        &public_key_file,
        hex::encode(audit_key.verifying_key().to_bytes()),
    )?;
    let admin_token = super::secret(&creds_dir.join("replay-admin.token"))?;
    let options = lienthong_replay::service::ServeOptions {
        audit_key: Some(audit_key),
        admin_token: Some(admin_token),
        ..Default::default()
    };

    // Replay service and dashboard.
    let store = ReadStore::open(&a.data.join("replay"))?;
    let listener = tokio::net::TcpListener::bind(&a.http)
        .await
        .with_context(|| format!("HTTP address {} is in use; pass --http", a.http))?;
    let http = format!("http://{}", listener.local_addr()?);
    let js = connect_role(&creds, &url, "replay").await?;
    let s = stop();
    let reg = registry.clone();
    tasks.push((
        "replay",
        tokio::spawn(async move {
            lienthong_replay::service::serve(listener, Some(js), reg, store, options, s)
                .await
                .map_err(Into::into)
        }),
    ));

    println!();
    println!(
        "Lienthong is up{}.",
        if a.demo { " in demo mode" } else { "" }
    );
    println!("  IOC dashboard      {http}/");
    println!("  KPIs               {http}/api/v1/kpi");
    println!("  Read models        {http}/api/v1/field-reports/stats  {http}/api/v1/documents/exchange  {http}/api/v1/sso/activity  {http}/api/v1/open-data/datasets");
    println!("  Schemas            {http}/schemas/");
    println!(
        "  Audit              lienthong audit verify --public-key {} --env {}/auditor.env",
        public_key_file.display(),
        creds_dir.display()
    );
    println!("  Metrics, health    {http}/metrics   {http}/healthz");
    println!(
        "  Live rebuild       POST {http}/api/v1/admin/rebuild  (Bearer: {}/replay-admin.token)",
        creds_dir.display()
    );
    println!(
        "  NATS               {url}  (store {})",
        server.data_dir().display()
    );
    println!(
        "  Credentials        {}/<role>.env  (roles: {})",
        creds_dir.display(),
        lienthong_bus::roles::role_names().join(", ")
    );
    for l in &lines {
        println!("{l}");
    }
    println!(
        "Try: lienthong tail FIELD_REPORTS --env {}/auditor.env",
        creds_dir.display()
    );
    println!("Ctrl-C stops everything.");
    println!();

    // Run until Ctrl-C, or until a component fails.
    let mut failed = false;
    tokio::select! {
        _ = super::interrupted() => info!("stopping"),
        (result, index, _) = futures::future::select_all(tasks.iter_mut().map(|(_, t)| t)) => {
            let name = tasks[index].0;
            match result {
                Ok(Ok(())) => error!("{name} stopped"),
                Ok(Err(e)) => error!("{name} failed: {e:#}"),
                Err(e) => error!("{name} panicked: {e}"),
            }
            failed = true;
        }
    }
    let _ = stop_tx.send(true);
    for (name, t) in tasks {
        if !t.is_finished() {
            match tokio::time::timeout(std::time::Duration::from_secs(10), t).await {
                Ok(Ok(Err(e))) => error!("{name}: {e:#}"),
                Err(_) => error!("{name} did not stop in 10 s"),
                _ => {}
            }
        }
    }
    server.stop().await?;
    println!("stopped.");
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
