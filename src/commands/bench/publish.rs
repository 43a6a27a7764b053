//! Publishing: raw async-nats (with and without the bus's headers) against the bus publisher,
//! and durable mode (naive pipelined publishing against atomic batches).

use std::time::Instant;

use async_nats::jetstream::{self, stream};
use lienthong_bus::batch::MAX_ATOMIC_BATCH;
use lienthong_bus::publisher::Prepared;
use lienthong_bus::{CredentialSet, EventDraft, NatsServer, Publisher};

use super::{drafts, median};
use crate::commands::Global;

/// Plain JetStream publishing of the encoded events; with `headers`, also the bus's headers
/// (content type and `Nats-Msg-Id`, which makes the server check for duplicates).
pub(super) async fn raw_publish(
    js: &jetstream::Context,
    prepared: &[Prepared],
    headers: bool,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    for window in prepared.chunks(256) {
        let mut acks = Vec::with_capacity(window.len());
        for p in window {
            let subject = format!("bench.raw.{}{}", if headers { "h." } else { "" }, p.subject);
            acks.push(if headers {
                js.send_publish(
                    subject,
                    async_nats::jetstream::message::PublishMessage::build()
                        .payload(p.payload.clone())
                        .headers(p.headers.clone()),
                )
                .await?
            } else {
                js.publish(subject, p.payload.clone()).await?
            });
        }
        for a in acks {
            a.await?;
        }
    }
    Ok(prepared.len() as f64 / start.elapsed().as_secs_f64())
}

pub(super) async fn bus_publish(
    publisher: &Publisher,
    drafts: Vec<EventDraft>,
) -> anyhow::Result<f64> {
    let n = drafts.len();
    let start = Instant::now();
    let mut drafts = drafts.into_iter().peekable();
    while drafts.peek().is_some() {
        let window: Vec<EventDraft> = drafts.by_ref().take(256).collect();
        for r in publisher.publish_many(window).await {
            r?;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The bus publisher in atomic batches of 1,000 (what adapters use for their pages and
/// backfills): every event validated and encoded, one acknowledgement per batch.
pub(super) async fn bus_publish_batched(
    publisher: &Publisher,
    drafts: Vec<EventDraft>,
) -> anyhow::Result<f64> {
    let n = drafts.len();
    let start = Instant::now();
    for r in publisher.publish_batched(drafts, MAX_ATOMIC_BATCH).await {
        r?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The contract's streams and the raw side's `BENCH_RAW`, empty.
pub(super) async fn fresh_streams(operator: &jetstream::Context) -> anyhow::Result<()> {
    for name in ["BENCH_RAW", "FIELD_REPORTS", "DOCUMENTS"] {
        if operator.get_stream(name).await.is_ok() {
            operator.delete_stream(name).await?;
        }
    }
    lienthong_bus::provision(operator).await?;
    operator
        .create_stream(stream::Config {
            name: "BENCH_RAW".into(),
            subjects: vec!["bench.raw.>".into()],
            // As the bus's streams: the server remembers message ids for 2 h.
            duplicate_window: lienthong_bus::topology::DUPLICATE_WINDOW,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// Builds, validates and encodes drafts once (for the raw side, which only sends).
pub(super) fn prepare_all(
    publisher: &Publisher,
    ds: &[EventDraft],
) -> anyhow::Result<Vec<Prepared>> {
    ds.iter()
        .map(|d| {
            publisher
                .prepare(publisher.build(d.clone())?, None)
                .map_err(|r| anyhow::anyhow!("{}", r.error))
        })
        .collect()
}

/// A durable server (`sync_interval: always`): the same events published naively (pipelined
/// windows of 256, one PubAck each) and in atomic batches of 1,000; median rates.
pub(super) async fn durable(
    global: &Global,
    base: &[EventDraft],
    events: usize,
    runs: usize,
) -> anyhow::Result<(f64, f64)> {
    let creds = CredentialSet::generate();
    let server = NatsServer::start_ephemeral_with(&creds, true).await?;
    let js = jetstream::new(
        creds
            .settings("operator", &server.url())?
            .connect("lienthong-bench-durable")
            .await?,
    );
    lienthong_bus::provision(&js).await?;
    let publisher = Publisher::new(js, global.registry()?, "urn:lienthong:bench");
    let (mut naive, mut batched) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let n = bus_publish(&publisher, drafts(base, events, &format!("dn{run}"))).await?;
        let ds = drafts(base, events, &format!("db{run}"));
        let start = Instant::now();
        for r in publisher.publish_batched(ds, MAX_ATOMIC_BATCH).await {
            r?;
        }
        let b = events as f64 / start.elapsed().as_secs_f64();
        eprintln!(
            "bench: durable run {}: naive {n:.0}/s, atomic batches {b:.0}/s",
            run + 1
        );
        naive.push(n);
        batched.push(b);
    }
    server.stop().await?;
    Ok((median(naive), median(batched)))
}
