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
    let asked = match crate::api::year_param(q.year.as_deref()) {
        Ok(y) => y,
        Err(problem) => return Ok(*problem),
    };
    let models = crate::read_models::all();
    let mut trees = BTreeMap::new();
    for m in &models {
        trees.insert(m.projection.name(), s.store.current(m.projection.name())?);
    }
    let year = match asked {
        Some(y) => Some(y),
        None => years(&s)?.pop(),
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

/// Every year (UTC+7) any read model has figures for, in order: the period selector's, and the
/// default (the latest) when none is asked for.
pub fn years(s: &AppState) -> crate::Result<Vec<String>> {
    let mut years = Vec::new();
    for m in crate::read_models::all() {
        if let Some(k) = &m.kpi {
            years.extend((k.years)(&s.tree(m.projection.name())?)?);
        }
    }
    years.sort();
    years.dedup();
    Ok(years)
}
