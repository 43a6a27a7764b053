//! `lienthong backup verify`: a backup checked offline, without the bus it came from.
//!
//! A backup that was never restored is a hope: the check restores it into a private,
//! temporary nats-server (loopback, a free port, a store removed afterwards) and looks at
//! what came back. It reports each finding; the backup passes when there is none.

use std::path::Path;

use lienthong_audit::checkpoint::Checkpoint;
use lienthong_audit::verify::{checkpoints_from_audit, StreamReport};
use serde::Serialize;

use super::restore::{check_part, restore, Options, PrivateServers, Restored};
use super::{required_streams, Manifest, Progress};
use crate::error::StackError;

/// What the check found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub streams: usize,
    pub bytes: u64,
    /// Every stream restored, with what came back.
    pub restored: Vec<Restored>,
    /// The audited streams' hash chains against the signed checkpoints.
    pub audit: Vec<StreamReport>,
    /// What is wrong: an empty list is a good backup.
    pub problems: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the backup in `dir`: every archive against its digest, every stream of the
/// contract present, each restored into a temporary server with the messages and sequences
/// recorded, and the audited streams' chains against the checkpoints in the backup's
/// `AUDIT`, signed with the backup's audit key.
///
/// With `identity`, the secrets are decrypted too, and their audit signing key must be the
/// one whose public key the backup records.
pub async fn verify(
    dir: &Path,
    identity: Option<&age::x25519::Identity>,
    progress: &dyn Progress,
) -> Result<Report, StackError> {
    let manifest = Manifest::read(dir)?;
    let mut report = Report {
        started_at: manifest.started_at,
        streams: manifest.streams.len(),
        bytes: manifest.streams.iter().map(|p| p.bytes).sum(),
        restored: Vec::new(),
        audit: Vec::new(),
        problems: Vec::new(),
    };
    for name in required_streams() {
        if !manifest.streams.iter().any(|p| p.name == name) {
            report.problems.push(format!(
                "{name} is missing: a backup of the centre holds it"
            ));
        }
    }
    report.problems.extend(
        manifest
            .streams
            .iter()
            .filter_map(|p| check_part(dir, p).err()),
    );
    match (&manifest.secrets, identity) {
        (Some(part), Some(identity)) => match super::secrets::open(dir, part, identity) {
            Ok(files) => match super::secrets::audit_public_key(&files) {
                Some(k) if k == manifest.audit_public_key => {}
                Some(k) => report.problems.push(format!(
                    "the secrets' audit signing key is not the backup's audit key ({k} ≠ {})",
                    manifest.audit_public_key
                )),
                None => report
                    .problems
                    .push("the secrets hold no audit signing key".into()),
            },
            Err(e) => report.problems.push(e.to_string()),
        },
        (None, Some(_)) => report
            .problems
            .push("a key was given but the backup holds no secrets".into()),
        (Some(part), None) => {
            if let Err(e) = super::secrets::check_digest(dir, part) {
                report.problems.push(e);
            }
        }
        (None, None) => {}
    }
    let key = match hex::decode(&manifest.audit_public_key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
    {
        Some(k) => Some(k),
        None => {
            report.problems.push(format!(
                "the audit public key in the manifest is not one: {:?}",
                manifest.audit_public_key
            ));
            None
        }
    };
    if !report.problems.is_empty() {
        return Ok(report);
    }

    let temp = tempfile::Builder::new()
        .prefix("lienthong-backup-verify-")
        .tempdir()
        .map_err(|e| StackError::io("creating a temporary folder", e))?;
    let servers = PrivateServers::start(temp.path(), 1).await?;
    let checked = async {
        let client = servers.operator().await?;
        // One server: every stream at one replica, whatever it had.
        let one = Options { replicas: Some(1) };
        match restore(&client, dir, &manifest, &one, progress).await {
            Ok(r) => report.restored = r,
            Err(e) => {
                report.problems.push(format!("it does not restore: {e}"));
                return Ok::<_, StackError>(());
            }
        }
        let reader = lienthong_bus::StreamReader::new(client, Default::default());
        let Some(key) = key else { return Ok(()) };
        // The subsystems registered on the backed-up bus, from its own REGISTRY.
        if let Err(e) = lienthong_bus::registry::live::load(&reader).await {
            report
                .problems
                .push(format!("its subsystem registry does not read: {e}"));
        }
        for stream in lienthong_bus::registry::audited_streams() {
            let checkpoints: Vec<Checkpoint> = checkpoints_from_audit(&reader, stream).await?;
            progress.stream(&format!("{stream} (chain)"), 0);
            let r = lienthong_audit::verify_stream(&reader, stream, checkpoints, &key, &|d, _| {
                progress.bytes(d)
            })
            .await?;
            if !r.intact() {
                report.problems.push(r.to_string());
            }
            report.audit.push(r);
        }
        Ok(())
    }
    .await;
    servers.stop().await?;
    checked?;
    Ok(report)
}
