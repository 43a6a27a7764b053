//! `lienthong audit`: signed checkpoints, verification, exports.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use lienthong_audit::checkpoint::{load_or_generate_signing_key, load_public_key, Checkpoint};
use lienthong_audit::export::{export, verify_export, ExportFilter};
use lienthong_audit::verify::{checkpoints_from_audit, checkpoints_from_files};
use lienthong_audit::verify_stream;
use lienthong_bus::registry::audited_streams;
use lienthong_replay::audit_writer::AuditWriter;

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Recompute every stream's hash chain and check it against the signed checkpoints.
    /// Exit 0: intact; 1: something differs (the stream and first bad sequence are named).
    Verify {
        /// The audit public key: its 64 hex digits, as published by the replay service, or
        /// a file holding them (data/audit-public.key).
        #[arg(long, env = "LIENTHONG_AUDIT_PUBLIC_KEY")]
        public_key: PathBuf,
        /// Only these streams (default: all audited streams).
        #[arg(long = "stream")]
        streams: Vec<String>,
        /// Take the checkpoints from exported files in this folder instead of AUDIT.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// Take the checkpoints from a witness site's mirror of AUDIT (its credentials file,
        /// e.g. site-data/credentials/auditor.env) and compare them with the central ones: a
        /// history rewritten and signed again centrally after the witness received the
        /// original is found and located.
        #[arg(long, value_name = "ENV", conflicts_with = "checkpoints")]
        witness: Option<PathBuf>,
        /// Verify an export file offline (no NATS needed).
        #[arg(long, conflicts_with_all = ["streams", "checkpoints", "witness"])]
        export: Option<PathBuf>,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
        /// Pass although a chain was resumed after a loss (a standby promoted when the
        /// centre was lost: sequences its checkpoints recorded are not held). Without it such
        /// a stream fails the check, so that the loss is looked at, not passed over.
        #[arg(long)]
        accept_resumed: bool,
    },
    /// Export a stream's events with sequences and chain hashes, plus the covering checkpoints.
    Export {
        #[arg(long)]
        stream: String,
        /// Only events of this CloudEvents type.
        #[arg(long = "type")]
        ty: Option<String>,
        /// Only subjects matching this filter.
        #[arg(long)]
        subject: Option<String>,
        /// Only events that happened at or after / before this time (RFC 3339).
        #[arg(long)]
        since: Option<DateTime<Utc>>,
        #[arg(long)]
        until: Option<DateTime<Utc>>,
        /// jsonl (verifiable with `audit verify --export`) or csv (checkpoints beside it).
        #[arg(long, default_value = "jsonl")]
        format: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write every stream's checkpoints from AUDIT to files (one JSON Lines file per stream),
    /// for an auditor to keep outside the system.
    Checkpoints {
        #[arg(long)]
        out: PathBuf,
    },
    /// Write checkpoints up to every stream's head now (replay role; the signing key).
    Checkpoint {
        /// The signing key (64 hex digits); generated if the file does not exist.
        #[arg(long)]
        key: PathBuf,
    },
}

fn bar(stream: &str) -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")?
            .progress_chars("=> "),
    );
    bar.set_message(stream.to_string());
    Ok(bar)
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        // Offline: clap refuses --stream and --checkpoints beside --export.
        Command::Verify {
            public_key,
            export: Some(file),
            json,
            ..
        } => {
            let key = load_public_key(&public_key)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let r = verify_export(&text, &key);
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else if let Some(t) = r.tampering {
                println!(
                    "{}: TAMPERED — {t} at sequence {}: {}",
                    file.display(),
                    r.first_bad_seq.unwrap_or(0),
                    r.detail.clone().unwrap_or_default()
                );
            } else {
                println!("{}: intact — {} of {} events verified against signed checkpoints ({} not covered)", file.display(), r.verified, r.events, r.uncovered);
            }
            Ok(if r.tampering.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Verify {
            public_key,
            streams,
            checkpoints,
            witness,
            export: None,
            json,
            accept_resumed,
        } => {
            let key = load_public_key(&public_key)?;
            let js = global.session("lienthong-audit-verify").await?.reader;
            // Subsystems registered on the bus are audited too.
            load_registry(&js).await?;
            let witness = match &witness {
                Some(env) => {
                    let (client, refusals) = lienthong_bus::ConnectSettings::resolve(Some(env))?
                        .connect_watched("lienthong-audit-witness")
                        .await
                        .with_context(|| {
                            format!("connecting to the witness ({})", env.display())
                        })?;
                    Some(lienthong_bus::StreamReader::new(client, refusals))
                }
                None => None,
            };
            let streams: Vec<String> = if streams.is_empty() {
                audited_streams().iter().map(|s| s.to_string()).collect()
            } else {
                streams
            };
            let mut reports = Vec::new();
            let mut disagreements = Vec::new();
            for stream in &streams {
                let cps = match (&checkpoints, &witness) {
                    (Some(dir), _) => checkpoints_from_files(dir, stream)?,
                    (None, Some(w)) => {
                        let witnessed = witnessed(checkpoints_from_audit(w, stream).await?);
                        let central = checkpoints_from_audit(&js, stream).await?;
                        let found = compare_with_witness(stream, &central, &witnessed);
                        if !json {
                            for d in &found {
                                println!("{d}");
                            }
                            if found.is_empty() {
                                println!(
                                    "{stream}: the witness holds {} checkpoint(s) (to sequence {}); the central ones agree",
                                    witnessed.len(),
                                    witnessed.iter().map(|c| c.last_seq).max().unwrap_or(0)
                                );
                            }
                        }
                        disagreements.extend(found);
                        witnessed
                    }
                    (None, None) => checkpoints_from_audit(&js, stream).await?,
                };
                let b = bar(stream)?;
                let report = verify_stream(&js, stream, cps, &key, &|done, total| {
                    b.set_length(total);
                    b.set_position(done);
                })
                .await?;
                b.finish_and_clear();
                if !json {
                    println!("{report}");
                }
                reports.push(report);
            }
            if json && witness.is_some() {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "streams": reports,
                        "witness_disagreements": disagreements,
                    }))?
                );
            } else if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
            let resumed = reports.iter().any(|r| !r.resumed.is_empty());
            if resumed && !accept_resumed && !json {
                println!(
                    "a chain was resumed after a loss (above): check it against the standby's promotion report, then pass --accept-resumed"
                );
            }
            Ok(
                if reports.iter().all(|r| r.intact())
                    && disagreements.is_empty()
                    && (accept_resumed || !resumed)
                {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                },
            )
        }
        Command::Export {
            stream,
            ty,
            subject,
            since,
            until,
            format,
            out,
        } => {
            let js = global.session("lienthong-audit-export").await?.reader;
            let cps = checkpoints_from_audit(&js, &stream).await?;
            let filter = ExportFilter {
                ty,
                subject,
                since,
                until,
            };
            let mut file = std::fs::File::create(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            let b = bar(&stream)?;
            let progress = |done: u64, total: u64| {
                b.set_length(total);
                b.set_position(done);
            };
            let summary = match format.as_str() {
                "jsonl" => export(&js, &stream, &filter, &cps, &mut file, None, &progress).await?,
                "csv" => {
                    let cp_path = out.with_extension("checkpoints.jsonl");
                    let mut cp_file = std::fs::File::create(&cp_path)
                        .with_context(|| format!("creating {}", cp_path.display()))?;
                    export(
                        &js,
                        &stream,
                        &filter,
                        &cps,
                        &mut file,
                        Some(&mut cp_file),
                        &progress,
                    )
                    .await?
                }
                other => anyhow::bail!("--format {other:?}: use jsonl or csv"),
            };
            b.finish_and_clear();
            println!(
                "{} events and {} covering checkpoint(s) written to {}{}",
                summary.events,
                summary.checkpoints,
                out.display(),
                if summary.uncovered > 0 {
                    format!(
                        " ({} newer events not yet covered by a checkpoint)",
                        summary.uncovered
                    )
                } else {
                    String::new()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Checkpoints { out } => {
            let js = global.session("lienthong-audit-checkpoints").await?.reader;
            load_registry(&js).await?;
            std::fs::create_dir_all(&out)?;
            for stream in audited_streams() {
                let cps = checkpoints_from_audit(&js, stream).await?;
                let path = out.join(format!("{stream}.checkpoints.jsonl"));
                let body: String = cps
                    .iter()
                    .map(|c| serde_json::to_string(c).map(|s| s + "\n"))
                    .collect::<Result<_, _>>()?;
                std::fs::write(&path, body)?;
                println!("{stream}: {} checkpoint(s) → {}", cps.len(), path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Checkpoint { key } => {
            let key = load_or_generate_signing_key(&key)?;
            let js = global.jetstream("lienthong-audit-checkpoint").await?;
            let writer = AuditWriter::new(js, global.registry()?, key);
            let written = writer.checkpoint_all().await?;
            println!(
                "{} checkpoint(s) written; public key {}",
                written.len(),
                writer.public_key_hex()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The checkpoints as the witness first received them: one per range, the earliest (a
/// central rewrite that reached the witness later does not replace what it saw first).
fn witnessed(mut cps: Vec<Checkpoint>) -> Vec<Checkpoint> {
    let mut seen = std::collections::BTreeSet::new();
    cps.retain(|c| seen.insert((c.first_seq, c.last_seq)));
    cps
}

/// Where the central checkpoints of `stream` differ from those the witness holds, one
/// sentence each, naming the range.
fn compare_with_witness(
    stream: &str,
    central: &[Checkpoint],
    witnessed: &[Checkpoint],
) -> Vec<String> {
    let short = |h: &str| h.chars().take(12).collect::<String>();
    let mut out = Vec::new();
    for w in witnessed {
        let range = format!("{}–{}", w.first_seq, w.last_seq);
        match central
            .iter()
            .find(|c| c.first_seq == w.first_seq && c.last_seq == w.last_seq)
        {
            None => out.push(format!(
                "{stream}: WITNESS DISAGREES — the central AUDIT has no checkpoint of sequences {range}, which the witness received (signed {})",
                w.signed_at.to_rfc3339()
            )),
            Some(c) if c != w => out.push(format!(
                "{stream}: WITNESS DISAGREES — the central checkpoint of sequences {range} is not the one the witness received: head {}… vs {}…, stream created {} vs {}, signed {} vs {}",
                short(&c.head),
                short(&w.head),
                c.stream_created,
                w.stream_created,
                c.signed_at.to_rfc3339(),
                w.signed_at.to_rfc3339()
            )),
            Some(_) => {}
        }
    }
    out
}

/// Learns the subsystems registered on the bus (their streams are audited like the compiled
/// ones'); a bus without a registry has none. A registry that cannot be read fails the
/// verification: it would pass on a part of the history.
async fn load_registry(reader: &lienthong_bus::StreamReader) -> anyhow::Result<()> {
    lienthong_bus::registry::live::load(reader)
        .await
        .map(|_| ())
        .context("reading the subsystem registry (REGISTRY), to know every audited stream")
}
