//! A Keycloak stand-in for demos and tests: the client-credentials token endpoint and the
//! admin events API (newest first, `dateFrom`, `first`, `max`), over the fixtures or any
//! events given; and a helper that pushes user events to a webhook, as Keycloak's event
//! listener would.

use std::sync::{Arc, RwLock};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// The fixtures' user events.
pub fn fixture_user_events() -> Vec<Value> {
    include_str!("../../fixtures/sso/keycloak-events.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture"))
        .collect()
}

/// The fixtures' admin events.
pub fn fixture_admin_events() -> Vec<Value> {
    include_str!("../../fixtures/sso/admin-events.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture"))
        .collect()
}

#[derive(Clone)]
pub struct KeycloakSimulator {
    admin_events: Arc<RwLock<Vec<Value>>>,
    client_id: String,
    client_secret: String,
    token: String,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    client_id: String,
    client_secret: String,
}

#[derive(Deserialize)]
struct AdminQuery {
    #[serde(rename = "dateFrom")]
    date_from: Option<String>,
    first: Option<usize>,
    max: Option<usize>,
}

impl KeycloakSimulator {
    pub fn new(admin_events: Vec<Value>, client_id: &str, client_secret: &str) -> Self {
        Self {
            admin_events: Arc::new(RwLock::new(admin_events)),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            token: format!("sim-{}", hex::encode(rand::random::<[u8; 12]>())),
        }
    }

    pub fn add_admin_event(&self, e: Value) {
        self.admin_events.write().expect("lock").push(e);
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/realms/{realm}/protocol/openid-connect/token", post(token))
            .route("/admin/realms/{realm}/admin-events", get(admin_events))
            .with_state(self.clone())
    }

    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

async fn token(
    State(s): State<KeycloakSimulator>,
    Path(_realm): Path<String>,
    Form(f): Form<TokenForm>,
) -> Response {
    if f.grant_type != "client_credentials"
        || f.client_id != s.client_id
        || f.client_secret != s.client_secret
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized_client"})),
        )
            .into_response();
    }
    Json(json!({"access_token": s.token, "token_type": "Bearer", "expires_in": 300}))
        .into_response()
}

async fn admin_events(
    State(s): State<KeycloakSimulator>,
    Path(realm): Path<String>,
    headers: HeaderMap,
    Query(q): Query<AdminQuery>,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {}", s.token)) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "HTTP 401 Unauthorized"})),
        )
            .into_response();
    }
    let from_ms = q
        .date_from
        .as_deref()
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
        .unwrap_or(i64::MIN);
    let mut events: Vec<Value> = s
        .admin_events
        .read()
        .expect("lock")
        .iter()
        .filter(|e| e["realmId"].as_str() == Some(realm.as_str()))
        .filter(|e| e["time"].as_i64().unwrap_or(0) >= from_ms)
        .cloned()
        .collect();
    // Keycloak answers newest first.
    events.sort_by_key(|e| std::cmp::Reverse(e["time"].as_i64().unwrap_or(0)));
    let first = q.first.unwrap_or(0);
    let max = q.max.unwrap_or(100);
    Json(events.into_iter().skip(first).take(max).collect::<Vec<_>>()).into_response()
}

/// Pushes user events to a webhook URL in batches, as Keycloak's event listener would.
pub async fn push_user_events(
    url: &str,
    token: Option<&str>,
    events: &[Value],
    batch: usize,
) -> Result<(), crate::AdapterError> {
    let http = reqwest::Client::new();
    let fail = |reason: String| crate::AdapterError::Source {
        url: url.to_string(),
        reason,
    };
    for chunk in events.chunks(batch.max(1)) {
        let mut req = http.post(url).json(&chunk);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!(
                "answered {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            )));
        }
    }
    Ok(())
}
