//! Publishing drafts and counting what happened, shared by every adapter.
//!
//! Events are counted in a [`Tally`] (what the server stored); records — what a subsystem
//! sent, each becoming zero or more events — in the input path's
//! [`Outcomes`](lienthong_bus::Outcomes), one outcome each ([`RecordOutcome`]).

use lienthong_bus::batch::MAX_ATOMIC_BATCH;
use lienthong_bus::{BusError, EventDraft, Outcomes, Publisher};

use crate::error::AdapterError;

/// What publishing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Newly stored.
    pub published: usize,
    /// Already stored (same source + id): nothing new.
    pub duplicates: usize,
    /// Failed validation: kept in the DLQ with the reasons.
    pub dead_lettered: usize,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.published += other.published;
        self.duplicates += other.duplicates;
        self.dead_lettered += other.dead_lettered;
    }

    /// Counts it in an input path's outcomes.
    pub fn record(&self, outcomes: &Outcomes) {
        outcomes.published.add(self.published as u64);
        outcomes.duplicate.add(self.duplicates as u64);
        outcomes.dead_lettered.add(self.dead_lettered as u64);
    }
}

/// What became of one record whose events were published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    /// At least one of its events is new on the stream.
    Published,
    /// Every event of it was stored already (or it brought nothing new).
    Duplicate,
    /// One of its events failed validation: kept in the DLQ with the reasons.
    DeadLettered,
}

impl RecordOutcome {
    /// Counts it in an input path's outcomes.
    pub fn count(self, outcomes: &Outcomes) {
        match self {
            Self::Published => outcomes.published.inc(),
            Self::Duplicate => outcomes.duplicate.inc(),
            Self::DeadLettered => outcomes.dead_lettered.inc(),
        }
    }
}

/// Publishes events in the order given (as [`publish_all`] does), each tagged with the index
/// of the record (of `records`) it comes from, and says what became of each record:
/// dead-lettered if any of its events was, else published if any was new, else a duplicate
/// (also a record that brought no event: nothing new). Also the events' tally.
pub async fn publish_records(
    publisher: &Publisher,
    records: usize,
    events: Vec<(usize, EventDraft)>,
) -> Result<(Tally, Vec<RecordOutcome>), AdapterError> {
    let (owners, drafts): (Vec<usize>, Vec<EventDraft>) = events.into_iter().unzip();
    let results = publisher.publish_batched(drafts, MAX_ATOMIC_BATCH).await;
    let mut tally = Tally::default();
    let mut outcomes = vec![RecordOutcome::Duplicate; records];
    for (owner, result) in owners.into_iter().zip(results) {
        let outcome = &mut outcomes[owner];
        match result {
            Ok(p) if p.duplicate => tally.duplicates += 1,
            Ok(_) => {
                tally.published += 1;
                if *outcome == RecordOutcome::Duplicate {
                    *outcome = RecordOutcome::Published;
                }
            }
            Err(BusError::Invalid { .. }) => {
                tally.dead_lettered += 1;
                *outcome = RecordOutcome::DeadLettered;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((tally, outcomes))
}

/// Each record's events, tagged with the record's index, for [`publish_records`].
pub fn tagged(records: Vec<Vec<EventDraft>>) -> (usize, Vec<(usize, EventDraft)>) {
    let n = records.len();
    let events = records
        .into_iter()
        .enumerate()
        .flat_map(|(i, r)| r.into_iter().map(move |d| (i, d)))
        .collect();
    (n, events)
}

/// Publishes `drafts` in order, committed to their stream in atomic batches of up to 1,000
/// (one acknowledgement per batch: what keeps a backfill fast on a durable server). Invalid
/// events are counted (they are in the DLQ); any other failure stops here so the caller does
/// not advance its cursor.
pub async fn publish_all(
    publisher: &Publisher,
    drafts: Vec<EventDraft>,
) -> Result<Tally, AdapterError> {
    let mut tally = Tally::default();
    for result in publisher.publish_batched(drafts, MAX_ATOMIC_BATCH).await {
        match result {
            Ok(p) if p.duplicate => tally.duplicates += 1,
            Ok(_) => tally.published += 1,
            Err(BusError::Invalid { .. }) => tally.dead_lettered += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(tally)
}
