//! `lienthong up`: the whole bus on one machine, in one process ([`lienthong::Stack`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use lienthong::{Stack, StackOptions};
use lienthong_adapters::ingress::IngressConfig;
use lienthong_replay::service::DEFAULT_LISTEN;

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
    http: std::net::SocketAddr,
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
    /// The most the JetStream store may hold on disk (each node's), e.g. `500GB`: past it
    /// new events are refused (503 with Retry-After) and /healthz says so. Default: 64GB.
    /// Sizing: docs/operations.md, "Sizing the stores".
    #[arg(long, value_name = "SIZE")]
    max_store: Option<String>,
    /// How often (seconds) the replay service verifies every audited stream against its
    /// signed checkpoints, for the dashboard's history-integrity panel.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    verify_every: u64,
    /// Run a cluster of N nats-server nodes on this machine (their own ports from
    /// --nats-port on, names n1…nN, stores data/nats-1…N, routes between them), every stream
    /// at N replicas; see docs/deployment.md for three hosts.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(3..=7))]
    cluster: Option<u16>,
    /// Be the hub of ward and agency sites: listen for their leaf-node links on this port (a
    /// cluster: this and the next ports), with the JetStream domain `hub`. See
    /// docs/deployment.md ("Sites").
    #[arg(long, value_name = "PORT")]
    leaf_port: Option<u16>,
    #[command(flatten)]
    publication: super::PublicationArgs,
    /// TLS on every listener: NATS clients, routes and sites' links, HTTPS for the read
    /// models and the ingress. Without it, `up` listens on loopback only (or beyond with
    /// --insecure-plaintext).
    #[command(flatten)]
    tls: super::TlsArgs,
}

fn toml_file<T: serde::de::DeserializeOwned>(path: &PathBuf, what: &str) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid {what}", path.display()))
}

pub async fn run(global: &Global, a: Args) -> anyhow::Result<ExitCode> {
    // Checked before anything is written.
    if let Some(size) = &a.max_store {
        lienthong_bus::server::check_store_size(size)?;
    }
    let ingress_config = a
        .ingress_config
        .as_ref()
        .map(|p| toml_file::<IngressConfig>(p, "ingress configuration"))
        .transpose()?;
    let adapters = a
        .adapter_configs
        .iter()
        .map(|p| toml_file(p, "adapter configuration"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let stack = Stack::start(StackOptions {
        data: a.data.clone(),
        nats_host: a.nats_host,
        nats_port: a.nats_port,
        http: a.http,
        ingress: a.ingress,
        ingress_config,
        demo: a.demo.then_some(a.demo_scale),
        adapters,
        durable: a.durable,
        max_store: a.max_store.clone(),
        schemas: global.registry()?,
        publication: a.publication.publication(),
        verify_every: std::time::Duration::from_secs(a.verify_every.max(1)),
        cluster: a.cluster.map(usize::from),
        leaf_port: a.leaf_port,
        transport: a.tls.transport()?,
    })
    .await?;
    let http = format!("{}://{}", a.tls.transport()?.http_scheme(), stack.http);
    let creds = stack.credentials_dir.display().to_string();
    println!();
    println!(
        "Lienthong is up{}.",
        if a.demo { " in demo mode" } else { "" }
    );
    println!("  IOC dashboard      {http}/");
    println!("  KPIs               {http}/api/v1/kpi");
    println!("  Event catalogue    {http}/catalog   {http}/asyncapi.json");
    println!("  Schemas            {http}/schemas/");
    println!("  Metrics, health    {http}/metrics   {http}/healthz");
    println!(
        "  Credentials        {creds}/<role>.env  (roles: {})",
        lienthong_bus::roles::role_names().join(", ")
    );
    for l in &stack.lines {
        println!("{l}");
    }
    println!("Try: lienthong tail FIELD_REPORTS --env {creds}/auditor.env");
    println!("Ctrl-C stops everything.");
    println!();
    let result = stack.run_until(super::interrupted()).await;
    println!("stopped.");
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    })
}
