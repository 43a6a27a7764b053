//! Publishing: raw async-nats (with and without the bus's headers) against the bus publisher,
//! and durable mode (naive pipelined publishing against atomic batches).

use std::time::Instant;

use async_nats::jetstream::{self, stream};
use lienthong_bus::batch::MAX_ATOMIC_BATCH;
use lienthong_bus::publisher::Prepared;
use lienthong_bus::{CredentialSet, EventDraft, NatsServer, Publisher};

use super::{drafts, median};
use crate::commands::Global;

/// The in-flight windows tried for each side (raw and bus alike); each keeps its best.
pub(super) const WINDOWS: [usize; 4] = [64, 256, 1024, 4096];

/// Plain JetStream publishing of the encoded events, up to `window` acknowledgements in
/// flight (a sliding window); with `headers`, also the bus's headers (content type and
/// `Nats-Msg-Id`, which makes the server check for duplicates).
pub(super) async fn raw_publish(
    js: &jetstream::Context,
    prepared: &[Prepared],
    headers: bool,
    window: usize,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut acks = std::collections::VecDeque::with_capacity(window);
    for p in prepared {
        let subject = format!("bench.raw.{}{}", if headers { "h." } else { "" }, p.subject);
        acks.push_back(if headers {
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
        if acks.len() >= window {
            if let Some(a) = acks.pop_front() {
                a.await?;
            }
        }
    }
    for a in acks {
        a.await?;
    }
    Ok(prepared.len() as f64 / start.elapsed().as_secs_f64())
}

/// Raw publishing with the bus's headers as nats.go's `PublishAsync` does it: core publishes
/// with reply subjects under one wildcard subscription for the acknowledgements, up to
/// `window` in flight (no per-message request machinery). Information: the engine's ceiling.
pub(super) async fn raw_publish_one_subscription(
    client: &async_nats::Client,
    prepared: &[Prepared],
    window: usize,
) -> anyhow::Result<f64> {
    use futures::StreamExt;
    let prefix = client.new_inbox();
    let mut acks = client.subscribe(format!("{prefix}.*")).await?;
    let start = Instant::now();
    let (mut sent, mut acked) = (0usize, 0usize);
    let mut next_ack = async |acked: &mut usize| -> anyhow::Result<()> {
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), acks.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the acknowledgement subscription ended"))?;
        anyhow::ensure!(
            !m.payload.windows(7).any(|w| w == b"\"error\""),
            "refused: {}",
            String::from_utf8_lossy(&m.payload)
        );
        *acked += 1;
        Ok(())
    };
    for (i, p) in prepared.iter().enumerate() {
        client
            .publish_with_reply_and_headers(
                format!("bench.raw.s.{}", p.subject),
                format!("{prefix}.{i}"),
                p.headers.clone(),
                p.payload.clone(),
            )
            .await?;
        sent += 1;
        while sent - acked >= window {
            next_ack(&mut acked).await?;
        }
    }
    while acked < sent {
        next_ack(&mut acked).await?;
    }
    Ok(prepared.len() as f64 / start.elapsed().as_secs_f64())
}

/// The bus publisher (validate, encode, send), up to `window` acknowledgements in flight.
pub(super) async fn bus_publish(
    publisher: &Publisher,
    drafts: Vec<EventDraft>,
    window: usize,
) -> anyhow::Result<f64> {
    let n = drafts.len();
    let start = Instant::now();
    for r in publisher.publish_pipelined(drafts, window).await {
        r?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Each side's best window: every window of [`WINDOWS`] tried with `n` events on fresh
/// streams; returns (raw, raw with headers, bus) windows.
pub(super) async fn best_windows(
    operator: &jetstream::Context,
    publisher: &Publisher,
    base: &[EventDraft],
    n: usize,
) -> anyhow::Result<(usize, usize, usize)> {
    let mut best = [(0.0f64, WINDOWS[0]); 4];
    for w in WINDOWS {
        fresh_streams(operator).await?;
        let ds = drafts(base, n, &format!("w{w}"));
        let prepared = prepare_all(publisher, &ds)?;
        let rates = [
            raw_publish(operator, &prepared, false, w).await?,
            raw_publish(operator, &prepared, true, w).await?,
            bus_publish(publisher, ds, w).await?,
            raw_publish_one_subscription(&operator.client(), &prepared, w).await?,
        ];
        eprintln!(
            "bench: window {w}: raw {:.0}/s, raw with headers {:.0}/s, bus {:.0}/s, raw with headers and one ack subscription {:.0}/s",
            rates[0], rates[1], rates[2], rates[3]
        );
        for (b, r) in best.iter_mut().zip(rates) {
            if r > b.0 {
                *b = (r, w);
            }
        }
    }
    fresh_streams(operator).await?;
    Ok((best[0].1, best[1].1, best[2].1))
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
    fresh_streams_replicated(operator, 1).await
}

/// [`fresh_streams`] with `replicas` copies of each (a cluster: 3), the raw side's too.
pub(super) async fn fresh_streams_replicated(
    operator: &jetstream::Context,
    replicas: usize,
) -> anyhow::Result<()> {
    for name in ["BENCH_RAW", "FIELD_REPORTS", "DOCUMENTS"] {
        if operator.get_stream(name).await.is_ok() {
            operator.delete_stream(name).await?;
        }
    }
    lienthong_bus::topology::provision_replicated(operator, replicas).await?;
    operator
        .create_stream(stream::Config {
            name: "BENCH_RAW".into(),
            subjects: vec!["bench.raw.>".into()],
            // As the bus's streams: the server remembers message ids for 2 h.
            duplicate_window: lienthong_bus::topology::DUPLICATE_WINDOW,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// A cluster of three nodes on this machine, every stream at three replicas: raw publishing
/// with the bus's headers against the bus publisher, each at its window; median rates
/// (raw, bus) over `runs`.
pub(super) async fn cluster(
    global: &Global,
    base: &[EventDraft],
    events: usize,
    runs: usize,
    windows: (usize, usize),
) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let nodes = lienthong::nodes::start(dir.path(), 3, "bench").await?;
    let js = jetstream::new(
        nodes
            .credentials
            .settings("operator", &nodes.url)?
            .connect("lienthong-bench-cluster")
            .await?,
    );
    let publisher = Publisher::new(js.clone(), global.registry()?, "urn:lienthong:bench");
    let (mut raw, mut bus) = (Vec::new(), Vec::new());
    for run in 0..runs {
        fresh_streams_replicated(&js, 3).await?;
        let ds = drafts(base, events, &format!("c{run}"));
        let prepared = prepare_all(&publisher, &ds)?;
        let r = raw_publish(&js, &prepared, true, windows.0).await?;
        let b = bus_publish(&publisher, ds, windows.1).await?;
        eprintln!(
            "bench: cluster run {}: raw with headers {r:.0}/s, bus {b:.0}/s (3 nodes, R3)",
            run + 1
        );
        raw.push(r);
        bus.push(b);
    }
    for s in nodes.servers {
        s.stop().await?;
    }
    Ok((median(raw), median(bus)))
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
        let n = bus_publish(&publisher, drafts(base, events, &format!("dn{run}")), 256).await?;
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
