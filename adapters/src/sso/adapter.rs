//! The sign-on adapter.
//!
//! - Push: `POST /keycloak/events` takes one Keycloak event or a JSON array of them (user or
//!   admin events), as an event-listener webhook sends them; with `push_token_file` set,
//!   callers must send `Authorization: Bearer <token>`. Answers 202 once stored, 400 for
//!   unreadable input (kept in the DLQ as a digest: it holds personal data), 401, 503.
//! - Pull: the admin events API (`/admin/realms/{realm}/admin-events`) with a
//!   client-credentials token, from a cursor in `ADAPTER_STATE` (time + ids at that time).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lienthong_bus::{DeadLetter, Metrics, Outcomes, Publisher};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::info;
use url::Url;

use super::keycloak::{map_admin, map_user, AdminEvent, Pseudonymizer, UserEvent, SUBSYSTEM};
use crate::error::{AdapterError, RecordError};
use crate::publish::{publish_all, Tally};
use crate::push::{metrics_response, problem, unavailable, PushServer};
use crate::state::AdapterState;
use crate::AdapterContext;

fn default_source() -> String {
    "urn:lienthong:phanthiet:sso".to_string()
}
fn default_realm() -> String {
    "binhthuan".to_string()
}
const fn default_poll_interval_secs() -> u64 {
    30
}

/// The admin events API to poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminApiConfig {
    /// Keycloak base URL (the part before `/realms/…` and `/admin/…`).
    pub base_url: Url,
    /// Service-account client with the `view-events` role.
    pub client_id: String,
    /// File holding that client's secret.
    pub client_secret_file: PathBuf,
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    /// Events per page.
    #[serde(default = "default_page")]
    pub page_size: usize,
}

const fn default_page() -> usize {
    100
}

/// Configuration of the sign-on adapter (`[sso]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    #[serde(default = "default_source")]
    pub source: String,
    /// Names this instance's state in `ADAPTER_STATE` (`[a-z0-9_-]`); derived from `source`
    /// when not given. Two instances of one adapter must differ in it.
    #[serde(default)]
    pub instance: Option<String>,
    /// The Keycloak realm.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// File holding the pseudonymisation key (≥ 16 bytes). Never commit it: rotating it
    /// changes every user reference.
    pub pseudonymization_key_file: PathBuf,
    /// Address of the webhook endpoint.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// File holding the bearer token webhook callers must present (required with `listen`).
    #[serde(default)]
    pub push_token_file: Option<PathBuf>,
    #[serde(default)]
    pub admin_api: Option<AdminApiConfig>,
}

fn read_secret(path: &PathBuf, what: &str) -> Result<String, AdapterError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| AdapterError::Config(format!("{what} {}: {e}", path.display())))
}

/// Where events came from: pushed by the event listener (the sender is told what it cannot
/// read, 400, and nothing of that push is kept), or pulled from the admin API (nobody to
/// tell: an unreadable event is dead-lettered as a digest and the cursor moves on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Webhook,
    AdminApi,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SsoIntake {
    #[serde(flatten)]
    pub tally: Tally,
    pub ignored: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct AdminCursor {
    since_ms: i64,
    seen: BTreeSet<String>,
}

#[derive(Clone)]
pub struct SsoAdapter {
    config: SsoConfig,
    publisher: Publisher,
    pseudonymizer: Pseudonymizer,
    push_token: Option<String>,
    state: AdapterState,
    http: reqwest::Client,
    metrics: Metrics,
    /// How the push endpoints listen (HTTPS with a certificate).
    transport: lienthong_bus::tls::Transport,
    webhook: Outcomes,
    admin_api: Outcomes,
}

impl SsoAdapter {
    pub async fn build(config: SsoConfig, ctx: AdapterContext) -> Result<Self, AdapterError> {
        let pseudonymizer = Pseudonymizer::from_file(&config.pseudonymization_key_file)?;
        if config.listen.is_some() && config.push_token_file.is_none() {
            return Err(AdapterError::Config(
                "sso: `listen` needs a `push_token_file`: push endpoints take no anonymous callers"
                    .into(),
            ));
        }
        let push_token = config
            .push_token_file
            .as_deref()
            .map(|p| crate::push::read_token(p, "push_token_file"))
            .transpose()?;
        if config.listen.is_none() && config.admin_api.is_none() {
            return Err(AdapterError::Config(
                "sso: give a `listen` address, an `admin_api`, or both".into(),
            ));
        }
        let instance = crate::state::instance_name(config.instance.as_deref(), &config.source)?;
        let state = AdapterState::open(&ctx, SUBSYSTEM, &instance).await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| AdapterError::Config(e.to_string()))?;
        Ok(Self {
            publisher: ctx.publisher(config.source.clone()),
            config,
            pseudonymizer,
            push_token,
            state,
            http,
            webhook: Outcomes::new(&ctx.metrics, "sso.webhook"),
            admin_api: Outcomes::new(&ctx.metrics, "sso.admin_api"),
            transport: ctx.transport.clone(),
            metrics: ctx.metrics,
        })
    }

    /// What became of the events of each path (`sso.webhook`, `sso.admin_api`).
    pub fn outcomes(&self, via: Via) -> &Outcomes {
        match via {
            Via::Webhook => &self.webhook,
            Via::AdminApi => &self.admin_api,
        }
    }

    /// Maps and publishes Keycloak events (user or admin, as JSON values), in time order.
    /// Pushed: a push holding an event that cannot be read is not published at all
    /// ([`AdapterError::Unreadable`] names the event). Pulled: such an event is dead-lettered
    /// as a digest and the others published.
    pub async fn take(&self, events: Vec<Value>, via: Via) -> Result<SsoIntake, AdapterError> {
        let outcomes = self.outcomes(via);
        let total = events.len();
        let mut parsed = Vec::with_capacity(total);
        let mut unreadable = 0;
        for (n, v) in events.into_iter().enumerate() {
            let time = v.get("time").and_then(Value::as_i64).unwrap_or(0);
            let raw = (via == Via::AdminApi).then(|| v.to_string());
            let mapped = if v.get("operationType").is_some() {
                serde_json::from_value::<AdminEvent>(v).map(|e| map_admin(&e, &self.pseudonymizer))
            } else {
                serde_json::from_value::<UserEvent>(v).map(|e| map_user(&e, &self.pseudonymizer))
            };
            match (mapped, raw) {
                (Ok(m), _) => parsed.push((time, m)),
                (Err(e), None) => {
                    outcomes.refused.add(total as u64);
                    return Err(AdapterError::Unreadable {
                        what: format!("Keycloak event {}", n + 1),
                        source: RecordError::malformed("Keycloak event", None, e.to_string()),
                    });
                }
                (Err(e), Some(raw)) => {
                    // Keycloak events carry personal data: kept as a digest.
                    let letter = DeadLetter::unreadable_digest(
                        self.publisher.source(),
                        "vn.egov.sso.account.deleted",
                        "keycloak-admin-event",
                        raw.as_bytes(),
                        format!("admin event could not be read: {e}"),
                    );
                    self.publisher.keep_dead_letter(&letter).await?;
                    unreadable += 1;
                }
            }
        }
        parsed.sort_by_key(|(t, _)| *t);
        let ignored = parsed.iter().filter(|(_, m)| m.is_none()).count();
        let drafts = parsed.into_iter().filter_map(|(_, m)| m).collect();
        let mut tally = publish_all(&self.publisher, drafts).await?;
        tally.dead_lettered += unreadable;
        tally.record(outcomes);
        outcomes.not_carried.add(ignored as u64);
        Ok(SsoIntake { tally, ignored })
    }

    async fn token(&self, api: &AdminApiConfig) -> Result<String, AdapterError> {
        let secret = read_secret(&api.client_secret_file, "client_secret_file")?;
        let url = api
            .base_url
            .join(&format!(
                "realms/{}/protocol/openid-connect/token",
                self.config.realm
            ))
            .map_err(|e| AdapterError::Config(e.to_string()))?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &api.client_id)
            .append_pair("client_secret", &secret)
            .finish();
        let source = |reason: String| AdapterError::Source {
            url: url.to_string(),
            reason,
        };
        let resp = self
            .http
            .post(url.clone())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| source(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(source(format!("token request answered {}", resp.status())));
        }
        let v: Value = resp.json().await.map_err(|e| source(e.to_string()))?;
        v.get("access_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| source("no access_token in the answer".into()))
    }

    /// One pass over the admin events API from the cursor.
    pub async fn poll_admin_events(&self) -> Result<SsoIntake, AdapterError> {
        let Some(api) = &self.config.admin_api else {
            return Ok(SsoIntake::default());
        };
        let cursor: AdminCursor = self.state.get("admin_cursor").await?.unwrap_or_default();
        let token = self.token(api).await?;
        let url = api
            .base_url
            .join(&format!("admin/realms/{}/admin-events", self.config.realm))
            .map_err(|e| AdapterError::Config(e.to_string()))?;
        let date_from = chrono::DateTime::from_timestamp_millis(cursor.since_ms)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string();
        let mut fresh: Vec<Value> = Vec::new();
        let mut first = 0;
        loop {
            let source = |reason: String| AdapterError::Source {
                url: url.to_string(),
                reason,
            };
            let page: Vec<Value> = self
                .http
                .get(url.clone())
                .bearer_auth(&token)
                .query(&[
                    ("dateFrom", date_from.as_str()),
                    ("first", &first.to_string()),
                    ("max", &api.page_size.to_string()),
                ])
                .send()
                .await
                .map_err(|e| source(e.to_string()))?
                .error_for_status()
                .map_err(|e| source(e.to_string()))?
                .json()
                .await
                .map_err(|e| source(format!("not a list of admin events: {e}")))?;
            let n = page.len();
            for v in page {
                let (t, id) = time_and_id(&v);
                if t > cursor.since_ms || (t == cursor.since_ms && !cursor.seen.contains(&id)) {
                    fresh.push(v);
                }
            }
            if n < api.page_size {
                break;
            }
            first += n;
        }
        if fresh.is_empty() {
            return Ok(SsoIntake::default());
        }
        let mut next = cursor.clone();
        for v in &fresh {
            let (t, id) = time_and_id(v);
            if t > next.since_ms {
                next.since_ms = t;
                next.seen.clear();
            }
            if t == next.since_ms {
                next.seen.insert(id);
            }
        }
        let intake = self.take(fresh, Via::AdminApi).await?;
        self.state.put("admin_cursor", &next).await?;
        Ok(intake)
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/keycloak/events", post(push))
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdapterError> {
        let server = PushServer::start_if(
            SUBSYSTEM,
            self.config.listen,
            || self.router(),
            "POST /keycloak/events",
            &self.transport,
        )
        .await?;
        let interval = Duration::from_secs(
            self.config
                .admin_api
                .as_ref()
                .map(|a| a.poll_interval_secs)
                .unwrap_or(3600)
                .max(1),
        );
        let polled = crate::poll::every(
            SUBSYSTEM,
            "admin events poll",
            interval,
            shutdown,
            || async {
                if self.config.admin_api.is_some() {
                    let i = self.poll_admin_events().await?;
                    if i.tally.published > 0 {
                        info!(
                            adapter = SUBSYSTEM,
                            published = i.tally.published,
                            "admin events"
                        );
                    }
                }
                Ok(())
            },
        )
        .await;
        if let Some(s) = server {
            s.stop().await;
        }
        polled
    }
}

/// An admin event's time (ms) and id, what the cursor is made of.
fn time_and_id(v: &Value) -> (i64, String) {
    let time = v.get("time").and_then(Value::as_i64).unwrap_or(0);
    let id = v.get("id").and_then(Value::as_str).unwrap_or_default();
    (time, id.to_string())
}

async fn push(State(a): State<SsoAdapter>, headers: HeaderMap, body: Bytes) -> Response {
    let refused = |response: Response| {
        a.webhook.refused.inc();
        response
    };
    let Some(expected) = &a.push_token else {
        return refused(problem(
            StatusCode::UNAUTHORIZED,
            "push is not configured",
            "this adapter has no push_token_file",
        ));
    };
    if let Err(r) = crate::push::check_bearer(&headers, expected) {
        return refused(r);
    }
    let events = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items,
        Ok(v @ Value::Object(_)) => vec![v],
        Ok(_) | Err(_) => {
            return refused(problem(
                StatusCode::BAD_REQUEST,
                "the body is not a Keycloak event or a JSON array of them",
                "nothing was kept: fix it and send it again",
            ));
        }
    };
    match a.take(events, Via::Webhook).await {
        Ok(intake) => (StatusCode::ACCEPTED, Json(intake)).into_response(),
        Err(AdapterError::Unreadable { what, source }) => problem(
            StatusCode::BAD_REQUEST,
            "not a readable Keycloak event (nothing of this push was kept: fix it and send it again)",
            &format!("{what}: {source}"),
        ),
        Err(e) => unavailable(&e),
    }
}

async fn metrics(State(a): State<SsoAdapter>) -> Response {
    metrics_response(a.metrics.render())
}
