//! The HTTP API of the replay service. Each read model serves its own endpoints (see its
//! `http` module, listed in [`crate::read_models`]); here is what is not one read model's:
//!
//! - [`kpi`] — `/api/v1/kpi`, the operations centre's summary, one section per read model.
//! - [`catalog`] — `/asyncapi.json` (AsyncAPI 3.0) and `/catalog` (the same for people).
//! - `/schemas/`, `/schemas/{path}`, `/healthz`, `/metrics`, `/api/v1/audit/public-key`,
//!   `POST /api/v1/admin/rebuild`.
//! - The IOC dashboard and its endpoints are [`crate::dashboard::http`]'s.
//!
//! Tables answer CSV with `Accept: text/csv` or `?format=csv`; errors are problem+json.

mod catalog;
pub mod kpi;
pub mod openapi;

use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::api::{problem, Unavailable};
pub use crate::api::{Admin, AppState};

/// Every endpoint: the generic ones and each read model's.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/kpi", get(kpi::kpi))
        .route("/openapi.json", get(openapi::openapi))
        .route("/asyncapi.json", get(catalog::asyncapi_json))
        .route("/catalog", get(catalog::page))
        .route("/api/v1/audit/public-key", get(audit_public_key))
        .route("/api/v1/admin/rebuild", axum::routing::post(admin_rebuild))
        .route("/schemas", get(schema_index))
        .route("/schemas/", get(schema_index))
        .route("/schemas/{*path}", get(schema_file));
    router = crate::datasets::http::routes(router);
    router = crate::dashboard::http::routes(router);
    router = crate::registered::http::routes(router);
    for model in crate::read_models::all() {
        router = (model.routes)(router);
    }
    router.with_state(state)
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
    // Replay alarms: a stream recreated or truncated under its read model.
    let alarms = s.metrics.current_alarms();
    // Components down (a supervisor restarting them).
    let down = s.health.as_ref().map(|h| h.down_now()).unwrap_or_default();
    // Certificates in use: one expiring within 30 days degrades the answer (the service
    // still serves); one expired, or not readable, is an error.
    let certificates = crate::api::certificate_states(&s.certificates);
    let broken = certificates
        .iter()
        .any(|c| matches!(c.state, "expired" | "not_yet_valid" | "unreadable"));
    let expiring = certificates.iter().any(|c| c.state == "expiring");
    // The history found tampered with by the last verification, for the record: it does not
    // make the answer an error (a stream an operator recreated stays so for good; a stream
    // that lost messages is an alarm of its read model above).
    let history: serde_json::Map<String, serde_json::Value> = s
        .integrity
        .as_ref()
        .map(|i| i.latest())
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v.tampering.is_some())
        .map(|v| (v.stream, json!(v.alarm)))
        .collect();
    let (status, code) = if !alarms.is_empty() || !down.is_empty() || broken {
        ("error", StatusCode::SERVICE_UNAVAILABLE)
    } else if expiring {
        ("degraded", StatusCode::OK)
    } else {
        ("ok", StatusCode::OK)
    };
    Ok((
        code,
        Json(json!({"status": status, "alarms": alarms, "down": down, "certificates": certificates, "read_only": s.read_only, "projections": projections, "repaired_at_start": s.store.repairs(), "history": history})),
    )
        .into_response())
}

async fn metrics(State(s): State<AppState>) -> Response {
    let cpu = s.metrics.cpu.seconds();
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
         # HELP lienthong_replay_cpu_seconds_total Processor time of the folds, by stage (decode and validate, fold, commit).\n\
         # TYPE lienthong_replay_cpu_seconds_total counter\n\
         lienthong_replay_cpu_seconds_total{{stage=\"decode\"}} {:.6}\n\
         lienthong_replay_cpu_seconds_total{{stage=\"fold\"}} {:.6}\n\
         lienthong_replay_cpu_seconds_total{{stage=\"commit\"}} {:.6}\n\
         # HELP lienthong_replay_alarms_total Replay alarms raised (a stream recreated or truncated under its read model).\n\
         # TYPE lienthong_replay_alarms_total counter\n\
         lienthong_replay_alarms_total {}\n\
         # HELP lienthong_replay_alarm A replay alarm is raised now for this stream (1).\n\
         # TYPE lienthong_replay_alarm gauge\n\
         {}\
         # HELP lienthong_projection_checkpoint Last stream sequence applied, per projection.\n\
         # TYPE lienthong_projection_checkpoint gauge\n",
        s.metrics.applied.load(Ordering::Relaxed),
        s.metrics.skipped.load(Ordering::Relaxed),
        s.metrics.batches.load(Ordering::Relaxed),
        cpu.0,
        cpu.1,
        cpu.2,
        s.metrics.alarms_raised.load(Ordering::Relaxed),
        s.metrics
            .current_alarms()
            .keys()
            .map(|stream| format!("lienthong_replay_alarm{{stream=\"{stream}\"}} 1\n"))
            .collect::<String>(),
    );
    for (name, cp) in s.checkpoints().unwrap_or_default() {
        body.push_str(&format!(
            "lienthong_projection_checkpoint{{projection=\"{name}\"}} {cp}\n"
        ));
    }
    if let Some(components) = &s.components {
        body.push_str(&components.render());
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
