//! The HTTP API: read models as JSON (and CSV), the schemas, health, metrics, dashboard.
//!
//! - `GET /api/v1/field-reports` — filters `ward`, `status`, `category`; paging `limit`,
//!   `offset`; JSON, or CSV with `Accept: text/csv` (or `?format=csv`).
//! - `GET /api/v1/field-reports/stats` — totals by status, ward and category; resolution.
//! - `GET /api/v1/field-reports/{id}` — one report (the id percent-encoded).
//! - `GET /schemas/` and `GET /schemas/{path}` — the schema registry.
//! - `GET /healthz`, `GET /metrics` (Prometheus text), `GET /` (the IOC dashboard).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lienthong_bus::SchemaRegistry;
use serde::Deserialize;
use serde_json::json;

use crate::field_reports::{FieldReportsView, ReportFilter, ReportView, NAME as FIELD_REPORTS};
use crate::runner::Metrics;
use crate::store::{checkpoint, ReadStore};

#[derive(Clone)]
pub struct AppState {
    pub store: ReadStore,
    pub registry: Arc<SchemaRegistry>,
    pub metrics: Arc<Metrics>,
    /// Serving a point-in-time copy: no live consumer.
    pub read_only: bool,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/field-reports", get(list_reports))
        .route("/api/v1/field-reports/stats", get(report_stats))
        .route("/api/v1/field-reports/{id}", get(one_report))
        .route("/schemas", get(schema_index))
        .route("/schemas/", get(schema_index))
        .route("/schemas/{*path}", get(schema_file))
        .with_state(state)
}

/// An RFC 9457 problem answer.
pub fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        Json(json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail})),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "read model unavailable",
        &e.to_string(),
    )
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

async fn healthz(State(s): State<AppState>) -> Response {
    match s.store.current(FIELD_REPORTS).and_then(|t| checkpoint(&t)) {
        Ok(cp) => Json(json!({
            "status": "ok",
            "read_only": s.read_only,
            "projections": {FIELD_REPORTS: {"stream_sequence": cp}},
        }))
        .into_response(),
        Err(e) => internal(e),
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let cp = s
        .store
        .current(FIELD_REPORTS)
        .and_then(|t| checkpoint(&t))
        .unwrap_or(0);
    let body = format!(
        "# HELP lienthong_replay_events_applied_total Events folded into read models.\n\
         # TYPE lienthong_replay_events_applied_total counter\n\
         lienthong_replay_events_applied_total {}\n\
         # HELP lienthong_replay_events_skipped_total Events not folded (not valid, unreadable).\n\
         # TYPE lienthong_replay_events_skipped_total counter\n\
         lienthong_replay_events_skipped_total {}\n\
         # HELP lienthong_replay_batches_total Atomic batches committed.\n\
         # TYPE lienthong_replay_batches_total counter\n\
         lienthong_replay_batches_total {}\n\
         # HELP lienthong_projection_checkpoint Last stream sequence applied, per projection.\n\
         # TYPE lienthong_projection_checkpoint gauge\n\
         lienthong_projection_checkpoint{{projection=\"{FIELD_REPORTS}\"}} {cp}\n",
        s.metrics.applied.load(Ordering::Relaxed),
        s.metrics.skipped.load(Ordering::Relaxed),
        s.metrics.batches.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(flatten)]
    filter: ReportFilter,
    limit: Option<usize>,
    offset: Option<usize>,
    format: Option<String>,
}

fn wants_csv(headers: &HeaderMap, format: Option<&str>) -> bool {
    format == Some("csv")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv"))
}

async fn list_reports(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let tree = match s.store.current(FIELD_REPORTS) {
        Ok(t) => t,
        Err(e) => return internal(e),
    };
    let all = match (FieldReportsView { tree: &tree }).list(&q.filter) {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let total = all.len();
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(usize::MAX);
    let page: Vec<ReportView> = all.into_iter().skip(offset).take(limit).collect();
    if wants_csv(&headers, q.format.as_deref()) {
        return match reports_csv(&page) {
            Ok(body) => (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"field-reports.csv\"",
                    ),
                ],
                body,
            )
                .into_response(),
            Err(e) => internal(e),
        };
    }
    Json(json!({"total": total, "offset": offset, "count": page.len(), "items": page}))
        .into_response()
}

fn reports_csv(reports: &[ReportView]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "report_id",
        "category",
        "category_name",
        "ward",
        "status",
        "status_at",
        "submitted",
        "requested_at",
        "resolved_at",
        "resolution_hours",
        "reopened",
        "agency_responsible",
        "address",
        "lat",
        "long",
    ])?;
    let opt = |o: Option<String>| o.unwrap_or_default();
    for r in reports {
        w.write_record([
            r.report_id.clone(),
            opt(r.category.clone()),
            opt(r.category_name.clone()),
            r.ward.clone(),
            r.status.clone(),
            opt(r.status_at.map(|t| t.to_rfc3339())),
            r.submitted.to_string(),
            opt(r.requested_at.map(|t| t.to_rfc3339())),
            opt(r.resolved_at.map(|t| t.to_rfc3339())),
            opt(r.resolution_hours.map(|h| h.to_string())),
            r.reopened.to_string(),
            opt(r.agency_responsible.clone()),
            opt(r.address.clone()),
            opt(r.lat.map(|x| x.to_string())),
            opt(r.long.map(|x| x.to_string())),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

async fn report_stats(State(s): State<AppState>) -> Response {
    match s
        .store
        .current(FIELD_REPORTS)
        .and_then(|tree| FieldReportsView { tree: &tree }.stats())
    {
        Ok(st) => Json(st).into_response(),
        Err(e) => internal(e),
    }
}

async fn one_report(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s
        .store
        .current(FIELD_REPORTS)
        .and_then(|tree| FieldReportsView { tree: &tree }.get(&id))
    {
        Ok(Some(r)) => Json(r).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "no such report",
            &format!("no field report with id {id:?}"),
        ),
        Err(e) => internal(e),
    }
}

async fn schema_index(State(s): State<AppState>) -> Response {
    let items: Vec<_> = s
        .registry
        .files()
        .map(|f| {
            json!({
                "path": format!("/schemas/{}", f.path),
                "id": f.id,
                "type": f.event.as_ref().map(|(t, _)| t.to_string()),
                "version": f.event.as_ref().map(|(_, v)| v),
            })
        })
        .collect();
    Json(json!({"schemas": items})).into_response()
}

async fn schema_file(State(s): State<AppState>, Path(path): Path<String>) -> Response {
    match s.registry.file_by_path(&path) {
        Some(f) => (
            [(header::CONTENT_TYPE, "application/schema+json")],
            Json(f.json.clone()),
        )
            .into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no such schema",
            &format!("no schema at /schemas/{path}; see /schemas/"),
        ),
    }
}
