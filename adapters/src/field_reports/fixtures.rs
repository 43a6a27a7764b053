//! The Open311 samples from the field-reports system, built in (for the simulator and tests).

use serde_json::Value;

use super::open311::{Service, ServiceRequest, ServiceRequestUpdate};

pub const SERVICES_JSON: &str = include_str!("../../fixtures/field_reports/services.json");
pub const REQUESTS_JSON: &str = include_str!("../../fixtures/field_reports/requests.json");
pub const UPDATES_JSON: &str = include_str!("../../fixtures/field_reports/updates.json");

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_str(text).expect("built-in fixture parses")
}

pub fn services() -> Vec<Service> {
    parse(SERVICES_JSON)
}
pub fn requests() -> Vec<ServiceRequest> {
    parse(REQUESTS_JSON)
}
pub fn updates() -> Vec<ServiceRequestUpdate> {
    parse(UPDATES_JSON)
}
/// The raw records, personal fields included, as the subsystem serves them.
pub fn raw_services() -> Vec<Value> {
    parse(SERVICES_JSON)
}
pub fn raw_requests() -> Vec<Value> {
    parse(REQUESTS_JSON)
}
pub fn raw_updates() -> Vec<Value> {
    parse(UPDATES_JSON)
}
