//! `/api/v1/meetings`: the city's online meetings with the wards and communes.
//!
//! - `GET /api/v1/meetings?year=YYYY` — the year's figures (meetings per month and kind, wards
//!   connected, meetings per ward, participations, participants, average duration) and the
//!   meetings; without `year`, the latest year with meetings. CSV (one row per meeting) with
//!   `Accept: text/csv` or `?format=csv`.
//! - `GET /api/v1/meetings/{id}` — one meeting with its pseudonymous participations.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{figures, MeetingView, MeetingsProjection, MeetingsView, NAME};
use crate::api::{csv_response, problem, wants_csv, AppState, Unavailable};
use crate::http::openapi::{ok, path, query, Op, FORMAT, JSON, JSON_OR_CSV, NOT_FOUND};
use crate::read_models::{KpiSection, ReadModel};

/// The meetings read model: its projection, endpoints and KPI section.
pub fn read_model() -> ReadModel {
    ReadModel {
        projection: std::sync::Arc::new(MeetingsProjection),
        routes: |r: Router<AppState>| {
            r.route("/api/v1/meetings", get(list))
                .route("/api/v1/meetings/{id}", get(one))
        },
        kpi: Some(KpiSection {
            name: "meetings",
            years: |tree| MeetingsView { tree }.years(),
            figures: kpi,
        }),
        datasets: vec![super::dataset::SPEC],
        api: API,
    }
}

const API: &[Op] = &[
    Op { method: "get", path: "/api/v1/meetings", tag: "meetings", summary: "Online meetings: per month and kind, wards connected, participations, durations, the meetings", params: &[query("year", "YYYY"), FORMAT], answers: &[ok(JSON_OR_CSV, "Meetings")] },
    Op { method: "get", path: "/api/v1/meetings/{id}", tag: "meetings", summary: "One meeting", params: &[path("id", "The meeting id")], answers: &[ok(JSON, "The meeting"), NOT_FOUND] },
];

fn year_number(year: Option<&str>) -> Option<i32> {
    year.and_then(|y| y.parse().ok())
}

fn kpi(tree: &sled::Tree, year: Option<&str>) -> crate::Result<Value> {
    Ok(figures(&MeetingsView { tree }.meetings(year_number(year))?))
}

#[derive(Debug, Deserialize)]
struct Q {
    year: Option<String>,
    format: Option<String>,
}

fn summary(m: &MeetingView) -> Value {
    json!({
        "meeting_id": m.meeting_id,
        "engine": m.engine,
        "external_id": m.external_id,
        "title": m.title,
        "kind": m.kind,
        "host_organ": m.host_organ,
        "started_at": m.started_at,
        "ended_at": m.ended_at,
        "duration_minutes": m.duration_minutes().map(|d| (d * 10.0).round() / 10.0),
        "participants": m.participants.len(),
        "wards": m.wards(),
    })
}

async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Q>,
) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    let view = MeetingsView { tree: &tree };
    let year = match q.year {
        Some(y) => Some(y),
        None => view.years()?.pop(),
    };
    let meetings = view.meetings(year_number(year.as_deref()))?;
    if wants_csv(&headers, q.format.as_deref()) {
        let opt = |o: Option<String>| o.unwrap_or_default();
        return Ok(csv_response(
            "meetings.csv",
            &[
                "meeting_id",
                "engine",
                "kind",
                "host_organ",
                "started_at",
                "ended_at",
                "duration_minutes",
                "participants",
                "wards",
            ],
            meetings.iter().map(|m| {
                vec![
                    m.meeting_id.clone(),
                    opt(m.engine.clone()),
                    opt(m.kind.clone()),
                    opt(m.host_organ.clone()),
                    opt(m.started_at.map(|t| t.to_rfc3339())),
                    opt(m.ended_at.map(|t| t.to_rfc3339())),
                    opt(m.duration_minutes().map(|d| format!("{d:.1}"))),
                    m.participants.len().to_string(),
                    m.wards().into_iter().collect::<Vec<_>>().join(" "),
                ]
            }),
        ));
    }
    let mut out = figures(&meetings);
    out["year"] = json!(year);
    out["items"] = meetings.iter().map(summary).collect();
    Ok(Json(out).into_response())
}

async fn one(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    Ok(match (MeetingsView { tree: &tree }).get(&id)? {
        Some(m) => Json(m).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no such meeting",
            &format!("no meeting with id {id:?}"),
        ),
    })
}
