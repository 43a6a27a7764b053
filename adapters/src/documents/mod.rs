//! Documents (*quản lý văn bản và điều hành*): edXML exchange (QCVN 102:2016) and the
//! document register.
//!
//! - [`edxml`]: packages and status messages, and their events.
//! - [`register`]: the register export; secret documents withheld.
//! - [`adapter`]: folder polling and HTTP push ([`DocumentsAdapter`]).

pub mod adapter;
pub mod demo;
pub mod edxml;
pub mod register;

pub use adapter::{DocumentsAdapter, DocumentsConfig};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_maps_to_an_event_that_validates() {
        let registry = lienthong_bus::SchemaRegistry::embedded().unwrap();
        let now = "2024-01-01T00:00:00+07:00".parse().unwrap();
        let mut events = Vec::new();
        for text in [
            include_str!("../../fixtures/documents/edxml/2023-1245-UBND-VP.edxml"),
            include_str!("../../fixtures/documents/edxml/2023-1245-UBND-VP.revoke.edxml"),
            include_str!("../../fixtures/documents/edxml/status-03-phu-thuy.edxml"),
        ] {
            events.push(edxml::to_event(
                &edxml::parse(text).unwrap(),
                now,
                text.as_bytes(),
            ));
        }
        for line in include_str!("../../fixtures/documents/register.jsonl").lines() {
            if let register::RegisterOutcome::Publish(e) =
                register::map(&serde_json::from_str(line).unwrap())
            {
                events.push(*e);
            }
        }
        assert_eq!(events.len(), 14);
        for e in events {
            let id = registry.schema_id(&e.event_type.to_string(), None).unwrap();
            registry
                .validate(id, &e.data)
                .unwrap_or_else(|f| panic!("{} invalid: {f:?}", e.id));
        }
    }
}
