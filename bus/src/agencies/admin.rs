//! What the `lienthong agency` commands do, as the operator: add, grant, rotate, revoke.
//!
//! Each change writes the hashes (`AGENCY_ACCESS`) first, then the event (`AGENCIES`), then
//! waits until the servers' agents apply it, then brings the agency's copies of its streams
//! in line, as the agency's administrator. Credentials are written beside the others:
//! `<dir>/agency-<name>.env` for the agency, `<dir>/agencies/<name>.admin.env` for the
//! operator's administrator of its account.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use chrono::Utc;

use super::accounts::AccessHashes;
use super::events::{AgencyEvent, Granted, Revoked, Rotated};
use super::{account, admin_user, check_grants, check_name, deliver_prefix, AgencyRegistry, Grant};
use crate::access::Refusals;
use crate::credentials::{read_env_file, write_private, ConnectSettings};
use crate::error::{retrying, BusError, Result};
use crate::publisher::Publisher;
use crate::reader::StreamReader;
use crate::roles::{hash_password, inbox};
use crate::schema::SchemaRegistry;
use crate::topology::AGENCY_ACCESS_BUCKET;

/// How long a change may take to reach the servers.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// The operator's hand on the agency registry.
pub struct AgencyAdmin {
    js: jetstream::Context,
    reader: StreamReader,
    publisher: Publisher,
    /// Where credentials files go (`data/credentials`).
    dir: PathBuf,
    /// The server URL written into agencies' credentials.
    url: String,
    /// The servers' CA (`NATS_CA`), written into agencies' credentials when they use TLS.
    ca: Option<PathBuf>,
    /// Who makes the changes (recorded in the events).
    by: String,
}

/// An agency's credentials files.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub agency: PathBuf,
    pub admin: PathBuf,
}

impl AgencyAdmin {
    /// Connected as the operator (`client`, watched for refusals).
    /// `by` names who makes the changes (the NATS user is added); control characters are
    /// replaced, so the registry never carries terminal escapes.
    pub fn new(
        client: async_nats::Client,
        refusals: Refusals,
        schemas: Arc<SchemaRegistry>,
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
            publisher: Publisher::new(js.clone(), schemas, super::events::SOURCE)
                .with_refusals(refusals),
            js,
            dir: credentials_dir.to_path_buf(),
            url: url.to_string(),
            ca: None,
            by: by.to_string(),
        }
    }

    /// For servers with TLS: agencies' credentials name their CA (`NATS_CA`).
    pub fn with_ca(mut self, ca: Option<PathBuf>) -> Self {
        self.ca = ca;
        self
    }

    /// The registry now.
    pub async fn registry(&self) -> Result<AgencyRegistry> {
        retrying(|| AgencyRegistry::load(&self.reader, None)).await
    }

    /// The registry as of `at`.
    pub async fn registry_at(&self, at: chrono::DateTime<Utc>) -> Result<AgencyRegistry> {
        AgencyRegistry::load(&self.reader, Some(at)).await
    }

    /// The agency's credentials files.
    pub fn credentials(&self, name: &str) -> Credentials {
        Credentials {
            agency: self.dir.join(format!("{}.env", account(name))),
            admin: self.dir.join("agencies").join(format!("{name}.admin.env")),
        }
    }

    /// Adds an agency with its grants; returns its credentials files.
    pub async fn add(
        &self,
        name: &str,
        grants: Vec<Grant>,
        note: Option<String>,
    ) -> Result<Credentials> {
        check_name(name)?;
        check_grants(&grants)?;
        self.check_filters(&grants)?;
        let registry = self.registry().await?;
        if registry.agencies.contains_key(name) {
            return Err(exists(name));
        }
        let expected = registry.agency_sequences.get(name).copied().unwrap_or(0);
        let (password, admin) = (new_password(), new_password());
        // The event first (it fails if another operator added the agency meanwhile), then
        // the hashes: the agent applies the agency once both are there.
        let seq = self
            .record_expecting(
                AgencyEvent::Granted(Granted {
                    agency: name.into(),
                    grants: grants.clone(),
                    by: self.by.clone(),
                    note,
                }),
                expected,
            )
            .await
            .map_err(|e| changed_meanwhile(name, e))?;
        self.put_hashes(name, &password, &admin).await?;
        let files = self.credentials(name);
        self.write_env(&files.agency, &account(name), &password, "the agency's")?;
        self.write_env(
            &files.admin,
            &admin_user(name),
            &admin,
            "the operator's administrator of the agency's account,",
        )?;
        self.wait_applied(seq).await?;
        retrying(|| self.sync_copies(name, &grants)).await?;
        Ok(files)
    }

    /// Replaces an agency's grants. Returns the streams whose copy was rebuilt: its filters
    /// changed in a way the copy could not follow in place (its consumers were removed;
    /// webhook subscriptions start again from the first event, same `webhook-id`s).
    /// Subscriptions on streams no longer granted end.
    pub async fn grant(
        &self,
        name: &str,
        grants: Vec<Grant>,
        note: Option<String>,
    ) -> Result<Vec<String>> {
        check_grants(&grants)?;
        self.check_filters(&grants)?;
        let registry = self.registry().await?;
        let expected = self.existing_in(&registry, name)?;
        let seq = self
            .record_expecting(
                AgencyEvent::Granted(Granted {
                    agency: name.into(),
                    grants: grants.clone(),
                    by: self.by.clone(),
                    note,
                }),
                expected,
            )
            .await
            .map_err(|e| changed_meanwhile(name, e))?;
        for sub in registry
            .subscriptions
            .values()
            .filter(|s| s.agency == name && !grants.iter().any(|g| g.stream == s.stream))
        {
            self.end_subscription(sub, "its stream is no longer granted")
                .await?;
        }
        self.wait_applied(seq).await?;
        retrying(|| self.sync_copies(name, &grants)).await
    }

    /// Gives an agency a new password; its open connections are closed.
    pub async fn rotate(&self, name: &str) -> Result<Credentials> {
        let registry = self.registry().await?;
        let expected = self.existing_in(&registry, name)?;
        let files = self.credentials(name);
        let admin = admin_password(&files.admin)?;
        let password = new_password();
        let seq = self
            .record_expecting(
                AgencyEvent::Rotated(Rotated {
                    agency: name.into(),
                    by: self.by.clone(),
                }),
                expected,
            )
            .await
            .map_err(|e| changed_meanwhile(name, e))?;
        self.put_hashes(name, &password, &admin).await?;
        self.write_env(&files.agency, &account(name), &password, "the agency's")?;
        self.wait_applied(seq).await?;
        Ok(files)
    }

    /// Revokes an agency: its subscriptions end, its copies are deleted, its account removed
    /// (its connections closed), its credentials and webhook secrets deleted.
    pub async fn revoke(&self, name: &str, reason: Option<String>) -> Result<()> {
        let registry = self.registry().await?;
        let expected = self.existing_in(&registry, name)?;
        let record = registry.agencies[name].clone();
        for sub in registry.subscriptions.values().filter(|s| s.agency == name) {
            self.end_subscription(sub, "the agency was revoked").await?;
        }
        match self.admin_js(name).await {
            Ok(js) => {
                for g in &record.grants {
                    delete_copy(&js, &g.stream).await?;
                }
            }
            Err(e) => tracing::warn!(
                "revoking {name}: its copies could not be deleted ({e}); the account goes anyway"
            ),
        }
        let seq = self
            .record_expecting(
                AgencyEvent::Revoked(Revoked {
                    agency: name.into(),
                    by: self.by.clone(),
                    reason,
                }),
                expected,
            )
            .await
            .map_err(|e| changed_meanwhile(name, e))?;
        let kv = self.access().await?;
        retrying(|| async {
            kv.purge(name)
                .await
                .map_err(|e| BusError::nats(format!("removing the hashes of {name}"), e))
        })
        .await?;
        self.wait_applied(seq).await?;
        let files = self.credentials(name);
        for f in [files.agency, files.admin] {
            let _ = std::fs::remove_file(f);
        }
        Ok(())
    }

    /// Records that a webhook subscription ended, and forgets its receiver's URL and secret.
    pub async fn end_subscription(&self, sub: &super::Subscription, reason: &str) -> Result<()> {
        self.record(AgencyEvent::SubscriptionRemoved(
            super::events::SubscriptionRemoved {
                subscription: sub.id.clone(),
                agency: sub.agency.clone(),
                by: self.by.clone(),
                reason: Some(reason.into()),
            },
        ))
        .await?;
        let _ = std::fs::remove_file(self.dir.join("webhooks").join(format!("{}.json", sub.id)));
        Ok(())
    }

    /// Each filter must be able to match some event type of its stream (a typo such as
    /// `…report.*.resolved` would otherwise grant nothing, silently).
    fn check_filters(&self, grants: &[Grant]) -> Result<()> {
        let types: Vec<String> = self
            .publisher
            .registry()
            .event_types()
            .map(|(ty, _, _)| ty.to_string())
            .collect();
        for g in grants {
            let Some(sub) = crate::registry::subsystem_of_stream(&g.stream) else {
                continue;
            };
            let patterns: Vec<String> = types
                .iter()
                .filter_map(|ty| crate::subject::EventType::parse(ty).ok())
                .filter(|t| t.subsystem == sub.name)
                .map(|t| format!("egov.{}.{}.*.{}", t.subsystem, t.entity, t.action))
                .collect();
            for f in &g.subjects {
                if !patterns.iter().any(|p| super::overlap(f, p)) {
                    let mut names: Vec<String> = patterns.clone();
                    names.sort();
                    names.dedup();
                    return Err(BusError::Config(format!(
                        "subject filter {f:?} matches no event of {}: its subjects are {}",
                        g.stream,
                        names.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// Connected to the agency's account as its administrator.
    pub async fn admin_js(&self, name: &str) -> Result<jetstream::Context> {
        let settings = ConnectSettings::resolve(Some(&self.credentials(name).admin))?;
        let client = settings
            .connect(&format!("lienthong-agency-admin-{name}"))
            .await?;
        Ok(jetstream::new(client))
    }

    /// The sequence a change of an existing agency expects.
    fn existing_in(&self, registry: &AgencyRegistry, name: &str) -> Result<u64> {
        if !registry.agencies.contains_key(name) {
            return Err(BusError::Config(format!(
                "no agency {name}; `lienthong agency list` shows them"
            )));
        }
        Ok(registry.agency_sequences.get(name).copied().unwrap_or(0))
    }

    async fn access(&self) -> Result<jetstream::kv::Store> {
        retrying(|| async {
            self.js
                .get_key_value(AGENCY_ACCESS_BUCKET)
                .await
                .map_err(|e| {
                    BusError::nats(
                        format!("opening KV {AGENCY_ACCESS_BUCKET} (as the operator?)"),
                        e,
                    )
                })
        })
        .await
    }

    async fn put_hashes(&self, name: &str, password: &str, admin: &str) -> Result<()> {
        let kv = self.access().await?;
        // A rotation keeps the agency's site certificate.
        let site_certificate = kv
            .get(name)
            .await
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice::<AccessHashes>(&v).ok())
            .and_then(|h| h.site_certificate);
        let hashes = AccessHashes {
            password: hash_password(password)?,
            admin: hash_password(admin)?,
            site_certificate,
        };
        let value: bytes::Bytes = serde_json::to_vec(&hashes).expect("serialises").into();
        retrying(|| async {
            kv.put(name, value.clone())
                .await
                .map_err(|e| BusError::nats(format!("storing the hashes of {name}"), e))
        })
        .await?;
        Ok(())
    }

    fn write_env(&self, path: &Path, user: &str, password: &str, whose: &str) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| BusError::io(format!("creating {}", dir.display()), e))?;
        }
        let mut body = format!(
            "# Lienthong: {whose} credentials ({user}). Generated; keep private.\n\
             NATS_URL={}\nNATS_USER={user}\nNATS_PASSWORD={password}\nNATS_INBOX_PREFIX={}\n",
            self.url,
            inbox(user)
        );
        if let Some(ca) = &self.ca {
            body.push_str(&format!("NATS_CA={}\n", ca.display()));
        }
        write_private(path, &body)
    }

    /// Records an event of the registry if the agency's last event is still `expected`.
    async fn record_expecting(&self, event: AgencyEvent, expected: u64) -> Result<u64> {
        Ok(self
            .publisher
            .publish(event.draft_expecting(Utc::now(), Some(expected)))
            .await?
            .sequence)
    }

    /// Records an event of the registry (its `AGENCIES` sequence).
    pub async fn record(&self, event: AgencyEvent) -> Result<u64> {
        Ok(self
            .publisher
            .publish(event.draft(Utc::now()))
            .await?
            .sequence)
    }

    /// Who makes the changes.
    pub fn by(&self) -> &str {
        &self.by
    }

    /// Where credentials files go.
    pub fn credentials_dir(&self) -> &Path {
        &self.dir
    }

    /// Waits until a server's agent applies the registry through `sequence`.
    pub async fn wait_applied(&self, sequence: u64) -> Result<()> {
        let start = Instant::now();
        loop {
            // A server reloading answers nothing for a moment: that is "not yet".
            let applied = super::agent::applied_by_servers(&self.js)
                .await
                .unwrap_or_default();
            if applied.values().any(|s| *s >= sequence) {
                return Ok(());
            }
            if start.elapsed() > APPLY_TIMEOUT {
                return Err(BusError::Unavailable {
                    operation: format!("applying the agency registry (sequence {sequence})"),
                    attempts: 1,
                    reason: format!(
                        "no server applied it in {} s (servers: {applied:?}); is a configuration agent running (`lienthong up`, or `lienthong agency agent` beside each server)?",
                        APPLY_TIMEOUT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Makes every agency's copies match its grants — what a bus restored onto a new
    /// server needs (the copies live in the agencies' accounts, outside the backup), or a copy
    /// deleted by hand: a missing copy is created and fills from the bus's stream. The
    /// agencies' credentials files are pointed at this server. Returns the agencies whose
    /// copies could not be checked, and why.
    pub async fn reconcile_copies(&self) -> Result<Vec<(String, String)>> {
        let registry = self.registry().await?;
        let mut unchecked = Vec::new();
        for (name, record) in &registry.agencies {
            let files = self.credentials(name);
            if !files.admin.exists() {
                unchecked.push((
                    name.clone(),
                    format!(
                        "its administrator's credentials ({}) are not here: restore the \
                         backup's secrets, or `lienthong agency rotate {name}`",
                        files.admin.display()
                    ),
                ));
                continue;
            }
            crate::credentials::rewrite_url(&files.admin, &self.url)?;
            crate::credentials::rewrite_url(&files.agency, &self.url)?;
            if let Err(e) = retrying(|| self.sync_copies(name, &record.grants)).await {
                unchecked.push((name.clone(), e.to_string()));
            }
        }
        Ok(unchecked)
    }

    /// Makes the agency's copies match its grants.
    /// Returns the streams whose copy was rebuilt.
    async fn sync_copies(&self, name: &str, grants: &[Grant]) -> Result<Vec<String>> {
        let mut rebuilt = Vec::new();
        let js = connect_when_ready(self, name).await?;
        let mut names = js.stream_names();
        let mut existing = Vec::new();
        use futures::StreamExt;
        while let Some(n) = names.next().await {
            existing.push(n.map_err(|e| BusError::nats(format!("listing {name}'s copies"), e))?);
        }
        for stream_name in &existing {
            if !grants.iter().any(|g| &g.stream == stream_name) {
                delete_copy(&js, stream_name).await?;
            }
        }
        for g in grants {
            let want = copy_config(name, g);
            match js.get_stream(&g.stream).await {
                Ok(mut s) => {
                    let have = s
                        .info()
                        .await
                        .map_err(|e| {
                            BusError::nats(format!("reading {name}'s copy of {}", g.stream), e)
                        })?
                        .config
                        .clone();
                    let filters = |c: &stream::Config| -> Vec<String> {
                        let mut f: Vec<String> = c
                            .sources
                            .iter()
                            .flatten()
                            .filter_map(|s| s.filter_subject.clone())
                            .collect();
                        f.sort();
                        f
                    };
                    let (old, new) = (filters(&have), filters(&want));
                    if old == new {
                        continue;
                    }
                    if old.iter().all(|f| new.contains(f)) {
                        // Filters added beside the old ones (never overlapping them): the
                        // copy grows in place, its consumers kept.
                        js.update_stream(want).await.map_err(|e| {
                            BusError::nats(format!("widening {name}'s copy of {}", g.stream), e)
                        })?;
                    } else {
                        // Otherwise what it holds no longer matches the grant (or would be
                        // copied twice): it is rebuilt from the bus's stream.
                        delete_copy(&js, &g.stream).await?;
                        create_copy(&js, want, name).await?;
                        rebuilt.push(g.stream.clone());
                    }
                }
                Err(_) => create_copy(&js, want, name).await?,
            }
        }
        Ok(rebuilt)
    }
}

/// Connects as the agency's administrator, waiting for the server to know it.
async fn connect_when_ready(admin: &AgencyAdmin, name: &str) -> Result<jetstream::Context> {
    let start = Instant::now();
    loop {
        match admin.admin_js(name).await {
            Ok(js) => return Ok(js),
            Err(e) if start.elapsed() > APPLY_TIMEOUT => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The copy of a granted stream in the agency's account: the bus's stream, sourced through
/// the imports the grant created, only the granted subjects.
pub fn copy_config(agency: &str, grant: &Grant) -> stream::Config {
    stream::Config {
        name: grant.stream.clone(),
        description: Some(format!(
            "{}'s copy of {} (granted subjects only), kept by the server",
            account(agency),
            grant.stream
        )),
        sources: Some(
            grant
                .filters()
                .into_iter()
                .map(|f| stream::Source {
                    name: grant.stream.clone(),
                    filter_subject: Some(f),
                    external: Some(stream::External {
                        api_prefix: super::BUS_API_PREFIX.into(),
                        delivery_prefix: Some(deliver_prefix(agency)),
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        ..Default::default()
    }
}

async fn create_copy(js: &jetstream::Context, config: stream::Config, agency: &str) -> Result<()> {
    let stream = config.name.clone();
    js.create_stream(config)
        .await
        .map_err(|e| BusError::nats(format!("creating {agency}'s copy of {stream}"), e))?;
    Ok(())
}

async fn delete_copy(js: &jetstream::Context, stream: &str) -> Result<()> {
    match js.delete_stream(stream).await {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("not found") => Ok(()),
        Err(e) => Err(BusError::nats(format!("deleting the copy of {stream}"), e)),
    }
}

fn exists(name: &str) -> BusError {
    BusError::Config(format!(
        "agency {name} exists; change its grants with `lienthong agency grant {name} …`, or revoke it first"
    ))
}

/// A concurrency conflict on the agency's events, in words.
fn changed_meanwhile(name: &str, e: BusError) -> BusError {
    match e {
        BusError::Conflict { .. } => BusError::Config(format!(
            "agency {name} was changed by someone else while this ran; nothing was done: look again (`lienthong agency show {name}`) and retry"
        )),
        other => other,
    }
}

fn new_password() -> String {
    crate::credentials::new_password()
}

fn admin_password(file: &Path) -> Result<String> {
    read_env_file(file)?
        .remove("NATS_PASSWORD")
        .ok_or_else(|| BusError::Config(format!("{}: no NATS_PASSWORD", file.display())))
}
