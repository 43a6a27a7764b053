//! `/api/v1/field-reports`: the citizen reports read model.
//!
//! - `GET /api/v1/field-reports` — filters `ward`, `status`, `category`; paging `limit`,
//!   `offset`; JSON, or CSV with `Accept: text/csv` (or `?format=csv`).
//! - `GET /api/v1/field-reports/stats` — totals by status, ward and category; resolution.
//! - `GET /api/v1/field-reports/{id}` — one report (the id percent-encoded).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use axum::routing::get;
use axum::Router;

use super::{FieldReportsProjection, FieldReportsView, ReportFilter, ReportView, NAME};
use crate::api::{csv_response, problem, wants_csv, AppState, Unavailable};
use crate::http::openapi::{ok, path, query, Op, Param, FORMAT, JSON, JSON_OR_CSV, NOT_FOUND};
use crate::read_models::{KpiSection, ReadModel};

/// The field-reports read model: its projection, endpoints and KPI section.
pub fn read_model() -> ReadModel {
    ReadModel {
        projection: std::sync::Arc::new(FieldReportsProjection),
        routes: |r: Router<AppState>| {
            r.route("/api/v1/field-reports", get(list))
                .route("/api/v1/field-reports/stats", get(stats))
                .route("/api/v1/field-reports/{id}", get(one))
                .route("/api/v1/field-reports/{id}/history", get(history))
        },
        kpi: Some(KpiSection {
            name: "field_reports",
            years,
            figures: kpi,
        }),
        datasets: vec![super::dataset::SPEC],
        api: API,
    }
}

const API: &[Op] = &[
    Op {
        method: "get",
        path: "/api/v1/field-reports",
        tag: "field-reports",
        summary: "Citizen field reports, filtered and paged",
        params: &[
            query("ward", "A ward slug"),
            query("status", "A status (open, in_progress, closed…)"),
            query("category", "A category code"),
            Param {
                kind: "integer",
                ..query("limit", "At most this many")
            },
            Param {
                kind: "integer",
                ..query("offset", "Skip this many")
            },
            FORMAT,
        ],
        answers: &[ok(JSON_OR_CSV, "Reports")],
    },
    Op {
        method: "get",
        path: "/api/v1/field-reports/stats",
        tag: "field-reports",
        summary: "Totals by status, ward and category; resolution times and on-time share",
        params: &[],
        answers: &[ok(JSON, "Statistics")],
    },
    Op {
        method: "get",
        path: "/api/v1/field-reports/{id}",
        tag: "field-reports",
        summary: "One report (its id percent-encoded)",
        params: &[path("id", "The report id")],
        answers: &[ok(JSON, "The report"), NOT_FOUND],
    },
    Op {
        method: "get",
        path: "/api/v1/field-reports/{id}/history",
        tag: "field-reports",
        summary: "Every event of one report, in stream order, from the stream itself",
        params: &[path("id", "The report id")],
        answers: &[ok(JSON, "The report's events"), NOT_FOUND],
    },
];

/// The years (UTC+7) reports were submitted in.
fn years(tree: &sled::Tree) -> crate::Result<Vec<String>> {
    let years: std::collections::BTreeSet<String> = FieldReportsView { tree }
        .list(&ReportFilter::default())?
        .iter()
        .filter_map(|r| r.requested_at.map(year_of))
        .collect();
    Ok(years.into_iter().collect())
}

fn year_of(t: chrono::DateTime<chrono::FixedOffset>) -> String {
    let local = chrono::FixedOffset::east_opt(7 * 3600).expect("UTC+7");
    t.with_timezone(&local).format("%Y").to_string()
}

/// Reports received, resolved, open, resolution time and on-time share: of the reports
/// submitted in `year` (UTC+7), or of every report.
fn kpi(tree: &sled::Tree, year: Option<&str>) -> crate::Result<serde_json::Value> {
    let view = FieldReportsView { tree };
    let Some(year) = year else {
        let fr = view.stats()?;
        return Ok(json!({
            "total": fr.total,
            "resolved": fr.resolution.resolved,
            "open": fr.resolution.open,
            "median_resolution_hours": fr.resolution.median_hours,
            "on_time_ratio": fr.resolution.on_time_ratio,
            "by_status": fr.by_status,
            "wards_reporting": fr.by_ward.keys().filter(|w| *w != "unknown").count(),
        }));
    };
    let reports: Vec<ReportView> = view
        .list(&ReportFilter::default())?
        .into_iter()
        .filter(|r| r.requested_at.is_some_and(|t| year_of(t) == year))
        .collect();
    let r = super::Resolution::of(&reports);
    let mut by_status: std::collections::BTreeMap<&str, u64> = Default::default();
    let mut wards = std::collections::BTreeSet::new();
    for report in &reports {
        *by_status.entry(report.status.as_str()).or_default() += 1;
        if report.ward != "unknown" {
            wards.insert(report.ward.as_str());
        }
    }
    Ok(json!({
        "total": reports.len(),
        "resolved": r.resolved,
        "open": r.open,
        "median_resolution_hours": r.median_hours,
        "on_time_ratio": r.on_time_ratio,
        "by_status": by_status,
        "wards_reporting": wards.len(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(flatten)]
    filter: ReportFilter,
    limit: Option<usize>,
    offset: Option<usize>,
    format: Option<String>,
}

const CSV_HEADER: &[&str] = &[
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
];

fn csv_row(r: &ReportView) -> Vec<String> {
    let opt = |o: Option<String>| o.unwrap_or_default();
    vec![
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
    ]
}

async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    let all = (FieldReportsView { tree: &tree }).list(&q.filter)?;
    let total = all.len();
    let offset = q.offset.unwrap_or(0);
    let page: Vec<ReportView> = all
        .into_iter()
        .skip(offset)
        .take(q.limit.unwrap_or(usize::MAX))
        .collect();
    if wants_csv(&headers, q.format.as_deref()) {
        return Ok(csv_response(
            "field-reports.csv",
            CSV_HEADER,
            page.iter().map(csv_row),
        ));
    }
    Ok(
        Json(json!({"total": total, "offset": offset, "count": page.len(), "items": page}))
            .into_response(),
    )
}

async fn stats(State(s): State<AppState>) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    let st = (FieldReportsView { tree: &tree }).stats()?;
    Ok(Json(st).into_response())
}

async fn one(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    Ok(match (FieldReportsView { tree: &tree }).get(&id)? {
        Some(r) => Json(r).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no such report",
            &format!("no field report with id {id:?}"),
        ),
    })
}

/// Every event of one report, in stream order, read from `FIELD_REPORTS` itself: what the
/// read model's view of it was folded from.
async fn history(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Unavailable> {
    let Some(reader) = &s.reader else {
        return Ok(problem(
            StatusCode::NOT_FOUND,
            "no history here",
            "this copy of the read models is not connected to the bus",
        ));
    };
    let filter =
        lienthong_bus::EventType::new("field_reports", "report", "submitted").aggregate_filter(&id);
    let mut events = Vec::new();
    for m in reader.read_all("FIELD_REPORTS", Some(&filter)).await? {
        let Ok(ev) = lienthong_bus::subscriber::decode_stored(&m, Some(&s.registry)) else {
            continue;
        };
        let Some(p) = crate::projection::ProjectedEvent::from_received(ev) else {
            continue;
        };
        if p.key.as_deref() != Some(id.as_str()) {
            continue; // another report whose long id has the same digest token
        }
        events.push(json!({
            "sequence": p.sequence,
            "type": p.ty,
            "time": p.time,
            "status": sonic_rs::JsonValueTrait::get(&p.data, "status").map(crate::projection::json_of),
            "data": crate::projection::json_of(&p.data),
        }));
    }
    if events.is_empty() {
        return Ok(problem(
            StatusCode::NOT_FOUND,
            "no such report",
            &format!("no event of a field report with id {id:?}"),
        ));
    }
    Ok(Json(json!({"report_id": id, "events": events})).into_response())
}
