//! `lienthong deliver`: POST agencies' webhook subscriptions (as the `deliver` role).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use lienthong_deliver::{DeliverOptions, Deliverer};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where agencies' administrators' credentials (agencies/) and subscriptions' endpoints
    /// (webhooks/) are (default: beside the --env file, or data/credentials).
    #[arg(long)]
    credentials_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (/metrics).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// The longest wait between two attempts of a failing delivery, in seconds.
    #[arg(long, default_value_t = 15)]
    max_backoff_secs: u64,
    /// A CA (PEM) that receivers' certificates may come from besides the public ones (the
    /// city's own CA). Receivers' certificates are always verified.
    #[arg(long, value_name = "FILE")]
    webhook_ca: Option<PathBuf>,
    /// How the metrics listen (HTTPS with a certificate).
    #[command(flatten)]
    tls: super::TlsArgs,
}

pub async fn run(global: &Global, a: Args) -> anyhow::Result<ExitCode> {
    let session = global.session("lienthong-deliver").await?;
    let dir = a.credentials_dir.unwrap_or_else(|| {
        global
            .env
            .as_deref()
            .and_then(std::path::Path::parent)
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("data/credentials"))
    });
    let metrics = lienthong_bus::Metrics::new();
    let _server = super::serve_metrics("deliver", a.metrics, &metrics, &a.tls.transport()?).await?;
    let deliverer = Deliverer::new(
        session.client.clone(),
        session.refusals.clone(),
        global.registry()?,
        &dir,
        DeliverOptions {
            max_backoff: std::time::Duration::from_secs(a.max_backoff_secs.max(1)),
            extra_roots: match &a.webhook_ca {
                Some(ca) => lienthong_deliver::roots_of(ca)?,
                None => Vec::new(),
            },
            ..Default::default()
        },
        metrics,
    );
    eprintln!("delivering webhook subscriptions (Ctrl-C stops)");
    deliverer.run(super::interrupted()).await;
    Ok(ExitCode::SUCCESS)
}
