//! Publishing a batch of drafts and counting what happened, shared by every adapter.

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

/// Publishes `drafts` in order (pipelined in chunks). Invalid events are counted (they are in
/// the DLQ); any other failure stops the batch so the caller does not advance its cursor.
pub async fn publish_all(
    publisher: &Publisher,
    drafts: Vec<EventDraft>,
) -> Result<Tally, AdapterError> {
    let mut tally = Tally::default();
    let mut drafts = drafts.into_iter().peekable();
    while drafts.peek().is_some() {
        let chunk: Vec<EventDraft> = drafts.by_ref().take(256).collect();
        for result in publisher.publish_many(chunk).await {
            match result {
                Ok(p) if p.duplicate => tally.duplicates += 1,
                Ok(_) => tally.published += 1,
                Err(BusError::Invalid { .. }) => tally.dead_lettered += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(tally)
}
