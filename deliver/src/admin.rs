//! The operator's side of webhook subscriptions: subscribe, list, unsubscribe.
//!
//! A subscription is a durable consumer on the agency's copy of a stream (in the agency's
//! account, so it is the agency's and nobody else's), named `webhook-<name>`, starting at the
//! copy's first event; the registry records it (`subscription.created`), and the receiver's
//! URL and secret are kept privately for the deliverer ([`crate::store`]).

use std::time::Duration;

use async_nats::jetstream::consumer::{self, pull};
use lienthong_bus::agencies::admin::AgencyAdmin;
use lienthong_bus::agencies::events::{
    AgencyEvent, Mode, SubscriptionCreated, SubscriptionRemoved,
};
use lienthong_bus::agencies::Subscription;
use lienthong_bus::registry;
use serde::Serialize;

use crate::signature::Secret;
use crate::store::{redacted, Endpoint, EndpointStore};
use crate::DeliverError;

/// How long an event may wait for its acknowledgement before the server offers it again
/// (the deliverer extends it while it retries).
pub const ACK_WAIT: Duration = Duration::from_secs(60);

/// The consumer of subscription `name` on the agency's copy.
pub fn consumer_name(name: &str) -> String {
    format!("webhook-{name}")
}

/// The durable consumer of subscription `id` (`<agency>.<name>`): from the copy's first
/// event, acknowledged one by one.
pub fn position_config(id: &str, filters: &[String]) -> pull::Config {
    let name = id.rsplit('.').next().unwrap_or(id);
    pull::Config {
        durable_name: Some(consumer_name(name)),
        description: Some(format!("webhook subscription {id}")),
        filter_subjects: filters.to_vec(),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        deliver_policy: consumer::DeliverPolicy::All,
        max_deliver: -1,
        ..Default::default()
    }
}

/// What to subscribe.
#[derive(Debug, Clone)]
pub struct SubscribeRequest {
    pub agency: String,
    /// `a–z 0–9 -`; the subscription is `<agency>.<name>`.
    pub name: String,
    pub stream: String,
    /// Event types (`vn.egov.<subsystem>.<entity>.<action>`); each becomes a subject filter.
    pub types: Vec<String>,
    /// Subject filters.
    pub subjects: Vec<String>,
    pub webhook: url::Url,
    pub secret: Secret,
    pub mode: Mode,
}

/// The subject filter of an event type: `egov.<subsystem>.<entity>.*.<action>`.
pub fn type_filter(ty: &str) -> Result<String, DeliverError> {
    let t = lienthong_bus::EventType::parse(ty)
        .map_err(|e| DeliverError::Request(format!("--type {ty}: {e}")))?;
    Ok(format!("egov.{}.{}.*.{}", t.subsystem, t.entity, t.action))
}

fn check_name(name: &str) -> Result<(), DeliverError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DeliverError::Request(format!(
            "subscription name {name:?}: use 1 to 64 lower-case letters, digits and `-`"
        )))
    }
}

/// Subscribes; returns the subscription's id (`<agency>.<name>`).
pub async fn subscribe(admin: &AgencyAdmin, req: SubscribeRequest) -> Result<String, DeliverError> {
    check_name(&req.name)?;
    if !matches!(req.webhook.scheme(), "http" | "https") {
        return Err(DeliverError::Request(format!(
            "--webhook {}: use an http(s) URL",
            redacted(&req.webhook)
        )));
    }
    // Citizens' events never cross a network in the clear.
    if let Some(host) = lienthong_bus::tls::clear_beyond_loopback(&req.webhook) {
        return Err(DeliverError::Request(format!(
            "--webhook {}: {host} is not loopback, and events are never sent to it in the clear; give an https:// URL",
            redacted(&req.webhook)
        )));
    }
    let registry = admin.registry().await?;
    let agency = registry.agencies.get(&req.agency).ok_or_else(|| {
        DeliverError::Request(format!(
            "no agency {}; `lienthong agency list` shows them",
            req.agency
        ))
    })?;
    let stream = req.stream.to_ascii_uppercase();
    if !agency.grants.iter().any(|g| g.stream == stream) {
        return Err(DeliverError::Request(format!(
            "agency {} is not granted {stream} (it reads {}); grant it first: lienthong agency grant",
            req.agency,
            agency.grants.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    let id = format!("{}.{}", req.agency, req.name);
    if registry.subscriptions.contains_key(&id) {
        return Err(DeliverError::Request(format!(
            "subscription {id} exists; unsubscribe it first or choose another --name"
        )));
    }
    let subsystem = registry::subsystem_of_stream(&stream)
        .map(|s| s.name)
        .unwrap_or_default();
    let mut filters = req.subjects.clone();
    for ty in &req.types {
        filters.push(type_filter(ty)?);
    }
    let granted = agency
        .grants
        .iter()
        .find(|g| g.stream == stream)
        .map(|g| g.filters())
        .unwrap_or_default();
    for f in &filters {
        if !f.starts_with(&format!("egov.{subsystem}.")) {
            return Err(DeliverError::Request(format!(
                "{f} is not a subject of {stream} (egov.{subsystem}.…)"
            )));
        }
        if !granted
            .iter()
            .any(|g| lienthong_bus::agencies::covers(g, f))
        {
            return Err(DeliverError::Request(format!(
                "{f} is outside what agency {} is granted of {stream} ({}): it would never receive anything",
                req.agency,
                granted.join(", ")
            )));
        }
    }
    EndpointStore::new(admin.credentials_dir()).put(
        &id,
        &Endpoint {
            url: req.webhook.clone(),
            secret: req.secret.to_text(),
            mode: req.mode,
        },
    )?;
    let js = admin.admin_js(&req.agency).await?;
    js.get_stream(&stream)
        .await
        .map_err(|e| DeliverError::nats(format!("opening {}'s copy of {stream}", req.agency), e))?
        .create_consumer(position_config(&id, &filters))
        .await
        .map_err(|e| DeliverError::nats(format!("creating the position of {id}"), e))?;
    admin
        .record(AgencyEvent::SubscriptionCreated(SubscriptionCreated {
            subscription: id.clone(),
            agency: req.agency,
            stream,
            subjects: filters,
            webhook: redacted(&req.webhook),
            mode: req.mode,
            by: admin.by().to_string(),
        }))
        .await?;
    Ok(id)
}

/// Ends a subscription: recorded, its position deleted, its private part removed.
pub async fn unsubscribe(
    admin: &AgencyAdmin,
    id: &str,
    reason: Option<String>,
) -> Result<(), DeliverError> {
    let registry = admin.registry().await?;
    let sub = registry.subscriptions.get(id).ok_or_else(|| {
        DeliverError::Request(format!(
            "no subscription {id}; `lienthong agency subscriptions` lists them"
        ))
    })?;
    admin
        .record(AgencyEvent::SubscriptionRemoved(SubscriptionRemoved {
            subscription: id.to_string(),
            agency: sub.agency.clone(),
            by: admin.by().to_string(),
            reason,
        }))
        .await?;
    remove_position(admin, sub).await;
    EndpointStore::new(admin.credentials_dir()).remove(id);
    Ok(())
}

/// Deletes a subscription's consumer (it may be gone already).
pub async fn remove_position(admin: &AgencyAdmin, sub: &Subscription) {
    let name = sub.id.rsplit('.').next().unwrap_or_default();
    if let Ok(js) = admin.admin_js(&sub.agency).await {
        if let Ok(stream) = js.get_stream(&sub.stream).await {
            let _ = stream.delete_consumer(&consumer_name(name)).await;
        }
    }
}

/// A subscription and how far its receiver is.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionState {
    #[serde(flatten)]
    pub subscription: Subscription,
    /// Events not yet delivered (`None`: its position could not be read).
    pub pending: Option<u64>,
    /// The copy's sequence through which every event was acknowledged by the receiver.
    pub acknowledged_to: Option<u64>,
}

/// Every subscription (of `agency`, when given) with its progress.
pub async fn subscriptions(
    admin: &AgencyAdmin,
    agency: Option<&str>,
) -> Result<Vec<SubscriptionState>, DeliverError> {
    let registry = admin.registry().await?;
    if let Some(a) = agency {
        if !registry.agencies.contains_key(a) {
            return Err(DeliverError::Request(format!(
                "no agency {a}; `lienthong agency list` shows them"
            )));
        }
    }
    let mut out = Vec::new();
    for sub in registry.subscriptions.values() {
        if agency.is_some_and(|a| a != sub.agency) {
            continue;
        }
        let name = sub.id.rsplit('.').next().unwrap_or_default();
        let mut state = SubscriptionState {
            subscription: sub.clone(),
            pending: None,
            acknowledged_to: None,
        };
        if let Ok(js) = admin.admin_js(&sub.agency).await {
            if let Ok(stream) = js.get_stream(&sub.stream).await {
                if let Ok(mut c) = stream
                    .get_consumer::<pull::Config>(&consumer_name(name))
                    .await
                {
                    if let Ok(info) = c.info().await {
                        state.pending = Some(info.num_pending + info.num_ack_pending as u64);
                        state.acknowledged_to = Some(info.ack_floor.stream_sequence);
                    }
                }
            }
        }
        out.push(state);
    }
    Ok(out)
}
