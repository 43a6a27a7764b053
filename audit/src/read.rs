//! Reading what auditors look at: a stream in order, its creation time, and its checkpoints
//! in `AUDIT` — by direct get, so reading leaves nothing on the server (the auditor may not
//! create consumers).

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use lienthong_bus::reader::StoredMessage;
use lienthong_bus::{EventType, StreamReader};

use crate::checkpoint::Checkpoint;
use crate::error::{AuditError, Result};

/// The event type of checkpoints.
pub fn checkpoint_type() -> EventType {
    EventType::new("audit", "checkpoint", "signed")
}

/// The subject holding `stream`'s checkpoints.
pub fn checkpoint_subject(stream: &str) -> String {
    checkpoint_type().subject(stream)
}

/// Reads `stream` in order from sequence `start` (1: the beginning), only `filter` when
/// given; the stream ends with what is stored, or waits for more when `follow`.
pub fn read_from(
    reader: &StreamReader,
    stream: &str,
    start: u64,
    filter: Option<String>,
    follow: bool,
) -> BoxStream<'static, lienthong_bus::Result<StoredMessage>> {
    reader.messages(stream, start, filter, follow)
}

/// The stream's creation time (RFC 3339, nanoseconds) and its last sequence.
pub async fn stream_created(reader: &StreamReader, stream: &str) -> Result<(String, u64)> {
    let state = reader
        .state(stream)
        .await
        .map_err(|e| AuditError::nats(format!("reading {stream}"), e))?;
    let created: DateTime<Utc> = state.created.unwrap_or_default();
    Ok((
        created.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        state.last_sequence,
    ))
}

/// The newest checkpoint of `stream` in `AUDIT`, with its sequence there.
pub async fn last_checkpoint(
    reader: &StreamReader,
    stream: &str,
) -> Result<Option<(u64, Checkpoint)>> {
    match reader
        .last_for_subject("AUDIT", &checkpoint_subject(stream))
        .await
        .map_err(|e| AuditError::nats(format!("reading the last checkpoint of {stream}"), e))?
    {
        Some(m) => Ok(Some((
            m.sequence,
            Checkpoint::from_message(Some(&m.headers), &m.payload)?,
        ))),
        None => Ok(None),
    }
}
