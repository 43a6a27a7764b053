//! Roles, credentials and connecting to NATS.
//!
//! The server knows one user per role ([`crate::roles`]), each password as a bcrypt hash in
//! the generated `accounts.conf`. `lienthong up` generates random passwords on first run and
//! writes one file per role, `data/credentials/<role>.env`, holding `NATS_URL`, `NATS_USER`
//! and `NATS_PASSWORD` — the variables every command reads, like the `nats` CLI. Nothing
//! secret is in the repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::distr::{Alphanumeric, SampleString};

use crate::error::{BusError, Result};

/// Passwords of every role, and the CA that clients verify the server with.
#[derive(Clone)]
pub struct CredentialSet {
    passwords: BTreeMap<String, String>,
    /// The CA of the servers' certificates (`NATS_CA` in every file), when they use TLS.
    ca: Option<PathBuf>,
}

impl std::fmt::Debug for CredentialSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialSet")
            .field("roles", &self.passwords.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CredentialSet {
    /// Fresh random passwords for every role.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        Self {
            passwords: crate::roles::role_names()
                .into_iter()
                .map(|r| (r, Alphanumeric.sample_string(&mut rng, 32)))
                .collect(),
            ca: None,
        }
    }

    /// Reads `<dir>/<role>.env` for every role, generating (and writing) what is missing.
    pub fn load_or_generate(dir: &Path, url: &str) -> Result<Self> {
        Self::load_or_generate_with(dir, url, None)
    }

    /// [`Self::load_or_generate`] for servers with TLS: every file names `ca` (made absolute)
    /// as `NATS_CA`, and connecting verifies the server's certificate with it.
    pub fn load_or_generate_with(dir: &Path, url: &str, ca: Option<&Path>) -> Result<Self> {
        let fresh = Self::generate();
        let mut passwords = BTreeMap::new();
        for role in crate::roles::role_names() {
            let file = dir.join(format!("{role}.env"));
            let existing = if file.exists() {
                read_env_file(&file)?.get("NATS_PASSWORD").cloned()
            } else {
                None
            };
            match existing {
                Some(p) => {
                    passwords.insert(role, p);
                }
                None => {
                    let p = fresh.passwords[&role].clone();
                    passwords.insert(role, p);
                }
            }
        }
        let ca = ca
            .map(|p| {
                std::path::absolute(p)
                    .map_err(|e| BusError::io(format!("resolving {}", p.display()), e))
            })
            .transpose()?;
        let set = Self { passwords, ca };
        // Written every time: new roles get a file, and the URL stays current.
        set.write(dir, url)?;
        Ok(set)
    }

    pub fn password(&self, role: &str) -> Option<&str> {
        self.passwords.get(role).map(String::as_str)
    }

    /// Settings to connect as `role`.
    pub fn settings(&self, role: &str, url: &str) -> Result<ConnectSettings> {
        let password = self.password(role).ok_or_else(|| {
            BusError::Config(format!(
                "unknown role {role}; roles: {}",
                crate::roles::role_names().join(", ")
            ))
        })?;
        Ok(ConnectSettings {
            url: url.to_string(),
            user: Some(role.to_string()),
            password: Some(password.to_string()),
            creds: None,
            inbox_prefix: Some(crate::roles::inbox(role)),
            ca: self.ca.clone(),
            ..Default::default()
        })
    }

    /// The CA clients verify the servers with, when they use TLS.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// The server's accounts, each role's password as a bcrypt hash.
    pub fn accounts(&self) -> Result<crate::roles::AccountsConfig> {
        crate::roles::accounts(&crate::roles::roles(), |role| {
            let password = self
                .password(role)
                .ok_or_else(|| BusError::Config(format!("no password for the role {role}")))?;
            crate::roles::hash_password(password)
        })
    }

    /// Writes one `<role>.env` per role (mode 0600).
    pub fn write(&self, dir: &Path, url: &str) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| BusError::io(format!("creating {}", dir.display()), e))?;
        for (role, password) in &self.passwords {
            let path = dir.join(format!("{role}.env"));
            let mut body = format!(
                "# Lienthong credentials for the role `{role}`. Generated; keep private.\n\
                 NATS_URL={url}\nNATS_USER={role}\nNATS_PASSWORD={password}\n\
                 NATS_INBOX_PREFIX={inbox}\n",
                inbox = crate::roles::inbox(role),
            );
            if let Some(ca) = &self.ca {
                body.push_str(&format!("NATS_CA={}\n", ca.display()));
            }
            write_private(&path, &body)?;
        }
        Ok(())
    }
}

/// A fresh password: 32 random alphanumerics (~190 bits).
pub fn new_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// A secret kept in a file (mode 0600), generated (40 random alphanumerics) on first use: push
/// tokens, admin tokens, pseudonymisation keys of a local run.
pub fn secret_file(path: &Path) -> Result<String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        if !s.trim().is_empty() {
            return Ok(s.trim().to_string());
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| BusError::io(format!("creating {}", dir.display()), e))?;
    }
    let s = Alphanumeric.sample_string(&mut rand::rng(), 40);
    write_private(path, &s)?;
    Ok(s)
}

/// Compares two secrets without revealing, by timing, where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, body: &str) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .map_err(|e| BusError::io(format!("writing {}", path.display()), e))?;
    // A file that was there already keeps its mode when opened: set it, before writing.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| BusError::io(format!("protecting {}", path.display()), e))?;
    }
    f.write_all(body.as_bytes())
        .map_err(|e| BusError::io(format!("writing {}", path.display()), e))
}

/// Rewrites the `NATS_URL` of a credentials file (the server moved to another port).
pub fn rewrite_url(path: &Path, url: &str) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let body: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("NATS_URL=") {
                format!("NATS_URL={url}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    write_private(path, &body)
}

/// Parses a `KEY=VALUE` file (blank lines and `#` comments ignored, optional quotes).
pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BusError::io(format!("reading credentials file {}", path.display()), e))?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=').ok_or_else(|| {
            BusError::Config(format!("{}:{}: expected KEY=VALUE", path.display(), n + 1))
        })?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        out.insert(k.trim().to_string(), v.to_string());
    }
    Ok(out)
}

/// How to reach NATS and as whom.
#[derive(Clone, Default)]
pub struct ConnectSettings {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// A `.creds` file (JWT + nkey), as `NATS_CREDS`.
    pub creds: Option<PathBuf>,
    /// The prefix of reply subjects (`NATS_INBOX_PREFIX`); `_INBOX.<user>` when not given,
    /// the only inbox each role may subscribe to.
    pub inbox_prefix: Option<String>,
    /// The CA that the server's certificate must come from (`NATS_CA`, PEM). With it, the
    /// connection requires TLS.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (`NATS_CERT`, `NATS_KEY`), where one is used.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl std::fmt::Debug for ConnectSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectSettings")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("creds", &self.creds)
            .field("inbox_prefix", &self.inbox_prefix)
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

/// How often a client pings its server; after two unanswered pings it takes another.
pub const CLIENT_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The default server address.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

impl ConnectSettings {
    /// From `NATS_URL`, `NATS_USER`, `NATS_PASSWORD`, `NATS_CREDS`, `NATS_CA`, `NATS_CERT`,
    /// `NATS_KEY` (the `nats` CLI's names); values in `env_file`
    /// (e.g. `data/credentials/auditor.env`) take precedence.
    pub fn resolve(env_file: Option<&Path>) -> Result<Self> {
        let file = match env_file {
            Some(p) => read_env_file(p)?,
            None => BTreeMap::new(),
        };
        let get = |k: &str| {
            file.get(k)
                .cloned()
                .or_else(|| std::env::var(k).ok())
                .filter(|v| !v.is_empty())
        };
        // A file's paths are read beside it (a host's bundle is copied as a whole).
        let path = |k: &str| {
            get(k).map(|v| {
                let p = PathBuf::from(v);
                let p = match env_file.and_then(Path::parent) {
                    Some(dir) if p.is_relative() && file.contains_key(k) => dir.join(p),
                    _ => p,
                };
                // Absolute: settings are handed on (written into agencies' files, given to
                // servers) to be read from elsewhere.
                std::path::absolute(&p).unwrap_or(p)
            })
        };
        Ok(Self {
            url: get("NATS_URL").unwrap_or_else(|| DEFAULT_URL.to_string()),
            user: get("NATS_USER"),
            password: get("NATS_PASSWORD"),
            creds: path("NATS_CREDS"),
            inbox_prefix: get("NATS_INBOX_PREFIX"),
            ca: path("NATS_CA"),
            cert: path("NATS_CERT"),
            key: path("NATS_KEY"),
        })
    }

    /// Whether the connection must be TLS: a `tls://` URL, or a CA or certificate given.
    pub fn requires_tls(&self) -> bool {
        self.ca.is_some()
            || self.cert.is_some()
            || self
                .url
                .split(',')
                .any(|u| u.trim().to_ascii_lowercase().starts_with("tls://"))
    }

    /// Who this connects as, for messages.
    pub fn role(&self) -> &str {
        self.user.as_deref().unwrap_or("(anonymous)")
    }

    /// Connects. Each user gets its own inbox prefix (`NATS_INBOX_PREFIX`, by default
    /// `_INBOX.<user>`), so that the server can let a role subscribe to its own replies and
    /// nothing else.
    pub async fn connect(&self, client_name: &str) -> Result<async_nats::Client> {
        Ok(self.connect_watched(client_name).await?.0)
    }

    /// [`Self::connect`], with the connection's [`Refusals`](crate::access::Refusals): what
    /// the server refuses it is reported there as soon as it happens.
    pub async fn connect_watched(
        &self,
        client_name: &str,
    ) -> Result<(async_nats::Client, crate::access::Refusals)> {
        let mut opts = match (&self.creds, &self.user, &self.password) {
            (Some(creds), _, _) => async_nats::ConnectOptions::with_credentials_file(creds.clone())
                .await
                .map_err(|e| BusError::Config(format!("NATS_CREDS {}: {e}", creds.display())))?,
            (None, Some(u), Some(p)) => {
                async_nats::ConnectOptions::with_user_and_password(u.clone(), p.clone())
            }
            _ => async_nats::ConnectOptions::new(),
        };
        let inbox = self
            .inbox_prefix
            .clone()
            .or_else(|| self.user.as_deref().map(crate::roles::inbox));
        if let Some(prefix) = inbox {
            opts = opts.custom_inbox_prefix(prefix);
        }
        if self.requires_tls() {
            opts = opts.require_tls(true);
        } else if self.password.is_some() || self.creds.is_some() {
            // A password never crosses a network in the clear, unless asked for by name.
            let insecure = std::env::var("LIENTHONG_INSECURE_PLAINTEXT").is_ok_and(|v| v == "1");
            if let Some(host) = self.url.split(',').find_map(|u| {
                url::Url::parse(u.trim())
                    .ok()
                    .and_then(|u| crate::tls::clear_beyond_loopback(&u))
            }) {
                if !insecure {
                    return Err(BusError::Config(format!(
                        "connecting as {} would send its password to {host} in the clear ({}): use a tls:// NATS_URL with NATS_CA, or set LIENTHONG_INSECURE_PLAINTEXT=1 to allow it explicitly",
                        self.role(),
                        self.url
                    )));
                }
            }
        }
        if let Some(ca) = &self.ca {
            // Read here, so a missing or wrong file is named before any connection attempt.
            crate::tls::load_certs(ca)?;
            opts = opts.add_root_certificates(ca.clone());
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                crate::tls::load_certs(cert)?;
                crate::tls::load_key(key)?;
                opts = opts.add_client_certificate(cert.clone(), key.clone());
            }
            (None, None) => {}
            _ => {
                return Err(BusError::Config(
                    "NATS_CERT and NATS_KEY go together: give both, or neither".into(),
                ))
            }
        }
        let refusals = crate::access::Refusals::new(self.role());
        let sink = refusals.clone();
        opts = opts
            .name(client_name)
            .connection_timeout(std::time::Duration::from_secs(5))
            // A server cut off by the network (no reset, only silence) is given up after a
            // few unanswered pings, and another seed taken: seconds, not the minutes of the
            // client's default.
            .ping_interval(CLIENT_PING_INTERVAL)
            .event_callback(move |event| {
                let sink = sink.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = &event {
                        // A refusal also ends the refused operation with its error (said once
                        // there); anything else the server says is worth a warning.
                        match sink.report(&e.to_string()) {
                            Some(r) => tracing::debug!("{r}"),
                            None => tracing::warn!("NATS: {e}"),
                        }
                    }
                }
            });
        // NATS_URL may list several servers (a cluster's seeds), separated by commas, as the
        // `nats` CLI takes them; the client reconnects to any of them.
        let addrs = self
            .url
            .split(',')
            .map(|u| u.trim().parse::<async_nats::ServerAddr>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| BusError::Config(format!("NATS_URL {:?}: {e}", self.url)))?;
        let client = opts.connect(addrs).await.map_err(|e| {
            let text = format!("{e:?}");
            let hint = if text.contains("UnknownIssuer") || text.contains("certificate") {
                " (the server's certificate is not from a CA this client trusts: set NATS_CA to the deployment's ca.crt)"
            } else if text.contains("TLS") && !self.requires_tls() {
                " (the server requires TLS: use a tls:// NATS_URL and set NATS_CA)"
            } else if self.user.is_none() && self.creds.is_none() && self.cert.is_none() {
                " (no NATS_USER/NATS_PASSWORD set: pass --env data/credentials/<role>.env)"
            } else {
                ""
            };
            BusError::Unavailable {
                operation: format!("connecting to {} as {}", self.url, self.role()),
                attempts: 1,
                reason: format!("{e}{hint}"),
            }
        })?;
        Ok((client, refusals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_in_constant_time() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn credentials_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = CredentialSet::load_or_generate(dir.path(), "nats://127.0.0.1:1").unwrap();
        let b = CredentialSet::load_or_generate(dir.path(), "nats://127.0.0.1:2").unwrap();
        for role in crate::roles::role_names() {
            assert_eq!(a.password(&role), b.password(&role));
            assert_eq!(a.password(&role).unwrap().len(), 32);
        }
        let s = ConnectSettings::resolve(Some(&dir.path().join("auditor.env"))).unwrap();
        assert_eq!(s.user.as_deref(), Some("auditor"));
        assert_eq!(s.url, "nats://127.0.0.1:2");
        assert_eq!(s.password.as_deref(), a.password("auditor"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("operator.env"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
    }
}

/// Who made a change, as recorded in a registry's events: control characters replaced, at
/// most 150 characters.
pub fn clean_actor(by: &str) -> String {
    by.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(150)
        .collect()
}
