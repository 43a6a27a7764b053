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
//! - 400 `application/problem+json` naming every violation of the CloudEvents 1.0
//!   specification or the contract (`violations`, JSON pointers into the request) — nothing is
//!   kept; or every schema violation (and too-large event) of every invalid event
//!   (`invalid`) — those go to the DLQ and nothing of the request is published;
//! - 401 without or with an unknown token, 403 for a source or type the token may not use;
//! - 413 over `max_body_bytes` of event (the body, and in binary mode the `ce-` headers);
//!   415 for another content type;
//! - 503 only when the bus cannot store now (nothing is acknowledged that is not stored;
//!   re-posting the same source + id is harmless).
//!
//! Every event is counted in `lienthong_records_total{path="ingress"}` (`GET /metrics`).
//!
//! - [`request`]: reading the request, conformance, sizes.
//! - [`handler`]: `POST /events`.

mod handler;
pub mod request;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use lienthong_bus::credentials::constant_time_eq;
use lienthong_bus::{Metrics, Outcomes, Publisher};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::info;

/// How long the ingress waits for a stream's acknowledgement before asking again (same
/// `Nats-Msg-Id`, so stored once): an acknowledgement lost with a stream leader (a node of a
/// cluster dying) is asked again after 2 s rather than the client's default 5, while the
/// HTTP caller waits for its 202.
pub const ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The JetStream context the ingress publishes with ([`ACK_TIMEOUT`]).
pub fn jetstream(client: async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .build(client)
}

use crate::error::AdapterError;

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
    metrics: Metrics,
    outcomes: Outcomes,
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
    pub fn new(
        config: IngressConfig,
        publisher: Publisher,
        metrics: &Metrics,
    ) -> Result<Self, AdapterError> {
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
            metrics: metrics.clone(),
            outcomes: Outcomes::new(metrics, "ingress"),
        })
    }

    /// What became of the events posted (`lienthong_records_total{path="ingress"}`).
    pub fn outcomes(&self) -> &Outcomes {
        &self.outcomes
    }

    /// The caller presenting the bearer token of `headers`: one of the configuration's, or
    /// the publishers of a subsystem registered on the running bus (its source, its types).
    fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        let token = headers
            .get("authorization")?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .trim();
        let hash = token_hash(token);
        let matches = |h: &str| constant_time_eq(h.as_bytes(), hash.as_bytes());
        if let Some(c) = self
            .config
            .callers
            .iter()
            .find(|c| matches(&c.token_sha256))
        {
            return Some(c.clone());
        }
        lienthong_bus::registry::live::registrations()
            .into_iter()
            .find(|r| matches(&r.ingress_token_sha256))
            .map(|r| Caller {
                name: r.role.clone(),
                token_sha256: r.ingress_token_sha256.clone(),
                sources: vec![r.spec.source.clone()],
                types: vec![format!("vn.egov.{}.*", r.spec.name)],
            })
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/events", post(handler::post_events))
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .route(
                "/metrics",
                get(|State(ing): State<Ingress>| async move {
                    crate::push::metrics_response(ing.metrics.render())
                }),
            )
            .layer(DefaultBodyLimit::max(self.config.max_body_bytes))
            .with_state(self.clone())
    }

    /// Binds the configured address and serves until `shutdown`: HTTPS with a certificate
    /// in `transport`; plaintext beyond loopback only when asked for.
    pub async fn serve(
        self,
        transport: &lienthong_bus::tls::Transport,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdapterError> {
        let addr = self.config.listen;
        transport.check_listener("the ingress", &addr.ip().to_string(), addr.port())?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| AdapterError::Config(format!("ingress listen {addr}: {e}")))?;
        let listener = HttpListener::new("the ingress", tcp, transport)?;
        self.serve_on(listener, shutdown).await
    }

    /// Serves on a bound listener until `shutdown`.
    pub async fn serve_on(
        self,
        listener: HttpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdapterError> {
        info!(url = %listener.url(), callers = self.config.callers.len(), "CloudEvents ingress: POST /events");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| AdapterError::Config(format!("ingress: {e}")))
    }
}

use lienthong_bus::tls::http::Listener as HttpListener;

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
        let c: IngressConfig = toml::from_str(include_str!("../../examples/ingress.toml")).unwrap();
        assert_eq!(c.callers.len(), 1);
    }
}
