//! Backups of a running bus, their offline check, and restores onto new servers.
//!
//! A backup is a folder: one archive per stream — JetStream's own snapshot of the stream's
//! store (messages with their sequences and store times, consumers and their positions),
//! taken while the stream goes on taking writes — and `manifest.json`, which records each
//! archive's size and SHA-256, the stream's configuration and state as the snapshot began,
//! the audit public key and when each part was taken.
//!
//! The order makes the parts agree with one another without stopping anything:
//! 1. the key-value buckets (adapters' cursors, agencies' access): a cursor is never ahead
//!    of the events it stands for, so nothing is lost; what an adapter publishes again from
//!    an older cursor is dropped as a duplicate by its message id (see [`restore`]: the
//!    restored streams remember the ids stored since the cursors were taken);
//! 2. `AUDIT`: every checkpoint then covers only what the streams taken after it hold;
//! 3. every other stream.
//!
//! [`verify`] restores a backup into a private, temporary nats-server and checks it there:
//! the archives' digests, that every stream of the contract is in it, the restored states,
//! the hash chains against the signed checkpoints.

pub mod restore;
pub mod secrets;
pub mod verify;

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::StackError;

/// The manifest's name in a backup folder.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's format.
pub const FORMAT: u32 = 1;

/// What a backup holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// When the first part was taken (the buckets), and when the last one was done.
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The server it was taken from (its version, name and cluster).
    pub server: serde_json::Value,
    /// The audit public key (64 hex digits) the checkpoints are checked with.
    pub audit_public_key: String,
    /// In the order they were taken.
    pub streams: Vec<StreamPart>,
    /// The data folder's credentials, encrypted, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<secrets::SecretsPart>,
}

/// One stream's archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamPart {
    pub name: String,
    /// Its file, relative to the folder.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub taken_at: DateTime<Utc>,
    /// The stream's configuration and state as the snapshot began (JetStream's JSON).
    pub config: serde_json::Value,
    pub state: serde_json::Value,
}

impl StreamPart {
    /// Messages, first and last sequence, as recorded.
    pub fn recorded(&self) -> (u64, u64, u64) {
        state_numbers(&self.state)
    }
}

/// Messages, first and last sequence of a JetStream state (an empty stream's first
/// sequence, which servers give as 0 or as the next one, is given as 0).
pub fn state_numbers(state: &serde_json::Value) -> (u64, u64, u64) {
    let n = |k: &str| state[k].as_u64().unwrap_or(0);
    match n("messages") {
        0 => (0, 0, n("last_seq")),
        m => (m, n("first_seq"), n("last_seq")),
    }
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Self, StackError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            StackError::io(
                format!("reading {} (is it a backup folder?)", path.display()),
                e,
            )
        })?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            StackError::Config(format!("{}: not a backup manifest: {e}", path.display()))
        })?;
        if m.format != FORMAT {
            return Err(StackError::Config(format!(
                "{}: backup format {} (this lienthong reads {FORMAT})",
                path.display(),
                m.format
            )));
        }
        Ok(m)
    }
}

/// Where a part of a backup is being taken, for progress.
pub trait Progress: Sync {
    fn stream(&self, name: &str, expected_bytes: u64);
    fn bytes(&self, done: u64);
    fn done(&self, name: &str, bytes: u64, seconds: f64);
}

/// The order the streams are taken in: buckets and the hub's intake (with the admission's
/// position in it: never ahead of the central streams, so what it admitted after is admitted
/// again, and dropped by its message id), `AUDIT`, the rest (each group by name).
fn backup_order(mut names: Vec<String>) -> Vec<String> {
    let rank = |n: &str| match n {
        _ if n.starts_with("KV_") || n == lienthong_bus::sites::intake::INTAKE => 0,
        "AUDIT" => 1,
        _ => 2,
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    names
}

/// Secrets to add to a backup: the data folder's credentials, encrypted to `recipient`.
pub struct SecretsFrom<'a> {
    pub data: &'a Path,
    /// An age public key (`age1…`).
    pub recipient: &'a str,
}

/// Takes a backup of every stream and bucket `client` (the operator) sees into `out`, which
/// must not exist or be empty. `audit_public_key`: 64 hex digits.
pub async fn take(
    client: &async_nats::Client,
    out: &Path,
    audit_public_key: &str,
    secrets_from: Option<SecretsFrom<'_>>,
    progress: &dyn Progress,
) -> Result<Manifest, StackError> {
    if audit_public_key.len() != 64 || hex::decode(audit_public_key).is_err() {
        return Err(StackError::Config(format!(
            "the audit public key must be 64 hex digits (data/audit-public.key), not {audit_public_key:?}"
        )));
    }
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(StackError::Config(format!(
            "{} is not empty: a backup goes into a new folder",
            out.display()
        )));
    }
    // The whole history is in it: readable by its owner only.
    let streams_dir = out.join("streams");
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&streams_dir)
            .map_err(|e| StackError::io(format!("creating {}", streams_dir.display()), e))?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StackError::io(format!("protecting {}", out.display()), e))?;
    }
    let js = async_nats::jetstream::new(client.clone());
    let names = {
        use futures::TryStreamExt as _;
        js.stream_names()
            .try_collect::<Vec<String>>()
            .await
            .map_err(|e| StackError::Config(format!("listing the streams: {e}")))?
    };
    let server = serde_json::json!({
        "version": client.server_info().version,
        "name": client.server_info().server_name,
        "cluster": client.server_info().cluster,
    });
    let started_at = Utc::now();
    let mut streams = Vec::new();
    for name in backup_order(names) {
        let file = format!("streams/{name}.tar.s2");
        let path = out.join(&file);
        let taken_at = Utc::now();
        let began = Instant::now();
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await
            .map_err(|e| StackError::io(format!("creating {}", path.display()), e))?;
        progress.stream(&name, 0);
        let taken =
            lienthong_bus::snapshot::take(client, "$JS.API", &name, &mut f, &|b| progress.bytes(b))
                .await?;
        f.sync_all()
            .await
            .map_err(|e| StackError::io(format!("writing {}", path.display()), e))?;
        progress.done(&name, taken.bytes, began.elapsed().as_secs_f64());
        streams.push(StreamPart {
            name,
            file,
            bytes: taken.bytes,
            sha256: taken.sha256,
            taken_at,
            config: taken.config,
            state: taken.state,
        });
    }
    let secrets = match secrets_from {
        Some(from) => Some(secrets::seal(from.data, from.recipient, out)?),
        None => None,
    };
    let manifest = Manifest {
        format: FORMAT,
        started_at,
        finished_at: Utc::now(),
        server,
        audit_public_key: audit_public_key.to_string(),
        streams,
        secrets,
    };
    write_manifest(out, &manifest)?;
    Ok(manifest)
}

/// Writes the manifest last, by rename: a folder with a manifest is a whole backup.
fn write_manifest(out: &Path, manifest: &Manifest) -> Result<(), StackError> {
    let tmp = out.join(format!("{MANIFEST}.partial"));
    let text = serde_json::to_string_pretty(manifest)
        .map_err(|e| StackError::Config(format!("encoding the manifest: {e}")))?;
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| StackError::io(format!("writing {}", tmp.display()), e))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| StackError::io(format!("writing {}", tmp.display()), e))?;
    }
    std::fs::rename(&tmp, out.join(MANIFEST))
        .map_err(|e| StackError::io(format!("writing {}", out.join(MANIFEST).display()), e))
}

/// The streams of the contract and the buckets a backup of the centre must hold.
pub fn required_streams() -> Vec<String> {
    lienthong_bus::topology::streams()
        .into_iter()
        .map(|s| s.name.to_string())
        .chain(
            [
                lienthong_bus::topology::ADAPTER_STATE_BUCKET,
                lienthong_bus::topology::AGENCY_ACCESS_BUCKET,
            ]
            .iter()
            .map(|b| format!("KV_{b}")),
        )
        .collect()
}

/// Checks a file of a backup against the size and SHA-256 the manifest recorded for it.
pub fn check_file(path: &Path, bytes: u64, sha256: &str) -> Result<(), String> {
    use sha2::Digest as _;
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let n =
        std::io::copy(&mut f, &mut h).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let sha = hex::encode(h.finalize());
    if n != bytes || sha != sha256 {
        return Err(format!(
            "{} is damaged: {n} bytes, SHA-256 {sha}; the manifest recorded {bytes} bytes, {sha256}",
            path.display()
        ));
    }
    Ok(())
}

/// The path of a part's archive; refused when the manifest would point outside the folder.
pub fn part_path(dir: &Path, part: &StreamPart) -> Result<PathBuf, StackError> {
    let rel = Path::new(&part.file);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(StackError::Config(format!(
            "the manifest names {:?} for {}: not a file inside the backup",
            part.file, part.name
        )));
    }
    Ok(dir.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_the_intake_then_audit_then_the_streams() {
        let order = backup_order(
            [
                "FIELD_REPORTS",
                "AUDIT",
                "KV_ADAPTER_STATE",
                "DLQ",
                "KV_AGENCY_ACCESS",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(
            order,
            [
                "KV_ADAPTER_STATE",
                "KV_AGENCY_ACCESS",
                "AUDIT",
                "DLQ",
                "FIELD_REPORTS"
            ]
        );
    }
}
