use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use lienthong_adapters::{AdapterConfig, AdapterContext};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one adapter until Ctrl-C. Its state lives in ADAPTER_STATE; restart it any time.
    Run {
        /// The subsystem whose adapter to run.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(lienthong_adapters::ADAPTERS))]
        name: String,
        /// Adapter configuration (TOML), e.g. adapters/examples/field_reports.toml.
        #[arg(long)]
        config: PathBuf,
        /// Serve this adapter's counters (`GET /metrics`: every record's outcome) here.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// How the push endpoints and metrics listen (HTTPS with a certificate).
        #[command(flatten)]
        tls: super::TlsArgs,
    },
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::Run {
        name,
        config,
        metrics: metrics_addr,
        tls,
    } = cmd;
    let transport = tls.transport()?;
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("reading {}", config.display()))?;
    let cfg: AdapterConfig = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid adapter configuration", config.display()))?;
    if cfg.subsystem() != name {
        anyhow::bail!(
            "{} configures the {} adapter, not {name}",
            config.display(),
            cfg.subsystem()
        );
    }
    let session = global.session(&format!("lienthong-adapter-{name}")).await?;
    let ctx = AdapterContext {
        js: session.js,
        registry: global.registry()?,
        metrics: lienthong_bus::Metrics::new(),
        refusals: session.refusals,
        transport: transport.clone(),
    };
    let _server = super::serve_metrics(&name, metrics_addr, &ctx.metrics, &transport).await?;
    cfg.run(ctx, super::interrupted()).await?;
    Ok(ExitCode::SUCCESS)
}
