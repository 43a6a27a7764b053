//! `CatalogueProjection`: the open-data catalogue as it stands — every dataset with its
//! resources, withdrawn ones marked — served as JSON, CSV and DCAT-style JSON-LD.
//!
//! Keys: `ds/<dataset id>` → [`DatasetView`].

pub mod dataset;
pub mod http;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::Result;
use crate::projection::{Data, ProjectedEvent, Projection};
use crate::store::Changes;
use sonic_rs::{JsonContainerTrait, JsonValueTrait};

pub const NAME: &str = "open_data";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetView {
    pub dataset_id: String,
    pub name: Option<String>,
    pub title: Option<String>,
    pub notes: Option<String>,
    pub organization: Option<Value>,
    pub license_id: Option<String>,
    pub tags: Vec<String>,
    pub resources: Vec<Value>,
    pub metadata_modified: Option<String>,
    /// `active` or `withdrawn`.
    pub status: String,
    pub withdrawn_reason: Option<String>,
    pub first_published: Option<String>,
    /// Events folded: published, updates, withdrawals.
    pub revisions: u32,
    /// Set when the dataset is one of the bus's own, published to the portal and read back
    /// (`lienthong datasets publish`): the identifier of that dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_dataset: Option<String>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CatalogueProjection;

impl Projection for CatalogueProjection {
    fn name(&self) -> &'static str {
        NAME
    }
    fn stream(&self) -> &'static str {
        "OPEN_DATA"
    }

    fn apply(&self, changes: &mut Changes<'_>, ev: &ProjectedEvent) -> Result<()> {
        let Some(action) = ev.ty.strip_prefix("vn.egov.open_data.dataset.") else {
            return Ok(());
        };
        let d = &ev.data;
        let Some(id) = d.get("dataset_id").and_then(Data::as_str) else {
            return Ok(());
        };
        let key = format!("ds/{id}").into_bytes();
        let mut view: DatasetView = changes.get_json(&key)?.unwrap_or_else(|| DatasetView {
            dataset_id: id.to_string(),
            ..Default::default()
        });
        let modified = d
            .get("metadata_modified")
            .and_then(Data::as_str)
            .map(str::to_string);
        // Revisions may arrive out of order after a redelivery: keep the newest snapshot.
        if view.metadata_modified.is_some() && modified < view.metadata_modified {
            return Ok(());
        }
        let s = |k: &str| d.get(k).and_then(Data::as_str).map(str::to_string);
        view.name = s("name");
        view.title = s("title");
        view.notes = s("notes");
        view.organization = d
            .get("organization")
            .filter(|o| !o.is_null())
            .map(crate::projection::json_of);
        view.license_id = s("license_id");
        view.tags = d
            .get("tags")
            .and_then(Data::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        view.resources = d
            .get("resources")
            .and_then(Data::as_array)
            .map(|r| r.iter().map(crate::projection::json_of).collect())
            .unwrap_or_default();
        view.metadata_modified = modified.clone();
        view.bus_dataset = s("bus_dataset");
        view.revisions += 1;
        match action {
            "withdrawn" => {
                view.status = "withdrawn".into();
                view.withdrawn_reason = s("reason");
            }
            _ => {
                view.status = "active".into();
                view.withdrawn_reason = None;
                if view.first_published.is_none() {
                    view.first_published = modified;
                }
            }
        }
        changes.put_json(key, view)
    }
}

pub struct CatalogueView<'a> {
    pub tree: &'a sled::Tree,
}

impl CatalogueView<'_> {
    pub fn datasets(&self) -> Result<Vec<DatasetView>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(b"ds/") {
            let (_, v) = item?;
            if let Ok(d) = serde_json::from_slice(&v) {
                out.push(d);
            }
        }
        Ok(out)
    }

    pub fn get(&self, id: &str) -> Result<Option<DatasetView>> {
        Ok(self
            .tree
            .get(format!("ds/{id}"))?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }
}

/// The catalogue in the DCAT vocabulary (JSON-LD), active datasets only.
pub fn dcat(datasets: &[DatasetView], base: &str) -> Value {
    let items: Vec<Value> = datasets
        .iter()
        .filter(|d| d.status == "active")
        .map(|d| {
            json!({
                "@id": format!("{base}/api/v1/open-data/datasets/{}", d.dataset_id),
                "@type": "dcat:Dataset",
                "dct:identifier": d.dataset_id,
                "dct:title": d.title,
                "dct:description": d.notes,
                "dct:publisher": d.organization.as_ref().and_then(|o| o.get("title")).cloned(),
                "dct:license": d.license_id,
                "dct:modified": d.metadata_modified,
                "dcat:keyword": d.tags,
                "dcat:distribution": d.resources.iter().map(|r| json!({
                    "@type": "dcat:Distribution",
                    "dct:title": r.get("name"),
                    "dcat:accessURL": r.get("url"),
                    "dct:format": r.get("format"),
                    "dcat:byteSize": r.get("size"),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/"},
        "@type": "dcat:Catalog",
        "dct:title": "Dữ liệu mở — Phan Thiết (Lienthong read model)",
        "dcat:dataset": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ReadStore;

    #[test]
    fn withdrawn_datasets_stay_listed_and_marked() {
        let store = ReadStore::temporary().unwrap();
        let tree = store.current(NAME).unwrap();
        let mut c = Changes::new(&tree);
        let d = |m: &str| json!({"dataset_id": "a", "name": "a", "title": "A", "tags": ["x"], "resources": [{"id": "r1", "url": "https://x/a.csv", "format": "CSV"}], "metadata_modified": m, "organization": {"id": "o", "title": "UBND"}});
        let mut w = d("2023-12-05T00:00:00+00:00");
        w["reason"] = json!("deleted");
        for (i, (a, data)) in [
            ("published", d("2023-11-01T00:00:00+00:00")),
            ("withdrawn", w),
            ("published", d("2023-11-02T00:00:00+00:00")),
        ]
        .into_iter()
        .enumerate()
        {
            let ev = ProjectedEvent {
                ty: format!("vn.egov.open_data.dataset.{a}"),
                id: format!("{i}"),
                source: "s".into(),
                key: None,
                time: None,
                data: crate::projection::data_of(&data),
                version: 1,
                sequence: i as u64 + 1,
            };
            CatalogueProjection.apply(&mut c, &ev).unwrap();
        }
        c.commit(3).unwrap();
        let v = CatalogueView { tree: &tree };
        let a = v.get("a").unwrap().unwrap();
        assert_eq!(
            a.status, "withdrawn",
            "an older revision arriving late does not undo the withdrawal"
        );
        assert_eq!(a.withdrawn_reason.as_deref(), Some("deleted"));
        assert_eq!(
            dcat(&v.datasets().unwrap(), "http://x")["dcat:dataset"]
                .as_array()
                .unwrap()
                .len(),
            0
        );
    }
}
