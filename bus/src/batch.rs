//! Atomic batch publishing for bulk imports and backfills (JetStream ≥ 2.12, ADR-50).
//!
//! Every event is checked exactly as by [`Publisher::publish`] (what fails goes to the DLQ
//! and never into a batch). The valid ones are committed to their stream in batches of up
//! to [`MAX_ATOMIC_BATCH`]: each batch is stored whole or not at all, and the server answers
//! once per batch. With `sync_interval: always` (every acknowledged event on disk) that is
//! what makes durable ingest fast: the naive path waits for one acknowledgement — and its
//! write — per event.
//!
//! The protocol: every message carries `Nats-Batch-Id` and `Nats-Batch-Sequence` (1, 2, …);
//! all but the last are sent without a reply subject; the last also carries
//! `Nats-Batch-Commit: 1` and is answered with a PubAck naming the batch and its size. The
//! message ids (`Nats-Msg-Id`) stay, so a batch sent again after a lost acknowledgement
//! stores nothing twice.

use std::collections::VecDeque;

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use tracing::{debug, warn};

use crate::error::{BusError, Result};
use crate::publisher::{EventDraft, Prepared, Published, Publisher, Rejected};
use crate::topology;

/// The server's limit on messages in one atomic batch.
pub const MAX_ATOMIC_BATCH: usize = 1000;

/// Batches whose commit is awaited at a time (the server allows 50 per stream).
const IN_FLIGHT: usize = 4;

pub const BATCH_ID: &str = "Nats-Batch-Id";
pub const BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
pub const BATCH_COMMIT: &str = "Nats-Batch-Commit";

/// Valid events bound for one stream, in order, committed together.
struct Batch {
    /// Position of each event in the caller's input.
    positions: Vec<usize>,
    events: Vec<Prepared>,
}

impl Publisher {
    /// Publishes `drafts` in atomic batches of up to `batch_size` (at most
    /// [`MAX_ATOMIC_BATCH`]); results come back in input order.
    ///
    /// Events that fail validation are kept in the DLQ (their result is
    /// [`BusError::Invalid`]) and the others are still published. An event with an
    /// optimistic-concurrency expectation is published on its own, after everything before
    /// it (inside a batch the server would check it against the stream as it was before the
    /// batch). A batch the server refuses as a whole (one holding an already-stored event,
    /// say) is sent again event by event, so each result names its own outcome. A batch whose acknowledgement does not
    /// come is sent again with a new batch id and the same message ids: nothing is stored
    /// twice.
    pub async fn publish_batched(
        &self,
        drafts: Vec<EventDraft>,
        batch_size: usize,
    ) -> Vec<Result<Published>> {
        let batch_size = batch_size.clamp(1, MAX_ATOMIC_BATCH);
        let mut results: Vec<Option<Result<Published>>> = (0..drafts.len()).map(|_| None).collect();
        let mut in_flight: VecDeque<(Batch, PublishAckFuture)> = VecDeque::new();
        let mut current: Option<(&'static str, Batch)> = None;
        for (i, draft) in drafts.into_iter().enumerate() {
            let stream = topology::stream_for_subsystem(&draft.event_type.subsystem).unwrap_or("");
            let expects = draft.expected_last_subject_sequence.is_some();
            let prepared = match self.prepare_draft(draft) {
                Ok(Ok(p)) => p,
                Ok(Err(Rejected { event, error })) => {
                    results[i] = Some(Err(self.dead_letter(*event, error).await));
                    continue;
                }
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            if expects {
                // The server checks the expectations in a batch against the stream as it was
                // before the batch: two writes to one aggregate could both pass. An event with
                // an expectation goes alone, once everything before it is stored.
                if let Some((_, before)) = current.take() {
                    self.start(before, &mut in_flight, &mut results).await;
                }
                while let Some((batch, ack)) = in_flight.pop_front() {
                    self.finish(batch, ack.await, &mut results).await;
                }
                results[i] = Some(self.send(prepared).await);
                continue;
            }
            if current
                .as_ref()
                .is_some_and(|(s, b)| *s != stream || b.events.len() >= batch_size)
            {
                let (_, full) = current.take().expect("checked above");
                self.start(full, &mut in_flight, &mut results).await;
            }
            let (_, batch) = current.get_or_insert_with(|| {
                (
                    stream,
                    Batch {
                        positions: Vec::with_capacity(batch_size),
                        events: Vec::with_capacity(batch_size),
                    },
                )
            });
            batch.positions.push(i);
            batch.events.push(prepared);
        }
        if let Some((_, last)) = current {
            self.start(last, &mut in_flight, &mut results).await;
        }
        while let Some((batch, ack)) = in_flight.pop_front() {
            self.finish(batch, ack.await, &mut results).await;
        }
        results
            .into_iter()
            .map(|r| r.expect("every input has a result"))
            .collect()
    }

    /// Sends `batch`, first making room among the batches in flight.
    async fn start(
        &self,
        batch: Batch,
        in_flight: &mut VecDeque<(Batch, PublishAckFuture)>,
        results: &mut [Option<Result<Published>>],
    ) {
        while in_flight.len() >= IN_FLIGHT {
            let (done, ack) = in_flight.pop_front().expect("not empty");
            self.finish(done, ack.await, results).await;
        }
        match self.send_batch(&batch.events).await {
            Ok(ack) => in_flight.push_back((batch, ack)),
            Err(e) => self.finish(batch, Err(unsent(e)), results).await,
        }
    }

    /// Records a batch's outcome; a batch not acknowledged is retried whole, a batch refused
    /// is sent event by event.
    async fn finish(
        &self,
        batch: Batch,
        ack: std::result::Result<PublishAck, PublishError>,
        results: &mut [Option<Result<Published>>],
    ) {
        let subjects: Vec<&str> = batch.events.iter().map(|p| p.subject.as_str()).collect();
        if let (Err(_), Some(forbidden)) = (&ack, self.refused(&subjects)) {
            // Refused by the server: no retry can help. Every event of the batch says why.
            for (pos, p) in batch.positions.iter().zip(&batch.events) {
                let refused = self.refused(&[p.subject.as_str()]);
                results[*pos] = Some(Err(refused.unwrap_or_else(|| clone_forbidden(&forbidden))));
            }
            return;
        }
        let ack = match ack {
            Err(e) if is_transient(&e) => {
                debug!(error = %e, events = batch.events.len(), "batch not acknowledged, sending it again");
                self.send_batch_retrying(&batch.events).await
            }
            other => other,
        };
        match ack {
            Ok(ack) if ack.batch_size == Some(batch.events.len() as u64) => {
                let last = batch.events.len() as u64 - 1;
                for (k, (pos, p)) in batch.positions.iter().zip(&batch.events).enumerate() {
                    results[*pos] = Some(Ok(Published {
                        id: p.id.clone(),
                        subject: p.subject.clone(),
                        stream: ack.stream.clone(),
                        sequence: ack.sequence - (last - k as u64),
                        duplicate: false,
                    }));
                }
            }
            other => {
                match other {
                    Ok(ack) => warn!(
                        stored = ?ack.batch_size,
                        sent = batch.events.len(),
                        "the batch acknowledgement counts other than what was sent; publishing event by event"
                    ),
                    // A batch holding an already-stored id (a redelivery): expected, not a fault.
                    Err(e) if jetstream_code(&e) == Some(DUPLICATE_IN_BATCH) => {
                        debug!(error = %e, "batch holds a stored id; publishing its events one by one")
                    }
                    Err(e) => warn!(error = %e, "batch refused; publishing its events one by one"),
                }
                for (pos, p) in batch.positions.into_iter().zip(batch.events) {
                    results[pos] = Some(self.send(p).await);
                }
            }
        }
    }

    /// Sends a batch again (new batch id, same message ids) with the publisher's retry policy.
    async fn send_batch_retrying(
        &self,
        events: &[Prepared],
    ) -> std::result::Result<PublishAck, PublishError> {
        let retry = self.retry_policy();
        let mut backoff = retry.first_backoff;
        let mut attempt = 1;
        loop {
            let result = match self.send_batch(events).await {
                Ok(fut) => fut.await,
                Err(e) => Err(unsent(e)),
            };
            match result {
                Err(e) if attempt < retry.attempts && is_transient(&e) => {
                    attempt += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(retry.max_backoff);
                }
                other => return other,
            }
        }
    }

    /// Sends one batch: every message but the last without a reply, the last as the commit.
    async fn send_batch(&self, events: &[Prepared]) -> Result<PublishAckFuture> {
        let Some((commit, rest)) = events.split_last() else {
            return Err(BusError::Refused {
                operation: "publishing an atomic batch".into(),
                reason: "the batch is empty".into(),
            });
        };
        let id = batch_id();
        let client = self.jetstream().client();
        for (k, p) in rest.iter().enumerate() {
            let mut headers = p.headers.clone();
            headers.insert(BATCH_ID, id.as_str());
            headers.insert(BATCH_SEQUENCE, (k + 1).to_string().as_str());
            client
                .publish_with_headers(p.subject.clone(), headers, p.payload.clone())
                .await
                .map_err(|e| BusError::Unavailable {
                    operation: format!("sending batch {id}"),
                    attempts: 1,
                    reason: e.to_string(),
                })?;
        }
        let mut headers = commit.headers.clone();
        headers.insert(BATCH_ID, id.as_str());
        headers.insert(BATCH_SEQUENCE, events.len().to_string().as_str());
        headers.insert(BATCH_COMMIT, "1");
        self.jetstream()
            .send_publish(
                commit.subject.clone(),
                PublishMessage::build()
                    .payload(commit.payload.clone())
                    .headers(headers),
            )
            .await
            .map_err(|e| BusError::Unavailable {
                operation: format!("committing batch {id}"),
                attempts: 1,
                reason: e.to_string(),
            })
    }
}

/// A batch that could not even be sent: the connection is the problem, so it is retried.
fn unsent(e: BusError) -> PublishError {
    PublishError::with_source(PublishErrorKind::BrokenPipe, e)
}

fn is_transient(e: &PublishError) -> bool {
    matches!(
        e.kind(),
        PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::StreamNotFound
    )
}

/// A fresh batch id (the server allows up to 64 characters).
fn batch_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The server's code for a batch holding an already-stored message id.
const DUPLICATE_IN_BATCH: u64 = 10201;

/// The JetStream error code behind a publish error, if the server gave one.
fn jetstream_code(e: &PublishError) -> Option<u64> {
    std::error::Error::source(e)?
        .downcast_ref::<async_nats::jetstream::Error>()
        .map(|j| j.error_code().0)
}

fn clone_forbidden(e: &BusError) -> BusError {
    match e {
        BusError::Forbidden {
            role,
            what,
            subject,
        } => BusError::Forbidden {
            role: role.clone(),
            what: what.clone(),
            subject: subject.clone(),
        },
        other => BusError::Refused {
            operation: "publishing a batch".into(),
            reason: other.to_string(),
        },
    }
}
