//! Open311 GeoReport v2 records as the field-reports system serves them.
//!
//! Only the fields Lienthong uses are read. The reporter's personal fields
//! (`first_name`, `last_name`, `phone`, `email`, `account_id`, `device_id`) are
//! deliberately absent: they are never deserialized, so they cannot be mapped onward.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Deserializer};

/// `services.json`: a report category.
#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    pub service_code: String,
    pub service_name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
}

/// `requests.json`: a citizen's report.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceRequest {
    #[serde(deserialize_with = "string_or_number")]
    pub service_request_id: String,
    pub status: String,
    #[serde(default)]
    pub status_notes: Option<String>,
    #[serde(default)]
    pub service_name: Option<String>,
    pub service_code: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub agency_responsible: Option<String>,
    pub requested_datetime: DateTime<FixedOffset>,
    #[serde(default)]
    pub updated_datetime: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    pub expected_datetime: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default, deserialize_with = "opt_coordinate")]
    pub lat: Option<f64>,
    #[serde(default, deserialize_with = "opt_coordinate")]
    pub long: Option<f64>,
    #[serde(default)]
    pub media_url: Option<String>,
}

/// `servicerequestupdates.json`: one step in a report's lifecycle.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceRequestUpdate {
    #[serde(deserialize_with = "string_or_number")]
    pub update_id: String,
    #[serde(deserialize_with = "string_or_number")]
    pub service_request_id: String,
    pub status: String,
    pub updated_datetime: DateTime<FixedOffset>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub external_status_code: Option<String>,
}

/// Open311 error bodies: `[{"code": 404, "description": "…"}]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Open311Error {
    pub code: u16,
    pub description: String,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number, got {other}"
        ))),
    }
}

/// Coordinates arrive as numbers, strings, `""` or `null`.
fn opt_coordinate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => Ok(n.as_f64()),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("coordinate {s:?} is not a number"))),
        Some(other) => Err(serde::de::Error::custom(format!(
            "coordinate {other} is not a number"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_parse_as_they_are() {
        let requests: Vec<ServiceRequest> =
            serde_json::from_str(include_str!("../../fixtures/field_reports/requests.json"))
                .unwrap();
        assert_eq!(requests.len(), 7);
        assert_eq!(requests[6].service_request_id, "PT.2023/1003 >");
        assert_eq!(requests[0].lat, Some(10.9289));
        let updates: Vec<ServiceRequestUpdate> =
            serde_json::from_str(include_str!("../../fixtures/field_reports/updates.json"))
                .unwrap();
        assert_eq!(updates.len(), 7);
        let services: Vec<Service> =
            serde_json::from_str(include_str!("../../fixtures/field_reports/services.json"))
                .unwrap();
        assert_eq!(services.len(), 6);
    }

    #[test]
    fn coordinates_as_strings() {
        let r: ServiceRequest = serde_json::from_value(serde_json::json!({
            "service_request_id": 17, "status": "open", "service_code": "X",
            "requested_datetime": "2023-01-01T00:00:00+07:00", "lat": "10.9", "long": ""
        }))
        .unwrap();
        assert_eq!(r.service_request_id, "17");
        assert_eq!(r.lat, Some(10.9));
        assert_eq!(r.long, None);
    }
}
