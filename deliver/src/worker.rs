//! One subscription's delivery: fetch from its position on the agency's copy, POST each
//! event in stream order, acknowledge only after the receiver answered 2xx.
//!
//! A failure (no connection, a timeout, any status but 2xx and 410) is retried with
//! exponential backoff up to a limit, the event held (its acknowledgement deadline extended)
//! so nothing after it overtakes it. After a few failures in a row the subscription is marked
//! failing — `subscription.failing` on the bus, the `lienthong_webhook_failing` gauge — and
//! when the receiver answers again it catches up from where it was and is marked recovered.
//! A receiver answering `410 Gone` ends its subscription. Every repeat carries the same
//! `webhook-id`, so receivers drop what they already have.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lienthong_bus::agencies::events::{
    AgencyEvent, SubscriptionFailing, SubscriptionRecovered, SubscriptionRemoved,
};
use lienthong_bus::agencies::Subscription;
use lienthong_bus::metrics::Counter;
use lienthong_bus::{ConnectSettings, Metrics, Publisher};
use tracing::{info, warn};

use crate::admin::consumer_name;
use crate::request::outgoing;
use crate::service::DeliverOptions;
use crate::signature::Secret;
use crate::store::{Endpoint, EndpointStore};

/// How one event ended.
enum Outcome {
    Delivered,
    /// The subscription ends, for this reason (the receiver answered 410; its URL would
    /// carry events in the clear): no retry can deliver it.
    Ended {
        by: &'static str,
        reason: String,
    },
    Stopped,
}

/// The counters of one subscription.
struct Meters {
    delivered: Counter,
    failed_attempts: Counter,
    failing: Counter,
    pending: Counter,
}

impl Meters {
    fn new(metrics: &Metrics, id: &str) -> Self {
        let labels = [("subscription", id)];
        Self {
            delivered: metrics.counter(
                "lienthong_webhook_delivered_total",
                "Events a webhook receiver acknowledged with 2xx.",
                &labels,
            ),
            failed_attempts: metrics.counter(
                "lienthong_webhook_failed_attempts_total",
                "POSTs that failed (no connection, timeout, or a status other than 2xx/410); each is retried.",
                &labels,
            ),
            failing: metrics.gauge(
                "lienthong_webhook_failing",
                "1 while a subscription's deliveries keep failing.",
                &labels,
            ),
            pending: metrics.gauge(
                "lienthong_webhook_pending",
                "Events of a subscription not yet delivered.",
                &labels,
            ),
        }
    }
}

/// One subscription being delivered.
pub struct Worker {
    pub(crate) sub: Subscription,
    pub(crate) endpoints: EndpointStore,
    /// The agency's administrator's credentials (its account holds the position).
    pub(crate) admin_env: std::path::PathBuf,
    /// Records failing, recovered and removed on the bus (the `deliver` role).
    pub(crate) reporter: Publisher,
    pub(crate) http: reqwest::Client,
    pub(crate) options: DeliverOptions,
    pub(crate) metrics: Metrics,
}

struct Failing {
    since: DateTime<Utc>,
    attempts: u64,
    reported: bool,
}

impl Worker {
    /// Delivers until `stop`, or until the receiver ends the subscription.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let meters = Meters::new(&self.metrics, &self.sub.id);
        let mut failing: Option<Failing> = None;
        loop {
            let setup = async {
                let endpoint = self.endpoints.get(&self.sub.id)?;
                let secret = endpoint.secret()?;
                let consumer = self.position().await?;
                Ok::<_, crate::DeliverError>((endpoint, secret, consumer))
            };
            let (endpoint, secret, consumer) = match setup.await {
                Ok(x) => x,
                Err(e) => {
                    warn!(subscription = %self.sub.id, "cannot deliver yet: {e}");
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    }
                }
            };
            // Batches until the connection fails; then connect again.
            loop {
                let batch = consumer
                    .fetch()
                    .max_messages(self.options.batch)
                    .expires(Duration::from_secs(1))
                    .messages()
                    .await;
                let mut messages = match batch {
                    Ok(m) => m,
                    Err(e) => {
                        warn!(subscription = %self.sub.id, "reading its position: {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                };
                // The whole batch first: what the server handed over is then held here, in
                // order, however long one event takes (a receiver that is down).
                let mut held = Vec::new();
                let mut lost = false;
                loop {
                    let next = tokio::select! {
                        _ = &mut stop => return,
                        m = messages.next() => m,
                    };
                    match next {
                        Some(Ok(msg)) => held.push(msg),
                        Some(Err(e)) => {
                            // The position may be gone (deleted, its copy rebuilt): look again.
                            warn!(subscription = %self.sub.id, "reading its position: {e}");
                            lost = true;
                            break;
                        }
                        None => break,
                    }
                }
                for (i, msg) in held.iter().enumerate() {
                    if let Ok(info) = msg.info() {
                        meters.pending.set(info.pending);
                    }
                    let outcome = self
                        .deliver(
                            msg,
                            &held[i + 1..],
                            &endpoint,
                            &secret,
                            &mut failing,
                            &meters,
                            &mut stop,
                        )
                        .await;
                    match outcome {
                        Outcome::Delivered => {
                            let _ = msg.ack().await;
                            meters.delivered.inc();
                        }
                        Outcome::Ended { by, reason } => {
                            self.end(by, &reason).await;
                            return;
                        }
                        // What was held is offered again first on the next start (reset).
                        Outcome::Stopped => return,
                    }
                }
                if lost {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
        }
    }

    /// The subscription's durable consumer on the agency's copy.
    async fn position(
        &self,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, crate::DeliverError> {
        let settings = ConnectSettings::resolve(Some(&self.admin_env))?;
        let client = settings
            .connect(&format!("lienthong-deliver-{}", self.sub.id))
            .await?;
        let js = jetstream::new(client.clone());
        let name = consumer_name(self.sub.id.rsplit('.').next().unwrap_or_default());
        let stream = js
            .get_stream(&self.sub.stream)
            .await
            .map_err(|e| crate::DeliverError::nats(format!("opening {}", self.sub.stream), e))?;
        let consumer = match stream.get_consumer(&name).await {
            Ok(c) => c,
            // Gone: the copy was rebuilt for new grant filters, or the agency deleted it. The
            // subscription goes on from the copy's first event (receivers drop repeats by
            // their webhook-id).
            Err(e) if e.to_string().contains("not found") => {
                warn!(subscription = %self.sub.id, "its position was gone; starting again from the copy's first event");
                stream
                    .create_consumer(crate::admin::position_config(
                        &self.sub.id,
                        &self.sub.subjects,
                    ))
                    .await
                    .map_err(|e| {
                        crate::DeliverError::nats(
                            format!("recreating the position of {}", self.sub.id),
                            e,
                        )
                    })?
            }
            Err(e) => {
                return Err(crate::DeliverError::nats(
                    format!("opening the position of {}", self.sub.id),
                    e,
                ))
            }
        };
        // Events a previous run took but never saw acknowledged (it was stopped or killed)
        // are offered again at once, before anything after them: back to the ack floor
        // (server ≥ 2.14; an older one offers them again after the acknowledgement wait).
        let reset = format!("$JS.API.CONSUMER.RESET.{}.{name}", self.sub.stream);
        match client.request(reset, bytes::Bytes::new()).await {
            Ok(r) if !r.payload.windows(7).any(|w| w == b"\"error\"") => {}
            Ok(r) => {
                warn!(subscription = %self.sub.id, "resetting its position to the last acknowledged event: {}", String::from_utf8_lossy(&r.payload))
            }
            Err(e) => {
                warn!(subscription = %self.sub.id, "resetting its position to the last acknowledged event: {e}")
            }
        }
        Ok(consumer)
    }

    /// POSTs one event until the receiver takes it (or ends the subscription).
    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        msg: &jetstream::Message,
        behind: &[jetstream::Message],
        endpoint: &Endpoint,
        secret: &Secret,
        failing: &mut Option<Failing>,
        meters: &Meters,
        stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Outcome {
        let event = match lienthong_bus::envelope::decode(msg.headers.as_ref(), &msg.payload) {
            Ok(e) => e,
            Err(e) => {
                // Only valid events reach a stream; one that cannot be read is not sent.
                warn!(subscription = %self.sub.id, "not a CloudEvent, not sent: {e}");
                return Outcome::Delivered;
            }
        };
        let out = match outgoing(&event, endpoint.mode) {
            Ok(o) => o,
            Err(e) => {
                warn!(subscription = %self.sub.id, "cannot be sent: {e}");
                return Outcome::Delivered;
            }
        };
        // A subscription made before plaintext webhooks were refused.
        if let Some(host) = lienthong_bus::tls::clear_beyond_loopback(&endpoint.url) {
            return Outcome::Ended {
                by: "deliverer",
                reason: format!(
                    "its URL would send events to {host} in the clear; subscribe again with https://"
                ),
            };
        }
        let mut backoff = self.options.first_backoff;
        loop {
            let timestamp = Utc::now().timestamp();
            let mut request = self
                .http
                .post(endpoint.url.clone())
                .timeout(self.options.request_timeout)
                .header("webhook-id", &out.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    secret.sign(&out.id, timestamp, &out.body),
                )
                .body(out.body.clone());
            for (k, v) in &out.headers {
                request = request.header(k, v);
            }
            let error = match request.send().await {
                Ok(r) if r.status().is_success() => {
                    if let Some(f) = failing.take() {
                        meters.failing.set(0);
                        if f.reported {
                            info!(subscription = %self.sub.id, "the receiver answers again; catching up");
                            self.report(AgencyEvent::SubscriptionRecovered(
                                SubscriptionRecovered {
                                    subscription: self.sub.id.clone(),
                                    agency: self.sub.agency.clone(),
                                    failing_since: f.since,
                                },
                            ))
                            .await;
                        }
                    }
                    return Outcome::Delivered;
                }
                Ok(r) if r.status() == reqwest::StatusCode::GONE => {
                    return Outcome::Ended {
                        by: "receiver",
                        reason: "410 Gone".into(),
                    }
                }
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => describe(&e),
            };
            meters.failed_attempts.inc();
            let f = failing.get_or_insert(Failing {
                since: Utc::now(),
                attempts: 0,
                reported: false,
            });
            f.attempts += 1;
            if !f.reported && f.attempts >= self.options.failing_after {
                f.reported = true;
                meters.failing.set(1);
                warn!(subscription = %self.sub.id, attempts = f.attempts, "deliveries keep failing: {error}; retrying");
                let pending = msg.info().map(|i| i.pending + 1).unwrap_or(1);
                self.report(AgencyEvent::SubscriptionFailing(SubscriptionFailing {
                    subscription: self.sub.id.clone(),
                    agency: self.sub.agency.clone(),
                    since: f.since,
                    attempts: f.attempts,
                    error: error.clone(),
                    pending,
                }))
                .await;
            }
            // Held: nothing after it is sent before it; its deadline, and theirs, extended.
            let _ = msg.ack_with(AckKind::Progress).await;
            for m in behind {
                let _ = m.ack_with(AckKind::Progress).await;
            }
            tokio::select! {
                _ = stop.as_mut() => return Outcome::Stopped,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }

    async fn report(&self, event: AgencyEvent) {
        if let Err(e) = self.reporter.publish(event.draft(Utc::now())).await {
            warn!(subscription = %self.sub.id, "recording the subscription's state: {e}");
        }
    }

    /// The subscription ends (`reason`): recorded, position and private part removed.
    async fn end(&self, by: &str, reason: &str) {
        warn!(subscription = %self.sub.id, "the subscription ends: {reason}");
        self.report(AgencyEvent::SubscriptionRemoved(SubscriptionRemoved {
            subscription: self.sub.id.clone(),
            agency: self.sub.agency.clone(),
            by: by.into(),
            reason: Some(reason.to_string()),
        }))
        .await;
        if let Ok(settings) = ConnectSettings::resolve(Some(&self.admin_env)) {
            if let Ok(client) = settings.connect("lienthong-deliver-gone").await {
                let js = jetstream::new(client);
                let name = self.sub.id.rsplit('.').next().unwrap_or_default();
                if let Ok(stream) = js.get_stream(&self.sub.stream).await {
                    let _ = stream.delete_consumer(&consumer_name(name)).await;
                }
            }
        }
        self.endpoints.remove(&self.sub.id);
    }
}

/// A transport failure in words, without the URL (it may hold a token).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else if e.is_request() || e.is_body() {
        "the request could not be sent".into()
    } else {
        "no answer".into()
    }
}
