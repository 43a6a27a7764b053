//! Projections: deterministic folds of events into a tree, with no side effects.

use chrono::{DateTime, Utc};
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::ReceivedEvent;
use serde_json::Value;

use crate::error::Result;
use crate::store::Changes;

/// An event as projections see it: its attributes, JSON data and stream position.
#[derive(Debug, Clone)]
pub struct ProjectedEvent {
    pub ty: String,
    pub id: String,
    pub source: String,
    /// The aggregate key (CloudEvents `subject`).
    pub key: Option<String>,
    pub time: Option<DateTime<Utc>>,
    /// Data in the newest shape (older versions upcast).
    pub data: Value,
    /// The version of `data` after upcasting.
    pub version: u32,
    pub sequence: u64,
}

impl ProjectedEvent {
    /// Takes the event apart (its data is moved, not copied) and upcasts the data.
    pub fn from_received(ev: ReceivedEvent) -> Option<Self> {
        use lienthong_bus::cloudevents::event::Data;
        let sequence = ev.stream_sequence;
        let mut e = ev.event;
        let stored_version = e
            .dataschema()
            .and_then(|u| crate::upcast::version_of(u.as_str()))
            .unwrap_or(1);
        let raw = match e.take_data().2? {
            Data::Json(v) => v,
            Data::String(s) => serde_json::from_str(&s).ok()?,
            Data::Binary(b) => serde_json::from_slice(&b).ok()?,
        };
        let (version, data) = crate::upcast::upcast(e.ty(), stored_version, raw);
        Some(Self {
            ty: e.ty().to_string(),
            id: e.id().to_string(),
            source: e.source().to_string(),
            key: e.subject().map(str::to_string),
            time: e.time().copied(),
            data,
            version,
            sequence,
        })
    }
}

/// A moment as it was on the clock in Phan Thiết (UTC+7), for per-day and per-month counts.
pub fn local_time(at: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let tz = chrono::FixedOffset::east_opt(7 * 3600)?;
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.with_timezone(&tz))
}

/// A read model built by folding one stream.
pub trait Projection: Send + Sync + 'static {
    /// Name of the read model (and its trees).
    fn name(&self) -> &'static str;
    /// The stream it folds.
    fn stream(&self) -> &'static str;
    /// Subjects of that stream it needs (empty: all).
    fn filter_subjects(&self) -> Vec<String> {
        Vec::new()
    }
    /// Folds one event. Must be deterministic and only touch `changes`.
    fn apply(&self, changes: &mut Changes<'_>, event: &ProjectedEvent) -> Result<()>;
    /// The shape of what it writes. Raise it when the fold changes: a served tree of an
    /// older version is rebuilt from the stream before it is followed again.
    fn version(&self) -> u32 {
        1
    }
}
