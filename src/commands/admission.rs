//! `lienthong admission`: the hub's admission of what ward sites send (as the `admission`
//! role), when the components run as separate processes (`up --leaf-port` runs it itself).

use std::net::SocketAddr;
use std::process::ExitCode;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Serve Prometheus metrics on this address (/metrics): what each site sent, admitted or
    /// refused by reason.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// How the metrics listen (HTTPS with a certificate).
    #[command(flatten)]
    tls: super::TlsArgs,
}

pub async fn run(global: &Global, a: Args) -> anyhow::Result<ExitCode> {
    let session = global.session("lienthong-admission").await?;
    let metrics = lienthong_bus::Metrics::new();
    let _server =
        super::serve_metrics("admission", a.metrics, &metrics, &a.tls.transport()?).await?;
    eprintln!("admitting what ward sites send into the central streams (Ctrl-C stops)");
    lienthong_bus::sites::admission::run(
        session.client.clone(),
        session.refusals.clone(),
        global.registry()?,
        metrics,
        super::interrupted(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
