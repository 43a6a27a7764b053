//! The online-meetings adapter: receives BigBlueButton webhooks and Jitsi event-sync posts,
//! maps them (participants pseudonymised, organs placed among the wards) and publishes.
//!
//! Endpoints (on `listen`):
//! - `POST /meetings/bbb` — bbb-webhooks posts; `?checksum=` (the configured algorithm over
//!   callback URL + body + shared secret) or `Authorization: Bearer <shared secret>`.
//! - `POST /meetings/jitsi/events/{room,occupant}/{created,destroyed,joined,left}` — prosody
//!   event_sync posts with `Authorization: Bearer <token>`.
//! - `GET /healthz`, `GET /metrics`.
//!
//! Every record ends one way: published (or already stored), dead-lettered (unreadable:
//! kept as a digest, it holds personal data), not carried (event kinds the bus does not
//! carry, counted), or refused (401, 400). The answer is 2xx only once everything in the
//! post is stored. BigBlueButton counts *any* answer as delivered and retries only on errors
//! and time-outs, so when the bus cannot store, the adapter keeps trying for `hold_secs`
//! before it answers 503: long enough that the sender's own time-out fires first and it
//! sends the post again (same ids, stored once).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lienthong_bus::{DeadLetter, EventDraft, Metrics, Outcomes, Publisher};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tracing::warn;

use super::bbb::{self, ChecksumAlgorithm};
use super::jitsi::{self, Rooms};
use super::mapping::{MapContext, Mapped, SUBSYSTEM};
use crate::error::AdapterError;
use crate::error::RecordError;
use crate::pseudonym::Pseudonymizer;
use crate::publish::{publish_records, tagged, Tally};
use crate::push::{check_bearer, metrics_response, problem, unavailable, PushServer};
use crate::state::{hashed, AdapterState};
use crate::wards::Wards;
use crate::AdapterContext;

fn default_source() -> String {
    "urn:lienthong:phanthiet:meetings".to_string()
}
fn default_host_organ() -> String {
    "UBND thành phố Phan Thiết".to_string()
}
fn default_city_unit() -> String {
    "ubnd-phanthiet".to_string()
}
const fn default_hold_secs() -> u64 {
    30
}

/// BigBlueButton's callback (bbb-webhooks).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BbbConfig {
    /// The callback URL as registered with bbb-webhooks (the checksum covers it), without
    /// the `checksum` parameter.
    pub callback_url: String,
    /// File holding the shared secret.
    pub shared_secret_file: PathBuf,
    #[serde(default)]
    pub checksum_algorithm: ChecksumAlgorithm,
}

/// Jitsi's event_sync module.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JitsiConfig {
    /// File holding the bearer token event_sync sends.
    pub token_file: PathBuf,
}

/// Configuration of the meetings adapter (`[meetings]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingsConfig {
    #[serde(default = "default_source")]
    pub source: String,
    /// Names this instance's state in `ADAPTER_STATE`; derived from `source` when not given.
    #[serde(default)]
    pub instance: Option<String>,
    /// Address of the push endpoints.
    pub listen: SocketAddr,
    /// File holding the pseudonymisation key (≥ 16 bytes); never commit it.
    pub pseudonymization_key_file: PathBuf,
    /// The organ hosting meetings whose system does not say (Jitsi rooms).
    #[serde(default = "default_host_organ")]
    pub host_organ: String,
    /// The Jitsi unit naming the city's People's Committee.
    #[serde(default = "default_city_unit")]
    pub city_unit: String,
    /// How long to keep trying to store a post while the bus is unavailable.
    #[serde(default = "default_hold_secs")]
    pub hold_secs: u64,
    #[serde(default)]
    pub bbb: Option<BbbConfig>,
    #[serde(default)]
    pub jitsi: Option<JitsiConfig>,
}

/// What one post did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Intake {
    #[serde(flatten)]
    pub tally: Tally,
    pub not_carried: usize,
}

struct Secrets {
    bbb: Option<(BbbConfig, String)>,
    jitsi_token: Option<String>,
}

#[derive(Clone)]
pub struct MeetingsAdapter {
    config: MeetingsConfig,
    secrets: Arc<Secrets>,
    ctx: Arc<MapContext>,
    publisher: Publisher,
    state: AdapterState,
    /// Jitsi posts are handled one at a time: a room's memory is read, updated and saved.
    rooms: Arc<Mutex<()>>,
    metrics: Metrics,
    /// How the push endpoints listen (HTTPS with a certificate).
    transport: lienthong_bus::tls::Transport,
    bbb: Outcomes,
    jitsi: Outcomes,
}

impl MeetingsAdapter {
    pub async fn build(config: MeetingsConfig, ctx: AdapterContext) -> Result<Self, AdapterError> {
        if config.bbb.is_none() && config.jitsi.is_none() {
            return Err(AdapterError::Config(
                "meetings: configure `bbb`, `jitsi`, or both".into(),
            ));
        }
        if config.source.parse::<url::Url>().is_err() {
            return Err(AdapterError::Config(format!(
                "source {:?} must be a URI",
                config.source
            )));
        }
        let bbb = match &config.bbb {
            Some(b) => Some((
                b.clone(),
                crate::push::read_token(&b.shared_secret_file, "bbb.shared_secret_file")?,
            )),
            None => None,
        };
        let jitsi_token = config
            .jitsi
            .as_ref()
            .map(|j| crate::push::read_token(&j.token_file, "jitsi.token_file"))
            .transpose()?;
        let pseudonymizer = Pseudonymizer::from_file(&config.pseudonymization_key_file)?;
        let instance = crate::state::instance_name(config.instance.as_deref(), &config.source)?;
        let state = AdapterState::open(&ctx, SUBSYSTEM, &instance).await?;
        Ok(Self {
            publisher: ctx.publisher(config.source.clone()),
            ctx: Arc::new(MapContext {
                pseudonymizer,
                wards: Wards::phan_thiet(),
                host_organ: config.host_organ.clone(),
                city_unit: config.city_unit.clone(),
            }),
            secrets: Arc::new(Secrets { bbb, jitsi_token }),
            config,
            state,
            rooms: Arc::new(Mutex::new(())),
            bbb: Outcomes::new(&ctx.metrics, "meetings.bbb"),
            jitsi: Outcomes::new(&ctx.metrics, "meetings.jitsi"),
            transport: ctx.transport.clone(),
            metrics: ctx.metrics,
        })
    }

    /// What became of BigBlueButton events (`meetings.bbb`; a refused post counts once).
    pub fn bbb_outcomes(&self) -> &Outcomes {
        &self.bbb
    }

    /// What became of Jitsi posts (`meetings.jitsi`).
    pub fn jitsi_outcomes(&self) -> &Outcomes {
        &self.jitsi
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/meetings/bbb", post(bbb_post))
            .route("/meetings/jitsi/events/{kind}/{action}", post(jitsi_post))
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdapterError> {
        let server = PushServer::start(
            SUBSYSTEM,
            self.config.listen,
            self.router(),
            "POST /meetings/bbb, POST /meetings/jitsi/events/…",
            &self.transport,
        )
        .await?;
        shutdown.await;
        server.stop().await;
        Ok(())
    }

    /// Keeps an unreadable record in the DLQ as a digest (it holds personal data).
    async fn unreadable(
        &self,
        what: &str,
        bytes: &[u8],
        reason: String,
    ) -> Result<(), AdapterError> {
        let letter = DeadLetter::unreadable_digest(
            self.publisher.source(),
            "vn.egov.meetings.meeting.started",
            what,
            bytes,
            format!("{what} could not be read: {reason}"),
        );
        warn!(adapter = SUBSYSTEM, input = what, %reason, "unreadable record kept in the DLQ (digest only)");
        self.publisher.keep_dead_letter(&letter).await?;
        Ok(())
    }

    /// Publishes the records' events, retrying while the bus is unavailable, for up to
    /// `hold_secs`; counts each record's outcome once stored.
    async fn publish_holding(
        &self,
        records: Vec<Vec<EventDraft>>,
        outcomes: &Outcomes,
    ) -> Result<Tally, AdapterError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.config.hold_secs);
        let mut wait = Duration::from_millis(200);
        loop {
            let (n, events) = tagged(records.clone());
            match publish_records(&self.publisher, n, events).await {
                Ok((t, each)) => {
                    each.into_iter().for_each(|o| o.count(outcomes));
                    return Ok(t);
                }
                Err(e) if e.is_transient() && tokio::time::Instant::now() + wait < deadline => {
                    warn!(adapter = SUBSYSTEM, error = %e, "cannot store yet; holding the post");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The events of a BigBlueButton post (already authenticated). BigBlueButton does not act
    /// on answers, so an event that cannot be read is dead-lettered (as a digest: it holds
    /// personal data) and the others published.
    pub async fn take_bbb(&self, events: Vec<Value>) -> Result<Intake, AdapterError> {
        let mut intake = Intake::default();
        let mut records = Vec::new();
        for (n, e) in events.iter().enumerate() {
            match bbb::map_event(e, &self.ctx) {
                Mapped::Events(d) => records.push(d),
                Mapped::NotCarried(_) => {
                    intake.not_carried += 1;
                    self.bbb.not_carried.inc();
                }
                Mapped::Unreadable(reason) => {
                    self.unreadable(
                        &format!("bbb event {}", n + 1),
                        e.to_string().as_bytes(),
                        reason.to_string(),
                    )
                    .await?;
                    intake.tally.dead_lettered += 1;
                    self.bbb.dead_lettered.inc();
                }
            }
        }
        let t = self.publish_holding(records, &self.bbb).await?;
        intake.tally.add(t);
        Ok(intake)
    }

    /// One Jitsi post (already authenticated). One that cannot be read comes back as
    /// [`AdapterError::Unreadable`] (the sender is told; nothing is kept).
    pub async fn take_jitsi(&self, path: &str, body: &[u8]) -> Result<Intake, AdapterError> {
        let mut intake = Intake::default();
        let unreadable = |source: RecordError| {
            self.jitsi.refused.inc();
            AdapterError::Unreadable {
                what: format!("Jitsi {path} post"),
                source,
            }
        };
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            unreadable(RecordError::malformed(
                "JSON",
                Some(e.column() as u64),
                e.to_string(),
            ))
        })?;
        let room = value
            .get("room_name")
            .and_then(Value::as_str)
            .ok_or_else(|| unreadable(RecordError::missing("room_name")))?;
        let _one_at_a_time = self.rooms.lock().await;
        let key = format!("room.{}", hashed(room));
        let mut rooms: Rooms = self.state.get(&key).await?.unwrap_or_default();
        let before = rooms.clone();
        match jitsi::map_post(path, &value, &mut rooms, &self.ctx) {
            Mapped::Events(drafts) => {
                let t = self.publish_holding(vec![drafts], &self.jitsi).await?;
                intake.tally.add(t);
                // Remembered only once stored: a post that failed maps the same way again.
                if rooms != before {
                    self.state.put(&key, &rooms).await?;
                }
            }
            Mapped::NotCarried(_) => {
                intake.not_carried += 1;
                self.jitsi.not_carried.inc();
            }
            Mapped::Unreadable(reason) => return Err(unreadable(reason)),
        }
        Ok(intake)
    }
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn bbb_post(
    State(a): State<MeetingsAdapter>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let refused = |status: StatusCode, title: &str, detail: &str| {
        a.bbb.refused.inc();
        problem(status, title, detail)
    };
    let Some((cfg, secret)) = &a.secrets.bbb else {
        return refused(
            StatusCode::NOT_FOUND,
            "BigBlueButton is not configured",
            "this adapter has no `bbb` section",
        );
    };
    let authentic = match query_param(query.as_deref(), "checksum") {
        Some(given) => {
            let want = bbb::checksum(cfg.checksum_algorithm, &cfg.callback_url, &body, secret);
            lienthong_bus::credentials::constant_time_eq(
                given.to_ascii_lowercase().as_bytes(),
                want.as_bytes(),
            )
        }
        None => check_bearer(&headers, secret).is_ok(),
    };
    if !authentic {
        return refused(
            StatusCode::UNAUTHORIZED,
            "checksum or bearer token does not match",
            "sign posts with ?checksum= (callback URL + body + shared secret) or Authorization: Bearer <shared secret>",
        );
    }
    let events = match bbb::parse_post(&body) {
        Ok(e) => e,
        Err(reason) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "not a bbb-webhooks post (nothing was kept)",
                &reason.to_string(),
            );
        }
    };
    match a.take_bbb(events).await {
        Ok(intake) => (StatusCode::OK, Json(intake)).into_response(),
        Err(e) => unavailable(&e),
    }
}

async fn jitsi_post(
    State(a): State<MeetingsAdapter>,
    Path((kind, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let refused = |status: StatusCode, title: &str, detail: &str| {
        a.jitsi.refused.inc();
        problem(status, title, detail)
    };
    let path = format!("{kind}/{action}");
    if !jitsi::PATHS.contains(&path.as_str()) {
        return refused(
            StatusCode::NOT_FOUND,
            "no such event path",
            &format!("event_sync posts to {}", jitsi::PATHS.join(", ")),
        );
    }
    let Some(token) = &a.secrets.jitsi_token else {
        return refused(
            StatusCode::NOT_FOUND,
            "Jitsi is not configured",
            "this adapter has no `jitsi` section",
        );
    };
    if let Err(r) = check_bearer(&headers, token) {
        a.jitsi.refused.inc();
        return r;
    }
    match a.take_jitsi(&path, &body).await {
        Ok(intake) => (StatusCode::OK, Json(intake)).into_response(),
        Err(AdapterError::Unreadable { what, source }) => problem(
            StatusCode::BAD_REQUEST,
            "not a readable event_sync post (nothing was kept)",
            &format!("{what}: {source}"),
        ),
        Err(e) => unavailable(&e),
    }
}

async fn metrics(State(a): State<MeetingsAdapter>) -> Response {
    metrics_response(a.metrics.render())
}
