use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use lienthong_replay::service::{self, DEFAULT_LISTEN};
use lienthong_replay::store::PointInTime;
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
        /// Also chain every stream and write signed checkpoints to AUDIT with this Ed25519
        /// key (64 hex digits; generated if the file does not exist).
        #[arg(long, conflicts_with = "read_only")]
        audit_key: Option<PathBuf>,
        /// Enable `POST /api/v1/admin/rebuild` for callers presenting the token in this file
        /// (live rebuilds beside the served read models).
        #[arg(long, conflicts_with = "read_only")]
        admin_token_file: Option<PathBuf>,
        #[command(flatten)]
        publication: super::PublicationArgs,
        /// With --audit-key: how often (seconds) every audited stream is verified against
        /// its signed checkpoints (`/api/v1/integrity`, the dashboard).
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        verify_every: u64,
        /// HTTPS: this host's certificate (or plaintext, beyond loopback only when asked for).
        #[command(flatten)]
        tls: Box<super::TlsArgs>,
    },
    /// Rebuild read models from the start of their streams into a fresh tree, then swap.
    /// With --as-of or --until-seq, the read models as they were then (into their own --db).
    Rebuild {
        #[arg(long, default_value = "data/replay")]
        db: PathBuf,
        /// Only events that happened at or before this time (RFC 3339).
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Only stream sequences up to this one (in each stream; use with --projection).
        #[arg(long)]
        until_seq: Option<u64>,
        /// Only these read models (default: all).
        #[arg(long = "projection", value_parser = clap::builder::PossibleValuesParser::new(projection_names()))]
        projections: Vec<String>,
    },
}

/// The read models' names, for the help and the argument check.
fn projection_names() -> Vec<&'static str> {
    lienthong_replay::read_models::projections()
        .iter()
        .map(|p| p.name())
        .collect()
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    let registry = global.registry()?;
    match cmd {
        Command::Serve {
            db,
            listen,
            read_only,
            max_batch,
            audit_key,
            admin_token_file,
            publication,
            verify_every,
            tls,
        } => {
            let transport = tls.transport()?;
            let admin_token = match admin_token_file {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .map(|t| t.trim().to_string())
                        .map_err(|e| anyhow::anyhow!("admin token file {}: {e}", p.display()))?,
                ),
                None => None,
            };
            let audit_key = match audit_key {
                Some(path) => Some(lienthong_audit::checkpoint::load_or_generate_signing_key(
                    &path,
                )?),
                None => None,
            };
            let store = ReadStore::open_checked(&db)?;
            if read_only && !store.repairs().is_empty() {
                anyhow::bail!(
                    "{}; a read-only copy cannot be folded again here: rebuild it (lienthong replay rebuild --db {})",
                    store.repairs().join("; "),
                    db.display()
                );
            }
            let js = if read_only {
                None
            } else {
                Some(global.jetstream("lienthong-replay").await?)
            };
            let tcp = tokio::net::TcpListener::bind(&listen).await?;
            let listener =
                lienthong_bus::tls::http::Listener::new("the replay service", tcp, &transport)?;
            println!(
                "read models on {}/ (store {})",
                listener.url(),
                db.display()
            );
            service::serve(
                listener,
                js,
                registry,
                store,
                service::ServeOptions {
                    max_batch,
                    audit_key,
                    admin_token,
                    nats_urls: vec![global.settings()?.url],
                    metrics: None,
                    publication: publication.publication(),
                    verify_every: std::time::Duration::from_secs(verify_every.max(1)),
                    certificates: transport
                        .tls
                        .as_ref()
                        .map(|t| t.certificates())
                        .unwrap_or_default(),
                    ..Default::default()
                },
                super::interrupted(),
            )
            .await?;
        }
        Command::Rebuild {
            db,
            as_of,
            until_seq,
            projections,
        } => {
            let at = PointInTime {
                as_of: as_of.map(|t| t.to_utc()),
                until_seq,
            };
            if at != PointInTime::default() && db == Path::new("data/replay") {
                anyhow::bail!("a point-in-time rebuild goes into its own directory, not the live store: pass --db, then `lienthong replay serve --db DIR --read-only`");
            }
            let known: Vec<&str> = lienthong_replay::read_models::projections()
                .iter()
                .map(|p| p.name())
                .collect();
            if let Some(p) = projections.iter().find(|p| !known.contains(&p.as_str())) {
                anyhow::bail!("unknown read model {p:?}; known: {}", known.join(", "));
            }
            let store = ReadStore::open(&db)?;
            let session = global.session("lienthong-replay-rebuild").await?;
            let started = std::time::Instant::now();
            let metrics = Arc::new(Metrics::default());
            for runner in service::runners(&session.js, &registry, &store, &metrics) {
                if !projections.is_empty()
                    && !projections.iter().any(|p| p == runner.projection_name())
                {
                    continue;
                }
                let bar = ProgressBar::new(0);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:>14} [{bar:40}] {pos}/{len} seq ({per_sec}, eta {eta})",
                    )?
                    .progress_chars("=> "),
                );
                // A role that may not read with consumers (not the replay role) is told at once.
                let r = session
                    .guard(runner.rebuild_at(at, &|done, total| {
                        bar.set_length(total);
                        bar.set_position(done);
                    }))
                    .await?;
                bar.finish_with_message(r.projection.clone());
                println!(
                    "{}: {} events folded into {}, checkpoint {}",
                    r.projection, r.events, r.tree, r.checkpoint
                );
            }
            store.flush()?;
            println!(
                "{} {:.3}",
                super::REBUILD_SECONDS_LINE,
                started.elapsed().as_secs_f64()
            );
            if let Some(mb) = super::peak_resident_mb() {
                println!("{} {mb:.1}", super::PEAK_MEMORY_LINE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
