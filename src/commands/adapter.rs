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
    },
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::Run { name, config } = cmd;
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
    let ctx = AdapterContext {
        js: global
            .jetstream(&format!("lienthong-adapter-{name}"))
            .await?,
        registry: global.registry()?,
    };
    cfg.run(ctx, super::interrupted()).await?;
    Ok(ExitCode::SUCCESS)
}
