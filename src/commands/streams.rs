use std::process::ExitCode;

use clap::Subcommand;

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the contract's streams and the ADAPTER_STATE bucket (idempotent; operator).
    Provision {
        /// Copies of every stream and bucket: 1 on a single server, 3 on a cluster of three.
        /// An existing stream with another number is refused and named.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=5))]
        replicas: u16,
    },
    /// Show every stream of the contract: messages, sequences, consumers, drift.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The replicas the streams should have (a cluster of three: 3).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=5))]
        replicas: u16,
    },
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    let session = global.session("lienthong-streams").await?;
    // The subsystems registered on the bus have streams of the contract too (a bus without
    // `REGISTRY` yet, before its first provisioning, has none).
    if let Err(e) = lienthong_bus::registry::live::load(&session.reader).await {
        tracing::debug!("reading the subsystem registry: {e}");
    }
    let js = session.js.clone();
    match cmd {
        Command::Provision { replicas } => {
            for p in lienthong_bus::topology::provision_replicated(&js, replicas.into()).await? {
                println!("{p}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json, replicas } => {
            // A role that may not read a stream is told at once (not a 10 s wait per stream).
            let status = session
                .guard(lienthong_bus::topology::status_replicated(
                    &js,
                    replicas.into(),
                ))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!(
                    "{:<14} {:>10} {:>12} {:>10} {:>10} {:>9}  drift",
                    "stream", "messages", "bytes", "first", "last", "consumers"
                );
                for s in &status {
                    if !s.exists {
                        println!("{:<14} missing — run `lienthong streams provision`", s.name);
                        continue;
                    }
                    println!(
                        "{:<14} {:>10} {:>12} {:>10} {:>10} {:>9}  {}",
                        s.name,
                        s.messages,
                        s.bytes,
                        s.first_seq,
                        s.last_seq,
                        s.consumers,
                        if s.drift.is_empty() {
                            "none".to_string()
                        } else {
                            s.drift.join("; ")
                        }
                    );
                }
            }
            let drift = status.iter().any(|s| !s.exists || !s.drift.is_empty());
            Ok(if drift {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
