//! `/api/v1/registered`: the generic read models of the subsystems registered on the bus.
//!
//! - `GET /api/v1/registered` — each registered subsystem: stream, titles, who registered it
//!   and when, its event types, how many events and aggregates its read model holds;
//! - `GET /api/v1/registered/{name}` — events per type and month (CSV with `?format=csv`);
//! - `GET /api/v1/registered/{name}/latest?after=KEY&limit=N` — the latest state of each
//!   aggregate, in key order, a page at a time (at most 1,000);
//! - `GET /api/v1/registered/{name}/latest/{key}` — one aggregate's latest state.
//!
//! The latest states carry the events' data: they are served only for a subsystem registered
//! `public` (403 otherwise); the counts of one that is not public withhold small numbers, as
//! its dataset does.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lienthong_bus::registry::live;
use serde::Deserialize;
use serde_json::{json, Value};

use super::RegisteredView;
use crate::api::{csv_response, problem, wants_csv, AppState, Unavailable};
use crate::http::openapi::{ok, path, query, Op, FORMAT, JSON, JSON_OR_CSV, NOT_FOUND};

/// Adds the routes.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/api/v1/registered", get(list))
        .route("/api/v1/registered/{name}", get(counts))
        .route("/api/v1/registered/{name}/latest", get(latest))
        .route("/api/v1/registered/{name}/latest/{key}", get(one))
}

pub const API: &[Op] = &[
    Op {
        method: "get",
        path: "/api/v1/registered",
        tag: "registered",
        summary: "The subsystems registered on the running bus and their read models",
        params: &[],
        answers: &[ok(JSON, "Registered subsystems")],
    },
    Op {
        method: "get",
        path: "/api/v1/registered/{name}",
        tag: "registered",
        summary: "A registered subsystem's events per type and month",
        params: &[path("name", "The subsystem"), FORMAT],
        answers: &[ok(JSON_OR_CSV, "Events per type and month"), NOT_FOUND],
    },
    Op {
        method: "get",
        path: "/api/v1/registered/{name}/latest",
        tag: "registered",
        summary: "The latest state of each aggregate of a registered subsystem",
        params: &[
            path("name", "The subsystem"),
            query("after", "Key to start after"),
            query("limit", "At most this many (1,000)"),
        ],
        answers: &[ok(JSON, "Latest states"), NOT_FOUND],
    },
    Op {
        method: "get",
        path: "/api/v1/registered/{name}/latest/{key}",
        tag: "registered",
        summary: "One aggregate's latest state",
        params: &[
            path("name", "The subsystem"),
            path("key", "The aggregate key"),
        ],
        answers: &[ok(JSON, "Its latest state"), NOT_FOUND],
    },
];

fn unknown(name: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "no such registered subsystem",
        &format!(
            "no subsystem {name:?} is registered on this bus (GET /api/v1/registered lists them)"
        ),
    )
}

async fn list(State(s): State<AppState>) -> Result<Response, Unavailable> {
    let mut out = Vec::new();
    for r in live::registrations() {
        let tree = s.tree(&r.spec.name)?;
        let view = RegisteredView { tree: &tree };
        let events = withheld(
            &r.spec.name,
            view.counts()?.iter().map(|c| c.2).sum(),
            s.publication.min_cell,
        );
        out.push(json!({
            "name": r.spec.name,
            "stream": r.spec.stream,
            "title": r.spec.title,
            "title_vi": r.spec.title_vi,
            "classification": r.spec.classification.as_str(),
            "registered_at": r.registered_at,
            "types": r.spec.latest_events().iter().map(|e| json!({"type": e.ty, "version": e.version, "key": e.key, "time": e.time})).collect::<Vec<_>>(),
            "events": events,
            "aggregates": withheld(&r.spec.name, view.aggregates() as u64, s.publication.min_cell),
            "checkpoint": crate::store::checkpoint(&tree)?,
            "dataset": super::dataset_id(&r.spec.name),
        }));
    }
    Ok(Json(json!({ "subsystems": out })).into_response())
}

#[derive(Debug, Deserialize)]
struct FormatQ {
    format: Option<String>,
}

async fn counts(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<FormatQ>,
) -> Result<Response, Unavailable> {
    if live::registration(&name).is_none() {
        return Ok(unknown(&name));
    }
    let tree = s.tree(&name)?;
    let view = RegisteredView { tree: &tree };
    let counts = view.counts()?;
    let min_cell = s.publication.min_cell;
    let shown = |n: u64| withheld(&name, n, min_cell);
    if wants_csv(&headers, q.format.as_deref()) {
        return Ok(csv_response(
            &format!("{name}-monthly.csv"),
            &["type", "month", "events"],
            counts.iter().map(|(t, m, n)| {
                vec![
                    t.clone(),
                    m.clone(),
                    shown(*n)
                        .as_u64()
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                ]
            }),
        ));
    }
    Ok(Json(json!({
        "subsystem": name,
        "events": shown(counts.iter().map(|c| c.2).sum::<u64>()),
        "aggregates": shown(view.aggregates() as u64),
        "min_cell": min_cell,
        "per_type_and_month": counts.iter().map(|(t, m, n)| json!({"type": t, "month": m, "events": shown(*n)})).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct PageQ {
    after: Option<String>,
    limit: Option<usize>,
}

/// Whether the latest states (the events' data) of `name` may be served here: only a
/// subsystem registered `public`.
fn data_served(name: &str) -> Option<Response> {
    let r = live::registration(name)?;
    (r.spec.classification != lienthong_bus::Classification::Public).then(|| {
        problem(
            StatusCode::FORBIDDEN,
            "not served",
            &format!(
                "{name} is registered {}: its events' data is read on the bus by those granted {}, not here",
                r.spec.classification.as_str(),
                r.spec.stream
            ),
        )
    })
}

/// Why the latest states of `name` are not served here, if they are not: no such registered
/// subsystem (404), or not a public one (403).
fn data_refused(name: &str) -> Option<Response> {
    match live::registration(name) {
        None => Some(unknown(name)),
        Some(_) => data_served(name),
    }
}

/// The counts of a subsystem that is not public, small ones withheld as in its dataset.
fn withheld(name: &str, n: u64, min_cell: u64) -> Value {
    let public = live::registration(name)
        .is_some_and(|r| r.spec.classification == lienthong_bus::Classification::Public);
    if public || n == 0 || n >= min_cell {
        json!(n)
    } else {
        Value::Null
    }
}

async fn latest(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<PageQ>,
) -> Result<Response, Unavailable> {
    if let Some(refused) = data_refused(&name) {
        return Ok(refused);
    }
    let tree = s.tree(&name)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items = RegisteredView { tree: &tree }.latest(q.after.as_deref(), limit)?;
    let next: Value = match items.last() {
        Some(l) if items.len() == limit => json!(l.key),
        _ => Value::Null,
    };
    Ok(Json(json!({ "subsystem": name, "items": items, "next_after": next })).into_response())
}

async fn one(
    State(s): State<AppState>,
    Path((name, key)): Path<(String, String)>,
) -> Result<Response, Unavailable> {
    if let Some(refused) = data_refused(&name) {
        return Ok(refused);
    }
    let tree = s.tree(&name)?;
    Ok(match (RegisteredView { tree: &tree }).one(&key)? {
        Some(l) => Json(l).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no such aggregate",
            &format!("{name} has no aggregate {key:?}"),
        ),
    })
}
