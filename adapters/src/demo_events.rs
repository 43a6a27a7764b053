//! The demo city's records as events (field reports and documents), for benchmarks.

use chrono::Utc;
use lienthong_bus::EventDraft;

use crate::demo::CityYear;
use crate::documents::{edxml, register};
use crate::field_reports::open311::{ServiceRequest, ServiceRequestUpdate};
use crate::field_reports::{fixtures, Mapper};
use crate::wards::Wards;

/// Every field-report and document event of the year, in the order the adapters would
/// publish them.
pub fn field_report_and_document_events(city: &CityYear) -> Vec<EventDraft> {
    let mapper = Mapper::new(fixtures::services(), Wards::phan_thiet());
    let requests: Vec<ServiceRequest> = serde_json::from_value(serde_json::Value::Array(
        city.field_reports.requests.clone(),
    ))
    .unwrap_or_default();
    let updates: Vec<ServiceRequestUpdate> =
        serde_json::from_value(serde_json::Value::Array(city.field_reports.updates.clone()))
            .unwrap_or_default();
    let mut out = mapper.plan(&requests, &updates, &mut Default::default());
    for line in &city.register {
        if let Ok(entry) = serde_json::from_value::<register::RegisterEntry>(line.clone()) {
            if let register::RegisterOutcome::Publish(d) = register::map(&entry) {
                out.push(*d);
            }
        }
    }
    let now = Utc::now().fixed_offset();
    for (_, xml) in &city.edxml {
        if let Ok(p) = edxml::parse(xml) {
            out.push(edxml::to_event(&p, now));
        }
    }
    out
}
