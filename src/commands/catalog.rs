//! `lienthong catalog asyncapi`: the AsyncAPI 3.0 event catalogue, generated from the subsystem
//! registry and the schemas (the replay service serves the same at `/asyncapi.json`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use lienthong_bus::catalog::{asyncapi, CatalogServers};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print (or write) the AsyncAPI 3.0 document: one channel per event type, its schemas,
    /// its stream and who may read it.
    Asyncapi {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// NATS URLs clients connect to (repeatable; default NATS_URL, or the local default).
        #[arg(long = "server", value_name = "URL")]
        servers: Vec<String>,
    },
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Asyncapi { out, servers } => {
            let servers = if servers.is_empty() {
                vec![global.settings()?.url]
            } else {
                servers
            };
            let doc = asyncapi(&*global.registry()?, &CatalogServers(servers));
            let text = serde_json::to_string_pretty(&doc)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => println!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
