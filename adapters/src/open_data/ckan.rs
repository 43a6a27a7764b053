//! CKAN datasets (Action API `package_search` results) and their mapping.
//!
//! Per dataset the adapter remembers a fingerprint of its metadata and of each resource, so it
//! can say what changed. `author_email`, `maintainer_email` and `author` are never carried.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use lienthong_bus::{Classification, EventDraft, EventType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::pii::mask;

pub const SUBSYSTEM: &str = "open_data";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Organization {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Tag {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Resource {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub last_modified: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
}

/// A CKAN package (dataset), the fields Lienthong uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default = "active")]
    pub state: String,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub organization: Option<Organization>,
    #[serde(default)]
    pub license_id: Option<String>,
    #[serde(default)]
    pub license_title: Option<String>,
    #[serde(default)]
    pub maintainer: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub metadata_modified: String,
    #[serde(default)]
    pub metadata_created: Option<String>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// Free key/value pairs; `lienthong_dataset` marks one of the bus's own datasets,
    /// published by `lienthong datasets publish`.
    #[serde(default)]
    pub extras: Vec<Extra>,
}

/// A package's extra field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extra {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// The extra that marks the bus's own datasets on the portal.
pub const BUS_DATASET_EXTRA: &str = "lienthong_dataset";

fn active() -> String {
    "active".into()
}

/// CKAN writes UTC times without an offset (`2023-11-02T10:15:30.123456`).
pub fn ckan_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// What the adapter remembers of a dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetMemory {
    /// Currently published (active and public) on the bus.
    pub published: bool,
    /// Fingerprint per metadata field.
    pub metadata: BTreeMap<String, String>,
    /// Fingerprint per resource id.
    pub resources: BTreeMap<String, String>,
}

fn fingerprint(v: &impl Serialize) -> String {
    let text = serde_json::to_string(v).unwrap_or_default();
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

impl Package {
    pub fn is_withdrawn(&self) -> bool {
        self.state != "active" || self.private
    }

    fn metadata_fields(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("title".into(), fingerprint(&self.title));
        m.insert("notes".into(), fingerprint(&self.notes));
        m.insert("name".into(), fingerprint(&self.name));
        m.insert("license".into(), fingerprint(&self.license_id));
        m.insert(
            "organization".into(),
            fingerprint(&self.organization.as_ref().map(|o| &o.id)),
        );
        m.insert("tags".into(), fingerprint(&self.tags));
        m.insert("version".into(), fingerprint(&self.version));
        m.insert("maintainer".into(), fingerprint(&self.maintainer));
        m
    }

    fn live_resources(&self) -> Vec<&Resource> {
        self.resources
            .iter()
            .filter(|r| r.state.as_deref().unwrap_or("active") == "active")
            .collect()
    }

    /// The bus's own dataset this package is, if it is one (a well-formed id only).
    pub fn bus_dataset(&self) -> Option<&str> {
        self.extras
            .iter()
            .find(|e| e.key == BUS_DATASET_EXTRA)
            .map(|e| e.value.as_str())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 100
                    && v.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    }

    fn snapshot(&self) -> Value {
        let mut v = self.snapshot_fields();
        if let Some(id) = self.bus_dataset() {
            v["bus_dataset"] = json!(id);
        }
        v
    }

    fn snapshot_fields(&self) -> Value {
        json!({
            "dataset_id": self.id,
            "name": self.name,
            "title": self.title,
            "notes": self.notes.as_deref().map(mask),
            "organization": self.organization,
            "license_id": self.license_id,
            "license_title": self.license_title,
            "maintainer": self.maintainer.as_deref().map(mask),
            "tags": self.tags.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
            "metadata_created": self.metadata_created.as_deref().and_then(ckan_time).map(|t| t.to_rfc3339()),
            "metadata_modified": ckan_time(&self.metadata_modified).map(|t| t.to_rfc3339()),
            "resources": self.live_resources().iter().map(|r| {
                let (url, rejected) = link(r.url.as_deref());
                json!({
                    "id": r.id, "name": r.name, "format": r.format, "url": url,
                    "url_rejected": rejected, "size": r.size,
                    "last_modified": r.last_modified.as_deref().and_then(ckan_time).map(|t| t.to_rfc3339()),
                })
            }).collect::<Vec<_>>(),
        })
    }
}

/// A resource address as a link: only `http(s)` addresses are links; any other (`javascript:`,
/// `data:`, `file:`, …) is kept as rejected text (cut at 2,000 characters), never as a link.
pub fn link(url: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return (None, None);
    };
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            (Some(url.to_string()), None)
        }
        _ => (None, Some(url.chars().take(2000).collect())),
    }
}

fn draft(action: &str, p: &Package, at: DateTime<Utc>, data: Value) -> EventDraft {
    EventDraft::new(
        EventType::new(SUBSYSTEM, "dataset", action),
        format!("ckan/{}/{}", p.id, p.metadata_modified),
        p.id.clone(),
        at,
        data,
        Classification::Public,
    )
}

/// The event for a dataset revision given what was remembered (`None`: nothing to say),
/// and the memory after it.
pub fn map(p: &Package, memory: &DatasetMemory) -> (Option<EventDraft>, DatasetMemory) {
    let at = ckan_time(&p.metadata_modified).unwrap_or_default();
    let metadata = p.metadata_fields();
    let resources: BTreeMap<String, String> = p
        .live_resources()
        .iter()
        .map(|r| (r.id.clone(), fingerprint(r)))
        .collect();
    let next = DatasetMemory {
        published: !p.is_withdrawn(),
        metadata: metadata.clone(),
        resources: resources.clone(),
    };
    if p.is_withdrawn() {
        // Said once per withdrawal, also for datasets first seen withdrawn (the catalogue
        // then marks them); a dataset that stays withdrawn is not repeated.
        let already = !memory.published && !memory.metadata.is_empty();
        if already {
            return (None, next);
        }
        let mut data = p.snapshot();
        data["reason"] = json!(if p.state != "active" {
            "deleted"
        } else {
            "private"
        });
        return (Some(draft("withdrawn", p, at, data)), next);
    }
    if !memory.published {
        return (Some(draft("published", p, at, p.snapshot())), next);
    }
    let changed_fields: Vec<&String> = metadata
        .iter()
        .filter(|(k, v)| memory.metadata.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    let added: Vec<&String> = resources
        .keys()
        .filter(|k| !memory.resources.contains_key(*k))
        .collect();
    let removed: Vec<&String> = memory
        .resources
        .keys()
        .filter(|k| !resources.contains_key(*k))
        .collect();
    let changed: Vec<&String> = resources
        .iter()
        .filter(|(k, v)| memory.resources.get(*k).is_some_and(|old| old != *v))
        .map(|(k, _)| k)
        .collect();
    if changed_fields.is_empty() && added.is_empty() && removed.is_empty() && changed.is_empty() {
        return (None, next);
    }
    let mut data = p.snapshot();
    data["changes"] = json!({
        "metadata": changed_fields,
        "resources_added": added,
        "resources_removed": removed,
        "resources_changed": changed,
    });
    (Some(draft("updated", p, at, data)), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packages() -> Vec<Package> {
        let v: Value =
            serde_json::from_str(include_str!("../../fixtures/open_data/package_search.json"))
                .unwrap();
        serde_json::from_value(v["result"]["results"].clone()).unwrap()
    }

    #[test]
    fn first_sight_publishes_active_and_withdraws_deleted() {
        let events: Vec<EventDraft> = packages()
            .iter()
            .filter_map(|p| map(p, &DatasetMemory::default()).0)
            .collect();
        let actions: Vec<&str> = events
            .iter()
            .map(|e| e.event_type.action.as_str())
            .collect();
        assert_eq!(
            actions,
            ["published", "published", "published", "withdrawn"]
        );
        assert_eq!(events[3].data["reason"], "deleted");
        assert_eq!(
            events[0].time.to_rfc3339(),
            "2023-11-02T10:15:30.123456+00:00"
        );
        let text =
            serde_json::to_string(&events.iter().map(|e| &e.data).collect::<Vec<_>>()).unwrap();
        assert!(
            !text.contains("opendata@example.gov.vn"),
            "maintainer e-mail must not be carried"
        );
    }

    #[test]
    fn updates_say_what_changed() {
        let mut p = packages().remove(1);
        let (_, memory) = map(&p, &DatasetMemory::default());
        assert!(
            map(&p, &memory).0.is_none(),
            "same revision: nothing to say"
        );
        p.title = Some("Danh mục TTHC (cập nhật)".into());
        p.resources.remove(1);
        p.resources[0].url = Some("https://opendata.example.gov.vn/dataset/tthc-v2.json".into());
        p.resources.push(Resource {
            id: "r-new".into(),
            name: Some("tthc.csv".into()),
            format: Some("CSV".into()),
            url: None,
            size: None,
            last_modified: None,
            state: None,
        });
        p.metadata_modified = "2023-12-01T00:00:00.000000".into();
        let (e, _) = map(&p, &memory);
        let e = e.unwrap();
        assert_eq!(e.event_type.action, "updated");
        assert_eq!(e.data["changes"]["metadata"], json!(["title"]));
        assert_eq!(e.data["changes"]["resources_added"], json!(["r-new"]));
        assert_eq!(e.data["changes"]["resources_removed"], json!(["r-0003"]));
        assert_eq!(e.data["changes"]["resources_changed"], json!(["r-0002"]));
    }

    #[test]
    fn going_private_withdraws_and_coming_back_publishes_again() {
        let mut p = packages().remove(0);
        let (_, m1) = map(&p, &DatasetMemory::default());
        p.private = true;
        p.metadata_modified = "2023-12-01T00:00:00".into();
        let (e, m2) = map(&p, &m1);
        assert_eq!(e.unwrap().data["reason"], "private");
        assert!(map(&p, &m2).0.is_none());
        p.private = false;
        p.metadata_modified = "2023-12-02T00:00:00".into();
        assert_eq!(map(&p, &m2).0.unwrap().event_type.action, "published");
    }

    #[test]
    fn only_http_addresses_are_links_the_rest_is_kept_as_text() {
        assert_eq!(
            link(Some("https://opendata.example.gov.vn/a.csv")),
            (Some("https://opendata.example.gov.vn/a.csv".into()), None)
        );
        for bad in [
            "javascript:alert(document.cookie)",
            "data:text/html,<script>",
            "file:///etc/passwd",
            "//no-scheme",
            "http://",
        ] {
            let (url, rejected) = link(Some(bad));
            assert_eq!(url, None, "{bad}");
            assert_eq!(rejected.as_deref(), Some(bad));
        }
        let registry = lienthong_bus::SchemaRegistry::embedded().unwrap();
        let mut p = packages().remove(0);
        p.resources[0].url = Some("javascript:alert(1)".into());
        let e = map(&p, &DatasetMemory::default()).0.unwrap();
        assert_eq!(e.data["resources"][0]["url"], Value::Null);
        assert_eq!(
            e.data["resources"][0]["url_rejected"],
            "javascript:alert(1)"
        );
        let id = registry.schema_id(&e.event_type.to_string(), None).unwrap();
        registry.validate(id, &e.data).unwrap();
    }

    #[test]
    fn mapped_fixtures_validate() {
        let registry = lienthong_bus::SchemaRegistry::embedded().unwrap();
        for p in packages() {
            let e = map(&p, &DatasetMemory::default()).0.unwrap();
            let id = registry.schema_id(&e.event_type.to_string(), None).unwrap();
            registry
                .validate(id, &e.data)
                .unwrap_or_else(|f| panic!("{} invalid: {f:?}", e.id));
        }
    }
}
