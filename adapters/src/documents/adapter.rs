//! The documents adapter: edXML packages and register exports, from a polled folder and
//! by HTTP push. Both inputs are idempotent (event ids come from the documents themselves).
//!
//! Folder: `*.edxml`/`*.xml` packages and `*.jsonl` register exports dropped into `inbox`
//! are published, then moved to `inbox/processed/`; what cannot be read goes to the DLQ
//! (as a digest, never the content: it may be secret or personal) and to `inbox/failed/`.
//!
//! HTTP (`listen`): `POST /edxml` (one package), `POST /register` (JSON lines or an array),
//! `GET /healthz`, `GET /metrics`. Answers 202 once stored, 400 with the reason, 503 when
//! the bus cannot store (nothing is acknowledged that is not stored).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use lienthong_bus::{DeadLetter, Metrics, Outcomes, Publisher};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{info, warn};

use super::edxml::{self, SUBSYSTEM};
use super::register::{self, RegisterEntry, RegisterOutcome};
use crate::error::{AdapterError, RecordError};
use crate::publish::{publish_all, Tally};
use crate::push::{metrics_response, problem, unavailable, PushServer};
use crate::AdapterContext;

fn default_source() -> String {
    "urn:lienthong:phanthiet:documents".to_string()
}
const fn default_poll_interval_secs() -> u64 {
    10
}

/// Configuration of the documents adapter (`[documents]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentsConfig {
    /// CloudEvents `source` of the events.
    #[serde(default = "default_source")]
    pub source: String,
    /// Folder polled for `*.edxml`, `*.xml` and `*.jsonl` files.
    #[serde(default)]
    pub inbox: Option<PathBuf>,
    /// Address of the HTTP push endpoints.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// File holding the bearer token push callers must present (required with `listen`).
    #[serde(default)]
    pub push_token_file: Option<PathBuf>,
    /// Seconds between two looks at the inbox.
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
}

impl DocumentsConfig {
    fn validate(&self) -> Result<(), AdapterError> {
        if self.inbox.is_none() && self.listen.is_none() {
            return Err(AdapterError::Config(
                "documents: give an `inbox` folder, a `listen` address, or both".into(),
            ));
        }
        if self.listen.is_some() && self.push_token_file.is_none() {
            return Err(AdapterError::Config(
                "documents: `listen` needs a `push_token_file`: push endpoints take no anonymous callers".into(),
            ));
        }
        if self.source.parse::<url::Url>().is_err() {
            return Err(AdapterError::Config(format!(
                "source {:?} must be a URI",
                self.source
            )));
        }
        Ok(())
    }
}

/// How an input arrived: from the inbox folder (nobody to answer: what cannot be read is
/// dead-lettered) or pushed over HTTP (the sender is told, 400, and nothing is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Inbox,
    Push,
}

/// What one input (a package, an export) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Intake {
    #[serde(flatten)]
    pub tally: Tally,
    pub withheld: usize,
    /// Unreadable lines or packages (kept in the DLQ as digests).
    pub unreadable: usize,
}

#[derive(Clone)]
pub struct DocumentsAdapter {
    config: DocumentsConfig,
    push_token: Option<String>,
    publisher: Publisher,
    metrics: Metrics,
    /// How the push endpoints listen (HTTPS with a certificate).
    transport: lienthong_bus::tls::Transport,
    inbox: Outcomes,
    push: Outcomes,
}

impl DocumentsAdapter {
    pub async fn build(config: DocumentsConfig, ctx: AdapterContext) -> Result<Self, AdapterError> {
        config.validate()?;
        if let Some(inbox) = &config.inbox {
            for sub in ["", "processed", "failed"] {
                std::fs::create_dir_all(inbox.join(sub)).map_err(|e| {
                    AdapterError::Config(format!("inbox {}: {e}", inbox.join(sub).display()))
                })?;
            }
        }
        let push_token = config
            .push_token_file
            .as_deref()
            .map(|p| crate::push::read_token(p, "push_token_file"))
            .transpose()?;
        let publisher = ctx.publisher(config.source.clone());
        Ok(Self {
            config,
            push_token,
            publisher,
            inbox: Outcomes::new(&ctx.metrics, "documents.inbox"),
            push: Outcomes::new(&ctx.metrics, "documents.push"),
            transport: ctx.transport.clone(),
            metrics: ctx.metrics,
        })
    }

    /// Push callers must present the push token.
    #[allow(clippy::result_large_err)]
    fn authorize(&self, headers: &axum::http::HeaderMap) -> Result<(), Response> {
        match &self.push_token {
            Some(t) => crate::push::check_bearer(headers, t),
            None => Err(problem(
                StatusCode::UNAUTHORIZED,
                "push is not configured",
                "this adapter has no push_token_file",
            )),
        }
    }

    /// What became of the records of each path (`documents.inbox`, `documents.push`).
    pub fn outcomes(&self, via: Via) -> &Outcomes {
        match via {
            Via::Inbox => &self.inbox,
            Via::Push => &self.push,
        }
    }

    fn count(&self, via: Via, i: &Intake) {
        let o = self.outcomes(via);
        i.tally.record(o);
        o.dead_lettered.add(i.unreadable as u64);
        o.withheld.add(i.withheld as u64);
        if i.withheld > 0 {
            // Deliberately without any identifier or content of what was withheld.
            info!(
                adapter = SUBSYSTEM,
                withheld = i.withheld,
                "withheld documents classified secret"
            );
        }
    }

    /// Keeps a trace of unreadable input in the DLQ: its digest and the reason, not its
    /// content (which may be secret or personal).
    async fn unreadable(
        &self,
        what: &str,
        bytes: &[u8],
        reason: String,
    ) -> Result<(), AdapterError> {
        let letter = DeadLetter::unreadable_digest(
            self.publisher.source(),
            "vn.egov.documents.document.sent",
            what,
            bytes,
            format!("{what} could not be read: {reason}"),
        );
        warn!(adapter = SUBSYSTEM, input = what, %reason, "unreadable input kept in the DLQ (digest only)");
        self.publisher.keep_dead_letter(&letter).await?;
        Ok(())
    }

    /// One edXML package. An unreadable one comes back as [`AdapterError::Unreadable`]; from
    /// the inbox it is also kept in the DLQ as a digest, a push is refused.
    pub async fn take_edxml(&self, bytes: &[u8], via: Via) -> Result<Intake, AdapterError> {
        let parsed = std::str::from_utf8(bytes)
            .map_err(|e| {
                RecordError::malformed("UTF-8", Some(e.valid_up_to() as u64), e.to_string())
            })
            .and_then(edxml::parse);
        match parsed {
            Ok(package) => {
                let event = edxml::to_event(&package, Utc::now().fixed_offset(), bytes);
                let intake = Intake {
                    tally: publish_all(&self.publisher, vec![event]).await?,
                    ..Default::default()
                };
                self.count(via, &intake);
                Ok(intake)
            }
            Err(reason) => {
                match via {
                    Via::Inbox => {
                        self.unreadable("edxml", bytes, reason.to_string()).await?;
                        self.inbox.dead_lettered.inc();
                    }
                    Via::Push => self.push.refused.inc(),
                }
                Err(AdapterError::Unreadable {
                    what: "edXML package".into(),
                    source: reason,
                })
            }
        }
    }

    /// A register export: JSON lines, or one JSON array. Secret entries are withheld. Lines
    /// that cannot be read: from the inbox, dead-lettered one by one (as digests) and the rest
    /// published; pushed, the whole export is refused ([`AdapterError::Unreadable`] names the
    /// first such line) and nothing of it published.
    pub async fn take_register(&self, bytes: &[u8], via: Via) -> Result<Intake, AdapterError> {
        let text = String::from_utf8_lossy(bytes);
        let lines: Vec<String> = match serde_json::from_str::<Vec<serde_json::Value>>(&text) {
            Ok(items) => items.into_iter().map(|v| v.to_string()).collect(),
            Err(_) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect(),
        };
        let mut intake = Intake::default();
        let mut drafts = Vec::new();
        let mut unreadable = Vec::new();
        for (n, line) in lines.iter().enumerate() {
            // Secrecy first, on its own: a secret line is withheld even if the rest is broken.
            if register::secrecy_of(line).is_some_and(|s| !register::is_public_level(&s)) {
                intake.withheld += 1;
                continue;
            }
            match serde_json::from_str::<RegisterEntry>(line) {
                Ok(entry) => match register::map(&entry) {
                    RegisterOutcome::Publish(d) => drafts.push(*d),
                    RegisterOutcome::Withheld => intake.withheld += 1,
                },
                Err(e) => unreadable.push((n + 1, line, e)),
            }
        }
        if via == Via::Push {
            if let Some((n, _, e)) = unreadable.first() {
                self.push.refused.add(lines.len() as u64);
                return Err(AdapterError::Unreadable {
                    what: format!("register line {n} (of {})", lines.len()),
                    source: RecordError::malformed("register entry", None, e.to_string()),
                });
            }
        }
        for (n, line, e) in unreadable {
            self.unreadable(
                &format!("register line {n}"),
                line.as_bytes(),
                e.to_string(),
            )
            .await?;
            intake.unreadable += 1;
        }
        intake.tally = publish_all(&self.publisher, drafts).await?;
        self.count(via, &intake);
        Ok(intake)
    }

    /// Publishes every file in the inbox, oldest name first; moves each when done.
    pub async fn poll_inbox(&self) -> Result<Intake, AdapterError> {
        let Some(inbox) = &self.config.inbox else {
            return Ok(Intake::default());
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(inbox)
            .map_err(|e| AdapterError::Source {
                url: inbox.display().to_string(),
                reason: e.to_string(),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|x| x.to_str()),
                    Some("edxml" | "xml" | "jsonl" | "json")
                )
            })
            .collect();
        files.sort();
        let mut total = Intake::default();
        for path in files {
            let bytes = std::fs::read(&path).map_err(|e| AdapterError::Source {
                url: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let is_register = matches!(
                path.extension().and_then(|x| x.to_str()),
                Some("jsonl" | "json")
            );
            let (intake, ok) = if is_register {
                (self.take_register(&bytes, Via::Inbox).await?, true)
            } else {
                match self.take_edxml(&bytes, Via::Inbox).await {
                    Ok(i) => (i, true),
                    Err(AdapterError::Unreadable { .. }) => (
                        Intake {
                            unreadable: 1,
                            ..Default::default()
                        },
                        false,
                    ),
                    Err(e) => return Err(e),
                }
            };
            total.tally.add(intake.tally);
            total.withheld += intake.withheld;
            total.unreadable += intake.unreadable;
            move_to(&path, &inbox.join(if ok { "processed" } else { "failed" }))?;
        }
        Ok(total)
    }

    /// The HTTP push endpoints.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/edxml", post(push_edxml))
            .route("/register", post(push_register))
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    /// Serves the push endpoints (if configured) and polls the inbox until `shutdown`.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdapterError> {
        let server = PushServer::start_if(
            SUBSYSTEM,
            self.config.listen,
            || self.router(),
            "POST /edxml, POST /register",
            &self.transport,
        )
        .await?;
        let interval = Duration::from_secs(self.config.poll_interval_secs.max(1));
        let polled = crate::poll::every(SUBSYSTEM, "inbox poll", interval, shutdown, || async {
            let i = self.poll_inbox().await?;
            if i.tally.published + i.withheld + i.unreadable > 0 {
                info!(
                    adapter = SUBSYSTEM,
                    published = i.tally.published,
                    duplicates = i.tally.duplicates,
                    dead_lettered = i.tally.dead_lettered + i.unreadable,
                    withheld = i.withheld,
                    "inbox"
                );
            }
            Ok(())
        })
        .await;
        if let Some(s) = server {
            s.stop().await;
        }
        polled
    }
}

fn move_to(path: &Path, dir: &Path) -> Result<(), AdapterError> {
    let name = path.file_name().unwrap_or_default();
    std::fs::rename(path, dir.join(name)).map_err(|e| AdapterError::Source {
        url: path.display().to_string(),
        reason: format!("moving to {}: {e}", dir.display()),
    })
}

async fn push_edxml(
    State(a): State<DocumentsAdapter>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = a.authorize(&headers) {
        a.push.refused.inc();
        return refused;
    }
    match a.take_edxml(&body, Via::Push).await {
        Ok(intake) => (StatusCode::ACCEPTED, Json(intake)).into_response(),
        Err(AdapterError::Unreadable { source, .. }) => problem(
            StatusCode::BAD_REQUEST,
            "not a readable edXML package (nothing was kept: fix it and send it again)",
            &source.to_string(),
        ),
        Err(e) => unavailable(&e),
    }
}

async fn push_register(
    State(a): State<DocumentsAdapter>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = a.authorize(&headers) {
        a.push.refused.inc();
        return refused;
    }
    match a.take_register(&body, Via::Push).await {
        Ok(intake) => (StatusCode::ACCEPTED, Json(intake)).into_response(),
        Err(AdapterError::Unreadable { what, source }) => problem(
            StatusCode::BAD_REQUEST,
            "not a readable register export (nothing of it was published: fix it and send it again)",
            &format!("{what}: {source}"),
        ),
        Err(e) => unavailable(&e),
    }
}

async fn metrics(State(a): State<DocumentsAdapter>) -> Response {
    metrics_response(a.metrics.render())
}
