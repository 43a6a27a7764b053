//! `MeetingsProjection`: every online meeting with its participations (pseudonymous), and the
//! year's figures: meetings per month and kind, wards connected, meetings per ward,
//! participations and participants, average duration.
//!
//! Keys: `m/<meeting id>` → [`MeetingView`]. The fold is idempotent and order-tolerant: a
//! participation keeps its earliest join and latest leave, so an event stored twice (a
//! Jitsi room's closing list repeats its joins and leaves) or arriving late changes nothing.

pub mod dataset;
pub mod http;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::Result;
use crate::projection::{Data, ProjectedEvent, Projection};
use crate::store::Changes;
use sonic_rs::JsonValueTrait;

pub const NAME: &str = "meetings";

/// One participant in one meeting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Participation {
    pub organ: Option<String>,
    pub ward: Option<String>,
    pub joined_at: Option<DateTime<FixedOffset>>,
    pub left_at: Option<DateTime<FixedOffset>>,
}

/// One meeting as served by `/api/v1/meetings/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeetingView {
    pub meeting_id: String,
    pub engine: Option<String>,
    pub external_id: Option<String>,
    pub title: Option<String>,
    pub kind: Option<String>,
    pub kind_raw: Option<String>,
    pub host_organ: Option<String>,
    pub host_ward: Option<String>,
    pub started_at: Option<DateTime<FixedOffset>>,
    pub ended_at: Option<DateTime<FixedOffset>>,
    /// By pseudonymous participant reference.
    pub participants: BTreeMap<String, Participation>,
    pub events: u32,
    pub last_sequence: u64,
}

impl MeetingView {
    /// Minutes from start to end, when both are known.
    pub fn duration_minutes(&self) -> Option<f64> {
        match (self.started_at, self.ended_at) {
            (Some(s), Some(e)) => Some((e - s).num_milliseconds() as f64 / 60_000.0),
            _ => None,
        }
    }

    /// The wards whose People's Committees took part.
    pub fn wards(&self) -> BTreeSet<&str> {
        self.participants
            .values()
            .filter_map(|p| p.ward.as_deref())
            .collect()
    }

    /// When it happened (its start, or its end when the start was never seen), in UTC+7.
    pub fn when(&self) -> Option<DateTime<FixedOffset>> {
        let tz = FixedOffset::east_opt(7 * 3600)?;
        self.started_at
            .or(self.ended_at)
            .map(|t| t.with_timezone(&tz))
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct MeetingsProjection;

fn time(v: &Data, k: &str) -> Option<DateTime<FixedOffset>> {
    v.get(k)
        .and_then(Data::as_str)
        .and_then(|x| DateTime::parse_from_rfc3339(x).ok())
}

fn text(v: &Data, k: &str) -> Option<String> {
    v.get(k).and_then(Data::as_str).map(str::to_string)
}

impl Projection for MeetingsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn stream(&self) -> &'static str {
        "MEETINGS"
    }

    fn apply(&self, changes: &mut Changes<'_>, ev: &ProjectedEvent) -> Result<()> {
        let Some(what) = ev.ty.strip_prefix("vn.egov.meetings.") else {
            return Ok(());
        };
        let d = &ev.data;
        let Some(id) = text(d, "meeting_id") else {
            return Ok(());
        };
        let key = format!("m/{id}").into_bytes();
        let mut m: MeetingView = changes.get_json(&key)?.unwrap_or_else(|| MeetingView {
            meeting_id: id.clone(),
            ..Default::default()
        });
        m.engine = m.engine.or_else(|| text(d, "engine"));
        match what {
            "meeting.started" => {
                m.external_id = text(d, "external_id").or(m.external_id);
                m.title = text(d, "title").or(m.title);
                m.kind = text(d, "kind");
                m.kind_raw = text(d, "kind_raw");
                m.host_organ = text(d, "host_organ");
                m.host_ward = text(d, "host_ward");
                m.started_at = time(d, "started_at");
            }
            "meeting.ended" => {
                m.external_id = m.external_id.or_else(|| text(d, "external_id"));
                m.started_at = m.started_at.or_else(|| time(d, "started_at"));
                m.ended_at = time(d, "ended_at");
            }
            "participant.joined" | "participant.left" => {
                let Some(who) = text(d, "participant_ref") else {
                    return Ok(());
                };
                let p = m.participants.entry(who).or_default();
                p.organ = text(d, "organ").or(p.organ.take());
                p.ward = text(d, "ward").or(p.ward.take());
                if let Some(j) = time(d, "joined_at") {
                    p.joined_at = Some(p.joined_at.map_or(j, |x| x.min(j)));
                }
                if let Some(l) = time(d, "left_at") {
                    p.left_at = Some(p.left_at.map_or(l, |x| x.max(l)));
                }
            }
            _ => return Ok(()),
        }
        m.events += 1;
        m.last_sequence = ev.sequence;
        changes.put_json(key, m)
    }
}

pub struct MeetingsView<'a> {
    pub tree: &'a sled::Tree,
}

impl MeetingsView<'_> {
    /// Every meeting (in `year`, UTC+7, when given), in time order.
    pub fn meetings(&self, year: Option<i32>) -> Result<Vec<MeetingView>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(b"m/") {
            let (_, v) = item?;
            if let Ok(m) = serde_json::from_slice::<MeetingView>(&v) {
                if year.is_none_or(|y| m.when().is_some_and(|t| t.year() == y)) {
                    out.push(m);
                }
            }
        }
        out.sort_by_key(|m| m.when());
        Ok(out)
    }

    pub fn get(&self, id: &str) -> Result<Option<MeetingView>> {
        Ok(self
            .tree
            .get(format!("m/{id}"))?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// The years (UTC+7) with meetings.
    pub fn years(&self) -> Result<Vec<String>> {
        let years: BTreeSet<String> = self
            .meetings(None)?
            .iter()
            .filter_map(|m| m.when().map(|t| t.year().to_string()))
            .collect();
        Ok(years.into_iter().collect())
    }
}

/// The figures of a set of meetings: meetings per month and kind, wards connected and
/// meetings per ward, participations, distinct participants, average duration in minutes.
pub fn figures(meetings: &[MeetingView]) -> Value {
    let mut by_month: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_ward: BTreeMap<&str, usize> = BTreeMap::new();
    let mut people = BTreeSet::new();
    let mut participations = 0;
    let mut durations = Vec::new();
    for m in meetings {
        if let Some(t) = m.when() {
            *by_month.entry(t.format("%Y-%m").to_string()).or_default() += 1;
        }
        *by_kind
            .entry(m.kind.clone().unwrap_or_else(|| "other".into()))
            .or_default() += 1;
        for w in m.wards() {
            *by_ward.entry(w).or_default() += 1;
        }
        participations += m.participants.len();
        people.extend(m.participants.keys());
        durations.extend(m.duration_minutes());
    }
    let average = (!durations.is_empty())
        .then(|| (durations.iter().sum::<f64>() / durations.len() as f64 * 10.0).round() / 10.0);
    json!({
        "meetings": meetings.len(),
        "by_month": by_month,
        "by_kind": by_kind,
        "wards_connected": by_ward.len(),
        "by_ward": by_ward,
        "participations": participations,
        "participants": people.len(),
        "average_duration_minutes": average,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ReadStore;

    fn ev(seq: u64, ty: &str, data: Value) -> ProjectedEvent {
        ProjectedEvent {
            ty: format!("vn.egov.meetings.{ty}"),
            id: format!("{seq}"),
            source: "s".into(),
            key: None,
            time: None,
            data: crate::projection::data_of(&data),
            version: 1,
            sequence: seq,
        }
    }

    #[test]
    fn a_meeting_folds_idempotently_whatever_the_order() {
        let store = ReadStore::temporary().unwrap();
        let tree = store.current(NAME).unwrap();
        let joined = json!({"meeting_id": "m1", "engine": "jitsi", "participant_ref": "p-1", "organ": "UBND phường Mũi Né", "ward": "mui-ne", "joined_at": "2023-06-12T08:00:40+07:00"});
        let left = json!({"meeting_id": "m1", "engine": "jitsi", "participant_ref": "p-1", "ward": "mui-ne", "left_at": "2023-06-12T08:55:00+07:00"});
        let events = [
            ev(1, "participant.left", left.clone()),
            ev(
                2,
                "meeting.started",
                json!({"meeting_id": "m1", "engine": "jitsi", "external_id": "room", "kind": "weekly_briefing", "started_at": "2023-06-12T08:00:00+07:00"}),
            ),
            ev(3, "participant.joined", joined.clone()),
            ev(4, "participant.joined", joined),
            ev(
                5,
                "meeting.ended",
                json!({"meeting_id": "m1", "engine": "jitsi", "ended_at": "2023-06-12T09:00:00+07:00"}),
            ),
            ev(6, "participant.left", left),
        ];
        let mut c = Changes::new(&tree);
        for e in &events {
            MeetingsProjection.apply(&mut c, e).unwrap();
        }
        c.commit(6).unwrap();
        let v = MeetingsView { tree: &tree };
        let all = v.meetings(Some(2023)).unwrap();
        assert_eq!(all.len(), 1);
        let f = figures(&all);
        assert_eq!(f["participations"], 1);
        assert_eq!(f["wards_connected"], 1);
        assert_eq!(f["average_duration_minutes"], 60.0);
        assert_eq!(f["by_month"]["2023-06"], 1);
        assert!(v.meetings(Some(2024)).unwrap().is_empty());
        assert_eq!(v.years().unwrap(), vec!["2023".to_string()]);
    }
}
