//! The dashboard's page and endpoints:
//!
//! - `/` the page, `/assets/dashboard.{js,css}`, `/assets/favicon.svg` its script, style and
//!   icon (no CDN, no network);
//! - `GET /api/v1/dashboard?year=YYYY&ward=SLUG` every panel's rows;
//! - `GET /api/v1/dashboard/{panel}` one panel's rows, as JSON or CSV (`?format=csv`);
//! - `GET /api/v1/live` Server-Sent Events: what the read models fold, as they commit it;
//! - `GET /api/v1/integrity` the last verification of each audited stream, and alarms.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::{panels, Panels, Trees};
use crate::api::{internal, problem, shown, wants_csv, AppState};
use crate::reference;

/// The panels that can be asked for alone.
pub const PANELS: &[&str] = &[
    "wards",
    "trends",
    "overdue",
    "oldest_open",
    "categories",
    "statuses",
    "applications",
    "agencies",
];

pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/", get(page))
        .route("/assets/dashboard.js", get(script))
        .route("/assets/dashboard.css", get(style))
        .route("/assets/favicon.svg", get(icon))
        .route("/favicon.ico", get(icon))
        .route("/api/v1/dashboard", get(all))
        .route("/api/v1/dashboard/{panel}", get(one))
        .route("/api/v1/live", get(live))
        .route("/api/v1/integrity", get(integrity))
}

async fn page() -> Response {
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Html(include_str!("page/dashboard.html")),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("page/dashboard.js"),
    )
        .into_response()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("page/dashboard.css"),
    )
        .into_response()
}

async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        include_str!("page/favicon.svg"),
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct Q {
    year: Option<String>,
    ward: Option<String>,
    format: Option<String>,
}

/// The panels asked for, or a problem answer naming what was wrong.
fn compute(s: &AppState, q: &Q) -> Result<Panels, Box<Response>> {
    let ward = match q.ward.as_deref().filter(|w| !w.is_empty()) {
        None => None,
        Some(slug) => Some(reference::ward(slug).ok_or_else(|| {
            Box::new(problem(
                StatusCode::BAD_REQUEST,
                "no such ward",
                &format!("ward={:?} is not one of the 18 wards and communes; see /api/v1/dashboard/wards", shown(slug)),
            ))
        })?),
    };
    let year = crate::api::year_param(q.year.as_deref())?;
    let read = || -> crate::Result<Panels> {
        let years = crate::http::kpi::years(s)?;
        let year = year.or_else(|| years.last().cloned());
        let trees = Trees {
            field_reports: s.tree(crate::field_reports::NAME)?,
            documents: s.tree(crate::documents::NAME)?,
            sso: s.tree(crate::sso::NAME)?,
            meetings: s.tree(crate::meetings::NAME)?,
        };
        panels(&trees, years, year, ward, Utc::now())
    };
    read().map_err(|e| Box::new(internal(e)))
}

/// [`compute`] off the async workers (it reads every report).
async fn computed(s: AppState, q: Q) -> Result<Panels, Box<Response>> {
    tokio::task::spawn_blocking(move || compute(&s, &q))
        .await
        .unwrap_or_else(|e| Err(Box::new(internal(e))))
}

async fn all(State(s): State<AppState>, Query(q): Query<Q>) -> Response {
    match computed(s, q).await {
        Ok(p) => Json(p).into_response(),
        Err(r) => *r,
    }
}

async fn one(
    State(s): State<AppState>,
    Path(panel): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Q>,
) -> Response {
    let csv = panel.ends_with(".csv") || wants_csv(&headers, q.format.as_deref());
    let panel = panel.strip_suffix(".csv").unwrap_or(&panel).to_string();
    if !PANELS.contains(&panel.as_str()) {
        return problem(
            StatusCode::NOT_FOUND,
            "no such panel",
            &format!("{:?}; the panels are {}", shown(&panel), PANELS.join(", ")),
        );
    }
    let p = match computed(s, q).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let name = format!(
        "{panel}-{}{}",
        p.year.as_deref().unwrap_or("all"),
        p.ward
            .as_ref()
            .map(|w| format!("-{}", w.slug))
            .unwrap_or_default()
    );
    match panel.as_str() {
        "wards" => rows(&name, &p.wards, csv),
        "trends" => rows(&name, &p.trends, csv),
        "overdue" => rows(&name, &p.overdue, csv),
        "oldest_open" => rows(&name, &p.oldest_open, csv),
        "categories" => rows(&name, &p.categories, csv),
        "statuses" => rows(&name, &p.statuses, csv),
        "applications" => rows(&name, &p.applications, csv),
        _ => rows(&name, &p.agencies, csv),
    }
}

/// Rows as a JSON array, or as CSV with a header of the fields' names.
fn rows<T: Serialize>(name: &str, rows: &[T], csv: bool) -> Response {
    if !csv {
        return Json(rows).into_response();
    }
    let written = (|| -> Result<Vec<u8>, String> {
        // Written once in the rows' field order, then every cell made safe.
        let mut raw = csv::Writer::from_writer(Vec::new());
        for r in rows {
            raw.serialize(r).map_err(|e| e.to_string())?;
        }
        let raw = raw.into_inner().map_err(|e| e.to_string())?;
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(raw.as_slice());
        for record in reader.records() {
            let record = record.map_err(|e| e.to_string())?;
            w.write_record(record.iter().map(cell))
                .map_err(|e| e.to_string())?;
        }
        w.into_inner().map_err(|e| e.to_string())
    })();
    match written {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.csv\""),
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

/// One CSV cell. Names come from events: a text a spreadsheet would take for a formula
/// (`=`, `+`, `-`, `@`, tab, carriage return first; not a number) is kept as text with a
/// leading `'`.
fn cell(v: &str) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) && v.parse::<f64>().is_err() {
        format!("'{v}")
    } else {
        v.to_string()
    }
}

/// Server-Sent Events: first the newest events already folded (`recent`), then one `event`
/// per event folded from now on (JSON: stream, sequence, type, time, ward), and `lagged`
/// when this listener fell behind and missed some.
async fn live(State(s): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (recent, rx) = s.metrics.live.subscribe();
    let frame = |kind: &'static str, e: &super::live::LiveEvent| {
        Event::default()
            .event(kind)
            .id(format!("{}:{}", e.stream, e.sequence))
            .json_data(e)
            .unwrap_or_else(|_| Event::default().comment("unencodable"))
    };
    let first = futures::stream::iter(recent.into_iter().map(move |e| Ok(frame("recent", &e))));
    let then = futures::stream::unfold(rx, move |mut rx| async move {
        let event = match rx.recv().await {
            Ok(e) => frame("event", &e),
            Err(RecvError::Lagged(n)) => Event::default()
                .event("lagged")
                .data(json!({ "missed": n }).to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    // Ends when the service shuts down (else a graceful shutdown would wait for it forever).
    let mut stopping = s.stopping.clone();
    let until_stopped = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    Sse::new(first.chain(then).take_until(until_stopped))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The last verification of each audited stream (and whether its read model is ahead of it),
/// and the replay alarms raised now ([`crate::guard`]).
async fn integrity(State(s): State<AppState>) -> Response {
    let verified = s.integrity.as_ref().map(|i| i.latest());
    let replay = s.metrics.current_alarms();
    // Certificates in use that expire within 30 days (or have): warned on the panel.
    let certificates: Vec<_> = crate::api::certificate_states(&s.certificates)
        .into_iter()
        .filter(|c| c.warning.is_some())
        .collect();
    // Components down now (a store's full disk, a server being restarted).
    let down = s.health.as_ref().map(|h| h.down_now()).unwrap_or_default();
    let alarms = verified
        .iter()
        .flatten()
        .filter(|v| v.alarm.is_some())
        .count()
        + replay.len()
        + certificates.len()
        + down.len();
    Json(json!({
        "verifying": verified.is_some(),
        "streams": verified.unwrap_or_default(),
        "replay_alarms": replay,
        "certificates": certificates,
        "down": down,
        "alarms": alarms,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn what_a_caller_sent_is_repeated_short() {
        assert_eq!(crate::api::shown("mui-ne"), "mui-ne");
        let long = "ạ".repeat(20_000);
        assert_eq!(crate::api::shown(&long).chars().count(), 65);
    }

    #[test]
    fn a_cell_a_spreadsheet_would_run_is_kept_as_text() {
        assert_eq!(
            cell("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("+84 cmd"), "'+84 cmd");
        assert_eq!(cell("-3.5"), "-3.5", "a number stays a number");
        assert_eq!(cell("Phường Phú Thủy"), "Phường Phú Thủy");
    }
}
