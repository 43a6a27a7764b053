//! Reading what auditors look at: a stream in order, its creation time, and its checkpoints
//! in `AUDIT`.

use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use lienthong_bus::EventType;

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

/// Reads `stream` in order from sequence `start` (1: the beginning), only `filter` when given,
/// with an ordered consumer (nothing to acknowledge, nothing left behind).
pub async fn read_from(
    js: &jetstream::Context,
    stream: &str,
    start: u64,
    filter: Option<String>,
) -> Result<consumer::pull::Ordered> {
    let s = js
        .get_stream_no_info(stream)
        .await
        .map_err(|e| AuditError::nats(format!("opening {stream}"), e))?;
    let c = s
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: if start <= 1 {
                consumer::DeliverPolicy::All
            } else {
                consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                }
            },
            filter_subject: filter.unwrap_or_default(),
            ..Default::default()
        })
        .await
        .map_err(|e| AuditError::nats(format!("reading {stream}"), e))?;
    c.messages()
        .await
        .map_err(|e| AuditError::nats(format!("reading {stream}"), e))
}

/// The stream's creation time (RFC 3339, nanoseconds) and its last sequence.
pub async fn stream_created(js: &jetstream::Context, stream: &str) -> Result<(String, u64)> {
    let mut s = js
        .get_stream(stream)
        .await
        .map_err(|e| AuditError::nats(format!("opening {stream}"), e))?;
    let info = s
        .info()
        .await
        .map_err(|e| AuditError::nats(format!("reading {stream}"), e))?;
    let created = DateTime::<Utc>::from_timestamp_nanos(info.created.unix_timestamp_nanos() as i64);
    Ok((
        created.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        info.state.last_sequence,
    ))
}

/// The newest checkpoint of `stream` in `AUDIT`.
pub async fn last_checkpoint(js: &jetstream::Context, stream: &str) -> Result<Option<Checkpoint>> {
    let audit = js
        .get_stream_no_info("AUDIT")
        .await
        .map_err(|e| AuditError::nats("opening AUDIT", e))?;
    match audit
        .direct_get_last_for_subject(checkpoint_subject(stream))
        .await
    {
        Ok(msg) => Ok(Some(Checkpoint::from_message(
            Some(&msg.headers),
            &msg.payload,
        )?)),
        Err(e) if e.kind() == jetstream::stream::DirectGetErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuditError::nats(
            format!("reading the last checkpoint of {stream}"),
            e,
        )),
    }
}
