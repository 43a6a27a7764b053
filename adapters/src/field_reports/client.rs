//! HTTP client for an Open311 GeoReport v2 endpoint.

use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use url::Url;

use super::open311::{Open311Error, Service};
use crate::error::AdapterError;

/// Which list to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    Requests,
    Updates,
}

impl Feed {
    pub fn path(self) -> &'static str {
        match self {
            Self::Requests => "requests.json",
            Self::Updates => "servicerequestupdates.json",
        }
    }
    /// The field the time window applies to.
    pub fn time_field(self) -> &'static str {
        match self {
            Self::Requests => "requested_datetime",
            Self::Updates => "updated_datetime",
        }
    }
    pub fn id_field(self) -> &'static str {
        match self {
            Self::Requests => "service_request_id",
            Self::Updates => "update_id",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Open311Client {
    http: reqwest::Client,
    base: Url,
    api_key: Option<String>,
}

impl Open311Client {
    pub fn new(
        base: &Url,
        timeout: Duration,
        api_key: Option<String>,
    ) -> Result<Self, AdapterError> {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("lienthong/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AdapterError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            api_key,
        })
    }

    fn url(&self, path: &str) -> Url {
        let mut u = self.base.join(path).unwrap_or_else(|_| self.base.clone());
        if let Some(k) = &self.api_key {
            u.query_pairs_mut().append_pair("api_key", k);
        }
        u
    }

    /// GETs JSON; `Ok(None)` on 404.
    async fn get(&self, url: Url) -> Result<Option<Value>, AdapterError> {
        let shown = {
            let mut u = url.clone();
            u.set_query(None);
            u.to_string()
        };
        let source = |reason: String| AdapterError::Source {
            url: shown.clone(),
            reason,
        };
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| source(e.to_string()))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = resp.bytes().await.map_err(|e| source(e.to_string()))?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<Vec<Open311Error>>(&body)
                .ok()
                .and_then(|v| v.into_iter().next())
                .map(|e| format!("{} {}", e.code, e.description))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(source(format!("HTTP {status}: {detail}")));
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| source(format!("not JSON: {e}")))
    }

    pub async fn services(&self) -> Result<Vec<Service>, AdapterError> {
        let url = self.url("services.json");
        let shown = url.to_string();
        let v = self.get(url).await?.ok_or_else(|| AdapterError::Source {
            url: shown.clone(),
            reason: "404: is this an Open311 endpoint?".into(),
        })?;
        serde_json::from_value(v).map_err(|e| AdapterError::Source {
            url: shown,
            reason: format!("services.json is not a list of services: {e}"),
        })
    }

    /// One page of a feed, oldest first, in the window `[start, end]`.
    pub async fn list(
        &self,
        feed: Feed,
        start: DateTime<FixedOffset>,
        end: DateTime<FixedOffset>,
        page: usize,
        page_size: usize,
    ) -> Result<Vec<Value>, AdapterError> {
        let mut url = self.url(feed.path());
        url.query_pairs_mut()
            .append_pair("start_date", &start.to_rfc3339())
            .append_pair("end_date", &end.to_rfc3339())
            .append_pair("page", &page.to_string())
            .append_pair("page_size", &page_size.to_string());
        let shown = feed.path().to_string();
        match self.get(url).await? {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(AdapterError::Source {
                url: shown,
                reason: format!(
                    "expected a JSON list, got {}",
                    other.to_string().chars().take(100).collect::<String>()
                ),
            }),
        }
    }

    /// One request by id (`requests/{id}.json`), `None` if the system does not know it.
    pub async fn request(&self, id: &str) -> Result<Option<Value>, AdapterError> {
        let mut url = self.url("requests/");
        url.path_segments_mut()
            .map_err(|_| AdapterError::Config("endpoint cannot be a base URL".into()))?
            .pop_if_empty()
            .push(&format!("{id}.json"));
        Ok(match self.get(url).await? {
            Some(Value::Array(mut items)) if !items.is_empty() => Some(items.swap_remove(0)),
            Some(Value::Object(o)) => Some(Value::Object(o)),
            _ => None,
        })
    }
}
