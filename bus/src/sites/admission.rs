//! The hub's admission of what ward sites send.
//!
//! A ward's events reach the hub's [`INTAKE`] as the ward stored them. The admission takes
//! them one by one, in order, and lets into the central streams only what passes:
//! - the site is known: the message came from a registered ward's stream (its subject in
//!   the intake, `intake.<domain>.…`, is set by the hub's own sourcing configuration);
//! - it is a CloudEvent whose `source` is the site's own (`urn:lienthong:<site>:…`): a ward
//!   cannot speak for another ward or for the centre;
//! - its `Nats-Msg-Id`, if any, is the one the bus derives from its source and id: a ward
//!   cannot take the id of someone else's event (the message id of what is admitted is
//!   derived again here, never taken from the site);
//! - it is a subsystem's event (never the audit trail's, the agency registry's or a dead
//!   letter), and its data is valid against the schema its type names.
//!
//! What passes is published with the bus's publisher (the message id makes a repeat a
//! no-op); what does not — or what the central stream refuses for good — becomes a dead
//! letter with the site, the reason and the message's digest — never its data — and stays in
//! `INTAKE`. Each message is acknowledged only once
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
use sha2::Digest as _;
use tracing::{info, warn};

use super::intake::{sites_by_domain, INTAKE};
use crate::dead_letter::DeadLetter;
use crate::error::{BusError, Result, Violation};
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
    Admit(Box<Admitted>),
    Refuse(Box<DeadLetter>),
}

/// An event that passed the checks: ready to send, with what names it should the central
/// stream still refuse it.
#[derive(Debug)]
pub struct Admitted {
    pub prepared: Prepared,
    pub id: String,
    pub source: String,
    pub ty: String,
}

/// The namespaces of the centre's own sources (`urn:lienthong:<name>:…`): no ward may be
/// named so, or it could speak for the centre.
pub fn reserved_names() -> Vec<String> {
    crate::registry::SUBSYSTEMS
        .iter()
        .map(|s| s.default_source)
        .chain([
            crate::agencies::events::SOURCE,
            SOURCE,
            crate::registry::live::SOURCE,
        ])
        .filter_map(|s| s.strip_prefix("urn:lienthong:"))
        .map(|rest| rest.split(':').next().unwrap_or(rest).to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Decides on one message of the intake (`sequence` in it, `subject` its subject there):
/// whose it is, and whether it is admitted. `sites`: the site of each domain.
///
/// A refusal keeps no value of the message: not its data, and not the words of an error
/// that may quote it (a schema's or a parser's) — only where and what kind.
pub fn decide(
    publisher: &Publisher,
    sites: &BTreeMap<String, String>,
    headers: Option<&async_nats::HeaderMap>,
    subject: &str,
    payload: &[u8],
    sequence: u64,
) -> (String, Decision) {
    let (domain, original) = match super::intake::origin(subject) {
        Some((d, o)) => (Some(d), o),
        None => (None, subject),
    };
    let site = domain.and_then(|d| sites.get(d)).cloned();
    let refuse = |site: &str,
                  reason: &str,
                  message: String,
                  violations: Vec<Violation>,
                  ids: (&str, &str, &str)| {
        Decision::Refuse(Box::new(DeadLetter::not_admitted(
            site,
            reason,
            message,
            violations,
            ids,
            original,
            payload,
            (INTAKE, sequence),
        )))
    };
    // What cannot be read is named by its place in the intake, in the hub's namespace.
    let unread_id = format!("intake/{sequence}");
    let Some(site) = site else {
        let who = format!("unknown:{}", domain.unwrap_or("?"));
        let message = format!(
            "it came from no registered ward (domain {})",
            domain.unwrap_or("unknown")
        );
        return (
            "unknown".into(),
            refuse(
                &who,
                "unknown_site",
                message,
                Vec::new(),
                (&unread_id, SOURCE, ""),
            ),
        );
    };
    let event = match crate::envelope::decode(headers, payload) {
        Ok(e) => e,
        Err(_) => {
            let source = format!("urn:lienthong:{site}:unreadable");
            let message = "not a CloudEvent (structured or binary mode)".to_string();
            return (
                site.clone(),
                refuse(
                    &site,
                    "bad_envelope",
                    message,
                    Vec::new(),
                    (&unread_id, &source, ""),
                ),
            );
        }
    };
    let ids = (event.id(), event.source().as_str(), event.ty());
    let own = format!("urn:lienthong:{site}:");
    if !event.source().starts_with(&own) {
        // The source it claims is the site's words, not kept: only its digest. The dead
        // letter speaks in the site's own namespace, never in the one it tried to take.
        let claimed = hex::encode(&sha2::Sha256::digest(event.source().as_bytes())[..8]);
        let message = format!(
            "its source (SHA-256 {claimed}…) is not site {site}'s ({own}…): a ward speaks only \
             for itself"
        );
        let source = format!("{own}foreign-source");
        return (
            site.clone(),
            refuse(
                &site,
                "foreign_source",
                message,
                Vec::new(),
                (ids.0, &source, ids.2),
            ),
        );
    }
    if let Some(given) = headers.and_then(|h| h.get("Nats-Msg-Id")) {
        let derived = message_id(event.source(), event.id());
        if given.as_str() != derived {
            let message = format!(
                "its Nats-Msg-Id is not the one of its source and id ({derived}): the id of \
                 another event"
            );
            return (
                site.clone(),
                refuse(&site, "forged_message_id", message, Vec::new(), ids),
            );
        }
    }
    // Only the compiled subsystems' events: the audit trail, the agency and subsystem
    // registries, the dead letters and the subsystems registered on the running bus (they
    // publish at the centre) are the centre's.
    let subsystem = crate::subject::EventType::parse(event.ty())
        .ok()
        .filter(|t| {
            crate::registry::SUBSYSTEMS
                .iter()
                .any(|s| s.name == t.subsystem)
        });
    if subsystem.is_none() {
        let message = format!(
            "a ward publishes only the subsystems' events, not {}",
            event.ty()
        );
        return (
            site.clone(),
            refuse(&site, "foreign_type", message, Vec::new(), ids),
        );
    }
    let (id, source, ty) = (ids.0.to_string(), ids.1.to_string(), ids.2.to_string());
    match publisher.prepare(event, None) {
        Ok(prepared) => (
            site,
            Decision::Admit(Box::new(Admitted {
                prepared,
                id,
                source,
                ty,
            })),
        ),
        Err(Rejected { error, .. }) => {
            let (reason, violations) = crate::dead_letter::reason_of(&error);
            // Where and which rule, not the words (they may quote the value).
            let violations: Vec<Violation> = violations
                .into_iter()
                .map(|v| Violation {
                    message: format!("fails {}", v.schema_pointer),
                    ..v
                })
                .collect();
            let message = format!(
                "{reason}: {} violation(s) of the schema of {ty}",
                violations.len()
            );
            (
                site.clone(),
                refuse(&site, reason, message, violations, (&id, &source, &ty)),
            )
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
        match admit(&js, &publisher, &metrics, &mut stop).await {
            Ok(()) => return Ok(()),
            Err(e) => warn!(error = %e, "admission interrupted; again in 2 s"),
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Takes the intake's messages until `stop` (then `Ok`, the counts written) or until
/// something fails (the caller starts again).
async fn admit(
    js: &jetstream::Context,
    publisher: &Publisher,
    metrics: &Metrics,
    stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Result<()> {
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
        let next = tokio::select! {
            _ = stop.as_mut() => {
                flush(&kv, &mut pending).await;
                return Ok(());
            }
            next = tokio::time::timeout(Duration::from_secs(2), messages.next()) => next,
        };
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
        // A domain not named yet: a ward registered since the last look (its name is
        // written with its sources, so a fresh look finds it).
        if super::intake::origin(&msg.subject).is_some_and(|(d, _)| !sites.contains_key(d)) {
            if let Ok(info) = stream.info().await {
                sites = sites_by_domain(&info.config);
            }
        }
        let (site, decision) = decide(
            publisher,
            &sites,
            msg.headers.as_ref(),
            &msg.subject,
            &msg.payload,
            sequence,
        );
        // What the central stream refuses for good is refused like any other: a dead letter.
        let decision = match decision {
            Decision::Admit(a) => match store(&msg, || publisher.send(a.prepared.clone())).await {
                Ok(_) => Decision::Admit(a),
                Err(e) => {
                    let (reason, _) = crate::dead_letter::reason_of(&e);
                    Decision::Refuse(Box::new(DeadLetter::not_admitted(
                        &site,
                        reason,
                        format!("the central stream refused it: {e}"),
                        Vec::new(),
                        (&a.id, &a.source, &a.ty),
                        super::intake::origin(&msg.subject).map_or(&msg.subject, |(_, o)| o),
                        &msg.payload,
                        (INTAKE, sequence),
                    )))
                }
            },
            refused => refused,
        };
        let outcome = match decision {
            Decision::Admit(_) => Ok("admitted".to_string()),
            Decision::Refuse(letter) => {
                let reason = letter.reason.clone();
                // Logged, but not every one of a flood: the first ten of each site, then
                // every thousandth (all are counted and kept as dead letters).
                let refused = logged.entry(site.clone()).or_insert(0u64);
                *refused += 1;
                if *refused <= 10 || refused.is_multiple_of(1000) {
                    warn!(site, reason, message = %letter.message, intake_sequence = sequence, refused_so_far = *refused, "not admitted: kept as a dead letter");
                }
                store(&msg, || publisher.keep_dead_letter(&letter))
                    .await
                    .map(|_| reason)
            }
        };
        let outcome = match outcome {
            Ok(outcome) => {
                msg.ack().await.map_err(|e| {
                    BusError::nats(format!("acknowledging {INTAKE} #{sequence}"), e)
                })?;
                outcome
            }
            Err(e) => {
                // Not even its dead letter can be stored (the DLQ refuses it for good): it
                // stays in the intake, where it is kept, not offered again (so that it does
                // not hold up what follows), and is counted (`unstorable`) and logged.
                tracing::error!(site, error = %e, intake_sequence = sequence, "admission can neither admit nor keep this message; it stays in INTAKE");
                msg.ack_with(AckKind::Term)
                    .await
                    .map_err(|e| BusError::nats(format!("ending {INTAKE} #{sequence}"), e))?;
                "unstorable".to_string()
            }
        };
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
}

/// Stores an outcome, trying again in place while the failure is one a retry can fix (a
/// central stream unavailable: the intake holds the ward's events meanwhile, in order, and
/// the message's delivery is kept alive); a lasting failure is returned.
async fn store<F, Fut, T>(msg: &jetstream::Message, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut wait = Duration::from_millis(500);
    loop {
        match attempt().await {
            Ok(t) => return Ok(t),
            Err(e) if e.is_transient() => {
                warn!(error = %e, "admission could not store; trying again in {} ms", wait.as_millis());
                let _ = msg.ack_with(AckKind::Progress).await;
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(15));
            }
            Err(e) => return Err(e),
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
            // Revision 0: the key must not exist yet (the counts are never deleted).
            if kv
                .update(&key, body.into(), revision.unwrap_or(0))
                .await
                .is_ok()
            {
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
