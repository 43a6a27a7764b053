//! `/api/v1/open-data/…`: the catalogue.
//!
//! - `GET /api/v1/open-data/datasets?status=active|withdrawn` — JSON or CSV (one row per
//!   resource), withdrawn datasets marked.
//! - `GET /api/v1/open-data/datasets/{id}`.
//! - `GET /api/v1/open-data/catalog.jsonld` — DCAT-style JSON-LD of the active datasets.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use axum::routing::get;
use axum::Router;

use super::{dcat, CatalogueProjection, CatalogueView, NAME};
use crate::api::{csv_response, problem, wants_csv, AppState, Unavailable};
use crate::http::openapi::{ok, path, query, Op, FORMAT, JSON, JSON_OR_CSV, NOT_FOUND};
use crate::read_models::{KpiSection, ReadModel};

/// The open-data catalogue read model: its projection, endpoints and KPI section.
pub fn read_model() -> ReadModel {
    ReadModel {
        projection: std::sync::Arc::new(CatalogueProjection),
        routes: |r: Router<AppState>| {
            r.route("/api/v1/open-data/datasets", get(list))
                .route("/api/v1/open-data/datasets/{id}", get(one))
                .route("/api/v1/open-data/catalog.jsonld", get(catalog))
        },
        kpi: Some(KpiSection {
            name: "open_data",
            years: |_| Ok(Vec::new()),
            figures: kpi,
        }),
        datasets: vec![super::dataset::SPEC],
        api: API,
    }
}

const API: &[Op] = &[
    Op {
        method: "get",
        path: "/api/v1/open-data/datasets",
        tag: "open-data",
        summary: "The city's open data catalogue, withdrawn datasets marked",
        params: &[query("status", "active or withdrawn"), FORMAT],
        answers: &[ok(JSON_OR_CSV, "Datasets")],
    },
    Op {
        method: "get",
        path: "/api/v1/open-data/datasets/{id}",
        tag: "open-data",
        summary: "One dataset of the portal",
        params: &[path("id", "The CKAN package id")],
        answers: &[ok(JSON, "The dataset"), NOT_FOUND],
    },
    Op {
        method: "get",
        path: "/api/v1/open-data/catalog.jsonld",
        tag: "open-data",
        summary: "The portal's catalogue in DCAT (JSON-LD)",
        params: &[],
        answers: &[ok(&["application/ld+json"], "The catalogue")],
    },
];

/// Datasets published now, withdrawn ones, and their resources; the bus's own datasets,
/// published to the portal and read back, are counted apart.
fn kpi(tree: &sled::Tree, _year: Option<&str>) -> crate::Result<Value> {
    let all = CatalogueView { tree }.datasets()?;
    let (own, datasets): (Vec<_>, Vec<_>) = all.into_iter().partition(|d| d.bus_dataset.is_some());
    let active: Vec<_> = datasets.iter().filter(|x| x.status == "active").collect();
    Ok(json!({
        "datasets": active.len(),
        "withdrawn": datasets.len() - active.len(),
        "resources": active.iter().map(|x| x.resources.len()).sum::<usize>(),
        "bus_datasets": own.iter().filter(|x| x.status == "active").count(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct Q {
    status: Option<String>,
    format: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Q>,
) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    let mut all = (CatalogueView { tree: &tree }).datasets()?;
    if let Some(st) = &q.status {
        all.retain(|d| &d.status == st);
    }
    if wants_csv(&headers, q.format.as_deref()) {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let rows = all.iter().flat_map(|d| {
            let base = vec![
                d.dataset_id.clone(),
                d.name.clone().unwrap_or_default(),
                d.title.clone().unwrap_or_default(),
                text(d.organization.as_ref().and_then(|o| o.get("title"))),
                d.license_id.clone().unwrap_or_default(),
                d.status.clone(),
                d.metadata_modified.clone().unwrap_or_default(),
            ];
            let resources: Vec<Vec<String>> = if d.resources.is_empty() {
                vec![[base.clone(), vec![String::new(); 3]].concat()]
            } else {
                d.resources
                    .iter()
                    .map(|r| {
                        [
                            base.clone(),
                            vec![text(r.get("id")), text(r.get("format")), text(r.get("url"))],
                        ]
                        .concat()
                    })
                    .collect()
            };
            resources
        });
        return Ok(csv_response(
            "open-data.csv",
            &[
                "dataset_id",
                "name",
                "title",
                "organization",
                "license_id",
                "status",
                "metadata_modified",
                "resource_id",
                "format",
                "url",
            ],
            rows,
        ));
    }
    let active = all.iter().filter(|d| d.status == "active").count();
    Ok(Json(json!({"total": all.len(), "active": active, "withdrawn": all.len() - active, "datasets": all})).into_response())
}

async fn one(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    Ok(match (CatalogueView { tree: &tree }).get(&id)? {
        Some(d) => Json(d).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no such dataset",
            &format!("no dataset {id:?}"),
        ),
    })
}

async fn catalog(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    let base = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default();
    let d = (CatalogueView { tree: &tree }).datasets()?;
    Ok((
        [(header::CONTENT_TYPE, "application/ld+json")],
        Json(dcat(&d, &base)),
    )
        .into_response())
}
