//! Publishing a batch of drafts and counting what happened, shared by every adapter.

use std::sync::atomic::{AtomicU64, Ordering};

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

/// What an adapter has published since it started, for its `/metrics`.
#[derive(Debug, Default)]
pub struct TallyCounters {
    pub published: AtomicU64,
    pub duplicates: AtomicU64,
    pub dead_lettered: AtomicU64,
}

impl TallyCounters {
    pub fn add(&self, t: &Tally) {
        self.published
            .fetch_add(t.published as u64, Ordering::Relaxed);
        self.duplicates
            .fetch_add(t.duplicates as u64, Ordering::Relaxed);
        self.dead_lettered
            .fetch_add(t.dead_lettered as u64, Ordering::Relaxed);
    }

    /// The counters in Prometheus text format, as `lienthong_<subsystem>_<name>_total`.
    pub fn render(&self, subsystem: &str) -> String {
        [
            ("published", &self.published),
            ("duplicates", &self.duplicates),
            ("dead_lettered", &self.dead_lettered),
        ]
        .iter()
        .map(|(name, v)| counter(subsystem, name, None, v.load(Ordering::Relaxed)))
        .collect()
    }
}

/// One counter in Prometheus text format, with its help line when given.
pub fn counter(subsystem: &str, name: &str, help: Option<&str>, value: u64) -> String {
    let metric = format!("lienthong_{subsystem}_{name}_total");
    let help = help
        .map(|h| format!("# HELP {metric} {h}\n"))
        .unwrap_or_default();
    format!("{help}# TYPE {metric} counter\n{metric} {value}\n")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let c = TallyCounters::default();
        c.add(&Tally {
            published: 3,
            duplicates: 1,
            dead_lettered: 2,
        });
        c.add(&Tally {
            published: 1,
            ..Tally::default()
        });
        let text = c.render("sso") + &counter("sso", "ignored", Some("Not carried."), 5);
        assert_eq!(
            text,
            "# TYPE lienthong_sso_published_total counter\nlienthong_sso_published_total 4\n\
             # TYPE lienthong_sso_duplicates_total counter\nlienthong_sso_duplicates_total 1\n\
             # TYPE lienthong_sso_dead_lettered_total counter\nlienthong_sso_dead_lettered_total 2\n\
             # HELP lienthong_sso_ignored_total Not carried.\n\
             # TYPE lienthong_sso_ignored_total counter\nlienthong_sso_ignored_total 5\n"
        );
    }
}
