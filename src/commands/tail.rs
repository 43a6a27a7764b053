use std::process::ExitCode;

use anyhow::Context as _;
use async_nats::jetstream::consumer;
use futures::StreamExt;
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::subscriber::decode_message;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stream.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(lienthong_bus::registry::stream_names()))]
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

pub async fn run(global: &Global, a: Args) -> anyhow::Result<ExitCode> {
    let registry = global.registry()?;
    let js = global.jetstream("lienthong-tail").await?;
    let mut stream = js.get_stream(&a.stream).await.with_context(|| {
        format!(
            "opening stream {} (is the name right, and may these credentials read it?)",
            a.stream
        )
    })?;
    let last = stream.info().await?.state.last_sequence;
    let start = match (a.from_seq, a.all) {
        (Some(s), _) => s.max(1),
        (None, true) => 1,
        (None, false) => last.saturating_sub(9).max(1),
    };
    if a.no_follow && last < start {
        return Ok(ExitCode::SUCCESS);
    }
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            filter_subject: a.subject.clone().unwrap_or_default(),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    loop {
        let next = tokio::select! {
            _ = super::interrupted() => return Ok(ExitCode::SUCCESS),
            m = messages.next() => m,
        };
        let Some(msg) = next else { break };
        let msg = msg?;
        let info = msg.info().map_err(|e| anyhow::anyhow!("{e}"))?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        match decode_message(&msg, Some(&registry)) {
            Ok(ev) if a.json => println!("{}", serde_json::to_string(&ev.event)?),
            Ok(ev) => println!(
                "{seq:>8}  {}  {:<48} {:<24} {}",
                ev.event.time().map(|t| t.to_rfc3339()).unwrap_or_default(),
                ev.event.ty(),
                ev.event.subject().unwrap_or("-"),
                ev.event.id()
            ),
            Err(e) => println!("{seq:>8}  NOT VALID on {}: {e}", msg.subject),
        }
        if a.no_follow && (pending == 0 || seq >= last) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
