//! HTTP push endpoints that some adapters offer beside polling (documents, sign-on), and the
//! problem+json answers they share.

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tracing::info;

use crate::error::AdapterError;

/// A running push server; stopped (gracefully) when dropped.
pub struct PushServer {
    _stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl PushServer {
    /// [`PushServer::start`] when an address is configured (`None` otherwise).
    pub async fn start_if(
        adapter: &str,
        listen: Option<SocketAddr>,
        app: impl FnOnce() -> Router,
        what: &str,
        transport: &lienthong_bus::tls::Transport,
    ) -> Result<Option<Self>, AdapterError> {
        match listen {
            Some(addr) => Ok(Some(
                Self::start(adapter, addr, app(), what, transport).await?,
            )),
            None => Ok(None),
        }
    }

    /// Binds `addr` and serves `app` until the server is stopped or dropped: HTTPS with a
    /// certificate in `transport`; plaintext beyond loopback only when asked for.
    pub async fn start(
        adapter: &str,
        addr: SocketAddr,
        app: Router,
        what: &str,
        transport: &lienthong_bus::tls::Transport,
    ) -> Result<Self, AdapterError> {
        let name = format!("{adapter}'s push endpoints");
        transport.check_listener(&name, &addr.ip().to_string(), addr.port())?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| AdapterError::Config(format!("{adapter} listen {addr}: {e}")))?;
        let listener = lienthong_bus::tls::http::Listener::new(&name, tcp, transport)?;
        info!(adapter, url = %listener.url(), "push endpoints: {what}");
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // Also completes when the sender is dropped.
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
        });
        Ok(Self { _stop: stop, task })
    }

    /// Stops accepting, finishes the requests in flight.
    pub async fn stop(self) {
        let Self { _stop, task } = self;
        drop(_stop);
        let _ = task.await;
    }
}

/// A `/metrics` answer: Prometheus text exposition.
pub fn metrics_response(body: String) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

/// An RFC 9457 problem answer.
pub fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    with_retry_after(
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            Json(json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail})),
        )
            .into_response(),
    )
}

/// How long a sender told "not now" (503) should wait before trying again, in seconds.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// A 503 answer says when to try again (`Retry-After`), as HTTP senders and their retry
/// libraries expect.
pub fn with_retry_after(mut r: Response) -> Response {
    if r.status() == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(RETRY_AFTER_SECONDS),
        );
    }
    r
}

/// 503: the bus cannot store now; the caller should retry.
pub fn unavailable(e: &AdapterError) -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "the bus cannot store this now; retry",
        &e.to_string(),
    )
}

/// The token a push endpoint requires, read from its file (trimmed; empty is refused).
pub fn read_token(path: &std::path::Path, what: &str) -> Result<String, AdapterError> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| AdapterError::Config(format!("{what} {}: {e}", path.display())))?
        .trim()
        .to_string();
    if token.is_empty() {
        return Err(AdapterError::Config(format!(
            "{what} {} is empty",
            path.display()
        )));
    }
    Ok(token)
}

/// Checks `Authorization: Bearer <token>` in constant time; the 401 answer otherwise.
#[allow(clippy::result_large_err)]
pub fn check_bearer(headers: &axum::http::HeaderMap, expected: &str) -> Result<(), Response> {
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g)
            if lienthong_bus::credentials::constant_time_eq(g.as_bytes(), expected.as_bytes()) =>
        {
            Ok(())
        }
        _ => Err(problem(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
            "send Authorization: Bearer <token> (the push token of this endpoint)",
        )),
    }
}
