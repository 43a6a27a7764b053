//! A simulator of the field-reports system: an HTTP server speaking Open311 GeoReport v2
//! (`services.json`, `requests.json`, `requests/{id}.json`) and the
//! `servicerequestupdates.json` extension, serving the fixtures as they are and, on demand,
//! a synthetic year. Records can be added while it runs (tests of late arrivals).
//!
//! Queries: `start_date`/`end_date` (RFC 3339; on `requested_datetime` for requests, on
//! `updated_datetime` for updates), `page` (from 1) and `page_size` (≤ 1000), plus
//! `service_request_id` (comma-separated), `status` and `service_code` for requests.
//! Results are in ascending time order.

use std::sync::{Arc, RwLock};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use serde_json::{json, Value};

use super::fixtures;
use super::synthetic::generate_year;

/// What the simulated system holds.
#[derive(Debug, Clone, Default)]
pub struct Open311Data {
    pub services: Vec<Value>,
    pub requests: Vec<Value>,
    pub updates: Vec<Value>,
}

impl Open311Data {
    /// The fixtures as they are.
    pub fn fixtures() -> Self {
        Self {
            services: fixtures::raw_services(),
            requests: fixtures::raw_requests(),
            updates: fixtures::raw_updates(),
        }
    }

    /// The fixtures plus a synthetic year of `count` reports (ids never collide).
    pub fn demo(year: i32, count: usize, seed: u64) -> Self {
        let mut data = Self::fixtures();
        let taken: Vec<String> = data
            .requests
            .iter()
            .chain(data.updates.iter())
            .filter_map(|r| r["service_request_id"].as_str().map(str::to_string))
            .collect();
        let y = generate_year(year, count, seed, &taken);
        data.requests.extend(y.requests);
        data.updates.extend(y.updates);
        data
    }
}

/// The simulator; clone it to add records while it serves.
#[derive(Debug, Clone)]
pub struct Open311Simulator {
    data: Arc<RwLock<Open311Data>>,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    start_date: Option<String>,
    end_date: Option<String>,
    page: Option<usize>,
    page_size: Option<usize>,
    service_request_id: Option<String>,
    status: Option<String>,
    service_code: Option<String>,
}

fn error(code: StatusCode, description: &str) -> Response {
    (
        code,
        Json(json!([{"code": code.as_u16(), "description": description}])),
    )
        .into_response()
}

fn time_of(v: &Value, field: &str) -> Option<DateTime<FixedOffset>> {
    v.get(field)?
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
}

/// A bad query, answered as an Open311 400.
struct BadQuery(String);

fn parse_bound(name: &str, v: &Option<String>) -> Result<Option<DateTime<FixedOffset>>, BadQuery> {
    match v {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(Some)
            .map_err(|_| BadQuery(format!("{name} must be an ISO 8601 date-time, got {s:?}"))),
    }
}

fn list(items: &[Value], time_field: &str, q: &ListQuery) -> Result<Vec<Value>, BadQuery> {
    let start = parse_bound("start_date", &q.start_date)?;
    let end = parse_bound("end_date", &q.end_date)?;
    let ids: Option<Vec<&str>> = q
        .service_request_id
        .as_deref()
        .map(|s| s.split(',').collect());
    let mut out: Vec<(DateTime<FixedOffset>, String, &Value)> = items
        .iter()
        .filter_map(|v| {
            let t = time_of(v, time_field)?;
            let key = v
                .get("update_id")
                .or_else(|| v.get("service_request_id"))
                .map(|k| k.to_string())
                .unwrap_or_default();
            Some((t, key, v))
        })
        .filter(|(t, _, _)| start.is_none_or(|s| *t >= s) && end.is_none_or(|e| *t <= e))
        .filter(|(_, _, v)| {
            ids.as_ref().is_none_or(|ids| {
                ids.iter()
                    .any(|i| v["service_request_id"].as_str() == Some(i))
            }) && q
                .status
                .as_ref()
                .is_none_or(|s| v["status"].as_str() == Some(s.as_str()))
                && q.service_code
                    .as_ref()
                    .is_none_or(|s| v["service_code"].as_str() == Some(s.as_str()))
        })
        .collect();
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let size = q.page_size.unwrap_or(100).clamp(1, 1000);
    let page = q.page.unwrap_or(1).max(1);
    Ok(out
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|(_, _, v)| v.clone())
        .collect())
}

impl Open311Simulator {
    pub fn new(data: Open311Data) -> Self {
        Self {
            data: Arc::new(RwLock::new(data)),
        }
    }

    pub fn add_request(&self, request: Value) {
        self.data.write().expect("lock").requests.push(request);
    }

    pub fn add_update(&self, update: Value) {
        self.data.write().expect("lock").updates.push(update);
    }

    /// Distinct report ids the system knows (requests and updates).
    pub fn report_ids(&self) -> std::collections::BTreeSet<String> {
        let d = self.data.read().expect("lock");
        d.requests
            .iter()
            .chain(d.updates.iter())
            .filter_map(|v| v["service_request_id"].as_str().map(str::to_string))
            .collect()
    }

    pub fn snapshot(&self) -> Open311Data {
        self.data.read().expect("lock").clone()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/services.json", get(services))
            .route("/requests.json", get(requests))
            .route("/requests/{file}", get(request_by_id))
            .route("/servicerequestupdates.json", get(updates))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(self.clone())
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

async fn services(State(sim): State<Open311Simulator>) -> Response {
    Json(sim.data.read().expect("lock").services.clone()).into_response()
}

async fn requests(State(sim): State<Open311Simulator>, Query(q): Query<ListQuery>) -> Response {
    let data = sim.data.read().expect("lock");
    match list(&data.requests, "requested_datetime", &q) {
        Ok(v) => Json(v).into_response(),
        Err(BadQuery(why)) => error(StatusCode::BAD_REQUEST, &why),
    }
}

async fn request_by_id(State(sim): State<Open311Simulator>, Path(file): Path<String>) -> Response {
    let Some(id) = file.strip_suffix(".json") else {
        return error(StatusCode::NOT_FOUND, "only the .json format is served");
    };
    let data = sim.data.read().expect("lock");
    match data
        .requests
        .iter()
        .find(|r| r["service_request_id"].as_str() == Some(id))
    {
        Some(r) => Json(json!([r])).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("no service request {id}")),
    }
}

async fn updates(State(sim): State<Open311Simulator>, Query(q): Query<ListQuery>) -> Response {
    let data = sim.data.read().expect("lock");
    match list(&data.updates, "updated_datetime", &q) {
        Ok(v) => Json(v).into_response(),
        Err(BadQuery(why)) => error(StatusCode::BAD_REQUEST, &why),
    }
}
