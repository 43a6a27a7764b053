//! The agency registry as events on `AGENCIES`, and the registry folded from them.
//!
//! | type `vn.egov.agencies.…` | key | when |
//! |---|---|---|
//! | `agency.granted` | agency | added, or its grants changed (the full set each time) |
//! | `agency.rotated` | agency | its password was replaced |
//! | `agency.revoked` | agency | it may read nothing any more |
//! | `subscription.created` | subscription | a webhook subscription was made |
//! | `subscription.removed` | subscription | ended by the operator, or by the receiver (410) |
//! | `subscription.failing` | subscription | deliveries keep failing (it is retried) |
//! | `subscription.recovered` | subscription | a failing subscription delivers again |
//!
//! Each event names who did it (`by`) and the event's `time` says when, so folding the
//! stream up to an instant answers "who could read this stream on that date". Passwords,
//! hashes, webhook secrets and webhook URLs' query strings are never in these events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Grant;
use crate::envelope::Classification;
use crate::error::{BusError, Result};
use crate::publisher::EventDraft;
use crate::reader::{StoredMessage, StreamReader};
use crate::registry::AGENCIES;
use crate::subject::EventType;

/// The `AGENCIES` event types (entity, action).
pub const TYPES: &[(&str, &str)] = &[
    ("agency", "granted"),
    ("agency", "rotated"),
    ("agency", "revoked"),
    ("subscription", "created"),
    ("subscription", "removed"),
    ("subscription", "failing"),
    ("subscription", "recovered"),
];

/// The source of the events the `lienthong agency` commands publish.
pub const SOURCE: &str = "urn:lienthong:agencies";

fn event_type(entity: &str, action: &str) -> EventType {
    EventType::new(AGENCIES.subject_root, entity, action)
}

/// An agency was granted streams (or its grants changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted {
    pub agency: String,
    pub grants: Vec<Grant>,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An agency's password was replaced (its open connections were closed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotated {
    pub agency: String,
    pub by: String,
}

/// An agency may read nothing any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub agency: String,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How a webhook receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The event's data as the body, its attributes as `ce-` headers.
    #[default]
    Binary,
    /// The whole event as JSON (`application/cloudevents+json`).
    Structured,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "binary" => Ok(Mode::Binary),
            "structured" => Ok(Mode::Structured),
            other => Err(format!("{other:?}: use binary or structured")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Binary => "binary",
            Mode::Structured => "structured",
        })
    }
}

/// A webhook subscription was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionCreated {
    /// `<agency>.<name>`.
    pub subscription: String,
    pub agency: String,
    pub stream: String,
    /// Subject filters (types become filters too); empty: every event of the copy.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// The receiver's URL without its query string or user information.
    pub webhook: String,
    pub mode: Mode,
    pub by: String,
}

/// A webhook subscription ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRemoved {
    pub subscription: String,
    pub agency: String,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Deliveries to a webhook keep failing; they are retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionFailing {
    pub subscription: String,
    pub agency: String,
    pub since: DateTime<Utc>,
    pub attempts: u64,
    /// The last failure: an HTTP status or a connection error, without the URL.
    pub error: String,
    /// Events waiting for the receiver.
    pub pending: u64,
}

/// A failing webhook receives events again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecovered {
    pub subscription: String,
    pub agency: String,
    pub failing_since: DateTime<Utc>,
}

/// One event of the agency registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgencyEvent {
    Granted(Granted),
    Rotated(Rotated),
    Revoked(Revoked),
    SubscriptionCreated(SubscriptionCreated),
    SubscriptionRemoved(SubscriptionRemoved),
    SubscriptionFailing(SubscriptionFailing),
    SubscriptionRecovered(SubscriptionRecovered),
}

impl AgencyEvent {
    fn parts(&self) -> (&'static str, &'static str, &str, Value) {
        let v = |x: &dyn erased::Ser| x.value();
        match self {
            Self::Granted(e) => ("agency", "granted", &e.agency, v(e)),
            Self::Rotated(e) => ("agency", "rotated", &e.agency, v(e)),
            Self::Revoked(e) => ("agency", "revoked", &e.agency, v(e)),
            Self::SubscriptionCreated(e) => ("subscription", "created", &e.subscription, v(e)),
            Self::SubscriptionRemoved(e) => ("subscription", "removed", &e.subscription, v(e)),
            Self::SubscriptionFailing(e) => ("subscription", "failing", &e.subscription, v(e)),
            Self::SubscriptionRecovered(e) => ("subscription", "recovered", &e.subscription, v(e)),
        }
    }

    /// The event to publish (a fresh id: each is a decision made once).
    pub fn draft(&self, time: DateTime<Utc>) -> EventDraft {
        self.draft_expecting(time, None)
    }

    /// [`Self::draft`], stored only if the aggregate's last event is still `expected`
    /// (0: none yet) — optimistic concurrency between operators.
    pub fn draft_expecting(&self, time: DateTime<Utc>, expected: Option<u64>) -> EventDraft {
        let (entity, action, key, data) = self.parts();
        let mut d = EventDraft::new(
            event_type(entity, action),
            format!(
                "{entity}.{action}/{key}/{}",
                hex::encode(rand::random::<[u8; 16]>())
            ),
            key,
            time,
            data,
            Classification::Internal,
        );
        d.expected_last_subject_sequence = expected;
        d
    }

    /// Reads an event of `AGENCIES` back (`None`: a type this version does not know).
    pub fn from_parts(ty: &str, data: &Value) -> Result<Option<Self>> {
        let prefix = format!("vn.egov.{}.", AGENCIES.subject_root);
        let Some(rest) = ty.strip_prefix(&prefix) else {
            return Ok(None);
        };
        fn de<T: serde::de::DeserializeOwned>(ty: &str, data: &Value) -> Result<T> {
            serde_json::from_value(data.clone()).map_err(|e| BusError::Envelope {
                reason: format!("{ty}: {e}"),
            })
        }
        Ok(Some(match rest {
            "agency.granted" => Self::Granted(de(ty, data)?),
            "agency.rotated" => Self::Rotated(de(ty, data)?),
            "agency.revoked" => Self::Revoked(de(ty, data)?),
            "subscription.created" => Self::SubscriptionCreated(de(ty, data)?),
            "subscription.removed" => Self::SubscriptionRemoved(de(ty, data)?),
            "subscription.failing" => Self::SubscriptionFailing(de(ty, data)?),
            "subscription.recovered" => Self::SubscriptionRecovered(de(ty, data)?),
            _ => return Ok(None),
        }))
    }
}

mod erased {
    pub trait Ser {
        fn value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn value(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("registry events serialise")
        }
    }
}

/// What the registry knows of one agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgencyRecord {
    pub name: String,
    pub grants: Vec<Grant>,
    /// First granted (or granted again after a revocation).
    pub since: DateTime<Utc>,
    pub granted_at: DateTime<Utc>,
    pub granted_by: String,
    pub rotated_at: Option<DateTime<Utc>>,
    /// The registry's sequence of its last change (its configuration version).
    pub sequence: u64,
}

/// What the registry knows of one webhook subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    pub id: String,
    pub agency: String,
    pub stream: String,
    pub subjects: Vec<String>,
    pub webhook: String,
    pub mode: Mode,
    pub created_at: DateTime<Utc>,
    pub by: String,
    /// Set while deliveries keep failing.
    pub failing: Option<SubscriptionFailing>,
}

/// One change of who may read a stream, for auditors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessChange {
    pub at: DateTime<Utc>,
    pub sequence: u64,
    pub agency: String,
    /// `granted`, `revoked`, `rotated`.
    pub change: String,
    pub by: String,
    /// The agency's grants after the change.
    pub grants: Vec<Grant>,
}

/// The registry folded from `AGENCIES`: the agencies and subscriptions in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgencyRegistry {
    pub agencies: BTreeMap<String, AgencyRecord>,
    pub subscriptions: BTreeMap<String, Subscription>,
    /// Every grant, rotation and revocation, in order.
    pub history: Vec<AccessChange>,
    /// The last sequence folded.
    pub sequence: u64,
    /// Per agency, the sequence of its last grant, rotation or revocation (what a change
    /// expects, so two operators cannot both add the same agency).
    pub agency_sequences: BTreeMap<String, u64>,
}

impl AgencyRegistry {
    /// Folds one event stored at `sequence`, which happened at `time`.
    pub fn apply(&mut self, sequence: u64, time: DateTime<Utc>, event: AgencyEvent) {
        self.sequence = self.sequence.max(sequence);
        if let AgencyEvent::Granted(Granted { agency, .. })
        | AgencyEvent::Rotated(Rotated { agency, .. })
        | AgencyEvent::Revoked(Revoked { agency, .. }) = &event
        {
            self.agency_sequences.insert(agency.clone(), sequence);
        }
        let mut change = |agency: &str, change: &str, by: &str, grants: Vec<Grant>| {
            self.history.push(AccessChange {
                at: time,
                sequence,
                agency: agency.to_string(),
                change: change.to_string(),
                by: by.to_string(),
                grants,
            })
        };
        match event {
            AgencyEvent::Granted(e) => {
                change(&e.agency, "granted", &e.by, e.grants.clone());
                let since = self.agencies.get(&e.agency).map_or(time, |a| a.since);
                let rotated_at = self.agencies.get(&e.agency).and_then(|a| a.rotated_at);
                self.agencies.insert(
                    e.agency.clone(),
                    AgencyRecord {
                        name: e.agency,
                        grants: e.grants,
                        since,
                        granted_at: time,
                        granted_by: e.by,
                        rotated_at,
                        sequence,
                    },
                );
            }
            AgencyEvent::Rotated(e) => {
                let grants = self
                    .agencies
                    .get(&e.agency)
                    .map(|a| a.grants.clone())
                    .unwrap_or_default();
                change(&e.agency, "rotated", &e.by, grants);
                if let Some(a) = self.agencies.get_mut(&e.agency) {
                    a.rotated_at = Some(time);
                    a.sequence = sequence;
                }
            }
            AgencyEvent::Revoked(e) => {
                change(&e.agency, "revoked", &e.by, Vec::new());
                self.agencies.remove(&e.agency);
                self.subscriptions.retain(|_, s| s.agency != e.agency);
            }
            AgencyEvent::SubscriptionCreated(e) => {
                self.subscriptions.insert(
                    e.subscription.clone(),
                    Subscription {
                        id: e.subscription,
                        agency: e.agency,
                        stream: e.stream,
                        subjects: e.subjects,
                        webhook: e.webhook,
                        mode: e.mode,
                        created_at: time,
                        by: e.by,
                        failing: None,
                    },
                );
            }
            AgencyEvent::SubscriptionRemoved(e) => {
                self.subscriptions.remove(&e.subscription);
            }
            AgencyEvent::SubscriptionFailing(e) => {
                if let Some(s) = self.subscriptions.get_mut(&e.subscription) {
                    s.failing = Some(e);
                }
            }
            AgencyEvent::SubscriptionRecovered(e) => {
                if let Some(s) = self.subscriptions.get_mut(&e.subscription) {
                    s.failing = None;
                }
            }
        }
    }

    /// Reads one stored message of `AGENCIES`: when it happened and what (`None`: a type
    /// this version does not know).
    pub fn read_message(m: &StoredMessage) -> Result<Option<(DateTime<Utc>, AgencyEvent)>> {
        use cloudevents::AttributesReader;
        let event = crate::envelope::decode(Some(&m.headers), &m.payload)?;
        let data: Value = match event.data() {
            Some(cloudevents::Data::Json(v)) => v.clone(),
            Some(cloudevents::Data::String(s)) => {
                serde_json::from_str(s).map_err(|e| BusError::Envelope {
                    reason: e.to_string(),
                })?
            }
            Some(cloudevents::Data::Binary(b)) => {
                serde_json::from_slice(b).map_err(|e| BusError::Envelope {
                    reason: e.to_string(),
                })?
            }
            None => Value::Null,
        };
        let time = event.time().copied().unwrap_or_else(Utc::now);
        Ok(AgencyEvent::from_parts(event.ty(), &data)?.map(|e| (time, e)))
    }

    /// The registry from `AGENCIES`, as it stood at `as_of` (now when `None`).
    pub async fn load(reader: &StreamReader, as_of: Option<DateTime<Utc>>) -> Result<Self> {
        let mut registry = Self::default();
        let mut failure = None;
        let last = reader.last_sequence(AGENCIES.name).await?;
        reader
            .scan(AGENCIES.name, 1, last, None, |m| {
                match Self::read_message(&m) {
                    Ok(Some((time, event))) if as_of.is_none_or(|t| time <= t) => {
                        registry.apply(m.sequence, time, event)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failure = Some(BusError::Envelope {
                            reason: format!("AGENCIES sequence {}: {e}", m.sequence),
                        });
                        return false;
                    }
                }
                true
            })
            .await?;
        match failure {
            Some(e) => Err(e),
            None => Ok(registry),
        }
    }

    /// Who may read `stream` now, with the subjects: every agency granted it.
    pub fn readers_of(&self, stream: &str) -> Vec<(&AgencyRecord, &Grant)> {
        self.agencies
            .values()
            .filter_map(|a| a.grants.iter().find(|g| g.stream == stream).map(|g| (a, g)))
            .collect()
    }
}

/// The type of every registry event, for the schemas and the catalogue.
pub fn event_types() -> Vec<EventType> {
    TYPES.iter().map(|(e, a)| event_type(e, a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn grant(stream: &str) -> Vec<Grant> {
        vec![Grant {
            stream: stream.into(),
            subjects: vec![],
        }]
    }

    #[test]
    fn the_registry_folds_grants_rotations_revocations_and_subscriptions() {
        let mut r = AgencyRegistry::default();
        let by = "operator@host".to_string();
        r.apply(
            1,
            t("2026-01-01T00:00:00Z"),
            AgencyEvent::Granted(Granted {
                agency: "health".into(),
                grants: grant("FIELD_REPORTS"),
                by: by.clone(),
                note: None,
            }),
        );
        r.apply(
            2,
            t("2026-01-02T00:00:00Z"),
            AgencyEvent::SubscriptionCreated(SubscriptionCreated {
                subscription: "health.hook".into(),
                agency: "health".into(),
                stream: "FIELD_REPORTS".into(),
                subjects: vec![],
                webhook: "http://127.0.0.1/hook".into(),
                mode: Mode::Binary,
                by: by.clone(),
            }),
        );
        r.apply(
            3,
            t("2026-01-03T00:00:00Z"),
            AgencyEvent::Granted(Granted {
                agency: "health".into(),
                grants: grant("OPEN_DATA"),
                by: by.clone(),
                note: None,
            }),
        );
        assert_eq!(r.readers_of("FIELD_REPORTS").len(), 0);
        assert_eq!(r.readers_of("OPEN_DATA").len(), 1);
        assert_eq!(r.agencies["health"].since, t("2026-01-01T00:00:00Z"));
        assert_eq!(r.subscriptions.len(), 1);
        r.apply(
            4,
            t("2026-01-04T00:00:00Z"),
            AgencyEvent::Revoked(Revoked {
                agency: "health".into(),
                by,
                reason: None,
            }),
        );
        assert!(r.agencies.is_empty() && r.subscriptions.is_empty());
        assert_eq!(r.history.len(), 3);
        assert_eq!(r.sequence, 4);
    }

    #[test]
    fn events_round_trip_through_their_drafts() {
        let e = AgencyEvent::Revoked(Revoked {
            agency: "health".into(),
            by: "ops".into(),
            reason: Some("left".into()),
        });
        let d = e.draft(t("2026-01-01T00:00:00Z"));
        assert_eq!(d.event_type.to_string(), "vn.egov.agencies.agency.revoked");
        assert_eq!(d.key, "health");
        assert_eq!(
            AgencyEvent::from_parts(&d.event_type.to_string(), &d.data).unwrap(),
            Some(e)
        );
    }
}
