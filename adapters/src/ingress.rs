//! The HTTP CloudEvents ingress: the door for subsystems not written in Rust.
//!
//! `POST /events` takes the CloudEvents HTTP binding in **structured** mode
//! (`Content-Type: application/cloudevents+json`), **binary** mode (`ce-` headers, the body
//! is the data) and **batch** mode (`application/cloudevents-batch+json`, a JSON array of
//! structured events). Each caller presents `Authorization: Bearer <token>`; its token is
//! bound to the `source`s and `type`s it may publish (exact values, or prefixes ending in
//! `*`). The configuration holds only the token's SHA-256, never the token.
//!
//! Answers:
//! - 202 with the stored ids, once every PubAck arrived;
//! - 400 `application/problem+json` listing every schema violation (JSON pointer) of every
//!   invalid event — those go to the DLQ and nothing of the request is published;
//! - 401 without or with an unknown token, 403 for a source or type the token may not use;
//! - 413 over `max_body_bytes`; 415 for another content type;
//! - 503 when the bus cannot store (nothing is acknowledged that is not stored; re-posting
//!   the same source + id is harmless).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lienthong_bus::cloudevents::{AttributesReader, Event};
use lienthong_bus::credentials::constant_time_eq;
use lienthong_bus::publisher::Prepared;
use lienthong_bus::{BusError, DeadLetter, Publisher};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::error::AdapterError;
use crate::push::problem;

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8090))
}
const fn default_max_body_bytes() -> usize {
    1024 * 1024
}

/// One caller of the ingress.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caller {
    /// Who it is (for logs).
    pub name: String,
    /// Hex SHA-256 of its bearer token.
    pub token_sha256: String,
    /// `source`s it may publish: exact URIs, or prefixes ending in `*`.
    pub sources: Vec<String>,
    /// `type`s it may publish: exact, or prefixes ending in `*` (`vn.egov.field_reports.*`).
    pub types: Vec<String>,
}

/// Configuration of the ingress (`lienthong ingress --config FILE`, or inside `up`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest request body accepted (413 beyond).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    pub callers: Vec<Caller>,
}

/// Hex SHA-256 of a token, as the configuration stores it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn allowed(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => p == value,
    })
}

#[derive(Clone)]
pub struct Ingress {
    config: Arc<IngressConfig>,
    publisher: Publisher,
}

/// One stored event, as answered with 202.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stored {
    pub id: String,
    pub source: String,
    pub stream: String,
    pub sequence: u64,
    pub duplicate: bool,
}

impl Ingress {
    /// `publisher` connects as the `ingress` role; its own `source` is not used (each event
    /// carries its own).
    pub fn new(config: IngressConfig, publisher: Publisher) -> Result<Self, AdapterError> {
        for c in &config.callers {
            if c.token_sha256.len() != 64 || hex::decode(&c.token_sha256).is_err() {
                return Err(AdapterError::Config(format!(
                    "caller {}: token_sha256 must be 64 hex digits",
                    c.name
                )));
            }
            if c.sources.is_empty() || c.types.is_empty() {
                return Err(AdapterError::Config(format!(
                    "caller {}: give at least one source and one type",
                    c.name
                )));
            }
        }
        Ok(Self {
            config: Arc::new(config),
            publisher,
        })
    }

    fn caller(&self, headers: &HeaderMap) -> Option<&Caller> {
        let token = headers
            .get("authorization")?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .trim();
        let hash = token_hash(token);
        self.config
            .callers
            .iter()
            .find(|c| constant_time_eq(c.token_sha256.as_bytes(), hash.as_bytes()))
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/events", post(post_events))
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .layer(DefaultBodyLimit::max(self.config.max_body_bytes))
            .with_state(self.clone())
    }

    /// Binds the configured address and serves until `shutdown`.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdapterError> {
        let addr = self.config.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| AdapterError::Config(format!("ingress listen {addr}: {e}")))?;
        self.serve_on(listener, shutdown).await
    }

    /// Serves on a bound listener until `shutdown`.
    pub async fn serve_on(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdapterError> {
        let addr = listener
            .local_addr()
            .map_err(|e| AdapterError::Config(format!("ingress: {e}")))?;
        info!(%addr, callers = self.config.callers.len(), "CloudEvents ingress: POST /events");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| AdapterError::Config(format!("ingress: {e}")))
    }
}

/// Reads the request as CloudEvents, in whichever mode it came.
fn read_events(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Event>, (StatusCode, String)> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bad = |e: String| (StatusCode::BAD_REQUEST, e);
    if content_type.starts_with("application/cloudevents-batch+json") {
        let items: Vec<Value> = serde_json::from_slice(body)
            .map_err(|e| bad(format!("batch is not a JSON array: {e}")))?;
        return items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                serde_json::from_value::<Event>(v)
                    .map_err(|e| bad(format!("batch item {i} is not a CloudEvent: {e}")))
            })
            .collect();
    }
    if content_type.starts_with("application/cloudevents+json") {
        return serde_json::from_slice::<Event>(body)
            .map(|e| vec![e])
            .map_err(|e| bad(format!("not a structured-mode CloudEvent: {e}")));
    }
    if headers.contains_key("ce-specversion") {
        let mut h = async_nats::HeaderMap::new();
        for (name, value) in headers {
            if let Ok(v) = value.to_str() {
                let n = name.as_str();
                let n = if n == "content-type" {
                    "Content-Type"
                } else {
                    n
                };
                h.insert(n, v);
            }
        }
        return lienthong_bus::envelope::decode(Some(&h), body)
            .map(|e| vec![e])
            .map_err(|e| bad(format!("binary mode: {e}")));
    }
    Err((
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("Content-Type {content_type:?}: use application/cloudevents+json, application/cloudevents-batch+json, or binary mode with ce- headers"),
    ))
}

async fn post_events(
    State(ing): State<Ingress>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let Some(caller) = ing.caller(&headers).cloned() else {
        return problem(
            StatusCode::UNAUTHORIZED,
            "missing or unknown token",
            "send Authorization: Bearer <token>",
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request too large",
                &format!(
                    "the limit is {} bytes; send smaller batches",
                    ing.config.max_body_bytes
                ),
            )
        }
        Err(e) => return problem(StatusCode::BAD_REQUEST, "unreadable body", &e.to_string()),
    };
    let events = match read_events(&headers, &body) {
        Ok(e) if e.is_empty() => {
            return problem(
                StatusCode::BAD_REQUEST,
                "empty batch",
                "send at least one event",
            )
        }
        Ok(e) => e,
        Err((status, detail)) => {
            if status == StatusCode::BAD_REQUEST {
                let letter = DeadLetter::unreadable_digest(
                    &format!("urn:lienthong:ingress:{}", caller.name),
                    "unknown",
                    "ingress",
                    &body,
                    detail.clone(),
                );
                if let Err(e) = ing.publisher.keep_dead_letter(&letter).await {
                    return problem(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the bus cannot store this now; retry",
                        &e.to_string(),
                    );
                }
            }
            return problem(status, "not CloudEvents", &detail);
        }
    };
    // Authorisation: every event's source and type must be the caller's.
    let forbidden: Vec<Value> = events
        .iter()
        .filter(|e| {
            !allowed(&caller.sources, e.source().as_str()) || !allowed(&caller.types, e.ty())
        })
        .map(|e| json!({"id": e.id(), "source": e.source().to_string(), "type": e.ty()}))
        .collect();
    if !forbidden.is_empty() {
        return (
            StatusCode::FORBIDDEN,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            Json(json!({
                "type": "about:blank", "title": "source or type not allowed for this token", "status": 403,
                "detail": format!("caller {} may publish sources {:?} and types {:?}", caller.name, caller.sources, caller.types),
                "events": forbidden,
            })),
        )
            .into_response();
    }
    // Validation: all or nothing.
    let mut prepared: Vec<Prepared> = Vec::new();
    let mut invalid: Vec<Value> = Vec::new();
    for event in events {
        match ing.publisher.prepare(event, None) {
            Ok(p) => prepared.push(p),
            Err(rejected) => {
                let ev = *rejected.event;
                let (id, ty) = (ev.id().to_string(), ev.ty().to_string());
                match ing.publisher.dead_letter(ev, rejected.error).await {
                    BusError::Invalid {
                        violations,
                        dead_letter,
                        ..
                    } => invalid.push(json!({
                        "id": id, "type": ty, "dead_letter_sequence": dead_letter,
                        "violations": violations,
                    })),
                    other => {
                        return problem(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "the bus cannot store this now; retry",
                            &other.to_string(),
                        )
                    }
                }
            }
        }
    }
    if !invalid.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            Json(json!({
                "type": "about:blank", "title": "schema violations", "status": 400,
                "detail": format!("{} event(s) do not match their schema; they are kept in the DLQ and nothing of this request was published", invalid.len()),
                "invalid": invalid,
            })),
        )
            .into_response();
    }
    let mut stored = Vec::with_capacity(prepared.len());
    for p in prepared {
        let source = caller_source(&p);
        match ing.publisher.send(p).await {
            Ok(ack) => stored.push(Stored {
                id: ack.id,
                source,
                stream: ack.stream,
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            }),
            Err(e) if e.is_transient() => {
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the bus cannot store this now; retry (re-posting is harmless)",
                    &e.to_string(),
                )
            }
            Err(e) => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "refused by the bus",
                    &e.to_string(),
                )
            }
        }
    }
    (StatusCode::ACCEPTED, Json(json!({"stored": stored}))).into_response()
}

fn caller_source(p: &Prepared) -> String {
    serde_json::from_slice::<Value>(&p.payload)
        .ok()
        .and_then(|v| v.get("source").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_tokens() {
        let p = vec![
            "vn.egov.field_reports.*".to_string(),
            "vn.egov.x.y.z".to_string(),
        ];
        assert!(allowed(&p, "vn.egov.field_reports.report.submitted"));
        assert!(allowed(&p, "vn.egov.x.y.z"));
        assert!(!allowed(&p, "vn.egov.x.y.zz"));
        assert!(!allowed(&p, "vn.egov.documents.document.sent"));
        assert_eq!(token_hash("x").len(), 64);
    }

    #[test]
    fn the_example_config_parses() {
        let c: IngressConfig = toml::from_str(include_str!("../examples/ingress.toml")).unwrap();
        assert_eq!(c.callers.len(), 1);
    }
}
