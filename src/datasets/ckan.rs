//! `lienthong datasets publish --ckan URL --token-file F [--organization ORG]`: one CKAN
//! package per dataset, through the CKAN Action API, idempotently.
//!
//! For each dataset the replay service serves (`--from`, default `http://127.0.0.1:8080`):
//! `package_show` by name (`lienthong-<id>`); `package_create` when it does not exist, else
//! `package_patch` of what differs (title, notes, licence, tags, version, extras); then each
//! resource (CSV, JSON) `resource_create` when missing or `resource_patch` when its URL, format
//! or content digest differs. Publishing the same figures again changes nothing; new figures
//! change the version (a digest of the table) and the resources' digests. A refused call is
//! reported with CKAN's own error. Packages carry the extra `lienthong_dataset` = the dataset's
//! id, by which the open-data adapter recognises them when they come back (see
//! `docs/datasets.md`).

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Where to publish, as whom.
#[derive(Debug, Clone)]
pub struct Target {
    /// The portal (`https://data.example.gov.vn/`); the Action API is under `api/3/action/`.
    pub ckan: url::Url,
    pub token: String,
    /// The owning organization (name or id).
    pub organization: String,
    /// The replay service serving the datasets.
    pub from: url::Url,
}

/// What publishing did, per dataset.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// CKAN calls that changed something.
    pub writes: usize,
}

/// The CKAN licence id of a licence URL.
fn licence_id(url: &str) -> &'static str {
    match url.trim_end_matches('/') {
        u if u.ends_with("licenses/by/4.0") => "cc-by",
        u if u.ends_with("licenses/by-sa/4.0") => "cc-by-sa",
        u if u.ends_with("publicdomain/zero/1.0") => "cc-zero",
        u if u.contains("opendatacommons.org/licenses/odbl") => "odc-odbl",
        _ => "other-open",
    }
}

struct Api<'a> {
    http: reqwest::Client,
    t: &'a Target,
}

impl Api<'_> {
    fn url(&self, action: &str) -> anyhow::Result<url::Url> {
        self.t
            .ckan
            .join(&format!("api/3/action/{action}"))
            .with_context(|| format!("{} is not a base URL", self.t.ckan))
    }

    /// The package called `name`, if there is one.
    async fn show(&self, name: &str, dataset: &str) -> anyhow::Result<Option<Value>> {
        let mut url = self.url("package_show")?;
        url.query_pairs_mut().append_pair("id", name);
        let response = self
            .http
            .get(url)
            .header("Authorization", &self.t.token)
            .send()
            .await
            .with_context(|| format!("package_show for {dataset}: {} unreachable", self.t.ckan))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let v: Value = response.json().await.unwrap_or(Value::Null);
        if v["success"] == true {
            return Ok(Some(v["result"].clone()));
        }
        anyhow::bail!("CKAN refused package_show for {dataset}: {}", v["error"])
    }

    /// The result of a call, or CKAN's error in words.
    async fn call(
        &self,
        action: &str,
        dataset: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let request = match body {
            None => self.http.get(self.url(action)?),
            Some(b) => self.http.post(self.url(action)?).json(b),
        }
        .header("Authorization", &self.t.token);
        let response = request
            .send()
            .await
            .with_context(|| format!("{action} for {dataset}: {} unreachable", self.t.ckan))?;
        let status = response.status();
        let v: Value = response.json().await.unwrap_or(Value::Null);
        if v["success"] == true {
            return Ok(v["result"].clone());
        }
        let error = &v["error"];
        let kind = error["__type"].as_str().unwrap_or("error");
        let detail: Vec<String> = error
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| *k != "__type")
            .map(|(k, v)| {
                format!(
                    "{k}: {}",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                )
            })
            .collect();
        anyhow::bail!(
            "CKAN refused {action} for {dataset} (HTTP {status}): {kind}: {}",
            if detail.is_empty() {
                "no detail".into()
            } else {
                detail.join("; ")
            }
        )
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let r = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(r.status().is_success(), "GET {url}: HTTP {}", r.status());
    Ok(r.bytes().await?.to_vec())
}

fn extras(v: &Value) -> BTreeMap<String, String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["key"].as_str()?.to_string(),
                e["value"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect()
}

fn tag_names(v: &Value) -> Vec<String> {
    let mut t: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| {
            x["name"]
                .as_str()
                .or_else(|| x.as_str())
                .map(str::to_string)
        })
        .collect();
    t.sort();
    t
}

/// Publishes every dataset of the service to the portal.
pub async fn publish(t: &Target) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let api = Api {
        http: http.clone(),
        t,
    };
    let list: Value =
        serde_json::from_slice(&fetch(&http, t.from.join("api/v1/datasets")?.as_str()).await?)
            .context("the service's dataset list is not JSON")?;
    let licence = list["licence"].as_str().unwrap_or_default().to_string();
    let mut report = Report::default();
    for d in list["datasets"].as_array().into_iter().flatten() {
        let id = d["id"].as_str().unwrap_or_default().to_string();
        let spec = lienthong_replay::datasets::spec(&id);
        let name = format!("lienthong-{id}");
        let version = d["version"].as_str().unwrap_or_default().to_string();
        let mut resources = Vec::new();
        for (fmt, mime, link) in [
            ("CSV", "text/csv", "csv"),
            ("JSON", "application/json", "json"),
        ] {
            let url = d["links"][link].as_str().unwrap_or_default().to_string();
            let digest = hex::encode(Sha256::digest(fetch(&http, &url).await?));
            resources.push(json!({
                "name": format!("{id}.{}", fmt.to_lowercase()),
                "url": url,
                "format": fmt,
                "mimetype": mime,
                "hash": format!("sha256:{digest}"),
                "description": format!("{} — {} (columns: {})", d["title"]["vi"].as_str().unwrap_or(""), fmt, d["links"]["schema"].as_str().unwrap_or("")),
            }));
        }
        let notes = format!(
            "{}\n\n{}\n\n{}",
            d["description"]["vi"].as_str().unwrap_or(""),
            d["description"]["en"].as_str().unwrap_or(""),
            lienthong_replay::datasets::disclosure_note(d["min_cell"].as_u64().unwrap_or(1)),
        );
        let wanted = json!({
            "name": name,
            "title": d["title"]["vi"],
            "notes": notes,
            "license_id": licence_id(&licence),
            "version": version,
            "url": d["links"]["dcat"],
            "tags": spec.map(|s| s.keywords.iter().map(|k| json!({"name": k})).collect::<Vec<_>>()).unwrap_or_default(),
            "extras": [
                {"key": "lienthong_dataset", "value": id},
                {"key": "dcat_record", "value": d["links"]["dcat"]},
                {"key": "column_schema", "value": d["links"]["schema"]},
            ],
        });
        let Some(existing) = api.show(&name, &id).await? else {
            let mut body = wanted.clone();
            body["owner_org"] = json!(t.organization);
            body["resources"] = json!(resources);
            api.call("package_create", &id, Some(&body)).await?;
            report.writes += 1;
            report.created.push(id);
            continue;
        };
        let mut changed = false;
        // The package's own fields.
        let mut patch = json!({"id": existing["id"]});
        for field in ["title", "notes", "license_id", "version", "url"] {
            if existing[field] != wanted[field] {
                patch[field] = wanted[field].clone();
            }
        }
        if tag_names(&existing["tags"]) != tag_names(&wanted["tags"]) {
            patch["tags"] = wanted["tags"].clone();
        }
        if extras(&existing["extras"]) != extras(&wanted["extras"]) {
            patch["extras"] = wanted["extras"].clone();
        }
        if patch.as_object().is_some_and(|o| o.len() > 1) {
            api.call("package_patch", &id, Some(&patch)).await?;
            report.writes += 1;
            changed = true;
        }
        // Its resources, matched by name.
        let have = existing["resources"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for r in &resources {
            match have
                .iter()
                .find(|h| h["name"] == r["name"] && h["state"] != "deleted")
            {
                None => {
                    let mut body = r.clone();
                    body["package_id"] = existing["id"].clone();
                    api.call("resource_create", &id, Some(&body)).await?;
                    report.writes += 1;
                    changed = true;
                }
                Some(h)
                    if ["url", "format", "hash", "mimetype"]
                        .iter()
                        .any(|f| h[*f] != r[*f]) =>
                {
                    let mut body = r.clone();
                    body["id"] = h["id"].clone();
                    api.call("resource_patch", &id, Some(&body)).await?;
                    report.writes += 1;
                    changed = true;
                }
                Some(_) => {}
            }
        }
        if changed {
            report.updated.push(id);
        } else {
            report.unchanged.push(id);
        }
    }
    Ok(report)
}
