//! What every HTTP endpoint of the replay service shares: the state, problem answers, CSV.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
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
    /// Where clients reach NATS, for the event catalogue's servers.
    pub nats_urls: Vec<String>,
    /// Other components' counters (adapters, ingress in the same process), for `/metrics`.
    pub components: Option<lienthong_bus::Metrics>,
    /// Reads streams directly (the agency registry for the catalogue, a report's history).
    pub reader: Option<lienthong_bus::StreamReader>,
    /// Who publishes the datasets, under which licence, withholding which counts.
    pub publication: crate::datasets::dcat::Publication,
    /// The latest verification of the audited streams, when this service verifies them.
    pub integrity: Option<crate::dashboard::integrity::Integrity>,
    /// Components a supervisor reports down (`lienthong up`: its nats-server).
    pub health: Option<lienthong_bus::health::Components>,
    /// Turns true when the service shuts down (endless answers end then).
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The certificates this process's links use (its own and the CA's): `/healthz`
    /// degrades and the integrity panel warns from 30 days before one expires.
    pub certificates: Vec<std::path::PathBuf>,
}

/// What `POST /api/v1/admin/rebuild` needs.
#[derive(Clone)]
pub struct Admin {
    pub token: String,
    pub runners: Vec<crate::runner::Runner>,
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

/// What a caller sent, as an answer repeats it: at most 64 characters.
pub fn shown(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// A `?year=` parameter: four digits, or absent (empty counts as absent); otherwise a 400
/// problem naming what was sent.
pub fn year_param(year: Option<&str>) -> Result<Option<String>, Box<Response>> {
    match year.filter(|y| !y.is_empty()) {
        None => Ok(None),
        Some(y) if y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(y.into())),
        Some(y) => Err(Box::new(problem(
            StatusCode::BAD_REQUEST,
            "not a year",
            &format!("year={:?}: give four digits, e.g. year=2023", shown(y)),
        ))),
    }
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
        // A full disk is said as such (503, retry later), not as an internal error: sled,
        // once a write failed, may fail reads that would merge pages, until the store is
        // opened again with room on its disk.
        if self.0.contains("No space left on device") || self.0.contains("StorageFull") {
            let mut r = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the read models' disk is full; retry once there is room (they catch up by themselves)",
                &self.0,
            );
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            return r;
        }
        internal(self.0)
    }
}

pub fn internal(e: impl std::fmt::Display) -> Response {
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "read model unavailable",
        &e.to_string(),
    )
}

impl AppState {
    /// The served tree of a projection.
    pub fn tree(&self, projection: &str) -> crate::Result<sled::Tree> {
        self.store.current(projection)
    }

    /// Each read model with the last stream sequence folded into it.
    /// (The generic read models of registered subsystems too, named after them.)
    pub fn checkpoints(&self) -> crate::Result<Vec<(&'static str, u64)>> {
        crate::read_models::projections()
            .iter()
            .map(|p| p.name())
            .chain(
                lienthong_bus::registry::live::subsystems()
                    .into_iter()
                    .map(|s| s.name),
            )
            .map(|name| Ok((name, checkpoint(&self.store.current(name)?)?)))
            .collect()
    }

    pub fn point_in_time(&self, projection: &str) -> Option<String> {
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

/// A certificate in use and how near its end it is, for `/healthz` and the dashboard.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertificateState {
    pub path: String,
    pub subject: String,
    pub not_after: Option<chrono::DateTime<chrono::Utc>>,
    /// `valid`, `expiring` (within 30 days), `expired`, `not_yet_valid` or `unreadable`.
    pub state: &'static str,
    pub days_left: Option<i64>,
    /// What to do, in words, when it is not `valid`.
    pub warning: Option<String>,
}

/// The state of each certificate in `paths`, read now (a rotated file is seen at once).
pub fn certificate_states(paths: &[std::path::PathBuf]) -> Vec<CertificateState> {
    use lienthong_bus::tls::pki::{inspect, Expiry};
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        match inspect(path) {
            Ok(certs) => {
                for c in certs {
                    let (state, days, warning) = match c.expiry(now) {
                        Expiry::Valid(d) => ("valid", Some(d), None),
                        Expiry::Expiring(d) => (
                            "expiring",
                            Some(d),
                            Some(format!(
                                "{} expires in {d} days: issue a new one and replace the file",
                                c.subject
                            )),
                        ),
                        Expiry::Expired => (
                            "expired",
                            Some(0),
                            Some(format!(
                                "{} has expired: links using it are refused",
                                c.subject
                            )),
                        ),
                        Expiry::NotYetValid => (
                            "not_yet_valid",
                            None,
                            Some(format!("{} is not valid yet: check the clocks", c.subject)),
                        ),
                    };
                    out.push(CertificateState {
                        path: shown.clone(),
                        subject: c.subject,
                        not_after: Some(c.not_after),
                        state,
                        days_left: days,
                        warning,
                    });
                }
            }
            Err(e) => out.push(CertificateState {
                path: shown,
                subject: String::new(),
                not_after: None,
                state: "unreadable",
                days_left: None,
                warning: Some(e.to_string()),
            }),
        }
    }
    out
}
