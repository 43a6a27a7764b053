//! Webhook delivery to a local receiver against the raw drain of the same stream.
//!
//! An agency is granted `FIELD_REPORTS` (its own account, its copy filled by the server); the
//! raw figure is an ordered consumer draining that copy as the agency's administrator; the
//! bus's is a webhook subscription on it, delivered by the deliverer (binary mode, Standard
//! Webhooks signatures, one POST per event, acknowledged after each 2xx) to a receiver on
//! loopback that answers 204 at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong_bus::agencies::{admin::AgencyAdmin, agent::Agent, events::Mode};
use lienthong_bus::{CredentialSet, NatsServer, SchemaRegistry, Shutdown};
use lienthong_deliver::admin::{subscribe, SubscribeRequest};
use lienthong_deliver::{DeliverOptions, Deliverer, Secret};

use super::replay::drain;

/// (events, raw drain events/s, webhook events/s).
pub(super) async fn webhook(
    server: &NatsServer,
    creds: &CredentialSet,
    registry: Arc<SchemaRegistry>,
) -> anyhow::Result<(u64, f64, f64)> {
    let url = server.url();
    let connect = |role: &'static str| {
        let s = creds.settings(role, &url);
        async move {
            anyhow::Ok(
                s?.connect_watched(&format!("lienthong-bench-{role}"))
                    .await?,
            )
        }
    };
    let (trigger, shutdown) = Shutdown::new();
    let agent = Agent::new(
        &server.data_dir().join(lienthong_bus::server::ACCOUNTS_CONF),
        connect("operator").await?.0,
        connect("system").await?.0,
    )?;
    tokio::spawn(agent.run(shutdown.signalled()));
    let dir = tempfile::tempdir()?;
    let (client, refusals) = connect("operator").await?;
    let admin = AgencyAdmin::new(
        client,
        refusals,
        registry.clone(),
        dir.path(),
        &url,
        "bench",
    );
    admin
        .add(
            "bench",
            lienthong_bus::agencies::grants(&["FIELD_REPORTS".into()], &[])?,
            None,
        )
        .await?;
    let js = admin.admin_js("bench").await?;
    // The copy is complete when it holds what the bus's stream holds.
    let origin = connect("operator").await?.0;
    let total = async_nats::jetstream::new(origin)
        .get_stream("FIELD_REPORTS")
        .await?
        .info()
        .await?
        .state
        .messages;
    let start = Instant::now();
    loop {
        let have = js
            .get_stream("FIELD_REPORTS")
            .await?
            .info()
            .await?
            .state
            .messages;
        if have >= total {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "the agency's copy holds {have} of {total} after 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (n, raw) = drain(&js, &["FIELD_REPORTS"]).await?;

    // The receiver: counts, answers 204.
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    subscribe(
        &admin,
        SubscribeRequest {
            agency: "bench".into(),
            name: "hook".into(),
            stream: "FIELD_REPORTS".into(),
            types: vec![],
            subjects: vec![],
            webhook: hook.parse()?,
            secret: Secret::generate(),
            mode: Mode::Binary,
        },
    )
    .await?;
    let (client, refusals) = connect("deliver").await?;
    let deliverer = Deliverer::new(
        client,
        refusals,
        registry,
        dir.path(),
        DeliverOptions::default(),
        lienthong_bus::Metrics::new(),
    );
    tokio::spawn(deliverer.run(shutdown.signalled()));
    // Timed from the first delivery (the deliverer looks for new subscriptions every second).
    let waiting = Instant::now();
    while received.load(Ordering::Relaxed) == 0 {
        anyhow::ensure!(
            waiting.elapsed() < Duration::from_secs(30),
            "nothing delivered in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let start = Instant::now();
    let first = received.load(Ordering::Relaxed);
    while received.load(Ordering::Relaxed) < n {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(600),
            "{} of {n} delivered after 10 minutes",
            received.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = (n - first) as f64 / start.elapsed().as_secs_f64();
    trigger.fire();
    Ok((n, raw, rate))
}
