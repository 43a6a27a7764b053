use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use lienthong_bus::{BusError, Classification, EventDraft, EventType};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Event type, e.g. vn.egov.field_reports.report.submitted.
    #[arg(long = "type", value_name = "TYPE")]
    ty: String,
    /// Aggregate key (report id, document id, …); any text, encoded into the subject.
    #[arg(long)]
    key: String,
    /// Event id, deterministic from the source record (same record, same id).
    #[arg(long)]
    id: String,
    /// Event data as JSON, or @FILE to read it from a file.
    #[arg(long)]
    data: String,
    /// CloudEvents source URI.
    #[arg(long, default_value = "urn:lienthong:cli")]
    source: String,
    /// When it happened in the subsystem (RFC 3339); now by default.
    #[arg(long)]
    time: Option<DateTime<Utc>>,
    /// Schema version (the newest by default).
    #[arg(long)]
    schema_version: Option<u32>,
    /// public, internal, confidential or restricted.
    #[arg(long, default_value = "internal")]
    classification: String,
    /// Publish only if the aggregate's last sequence is this (0: new aggregate).
    #[arg(long)]
    expect_seq: Option<u64>,
}

pub async fn run(global: &Global, a: Args) -> anyhow::Result<ExitCode> {
    let event_type = EventType::parse(&a.ty)?;
    let text = match a.data.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => a.data.clone(),
    };
    let data = serde_json::from_str(&text).context("--data is not JSON")?;
    let classification: Classification = serde_json::from_value(serde_json::Value::String(
        a.classification.clone(),
    ))
    .with_context(|| {
        format!(
            "--classification {:?}: use public, internal, confidential or restricted",
            a.classification
        )
    })?;
    let publisher = global
        .session("lienthong-publish")
        .await?
        .publisher(global.registry()?, a.source);
    let result = publisher
        .publish(EventDraft {
            event_type,
            id: a.id,
            key: a.key,
            time: a.time.unwrap_or_else(Utc::now),
            data,
            classification,
            schema_version: a.schema_version,
            traceparent: None,
            expected_last_subject_sequence: a.expect_seq,
        })
        .await;
    match result {
        Ok(p) => {
            let what = if p.duplicate {
                "already stored (duplicate)"
            } else {
                "stored"
            };
            println!(
                "{what}: {} seq {} subject {}",
                p.stream, p.sequence, p.subject
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(BusError::Invalid {
            violations,
            dead_letter,
            ..
        }) => {
            eprintln!("rejected: the data does not match its schema");
            for v in violations {
                eprintln!("  {v}");
            }
            if let Some(seq) = dead_letter {
                eprintln!("kept in the DLQ at sequence {seq} (`lienthong dlq list`)");
            }
            Ok(ExitCode::from(2))
        }
        Err(e @ BusError::Conflict { .. }) => {
            eprintln!("{e}");
            Ok(ExitCode::from(3))
        }
        Err(e) => Err(e.into()),
    }
}
