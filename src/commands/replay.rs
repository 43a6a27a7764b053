use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use lienthong_replay::service::{self, DEFAULT_LISTEN};
use lienthong_replay::{Metrics, ReadStore};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Follow the streams into the read models and serve them over HTTP.
    Serve {
        /// The read store directory.
        #[arg(long, default_value = "data/replay")]
        db: PathBuf,
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: String,
        /// Serve the store as it is, without following the streams (no NATS needed).
        #[arg(long)]
        read_only: bool,
        /// Most events per atomic batch written to the store.
        #[arg(long, default_value_t = lienthong_replay::runner::MAX_BATCH)]
        max_batch: usize,
    },
    /// Rebuild every read model from the start of its stream into a fresh tree, then swap.
    Rebuild {
        #[arg(long, default_value = "data/replay")]
        db: PathBuf,
    },
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    let registry = global.registry()?;
    match cmd {
        Command::Serve {
            db,
            listen,
            read_only,
            max_batch,
        } => {
            let store = ReadStore::open(&db)?;
            let js = if read_only {
                None
            } else {
                Some(global.jetstream("lienthong-replay").await?)
            };
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            println!(
                "read models on http://{}/ (store {})",
                listener.local_addr()?,
                db.display()
            );
            service::serve(
                listener,
                js,
                registry,
                store,
                service::ServeOptions { max_batch },
                super::interrupted(),
            )
            .await?;
        }
        Command::Rebuild { db } => {
            let store = ReadStore::open(&db)?;
            let js = global.jetstream("lienthong-replay-rebuild").await?;
            let metrics = Arc::new(Metrics::default());
            for runner in service::runners(&js, &registry, &store, &metrics) {
                let bar = ProgressBar::new(0);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:>14} [{bar:40}] {pos}/{len} seq ({per_sec}, eta {eta})",
                    )?
                    .progress_chars("=> "),
                );
                let r = runner
                    .rebuild(&|done, total| {
                        bar.set_length(total);
                        bar.set_position(done);
                    })
                    .await?;
                bar.finish_with_message(r.projection.clone());
                println!(
                    "{}: {} events folded into {}, checkpoint {}",
                    r.projection, r.events, r.tree, r.checkpoint
                );
            }
            store.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
