//! Receiving and decoding stored events ahead of a fold: one task receives from the ordered
//! consumer (keeping its pull requests going), one decodes and validates, each a few batches
//! ahead, in stream order. Folded batches come back to the decoding task to be freed on the
//! thread that allocated them (cheaper for the allocator than freeing across threads).

use std::sync::Arc;

use async_nats::jetstream::{self, consumer};
use futures::{FutureExt, StreamExt};
use lienthong_bus::envelope::Structured;
use lienthong_bus::reader::StoredMessage;
use lienthong_bus::subscriber::{decode_message, decode_stored};
use lienthong_bus::SchemaRegistry;

use crate::projection::ProjectedEvent;
use crate::runner::StageCpu;

/// Batches decoded ahead of the fold.
pub const DECODED_AHEAD: usize = 4;
/// Longest a batch waits for the messages the consumer said were pending.
pub const FILL_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// One stored message, decoded and validated for a projection.
pub struct DecodedMessage {
    pub sequence: u64,
    /// Messages left in the consumer after this one.
    pub pending: u64,
    pub event: Result<Option<ProjectedEvent>, lienthong_bus::BusError>,
}

/// Stops the reader task when the fold returns, whichever way.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads what the consumer has in batches of up to `max_batch` ([`next_batch`]), decodes
/// and validates it, and hands it on in stream order.
pub async fn read_ahead(
    messages: consumer::pull::Ordered,
    registry: Arc<SchemaRegistry>,
    max_batch: usize,
    tx: tokio::sync::mpsc::Sender<crate::Result<Vec<DecodedMessage>>>,
    spent: std::sync::mpsc::Receiver<Vec<DecodedMessage>>,
    metrics: Arc<crate::Metrics>,
) {
    // Receiving (which keeps the consumer's pull requests going) and decoding run as two
    // tasks, so the server is never kept waiting while a batch is decoded.
    let (raw_tx, mut raw_rx) = tokio::sync::mpsc::channel::<crate::Result<Vec<Delivered>>>(4);
    let decoder = AbortOnDrop(tokio::spawn(async move {
        while let Some(batch) = raw_rx.recv().await {
            while let Ok(folded) = spent.try_recv() {
                drop(folded);
            }
            let failed = batch.is_err();
            let decoded = StageCpu::count(&metrics.cpu.decode, || {
                batch.and_then(|b| {
                    b.into_iter()
                        .map(|d| {
                            let (sequence, pending) = position(&d)?;
                            Ok(DecodedMessage {
                                sequence,
                                pending,
                                event: project(&registry, &d.0, sequence),
                            })
                        })
                        .collect()
                })
            });
            if tx.send(decoded).await.is_err() || failed {
                return;
            }
        }
    }));
    // Each message's position read once, from its ack subject: the batching looks at the
    // pending count, the decoder at both.
    let mut messages = messages.map(|r| {
        r.map(|m| {
            let position = m.reply.as_deref().and_then(ack_position);
            (m, position)
        })
    });
    let behind = |(_, position): &Delivered| position.is_some_and(|(_, pending)| pending > 0);
    while let Some(batch) = next_batch(&mut messages, max_batch, behind).await {
        let failed = batch.is_err();
        if raw_tx.send(batch).await.is_err() || failed {
            break;
        }
    }
    drop(raw_tx);
    // Let the decoder finish what it has (the fold may still want it).
    let mut decoder = decoder;
    let _ = (&mut decoder.0).await;
}

/// [`read_ahead`] for messages read by direct get (a role without consumers: the auditor
/// verifying a dataset). The stream's order; batches of what has arrived.
pub async fn read_ahead_stored(
    messages: futures::stream::BoxStream<'static, lienthong_bus::Result<StoredMessage>>,
    registry: Arc<SchemaRegistry>,
    max_batch: usize,
    tx: tokio::sync::mpsc::Sender<crate::Result<Vec<DecodedMessage>>>,
    metrics: Arc<crate::Metrics>,
) {
    // Looking ahead for more may find the end: a fused stream says so again, harmlessly.
    let mut messages = messages.fuse();
    // A finite read up to a known sequence: always worth waiting for a full batch.
    while let Some(batch) = next_batch(&mut messages, max_batch, |_| true).await {
        let failed = batch.is_err();
        let decoded = StageCpu::count(&metrics.cpu.decode, || {
            batch.map(|b| {
                b.iter()
                    .map(|m| DecodedMessage {
                        sequence: m.sequence,
                        // Unknown by direct get: the fold ends at its target sequence.
                        pending: u64::MAX,
                        event: project_stored(&registry, m),
                    })
                    .collect()
            })
        });
        if tx.send(decoded).await.is_err() || failed {
            break;
        }
    }
}

/// The next batch from `messages` (`None` once they end): the first to arrive and what
/// else has arrived, up to `max`. While `behind` says the source has more for us
/// (catching up), it waits for them to fill the batch, so that each batch is handed on,
/// decoded and committed once rather than in small pieces that each wake three tasks —
/// measured, those hand-offs took a third of a rebuild's time. Never longer than
/// [`FILL_WAIT`] after the first: what was counted as pending may be deleted meanwhile.
async fn next_batch<S, T, E>(
    messages: &mut S,
    max: usize,
    behind: impl Fn(&T) -> bool,
) -> Option<crate::Result<Vec<T>>>
where
    S: futures::Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Display,
{
    let first = match messages.next().await? {
        Ok(m) => m,
        Err(e) => return Some(Err(reading(e.to_string()))),
    };
    let mut backlog = behind(&first);
    let mut batch = Vec::with_capacity(max);
    batch.push(first);
    let deadline = tokio::time::sleep(FILL_WAIT);
    tokio::pin!(deadline);
    while batch.len() < max {
        let next = if backlog {
            tokio::select! {
                biased;
                m = messages.next() => Some(m),
                () = &mut deadline => None,
            }
        } else {
            messages.next().now_or_never()
        };
        match next {
            Some(Some(Ok(m))) => {
                backlog = behind(&m);
                batch.push(m);
            }
            Some(Some(Err(e))) => return Some(Err(reading(e.to_string()))),
            _ => break,
        }
    }
    Some(Ok(batch))
}

/// A delivered message and its `(stream sequence, pending)` as its ack subject says
/// (`None` when the subject is not one [`ack_position`] reads: the decoder then asks
/// [`jetstream::Message::info`], whose timestamp parsing is the costly part).
type Delivered = (jetstream::Message, Option<(u64, u64)>);

/// A delivered message's `(stream sequence, pending)`: what its ack subject said, else
/// async-nats's full parse of it.
fn position((m, read): &Delivered) -> crate::Result<(u64, u64)> {
    match read {
        Some(p) => Ok(*p),
        None => m
            .info()
            .map(|i| (i.stream_sequence, i.pending))
            .map_err(|e| reading(e.to_string())),
    }
}

/// `(stream sequence, pending)` of a `$JS.ACK` subject in either format of ADR-15:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>` or, with 11
/// tokens or more, `$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.…`.
fn ack_position(reply: &str) -> Option<(u64, u64)> {
    let rest = reply.strip_prefix("$JS.ACK.")?;
    let mut tokens: [&str; 11] = [""; 11];
    let mut n = 0;
    for t in rest.split('.') {
        if n == tokens.len() {
            break;
        }
        tokens[n] = t;
        n += 1;
    }
    // Where `<delivered>` is: the sequence follows it, the pending count is 3 further.
    let delivered = match n {
        7 => 2,
        9.. => 4,
        _ => return None,
    };
    Some((
        tokens[delivered + 1].parse().ok()?,
        tokens[delivered + 4].parse().ok()?,
    ))
}

fn reading(reason: String) -> crate::ReplayError {
    crate::ReplayError::Nats {
        operation: "reading the stream".into(),
        reason,
    }
}

/// Decodes and validates one stored message for the projection. Structured mode (what
/// the bus writes) takes a borrowed fast path; binary mode the full CloudEvents decoder.
fn project(
    registry: &SchemaRegistry,
    msg: &jetstream::Message,
    sequence: u64,
) -> Result<Option<ProjectedEvent>, lienthong_bus::BusError> {
    project_parts(
        registry,
        msg.headers.as_ref(),
        &msg.payload,
        sequence,
        || decode_message(msg, Some(registry)),
    )
}

/// [`project`] for a message read by direct get.
fn project_stored(
    registry: &SchemaRegistry,
    msg: &StoredMessage,
) -> Result<Option<ProjectedEvent>, lienthong_bus::BusError> {
    project_parts(
        registry,
        Some(&msg.headers),
        &msg.payload,
        msg.sequence,
        || decode_stored(msg, Some(registry)),
    )
}

fn project_parts(
    registry: &SchemaRegistry,
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
    sequence: u64,
    full: impl FnOnce() -> Result<lienthong_bus::ReceivedEvent, lienthong_bus::BusError>,
) -> Result<Option<ProjectedEvent>, lienthong_bus::BusError> {
    let Some(read) = Structured::read(headers, payload) else {
        return Ok(ProjectedEvent::from_received(full()?));
    };
    let s = read?;
    let (Some(schema), Some(data)) = (s.dataschema.as_deref(), s.data) else {
        return Err(lienthong_bus::BusError::Envelope {
            reason: format!("event {} has no dataschema or no JSON data", s.id),
        });
    };
    // Repeated member names: read as serde_json reads them (the last one wins), as the bus's
    // validator and every other reader do; the arena would find the first.
    let (data, verdict) = if crate::projection::has_repeated_names(&data) {
        let json = crate::projection::json_of(&data);
        let verdict = registry.validate(schema, &json);
        (crate::projection::data_of(&json), verdict)
    } else {
        let verdict = match registry.is_valid_arena(schema, &data) {
            Some(true) => Ok(()),
            // Unknown, or not valid: the serde_json validator says which and names each
            // violation.
            _ => registry.validate(schema, &crate::projection::json_of(&data)),
        };
        (data, verdict)
    };
    match verdict {
        Ok(()) => {}
        Err(lienthong_bus::schema::ValidationFailure::UnknownSchema) => {
            return Err(lienthong_bus::BusError::UnknownSchema {
                ty: s.ty.to_string(),
                version: None,
            })
        }
        Err(lienthong_bus::schema::ValidationFailure::Violations(violations)) => {
            return Err(lienthong_bus::BusError::Invalid {
                ty: s.ty.to_string(),
                id: s.id.to_string(),
                violations,
                dead_letter: None,
            })
        }
    }
    let stored_version = crate::upcast::version_of(schema).unwrap_or(1);
    let (version, data) = crate::upcast::upcast_data(&s.ty, stored_version, data);
    Ok(Some(ProjectedEvent {
        ty: s.ty.into_owned(),
        id: s.id.into_owned(),
        source: s.source.into_owned(),
        key: s.subject.map(|k| k.into_owned()),
        time: s
            .time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc()),
        data,
        version,
        sequence,
    }))
}

#[cfg(test)]
mod tests {
    use super::{ack_position, project_parts};
    use lienthong_bus::SchemaRegistry;

    #[test]
    fn repeated_member_names_are_read_as_serde_json_reads_them() {
        use sonic_rs::JsonValueTrait;
        let registry = SchemaRegistry::embedded().unwrap();
        let schema = registry
            .schema_id("vn.egov.field_reports.report.status_changed", None)
            .unwrap()
            .to_string();
        let payload = |data: &str| {
            format!(
                r#"{{"specversion":"1.0","id":"e1","source":"urn:t","type":"vn.egov.field_reports.report.status_changed","dataschema":"{schema}","data":{data}}}"#
            )
        };
        // The last "status" is what serde_json (and so the bus's validator) sees.
        let twice = payload(
            r#"{"report_id":"PT-1","status":"fixed","previous_status":"open","changed_at":"2023-11-21T08:30:00+07:00","origin":"update","status":"open"}"#,
        );
        let ev = project_parts(&registry, None, twice.as_bytes(), 1, || unreachable!())
            .unwrap()
            .unwrap();
        assert_eq!(ev.data.get("status").and_then(|v| v.as_str()), Some("open"));
        // A repeated name hiding an invalid value is refused, as serde_json's reading says.
        let hidden = payload(
            r#"{"report_id":"PT-1","status":"fixed","previous_status":"open","changed_at":"2023-11-21T08:30:00+07:00","origin":"update","status":42}"#,
        );
        assert!(project_parts(&registry, None, hidden.as_bytes(), 1, || unreachable!()).is_err());
        // Without repetition: the arena path.
        let once = payload(
            r#"{"report_id":"PT-1","status":"fixed","previous_status":"open","changed_at":"2023-11-21T08:30:00+07:00","origin":"update"}"#,
        );
        let ev = project_parts(&registry, None, once.as_bytes(), 1, || unreachable!())
            .unwrap()
            .unwrap();
        assert_eq!(
            ev.data.get("status").and_then(|v| v.as_str()),
            Some("fixed")
        );
        assert_eq!(ev.sequence, 1);
    }

    #[test]
    fn deeply_nested_data_is_refused_without_reaching_the_arena_parser() {
        let registry = SchemaRegistry::embedded().unwrap();
        let deep = format!(
            r#"{{"specversion":"1.0","id":"e1","source":"urn:t","type":"t","dataschema":"s","data":{}{}}}"#,
            "[".repeat(200_000),
            "]".repeat(200_000)
        );
        // On a thread with a worker's stack: refused as serde_json refuses it, no crash, and
        // never handed to the full decoder (that would parse it again).
        let refused = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                project_parts(&registry, None, deep.as_bytes(), 1, || unreachable!()).map(|_| ())
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(
            matches!(&refused, Err(lienthong_bus::BusError::Envelope { reason }) if reason.contains("recursion limit")),
            "{refused:?}"
        );
        // serde_json stops at 128 levels.
        assert!(serde_json::from_str::<serde_json::Value>(&"[".repeat(200)).is_err());
        // Many openings but shallow: read (through serde_json) as any other event.
        let registry = SchemaRegistry::embedded().unwrap();
        let schema = registry
            .schema_id("vn.egov.field_reports.report.status_changed", None)
            .unwrap()
            .to_string();
        let notes = "{[".repeat(100);
        let wide = format!(
            r#"{{"specversion":"1.0","id":"e1","source":"urn:t","type":"vn.egov.field_reports.report.status_changed","dataschema":"{schema}","data":{{"report_id":"PT-1","status":"fixed","previous_status":"open","notes":"{notes}","changed_at":"2023-11-21T08:30:00+07:00","origin":"update"}}}}"#
        );
        let ev = project_parts(&registry, None, wide.as_bytes(), 1, || unreachable!())
            .unwrap()
            .unwrap();
        use sonic_rs::JsonValueTrait;
        assert_eq!(
            ev.data.get("notes").and_then(|v| v.as_str()),
            Some(notes.as_str())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_for_what_is_pending_but_not_past_its_deadline() {
        use super::{next_batch, FILL_WAIT};
        use futures::StreamExt;
        use std::time::Duration;
        type Item = Result<(u32, bool), String>;
        // (number, more pending after it) arriving one per millisecond.
        let arriving = |items: Vec<(u32, bool)>| {
            futures::stream::iter(items).then(|m| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok::<_, String>(m)
            })
        };
        let behind = |m: &(u32, bool)| m.1;
        let numbers = |b: Vec<(u32, bool)>| b.into_iter().map(|m| m.0).collect::<Vec<_>>();

        // Catching up: batches are filled to the brim, the rest follows.
        let mut s = Box::pin(arriving((0..7).map(|i| (i, i < 6)).collect()));
        assert_eq!(
            numbers(next_batch(&mut s, 3, behind).await.unwrap().unwrap()),
            [0, 1, 2]
        );
        assert_eq!(
            numbers(next_batch(&mut s, 3, behind).await.unwrap().unwrap()),
            [3, 4, 5]
        );
        // Nothing more pending after 6: handed on alone, at once.
        assert_eq!(
            numbers(next_batch(&mut s, 3, behind).await.unwrap().unwrap()),
            [6]
        );
        assert!(next_batch(&mut s, 3, behind).await.is_none());

        // Said to be pending but never coming (deleted meanwhile): handed on at the deadline.
        let mut s = Box::pin(
            arriving(vec![(0, true), (1, true)]).chain(futures::stream::pending::<Item>()),
        );
        let started = tokio::time::Instant::now();
        assert_eq!(
            numbers(next_batch(&mut s, 10, behind).await.unwrap().unwrap()),
            [0, 1]
        );
        let waited = started.elapsed();
        assert!(waited >= FILL_WAIT && waited < FILL_WAIT * 2, "{waited:?}");

        // Following live (nothing pending): what has arrived, without waiting for more.
        let mut s = Box::pin(arriving(vec![(0, false), (1, false)]));
        assert_eq!(
            numbers(next_batch(&mut s, 10, behind).await.unwrap().unwrap()),
            [0]
        );

        // An error ends the batch and is handed on as the reading's error.
        let mut s = Box::pin(futures::stream::iter(vec![
            Ok((0, true)),
            Err::<(u32, bool), _>("gone".to_string()),
        ]));
        let failed = next_batch(&mut s, 10, behind).await.unwrap();
        assert!(failed.is_err_and(|e| e.to_string().contains("gone")));
    }

    #[test]
    fn the_position_is_read_from_either_ack_subject_format() {
        // The original format, then ADR-15's with domain, account hash and a random token.
        assert_eq!(
            ack_position("$JS.ACK.FIELD_REPORTS.c1.1.4215.4215.1795886288000000000.17"),
            Some((4215, 17))
        );
        assert_eq!(
            ack_position("$JS.ACK._.ACCHASH.FIELD_REPORTS.c1.2.9.8.1795886288000000000.0.rnd"),
            Some((9, 0))
        );
        assert_eq!(
            ack_position("$JS.ACK.hub.ACCHASH.DOCUMENTS.c1.1.12.12.1795886288000000000.3"),
            Some((12, 3))
        );
        for bad in [
            "$JS.ACK.S.c.1.x.1.1.1",
            "$JS.ACK.S.c.1.1",
            "_INBOX.abc",
            "$JS.ACK.a.b.c.d.e.f.g.h",
        ] {
            assert_eq!(ack_position(bad), None, "{bad}");
        }
    }
}
