//! `/api/v1/documents/…`: document exchange per agency and month, and document trails.
//!
//! - `GET /api/v1/documents/exchange?organ=&month=YYYY-MM&year=YYYY` — one row per agency and
//!   month with `electronic_ratio`; CSV too.
//! - `GET /api/v1/documents/exchange/summary?year=` — totals per agency and overall.
//! - `GET /api/v1/documents/{document_id}` — an edXML document's trail (percent-encoded id).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use axum::routing::get;
use axum::Router;

use super::{DocumentExchangeProjection, DocumentsView, ExchangeFilter, MonthRow, NAME};
use crate::api::{csv_response, problem, wants_csv, AppState, Unavailable};
use crate::http::openapi::{ok, path, query, Op, FORMAT, JSON, JSON_OR_CSV, NOT_FOUND};
use crate::read_models::{KpiSection, ReadModel};

/// The document-exchange read model: its projection, endpoints and KPI section.
pub fn read_model() -> ReadModel {
    ReadModel {
        projection: std::sync::Arc::new(DocumentExchangeProjection),
        routes: |r: Router<AppState>| {
            r.route("/api/v1/documents/exchange", get(exchange))
                .route("/api/v1/documents/exchange/summary", get(summary))
                .route("/api/v1/documents/{id}", get(trail))
        },
        kpi: Some(KpiSection {
            name: "documents",
            years: |tree| {
                let rows = DocumentsView { tree }.rows(&ExchangeFilter::default())?;
                let years: std::collections::BTreeSet<String> =
                    rows.iter().map(|r| r.month[..4].to_string()).collect();
                Ok(years.into_iter().collect())
            },
            figures: kpi,
        }),
        datasets: vec![super::dataset::SPEC],
        api: API,
    }
}

const API: &[Op] = &[
    Op { method: "get", path: "/api/v1/documents/exchange", tag: "documents", summary: "Per agency and month: documents sent (electronic, paper), received, edXML; secret documents never counted", params: &[query("organ", "An agency code"), query("month", "YYYY-MM"), query("year", "YYYY"), FORMAT], answers: &[ok(JSON_OR_CSV, "Rows")] },
    Op { method: "get", path: "/api/v1/documents/exchange/summary", tag: "documents", summary: "Totals per agency and overall", params: &[query("year", "YYYY")], answers: &[ok(JSON, "Totals")] },
    Op { method: "get", path: "/api/v1/documents/{id}", tag: "documents", summary: "An edXML document's trail", params: &[path("id", "The edXML DocumentId")], answers: &[ok(JSON, "The trail"), NOT_FOUND] },
];

/// Documents sent (electronic, paper), received, edXML packages and the electronic ratio —
/// secret documents are never on the bus, so never counted.
fn kpi(tree: &sled::Tree, year: Option<&str>) -> crate::Result<serde_json::Value> {
    let rows = DocumentsView { tree }.rows(&ExchangeFilter {
        year: year.map(str::to_string),
        ..Default::default()
    })?;
    let d = DocumentsView::totals(&rows);
    Ok(json!({
        "sent": d.sent,
        "sent_electronic": d.sent_electronic,
        "sent_paper": d.sent_paper,
        "electronic_ratio": d.electronic_ratio,
        "received": d.received,
        "edxml_sent": d.edxml_sent,
        "agencies": rows.iter().map(|r| r.organ_id.as_str()).collect::<std::collections::BTreeSet<_>>().len(),
        "note": "secret documents are never on the bus and never counted",
    }))
}

#[derive(Debug, Deserialize)]
pub struct Q {
    #[serde(flatten)]
    filter: ExchangeFilter,
    format: Option<String>,
}

fn ratio(r: Option<f64>) -> String {
    r.map(|x| format!("{x:.4}")).unwrap_or_default()
}

async fn exchange(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Q>,
) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    let rows = (DocumentsView { tree: &tree }).rows(&q.filter)?;
    if wants_csv(&headers, q.format.as_deref()) {
        return Ok(csv_response(
            "document-exchange.csv",
            &[
                "organ_id",
                "organ_name",
                "month",
                "sent_electronic",
                "sent_paper",
                "received_electronic",
                "received_paper",
                "edxml_sent",
                "edxml_revoked",
                "electronic_ratio",
            ],
            rows.iter().map(|r| {
                vec![
                    r.organ_id.clone(),
                    r.organ_name.clone().unwrap_or_default(),
                    r.month.clone(),
                    r.sent_electronic.to_string(),
                    r.sent_paper.to_string(),
                    r.received_electronic.to_string(),
                    r.received_paper.to_string(),
                    r.edxml_sent.to_string(),
                    r.edxml_revoked.to_string(),
                    ratio(r.electronic_ratio()),
                ]
            }),
        ));
    }
    let items: Vec<_> = rows
        .iter()
        .map(|r| json!({"row": r, "electronic_ratio": r.electronic_ratio()}))
        .map(|mut v| {
            let ratio = v["electronic_ratio"].take();
            let mut row = v["row"].take();
            row["electronic_ratio"] = ratio;
            row
        })
        .collect();
    Ok(Json(json!({"totals": DocumentsView::totals(&rows), "rows": items})).into_response())
}

async fn summary(State(s): State<AppState>, Query(q): Query<Q>) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    let rows = (DocumentsView { tree: &tree }).rows(&q.filter)?;
    let mut by_organ: BTreeMap<String, Vec<MonthRow>> = BTreeMap::new();
    for r in &rows {
        by_organ
            .entry(r.organ_id.clone())
            .or_default()
            .push(r.clone());
    }
    let agencies: Vec<_> = by_organ
        .iter()
        .map(|(id, rs)| json!({"organ_id": id, "organ_name": rs.iter().find_map(|r| r.organ_name.clone()), "totals": DocumentsView::totals(rs)}))
        .collect();
    Ok(Json(json!({"totals": DocumentsView::totals(&rows), "agencies": agencies})).into_response())
}

async fn trail(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    Ok(match (DocumentsView { tree: &tree }).trail(&id)? {
        Some(t) => Json(t).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no such document",
            &format!("no edXML document {id:?}"),
        ),
    })
}
