//! The HTTP API: read models as JSON (and CSV), the schemas, health, metrics, dashboard.
//! One file per read model; see each for its endpoints.
//!
//! - [`field_reports`] — `/api/v1/field-reports`, `…/stats`, `…/{id}`.
//! - [`documents`] — `/api/v1/documents/exchange`, `…/exchange/summary`, `/api/v1/documents/{id}`.
//! - [`sso`] — `/api/v1/sso/activity`.
//! - [`open_data`] — `/api/v1/open-data/datasets`, `…/{id}`, `/api/v1/open-data/catalog.jsonld`.
//! - [`kpi`] — `/api/v1/kpi`, the operations centre's summary.
//! - here: `/schemas/`, `/schemas/{path}`, `/healthz`, `/metrics`, `/api/v1/audit/public-key`,
//!   `/` (the IOC dashboard).
//!
//! Tables answer CSV with `Accept: text/csv` or `?format=csv`; errors are problem+json.

mod documents;
mod field_reports;
mod kpi;
mod open_data;
mod sso;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lienthong_bus::SchemaRegistry;
use serde_json::json;

use crate::runner::Metrics;
use crate::store::{checkpoint, ReadStore};

#[derive(Clone)]
pub struct AppState {
    pub store: ReadStore,
    pub registry: Arc<SchemaRegistry>,
    pub metrics: Arc<Metrics>,
    /// Serving a point-in-time copy: no live consumer.
    pub read_only: bool,
    /// Hex Ed25519 key that verifies the audit checkpoints, when this service writes them.
    pub audit_public_key: Option<String>,
    /// Administration (live rebuilds), when enabled.
    pub admin: Option<Admin>,
}

/// What `POST /api/v1/admin/rebuild` needs.
#[derive(Clone)]
pub struct Admin {
    pub token: String,
    pub runners: Vec<crate::runner::Runner>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/field-reports", get(field_reports::list))
        .route("/api/v1/field-reports/stats", get(field_reports::stats))
        .route("/api/v1/field-reports/{id}", get(field_reports::one))
        .route("/api/v1/documents/exchange", get(documents::exchange))
        .route(
            "/api/v1/documents/exchange/summary",
            get(documents::summary),
        )
        .route("/api/v1/documents/{id}", get(documents::trail))
        .route("/api/v1/sso/activity", get(sso::activity))
        .route("/api/v1/open-data/datasets", get(open_data::list))
        .route("/api/v1/open-data/datasets/{id}", get(open_data::one))
        .route("/api/v1/open-data/catalog.jsonld", get(open_data::catalog))
        .route("/api/v1/kpi", get(kpi::kpi))
        .route("/api/v1/audit/public-key", get(audit_public_key))
        .route("/api/v1/admin/rebuild", axum::routing::post(admin_rebuild))
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

/// A read model that cannot be read, as an answer (500, problem+json): handlers return
/// `Result<Response, Unavailable>` and use `?` on store reads.
#[derive(Debug)]
pub struct Unavailable(String);

impl<E: std::fmt::Display> From<E> for Unavailable {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

impl IntoResponse for Unavailable {
    fn into_response(self) -> Response {
        internal(self.0)
    }
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

impl AppState {
    /// The served tree of a projection.
    pub fn tree(&self, projection: &str) -> crate::Result<sled::Tree> {
        self.store.current(projection)
    }

    fn checkpoints(&self) -> crate::Result<Vec<(&'static str, u64)>> {
        crate::service::projections()
            .iter()
            .map(|p| Ok((p.name(), checkpoint(&self.store.current(p.name())?)?)))
            .collect()
    }

    fn point_in_time(&self, projection: &str) -> Option<String> {
        self.store.point_in_time(projection).ok().flatten()
    }
}

/// Which format a table is asked in.
pub fn wants_csv(headers: &HeaderMap, format: Option<&str>) -> bool {
    format == Some("csv")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv"))
}

/// A CSV answer from a header and rows.
pub fn csv_response(
    filename: &str,
    header_row: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Response {
    let mut w = csv::Writer::from_writer(Vec::new());
    let result = (|| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        w.write_record(header_row)?;
        for r in rows {
            w.write_record(&r)?;
        }
        Ok(w.into_inner()?)
    })();
    match result {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{filename}\""),
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

#[derive(serde::Deserialize)]
struct RebuildQuery {
    projection: Option<String>,
}

/// Rebuilds read models beside the live ones, then swaps; answers at once (202) while the
/// rebuild runs, and the service keeps answering from the live generation meanwhile.
async fn admin_rebuild(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<RebuildQuery>,
) -> Response {
    let Some(admin) = &s.admin else {
        return problem(
            StatusCode::NOT_FOUND,
            "administration disabled",
            "start the service with an admin token to enable live rebuilds",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = given.is_some_and(|g| {
        lienthong_bus::credentials::constant_time_eq(g.as_bytes(), admin.token.as_bytes())
    });
    if !ok {
        return problem(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token",
            "send Authorization: Bearer <token>",
        );
    }
    let chosen: Vec<crate::runner::Runner> = admin
        .runners
        .iter()
        .filter(|r| {
            q.projection
                .as_deref()
                .is_none_or(|p| p == r.projection_name())
        })
        .cloned()
        .collect();
    if chosen.is_empty() {
        return problem(
            StatusCode::NOT_FOUND,
            "no such read model",
            &format!("{:?}", q.projection),
        );
    }
    let names: Vec<&str> = chosen.iter().map(|r| r.projection_name()).collect();
    tokio::spawn(async move {
        for r in chosen {
            if let Err(e) = r.rebuild(&|_, _| {}).await {
                tracing::warn!(projection = r.projection_name(), error = %e, "live rebuild failed; the live read model is unchanged");
            }
        }
    });
    (StatusCode::ACCEPTED, Json(json!({"rebuilding": names}))).into_response()
}

async fn audit_public_key(State(s): State<AppState>) -> Response {
    match &s.audit_public_key {
        Some(k) => Json(json!({"algorithm": "Ed25519", "public_key": k})).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "no audit key",
            "this service does not write audit checkpoints",
        ),
    }
}

async fn healthz(State(s): State<AppState>) -> Result<Response, Unavailable> {
    let projections: serde_json::Map<String, serde_json::Value> = s
        .checkpoints()?
        .into_iter()
        .map(|(n, cp)| {
            (
                n.to_string(),
                json!({
                    "stream_sequence": cp,
                    "tree": s.store.current_name(n).ok().flatten(),
                    "point_in_time": s.point_in_time(n),
                }),
            )
        })
        .collect();
    Ok(
        Json(json!({"status": "ok", "read_only": s.read_only, "projections": projections}))
            .into_response(),
    )
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut body = format!(
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
         # TYPE lienthong_projection_checkpoint gauge\n",
        s.metrics.applied.load(Ordering::Relaxed),
        s.metrics.skipped.load(Ordering::Relaxed),
        s.metrics.batches.load(Ordering::Relaxed),
    );
    for (name, cp) in s.checkpoints().unwrap_or_default() {
        body.push_str(&format!(
            "lienthong_projection_checkpoint{{projection=\"{name}\"}} {cp}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
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
