//! Registering a subsystem on a running bus (`lienthong subsystem register SPEC`).
//!
//! In order, each step safe to run again after a failure:
//! 1. the spec is checked against the bus: its name, stream and types taken by nobody;
//! 2. its stream is created (file storage, deny delete and purge, its retention), at as
//!    many replicas as the bus's own `DLQ`;
//! 3. its publishing role `adapter-<name>` gets a password and the HTTP ingress a bearer
//!    token, this attempt's own: the credentials are written (mode 0600) beside the others
//!    under pending names, the password's bcrypt hash goes to the operator-only bucket
//!    `AGENCY_ACCESS` (`publisher.<role>.<attempt>`);
//! 4. the registration is recorded on `REGISTRY` (the commit: what was registered, by whom,
//!    when, with which schemas, which attempt's credentials), only if nobody registered the
//!    name meanwhile — a losing attempt removes its credentials — and the files are put in
//!    place (a run that stopped here is finished by running it again);
//! 5. every server's configuration agent renders the new role and every role's permissions
//!    on the new stream, and reloads; the command waits for it. The ingress, the replay
//!    service (generic read model, audit chain, catalogue) follow `REGISTRY` themselves.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::live::{self, RegistryEvent, SubsystemRegistered};
use super::spec::SubsystemSpec;
use super::{Subsystem, REGISTRY, SUBSYSTEMS, SYSTEM_STREAMS};
use crate::access::Refusals;
use crate::credentials::write_private;
use crate::error::{BusError, Result};
use crate::reader::StreamReader;
use crate::roles::{hash_password, inbox};
use crate::topology::{self, Provisioned, AGENCY_ACCESS_BUCKET};
use crate::{Publisher, SchemaRegistry};

/// Keys of `AGENCY_ACCESS` holding a registered publisher's hash: `publisher.<role>.<attempt>`.
pub const PUBLISHER_KEY_PREFIX: &str = "publisher.";

/// How long the command waits for a server to apply a registration.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// What `AGENCY_ACCESS` holds for a registered subsystem's publishing role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublisherAccess {
    /// bcrypt of the role's password.
    pub password: String,
}

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `REGISTRY`'s sequence of the registration.
    pub sequence: u64,
    pub stream: Provisioned,
    pub role: String,
    /// The publishers' NATS credentials (`NATS_URL`, `NATS_USER`, `NATS_PASSWORD`).
    pub credentials: PathBuf,
    /// The publishers' bearer token for the HTTP ingress.
    pub ingress_token: PathBuf,
    /// Already registered with the same description: nothing was changed.
    pub unchanged: bool,
}

/// How long `spec`'s events are kept (zero: for ever).
pub fn retention(spec: &SubsystemSpec) -> Duration {
    match (spec.retention_days, spec.retention_seconds) {
        (Some(d), _) => Duration::from_secs(u64::from(d) * 86_400),
        (None, Some(s)) => Duration::from_secs(u64::from(s)),
        (None, None) => Duration::ZERO,
    }
}

/// The age limit the registry gives `stream` — the signed, audited record of what may expire,
/// never the stream's own configuration (which whoever may update the stream could shorten).
/// Zero for the contract's streams and every stream not registered with a retention.
pub fn registered_age_limit(stream: &str) -> Duration {
    live::find(|s| s.stream == stream)
        .and_then(|s| live::registration(s.name))
        .map_or(Duration::ZERO, |r| retention(&r.spec))
}

/// Why `spec`'s name or stream is not free, if it is not: the bus's own names, a compiled
/// subsystem's, or one of `registered`. The one rule for the command and for every process
/// installing a registration.
pub fn taken(
    spec: &SubsystemSpec,
    registered: impl IntoIterator<Item = &'static Subsystem>,
) -> Option<String> {
    let reserved = ["common", "intake", "registered"];
    if reserved.contains(&spec.name.as_str())
        || SYSTEM_STREAMS.iter().any(|s| s.subject_root == spec.name)
    {
        return Some(format!("the name {:?} is the bus's own", spec.name));
    }
    if SYSTEM_STREAMS.iter().any(|s| s.name == spec.stream)
        || spec.stream == crate::sites::intake::INTAKE
        || spec.stream.starts_with("KV_")
        || spec.stream.starts_with("OBJ_")
    {
        return Some(format!("the stream {} is the bus's own", spec.stream));
    }
    let clash = |s: &Subsystem| s.name == spec.name || s.stream == spec.stream;
    if let Some(s) = SUBSYSTEMS.iter().find(|s| clash(s)) {
        return Some(format!(
            "the name or stream is the compiled subsystem {} ({})",
            s.name, s.stream
        ));
    }
    registered.into_iter().find(|s| clash(s)).map(|s| {
        format!(
            "the name or stream is registered for {} ({})",
            s.name, s.stream
        )
    })
}

/// Registers subsystems as the operator.
pub struct RegistryAdmin {
    js: jetstream::Context,
    reader: StreamReader,
    publisher: Publisher,
    dir: PathBuf,
    url: String,
    by: String,
}

impl RegistryAdmin {
    /// `client` connected as the operator; credentials files go to `credentials_dir` and
    /// point at `url`; `by` names who registers (recorded).
    pub fn new(
        client: async_nats::Client,
        refusals: Refusals,
        schemas: std::sync::Arc<SchemaRegistry>,
        credentials_dir: &Path,
        url: &str,
        by: &str,
    ) -> Self {
        let js = jetstream::new(client.clone());
        let by = format!(
            "{} (as {})",
            crate::credentials::clean_actor(by),
            refusals.role()
        );
        Self {
            reader: StreamReader::new(client, refusals.clone()),
            publisher: Publisher::new(js.clone(), schemas, live::SOURCE).with_refusals(refusals),
            js,
            dir: credentials_dir.to_path_buf(),
            url: url.to_string(),
            by,
        }
    }

    /// The subsystems registered on this bus, read now.
    pub async fn list(&self) -> Result<Vec<std::sync::Arc<live::Registration>>> {
        live::load(&self.reader).await?;
        Ok(live::registrations())
    }

    /// The publishers' credentials files of subsystem `name`.
    pub fn credentials(&self, name: &str) -> (PathBuf, PathBuf) {
        let role = format!("adapter-{name}");
        (
            self.dir.join(format!("{role}.env")),
            self.dir.join(format!("{role}.ingress-token")),
        )
    }

    /// The credentials files of an attempt at registering, before it is recorded.
    fn pending(path: &Path, attempt: &str) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{attempt}.pending"));
        path.with_file_name(name)
    }

    /// Registers `spec` (see the module documentation).
    pub async fn register(&self, spec: &SubsystemSpec) -> Result<Outcome> {
        spec.check()?;
        live::load(&self.reader).await?;
        let (credentials, ingress_token) = self.credentials(&spec.name);
        if let Some(have) = live::registration(&spec.name) {
            // The registration as first recorded (later schema versions are not the file's).
            let mut first = have.spec.clone();
            first.events.retain(|e| e.version == 1);
            if first != *spec {
                return Err(BusError::Config(format!(
                    "subsystem {} is already registered (REGISTRY sequence {}) with another description; \
                     a registration is permanent: add schema versions with `lienthong schema register`",
                    spec.name, have.sequence
                )));
            }
            // Recorded by a run that stopped before it put its credentials files in place.
            for path in [&credentials, &ingress_token] {
                let pending = Self::pending(path, &have.credentials);
                if pending.exists() {
                    std::fs::rename(&pending, path)
                        .map_err(|e| BusError::io(format!("moving {}", pending.display()), e))?;
                }
            }
            return Ok(Outcome {
                sequence: have.sequence,
                stream: Provisioned::Unchanged(spec.stream.clone()),
                role: have.role.clone(),
                credentials,
                ingress_token,
                unchanged: true,
            });
        }
        if let Some(reason) = taken(spec, live::subsystems()) {
            return Err(BusError::Config(format!(
                "subsystem {}: {reason}",
                spec.name
            )));
        }
        self.check_server(spec).await?;
        // Its stream as the registration will derive it (see `topology::streams`).
        let config = async_nats::jetstream::stream::Config {
            name: spec.stream.clone(),
            description: Some(spec.title.clone()),
            ..topology::StreamSpec {
                name: "",
                subject: format!("egov.{}.>", spec.name),
                description: "",
                max_age: retention(spec),
            }
            .config_with(self.replicas().await?)
        };
        let stream = topology::provision_streams(&self.js, vec![config])
            .await?
            .remove(0);

        // This attempt's credentials, apart from any other attempt's: only the one the
        // registration records is ever in force, and its files are put in place after.
        let attempt = hex::encode(rand::random::<[u8; 8]>());
        let role = format!("adapter-{}", spec.name);
        let password = crate::credentials::new_password();
        let token = crate::credentials::new_password();
        let (pending_env, pending_token) = (
            Self::pending(&credentials, &attempt),
            Self::pending(&ingress_token, &attempt),
        );
        self.write_env(&pending_env, &role, &password)?;
        write_private(&pending_token, &format!("{token}\n"))?;
        let kv = self
            .js
            .get_key_value(AGENCY_ACCESS_BUCKET)
            .await
            .map_err(|e| BusError::nats(format!("opening KV {AGENCY_ACCESS_BUCKET}"), e))?;
        let key = format!("{PUBLISHER_KEY_PREFIX}{role}.{attempt}");
        let access = PublisherAccess {
            password: hash_password(&password)?,
        };
        kv.put(
            &key,
            serde_json::to_vec(&access).expect("serialises").into(),
        )
        .await
        .map_err(|e| BusError::nats(format!("storing the hash of {role}"), e))?;

        let event = RegistryEvent::Subsystem(Box::new(SubsystemRegistered {
            spec: spec.clone(),
            role: role.clone(),
            ingress_token_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                token.as_bytes(),
            )),
            credentials: attempt.clone(),
            by: self.by.clone(),
        }));
        let sequence = match self.publisher.publish(event.draft(Utc::now(), 0)).await {
            Ok(p) => p.sequence,
            Err(e) => {
                // Nothing of this attempt may stay (another one may have won).
                let _ = std::fs::remove_file(&pending_env);
                let _ = std::fs::remove_file(&pending_token);
                let _ = kv.delete(&key).await;
                return Err(match e {
                    BusError::Conflict { .. } => BusError::Config(format!(
                        "subsystem {} was registered by someone else meanwhile: run `lienthong subsystem list`",
                        spec.name
                    )),
                    other => other,
                });
            }
        };
        for (pending, path) in [
            (&pending_env, &credentials),
            (&pending_token, &ingress_token),
        ] {
            std::fs::rename(pending, path)
                .map_err(|e| BusError::io(format!("moving {}", pending.display()), e))?;
        }
        live::load(&self.reader).await?;
        self.wait_applied(sequence).await?;
        Ok(Outcome {
            sequence,
            stream,
            role,
            credentials,
            ingress_token,
            unchanged: false,
        })
    }

    /// Adds the next version of registered event type `ty`'s schema, after checking it
    /// against the newest version in the subsystem's compatibility mode (each breaking
    /// change named with its JSON pointer). Returns `REGISTRY`'s sequence and the version.
    pub async fn register_schema(
        &self,
        ty: &str,
        mut schema: serde_json::Value,
    ) -> Result<(u64, u32)> {
        live::load(&self.reader).await?;
        let parsed = crate::subject::EventType::parse(ty)?;
        let Some(reg) = live::registration(&parsed.subsystem) else {
            return Err(BusError::Config(match SUBSYSTEMS.iter().find(|s| s.name == parsed.subsystem) {
                Some(_) => format!(
                    "{ty} belongs to the compiled subsystem {}: its versions are files under schemas/{}/ checked by `lienthong schema check`",
                    parsed.subsystem, parsed.subsystem
                ),
                None => format!(
                    "{ty}: no subsystem {} is registered on this bus (`lienthong subsystem register` first)",
                    parsed.subsystem
                ),
            }));
        };
        let Some(latest) = reg
            .spec
            .latest_events()
            .into_iter()
            .find(|e| e.ty == ty)
            .cloned()
        else {
            return Err(BusError::Config(format!(
                "{ty} is not an event type of {} (its types: {})",
                reg.spec.name,
                reg.spec
                    .latest_events()
                    .iter()
                    .map(|e| e.ty.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let version = latest.version + 1;
        let id = super::spec::schema_id(&parsed, version);
        super::spec::give_bus_id(&parsed, version, &mut schema)
            .map_err(|r| BusError::Config(format!("{ty} v{version}: {r}")))?;
        let event = super::spec::EventSpec {
            ty: ty.to_string(),
            version,
            schema,
            key: latest.key.clone(),
            time: latest.time.clone(),
        };
        super::spec::check_event_schema(&event)
            .map_err(|r| BusError::Config(format!("{ty} v{version}: {r}")))?;
        let mut known: std::collections::BTreeMap<String, serde_json::Value> = self
            .publisher
            .registry()
            .files()
            .map(|f| (f.id.clone(), f.json.clone()))
            .collect();
        known.insert(id.clone(), event.schema.clone());
        let resolver = crate::evolution::Resolver { schemas: &known };
        let old_id = super::spec::schema_id(&parsed, latest.version);
        let breaks = reg.spec.compatibility.breaking_changes(
            &resolver,
            (&old_id, &latest.schema),
            (&id, &event.schema),
        );
        if !breaks.is_empty() {
            return Err(BusError::Config(format!(
                "{ty} v{version} breaks v{} ({} compatibility, the subsystem's): {}",
                latest.version,
                reg.spec.compatibility.as_str(),
                breaks.join("; ")
            )));
        }
        let sequence = self
            .publisher
            .publish(
                RegistryEvent::Schema(Box::new(live::SchemaRegistered {
                    subsystem: reg.spec.name.clone(),
                    event,
                    by: self.by.clone(),
                }))
                .draft(Utc::now(), reg.schema_sequence),
            )
            .await
            .map_err(|e| match e {
                BusError::Conflict { .. } => BusError::Config(format!(
                    "{} changed meanwhile (another version registered?): run it again",
                    reg.spec.name
                )),
                other => other,
            })?
            .sequence;
        live::load(&self.reader).await?;
        Ok((sequence, version))
    }

    /// No stream of the spec's name on the server, or an empty one for its subjects (left by
    /// an attempt that stopped before it was recorded).
    async fn check_server(&self, spec: &SubsystemSpec) -> Result<()> {
        match self.js.get_stream(&spec.stream).await {
            Ok(mut s) => {
                let info = s
                    .info()
                    .await
                    .map_err(|e| BusError::nats(format!("reading stream {}", spec.stream), e))?;
                let subjects = vec![format!("egov.{}.>", spec.name)];
                if info.state.messages > 0 || info.config.subjects != subjects {
                    return Err(BusError::Config(format!(
                        "subsystem {}: a stream {} ({} messages, subjects {:?}) exists on the server and is not registered; choose another",
                        spec.name, spec.stream, info.state.messages, info.config.subjects
                    )));
                }
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(_)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(BusError::nats(
                format!("looking for stream {}", spec.stream),
                e,
            )),
        }
    }

    /// The bus's number of replicas (its `DLQ`'s).
    async fn replicas(&self) -> Result<usize> {
        let mut dlq = self
            .js
            .get_stream(super::DLQ.name)
            .await
            .map_err(|e| BusError::nats("reading stream DLQ", e))?;
        Ok(dlq
            .info()
            .await
            .map_err(|e| BusError::nats("reading stream DLQ", e))?
            .config
            .num_replicas
            .max(1))
    }

    fn write_env(&self, path: &Path, user: &str, password: &str) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| BusError::io(format!("creating {}", dir.display()), e))?;
        }
        let body = format!(
            "# Lienthong: the publishers' credentials of a registered subsystem ({user}). Generated; keep private.\n\
             NATS_URL={}\nNATS_USER={user}\nNATS_PASSWORD={password}\nNATS_INBOX_PREFIX={}\n",
            self.url,
            inbox(user)
        );
        write_private(path, &body)
    }

    /// Waits until a server's agent applies `REGISTRY` through `sequence`.
    async fn wait_applied(&self, sequence: u64) -> Result<()> {
        let start = Instant::now();
        loop {
            let applied = crate::agencies::agent::applied_records(&self.js)
                .await
                .unwrap_or_default();
            if applied.values().any(|a| a.subsystems_sequence >= sequence) {
                return Ok(());
            }
            if start.elapsed() > APPLY_TIMEOUT {
                return Err(BusError::Unavailable {
                    operation: format!("applying the registration ({} sequence {sequence})", REGISTRY.name),
                    attempts: 1,
                    reason: format!(
                        "no server applied it in {} s; is a configuration agent running (`lienthong up`, or `lienthong agency agent` beside each server)? \
                         The registration is recorded: its role appears once an agent runs",
                        APPLY_TIMEOUT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
