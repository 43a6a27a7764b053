//! `/api/v1/datasets`: the datasets, their catalogue and their files.
//!
//! - `GET /api/v1/datasets` — every dataset: titles, rows, coverage, links.
//! - `GET /api/v1/datasets/catalog.jsonld` — the DCAT-AP 3 catalogue (JSON-LD).
//! - `GET /api/v1/datasets/{id}` — one dataset's DCAT record.
//! - `GET /api/v1/datasets/{id}/data.csv`, `…/data.json` — the table.
//! - `GET /api/v1/datasets/{id}/schema.json` — its columns (Frictionless Table Schema).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{build, dcat, spec, specs, table_schema, DatasetSpec, Table};
use crate::api::{problem, AppState, Unavailable};

pub fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route("/api/v1/datasets", get(list))
        .route("/api/v1/datasets/catalog.jsonld", get(catalog))
        .route("/api/v1/datasets/{id}", get(record))
        .route("/api/v1/datasets/{id}/data.csv", get(csv))
        .route("/api/v1/datasets/{id}/data.json", get(data_json))
        .route("/api/v1/datasets/{id}/schema.json", get(schema))
}

/// `http://<host>` of the request (the catalogue's URLs point back at this service).
pub fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    format!("http://{host}")
}

/// A dataset computed from the served read model, with its version (a digest of its CSV:
/// unchanged figures, unchanged version).
pub fn table(s: &AppState, spec: &DatasetSpec) -> crate::Result<(Table, String)> {
    let tree = s.tree(spec.projection)?;
    let t = build(spec, &tree, s.publication.min_cell)?;
    let version = super::version(&t);
    Ok((t, version))
}

fn not_found(id: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "no such dataset",
        &format!(
            "no dataset {id:?}; GET /api/v1/datasets lists them ({})",
            specs().iter().map(|s| s.id).collect::<Vec<_>>().join(", ")
        ),
    )
}

async fn list(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, Unavailable> {
    let base = base(&headers);
    let mut out = Vec::new();
    for spec in specs() {
        let (t, version) = table(&s, &spec)?;
        let (record, csv, json_url, schema) = dcat::urls(&base, spec.id);
        out.push(json!({
            "id": spec.id,
            "title": {"vi": spec.title_vi, "en": spec.title_en},
            "description": {"vi": spec.description_vi, "en": spec.description_en},
            "stream": spec.stream,
            "read_model": spec.projection,
            "version": version,
            "rows": t.rows.len(),
            "withheld_cells": t.withheld,
            "min_cell": t.min_cell,
            "months": t.months().map(|(a, b)| json!({"from": a, "to": b})),
            "wards": t.wards().len(),
            "dashboard_panel": spec.panel,
            "links": {"dcat": record, "csv": csv, "json": json_url, "schema": schema},
        }));
    }
    Ok(Json(json!({
        "datasets": out,
        "licence": s.publication.licence,
        "catalog": format!("{base}/api/v1/datasets/catalog.jsonld"),
    }))
    .into_response())
}

fn jsonld(v: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/ld+json")],
        serde_json::to_string_pretty(&v).unwrap_or_default(),
    )
        .into_response()
}

async fn catalog(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, Unavailable> {
    let base = base(&headers);
    let mut records = Vec::new();
    for spec in specs() {
        let (t, version) = table(&s, &spec)?;
        records.push(dcat::dataset(&spec, &t, &s.publication, &base, &version));
    }
    Ok(jsonld(dcat::catalog(records, &s.publication, &base)))
}

async fn record(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Unavailable> {
    let Some(spec) = spec(&id) else {
        return Ok(not_found(&id));
    };
    let (t, version) = table(&s, &spec)?;
    let mut d = dcat::dataset(&spec, &t, &s.publication, &base(&headers), &version);
    d["@context"] = dcat::context();
    Ok(jsonld(d))
}

async fn csv(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, Unavailable> {
    let Some(spec) = spec(&id) else {
        return Ok(not_found(&id));
    };
    let (t, _) = table(&s, &spec)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.csv\""),
            ),
        ],
        t.csv(),
    )
        .into_response())
}

async fn data_json(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Unavailable> {
    let Some(spec) = spec(&id) else {
        return Ok(not_found(&id));
    };
    let (t, _) = table(&s, &spec)?;
    Ok(Json(t.json()).into_response())
}

async fn schema(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match spec(&id) {
        Some(spec) => Json(table_schema(&spec, s.publication.min_cell)).into_response(),
        None => not_found(&id),
    }
}
