//! One event as an HTTP request: the CloudEvents HTTP binding, binary or structured mode.
//!
//! Binary mode (the default): the event's data is the body, with its `datacontenttype` as
//! `Content-Type`; every other attribute is a `ce-<name>` header, its value percent-encoded
//! as the binding asks (space, `"`, `%` and anything outside printable ASCII). Structured
//! mode: the whole event as JSON, `Content-Type: application/cloudevents+json`.

use bytes::Bytes;
use cloudevents::event::{AttributeValue, Data};
use cloudevents::{AttributesReader, Event};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::DeliverError;
use lienthong_bus::agencies::events::Mode;

/// What the binding percent-encodes in header values (beyond control characters).
const HEADER_VALUE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%').add(0x7f);

/// An event ready to POST.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The event's id as `webhook-id` (and signed so): percent-encoded like `ce-id`, so a
    /// header carries it whatever characters it holds (`QĐ` → `Q%C4%90`).
    pub id: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Builds the request of `event` in `mode`.
pub fn outgoing(event: &Event, mode: Mode) -> Result<Outgoing, DeliverError> {
    let id = utf8_percent_encode(event.id(), HEADER_VALUE).to_string();
    match mode {
        Mode::Structured => Ok(Outgoing {
            id,
            headers: vec![("content-type".into(), "application/cloudevents+json".into())],
            body: serde_json::to_vec(event)
                .map_err(|e| DeliverError::Event(e.to_string()))?
                .into(),
        }),
        Mode::Binary => {
            let mut headers = Vec::new();
            for (name, value) in event.iter() {
                if name == "datacontenttype" {
                    continue;
                }
                let text = match value {
                    AttributeValue::Time(t) => {
                        t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                    }
                    other => other.to_string(),
                };
                headers.push((
                    format!("ce-{name}"),
                    utf8_percent_encode(&text, HEADER_VALUE).to_string(),
                ));
            }
            let content_type = event
                .datacontenttype()
                .unwrap_or("application/json")
                .to_string();
            headers.push(("content-type".into(), content_type));
            let body: Bytes = match event.data() {
                Some(Data::Json(v)) => serde_json::to_vec(v)
                    .map_err(|e| DeliverError::Event(e.to_string()))?
                    .into(),
                Some(Data::String(s)) => Bytes::from(s.clone()),
                Some(Data::Binary(b)) => Bytes::from(b.clone()),
                None => Bytes::new(),
            };
            Ok(Outgoing { id, headers, body })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::EventBuilder;

    fn event() -> Event {
        cloudevents::EventBuilderV10::new()
            .id("report/PT-1/submitted")
            .source("urn:lienthong:phanthiet:field_reports")
            .ty("vn.egov.field_reports.report.submitted")
            .subject("PT.2023/1003 >")
            .time("2023-11-18T12:42:10Z")
            .extension("dataclassification", "public")
            .data("application/json", serde_json::json!({"ward": "Phú Thủy"}))
            .build()
            .unwrap()
    }

    #[test]
    fn binary_mode_puts_the_attributes_in_encoded_headers_and_the_data_in_the_body() {
        let o = outgoing(&event(), Mode::Binary).unwrap();
        let h = |n: &str| {
            o.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {n}: {:?}", o.headers))
        };
        assert_eq!(h("ce-specversion"), "1.0");
        assert_eq!(h("ce-id"), "report/PT-1/submitted");
        assert_eq!(h("ce-subject"), "PT.2023/1003%20>");
        assert_eq!(h("ce-time"), "2023-11-18T12:42:10Z");
        assert_eq!(h("ce-dataclassification"), "public");
        assert_eq!(h("content-type"), "application/json");
        let body: serde_json::Value = serde_json::from_slice(&o.body).unwrap();
        assert_eq!(body["ward"], "Phú Thủy");
        assert_eq!(o.id, "report/PT-1/submitted");
    }

    #[test]
    fn ids_outside_ascii_are_percent_encoded_in_webhook_id() {
        use cloudevents::AttributesWriter;
        let mut e = event();
        e.set_id("edxml/12/QĐ-UBND");
        let o = outgoing(&e, Mode::Binary).unwrap();
        assert_eq!(o.id, "edxml/12/Q%C4%90-UBND");
        assert!(o.id.is_ascii());
    }

    #[test]
    fn structured_mode_sends_the_whole_event() {
        let o = outgoing(&event(), Mode::Structured).unwrap();
        assert_eq!(o.headers[0].1, "application/cloudevents+json");
        let body: serde_json::Value = serde_json::from_slice(&o.body).unwrap();
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["data"]["ward"], "Phú Thủy");
    }
}
