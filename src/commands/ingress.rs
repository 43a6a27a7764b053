use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use lienthong_adapters::ingress::{Ingress, IngressConfig};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Ingress configuration (TOML): listen address, body limit, callers with their token
    /// hashes, sources and types. See adapters/examples/ingress.toml.
    #[arg(long)]
    config: PathBuf,
    /// HTTPS: this host's certificate (or plaintext, beyond loopback only when asked for).
    #[command(flatten)]
    tls: super::TlsArgs,
}

pub async fn run(global: &Global, a: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("reading {}", a.config.display()))?;
    let config: IngressConfig = toml::from_str(&text).with_context(|| {
        format!(
            "{} is not a valid ingress configuration",
            a.config.display()
        )
    })?;
    let session = global.session("lienthong-ingress").await?;
    // The publishers of subsystems registered on the running bus, and their schemas.
    tokio::spawn(lienthong_bus::registry::live::follow(
        session.reader.clone(),
        std::future::pending(),
    ));
    let publisher = lienthong_bus::Publisher::new(
        lienthong_adapters::ingress::jetstream(session.client.clone()),
        global.registry()?,
        "urn:lienthong:ingress",
    )
    .with_refusals(session.refusals.clone());
    Ingress::new(config, publisher, &lienthong_bus::Metrics::new())?
        .serve(&a.tls.transport()?, super::interrupted())
        .await?;
    Ok(ExitCode::SUCCESS)
}
