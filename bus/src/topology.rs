//! Topology: the streams and the KV bucket of the contract, provisioned idempotently.
//!
//! Every stream is file-stored, `deny_delete`, `deny_purge`, with no age or size limit and a
//! duplicate window. Provisioning creates what is missing, updates settings that may change
//! (subjects, a shorter duplicate window, description) and refuses — naming each
//! difference — when an existing stream differs in a setting that would lose or expose
//! history if changed silently (storage, retention, limits, delete/purge protection, sealing).

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::error::{BusError, Result};
use crate::registry;

/// The KV bucket where adapters keep their cursors.
pub const ADAPTER_STATE_BUCKET: &str = "ADAPTER_STATE";
/// The KV bucket holding each agency's password hashes (bcrypt), read by the operator's
/// configuration agent on every server; no other role may read it.
pub const AGENCY_ACCESS_BUCKET: &str = "AGENCY_ACCESS";
/// How long the server remembers message ids to drop duplicates.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(2 * 60 * 60);

/// One stream of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    pub name: &'static str,
    /// `egov.<root>.>`.
    pub subject: String,
    pub description: &'static str,
    /// How long events are kept (zero: for ever, the contract's streams). Only a registered
    /// subsystem may ask for a limit (`retention_days`).
    pub max_age: Duration,
}

/// The streams of the contract, derived from the subsystem registry: one per subsystem
/// (compiled, then registered), then the bus's own (`DLQ`, `AUDIT`, `AGENCIES`, `REGISTRY`).
pub fn streams() -> Vec<StreamSpec> {
    registry::subsystems()
        .into_iter()
        .map(|s| StreamSpec {
            name: s.stream,
            subject: s.subjects(),
            description: s.title,
            max_age: registry::live::registration(s.name)
                .map_or(Duration::ZERO, |r| registry::admin::retention(&r.spec)),
        })
        .chain(registry::SYSTEM_STREAMS.iter().map(|s| StreamSpec {
            name: s.name,
            subject: format!("egov.{}.>", s.subject_root),
            description: s.title,
            max_age: Duration::ZERO,
        }))
        .collect()
}

/// The stream holding a subsystem's events (or the bus's own `dlq` and `audit`).
pub fn stream_for_subsystem(subsystem: &str) -> Option<&'static str> {
    registry::subsystem(subsystem)
        .map(|s| s.stream)
        .or_else(|| {
            registry::SYSTEM_STREAMS
                .iter()
                .find(|s| s.subject_root == subsystem)
                .map(|s| s.name)
        })
}

impl StreamSpec {
    /// The full stream configuration the contract asks for, on a single server.
    pub fn config(&self) -> stream::Config {
        self.config_with(1)
    }

    /// [`StreamSpec::config`] with `replicas` copies (a cluster: 3).
    pub fn config_with(&self, replicas: usize) -> stream::Config {
        stream::Config {
            name: self.name.to_string(),
            subjects: vec![self.subject.clone()],
            description: Some(self.description.to_string()),
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::New,
            max_age: self.max_age,
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            // The server wants it no longer than the age limit (a short-lived registered one).
            duplicate_window: if self.max_age.is_zero() {
                DUPLICATE_WINDOW
            } else {
                DUPLICATE_WINDOW.min(self.max_age)
            },
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            // Bulk imports and backfills commit in atomic batches (server ≥ 2.12).
            allow_atomic_publish: true,
            num_replicas: replicas.max(1),
            ..Default::default()
        }
    }
}

/// What provisioning did to one stream or bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioned {
    Created(String),
    Unchanged(String),
    Updated { name: String, changes: Vec<String> },
}

impl std::fmt::Display for Provisioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Created(n) => write!(f, "{n}: created"),
            Self::Unchanged(n) => write!(f, "{n}: up to date"),
            Self::Updated { name, changes } => {
                write!(f, "{name}: updated ({})", changes.join(", "))
            }
        }
    }
}

/// Settings of `have` that differ from `want` and must not be changed silently.
pub fn protected_differences(want: &stream::Config, have: &stream::Config) -> Vec<String> {
    let mut d = Vec::new();
    let mut check = |what: &str, w: String, h: String| {
        if w != h {
            d.push(format!("{what} is {h}, the contract says {w}"));
        }
    };
    check(
        "storage",
        format!("{:?}", want.storage),
        format!("{:?}", have.storage),
    );
    check(
        "retention",
        format!("{:?}", want.retention),
        format!("{:?}", have.retention),
    );
    check(
        "deny_delete",
        want.deny_delete.to_string(),
        have.deny_delete.to_string(),
    );
    check(
        "deny_purge",
        want.deny_purge.to_string(),
        have.deny_purge.to_string(),
    );
    check(
        "max_age",
        format!("{:?}", want.max_age),
        format!("{:?}", have.max_age),
    );
    check(
        "max_msgs",
        want.max_messages.to_string(),
        have.max_messages.to_string(),
    );
    check(
        "max_bytes",
        want.max_bytes.to_string(),
        have.max_bytes.to_string(),
    );
    check(
        "max_msgs_per_subject",
        want.max_messages_per_subject.to_string(),
        have.max_messages_per_subject.to_string(),
    );
    check("sealed", want.sealed.to_string(), have.sealed.to_string());
    check(
        "replicas",
        want.num_replicas.to_string(),
        have.num_replicas.to_string(),
    );
    d
}

/// Settings that differ but may be brought in line with the contract.
fn mutable_differences(want: &stream::Config, have: &stream::Config) -> Vec<String> {
    let mut d = Vec::new();
    if want.subjects != have.subjects {
        d.push(format!(
            "subjects {:?} → {:?}",
            have.subjects, want.subjects
        ));
    }
    if want.duplicate_window != have.duplicate_window {
        d.push(format!(
            "duplicate_window {:?} → {:?}",
            have.duplicate_window, want.duplicate_window
        ));
    }
    if want.description != have.description {
        d.push("description".to_string());
    }
    if want.allow_direct != have.allow_direct {
        d.push(format!("allow_direct → {}", want.allow_direct));
    }
    if want.allow_atomic_publish != have.allow_atomic_publish {
        d.push(format!("allow_atomic → {}", want.allow_atomic_publish));
    }
    d
}

/// Provisions streams of the given configurations (e.g. a ward site's own,
/// [`crate::sites::local_stream`]), like the contract's.
pub async fn provision_streams(
    js: &jetstream::Context,
    configs: Vec<stream::Config>,
) -> Result<Vec<Provisioned>> {
    let mut out = Vec::new();
    for c in configs {
        out.push(provision_stream(js, c).await?);
    }
    Ok(out)
}

/// Creates or checks every stream and the KV buckets. Safe to run again.
///
/// # Errors
/// [`BusError::Topology`] when an existing stream differs in a protected setting.
pub async fn provision(js: &jetstream::Context) -> Result<Vec<Provisioned>> {
    provision_replicated(js, 1).await
}

/// [`provision`] with `replicas` copies of every stream and bucket (a cluster: 3). A stream
/// that exists with another number of replicas is refused and named, like any protected
/// setting.
pub async fn provision_replicated(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<Vec<Provisioned>> {
    let mut out = Vec::new();
    for spec in streams() {
        out.push(provision_stream(js, spec.config_with(replicas)).await?);
    }
    out.push(
        provision_bucket(
            js,
            ADAPTER_STATE_BUCKET,
            "Adapter cursors: adapters are stateless processes",
            replicas,
        )
        .await?,
    );
    out.push(
        provision_bucket(
            js,
            AGENCY_ACCESS_BUCKET,
            "Agencies' password hashes (bcrypt), for the servers' configuration; operator only",
            replicas,
        )
        .await?,
    );
    Ok(out)
}

async fn provision_stream(
    js: &jetstream::Context,
    mut want: stream::Config,
) -> Result<Provisioned> {
    let name = want.name.clone();
    match js.get_stream(&name).await {
        Ok(mut existing) => {
            let have = existing
                .info()
                .await
                .map_err(|e| BusError::nats(format!("reading stream {name}"), e))?
                .config
                .clone();
            // Its sources are the ward sites registered with `lienthong site add`, not the
            // contract's: kept as they are.
            want.sources = have.sources.clone();
            // A longer duplicate window is kept: a restore sets one that remembers every id
            // stored since the backup's cursors were taken, so that adapters resuming from
            // them repeat nothing (`lienthong restore`); it only costs memory.
            want.duplicate_window = want.duplicate_window.max(have.duplicate_window);
            let protected = protected_differences(&want, &have);
            if !protected.is_empty() {
                return Err(BusError::Topology {
                    stream: name,
                    differences: protected,
                });
            }
            let changes = mutable_differences(&want, &have);
            if changes.is_empty() {
                return Ok(Provisioned::Unchanged(name));
            }
            js.update_stream(want)
                .await
                .map_err(|e| BusError::nats(format!("updating stream {name}"), e))?;
            Ok(Provisioned::Updated { name, changes })
        }
        Err(e)
            if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref je)
                if je.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            js.create_stream(want)
                .await
                .map_err(|e| BusError::nats(format!("creating stream {name}"), e))?;
            Ok(Provisioned::Created(name))
        }
        Err(e) => Err(BusError::nats(format!("looking up stream {name}"), e)),
    }
}

pub(crate) async fn provision_bucket(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    replicas: usize,
) -> Result<Provisioned> {
    match js.get_key_value(bucket).await {
        Ok(_) => Ok(Provisioned::Unchanged(format!("KV {bucket}"))),
        Err(_) => {
            js.create_key_value(kv::Config {
                bucket: bucket.to_string(),
                description: description.to_string(),
                history: 5,
                storage: stream::StorageType::File,
                num_replicas: replicas.max(1),
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::nats(format!("creating KV bucket {bucket}"), e))?;
            Ok(Provisioned::Created(format!("KV {bucket}")))
        }
    }
}

/// One line of `streams status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamStatus {
    pub name: String,
    pub exists: bool,
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub consumers: usize,
    /// Protected settings that differ from the contract.
    pub drift: Vec<String>,
}

/// The state of every stream of the contract.
pub async fn status(js: &jetstream::Context) -> Result<Vec<StreamStatus>> {
    status_replicated(js, 1).await
}

/// [`status`], the contract asking for `replicas` copies.
pub async fn status_replicated(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<Vec<StreamStatus>> {
    let mut out = Vec::new();
    for spec in streams() {
        match js.get_stream(spec.name).await {
            Ok(mut s) => {
                let info = s
                    .info()
                    .await
                    .map_err(|e| BusError::nats(format!("reading stream {}", spec.name), e))?;
                out.push(StreamStatus {
                    name: spec.name.to_string(),
                    exists: true,
                    messages: info.state.messages,
                    bytes: info.state.bytes,
                    first_seq: info.state.first_sequence,
                    last_seq: info.state.last_sequence,
                    consumers: info.state.consumer_count,
                    drift: protected_differences(&spec.config_with(replicas), &info.config),
                });
            }
            Err(_) => out.push(StreamStatus {
                name: spec.name.to_string(),
                exists: false,
                messages: 0,
                bytes: 0,
                first_seq: 0,
                last_seq: 0,
                consumers: 0,
                drift: Vec::new(),
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_streams_are_protected() {
        for s in streams() {
            let c = s.config();
            assert!(c.deny_delete && c.deny_purge);
            assert_eq!(c.max_age, Duration::ZERO);
            assert_eq!(c.storage, stream::StorageType::File);
            assert!(protected_differences(&c, &c).is_empty());
        }
        assert_eq!(stream_for_subsystem("field_reports"), Some("FIELD_REPORTS"));
        assert_eq!(stream_for_subsystem("dlq"), Some("DLQ"));
        assert!(stream_for_subsystem("nope").is_none());
    }

    #[test]
    fn a_changed_age_limit_is_refused() {
        let want = streams()[0].config();
        let have = stream::Config {
            max_age: Duration::from_secs(3600),
            deny_purge: false,
            ..want.clone()
        };
        let d = protected_differences(&want, &have);
        assert_eq!(d.len(), 2, "{d:?}");
    }
}
