//! What BigBlueButton and Jitsi events have in common once mapped: the four event types, the
//! meeting kinds, and placing an organ among the 18 wards and communes.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use lienthong_bus::{Classification, EventDraft, EventType};
use serde_json::Value;

use crate::error::RecordError;
use crate::pseudonym::Pseudonymizer;
use crate::wards::Wards;

pub const SUBSYSTEM: &str = "meetings";

/// What one input record became.
#[derive(Debug)]
pub enum Mapped {
    /// Events to publish.
    Events(Vec<EventDraft>),
    /// An event type the bus does not carry (chat, audio, recordings, …): counted, not kept.
    NotCarried(String),
    /// A record that cannot be read: dead-lettered with the reason (as a digest: it holds
    /// personal data).
    Unreadable(RecordError),
}

/// What mapping needs besides the record.
#[derive(Debug, Clone)]
pub struct MapContext {
    pub pseudonymizer: Pseudonymizer,
    pub wards: Wards,
    /// The organ hosting meetings whose system does not say (Jitsi rooms), and the organ of the
    /// city's own unit.
    pub host_organ: String,
    /// The Jitsi unit (first part of an occupant's `id`) naming the city's People's Committee.
    pub city_unit: String,
}

impl MapContext {
    /// The ward whose People's Committee `organ` is, if any.
    pub fn ward_of(&self, organ: Option<&str>) -> Option<String> {
        let organ = organ?;
        let folded = crate::wards::fold(organ);
        // Only a ward's or commune's own People's Committee places a participant there; a
        // department or the city does not, even when a ward's name appears in it.
        if !(folded.starts_with("ubnd phuong ") || folded.starts_with("ubnd xa ")) {
            return None;
        }
        self.wards.derive(&[Some(organ)]).map(|w| w.slug.clone())
    }

    /// A Jitsi unit (`ubnd-mui-ne`, `ubnd-phanthiet`): its organ and ward.
    pub fn unit(&self, unit: &str) -> (Option<String>, Option<String>) {
        if unit == self.city_unit {
            return (Some(self.host_organ.clone()), None);
        }
        if let Some(w) = unit
            .strip_prefix("ubnd-")
            .and_then(|slug| self.wards.by_slug(slug))
        {
            return (
                Some(format!("UBND {}", w.in_sentence())),
                Some(w.slug.clone()),
            );
        }
        (Some(unit.to_string()), None)
    }
}

/// The kind of meeting from what the system calls it (`meta_kind`, or a Jitsi room name):
/// one of the contract's kinds, and the raw value when it maps to `other`.
pub fn kind_of(raw: Option<&str>) -> (&'static str, Option<String>) {
    let Some(raw) = raw else {
        return ("other", None);
    };
    let folded = crate::wards::fold(raw).replace(' ', "");
    let kind = if folded.starts_with("giaobanthang")
        || folded.starts_with("soketthang")
        || folded.starts_with("soket")
    {
        "monthly_review"
    } else if folded.starts_with("giaoban") {
        "weekly_briefing"
    } else if folded.starts_with("dotxuat")
        || folded.starts_with("hopdotxuat")
        || folded.starts_with("adhoc")
    {
        "ad_hoc"
    } else {
        "other"
    };
    let kept = (kind == "other").then(|| raw.chars().take(200).collect());
    (kind, kept)
}

/// Phan Thiết time for an instant.
pub fn local(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&crate::demo::tz())
}

/// An instant from epoch milliseconds.
pub fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// An instant from epoch seconds.
pub fn from_secs(s: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(s, 0).single()
}

pub fn rfc3339(t: DateTime<Utc>) -> Value {
    Value::String(local(t).to_rfc3339())
}

/// A draft of one of the meetings events.
pub fn draft(
    entity: &str,
    action: &str,
    id: String,
    meeting_id: &str,
    at: DateTime<Utc>,
    data: Value,
) -> EventDraft {
    EventDraft::new(
        EventType::new(SUBSYSTEM, entity, action),
        id,
        meeting_id.to_string(),
        at,
        data,
        Classification::Internal,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> MapContext {
        MapContext {
            pseudonymizer: Pseudonymizer::new(b"meetings-test-key-0123").unwrap(),
            wards: Wards::phan_thiet(),
            host_organ: "UBND thành phố Phan Thiết".into(),
            city_unit: "ubnd-phanthiet".into(),
        }
    }

    #[test]
    fn organs_are_placed_in_wards_only_when_they_are_a_wards_committee() {
        let c = ctx();
        assert_eq!(
            c.ward_of(Some("UBND phường Phú Thủy")).as_deref(),
            Some("phu-thuy")
        );
        assert_eq!(
            c.ward_of(Some("UBND xã Tiến Thành")).as_deref(),
            Some("tien-thanh")
        );
        assert_eq!(c.ward_of(Some("UBND thành phố Phan Thiết")), None);
        assert_eq!(c.ward_of(Some("Phòng Quản lý đô thị")), None);
        assert_eq!(c.ward_of(None), None);
        assert_eq!(
            c.unit("ubnd-mui-ne"),
            (Some("UBND phường Mũi Né".into()), Some("mui-ne".into()))
        );
        assert_eq!(c.unit("ubnd-phanthiet").1, None);
        assert_eq!(c.unit("so-tttt"), (Some("so-tttt".into()), None));
    }

    #[test]
    fn kinds_are_recognised_and_unknown_ones_kept_raw() {
        assert_eq!(kind_of(Some("giao-ban-tuan")), ("weekly_briefing", None));
        assert_eq!(
            kind_of(Some("giaobanphuong-2023-06-12")),
            ("weekly_briefing", None)
        );
        assert_eq!(kind_of(Some("so-ket-thang")), ("monthly_review", None));
        assert_eq!(kind_of(Some("hop-dot-xuat")), ("ad_hoc", None));
        assert_eq!(
            kind_of(Some("tập huấn")),
            ("other", Some("tập huấn".into()))
        );
        assert_eq!(kind_of(None), ("other", None));
    }
}
