//! Pure mapping from Open311 records to events: no I/O, tested from the fixtures.
//!
//! The planner turns one poll's requests and updates, plus what the adapter remembers of
//! each report ([`ReportMemory`], kept in `ADAPTER_STATE`), into events in the order they
//! must be published:
//! 1. `report.submitted` for each report not submitted before;
//! 2. for each update, `report.status_changed` — or `report.reopened` when a report in a
//!    terminal status (fixed, closed, duplicate, …) becomes active again;
//! 3. a `report.status_changed` with origin `request` when the request's own status is newer
//!    than anything the updates said (or disagrees on open vs. resolved) — also when a request
//!    already read is listed again with another status, and when a report is first seen in a
//!    status other than `open`. A status the contract does not know is published as it is and
//!    fails validation: it is kept in the DLQ, never coerced to another.
//!
//! Event ids depend only on the source record (`report/<id>/submitted`,
//! `report/<id>/update/<update_id>`, `report/<id>/status/<status>/<time>`), never on derived
//! state, so re-planning after a crash yields the same ids and the server drops repeats.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, Utc};
use lienthong_bus::{Classification, EventDraft, EventType};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::open311::{Service, ServiceRequest, ServiceRequestUpdate};
use crate::pii::{mask, mask_opt};
use crate::wards::Wards;

pub const SUBSYSTEM: &str = "field_reports";
pub const ENTITY: &str = "report";

/// Statuses after which a report counts as resolved.
pub const TERMINAL_STATUSES: &[&str] = &[
    "fixed",
    "closed",
    "duplicate",
    "unable_to_fix",
    "not_responsible",
];

pub fn is_terminal(status: &str) -> bool {
    TERMINAL_STATUSES.contains(&status)
}

/// The record of one poll an event comes from (its index in the requests or the updates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Record {
    Request(usize),
    Update(usize),
}

/// What the adapter remembers of one report between polls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportMemory {
    /// `report.submitted` was published.
    pub submitted: bool,
    /// The newest status published, and when it took effect.
    pub status: Option<String>,
    pub status_at: Option<DateTime<FixedOffset>>,
}

impl ReportMemory {
    fn observe(&mut self, status: &str, at: DateTime<FixedOffset>) {
        if self.status_at.is_none_or(|t| at >= t) {
            self.status = Some(status.to_string());
            self.status_at = Some(at);
        }
    }
}

/// Maps records to event drafts.
#[derive(Debug, Clone)]
pub struct Mapper {
    categories: HashMap<String, Service>,
    wards: Wards,
}

fn utc(t: DateTime<FixedOffset>) -> DateTime<Utc> {
    t.with_timezone(&Utc)
}

fn draft(
    action: &str,
    id: String,
    key: &str,
    time: DateTime<FixedOffset>,
    data: serde_json::Value,
) -> EventDraft {
    EventDraft::new(
        EventType::new(SUBSYSTEM, ENTITY, action),
        id,
        key.to_string(),
        utc(time),
        data,
        Classification::Public,
    )
}

impl Mapper {
    pub fn new(services: Vec<Service>, wards: Wards) -> Self {
        Self {
            categories: services
                .into_iter()
                .map(|s| (s.service_code.clone(), s))
                .collect(),
            wards,
        }
    }

    /// `report.submitted`: the report as submitted, without the reporter's personal data.
    pub fn submitted(&self, r: &ServiceRequest) -> EventDraft {
        let service = self.categories.get(&r.service_code);
        let derived = self.wards.derive(&[
            r.address.as_deref(),
            r.agency_responsible.as_deref(),
            r.description.as_deref(),
        ]);
        let ward = derived.map(|w| w.slug.as_str()).unwrap_or("unknown");
        let ward_name = derived.map(|w| w.name.clone());
        let category_name = service
            .map(|s| s.service_name.clone())
            .or_else(|| r.service_name.clone())
            .unwrap_or_else(|| r.service_code.clone());
        let location = match (r.lat, r.long) {
            (Some(lat), Some(long)) => json!({"lat": lat, "long": long}),
            _ => serde_json::Value::Null,
        };
        let data = json!({
            "report_id": r.service_request_id,
            "category": r.service_code,
            "category_name": category_name,
            "category_group": service.and_then(|s| s.group.clone()),
            "ward": ward,
            "ward_name": ward_name,
            "status": "open",
            "description": mask_opt(r.description.as_deref()),
            "address": mask_opt(r.address.as_deref()),
            "location": location,
            "agency_responsible": r.agency_responsible,
            "requested_at": r.requested_datetime.to_rfc3339(),
            "expected_at": r.expected_datetime.map(|t| t.to_rfc3339()),
            "media_url": r.media_url.as_deref().filter(|u| !u.trim().is_empty()),
        });
        draft(
            "submitted",
            format!("report/{}/submitted", r.service_request_id),
            &r.service_request_id,
            r.requested_datetime,
            data,
        )
    }

    /// A status change from a servicerequestupdates entry.
    pub fn update(&self, u: &ServiceRequestUpdate, memory: &ReportMemory) -> EventDraft {
        status_change(
            &u.service_request_id,
            &u.status,
            memory.status.as_deref(),
            u.description.as_deref(),
            u.external_status_code.as_deref(),
            u.updated_datetime,
            "update",
            Some(&u.update_id),
            format!("report/{}/update/{}", u.service_request_id, u.update_id),
        )
    }

    /// The request's own status, as a status change from what is remembered.
    fn status_of_request(&self, r: &ServiceRequest, memory: &ReportMemory) -> EventDraft {
        let at = r.updated_datetime.unwrap_or(r.requested_datetime);
        status_change(
            &r.service_request_id,
            &r.status,
            memory.status.as_deref(),
            r.status_notes.as_deref(),
            None,
            at,
            "request",
            None,
            format!(
                "report/{}/status/{}/{}",
                r.service_request_id,
                r.status,
                at.to_rfc3339()
            ),
        )
    }

    /// A status change from the request itself, when it tells more than the updates did.
    pub fn reconcile(&self, r: &ServiceRequest, memory: &ReportMemory) -> Option<EventDraft> {
        let at = r.updated_datetime.unwrap_or(r.requested_datetime);
        let known = memory.status.as_deref()?;
        if known == r.status {
            return None;
        }
        let newer = memory.status_at.is_none_or(|t| at > t);
        let disagrees = is_terminal(known) != is_terminal(&r.status);
        if !(newer || (disagrees && memory.status_at.is_none_or(|t| at >= t))) {
            return None;
        }
        Some(self.status_of_request(r, memory))
    }

    /// Plans one poll. `memory` must hold every report the records mention (missing ones
    /// count as never seen); it is updated as if the events had been published.
    pub fn plan(
        &self,
        requests: &[ServiceRequest],
        updates: &[ServiceRequestUpdate],
        memory: &mut HashMap<String, ReportMemory>,
    ) -> Vec<EventDraft> {
        self.plan_records(requests, updates, memory)
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }

    /// [`Mapper::plan`], each event with the record it comes from.
    pub fn plan_records(
        &self,
        requests: &[ServiceRequest],
        updates: &[ServiceRequestUpdate],
        memory: &mut HashMap<String, ReportMemory>,
    ) -> Vec<(Record, EventDraft)> {
        let mut out = Vec::new();
        let mut first_seen = std::collections::HashSet::new();
        for (i, r) in requests.iter().enumerate() {
            let m = memory.entry(r.service_request_id.clone()).or_default();
            if !m.submitted {
                out.push((Record::Request(i), self.submitted(r)));
                m.submitted = true;
                m.observe("open", r.requested_datetime);
                first_seen.insert(i);
            }
        }
        let mut sorted: Vec<(usize, &ServiceRequestUpdate)> = updates.iter().enumerate().collect();
        sorted.sort_by(|(_, a), (_, b)| {
            (a.updated_datetime, &a.update_id).cmp(&(b.updated_datetime, &b.update_id))
        });
        for (i, u) in sorted {
            let m = memory.entry(u.service_request_id.clone()).or_default();
            out.push((Record::Update(i), self.update(u, m)));
            m.observe(&u.status, u.updated_datetime);
        }
        for (i, r) in requests.iter().enumerate() {
            let m = memory.entry(r.service_request_id.clone()).or_default();
            // First seen in another status than open, and no update said anything since:
            // say so even at the instant it was submitted.
            let untold = first_seen.contains(&i)
                && m.status.as_deref() == Some("open")
                && m.status_at == Some(r.requested_datetime);
            let change = self
                .reconcile(r, m)
                .or_else(|| (untold && r.status != "open").then(|| self.status_of_request(r, m)));
            if let Some(d) = change {
                out.push((Record::Request(i), d));
                m.observe(
                    &r.status,
                    r.updated_datetime.unwrap_or(r.requested_datetime),
                );
            }
        }
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn status_change(
    report_id: &str,
    status: &str,
    previous: Option<&str>,
    notes: Option<&str>,
    external: Option<&str>,
    at: DateTime<FixedOffset>,
    origin: &str,
    update_id: Option<&str>,
    id: String,
) -> EventDraft {
    let reopened = previous.is_some_and(is_terminal) && !is_terminal(status);
    let action = if reopened {
        "reopened"
    } else {
        "status_changed"
    };
    let data = json!({
        "report_id": report_id,
        "status": status,
        "previous_status": previous,
        "notes": notes.map(mask),
        "external_status_code": external,
        "changed_at": at.to_rfc3339(),
        "origin": origin,
        "update_id": update_id,
    });
    draft(action, id, report_id, at, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field_reports::fixtures;

    fn mapper() -> Mapper {
        Mapper::new(fixtures::services(), Wards::phan_thiet())
    }

    fn plan_fixtures() -> Vec<EventDraft> {
        mapper().plan(
            &fixtures::requests(),
            &fixtures::updates(),
            &mut HashMap::new(),
        )
    }

    #[test]
    fn the_fixture_feed_maps_to_the_expected_events() {
        let events = plan_fixtures();
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        // 7 reports submitted, 7 updates (one for a report not in requests.json).
        assert_eq!(
            events
                .iter()
                .filter(|e| e.event_type.action == "submitted")
                .count(),
            7
        );
        assert!(ids.contains(&"report/PT-2024-000001/update/U-7"));
        // 000983 never changed; 000981's request says closed at the same time as U-3 fixed:
        // both resolved, nothing more to say.
        assert!(!ids
            .iter()
            .any(|i| i.starts_with("report/PT-2023-000983/status")));
        assert!(!ids
            .iter()
            .any(|i| i.starts_with("report/PT-2023-000981/status")));
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "ids are unique");
    }

    #[test]
    fn no_personal_data_survives_mapping() {
        let text =
            serde_json::to_string(&plan_fixtures().iter().map(|e| &e.data).collect::<Vec<_>>())
                .unwrap();
        for personal in [
            "0905123456",
            "binh.nv@example.com",
            "Nguyễn Văn",
            "5f1c2a9e",
            "first_name",
            "phone",
            "email",
            "account_id",
        ] {
            assert!(!text.contains(personal), "{personal} leaked");
        }
    }

    #[test]
    fn submitted_carries_ward_category_and_location() {
        let events = plan_fixtures();
        let e = events
            .iter()
            .find(|e| e.id == "report/PT-2023-000984/submitted")
            .unwrap();
        assert_eq!(
            e.data["ward"], "phu-thuy",
            "from the agency when the address has no ward"
        );
        assert_eq!(e.data["category_group"], "Đô thị");
        assert_eq!(e.data["location"]["lat"], 10.929);
        let odd = events.iter().find(|e| e.key == "PT.2023/1003 >").unwrap();
        assert_eq!(odd.data["ward"], "tien-thanh");
        let xss = events.iter().find(|e| e.key == "PT-2023-001002").unwrap();
        assert_eq!(xss.data["ward"], "mui-ne");
        assert_eq!(xss.time.to_rfc3339(), "2023-12-28T03:10:00+00:00");
    }

    #[test]
    fn updates_carry_previous_status_and_unknown_reports_are_kept() {
        let events = plan_fixtures();
        let u2 = events
            .iter()
            .find(|e| e.id == "report/PT-2023-000981/update/U-2")
            .unwrap();
        assert_eq!(u2.data["previous_status"], "open");
        assert_eq!(u2.data["status"], "in_progress");
        let u7 = events
            .iter()
            .find(|e| e.id == "report/PT-2024-000001/update/U-7")
            .unwrap();
        assert_eq!(u7.data["previous_status"], serde_json::Value::Null);
        assert_eq!(u7.event_type.action, "status_changed");
    }

    #[test]
    fn a_resolved_report_that_becomes_active_again_is_reopened() {
        let m = mapper();
        let mut memory = HashMap::new();
        let mut updates = fixtures::updates();
        let mut again = updates[2].clone();
        again.update_id = "U-9".into();
        again.status = "open".into();
        again.updated_datetime = "2023-11-25T19:00:00+07:00".parse().unwrap();
        updates.push(again);
        let events = m.plan(&fixtures::requests(), &updates, &mut memory);
        let e = events
            .iter()
            .find(|e| e.id == "report/PT-2023-000981/update/U-9")
            .unwrap();
        assert_eq!(e.event_type.action, "reopened");
        assert_eq!(e.data["previous_status"], "fixed");
        assert_eq!(memory["PT-2023-000981"].status.as_deref(), Some("open"));
    }

    #[test]
    fn replanning_with_memory_emits_nothing_new_and_the_same_ids() {
        let m = mapper();
        let mut memory = HashMap::new();
        let first = m.plan(&fixtures::requests(), &fixtures::updates(), &mut memory);
        let second = m.plan(&fixtures::requests(), &[], &mut memory);
        assert!(second.is_empty(), "{second:?}");
        // Updates re-read at a cursor boundary produce the same ids (dropped by the server).
        let again = m.plan(&[], &fixtures::updates(), &mut memory);
        let ids = |v: &[EventDraft]| {
            v.iter()
                .map(|e| e.id.clone())
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert!(ids(&again).is_subset(&ids(&first)));
    }

    #[test]
    fn a_request_status_newer_than_the_updates_is_published() {
        let m = mapper();
        let mut memory = HashMap::new();
        let mut requests = fixtures::requests();
        requests[2].status = "closed".into();
        requests[2].updated_datetime = Some("2023-11-22T10:00:00+07:00".parse().unwrap());
        let events = m.plan(&requests, &fixtures::updates(), &mut memory);
        let e = events
            .iter()
            .find(|e| e.key == "PT-2023-000983" && e.event_type.action == "status_changed")
            .unwrap();
        assert_eq!(e.data["origin"], "request");
        assert_eq!(e.data["previous_status"], "open");
    }

    #[test]
    fn a_request_listed_again_with_a_newer_status_is_published_once() {
        let m = mapper();
        let mut memory = HashMap::new();
        let mut requests = fixtures::requests();
        m.plan(&requests, &fixtures::updates(), &mut memory);
        // Listed again, unchanged: nothing; then closed later: one status change.
        assert!(m.plan(&requests, &[], &mut memory).is_empty());
        requests[1].status = "closed".into();
        requests[1].updated_datetime = Some("2023-12-01T09:00:00+07:00".parse().unwrap());
        let again = m.plan(&requests[1..2], &[], &mut memory);
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(again[0].data["status"], "closed");
        assert!(m.plan(&requests[1..2], &[], &mut memory).is_empty());
    }

    #[test]
    fn a_status_the_contract_does_not_know_is_kept_not_coerced() {
        let m = mapper();
        let registry = lienthong_bus::SchemaRegistry::embedded().unwrap();
        let mut r = fixtures::requests()[5].clone();
        r.status = "chờ xác minh".into();
        r.updated_datetime = None;
        let events = m.plan(&[r], &[], &mut HashMap::new());
        let change = events
            .iter()
            .find(|e| e.event_type.action == "status_changed")
            .expect("the status is not silently left at open");
        assert_eq!(change.data["status"], "chờ xác minh");
        let schema = registry
            .schema_id(&change.event_type.to_string(), None)
            .unwrap();
        assert!(
            registry.validate(schema, &change.data).is_err(),
            "it fails validation: the DLQ keeps it with the reason"
        );
    }

    #[test]
    fn planned_events_validate_against_the_schemas() {
        let registry = lienthong_bus::SchemaRegistry::embedded().unwrap();
        for e in plan_fixtures() {
            let id = registry.schema_id(&e.event_type.to_string(), None).unwrap();
            registry
                .validate(id, &e.data)
                .unwrap_or_else(|f| panic!("{} invalid: {f:?}", e.id));
        }
    }
}
