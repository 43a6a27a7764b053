//! The read models the replay service maintains, listed once: each with its projection (the
//! fold), its HTTP endpoints and its section of the KPIs. The service, the rebuild commands,
//! `/healthz`, `/metrics` and `/api/v1/kpi` take them from here, and `tests/registry.rs`
//! checks them against the subsystem registry (`lienthong_bus::registry`).
//!
//! Adding a subsystem's read model: a module beside the others (projection in `mod.rs`,
//! endpoints and KPI figures in `http.rs`, its datasets in `dataset.rs`) and one line in
//! [`all`].

use std::sync::Arc;

use axum::Router;
use serde_json::Value;

use crate::api::AppState;
use crate::error::Result;
use crate::projection::Projection;

/// One read model.
pub struct ReadModel {
    pub projection: Arc<dyn Projection>,
    /// Adds its endpoints.
    pub routes: fn(Router<AppState>) -> Router<AppState>,
    /// Its section of `/api/v1/kpi`, if it has one.
    pub kpi: Option<KpiSection>,
    /// The shared datasets computed from it (`/api/v1/datasets`).
    pub datasets: Vec<crate::datasets::DatasetSpec>,
    /// Its endpoints, for `/openapi.json`.
    pub api: &'static [crate::http::openapi::Op],
}

/// A read model's part of the operations centre's summary.
pub struct KpiSection {
    /// The key of the section (the registry's `kpi_section`).
    pub name: &'static str,
    /// The years (`YYYY`, UTC+7) it has figures for: the KPIs show the latest by default.
    pub years: fn(&sled::Tree) -> Result<Vec<String>>,
    /// Its figures for a year (or for all time when `None`).
    pub figures: fn(&sled::Tree, Option<&str>) -> Result<Value>,
}

/// Every read model.
pub fn all() -> Vec<ReadModel> {
    vec![
        crate::field_reports::http::read_model(),
        crate::documents::http::read_model(),
        crate::sso::http::read_model(),
        crate::open_data::http::read_model(),
        crate::meetings::http::read_model(),
    ]
}

/// Every projection.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    all().into_iter().map(|m| m.projection).collect()
}
