use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::subscriber::decode_stored;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stream: a subsystem's (DOCUMENTS, SSO, FIELD_REPORTS, OPEN_DATA, MEETINGS, or one
    /// registered on the bus), or the bus's own (DLQ, AUDIT, AGENCIES, REGISTRY).
    stream: String,
    /// Only subjects matching this filter, e.g. 'egov.field_reports.report.*.reopened'.
    #[arg(long)]
    subject: Option<String>,
    /// Start at this stream sequence (default: the last 10 events).
    #[arg(long)]
    from_seq: Option<u64>,
    /// Start at the first event.
    #[arg(long, conflicts_with = "from_seq")]
    all: bool,
    /// Stop after printing what is stored now (do not follow).
    #[arg(long)]
    no_follow: bool,
    /// Print each event as structured-mode JSON (one per line).
    #[arg(long)]
    json: bool,
}

/// How often a followed stream is looked at when nothing new was there.
const POLL: Duration = Duration::from_millis(250);

/// Reads by direct get (no consumer is created, so every role with a read grant may tail,
/// the auditor included); follows by asking again for what comes after the last event.
pub async fn run(global: &Global, a: Args) -> anyhow::Result<ExitCode> {
    let registry = global.registry()?;
    let session = global.session("lienthong-tail").await?;
    let reader = &session.reader;
    // The streams of subsystems registered on the bus are named too (read only for a name
    // the binary does not know: not every role may read the registry).
    // A role that may not read it (an agency reading its copies) is answered by the server.
    if !lienthong_bus::registry::stream_names().contains(&a.stream.as_str())
        && lienthong_bus::registry::live::load(reader).await.is_ok()
    {
        let streams = lienthong_bus::registry::stream_names();
        if !streams.contains(&a.stream.as_str()) {
            anyhow::bail!(
                "no stream {:?} on the bus: use one of {}",
                a.stream,
                streams.join(", ")
            );
        }
    }
    let last = reader
        .last_sequence(&a.stream)
        .await
        .with_context(|| format!("opening stream {}", a.stream))?;
    let mut next = match (a.from_seq, a.all) {
        (Some(s), _) => s.max(1),
        (None, true) => 1,
        (None, false) => last.saturating_sub(9).max(1),
    };
    loop {
        if a.no_follow && next > last {
            return Ok(ExitCode::SUCCESS);
        }
        let batch = tokio::select! {
            _ = super::interrupted() => return Ok(ExitCode::SUCCESS),
            b = reader.batch(&a.stream, next, a.subject.as_deref(), 500) => b?,
        };
        for m in &batch.messages {
            if a.no_follow && m.sequence > last {
                return Ok(ExitCode::SUCCESS);
            }
            let seq = m.sequence;
            match decode_stored(m, Some(&registry)) {
                Ok(ev) if a.json => println!("{}", serde_json::to_string(&ev.event)?),
                Ok(ev) => println!(
                    "{seq:>8}  {}  {:<48} {:<24} {}",
                    ev.event.time().map(|t| t.to_rfc3339()).unwrap_or_default(),
                    ev.event.ty(),
                    ev.event.subject().unwrap_or("-"),
                    ev.event.id()
                ),
                Err(e) => println!("{seq:>8}  NOT VALID on {}: {e}", m.subject),
            }
            next = seq + 1;
        }
        if batch.messages.is_empty() || batch.pending == 0 {
            if a.no_follow {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::select! {
                _ = super::interrupted() => return Ok(ExitCode::SUCCESS),
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
