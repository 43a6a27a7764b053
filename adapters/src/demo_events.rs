//! The demo city's field reports and documents as events, for benchmarks.

use chrono::Utc;
use lienthong_bus::EventDraft;

use crate::demo::DemoSettings;
use crate::documents::{edxml, register};
use crate::field_reports::open311::{ServiceRequest, ServiceRequestUpdate};
use crate::field_reports::{fixtures, Mapper};
use crate::wards::Wards;

/// Every field-report and document event of the full demo year, in the order the adapters
/// would publish them.
pub fn field_report_and_document_events() -> Vec<EventDraft> {
    let settings = DemoSettings::in_data_dir(std::path::Path::new("data"), 1.0);
    let reports = crate::field_reports::demo::year(&settings);
    let (register_lines, packages) = crate::documents::demo::year(&settings);
    let mapper = Mapper::new(fixtures::services(), Wards::phan_thiet());
    let requests: Vec<ServiceRequest> =
        serde_json::from_value(serde_json::Value::Array(reports.requests)).unwrap_or_default();
    let updates: Vec<ServiceRequestUpdate> =
        serde_json::from_value(serde_json::Value::Array(reports.updates)).unwrap_or_default();
    let mut out = mapper.plan(&requests, &updates, &mut Default::default());
    for line in register_lines {
        if let Ok(entry) = serde_json::from_value::<register::RegisterEntry>(line) {
            if let register::RegisterOutcome::Publish(d) = register::map(&entry) {
                out.push(*d);
            }
        }
    }
    let now = Utc::now().fixed_offset();
    for (_, xml) in &packages {
        if let Ok(p) = edxml::parse(xml) {
            out.push(edxml::to_event(&p, now, xml.as_bytes()));
        }
    }
    out
}
