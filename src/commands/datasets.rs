//! `lienthong datasets …`: dated, verifiable snapshots of the shared datasets, and their
//! publication to the city's CKAN portal.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use lienthong::datasets::{ckan, snapshot, verify};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write every dataset as it was at an instant (CSV, JSON, columns, DCAT) with its
    /// provenance: streams, sequences folded, code version, the covering signed checkpoint.
    /// Reads by direct get: any role that reads the streams may run it (the auditor too).
    Snapshot {
        /// Only events that happened at or before this instant (RFC 3339); now by default.
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// The folder to write (created).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        publication: super::PublicationArgs,
    },
    /// Check a snapshot against the audited history: the streams against their signed
    /// checkpoints, then every figure rebuilt from the streams. Exit 1 naming the dataset,
    /// row and column of any difference.
    Verify {
        /// The snapshot folder.
        dir: PathBuf,
        /// The audit public key: its 64 hex digits, or a file holding them.
        #[arg(long, env = "LIENTHONG_AUDIT_PUBLIC_KEY")]
        public_key: PathBuf,
    },
    /// Publish every dataset to a CKAN portal (one package each, CSV and JSON resources),
    /// idempotently: publishing the same figures again changes nothing.
    Publish {
        /// The portal's base URL (its Action API is under api/3/action/).
        #[arg(long)]
        ckan: url::Url,
        /// A file holding the CKAN API token.
        #[arg(long)]
        token_file: PathBuf,
        /// The owning organization on the portal (name or id).
        #[arg(long, default_value = "ubnd-tp-phan-thiet")]
        organization: String,
        /// The replay service whose datasets to publish.
        #[arg(long, default_value = "http://127.0.0.1:8080/")]
        from: url::Url,
    },
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Snapshot {
            as_of,
            out,
            publication,
        } => {
            let session = global.session("lienthong-datasets-snapshot").await?;
            let p = snapshot::snapshot(
                &session.reader,
                &session.js,
                &global.registry()?,
                &publication.publication(),
                as_of.map(|t| t.to_utc()),
                &out,
            )
            .await?;
            for d in &p.datasets {
                println!(
                    "{:<32} {:>6} rows ({} cells withheld)",
                    d.id, d.rows, d.withheld_cells
                );
            }
            for s in &p.streams {
                println!(
                    "{:<14} folded to {:>8}  {}",
                    s.stream,
                    s.folded_to,
                    match &s.checkpoint {
                        Some(c) => format!(
                            "covered by the checkpoint signed {} (to {})",
                            c.signed_at, c.last_seq
                        ),
                        None => "no covering checkpoint".into(),
                    }
                );
            }
            println!("snapshot written to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { dir, public_key } => {
            let key = lienthong_audit::checkpoint::load_public_key(&public_key)?;
            let session = global.session("lienthong-datasets-verify").await?;
            let f = verify::verify(
                &dir,
                &session.reader,
                &session.js,
                &global.registry()?,
                &key,
            )
            .await?;
            for c in &f.checked {
                println!("ok    {c}");
            }
            for p in &f.problems {
                println!("FAIL  {p}");
            }
            if f.ok() {
                println!(
                    "the snapshot in {} says what the audited history says",
                    dir.display()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{} difference(s)", f.problems.len());
                Ok(ExitCode::from(1))
            }
        }
        Command::Publish {
            ckan,
            token_file,
            organization,
            from,
        } => {
            let token = std::fs::read_to_string(&token_file)
                .with_context(|| format!("reading {}", token_file.display()))?
                .trim()
                .to_string();
            let r = ckan::publish(&ckan::Target {
                ckan,
                token,
                organization,
                from,
            })
            .await?;
            println!(
                "created {}, updated {}, unchanged {} ({} CKAN writes)",
                r.created.len(),
                r.updated.len(),
                r.unchanged.len(),
                r.writes
            );
            for (what, ids) in [("created", &r.created), ("updated", &r.updated)] {
                for id in ids {
                    println!("  {what} lienthong-{id}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
