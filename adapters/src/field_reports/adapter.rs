//! The field-reports adapter: polls Open311, maps, publishes, remembers where it is.
//!
//! State lives in the `ADAPTER_STATE` bucket, so the process itself is stateless:
//! - `field_reports.cursor`: for each feed, the newest time read and the ids read at that
//!   exact time (the next poll starts there, inclusive, and skips those ids), plus the
//!   reports known only from updates (`pending`), looked up again each poll;
//! - `field_reports.report.<hash>`: per report, whether it was submitted and its newest
//!   status (for `previous_status` and reopen detection).
//!
//! A poll publishes first and saves state after every PubAck. If it stops anywhere in
//! between, the next poll plans the same events with the same ids, and the server's
//! duplicate window drops what was stored already: no duplicate, no gap.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use lienthong_bus::{DeadLetter, Outcomes, Publisher};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};
use url::Url;

use super::client::{Feed, Open311Client};
use super::mapping::{Mapper, Record, ReportMemory, SUBSYSTEM};
use super::open311::{ServiceRequest, ServiceRequestUpdate};
use crate::error::AdapterError;
use crate::state::{hashed, AdapterState};
use crate::wards::Wards;
use crate::AdapterContext;

const fn default_poll_interval_secs() -> u64 {
    30
}
const fn default_page_size() -> usize {
    200
}
const fn default_max_records_per_poll() -> usize {
    2000
}
const fn default_request_timeout_secs() -> u64 {
    20
}
fn default_source() -> String {
    "urn:lienthong:phanthiet:field_reports".to_string()
}
fn default_start_date() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2000-01-01T00:00:00+07:00").expect("constant date")
}

/// Configuration of the field-reports adapter (`[field_reports]` in an adapter config).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldReportsConfig {
    /// Base URL of the Open311 GeoReport v2 endpoint (the folder holding `services.json`).
    pub endpoint: Url,
    /// CloudEvents `source` of the events: a URI naming this subsystem instance.
    #[serde(default = "default_source")]
    pub source: String,
    /// Names this instance's state in `ADAPTER_STATE` (`[a-z0-9_-]`); derived from `source`
    /// when not given. Two instances of one adapter must differ in it.
    #[serde(default)]
    pub instance: Option<String>,
    /// Seconds between polls once the feed is caught up.
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    /// Records asked for per page.
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// At most this many records per feed in one poll (a backlog is read over several).
    #[serde(default = "default_max_records_per_poll")]
    pub max_records_per_poll: usize,
    /// Where to start on the very first run (later runs continue from the cursor).
    #[serde(default = "default_start_date")]
    pub start_date: DateTime<FixedOffset>,
    /// Open311 `api_key`, if the endpoint wants one.
    #[serde(default)]
    pub api_key: Option<String>,
    /// HTTP timeout per request, in seconds.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
}

impl FieldReportsConfig {
    /// A configuration with defaults for everything but the endpoint.
    pub fn new(endpoint: Url) -> Self {
        Self {
            endpoint,
            source: default_source(),
            instance: None,
            poll_interval_secs: default_poll_interval_secs(),
            page_size: default_page_size(),
            max_records_per_poll: default_max_records_per_poll(),
            start_date: default_start_date(),
            api_key: None,
            request_timeout_secs: default_request_timeout_secs(),
        }
    }

    fn validate(&self) -> Result<(), AdapterError> {
        if !matches!(self.endpoint.scheme(), "http" | "https") {
            return Err(AdapterError::Config(format!(
                "endpoint {} must be http(s)",
                self.endpoint
            )));
        }
        if self.source.parse::<url::Url>().is_err() {
            return Err(AdapterError::Config(format!(
                "source {:?} must be a URI",
                self.source
            )));
        }
        if self.page_size == 0 || self.page_size > 1000 {
            return Err(AdapterError::Config("page_size must be 1..=1000".into()));
        }
        if self.max_records_per_poll < self.page_size {
            return Err(AdapterError::Config(
                "max_records_per_poll must be at least page_size".into(),
            ));
        }
        Ok(())
    }
}

/// Where one feed stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct FeedCursor {
    since: Option<DateTime<FixedOffset>>,
    seen: BTreeSet<String>,
}

impl FeedCursor {
    fn admits(&self, t: DateTime<FixedOffset>, id: &str) -> bool {
        match self.since {
            None => true,
            Some(s) => t > s || (t == s && !self.seen.contains(id)),
        }
    }
    fn advance(&mut self, t: DateTime<FixedOffset>, id: &str) {
        if self.since.is_none_or(|s| t > s) {
            self.since = Some(t);
            self.seen.clear();
        }
        if self.since == Some(t) {
            self.seen.insert(id.to_string());
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Cursor {
    requests: FeedCursor,
    updates: FeedCursor,
    /// Reports known only from updates, looked up by id every poll.
    pending: BTreeSet<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredMemory {
    report_id: String,
    #[serde(flatten)]
    memory: ReportMemory,
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub requests: usize,
    pub updates: usize,
    pub published: usize,
    pub duplicates: usize,
    pub dead_lettered: usize,
    pub pending: usize,
    /// A feed had more than `max_records_per_poll`: poll again at once.
    pub more: bool,
}

pub struct FieldReportsAdapter {
    config: FieldReportsConfig,
    client: Open311Client,
    publisher: Publisher,
    state: AdapterState,
    mapper: Mapper,
    cache: HashMap<String, ReportMemory>,
    outcomes: Outcomes,
}

const CURSOR: &str = "cursor";
/// Fields of an Open311 request that hold the reporter's personal data.
const PERSONAL_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "phone",
    "email",
    "account_id",
    "device_id",
];

fn memory_key(report_id: &str) -> String {
    format!("report.{}", hashed(report_id))
}

impl FieldReportsAdapter {
    /// Validates the configuration, binds to `ADAPTER_STATE` and checks the endpoint.
    pub async fn build(
        config: FieldReportsConfig,
        ctx: AdapterContext,
    ) -> Result<Self, AdapterError> {
        config.validate()?;
        let client = Open311Client::new(
            &config.endpoint,
            Duration::from_secs(config.request_timeout_secs),
            config.api_key.clone(),
        )?;
        let instance = crate::state::instance_name(config.instance.as_deref(), &config.source)?;
        let state = AdapterState::open(&ctx, SUBSYSTEM, &instance).await?;
        let services = client.services().await?;
        let mapper = Mapper::new(services, Wards::phan_thiet());
        let publisher = ctx.publisher(config.source.clone());
        Ok(Self {
            config,
            client,
            publisher,
            state,
            mapper,
            cache: HashMap::new(),
            outcomes: Outcomes::new(&ctx.metrics, SUBSYSTEM),
        })
    }

    /// What became of every request and update read (`lienthong_records_total{path="field_reports"}`).
    pub fn outcomes(&self) -> &Outcomes {
        &self.outcomes
    }

    /// The endpoint answers `services.json`.
    pub async fn healthcheck(&self) -> Result<(), AdapterError> {
        self.client.services().await.map(|_| ())
    }

    /// Polls until `shutdown` completes. Errors are logged and retried with backoff.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), AdapterError> {
        tokio::pin!(shutdown);
        let interval = Duration::from_secs(self.config.poll_interval_secs.max(1));
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = match self.poll_once().await {
                Ok(r) => {
                    backoff = Duration::from_secs(1);
                    if r.published + r.dead_lettered > 0 {
                        info!(
                            adapter = SUBSYSTEM,
                            requests = r.requests,
                            updates = r.updates,
                            published = r.published,
                            duplicates = r.duplicates,
                            dead_lettered = r.dead_lettered,
                            pending = r.pending,
                            "poll"
                        );
                    }
                    if r.more {
                        Duration::ZERO
                    } else {
                        interval
                    }
                }
                Err(e) if e.is_transient() => {
                    warn!(adapter = SUBSYSTEM, error = %e, retry_in = ?backoff, "poll failed; will retry");
                    let w = backoff;
                    backoff = (backoff * 2).min(interval.max(Duration::from_secs(60)));
                    w
                }
                Err(e) => return Err(e),
            };
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One poll: read both feeds from the cursor, publish, save state.
    pub async fn poll_once(&mut self) -> Result<PollReport, AdapterError> {
        let result = self.poll_inner().await;
        if result.is_err() {
            // The in-memory view may be ahead of what was stored: reload from the bucket.
            self.cache.clear();
        }
        result
    }

    async fn poll_inner(&mut self) -> Result<PollReport, AdapterError> {
        let cursor = self.load_cursor().await?;
        let now = Utc::now().fixed_offset();
        let (raw_requests, req_cursor, more_req) =
            self.fetch(Feed::Requests, &cursor.requests, now).await?;
        let (raw_updates, upd_cursor, more_upd) =
            self.fetch(Feed::Updates, &cursor.updates, now).await?;
        // Updates are immutable records: one read before is not read again. A request read
        // before and listed again may carry a newer state: it is planned again (and brings
        // an event only if its state changed).
        let raw_updates: Vec<Value> = raw_updates
            .into_iter()
            .filter_map(|(v, new)| new.then_some(v))
            .collect();
        let raw_requests: Vec<Value> = raw_requests.into_iter().map(|(v, _)| v).collect();
        let mut report = PollReport {
            requests: raw_requests.len(),
            updates: raw_updates.len(),
            more: more_req || more_upd,
            ..Default::default()
        };

        let mut requests: Vec<ServiceRequest> =
            self.read(Feed::Requests, raw_requests, &mut report).await?;
        let updates: Vec<ServiceRequestUpdate> =
            self.read(Feed::Updates, raw_updates, &mut report).await?;

        // Everything this poll touches, as remembered.
        let mut ids: BTreeSet<String> = requests
            .iter()
            .map(|r| r.service_request_id.clone())
            .collect();
        ids.extend(updates.iter().map(|u| u.service_request_id.clone()));
        ids.extend(cursor.pending.iter().cloned());
        let mut memory = HashMap::new();
        for id in &ids {
            memory.insert(id.clone(), self.memory(id).await?);
        }
        // Reports seen only through updates: ask for them by id.
        let in_batch: BTreeSet<String> = requests
            .iter()
            .map(|r| r.service_request_id.clone())
            .collect();
        for id in &ids {
            if memory[id].submitted || in_batch.contains(id) {
                continue;
            }
            if let Some(raw) = self.client.request(id).await? {
                requests.extend(
                    self.read::<ServiceRequest>(Feed::Requests, vec![raw], &mut report)
                        .await?,
                );
            }
        }
        let before = memory.clone();
        let planned = self.mapper.plan_records(&requests, &updates, &mut memory);
        let n = requests.len();
        let events = planned
            .into_iter()
            .map(|(record, d)| match record {
                Record::Request(i) => (i, d),
                Record::Update(j) => (n + j, d),
            })
            .collect();
        let (tally, each) =
            crate::publish::publish_records(&self.publisher, n + updates.len(), events).await?;
        each.into_iter().for_each(|o| o.count(&self.outcomes));
        report.published += tally.published;
        report.duplicates += tally.duplicates;
        report.dead_lettered += tally.dead_lettered;

        for (id, m) in &memory {
            if before.get(id) != Some(m) {
                self.save_memory(id, m).await?;
            }
        }
        let pending: BTreeSet<String> = memory
            .iter()
            .filter(|(_, m)| !m.submitted)
            .map(|(id, _)| id.clone())
            .collect();
        report.pending = pending.len();
        let next = Cursor {
            requests: req_cursor,
            updates: upd_cursor,
            pending,
        };
        if next != cursor {
            self.save_cursor(&next).await?;
        }
        self.cache.extend(memory);
        Ok(report)
    }

    /// Reads a feed from `cursor`, page by page (keyset on time), up to the poll limit. Each
    /// record comes with whether it is new to the cursor (`false`: read before, listed again).
    async fn fetch(
        &self,
        feed: Feed,
        cursor: &FeedCursor,
        now: DateTime<FixedOffset>,
    ) -> Result<(Vec<(Value, bool)>, FeedCursor, bool), AdapterError> {
        let mut c = cursor.clone();
        let mut out = Vec::new();
        // A page boundary shows the records at the cursor's time again: each once a poll
        // (a record listed again with other content is another record).
        let mut listed = std::collections::HashSet::new();
        let mut page = 1;
        loop {
            let start = c.since.unwrap_or(self.config.start_date);
            let items = self
                .client
                .list(feed, start, now, page, self.config.page_size)
                .await?;
            let n = items.len();
            let before = c.since;
            for item in items {
                let t = item
                    .get(feed.time_field())
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
                let id = item.get(feed.id_field()).map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                match (t, id) {
                    (Some(t), Some(id)) if c.admits(t, &id) => {
                        c.advance(t, &id);
                        listed.insert(item.to_string());
                        out.push((item, true));
                    }
                    (Some(_), Some(_)) => {
                        if listed.insert(item.to_string()) {
                            out.push((item, false));
                        }
                    }
                    // No usable time or id: the record cannot be placed in the feed.
                    _ => out.push((item, true)),
                }
            }
            if n < self.config.page_size {
                return Ok((out, c, false));
            }
            if out.iter().filter(|(_, new)| *new).count() >= self.config.max_records_per_poll {
                return Ok((out, c, true));
            }
            page = if c.since == before { page + 1 } else { 1 };
        }
    }

    /// Reads raw records of a feed; what cannot be read goes to the DLQ (and is counted).
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        feed: Feed,
        raws: Vec<Value>,
        report: &mut PollReport,
    ) -> Result<Vec<T>, AdapterError> {
        let mut out = Vec::with_capacity(raws.len());
        for raw in raws {
            match T::deserialize(&raw) {
                Ok(r) => out.push(r),
                Err(e) => {
                    if self.dead_letter_record(feed, raw, e.to_string()).await? {
                        report.dead_lettered += 1;
                        self.outcomes.dead_lettered.inc();
                    } else {
                        self.outcomes.duplicate.inc();
                    }
                }
            }
        }
        Ok(out)
    }

    /// Keeps an unreadable record in the DLQ (without the reporter's personal fields); `false`
    /// when it was kept already.
    async fn dead_letter_record(
        &self,
        feed: Feed,
        mut raw: Value,
        reason: String,
    ) -> Result<bool, AdapterError> {
        if let Some(obj) = raw.as_object_mut() {
            for f in PERSONAL_FIELDS {
                obj.remove(*f);
            }
            for v in obj.values_mut() {
                if let Value::String(s) = v {
                    *s = crate::pii::mask(s);
                }
            }
        }
        let id = raw
            .get(feed.id_field())
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_else(|| "unknown".into());
        let ty = match feed {
            Feed::Requests => "vn.egov.field_reports.report.submitted",
            Feed::Updates => "vn.egov.field_reports.report.status_changed",
        };
        let letter = DeadLetter::unreadable(
            self.publisher.source(),
            ty,
            &id,
            raw,
            format!("{} record {id} could not be read: {reason}", feed.path()),
        );
        // Once per record, though the source lists it on every poll.
        if !self
            .state
            .first_time(&format!(
                "unreadable.{}",
                hashed(&letter.original.to_string())
            ))
            .await?
        {
            return Ok(false);
        }
        warn!(adapter = SUBSYSTEM, record = %id, %reason, "unreadable record kept in the DLQ");
        self.publisher.keep_dead_letter(&letter).await?;
        Ok(true)
    }

    async fn memory(&mut self, report_id: &str) -> Result<ReportMemory, AdapterError> {
        if let Some(m) = self.cache.get(report_id) {
            return Ok(m.clone());
        }
        let m = self
            .state
            .get::<StoredMemory>(&memory_key(report_id))
            .await?
            .map(|s| s.memory)
            .unwrap_or_default();
        self.cache.insert(report_id.to_string(), m.clone());
        Ok(m)
    }

    async fn save_memory(
        &self,
        report_id: &str,
        memory: &ReportMemory,
    ) -> Result<(), AdapterError> {
        let stored = StoredMemory {
            report_id: report_id.to_string(),
            memory: memory.clone(),
        };
        self.state.put(&memory_key(report_id), &stored).await
    }

    async fn load_cursor(&self) -> Result<Cursor, AdapterError> {
        Ok(self.state.get(CURSOR).await?.unwrap_or_default())
    }

    async fn save_cursor(&self, cursor: &Cursor) -> Result<(), AdapterError> {
        self.state.put(CURSOR, cursor).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../../examples/field_reports.toml");
        let cfg: crate::AdapterConfig = toml::from_str(text).unwrap();
        let crate::AdapterConfig::FieldReports(c) = cfg else {
            panic!("not a field_reports config")
        };
        c.validate().unwrap();
        assert_eq!(c.source, "urn:lienthong:phanthiet:field_reports");
        assert!(toml::from_str::<crate::AdapterConfig>(
            "[field_reports]\nendpoint = \"http://x/\"\nbogus = 1\n"
        )
        .is_err());
    }

    #[test]
    fn cursors_skip_what_was_read_at_the_boundary() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
        let mut c = FeedCursor::default();
        assert!(c.admits(t("2023-01-01T00:00:00Z"), "a"));
        c.advance(t("2023-01-01T00:00:00Z"), "a");
        assert!(!c.admits(t("2023-01-01T00:00:00Z"), "a"));
        assert!(c.admits(t("2023-01-01T00:00:00Z"), "b"));
        assert!(!c.admits(t("2022-12-31T00:00:00Z"), "z"));
        c.advance(t("2023-01-01T00:00:00Z"), "b");
        assert_eq!(c.seen.len(), 2);
        c.advance(t("2023-01-02T00:00:00Z"), "c");
        assert_eq!(c.seen.len(), 1);
    }
}
