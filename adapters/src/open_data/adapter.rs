//! The open-data adapter: polls a CKAN Action API.
//!
//! `package_search?fq=metadata_modified:[<cursor> TO NOW]&sort=metadata_modified asc&rows=…
//! &start=…&include_private=true&include_deleted=true`, paged; the cursor (newest
//! `metadata_modified` and the dataset ids seen at exactly that time) and a fingerprint per
//! dataset live in `ADAPTER_STATE`. State is saved only after every PubAck.

use std::collections::BTreeSet;
use std::time::Duration;

use lienthong_bus::{DeadLetter, Outcomes, Publisher};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};
use url::Url;

use super::ckan::{self, DatasetMemory, Package, SUBSYSTEM};
use crate::error::AdapterError;
use crate::publish::Tally;
use crate::state::{hashed, AdapterState};
use crate::AdapterContext;

fn default_source() -> String {
    "urn:lienthong:phanthiet:open_data".to_string()
}
const fn default_poll_interval_secs() -> u64 {
    300
}
const fn default_rows() -> usize {
    100
}

/// Configuration of the open-data adapter (`[open_data]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenDataConfig {
    /// CKAN site root (the part before `api/3/action/`).
    pub endpoint: Url,
    #[serde(default = "default_source")]
    pub source: String,
    /// Names this instance's state in `ADAPTER_STATE` (`[a-z0-9_-]`); derived from `source`
    /// when not given. Two instances of one adapter must differ in it.
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    /// Datasets per page.
    #[serde(default = "default_rows")]
    pub rows: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Cursor {
    /// Newest `metadata_modified` read, as CKAN wrote it.
    since: Option<String>,
    seen: BTreeSet<String>,
}

#[derive(Clone)]
pub struct OpenDataAdapter {
    config: OpenDataConfig,
    publisher: Publisher,
    state: AdapterState,
    http: reqwest::Client,
    outcomes: Outcomes,
}

/// Solr's date syntax for a CKAN time.
fn solr_time(ckan: &str) -> String {
    ckan::ckan_time(ckan)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_else(|| "*".into())
}

impl OpenDataAdapter {
    pub async fn build(config: OpenDataConfig, ctx: AdapterContext) -> Result<Self, AdapterError> {
        if config.rows == 0 || config.rows > 1000 {
            return Err(AdapterError::Config(
                "open_data: rows must be 1..=1000".into(),
            ));
        }
        let instance = crate::state::instance_name(config.instance.as_deref(), &config.source)?;
        let state = AdapterState::open(&ctx, SUBSYSTEM, &instance).await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| AdapterError::Config(e.to_string()))?;
        Ok(Self {
            publisher: ctx.publisher(config.source.clone()),
            config,
            state,
            http,
            outcomes: Outcomes::new(&ctx.metrics, SUBSYSTEM),
        })
    }

    async fn page(&self, since: &str, start: usize) -> Result<Vec<Value>, AdapterError> {
        let mut url = self
            .config
            .endpoint
            .join("api/3/action/package_search")
            .map_err(|e| AdapterError::Config(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("fq", &format!("metadata_modified:[{since} TO NOW]"))
            .append_pair("sort", "metadata_modified asc")
            .append_pair("rows", &self.config.rows.to_string())
            .append_pair("start", &start.to_string())
            .append_pair("include_private", "true")
            .append_pair("include_deleted", "true");
        let shown = url.path().to_string();
        let source = |reason: String| AdapterError::Source {
            url: shown.clone(),
            reason,
        };
        let v: Value = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| source(e.to_string()))?
            .json()
            .await
            .map_err(|e| source(format!("not JSON: {e}")))?;
        if v.get("success").and_then(Value::as_bool) != Some(true) {
            return Err(source(format!(
                "CKAN answered success=false: {}",
                v.get("error").cloned().unwrap_or_default()
            )));
        }
        Ok(v.pointer("/result/results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// What became of every dataset read (`lienthong_records_total{path="open_data"}`).
    pub fn outcomes(&self) -> &Outcomes {
        &self.outcomes
    }

    /// A dataset that cannot be read goes to the DLQ — once, though the catalogue lists it on
    /// every poll — without the contact fields that may name a person.
    async fn dead_letter(&self, mut raw: Value, reason: String) -> Result<(), AdapterError> {
        let id = raw
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("sha256:{}", hashed(&raw.to_string())));
        if let Some(o) = raw.as_object_mut() {
            for personal in [
                "author",
                "author_email",
                "maintainer",
                "maintainer_email",
                "creator_user_id",
            ] {
                o.remove(personal);
            }
        }
        let mark = format!("unreadable.{}", hashed(&raw.to_string()));
        if self.state.first_time(&mark).await? {
            let letter = DeadLetter::unreadable(
                self.publisher.source(),
                "vn.egov.open_data.dataset.published",
                &id,
                raw,
                format!("CKAN dataset {id} could not be read: {reason}"),
            );
            warn!(adapter = SUBSYSTEM, dataset = %id, %reason, "unreadable dataset kept in the DLQ");
            self.publisher.keep_dead_letter(&letter).await?;
            self.outcomes.dead_lettered.inc();
        } else {
            // Listed again, already kept: a duplicate of what the DLQ has.
            self.outcomes.duplicate.inc();
        }
        Ok(())
    }

    /// One pass from the cursor to now.
    pub async fn poll_once(&self) -> Result<Tally, AdapterError> {
        let cursor: Cursor = self.state.get("cursor").await?.unwrap_or_default();
        let since = cursor
            .since
            .as_deref()
            .map(solr_time)
            .unwrap_or_else(|| "*".into());
        let mut packages: Vec<Package> = Vec::new();
        let mut unreadable = 0;
        let mut start = 0;
        loop {
            let page = self.page(&since, start).await?;
            let n = page.len();
            for v in page {
                match serde_json::from_value::<Package>(v.clone()) {
                    Ok(p) => packages.push(p),
                    Err(e) => {
                        self.dead_letter(v, e.to_string()).await?;
                        unreadable += 1;
                    }
                }
            }
            if n < self.config.rows {
                break;
            }
            start += n;
        }
        let mut next = cursor.clone();
        let mut records: Vec<Vec<lienthong_bus::EventDraft>> = Vec::new();
        let mut memories = Vec::new();
        for p in packages {
            let t = ckan::ckan_time(&p.metadata_modified);
            let since_t = cursor.since.as_deref().and_then(ckan::ckan_time);
            if let (Some(t), Some(s)) = (t, since_t) {
                if t < s || (t == s && cursor.seen.contains(&p.id)) {
                    // The same revision, listed again: nothing new.
                    self.outcomes.duplicate.inc();
                    continue;
                }
            }
            let key = format!("dataset.{}", hashed(&p.id));
            let memory: DatasetMemory = self.state.get(&key).await?.unwrap_or_default();
            let (event, after) = ckan::map(&p, &memory);
            records.push(event.into_iter().collect());
            if after != memory {
                memories.push((key, after));
            }
            let newer = next
                .since
                .as_deref()
                .and_then(ckan::ckan_time)
                .is_none_or(|s| t.is_some_and(|t| t > s));
            if newer {
                next.since = Some(p.metadata_modified.clone());
                next.seen.clear();
            }
            next.seen.insert(p.id.clone());
        }
        let (n, events) = crate::publish::tagged(records);
        let (mut tally, each) = crate::publish::publish_records(&self.publisher, n, events).await?;
        each.into_iter().for_each(|o| o.count(&self.outcomes));
        tally.dead_lettered += unreadable;
        for (key, m) in memories {
            self.state.put(&key, &m).await?;
        }
        if next != cursor {
            self.state.put("cursor", &next).await?;
        }
        Ok(tally)
    }

    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), AdapterError> {
        let interval = Duration::from_secs(self.config.poll_interval_secs.max(1));
        crate::poll::every(SUBSYSTEM, "poll", interval, shutdown, || async {
            let t = self.poll_once().await?;
            if t.published > 0 {
                info!(
                    adapter = SUBSYSTEM,
                    published = t.published,
                    dead_lettered = t.dead_lettered,
                    "catalogue"
                );
            }
            Ok(())
        })
        .await
    }
}
