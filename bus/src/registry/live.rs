//! The subsystems registered on the running bus, as the `REGISTRY` stream records them.
//!
//! | type `vn.egov.registry.…` | key | data |
//! |---|---|---|
//! | `subsystem.registered` | the subsystem | its whole description ([`SubsystemSpec`], schemas included), who registered it, its publishing role and the digest of its ingress token |
//! | `schema.registered` | the subsystem | a new version of one event type's schema, who added it |
//!
//! Every process of the bus follows the stream ([`follow`]) and installs what it holds:
//! the subsystems join [`super::subsystems`] (and so the streams, roles, audited streams,
//! grants, catalogue and read models derived from it), their schemas join every
//! [`crate::SchemaRegistry`]. Registrations only add: a registered subsystem is never
//! removed (its stream keeps its events, `deny_delete`), a schema version never changes.
//! That is why each is interned for the life of the process, like the compiled entries.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use super::spec::{EventSpec, SubsystemSpec};
use super::{Subsystem, REGISTRY};
use crate::envelope::Classification;
use crate::error::{BusError, Result};
use crate::publisher::EventDraft;
use crate::reader::{StoredMessage, StreamReader};
use crate::subject::EventType;

/// The source of the events the `subsystem` and `schema register` commands publish.
pub const SOURCE: &str = "urn:lienthong:registry";

/// A subsystem was registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubsystemRegistered {
    pub spec: SubsystemSpec,
    /// The role its publishers connect as (`adapter-<name>`).
    pub role: String,
    /// Hex SHA-256 of the bearer token its publishers present to the HTTP ingress (never
    /// the token).
    pub ingress_token_sha256: String,
    /// Which credentials of the role are the registration's: the operator-only bucket holds
    /// the password's hash under `publisher.<role>.<credentials>`.
    pub credentials: String,
    pub by: String,
}

/// A new version of a registered event type's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaRegistered {
    pub subsystem: String,
    pub event: EventSpec,
    pub by: String,
}

/// One event of `REGISTRY`.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryEvent {
    Subsystem(Box<SubsystemRegistered>),
    Schema(Box<SchemaRegistered>),
}

impl RegistryEvent {
    /// The event to publish, stored only if the subsystem's last registry event is still
    /// `expected` (0: none) — two operators cannot both register the same name.
    pub fn draft(&self, time: DateTime<Utc>, expected: u64) -> EventDraft {
        let (entity, key, data) = match self {
            Self::Subsystem(e) => ("subsystem", &e.spec.name, to_value(e)),
            Self::Schema(e) => ("schema", &e.subsystem, to_value(e)),
        };
        let mut d = EventDraft::new(
            EventType::new(REGISTRY.subject_root, entity, "registered"),
            format!(
                "{entity}.registered/{key}/{}",
                hex::encode(rand::random::<[u8; 16]>())
            ),
            key.as_str(),
            time,
            data,
            Classification::Internal,
        );
        d.expected_last_subject_sequence = Some(expected);
        d
    }

    /// Reads a stored message of `REGISTRY` (`None`: a type this version does not know).
    pub fn read(m: &StoredMessage) -> Result<Option<(DateTime<Utc>, Self)>> {
        use cloudevents::AttributesReader;
        let event = crate::envelope::decode(Some(&m.headers), &m.payload)?;
        let data = crate::envelope::data_json(&event).unwrap_or(Value::Null);
        let time = event.time().copied().unwrap_or_else(Utc::now);
        let de = |e: serde_json::Error| BusError::Envelope {
            reason: format!("REGISTRY sequence {}: {}: {e}", m.sequence, event.ty()),
        };
        let prefix = format!("vn.egov.{}.", REGISTRY.subject_root);
        Ok(match event.ty().strip_prefix(&prefix) {
            Some("subsystem.registered") => Some(Self::Subsystem(Box::new(
                serde_json::from_value(data).map_err(de)?,
            ))),
            Some("schema.registered") => Some(Self::Schema(Box::new(
                serde_json::from_value(data).map_err(de)?,
            ))),
            _ => None,
        }
        .map(|e| (time, e)))
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("registry events serialise")
}

/// One registered subsystem as the bus knows it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registration {
    pub spec: SubsystemSpec,
    pub role: String,
    pub ingress_token_sha256: String,
    /// Which credentials of the role are in force (see [`SubsystemRegistered::credentials`]).
    pub credentials: String,
    pub registered_at: DateTime<Utc>,
    pub registered_by: String,
    /// `REGISTRY`'s sequence of its last change.
    pub sequence: u64,
    /// `REGISTRY`'s sequence of its last schema version (0: none yet): what the next one
    /// expects, so that two operators cannot both add the same version.
    pub schema_sequence: u64,
}

#[derive(Default)]
struct Live {
    subsystems: Vec<&'static Subsystem>,
    registrations: BTreeMap<String, Arc<Registration>>,
    /// The last `REGISTRY` sequence installed.
    sequence: u64,
}

static LIVE: LazyLock<RwLock<Live>> = LazyLock::new(Default::default);

/// Keeps `s` for the life of the process: what registrations add is never removed (see the
/// module documentation), like the compiled registry's strings.
pub fn intern(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// The registered subsystem `pred` picks, without copying the list.
pub fn find(pred: impl Fn(&Subsystem) -> bool) -> Option<&'static Subsystem> {
    LIVE.read()
        .expect("registry lock")
        .subsystems
        .iter()
        .copied()
        .find(|s| pred(s))
}

/// The registered subsystems, in the order they were registered.
pub fn subsystems() -> Vec<&'static Subsystem> {
    LIVE.read().expect("registry lock").subsystems.clone()
}

/// A registered subsystem's registration.
pub fn registration(name: &str) -> Option<Arc<Registration>> {
    LIVE.read()
        .expect("registry lock")
        .registrations
        .get(name)
        .cloned()
}

/// Every registration.
pub fn registrations() -> Vec<Arc<Registration>> {
    LIVE.read()
        .expect("registry lock")
        .registrations
        .values()
        .cloned()
        .collect()
}

/// The last `REGISTRY` sequence this process installed.
pub fn sequence() -> u64 {
    LIVE.read().expect("registry lock").sequence
}

/// Why `event` cannot be installed over what `live` holds, if it cannot: every rule the
/// commands check before they record (a hand-written event may break them), checked before
/// anything is installed.
fn refusal(live: &Live, event: &RegistryEvent) -> Option<String> {
    match event {
        RegistryEvent::Subsystem(e) => {
            let spec = &e.spec;
            if let Err(err) = spec.check() {
                return Some(err.to_string());
            }
            if let Some(reason) = super::admin::taken(spec, live.subsystems.iter().copied()) {
                return Some(reason);
            }
            if e.role != format!("adapter-{}", spec.name) {
                return Some(format!("role {:?} is not adapter-{}", e.role, spec.name));
            }
            spec.events
                .iter()
                .find_map(|ev| crate::schema::registered::conflict(&ev.ty, ev.version, &ev.schema))
        }
        RegistryEvent::Schema(e) => {
            let Some(have) = live.registrations.get(&e.subsystem) else {
                return Some(format!(
                    "a schema for {}, which is not registered",
                    e.subsystem
                ));
            };
            let Some(latest) = have
                .spec
                .latest_events()
                .into_iter()
                .find(|x| x.ty == e.event.ty)
            else {
                return Some(format!("{} is not a type of {}", e.event.ty, e.subsystem));
            };
            if e.event.version != latest.version + 1 {
                return Some(format!(
                    "{} v{} does not follow v{}",
                    e.event.ty, e.event.version, latest.version
                ));
            }
            if (e.event.key.as_str(), e.event.time.as_str())
                != (latest.key.as_str(), latest.time.as_str())
            {
                return Some(format!("{} moves its key or time", e.event.ty));
            }
            super::spec::check_event_schema(&e.event).err().or_else(|| {
                crate::schema::registered::conflict(&e.event.ty, e.event.version, &e.event.schema)
            })
        }
    }
}

/// Installs one event of `REGISTRY` stored at `sequence`. An event that breaks a rule of the
/// registry (see [`refusal`]) is refused and changes nothing; the sequences it takes are
/// still counted, so that later changes expect the right ones.
pub fn install(sequence: u64, time: DateTime<Utc>, event: &RegistryEvent) -> Result<()> {
    let mut live = LIVE.write().expect("registry lock");
    live.sequence = live.sequence.max(sequence);
    if let Some(reason) = refusal(&live, event) {
        if let RegistryEvent::Schema(e) = event {
            if let Some(have) = live.registrations.get(&e.subsystem) {
                let mut r = (**have).clone();
                r.schema_sequence = sequence;
                live.registrations.insert(e.subsystem.clone(), Arc::new(r));
            }
        }
        return Err(BusError::Config(format!(
            "REGISTRY sequence {sequence}: {reason}"
        )));
    }
    let schemas = match event {
        RegistryEvent::Subsystem(e) => e.spec.events.iter().collect::<Vec<_>>(),
        RegistryEvent::Schema(e) => vec![&e.event],
    };
    for ev in schemas {
        // Checked by `refusal`: it compiles and nothing else holds its id.
        crate::schema::registered::install(&ev.ty, ev.version, &ev.schema)
            .map_err(|r| BusError::Config(format!("REGISTRY sequence {sequence}: {r}")))?;
    }
    match event {
        RegistryEvent::Subsystem(e) => {
            let spec = &e.spec;
            let entry = Subsystem {
                name: intern(&spec.name),
                stream: intern(&spec.stream),
                title: intern(&spec.title),
                title_vi: intern(&spec.title_vi),
                formats: intern(&spec.formats),
                default_source: intern(&spec.source),
                audited: spec.audited,
                grantable: spec.grantable,
                // Its generic read model's tree is named after it.
                projections: Box::leak(vec![intern(&spec.name)].into_boxed_slice()),
                kpi_section: None,
                docs: "docs/registering-a-subsystem.md",
            };
            live.subsystems.push(Box::leak(Box::new(entry)));
            live.registrations.insert(
                spec.name.clone(),
                Arc::new(Registration {
                    spec: spec.clone(),
                    role: e.role.clone(),
                    ingress_token_sha256: e.ingress_token_sha256.clone(),
                    credentials: e.credentials.clone(),
                    registered_at: time,
                    registered_by: e.by.clone(),
                    sequence,
                    schema_sequence: 0,
                }),
            );
        }
        RegistryEvent::Schema(e) => {
            let mut r = (**live.registrations.get(&e.subsystem).expect("checked")).clone();
            r.spec.events.push(e.event.clone());
            r.sequence = sequence;
            r.schema_sequence = sequence;
            live.registrations.insert(e.subsystem.clone(), Arc::new(r));
        }
    }
    Ok(())
}

/// One reader of `REGISTRY` at a time in a process: events are installed in their order.
static LOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Reads `REGISTRY` from after what this process installed and installs it. Returns the
/// last sequence installed. A bus without `REGISTRY` (a ward site's server, a bus not
/// provisioned by this version) has nothing registered.
pub async fn load(reader: &StreamReader) -> Result<u64> {
    let _one = LOADING.lock().await;
    let from = sequence() + 1;
    let last = match reader.last_sequence(REGISTRY.name).await {
        Ok(l) => l,
        Err(BusError::Refused { reason, .. }) if reason.contains("stream not found") => {
            return Ok(sequence())
        }
        Err(e) => return Err(e),
    };
    if last < from {
        return Ok(sequence());
    }
    let mut events = Vec::new();
    reader
        .scan(REGISTRY.name, from, last, None, |m| {
            events.push((m.sequence, RegistryEvent::read(&m)));
            true
        })
        .await?;
    for (seq, read) in events {
        match read {
            Ok(Some((time, event))) => {
                let name = match &event {
                    RegistryEvent::Subsystem(e) => e.spec.name.clone(),
                    RegistryEvent::Schema(e) => format!("{} {}", e.subsystem, e.event.ty),
                };
                match install(seq, time, &event) {
                    Ok(()) => info!(sequence = seq, %name, "registered on the bus: installed"),
                    Err(e) => warn!("{e}; left out"),
                }
            }
            Ok(None) => {}
            Err(e) => warn!("REGISTRY sequence {seq}: unreadable ({e}); left out"),
        }
        let mut live = LIVE.write().expect("registry lock");
        live.sequence = live.sequence.max(seq);
    }
    Ok(sequence())
}

/// How often [`follow`] looks for registrations.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Installs registrations as they are recorded, until `stop` completes. A process that
/// serves registered subsystems runs this with a role that may read `REGISTRY`.
pub async fn follow(reader: StreamReader, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    // Said once per kind of failure, not every half second (a ward site's server has no
    // `REGISTRY`: the registry is central).
    let mut said: Option<String> = None;
    loop {
        match load(&reader).await {
            Ok(_) => {
                if said.take().is_some() {
                    info!("the subsystem registry reads again");
                }
            }
            Err(e) => {
                let e = e.to_string();
                if said.as_deref() != Some(e.as_str()) {
                    warn!(
                        "reading the subsystem registry: {e} (tried again every {} ms; said once)",
                        FOLLOW_EVERY.as_millis()
                    );
                    said = Some(e);
                }
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
    }
}
