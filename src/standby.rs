//! A standby centre: a site on another machine that mirrors every stream and bucket of the
//! hub's bus account as they are written (`lienthong site up --role standby`), and is made
//! the centre after a disaster (`lienthong standby promote`, then `lienthong up` on its
//! data folder).
//!
//! - **Mirroring.** The standby's server is a leaf node of the hub; its account there may
//!   list the bus's streams, read their configuration and create consumers on them
//!   ([`lienthong_bus::sites::SiteKind::Standby`]), nothing else. Every few seconds the
//!   standby looks for streams it does not mirror yet (a bucket, a subsystem added later),
//!   mirrors them, and records the hub's configuration of each in `standby.json` in its data
//!   folder: the configuration a promoted stream takes. A mirror keeps every message's
//!   sequence and store time, so the audit chains are the centre's.
//! - **Promotion** (the standby's site stopped, the centre gone): each mirror becomes the
//!   stream the centre had — the centre's configuration, one replica, a duplicate window long
//!   enough that an adapter resuming from a mirrored cursor repeats nothing — and, where the
//!   centre's last checkpoints covered more than reached the standby, a signed resumption is
//!   written to `AUDIT` so that the chain goes on after what is held (and `audit verify` says
//!   what was lost). With a backup's secrets (`--secrets DIR --identity KEY`) the roles'
//!   passwords and the audit signing key become the centre's, so adapters, agencies and
//!   auditors keep their credentials.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lienthong_bus::jsapi;
use lienthong_bus::sites::{self, WITNESS_API_PREFIX};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::error::StackError;

/// The standby's record in its data folder.
pub const RECORD: &str = "standby.json";
/// How often the standby looks for streams it does not mirror yet.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// What a standby knows of the centre: the configuration of each stream it mirrors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// The standby site's name on the hub.
    pub site: String,
    /// The hub's configuration of each stream (JetStream's JSON), as last read.
    pub streams: BTreeMap<String, Value>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Each mirror's last contact with the centre and its lag then, as last seen while the
    /// standby ran (a promoted standby's server no longer knows them).
    #[serde(default)]
    pub contact: BTreeMap<String, Contact>,
}

/// A mirror's last contact with the centre.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub at: Option<DateTime<Utc>>,
    /// Messages the centre had that the mirror had not, then.
    pub lag: u64,
}

impl Record {
    fn path(data: &Path) -> PathBuf {
        data.join(RECORD)
    }

    pub fn read(data: &Path) -> Result<Option<Self>, StackError> {
        let path = Self::path(data);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                StackError::Config(format!("{}: not a standby's record: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StackError::io(format!("reading {}", path.display()), e)),
        }
    }

    fn write(&self, data: &Path) -> Result<(), StackError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| StackError::Config(format!("encoding the standby's record: {e}")))?;
        let tmp = data.join(format!("{RECORD}.partial"));
        lienthong_bus::credentials::write_private(&tmp, &text)?;
        std::fs::rename(&tmp, Self::path(data))
            .map_err(|e| StackError::io(format!("writing {}", Self::path(data).display()), e))
    }
}

/// The names of the streams of `api` (a JetStream API prefix), every page.
async fn stream_names(client: &async_nats::Client, api: &str) -> Result<Vec<String>, StackError> {
    let mut names = Vec::new();
    loop {
        let page = jsapi::call(
            client,
            api,
            "STREAM.NAMES",
            &json!({ "offset": names.len() }),
            "listing the streams",
        )
        .await?;
        let got: Vec<String> = page["streams"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let total = page["total"].as_u64().unwrap_or(0) as usize;
        let done = got.is_empty();
        names.extend(got);
        if done || names.len() >= total {
            return Ok(names);
        }
    }
}

/// One round: mirrors every stream of the hub not mirrored yet, records the hub's
/// configuration of each and each mirror's last contact. `local`: the standby's operator, on
/// its own server. Returns the streams newly mirrored. What was learnt is written even when
/// the round fails part way.
pub async fn reconcile(
    local: &async_nats::Client,
    site: &str,
    data: &Path,
    record: &mut Record,
) -> Result<Vec<String>, StackError> {
    let before = (record.site.clone(), record.streams.clone());
    record.site = site.to_string();
    let mut added = Vec::new();
    let result = reconcile_streams(local, site, record, &mut added).await;
    if (record.site.clone(), record.streams.clone()) != before {
        record.updated_at = Some(Utc::now());
    }
    record_contact(local, record).await;
    record.write(data)?;
    result.map(|()| added)
}

async fn reconcile_streams(
    local: &async_nats::Client,
    site: &str,
    record: &mut Record,
    added: &mut Vec<String>,
) -> Result<(), StackError> {
    let hub = stream_names(local, WITNESS_API_PREFIX).await?;
    let here = stream_names(local, "$JS.API").await?;
    for name in hub {
        let info = jsapi::call(
            local,
            WITNESS_API_PREFIX,
            &format!("STREAM.INFO.{name}"),
            &Value::Null,
            "reading the hub's stream",
        )
        .await?;
        record.streams.insert(name.clone(), info["config"].clone());
        if !here.contains(&name) {
            let js = async_nats::jetstream::new(local.clone());
            js.create_stream(sites::standby_mirror_config(site, &name))
                .await
                .map_err(|e| {
                    StackError::Config(format!("creating the standby's mirror of {name}: {e}"))
                })?;
            info!(stream = %name, "mirroring the hub's {name}");
            added.push(name);
        }
    }
    Ok(())
}

/// Records each local mirror's last contact with the centre and its lag then (what the
/// running server knows).
async fn record_contact(local: &async_nats::Client, record: &mut Record) {
    let Ok(names) = stream_names(local, "$JS.API").await else {
        return;
    };
    for name in names {
        let Ok(info) = jsapi::call(
            local,
            "$JS.API",
            &format!("STREAM.INFO.{name}"),
            &Value::Null,
            "reading the standby's mirror",
        )
        .await
        else {
            continue;
        };
        let mirror = &info["mirror"];
        // `active`: nanoseconds since the last contact; -1 (absent here) before any.
        if let Some(ns) = mirror["active"].as_u64() {
            let at = Utc::now() - chrono::Duration::nanoseconds(ns as i64);
            record.contact.insert(
                name,
                Contact {
                    at: Some(at),
                    lag: mirror["lag"].as_u64().unwrap_or(0),
                },
            );
        }
    }
}

/// Keeps the standby's mirrors until `stop`: a round at once, then every
/// [`RECONCILE_EVERY`]; a round the hub does not answer (the link down) is tried again.
pub async fn keep_mirroring(
    local: async_nats::Client,
    site: String,
    data: PathBuf,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), StackError> {
    tokio::pin!(stop);
    let mut record = Record::read(&data)?.unwrap_or_default();
    let mut failing = false;
    loop {
        match reconcile(&local, &site, &data, &mut record).await {
            Ok(_) if failing => {
                info!("the hub answers again; the standby's mirrors are complete");
                failing = false;
            }
            Ok(_) => {}
            Err(e) if !failing => {
                warn!("the standby cannot list the hub's streams ({e}); its mirrors go on with what they have");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
        }
    }
}

/// One stream as promoted.
#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    pub name: String,
    pub messages: u64,
    pub last_seq: u64,
    /// Messages the centre had beyond what reached the standby, at the mirror's last contact
    /// (as the standby recorded it while it ran).
    pub lag: u64,
    /// The mirror's last contact with the centre, as recorded.
    pub last_contact: Option<DateTime<Utc>>,
    /// Sequences the centre's checkpoints covered beyond what is held (lost with it).
    pub lost_checkpointed: Option<(u64, u64)>,
    /// The store time of its last message.
    pub last_stored: Option<DateTime<Utc>>,
}

/// What a promotion did.
#[derive(Debug, Clone, Serialize)]
pub struct Promotion {
    pub site: String,
    pub streams: Vec<Promoted>,
    /// The newest store time of any message held: what the centre had stored after it may be
    /// lost (the recovery point).
    pub recovery_point: Option<DateTime<Utc>>,
    pub seconds: f64,
}

/// The secrets a promotion puts back: a backup's (`lienthong backup --secrets-from`).
pub struct Secrets<'a> {
    pub backup: &'a Path,
    pub identity: &'a age::x25519::Identity,
}

/// The configuration a mirror takes on promotion: the centre's, one replica, and a duplicate
/// window that also covers `since_newest` (the time since the newest message held: what
/// adapters resuming from mirrored cursors publish again is dropped by its id).
fn promoted_config(centre: &Value, since_newest: Duration) -> Value {
    let mut config = centre.clone();
    if let Some(o) = config.as_object_mut() {
        o.remove("mirror");
    }
    config["num_replicas"] = 1.into();
    let window = config["duplicate_window"].as_u64().unwrap_or(0);
    if window > 0 {
        let needed =
            lienthong_bus::topology::DUPLICATE_WINDOW + since_newest + Duration::from_secs(60);
        config["duplicate_window"] = window.max(needed.as_nanos() as u64).into();
    }
    config
}

/// Promotes the standby whose data folder is `data` (its site stopped) to be the centre:
/// every mirror becomes the centre's stream, the audit chains resume after what is held;
/// `lienthong up --data DATA` then runs the centre on it.
pub async fn promote(
    data: &Path,
    secrets: Option<Secrets<'_>>,
    registry: std::sync::Arc<lienthong_bus::SchemaRegistry>,
) -> Result<Promotion, StackError> {
    let began = Instant::now();
    let record = Record::read(data)?.ok_or_else(|| {
        StackError::Config(format!(
            "{} holds no {RECORD}: not a standby's data folder (lienthong site up --role standby --data …)",
            data.display()
        ))
    })?;
    // Nothing is changed while the standby's site still runs on the folder.
    lienthong_bus::server::await_previous(&data.join("nats")).await?;
    if let Some(s) = &secrets {
        let manifest = crate::backup::Manifest::read(s.backup)?;
        let part = manifest.secrets.as_ref().ok_or_else(|| {
            StackError::Config(format!(
                "{} holds no secrets (take one with lienthong backup --secrets-from DATA --recipient …)",
                s.backup.display()
            ))
        })?;
        let files = crate::backup::secrets::open(s.backup, part, s.identity)?;
        // The standby site's own roles give way to the centre's (kept aside, not lost).
        let own = data.join("credentials");
        if own.exists() {
            let aside = data.join(format!(
                "credentials.standby-{}",
                Utc::now().format("%Y%m%dT%H%M%S")
            ));
            std::fs::rename(&own, &aside)
                .map_err(|e| StackError::io(format!("setting {} aside", own.display()), e))?;
        }
        crate::backup::secrets::put_back(data, &files)?;
    }
    let key_path = data.join("credentials").join("audit-signing.key");
    if !key_path.exists() {
        return Err(StackError::Config(format!(
            "{} is missing: a promoted centre signs with the centre's audit key; give the secrets of a backup (--secrets DIR --identity KEY) or copy the centre's credentials folder there",
            key_path.display()
        )));
    }
    let key = lienthong_audit::checkpoint::load_or_generate_signing_key(&key_path)?;
    let servers = crate::backup::restore::PrivateServers::start(data, 1).await?;
    let result = async {
        let client = servers.operator().await?;
        let mut streams = promote_streams(&client, &record).await?;
        // Every audited stream's chain, on every run (a resumption already written is not
        // written again): a promotion that failed part way is finished by running it again.
        let js = async_nats::jetstream::new(client.clone());
        let writer = lienthong_replay::audit_writer::AuditWriter::new(js, registry, key);
        let reason = format!(
            "standby {} promoted to centre: the lost centre's checkpoints covered more than reached it",
            record.site
        );
        for p in &mut streams {
            if lienthong_bus::registry::audited_streams().contains(&p.name.as_str()) {
                if let Some(c) = writer.resume_after_loss(&p.name, &reason).await? {
                    let lost_to = c.resumes.as_ref().map(|r| r.lost_to).unwrap_or(c.last_seq);
                    p.lost_checkpointed = Some((c.first_seq, lost_to));
                }
            }
        }
        Ok::<_, StackError>(streams)
    }
    .await;
    servers.stop().await?;
    let streams = result?;
    Ok(Promotion {
        site: record.site,
        recovery_point: streams.iter().filter_map(|s| s.last_stored).max(),
        streams,
        seconds: began.elapsed().as_secs_f64(),
    })
}

/// A stream state's last store time.
fn last_stored(state: &Value) -> Option<DateTime<Utc>> {
    state["last_ts"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| t.timestamp() > 0)
}

/// Every mirror in the standby's store becomes the stream the centre had; every stream
/// there (promoted now or by an earlier run) is reported. Nothing is changed when the
/// centre's configuration of a mirror is not known.
async fn promote_streams(
    client: &async_nats::Client,
    record: &Record,
) -> Result<Vec<Promoted>, StackError> {
    let mut infos = Vec::new();
    for name in stream_names(client, "$JS.API").await? {
        let info = jsapi::call(
            client,
            "$JS.API",
            &format!("STREAM.INFO.{name}"),
            &Value::Null,
            "reading the standby's mirror",
        )
        .await?;
        infos.push((name, info));
    }
    let unknown: Vec<&str> = infos
        .iter()
        .filter(|(name, i)| !i["config"]["mirror"].is_null() && !record.streams.contains_key(name))
        .map(|(name, _)| name.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(StackError::Config(format!(
            "the standby never read the centre's configuration of {}: nothing was promoted",
            unknown.join(", ")
        )));
    }
    // What adapters resuming from mirrored cursors may publish again was stored up to the
    // newest message held: the duplicate windows reach back from there.
    let since_newest = infos
        .iter()
        .filter_map(|(_, i)| last_stored(&i["state"]))
        .max()
        .and_then(|t| (Utc::now() - t).to_std().ok())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (name, info) in infos {
        let state = if info["config"]["mirror"].is_null() {
            info["state"].clone()
        } else {
            jsapi::call(
                client,
                "$JS.API",
                &format!("STREAM.UPDATE.{name}"),
                &promoted_config(&record.streams[&name], since_newest),
                &format!("promoting the mirror of {name}"),
            )
            .await?["state"]
                .clone()
        };
        let contact = record.contact.get(&name).cloned().unwrap_or_default();
        out.push(Promoted {
            messages: state["messages"].as_u64().unwrap_or(0),
            last_seq: state["last_seq"].as_u64().unwrap_or(0),
            lag: contact.lag,
            last_contact: contact.at,
            lost_checkpointed: None,
            last_stored: last_stored(&state),
            name,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_promoted_stream_takes_the_centres_configuration_at_one_replica() {
        let window = lienthong_bus::topology::DUPLICATE_WINDOW.as_nanos() as u64;
        let centre = json!({
            "name": "FIELD_REPORTS", "subjects": ["egov.field_reports.>"], "num_replicas": 3,
            "duplicate_window": window, "deny_delete": true, "deny_purge": true,
            "mirror": {"name": "FIELD_REPORTS"}
        });
        let since = Duration::from_secs(3600);
        let c = promoted_config(&centre, since);
        assert!(c.get("mirror").is_none());
        assert_eq!(c["num_replicas"], 1);
        assert_eq!(c["subjects"][0], "egov.field_reports.>");
        assert_eq!(c["deny_delete"], true);
        // Long enough for the adapters' cursors mirrored up to an hour ago.
        assert!(c["duplicate_window"].as_u64().unwrap() >= window + since.as_nanos() as u64);
        // A bucket (no duplicate window) keeps none.
        let kv = promoted_config(&json!({"name": "KV_X", "duplicate_window": 0}), since);
        assert_eq!(kv["duplicate_window"], 0);
    }
}
