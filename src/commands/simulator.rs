use std::process::ExitCode;

use clap::Subcommand;
use lienthong_adapters::field_reports::{Open311Data, Open311Simulator};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Open311 (GeoReport v2 + servicerequestupdates): the fixtures, or a synthetic year.
    FieldReports {
        #[arg(long, default_value = "127.0.0.1:8311")]
        listen: String,
        /// Add a synthetic year of reports to the fixtures.
        #[arg(long)]
        demo: bool,
        #[arg(long, default_value_t = 2023)]
        year: i32,
        #[arg(long, default_value_t = 1100)]
        reports: usize,
        #[arg(long, default_value_t = 2023)]
        seed: u64,
    },
}

pub async fn run(_global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::FieldReports {
        listen,
        demo,
        year,
        reports,
        seed,
    } = cmd;
    let data = if demo {
        Open311Data::demo(year, reports, seed)
    } else {
        Open311Data::fixtures()
    };
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "Open311 simulator on http://{}/ ({} requests, {} updates)",
        listener.local_addr()?,
        data.requests.len(),
        data.updates.len()
    );
    Open311Simulator::new(data)
        .serve(listener, super::interrupted())
        .await?;
    Ok(ExitCode::SUCCESS)
}
