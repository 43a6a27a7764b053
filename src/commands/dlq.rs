use std::process::ExitCode;

use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::subscriber::decode_stored;
use lienthong_bus::{BusError, DeadLetter};

use super::Global;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the dead letters: what was rejected, when, and why.
    List {
        /// Only dead letters of this subsystem.
        #[arg(long)]
        subsystem: Option<String>,
        /// Print each dead letter as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate rejected events again (e.g. after a schema fix) and publish those that now
    /// pass. The DLQ keeps everything; redriven events are stored once (same source + id).
    Redrive {
        /// Only these DLQ sequences (default: all).
        #[arg(long = "seq")]
        seqs: Vec<u64>,
        /// Only dead letters of this subsystem.
        #[arg(long)]
        subsystem: Option<String>,
    },
}

async fn letters(
    global: &Global,
    subsystem: Option<&str>,
) -> anyhow::Result<Vec<(u64, DeadLetter)>> {
    let registry = global.registry()?;
    let session = global.session("lienthong-dlq").await?;
    let filter = subsystem.map(|s| format!("egov.dlq.{s}.>"));
    let mut out = Vec::new();
    for msg in session.reader.read_all("DLQ", filter.as_deref()).await? {
        let seq = msg.sequence;
        match decode_stored(&msg, Some(&registry)).and_then(|ev| DeadLetter::from_event(&ev.event))
        {
            Ok(letter) => out.push((seq, letter)),
            Err(e) => eprintln!("DLQ {seq}: unreadable dead letter: {e}"),
        }
    }
    Ok(out)
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::List { subsystem, json } => {
            let all = letters(global, subsystem.as_deref()).await?;
            for (seq, l) in &all {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string(&serde_json::json!({"seq": seq, "dead_letter": l}))?
                    );
                    continue;
                }
                println!(
                    "{seq:>6}  {}  {}  {} ({})",
                    l.rejected_at.to_rfc3339(),
                    l.reason,
                    l.original_id,
                    l.original_type
                );
                for v in &l.violations {
                    println!("          {v}");
                }
                if l.violations.is_empty() {
                    println!("          {}", l.message);
                }
            }
            if !json {
                println!("{} dead letter(s)", all.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Redrive { seqs, subsystem } => {
            let registry = global.registry()?;
            let session = global.session("lienthong-dlq-redrive").await?;
            let (mut sent, mut still_bad) = (0, 0);
            for (seq, letter) in letters(global, subsystem.as_deref()).await? {
                if !seqs.is_empty() && !seqs.contains(&seq) {
                    continue;
                }
                let event = match letter.original_event() {
                    Ok(e) => e,
                    Err(e) => {
                        println!("{seq}: cannot be redriven: {e}");
                        still_bad += 1;
                        continue;
                    }
                };
                let publisher = session.publisher(registry.clone(), event.source().to_string());
                // Validate first: redriving must not write a second dead letter for the same input.
                match publisher.prepare(event, None) {
                    Ok(prepared) => {
                        let p = publisher.send(prepared).await?;
                        println!(
                            "{seq}: published to {} seq {}{}",
                            p.stream,
                            p.sequence,
                            if p.duplicate { " (already there)" } else { "" }
                        );
                        sent += 1;
                    }
                    Err(rejected) => {
                        let reason = match rejected.error {
                            BusError::Invalid { violations, .. } => violations
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join("; "),
                            other => other.to_string(),
                        };
                        println!("{seq}: still rejected: {reason}");
                        still_bad += 1;
                    }
                }
            }
            println!("{sent} redriven, {still_bad} still rejected");
            Ok(if still_bad > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
