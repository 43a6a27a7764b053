//! Upcasters: older versions of an event's data turned into the current shape before any
//! projection sees them, so years-old history replays into today's read models and
//! projections only know the newest version.
//!
//! The version comes from the event's `dataschema` (`…/v<N>.json`). Each upcaster takes one
//! type from version N to N+1; they chain.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::{json, Value};

/// `…/v2.json` → 2.
pub fn version_of(dataschema: &str) -> Option<u32> {
    dataschema
        .rsplit('/')
        .next()?
        .strip_prefix('v')?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

type Upcaster = fn(Value) -> Value;

/// (type, from version) → upcaster to the next version.
static UPCASTERS: LazyLock<HashMap<(&'static str, u32), Upcaster>> = LazyLock::new(|| {
    let mut m: HashMap<(&'static str, u32), Upcaster> = HashMap::new();
    m.insert(
        ("vn.egov.field_reports.report.submitted", 1),
        report_submitted_v1_to_v2,
    );
    for ty in [
        "vn.egov.open_data.dataset.published",
        "vn.egov.open_data.dataset.updated",
        "vn.egov.open_data.dataset.withdrawn",
    ] {
        m.insert((ty, 1), dataset_v1_to_v2);
    }
    m
});

/// Ward slugs to names, for reports recorded before v2 carried the name.
static WARD_NAMES: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    crate::reference::wards()
        .iter()
        .map(|w| (w.slug.clone(), w.name.clone()))
        .collect()
});

/// v2 keeps only http(s) resource addresses as links: any other goes to `url_rejected`.
fn dataset_v1_to_v2(mut data: Value) -> Value {
    if let Some(resources) = data.get_mut("resources").and_then(Value::as_array_mut) {
        for r in resources {
            let Some(url) = r.get("url").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            let http = url::Url::parse(&url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !http {
                r["url"] = Value::Null;
                r["url_rejected"] = json!(url.chars().take(2000).collect::<String>());
            }
        }
    }
    data
}

/// v2 adds `ward_name` (derived here from the slug) and `received_via` (unknown for v1).
fn report_submitted_v1_to_v2(mut data: Value) -> Value {
    let name = data
        .get("ward")
        .and_then(Value::as_str)
        .and_then(|w| WARD_NAMES.get(w))
        .cloned();
    if let Some(o) = data.as_object_mut() {
        o.entry("ward_name").or_insert(json!(name));
        o.entry("received_via").or_insert(Value::Null);
    }
    data
}

/// [`upcast`] for data as projections read it: converted only when there is an upcaster
/// for its version (old events; the newest pass through untouched).
pub fn upcast_data(
    ty: &str,
    version: u32,
    data: crate::projection::Data,
) -> (u32, crate::projection::Data) {
    if !UPCASTERS.contains_key(&(ty, version)) {
        return (version, data);
    }
    let (version, json) = upcast(ty, version, crate::projection::json_of(&data));
    (version, crate::projection::data_of(&json))
}

/// Brings `data` of type `ty` at `version` up to the newest version there is an upcaster for.
pub fn upcast(ty: &str, mut version: u32, mut data: Value) -> (u32, Value) {
    while let Some(f) = UPCASTERS.get(&(ty, version)) {
        data = f(data);
        version += 1;
    }
    (version, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_that_says_it_is_upcast_has_its_upcaster() {
        let schemas = lienthong_bus::SchemaRegistry::embedded().unwrap();
        let mut annotated = 0;
        for f in schemas.files() {
            let Some((ty, version)) = &f.event else {
                continue;
            };
            if f.json.get(lienthong_bus::schema::UPCAST_KEYWORD).is_some() {
                annotated += 1;
                let ty = ty.to_string();
                assert!(
                    UPCASTERS.contains_key(&(ty.as_str(), version - 1)),
                    "{} says its readers upcast v{}, but there is no upcaster",
                    f.path,
                    version - 1
                );
            }
        }
        assert!(annotated > 0);
    }

    #[test]
    fn a_v1_report_gets_its_ward_name() {
        let v1 = json!({"report_id": "A", "ward": "mui-ne", "status": "open"});
        let (v, data) = upcast("vn.egov.field_reports.report.submitted", 1, v1);
        assert_eq!(v, 2);
        assert_eq!(data["ward_name"], "Phường Mũi Né");
        assert_eq!(data["received_via"], Value::Null);
        let (v, same) = upcast("vn.egov.field_reports.report.submitted", 2, data.clone());
        assert_eq!((v, same), (2, data));
        assert_eq!(upcast("vn.egov.sso.session.started", 1, json!({})).0, 1);
        assert_eq!(
            version_of("https://lienthong.vn/schemas/x/y.z/v12.json"),
            Some(12)
        );
    }

    #[test]
    fn old_catalogue_events_lose_their_non_http_links() {
        let v1 = json!({"dataset_id": "d", "resources": [
            {"id": "a", "url": "https://x.gov.vn/a.csv"},
            {"id": "b", "url": "javascript:alert(1)"},
            {"id": "c", "url": null}
        ]});
        let (version, v2) = upcast("vn.egov.open_data.dataset.updated", 1, v1);
        assert_eq!(version, 2);
        assert_eq!(v2["resources"][0]["url"], "https://x.gov.vn/a.csv");
        assert_eq!(v2["resources"][1]["url"], Value::Null);
        assert_eq!(v2["resources"][1]["url_rejected"], "javascript:alert(1)");
        assert_eq!(v2["resources"][2]["url"], Value::Null);
    }
}
