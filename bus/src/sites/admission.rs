//! The hub's admission of what ward sites send.
//!
//! A ward's events reach the hub's [`INTAKE`] as the ward stored them. The admission takes
//! them one by one, in order, and lets into the central streams only what passes:
//! - the site is known: the message came from a registered ward's stream (its
//!   `Nats-Stream-Source` header, written by the hub's server, names the ward's stream);
//! - it is a CloudEvent whose `source` is the site's own (`urn:lienthong:<site>:…`): a ward
//!   cannot speak for another ward or for the centre;
//! - its `Nats-Msg-Id`, if any, is the one the bus derives from its source and id: a ward
//!   cannot take the id of someone else's event (the message id of what is admitted is
//!   derived again here, never taken from the site);
//! - its data is valid against the schema its type names.
//!
//! What passes is published with the bus's publisher (the message id makes a repeat a
//! no-op); what does not becomes a dead letter with the site, the reason and the message's
//! digest — never its data — and stays in `INTAKE`. Each message is acknowledged only once
//! its outcome is stored, so a crash repeats work and loses none. Counts per site and
//! outcome are on `/metrics` and, for `lienthong site list`, in `ADAPTER_STATE` under
//! `admission.<site>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, AckKind};
use cloudevents::AttributesReader;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::intake::{origin_domain, sites_by_domain, INTAKE};
use crate::dead_letter::DeadLetter;
use crate::error::{BusError, Result};
use crate::prepared::{message_id, Prepared};
use crate::publisher::{Publisher, Rejected};
use crate::schema::SchemaRegistry;
use crate::topology::ADAPTER_STATE_BUCKET;
use crate::Metrics;

/// The admission's corner of `ADAPTER_STATE` (`admission.<site>`).
pub const STATE_KEY: &str = "admission";
/// Its durable consumer on `INTAKE`.
pub const CONSUMER: &str = "admission";
/// The source of what the admission itself writes (only dead letters: each carries the
/// refused event's own source).
const SOURCE: &str = "urn:lienthong:hub:admission";

/// What the admission did with one site's events, since the intake began.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCounts {
    pub admitted: u64,
    /// Refused, by reason.
    pub rejected: BTreeMap<String, u64>,
}

impl SiteCounts {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    fn add(&mut self, other: &SiteCounts) {
        self.admitted += other.admitted;
        for (k, v) in &other.rejected {
            *self.rejected.entry(k.clone()).or_default() += v;
        }
    }
}

/// The key of site `site`'s counts in `ADAPTER_STATE`.
pub fn state_key(site: &str) -> String {
    format!("{STATE_KEY}.{site}")
}

/// The counts of every site, as the admission last wrote them.
pub async fn counts(js: &jetstream::Context) -> Result<BTreeMap<String, SiteCounts>> {
    let kv = js
        .get_key_value(ADAPTER_STATE_BUCKET)
        .await
        .map_err(|e| BusError::nats(format!("opening {ADAPTER_STATE_BUCKET}"), e))?;
    let mut out = BTreeMap::new();
    let mut keys = kv
        .keys()
        .await
        .map_err(|e| BusError::nats(format!("listing {ADAPTER_STATE_BUCKET}"), e))?;
    while let Some(k) = keys.next().await {
        let k = k.map_err(|e| BusError::nats(format!("listing {ADAPTER_STATE_BUCKET}"), e))?;
        let Some(site) = k.strip_prefix(&format!("{STATE_KEY}.")) else {
            continue;
        };
        if let Ok(Some(v)) = kv.get(&k).await {
            if let Ok(c) = serde_json::from_slice::<SiteCounts>(&v) {
                out.insert(site.to_string(), c);
            }
        }
    }
    Ok(out)
}

/// What becomes of one message of the intake.
#[derive(Debug)]
pub enum Decision {
    Admit(Box<Prepared>),
    Refuse(Box<DeadLetter>),
}

/// Decides on one message of the intake (`sequence` in it): whose it is, and whether it is
/// admitted. `sites`: the site of each domain.
pub fn decide(
    publisher: &Publisher,
    sites: &BTreeMap<String, String>,
    headers: Option<&async_nats::HeaderMap>,
    subject: &str,
    payload: &[u8],
    sequence: u64,
) -> (String, Decision) {
    let domain = origin_domain(headers);
    let site = domain.as_ref().and_then(|d| sites.get(d)).cloned();
    let refuse = |site: &str, reason: &str, message: String, ids: (&str, &str, &str)| {
        Decision::Refuse(Box::new(DeadLetter::not_admitted(
            site,
            reason,
            message,
            Vec::new(),
            ids,
            subject,
            payload,
            (INTAKE, sequence),
        )))
    };
    // What cannot be read is named by its place in the intake, in the hub's own namespace.
    let unread_id = format!("intake/{sequence}");
    let Some(site) = site else {
        let who = format!("unknown:{}", domain.as_deref().unwrap_or("?"));
        let message = format!(
            "it came from a stream of no registered ward (domain {})",
            domain.as_deref().unwrap_or("unknown")
        );
        return (
            "unknown".into(),
            refuse(&who, "unknown_site", message, (&unread_id, SOURCE, "")),
        );
    };
    let event = match crate::envelope::decode(headers, payload) {
        Ok(e) => e,
        Err(e) => {
            let source = format!("urn:lienthong:{site}:unreadable");
            return (
                site.clone(),
                refuse(
                    &site,
                    "bad_envelope",
                    format!("not a CloudEvent: {e}"),
                    (&unread_id, &source, ""),
                ),
            );
        }
    };
    let ids = (event.id(), event.source().as_str(), event.ty());
    let own = format!("urn:lienthong:{site}:");
    if !event.source().starts_with(&own) {
        let message = format!(
            "the source {} is not site {site}'s ({own}…): a ward speaks only for itself",
            event.source()
        );
        return (site.clone(), refuse(&site, "foreign_source", message, ids));
    }
    if let Some(given) = headers.and_then(|h| h.get("Nats-Msg-Id")) {
        let derived = message_id(event.source(), event.id());
        if given.as_str() != derived {
            let message = format!(
                "its Nats-Msg-Id {} is not the one of its source and id ({derived}): the id \
                 of another event",
                given.as_str()
            );
            return (
                site.clone(),
                refuse(&site, "forged_message_id", message, ids),
            );
        }
    }
    let (id, source, ty) = (ids.0.to_string(), ids.1.to_string(), ids.2.to_string());
    match publisher.prepare(event, None) {
        Ok(p) => (site, Decision::Admit(Box::new(p))),
        Err(Rejected { error, .. }) => {
            let (reason, violations) = crate::dead_letter::reason_of(&error);
            let letter = DeadLetter::not_admitted(
                &site,
                reason,
                error.to_string(),
                violations,
                (&id, &source, &ty),
                subject,
                payload,
                (INTAKE, sequence),
            );
            (site, Decision::Refuse(Box::new(letter)))
        }
    }
}

/// Runs the admission until `stop`: waits for the intake (made by the first `site add`),
/// then takes its messages in order. `client` is the `admission` role's connection.
pub async fn run(
    client: async_nats::Client,
    refusals: crate::Refusals,
    registry: Arc<SchemaRegistry>,
    metrics: Metrics,
    stop: impl std::future::Future<Output = ()> + Send,
) -> Result<()> {
    let js = jetstream::new(client);
    let publisher = Publisher::new(js.clone(), registry, SOURCE).with_refusals(refusals);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            r = admit(&js, &publisher, &metrics) => {
                if let Err(e) = r {
                    warn!(error = %e, "admission interrupted; again in 2 s");
                }
            }
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Takes the intake's messages until something fails (the caller starts again).
async fn admit(js: &jetstream::Context, publisher: &Publisher, metrics: &Metrics) -> Result<()> {
    let mut stream = js
        .get_stream(INTAKE)
        .await
        .map_err(|e| BusError::nats(format!("opening {INTAKE} (no ward registered yet?)"), e))?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            CONSUMER,
            consumer::pull::Config {
                durable_name: Some(CONSUMER.into()),
                description: Some(
                    "the hub's admission: what ward sites sent, into the central streams".into(),
                ),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(60),
                max_ack_pending: 1024,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| BusError::nats(format!("the admission's consumer on {INTAKE}"), e))?;
    let mut sites = sites_by_domain(
        &stream
            .info()
            .await
            .map_err(|e| BusError::nats(format!("reading {INTAKE}"), e))?
            .config,
    );
    let mut read_sites = Instant::now();
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(256)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| BusError::nats(format!("reading {INTAKE}"), e))?;
    let kv = js
        .get_key_value(ADAPTER_STATE_BUCKET)
        .await
        .map_err(|e| BusError::nats(format!("opening {ADAPTER_STATE_BUCKET}"), e))?;
    let mut pending: BTreeMap<String, SiteCounts> = BTreeMap::new();
    let mut logged: BTreeMap<String, u64> = BTreeMap::new();
    let mut flushed = Instant::now();
    info!("admission: taking what ward sites send from {INTAKE}");
    loop {
        let next = tokio::time::timeout(Duration::from_secs(2), messages.next()).await;
        if !pending.is_empty() && flushed.elapsed() >= Duration::from_secs(1) {
            flush(&kv, &mut pending).await;
            flushed = Instant::now();
        }
        let msg = match next {
            Err(_) => continue,
            Ok(None) => return Err(BusError::Server(format!("{INTAKE}: the consumer ended"))),
            Ok(Some(Err(e))) => return Err(BusError::nats(format!("reading {INTAKE}"), e)),
            Ok(Some(Ok(m))) => m,
        };
        let sequence = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
        // A domain not named yet: a ward registered since the last look.
        if origin_domain(msg.headers.as_ref()).is_some_and(|d| !sites.contains_key(&d))
            && read_sites.elapsed() > Duration::from_secs(1)
        {
            if let Ok(info) = stream.info().await {
                sites = sites_by_domain(&info.config);
            }
            read_sites = Instant::now();
        }
        let (site, decision) = decide(
            publisher,
            &sites,
            msg.headers.as_ref(),
            &msg.subject,
            &msg.payload,
            sequence,
        );
        let outcome = match decision {
            Decision::Admit(p) => match publisher.send(*p).await {
                Ok(_) => Ok("admitted".to_string()),
                Err(e) => Err(e),
            },
            Decision::Refuse(letter) => {
                let reason = letter.reason.clone();
                // Logged, but not every one of a flood: the first ten of each site, then
                // every thousandth (all are counted and kept as dead letters).
                let refused = logged.entry(site.clone()).or_insert(0u64);
                *refused += 1;
                if *refused <= 10 || refused.is_multiple_of(1000) {
                    warn!(site, reason, message = %letter.message, intake_sequence = sequence, refused_so_far = *refused, "not admitted: kept as a dead letter");
                }
                match publisher.keep_dead_letter(&letter).await {
                    Ok(_) => Ok(reason),
                    Err(e) => Err(e),
                }
            }
        };
        match outcome {
            Ok(outcome) => {
                msg.ack().await.map_err(|e| {
                    BusError::nats(format!("acknowledging {INTAKE} #{sequence}"), e)
                })?;
                let counts = pending.entry(site.clone()).or_default();
                if outcome == "admitted" {
                    counts.admitted += 1;
                } else {
                    *counts.rejected.entry(outcome.clone()).or_default() += 1;
                }
                metrics
                    .counter(
                        "lienthong_admission_total",
                        "What ward sites sent, by site and outcome (admitted, or the reason it was not)",
                        &[("site", &site), ("outcome", &outcome)],
                    )
                    .inc();
            }
            Err(e) if e.is_transient() => {
                // Not stored: offered again later (nothing is lost, nothing skipped ahead).
                warn!(error = %e, intake_sequence = sequence, "admission could not store; the message is offered again");
                let _ = msg
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(2))))
                    .await;
                flush(&kv, &mut pending).await;
                return Err(e);
            }
            Err(e) => {
                // Neither admitted nor kept as a dead letter, and trying again would not
                // change that: it stays in the intake, not offered again (so that it does
                // not hold up what follows), and is counted and logged.
                tracing::error!(site, error = %e, intake_sequence = sequence, "admission can neither admit nor keep this message; it stays in INTAKE");
                msg.ack_with(AckKind::Term)
                    .await
                    .map_err(|e| BusError::nats(format!("ending {INTAKE} #{sequence}"), e))?;
                *pending
                    .entry(site.clone())
                    .or_default()
                    .rejected
                    .entry("unstorable".into())
                    .or_default() += 1;
            }
        }
    }
}

/// Adds the counts not written yet to each site's record (compare-and-set: several hub
/// nodes may admit at once). What cannot be written now is kept for the next time.
async fn flush(kv: &jetstream::kv::Store, pending: &mut BTreeMap<String, SiteCounts>) {
    let mut left = BTreeMap::new();
    for (site, delta) in std::mem::take(pending) {
        let key = state_key(&site);
        let mut written = false;
        for _ in 0..5 {
            let (mut total, revision) = match kv.entry(&key).await {
                Ok(Some(e)) if !e.value.is_empty() => (
                    serde_json::from_slice::<SiteCounts>(&e.value).unwrap_or_default(),
                    Some(e.revision),
                ),
                Ok(_) => (SiteCounts::default(), None),
                Err(_) => break,
            };
            total.add(&delta);
            let Ok(body) = serde_json::to_vec(&total) else {
                break;
            };
            let r = match revision {
                Some(rev) => kv.update(&key, body.into(), rev).await.map(|_| ()),
                None => kv.create(&key, body.into()).await.map(|_| ()).map_err(|e| {
                    async_nats::jetstream::kv::UpdateError::with_source(
                        async_nats::jetstream::kv::UpdateErrorKind::Other,
                        e,
                    )
                }),
            };
            if r.is_ok() {
                written = true;
                break;
            }
        }
        if !written {
            left.insert(site, delta);
        }
    }
    *pending = left;
}
