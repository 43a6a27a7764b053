//! A backup's secrets — the data folder's `credentials/` (the roles' passwords, the ingress
//! and push tokens, the audit signing key, the pseudonymisation keys, the routes' secret,
//! the agencies' and webhooks' secrets) — only when asked, and then encrypted to a
//! recipient key with age (X25519), so that the backup can be kept where the secrets may not.
//!
//! The recipient's identity (its private key) is kept apart from the backups: with it,
//! `restore --data` puts the credentials back and the restored centre signs its checkpoints
//! with the same audit key, answers the same agencies and keeps the same pseudonyms.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::StackError;

/// The secrets' file in a backup folder.
pub const FILE: &str = "secrets.tar.age";
/// The folder, in a data folder, that holds them.
pub const FOLDER: &str = "credentials";

/// The secrets' part of a manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretsPart {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    /// The age recipient they are encrypted to.
    pub recipient: String,
    /// The files inside, relative to the data folder.
    pub files: Vec<String>,
}

fn config(msg: impl Into<String>) -> StackError {
    StackError::Config(msg.into())
}

/// Makes a new identity in `out` (0600; refused if the file exists) and returns its
/// recipient (`age1…`), what `backup --recipient` takes.
pub fn keygen(out: &Path) -> Result<String, StackError> {
    if out.exists() {
        return Err(config(format!(
            "{} exists: a key is never overwritten",
            out.display()
        )));
    }
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = format!(
        "# lienthong backup key; recipient: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    lienthong_bus::credentials::write_private(out, &text)?;
    Ok(recipient)
}

/// Reads an identity file (what [`keygen`] or `age-keygen` writes).
pub fn read_identity(path: &Path) -> Result<age::x25519::Identity, StackError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StackError::io(format!("reading the backup key {}", path.display()), e))?;
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .ok_or_else(|| config(format!("{}: no AGE-SECRET-KEY-… line", path.display())))?
        .parse()
        .map_err(|e| config(format!("{}: not an age identity: {e}", path.display())))
}

/// Encrypts `data/credentials` to `recipient` into `out/secrets.tar.age`.
pub fn seal(data: &Path, recipient: &str, out: &Path) -> Result<SecretsPart, StackError> {
    let recipient: age::x25519::Recipient = recipient.parse().map_err(|e| {
        config(format!(
            "the recipient {recipient:?} is not an age public key (age1…): {e}"
        ))
    })?;
    let source = data.join(FOLDER);
    if !source.is_dir() {
        return Err(config(format!(
            "{} is not a folder: --secrets-from takes the data folder (data/)",
            source.display()
        )));
    }
    let mut files = Vec::new();
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    for entry in walk(&source)? {
        let rel = entry
            .strip_prefix(data)
            .expect("walked under the data folder")
            .to_path_buf();
        builder
            .append_path_with_name(&entry, &rel)
            .map_err(|e| StackError::io(format!("reading {}", entry.display()), e))?;
        files.push(rel.to_string_lossy().into_owned());
    }
    let plain = builder
        .into_inner()
        .map_err(|e| StackError::io("packing the secrets", e))?;
    let sealed = age::encrypt(&recipient, &plain)
        .map_err(|e| config(format!("encrypting the secrets: {e}")))?;
    let path = out.join(FILE);
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&sealed).and_then(|_| f.sync_all()))
            .map_err(|e| StackError::io(format!("writing {}", path.display()), e))?;
    }
    Ok(SecretsPart {
        file: FILE.into(),
        bytes: sealed.len() as u64,
        sha256: hex::encode(Sha256::digest(&sealed)),
        recipient: recipient.to_string(),
        files,
    })
}

/// Every file under `dir`, in name order.
fn walk(dir: &Path) -> Result<Vec<PathBuf>, StackError> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| StackError::io(format!("reading {}", dir.display()), e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(out)
}

/// Checks the secrets' file against its recorded size and digest (without the key).
pub fn check_digest(dir: &Path, part: &SecretsPart) -> Result<(), String> {
    super::check_file(&dir.join(FILE), part.bytes, &part.sha256)
}

/// Decrypts the backup's secrets with `identity`: each file's path (relative to the data
/// folder) and contents. Its digest is checked first.
pub fn open(
    dir: &Path,
    part: &SecretsPart,
    identity: &age::x25519::Identity,
) -> Result<Vec<(PathBuf, Vec<u8>)>, StackError> {
    check_digest(dir, part).map_err(config)?;
    let path = dir.join(FILE);
    let sealed = std::fs::read(&path)
        .map_err(|e| StackError::io(format!("reading {}", path.display()), e))?;
    let plain = age::decrypt(identity, &sealed).map_err(|e| {
        config(format!(
            "the secrets cannot be decrypted with this key ({e}); they were encrypted to {}",
            part.recipient
        ))
    })?;
    let mut archive = tar::Archive::new(plain.as_slice());
    let mut out = Vec::new();
    for entry in archive
        .entries()
        .map_err(|e| StackError::io("reading the secrets", e))?
    {
        let mut entry = entry.map_err(|e| StackError::io("reading the secrets", e))?;
        let rel = entry
            .path()
            .map_err(|e| StackError::io("reading the secrets", e))?
            .into_owned();
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            || !rel.starts_with(FOLDER)
        {
            return Err(config(format!(
                "the secrets hold {}: not a file of {FOLDER}/",
                rel.display()
            )));
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| StackError::io("reading the secrets", e))?;
        out.push((rel, bytes));
    }
    Ok(out)
}

/// Writes decrypted secrets into `data` (0600 files, 0700 folders). A file that exists with
/// other contents is refused, and then nothing is written.
pub fn put_back(data: &Path, files: &[(PathBuf, Vec<u8>)]) -> Result<usize, StackError> {
    let differing: Vec<String> = files
        .iter()
        .filter(|(rel, bytes)| std::fs::read(data.join(rel)).is_ok_and(|have| &have != bytes))
        .map(|(rel, _)| rel.display().to_string())
        .collect();
    if !differing.is_empty() {
        return Err(config(format!(
            "{} already holds other secrets ({}): restore into a new data folder",
            data.display(),
            differing.join(", ")
        )));
    }
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    for (rel, bytes) in files {
        let path = data.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| StackError::io(format!("creating {}", parent.display()), e))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| {
                use std::os::unix::fs::PermissionsExt as _;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                f.write_all(bytes)
            })
            .map_err(|e| StackError::io(format!("writing {}", path.display()), e))?;
    }
    Ok(files.len())
}

/// The audit signing key among the secrets, as its public key's hex digits.
pub fn audit_public_key(files: &[(PathBuf, Vec<u8>)]) -> Option<String> {
    let (_, bytes) = files
        .iter()
        .find(|(rel, _)| rel.ends_with("audit-signing.key"))?;
    let digits = String::from_utf8_lossy(bytes).trim().to_string();
    let key: [u8; 32] = hex::decode(digits).ok()?.try_into().ok()?;
    Some(hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&key)
            .verifying_key()
            .to_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_back_only_with_the_key() {
        let data = tempfile::tempdir().unwrap();
        let creds = data.path().join(FOLDER);
        std::fs::create_dir_all(creds.join("agencies")).unwrap();
        std::fs::write(creds.join("operator.env"), "NATS_PASSWORD=s3cret\n").unwrap();
        std::fs::write(creds.join("agencies/ioc.json"), "{}").unwrap();
        let keys = tempfile::tempdir().unwrap();
        let recipient = keygen(&keys.path().join("k")).unwrap();
        assert!(keygen(&keys.path().join("k")).is_err(), "never overwritten");
        let out = tempfile::tempdir().unwrap();
        let part = seal(data.path(), &recipient, out.path()).unwrap();
        let sealed = std::fs::read(out.path().join(FILE)).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"), "encrypted");
        let files = open(
            out.path(),
            &part,
            &read_identity(&keys.path().join("k")).unwrap(),
        )
        .unwrap();
        assert_eq!(files.len(), 2);
        let other = age::x25519::Identity::generate();
        let e = open(out.path(), &part, &other).unwrap_err().to_string();
        assert!(e.contains("cannot be decrypted"), "{e}");
        let target = tempfile::tempdir().unwrap();
        assert_eq!(put_back(target.path(), &files).unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(target.path().join("credentials/operator.env")).unwrap(),
            "NATS_PASSWORD=s3cret\n"
        );
        // Again: the same contents are fine; other contents are refused.
        put_back(target.path(), &files).unwrap();
        std::fs::write(target.path().join("credentials/operator.env"), "x").unwrap();
        assert!(put_back(target.path(), &files).is_err());
    }
}
