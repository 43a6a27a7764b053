//! Publishing a batch of drafts and counting what happened, shared by every adapter.

use lienthong_bus::batch::MAX_ATOMIC_BATCH;
use lienthong_bus::{BusError, EventDraft, Publisher};

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
