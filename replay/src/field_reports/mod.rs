//! `FieldReportsProjection`: the current state of every citizen report, counts by status,
//! ward and category, and resolution times.
//!
//! Keys: `r/<report id>` → [`ReportView`] (JSON); `c/total`, `c/status/<s>`, `c/ward/<w>`,
//! `c/category/<c>` → counters. The fold is order-tolerant: a status applies only if it is
//! at least as new (`changed_at`) as the one shown, and a report first known from an
//! update (its submission not seen yet) is counted once and completed when it arrives.

pub mod dataset;
pub mod http;

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::projection::{pointer, Data, ProjectedEvent, Projection};
use crate::store::{decode_u64, Changes};
use sonic_rs::JsonValueTrait;

pub const NAME: &str = "field_reports";
/// Statuses after which a report counts as resolved.
pub const TERMINAL: &[&str] = &[
    "fixed",
    "closed",
    "duplicate",
    "unable_to_fix",
    "not_responsible",
];

/// One report as served by `/api/v1/field-reports`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportView {
    pub report_id: String,
    pub category: Option<String>,
    pub category_name: Option<String>,
    pub category_group: Option<String>,
    pub ward: String,
    /// The ward's name (from v2 events; upcast for v1).
    pub ward_name: Option<String>,
    pub status: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub status_at: Option<DateTime<FixedOffset>>,
    /// False while the report is known only from its updates.
    pub submitted: bool,
    pub description: Option<String>,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub long: Option<f64>,
    pub agency_responsible: Option<String>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub requested_at: Option<DateTime<FixedOffset>>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub expected_at: Option<DateTime<FixedOffset>>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub resolved_at: Option<DateTime<FixedOffset>>,
    pub resolution_hours: Option<f64>,
    pub reopened: u32,
    pub media_url: Option<String>,
    /// Events folded into this report.
    pub events: u32,
    /// Stream sequence of the newest of them.
    pub last_sequence: u64,
}

/// Times written as chrono writes them (RFC 3339, `SecondsFormat::AutoSi`, `Z` for UTC), in
/// one piece:
/// chrono's own `Serialize` goes through `collect_str`, which serde_json escapes character by
/// character — a third of encoding a report, and reports are encoded at every commit.
mod rfc3339 {
    use chrono::{DateTime, FixedOffset};

    pub fn serialize<S: serde::Serializer>(
        t: &Option<DateTime<FixedOffset>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            None => s.serialize_none(),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FieldReportsProjection;

fn report_key(id: &str) -> Vec<u8> {
    format!("r/{id}").into_bytes()
}
fn counter(dimension: &str, value: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(3 + dimension.len() + value.len());
    key.extend_from_slice(b"c/");
    key.extend_from_slice(dimension.as_bytes());
    key.push(b'/');
    key.extend_from_slice(value.as_bytes());
    key
}
const TOTAL: &[u8] = b"c/total";

fn s(v: &Data, k: &str) -> Option<String> {
    v.get(k).and_then(Data::as_str).map(str::to_string)
}
fn t(v: &Data, k: &str) -> Option<DateTime<FixedOffset>> {
    v.get(k)
        .and_then(Data::as_str)
        .and_then(|x| DateTime::parse_from_rfc3339(x).ok())
}

impl ReportView {
    /// Still awaiting resolution (its status is not one of [`TERMINAL`]).
    pub fn is_open(&self) -> bool {
        !TERMINAL.contains(&self.status.as_str())
    }

    fn set_status(&mut self, status: &str, at: Option<DateTime<FixedOffset>>) -> bool {
        if self.status_at.is_some() && at.is_some() && at < self.status_at {
            return false; // An older status arriving late does not replace a newer one.
        }
        let was_terminal = TERMINAL.contains(&self.status.as_str());
        let is_terminal = TERMINAL.contains(&status);
        if is_terminal && !was_terminal {
            self.resolved_at = at;
        } else if !is_terminal && was_terminal {
            self.resolved_at = None;
            self.reopened += 1;
        }
        self.status = status.to_string();
        self.status_at = at;
        self.update_resolution();
        true
    }

    fn update_resolution(&mut self) {
        self.resolution_hours = match (self.requested_at, self.resolved_at) {
            (Some(r), Some(d)) => {
                Some(((d - r).num_seconds() as f64 / 3600.0 * 100.0).round() / 100.0)
            }
            _ => None,
        };
    }
}

impl Projection for FieldReportsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn stream(&self) -> &'static str {
        "FIELD_REPORTS"
    }

    fn apply(&self, changes: &mut Changes<'_>, ev: &ProjectedEvent) -> Result<()> {
        let action = match ev.ty.strip_prefix("vn.egov.field_reports.report.") {
            Some(a) => a,
            None => return Ok(()),
        };
        let d = &ev.data;
        let Some(id) = s(d, "report_id").or_else(|| ev.key.clone()) else {
            return Ok(());
        };
        let key = report_key(&id);
        let existing: Option<ReportView> = changes.get_json(&key)?;
        let is_new = existing.is_none();
        let mut r = existing.unwrap_or_else(|| ReportView {
            report_id: id.clone(),
            ward: "unknown".into(),
            status: "open".into(),
            ..Default::default()
        });
        let before = (r.status.clone(), r.ward.clone(), r.category.clone());
        match action {
            "submitted" => {
                r.submitted = true;
                r.category = s(d, "category");
                r.category_name = s(d, "category_name");
                r.category_group = s(d, "category_group");
                r.ward = s(d, "ward").unwrap_or_else(|| "unknown".into());
                r.ward_name = s(d, "ward_name");
                r.description = s(d, "description");
                r.address = s(d, "address");
                r.lat = pointer(d, "/location/lat").and_then(Data::as_f64);
                r.long = pointer(d, "/location/long").and_then(Data::as_f64);
                r.agency_responsible = s(d, "agency_responsible");
                r.requested_at = t(d, "requested_at");
                r.expected_at = t(d, "expected_at");
                r.media_url = s(d, "media_url");
                if r.status_at.is_none() {
                    r.status = s(d, "status").unwrap_or_else(|| "open".into());
                    r.status_at = r.requested_at;
                }
                r.update_resolution();
            }
            "status_changed" | "reopened" => {
                if let Some(status) = s(d, "status") {
                    r.set_status(&status, t(d, "changed_at"));
                }
            }
            _ => return Ok(()),
        }
        r.events += 1;
        r.last_sequence = ev.sequence;

        if is_new {
            changes.add(TOTAL.to_vec(), 1)?;
        }
        // Move the report between counters only where it changed.
        fn category(c: &Option<String>) -> &str {
            c.as_deref().unwrap_or("unknown")
        }
        for (dimension, was, now) in [
            ("status", before.0.as_str(), r.status.as_str()),
            ("ward", before.1.as_str(), r.ward.as_str()),
            ("category", category(&before.2), category(&r.category)),
        ] {
            if is_new || was != now {
                if !is_new {
                    changes.add(counter(dimension, was), -1)?;
                }
                changes.add(counter(dimension, now), 1)?;
            }
        }
        changes.put_json(key, r)
    }
}

/// Filters of the report list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReportFilter {
    pub ward: Option<String>,
    pub status: Option<String>,
    pub category: Option<String>,
}

impl ReportFilter {
    pub fn matches(&self, r: &ReportView) -> bool {
        self.ward.as_ref().is_none_or(|w| &r.ward == w)
            && self.status.as_ref().is_none_or(|s| &r.status == s)
            && self
                .category
                .as_ref()
                .is_none_or(|c| r.category.as_ref() == Some(c))
    }
}

/// Reads of the field-reports read model.
pub struct FieldReportsView<'a> {
    pub tree: &'a sled::Tree,
}

/// `/api/v1/field-reports/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldReportStats {
    pub total: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_ward: BTreeMap<String, u64>,
    pub by_category: BTreeMap<String, u64>,
    pub resolution: Resolution,
    /// Stream sequence the read model reflects.
    pub stream_sequence: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub resolved: u64,
    pub open: u64,
    pub mean_hours: Option<f64>,
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
    /// Resolved no later than `expected_at`, as a share of resolved reports with a deadline.
    pub on_time_ratio: Option<f64>,
}

impl Resolution {
    /// The resolution figures of `reports` (`open`: those not resolved).
    pub fn of(reports: &[ReportView]) -> Self {
        let mut hours = Vec::new();
        let (mut with_deadline, mut on_time) = (0u64, 0u64);
        // Resolved: a terminal status (the same rule everywhere, [`ReportView::is_open`]);
        // the times are those of the resolved reports whose submission is known.
        let resolved = reports.iter().filter(|r| !r.is_open()).count() as u64;
        for r in reports.iter().filter(|r| !r.is_open()) {
            if let Some(h) = r.resolution_hours {
                hours.push(h);
                if let (Some(done), Some(due)) = (r.resolved_at, r.expected_at) {
                    with_deadline += 1;
                    on_time += u64::from(done <= due);
                }
            }
        }
        hours.sort_by(f64::total_cmp);
        let pct = |p: f64| -> Option<f64> {
            (!hours.is_empty()).then(|| hours[((hours.len() - 1) as f64 * p).round() as usize])
        };
        let round = |x: f64| (x * 100.0).round() / 100.0;
        Self {
            resolved,
            open: (reports.len() as u64).saturating_sub(resolved),
            mean_hours: (!hours.is_empty())
                .then(|| round(hours.iter().sum::<f64>() / hours.len() as f64)),
            median_hours: pct(0.5),
            p90_hours: pct(0.9),
            on_time_ratio: (with_deadline > 0)
                .then(|| round(on_time as f64 / with_deadline as f64)),
        }
    }
}

impl FieldReportsView<'_> {
    pub fn get(&self, id: &str) -> Result<Option<ReportView>> {
        Ok(match self.tree.get(report_key(id))? {
            Some(v) => serde_json::from_slice(&v).ok(),
            None => None,
        })
    }

    /// Every report matching `filter`, in id order.
    pub fn list(&self, filter: &ReportFilter) -> Result<Vec<ReportView>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(b"r/") {
            let (_, v) = item?;
            if let Ok(r) = serde_json::from_slice::<ReportView>(&v) {
                if filter.matches(&r) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    pub fn stats(&self) -> Result<FieldReportStats> {
        let mut by: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
        for dim in ["status", "ward", "category"] {
            let prefix = format!("c/{dim}/");
            let mut m = BTreeMap::new();
            for item in self.tree.scan_prefix(prefix.as_bytes()) {
                let (k, v) = item?;
                let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                m.insert(name, decode_u64(&v));
            }
            by.insert(dim, m);
        }
        let total = self.tree.get(TOTAL)?.map(|v| decode_u64(&v)).unwrap_or(0);
        let mut resolution = Resolution::of(&self.list(&ReportFilter::default())?);
        // Reports known only from their updates count too (the counters have them).
        resolution.open = total.saturating_sub(resolution.resolved);
        Ok(FieldReportStats {
            total,
            by_status: by.remove("status").unwrap_or_default(),
            by_ward: by.remove("ward").unwrap_or_default(),
            by_category: by.remove("category").unwrap_or_default(),
            resolution,
            stream_sequence: crate::store::checkpoint(self.tree)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ReadStore;
    use serde_json::{json, Value};

    #[test]
    fn times_are_written_exactly_as_chrono_writes_them() {
        #[derive(Serialize)]
        struct Chrono(Option<DateTime<FixedOffset>>);
        #[derive(Serialize)]
        struct Ours(#[serde(serialize_with = "rfc3339::serialize")] Option<DateTime<FixedOffset>>);
        for t in [
            "2023-11-18T19:42:10+07:00",
            "2023-11-18T12:42:10Z",
            "2023-11-18T19:42:10.5+07:00",
            "2023-11-18T19:42:10.123456789-03:30",
            "1999-12-31T23:59:60+00:00",
        ] {
            let t = DateTime::parse_from_rfc3339(t).unwrap();
            assert_eq!(
                serde_json::to_string(&Ours(Some(t))).unwrap(),
                serde_json::to_string(&Chrono(Some(t))).unwrap()
            );
        }
        assert_eq!(serde_json::to_string(&Ours(None)).unwrap(), "null");
        // And read back as before.
        let r = ReportView {
            requested_at: DateTime::parse_from_rfc3339("2023-11-18T19:42:10.25+07:00").ok(),
            ..Default::default()
        };
        let back: ReportView = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    /// Given these events (type suffix, data), then the view.
    fn given(events: &[(&str, Value)]) -> (ReadStore, sled::Tree) {
        let store = ReadStore::temporary().unwrap();
        let tree = store.current(NAME).unwrap();
        let mut c = Changes::new(&tree);
        for (i, (action, data)) in events.iter().enumerate() {
            let ev = ProjectedEvent {
                ty: format!("vn.egov.field_reports.report.{action}"),
                id: format!("e{i}"),
                source: "urn:test".into(),
                key: data["report_id"].as_str().map(str::to_string),
                time: None,
                data: crate::projection::data_of(data),
                version: 1,
                sequence: i as u64 + 1,
            };
            FieldReportsProjection.apply(&mut c, &ev).unwrap();
        }
        c.commit(events.len() as u64).unwrap();
        (store, tree)
    }

    fn submitted(id: &str, ward: &str, at: &str) -> (&'static str, Value) {
        (
            "submitted",
            json!({"report_id": id, "category": "CSDT", "category_name": "Chiếu sáng", "ward": ward,
            "status": "open", "requested_at": at, "expected_at": "2023-11-20T19:42:10+07:00"}),
        )
    }
    fn changed(id: &str, status: &str, at: &str) -> (&'static str, Value) {
        (
            "status_changed",
            json!({"report_id": id, "status": status, "changed_at": at, "origin": "update"}),
        )
    }

    #[test]
    fn counts_follow_the_lifecycle() {
        let (_s, tree) = given(&[
            submitted("A", "phu-thuy", "2023-11-18T19:42:10+07:00"),
            submitted("B", "mui-ne", "2023-11-19T07:00:00+07:00"),
            changed("A", "in_progress", "2023-11-19T08:00:00+07:00"),
            changed("A", "fixed", "2023-11-19T19:42:10+07:00"),
        ]);
        let st = FieldReportsView { tree: &tree }.stats().unwrap();
        assert_eq!(st.total, 2);
        assert_eq!(
            st.by_status,
            BTreeMap::from([("fixed".into(), 1), ("open".into(), 1)])
        );
        assert_eq!(st.by_ward["phu-thuy"], 1);
        assert_eq!(st.resolution.resolved, 1);
        assert_eq!(st.resolution.mean_hours, Some(24.0));
        assert_eq!(st.resolution.on_time_ratio, Some(1.0));
        assert_eq!(st.stream_sequence, 4);
    }

    #[test]
    fn an_update_before_its_report_is_counted_once_and_completed_later() {
        let (_s, tree) = given(&[
            changed("X", "in_progress", "2024-01-02T08:00:00+07:00"),
            submitted("X", "lac-dao", "2024-01-01T10:00:00+07:00"),
        ]);
        let v = FieldReportsView { tree: &tree };
        let st = v.stats().unwrap();
        assert_eq!(st.total, 1);
        assert_eq!(st.by_ward, BTreeMap::from([("lac-dao".into(), 1)]));
        assert_eq!(st.by_status, BTreeMap::from([("in_progress".into(), 1)]));
        let r = v.get("X").unwrap().unwrap();
        assert!(r.submitted);
        assert_eq!(r.status, "in_progress", "the newer status stays");
    }

    #[test]
    fn late_older_statuses_do_not_win_and_reopening_clears_resolution() {
        let (_s, tree) = given(&[
            submitted("A", "phu-thuy", "2023-11-18T19:42:10+07:00"),
            changed("A", "fixed", "2023-11-21T08:30:00+07:00"),
            changed("A", "in_progress", "2023-11-19T08:00:00+07:00"),
        ]);
        let v = FieldReportsView { tree: &tree };
        assert_eq!(v.get("A").unwrap().unwrap().status, "fixed");
        let (_s, tree) = given(&[
            submitted("A", "phu-thuy", "2023-11-18T19:42:10+07:00"),
            changed("A", "fixed", "2023-11-21T08:30:00+07:00"),
            (
                "reopened",
                json!({"report_id": "A", "status": "open", "changed_at": "2023-11-25T08:30:00+07:00", "origin": "update"}),
            ),
        ]);
        let r = FieldReportsView { tree: &tree }.get("A").unwrap().unwrap();
        assert_eq!(r.reopened, 1);
        assert_eq!(r.resolution_hours, None);
    }
}
