//! `GET /api/v1/kpi?year=YYYY`: the operations centre's summary, one section per read model
//! that has one ([`crate::read_models`]), computed from the read models (never typed in).
//! Without `year`, the latest year any section has figures for. `stream_sequences` says how
//! far each read model has folded its stream.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::{AppState, Unavailable};
use crate::store::checkpoint;

#[derive(Debug, Deserialize)]
pub struct Q {
    year: Option<String>,
}

pub async fn kpi(State(s): State<AppState>, Query(q): Query<Q>) -> Result<Response, Unavailable> {
    if let Some(y) = q.year.as_deref() {
        if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(crate::api::problem(
                axum::http::StatusCode::BAD_REQUEST,
                "not a year",
                &format!("year={y:?}: give four digits, e.g. year=2023"),
            ));
        }
    }
    let models = crate::read_models::all();
    let mut trees = BTreeMap::new();
    for m in &models {
        trees.insert(m.projection.name(), s.store.current(m.projection.name())?);
    }
    let year = match q.year.clone() {
        Some(y) => Some(y),
        None => {
            let mut latest: Option<String> = None;
            for m in &models {
                if let Some(k) = &m.kpi {
                    let newest = (k.years)(&trees[m.projection.name()])?.into_iter().max();
                    latest = latest.max(newest);
                }
            }
            latest
        }
    };
    let mut out = Map::new();
    out.insert("year".into(), json!(year));
    let mut sequences = Map::new();
    for m in &models {
        let tree = &trees[m.projection.name()];
        if let Some(k) = &m.kpi {
            out.insert(k.name.into(), (k.figures)(tree, year.as_deref())?);
        }
        sequences.insert(m.projection.stream().into(), json!(checkpoint(tree)?));
    }
    out.insert("stream_sequences".into(), Value::Object(sequences));
    Ok(Json(Value::Object(out)).into_response())
}
