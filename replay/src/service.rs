//! The replay service: projections following their streams, and the HTTP API.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_nats::jetstream;
use lienthong_bus::tls::http::Listener as HttpListener;
use lienthong_bus::SchemaRegistry;
use tracing::{error, info};

use crate::error::{ReplayError, Result};
use crate::http::{router, AppState};
use crate::runner::{Metrics, Runner};
use crate::store::ReadStore;

/// The default HTTP address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// One runner per projection.
pub fn runners(
    js: &jetstream::Context,
    registry: &Arc<SchemaRegistry>,
    store: &ReadStore,
    metrics: &Arc<Metrics>,
) -> Vec<Runner> {
    crate::read_models::projections()
        .into_iter()
        .map(|p| {
            Runner::new(
                js.clone(),
                registry.clone(),
                store.clone(),
                p,
                metrics.clone(),
            )
        })
        .collect()
}

/// Folds each subsystem registered on the bus into its generic read model
/// ([`crate::registered`]), starting a follower for each one as this process learns of it,
/// until `stop` turns true.
async fn follow_registered(
    js: jetstream::Context,
    registry: Arc<SchemaRegistry>,
    store: ReadStore,
    metrics: Arc<Metrics>,
    max_batch: usize,
    only_streams: Option<Vec<String>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let mut started = std::collections::BTreeSet::new();
    let mut followers = Vec::new();
    loop {
        for sub in lienthong_bus::registry::live::subsystems() {
            let kept = only_streams
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == sub.stream));
            if !kept || !started.insert(sub.name) {
                continue;
            }
            info!(
                subsystem = sub.name,
                stream = sub.stream,
                "a registered subsystem: its read model follows its stream"
            );
            let runner = Runner::new(
                js.clone(),
                registry.clone(),
                store.clone(),
                Arc::new(crate::registered::RegisteredProjection { subsystem: sub }),
                metrics.clone(),
            )
            .with_max_batch(max_batch);
            let mut rx = stop.clone();
            followers.push(tokio::spawn(async move {
                if let Err(e) = runner
                    .follow(async move {
                        let _ = rx.wait_for(|s| *s).await;
                    })
                    .await
                {
                    error!(subsystem = sub.name, "its read model stopped: {e}");
                }
            }));
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
    for f in followers {
        let _ = f.await;
    }
    Ok(())
}

/// How the service runs.
#[derive(Clone)]
pub struct ServeOptions {
    /// Most events per atomic batch (see [`Runner::with_max_batch`]).
    pub max_batch: usize,
    /// With a key, the service also chains every stream and writes signed checkpoints to
    /// `AUDIT`, and serves the public key at `/api/v1/audit/public-key`.
    pub audit_key: Option<ed25519_dalek::SigningKey>,
    /// With a token, `POST /api/v1/admin/rebuild` (bearer token) rebuilds read models beside
    /// the live ones and swaps, while the service keeps answering.
    pub admin_token: Option<String>,
    /// Where clients reach NATS (the event catalogue's servers).
    pub nats_urls: Vec<String>,
    /// Other components' counters, served with the service's own at `/metrics`.
    pub metrics: Option<lienthong_bus::Metrics>,
    /// Who publishes the datasets, under which licence, withholding which counts.
    pub publication: crate::datasets::dcat::Publication,
    /// With an audit key, how often the service verifies every audited stream against its
    /// signed checkpoints for the dashboard's integrity panel (`/api/v1/integrity`).
    pub verify_every: std::time::Duration,
    /// Components a supervisor reports down (`/healthz` answers 503 naming them).
    pub health: Option<lienthong_bus::health::Components>,
    /// Fold only these streams (an agency site holds only what it was granted); `None`:
    /// every stream.
    pub only_streams: Option<Vec<String>>,
    /// The certificates in use by this process's links (`/healthz` and the dashboard warn
    /// 30 days before one expires).
    pub certificates: Vec<std::path::PathBuf>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_batch: crate::runner::MAX_BATCH,
            audit_key: None,
            admin_token: None,
            nats_urls: Vec::new(),
            metrics: None,
            publication: Default::default(),
            verify_every: std::time::Duration::from_secs(300),
            health: None,
            only_streams: None,
            certificates: Vec::new(),
        }
    }
}

/// Serves the HTTP API on `listener` and, unless `js` is `None` (a read-only copy), follows
/// every stream into the read models, until `shutdown`.
pub async fn serve(
    listener: HttpListener,
    js: Option<jetstream::Context>,
    registry: Arc<SchemaRegistry>,
    store: ReadStore,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    let mut tasks = Vec::new();
    let kept = |r: &Runner| {
        options
            .only_streams
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == r.stream()))
    };
    if let Some(js) = &js {
        // Subsystems registered on the running bus: their schemas, audit chains and
        // catalogue entries as soon as they are recorded.
        let reader =
            lienthong_bus::StreamReader::new(js.client().clone(), lienthong_bus::Refusals::none());
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            lienthong_bus::registry::live::follow(reader, async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
            Ok(())
        }));
        for runner in runners(js, &registry, &store, &metrics)
            .into_iter()
            .filter(kept)
        {
            let runner = runner.with_max_batch(options.max_batch);
            let mut rx = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                runner
                    .follow(async move {
                        let _ = rx.wait_for(|s| *s).await;
                    })
                    .await
            }));
        }
    }
    if let Some(js) = &js {
        // Registered subsystems' generic read models, started as their registrations are read.
        tasks.push(tokio::spawn(follow_registered(
            js.clone(),
            registry.clone(),
            store.clone(),
            metrics.clone(),
            options.max_batch,
            options.only_streams.clone(),
            stop_rx.clone(),
        )));
    }
    let admin = match (&js, options.admin_token.clone()) {
        (Some(js), Some(token)) => Some(crate::http::Admin {
            token,
            runners: runners(js, &registry, &store, &metrics)
                .into_iter()
                .filter(kept)
                .map(|r| r.with_max_batch(options.max_batch))
                .collect(),
        }),
        _ => None,
    };
    let audit_public_key = options
        .audit_key
        .as_ref()
        .map(|k| hex::encode(k.verifying_key().to_bytes()));
    let mut integrity = None;
    if let (Some(js), Some(key)) = (&js, options.audit_key.clone()) {
        let watch = crate::dashboard::integrity::Integrity::default();
        integrity = Some(watch.clone());
        let reader = lienthong_bus::StreamReader::new(js.client(), Default::default());
        let (public, every, rx) = (key.verifying_key(), options.verify_every, stop_rx.clone());
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            watch.watch(reader, public, store, every, rx).await;
            Ok(())
        }));
        let writer = Arc::new(crate::audit_writer::AuditWriter::new(
            js.clone(),
            registry.clone(),
            key,
        ));
        let rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move { writer.run(rx).await }));
    }
    // The read models' disk: said when it is full; once there is room again the service ends
    // so that its caller opens the store again (sled keeps a write error for good).
    let reopen = Arc::new(tokio::sync::Notify::new());
    if let (Some(_), Some(path)) = (&js, store.path()) {
        let (path, metrics, health) = (path.to_path_buf(), metrics.clone(), options.health.clone());
        let (reopen, rx) = (reopen.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            watch_disk(&path, &metrics, health.as_ref(), &reopen, rx).await;
            Ok(())
        }));
    }
    info!(url = %listener.url(), read_only = js.is_none(), "replay service listening");
    let app = router(AppState {
        store: store.clone(),
        registry,
        metrics,
        read_only: js.is_none(),
        audit_public_key,
        admin,
        nats_urls: options.nats_urls.clone(),
        components: options.metrics.clone(),
        publication: options.publication.clone(),
        integrity,
        health: options.health.clone(),
        stopping: stop_rx.clone(),
        certificates: options.certificates.clone(),
        reader: js
            .as_ref()
            .map(|js| lienthong_bus::StreamReader::new(js.client(), Default::default())),
    });
    // Shutting down also ends the endless answers (the live feed), which a graceful
    // shutdown would otherwise wait for.
    let stopping = stop_tx.clone();
    let reopening = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flagged = reopening.clone();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown => {}
                _ = reopen.notified() => flagged.store(true, Ordering::Relaxed),
            }
            let _ = stopping.send(true);
        })
        .await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    if reopening.load(Ordering::Relaxed) {
        result?;
        return Err(ReplayError::ReopenStore);
    }
    store.flush()?;
    result.map_err(Into::into)
}

/// The component `/healthz` names when the read models' disk is full.
pub const READ_MODELS: &str = "read models";

/// Watches the disk of the read models' store (every 2 s) until `stop`: says when it is full
/// (`health`, the log) and, once a store that failed for it has room again, notifies
/// `reopen`.
async fn watch_disk(
    path: &std::path::Path,
    metrics: &Metrics,
    health: Option<&lienthong_bus::health::Components>,
    reopen: &tokio::sync::Notify,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use lienthong_bus::health::DiskSpace;
    let mut said = false;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
        let Some(space) = DiskSpace::of(path) else {
            continue;
        };
        let failed = metrics.store_full.load(Ordering::Relaxed);
        let full = failed || space.nearly_full();
        if full && !said {
            said = true;
            let reason = format!(
                "the read models' disk is full ({} MiB free): {}; the figures are served as they were; folding resumes by itself once {} MiB are free",
                space.free >> 20,
                if failed {
                    "folding stopped"
                } else {
                    "folding will stop when it cannot write"
                },
                space.room_to_resume() >> 20
            );
            error!("{reason}");
            if let Some(h) = health {
                h.down(READ_MODELS, reason);
            }
        }
        if failed && space.has_room() {
            info!(
                free_mib = space.free >> 20,
                "the read models' disk has room again; opening their store again"
            );
            reopen.notify_one();
            return;
        }
        if !full && said {
            said = false;
            info!("the read models' disk has room again");
            if let Some(h) = health {
                h.up(READ_MODELS);
            }
        }
    }
}
