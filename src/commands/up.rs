//! `lienthong up`: the whole bus on one machine, in one process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use lienthong_adapters::field_reports::{Open311Data, Open311Simulator};
use lienthong_adapters::{AdapterConfig, AdapterContext, FieldReportsConfig};
use lienthong_bus::server::{NatsServer, ServerOptions};
use lienthong_bus::{CredentialSet, SchemaRegistry};
use lienthong_replay::service::DEFAULT_LISTEN;
use lienthong_replay::ReadStore;
use tokio::sync::watch;
use tracing::{error, info};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Feed the adapters from the subsystem simulators (fixtures plus a synthetic 2023).
    #[arg(long)]
    demo: bool,
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
    /// HTTP address of the field-reports simulator (with --demo).
    #[arg(long, default_value = "127.0.0.1:8311")]
    simulator: String,
    /// Adapter configurations to run (TOML), in addition to the demo's.
    #[arg(long = "adapter-config", value_name = "FILE")]
    adapter_configs: Vec<PathBuf>,
    /// Synthetic reports in the demo year.
    #[arg(long, default_value_t = 1100)]
    demo_reports: usize,
}

type Task = tokio::task::JoinHandle<anyhow::Result<()>>;

fn stopped(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
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
            a.nats_host, a.nats_port
        );
    }
    let server = NatsServer::start(
        ServerOptions {
            bin: None,
            data_dir: a.data.join("nats"),
            host: a.nats_host.clone(),
            port: Some(a.nats_port),
        },
        &creds,
    )
    .await?;

    for p in lienthong_bus::provision(&connect_role(&creds, &url, "operator").await?).await? {
        info!("{p}");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: Vec<(&str, Task)> = Vec::new();

    // Adapter configurations: the demo's, then the ones given.
    let mut configs: Vec<AdapterConfig> = Vec::new();
    if a.demo {
        let listener = tokio::net::TcpListener::bind(&a.simulator)
            .await
            .with_context(|| {
                format!(
                    "simulator address {} is in use; pass --simulator",
                    a.simulator
                )
            })?;
        let endpoint = format!("http://{}/", listener.local_addr()?);
        let data = Open311Data::demo(2023, a.demo_reports, 2023);
        info!(requests = data.requests.len(), updates = data.updates.len(), %endpoint, "field-reports simulator");
        let sim = Open311Simulator::new(data);
        let stop = stopped(&stop_rx);
        tasks.push((
            "simulator field_reports",
            tokio::spawn(async move { sim.serve(listener, stop).await.map_err(Into::into) }),
        ));
        let mut cfg = FieldReportsConfig::new(endpoint.parse()?);
        cfg.poll_interval_secs = 5;
        cfg.start_date = "2023-01-01T00:00:00+07:00".parse()?;
        configs.push(AdapterConfig::FieldReports(cfg));
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
        let stop = stopped(&stop_rx);
        let name = cfg.subsystem();
        tasks.push((
            name,
            tokio::spawn(async move { cfg.run(ctx, stop).await.map_err(Into::into) }),
        ));
    }

    // Replay service and dashboard.
    let store = ReadStore::open(&a.data.join("replay"))?;
    let listener = tokio::net::TcpListener::bind(&a.http)
        .await
        .with_context(|| format!("HTTP address {} is in use; pass --http", a.http))?;
    let http = format!("http://{}", listener.local_addr()?);
    let js = connect_role(&creds, &url, "replay").await?;
    let stop = stopped(&stop_rx);
    let reg = registry.clone();
    tasks.push((
        "replay",
        tokio::spawn(async move {
            lienthong_replay::service::serve(
                listener,
                Some(js),
                reg,
                store,
                Default::default(),
                stop,
            )
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
    println!("  Field reports      {http}/api/v1/field-reports/stats   {http}/api/v1/field-reports?format=csv");
    println!("  Schemas            {http}/schemas/");
    println!("  Metrics, health    {http}/metrics   {http}/healthz");
    println!(
        "  NATS               {url}  (store {})",
        server.data_dir().display()
    );
    println!(
        "  Credentials        {}/<role>.env  (roles: {})",
        creds_dir.display(),
        lienthong_bus::ROLES.join(", ")
    );
    if a.demo {
        println!("  Open311 simulator  http://{}/requests.json", a.simulator);
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
