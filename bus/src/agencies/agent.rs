//! The configuration agent: keeps one server's accounts in line with the agency registry.
//!
//! It runs beside each server (in `lienthong up`, and in every node of a cluster), as the
//! operator for reading the registry and as the system account's user for reloading. It
//! watches `AGENCIES` and `AGENCY_ACCESS`; on any change it renders `accounts.conf` — the
//! roles' accounts as the server was started with, plus one account per agency — writes it
//! if it differs, asks the server to reload (`$SYS.REQ.SERVER.<id>.RELOAD`), and records in
//! `AGENCY_ACCESS` the registry sequence the server now applies (`applied.<server>`), which
//! the `agency` commands wait for. A reload closes the connections of users that no longer
//! exist or whose password changed: that is how revocation and rotation cut agencies off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::accounts::{add_agencies, AccessHashes};
use super::AgencyRegistry;
use crate::error::{BusError, Result};
use crate::reader::StreamReader;
use crate::registry::{AGENCIES, REGISTRY};
use crate::roles::{parse_accounts, render_accounts, AccountsConfig, BUS_ACCOUNT};
use crate::sites::SiteRecord;
use crate::topology::AGENCY_ACCESS_BUCKET;

/// How often the agent looks for changes.
pub const POLL: Duration = Duration::from_millis(500);

/// The key under which a server's agent records what it applied.
pub fn applied_key(server: &str) -> String {
    format!("applied.{server}")
}

/// What a server applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The last `AGENCIES` sequence in its configuration.
    pub registry_sequence: u64,
    /// A digest of the agencies' hashes in it.
    pub access_digest: String,
    /// The last `REGISTRY` sequence in its configuration (subsystems registered on the
    /// running bus: their publishers, and every role's permissions on their streams).
    #[serde(default)]
    pub subsystems_sequence: u64,
}

/// Keeps one server's agency accounts in line with the registry.
pub struct Agent {
    /// The accounts the server was started with (the roles'), without agencies.
    base: AccountsConfig,
    path: PathBuf,
    operator: jetstream::Context,
    reader: StreamReader,
    system: async_nats::Client,
    applied: Option<Applied>,
    /// The hashes as last read, with the bucket's sequence then (read again only when it
    /// moved: listing a bucket's keys creates a consumer on the server).
    hashes: Option<(u64, Access)>,
    /// The server's leaf port maps sites' certificates (mutual TLS), as its own
    /// configuration says: sites registered by certificate are rendered. Off: they are left
    /// out (a user with no password must never be offered where certificates are not
    /// mapped: nats-server would take an empty password for it).
    certificates: bool,
    /// Written but not yet in force: the accounts whose leaf links are to be closed once
    /// the server has reloaded (`None`: nothing pending).
    pending: Option<Vec<String>>,
}

/// What `AGENCY_ACCESS` holds for the servers' configuration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Access {
    /// Each agency's password hashes.
    pub agencies: BTreeMap<String, AccessHashes>,
    /// The ward sites.
    pub sites: Vec<SiteRecord>,
    /// The password hashes of registered subsystems' publishing roles, by
    /// `<role>.<attempt>` (the registration names the attempt in force).
    pub publishers: BTreeMap<String, String>,
}

impl Agent {
    /// For the server whose generated configuration is `accounts_path`; `operator` reads
    /// the registry, `system` (the system account's user) reloads.
    pub fn new(
        accounts_path: &Path,
        operator: async_nats::Client,
        system: async_nats::Client,
    ) -> Result<Self> {
        let text = std::fs::read_to_string(accounts_path)
            .map_err(|e| BusError::io(format!("reading {}", accounts_path.display()), e))?;
        let mut base = parse_accounts(&text)?;
        base.retain(|name, _| !name.starts_with(super::PREFIX));
        if let Some(bus) = base.get_mut(BUS_ACCOUNT) {
            bus.exports.clear();
        }
        crate::sites::add_sites(&mut base, &[]);
        Ok(Self {
            base,
            path: accounts_path.to_path_buf(),
            reader: StreamReader::new(operator.clone(), crate::access::Refusals::none()),
            operator: jetstream::new(operator),
            system,
            applied: None,
            hashes: None,
            // The server's own configuration decides, not a flag: `nats.conf` beside the
            // accounts file.
            certificates: std::fs::read_to_string(accounts_path.with_file_name("nats.conf"))
                .is_ok_and(|conf| crate::server::leaf_port_maps_certificates(&conf)),
            pending: None,
        })
    }

    /// The sites this server renders: those known by certificate only where it maps them.
    fn sites(&self, access: &Access) -> Vec<SiteRecord> {
        access
            .sites
            .iter()
            .filter(|s| {
                let usable = s.certificate.is_none() || self.certificates;
                if !usable {
                    warn!(
                        site = %s.name,
                        "site registered by certificate, but this server's leaf port does not use TLS: it cannot link"
                    );
                }
                usable
            })
            .cloned()
            .collect()
    }

    /// The agencies' hashes and the sites, read again only when the bucket changed.
    async fn current_hashes(&mut self) -> Result<Access> {
        let seq = self
            .reader
            .last_sequence(&format!("KV_{AGENCY_ACCESS_BUCKET}"))
            .await?;
        if let Some((at, h)) = &self.hashes {
            if *at == seq {
                return Ok(h.clone());
            }
        }
        let h = read_access(&self.operator).await?;
        self.hashes = Some((seq, h.clone()));
        Ok(h)
    }

    /// The accounts the registry asks for now, and what they apply.
    pub async fn render(&mut self) -> Result<(AccountsConfig, Applied)> {
        let registry = AgencyRegistry::load(&self.reader, None).await?;
        let access = self.current_hashes().await?;
        let mut accounts = self.base.clone();
        let agencies: Vec<_> = registry.agencies.values().collect();
        // Agencies' sites known by certificate only where this server maps certificates.
        let mut hashes = access.agencies.clone();
        if !self.certificates {
            for h in hashes.values_mut() {
                h.site_certificate = None;
            }
        }
        let subsystems_sequence = crate::registry::live::load(&self.reader).await?;
        // Each registered publisher with the credentials its registration records.
        let publishers: BTreeMap<String, String> = crate::registry::live::registrations()
            .iter()
            .filter_map(|r| {
                let hash = access
                    .publishers
                    .get(&format!("{}.{}", r.role, r.credentials))?;
                Some((r.role.clone(), hash.clone()))
            })
            .collect();
        crate::roles::apply_registry(&mut accounts, &publishers);
        add_agencies(&mut accounts, &agencies, &hashes);
        crate::sites::add_sites(&mut accounts, &self.sites(&access));
        let at = Applied {
            registry_sequence: registry.sequence,
            access_digest: digest(&access),
            subsystems_sequence,
        };
        Ok((accounts, at))
    }

    /// Applies the registry if it changed since the last time: writes, reloads, records.
    /// Returns whether the server's configuration changed.
    pub async fn apply(&mut self) -> Result<bool> {
        let now = Applied {
            registry_sequence: self.reader.last_sequence(AGENCIES.name).await?,
            access_digest: digest(&self.current_hashes().await?),
            subsystems_sequence: self.reader.last_sequence(REGISTRY.name).await?,
        };
        if self.applied.as_ref() == Some(&now) {
            return Ok(false);
        }
        let (accounts, at) = self.render().await?;
        let text = render_accounts(&accounts)?;
        let old = std::fs::read_to_string(&self.path).ok();
        let changed = old.as_deref() != Some(text.as_str());
        if changed {
            // nats-server does not wire the service imports of an account that a reload
            // creates (they answer "no responders" until a restart), while imports added to
            // an existing account work. So new accounts come first without imports, then
            // everything.
            let current = old
                .as_deref()
                .and_then(|t| parse_accounts(t).ok())
                .unwrap_or_else(|| self.base.clone());
            let mut first = current.clone();
            for (name, account) in accounts.iter().filter(|(n, _)| !current.contains_key(*n)) {
                let mut bare = account.clone();
                bare.imports.clear();
                first.insert(name.clone(), bare);
            }
            if first != current {
                self.write(&render_accounts(&first)?)?;
                self.reload().await?;
            }
            // What this change needs once written: a reload, and the leaf links to close.
            // Kept until both succeed (a failure is tried again at the next pass, though the
            // file is then already up to date).
            let previous = old
                .as_deref()
                .and_then(|t| parse_accounts(t).ok())
                .unwrap_or_else(|| self.base.clone());
            let mut close = changed_leaf_accounts(&previous, &accounts);
            if let Some(earlier) = self.pending.take() {
                close.extend(earlier);
            }
            close.sort();
            close.dedup();
            self.pending = Some(close);
            self.write(&text)?;
        }
        if let Some(close) = self.pending.clone() {
            self.reload().await?;
            // Leaf links to close, on every server of the cluster:
            // - nats-server keeps a leaf link open when its user changes or goes at a reload:
            //   a site removed, or registered again with a new certificate or password, would
            //   keep its link;
            // - a link made while another server did not know its account yet lost its
            //   interest on that server (the route drops it as "unknown account") and would
            //   never source from there: each server that creates the account closes the
            //   account's links, so that they link again once every server knows it.
            // A site still registered links again at once, with what it is registered by.
            if !close.is_empty() {
                self.close_leaf_links(&close).await?;
            }
            self.pending = None;
            info!(
                agencies = accounts
                    .keys()
                    .filter(|a| a.starts_with(super::PREFIX))
                    .count(),
                registry_sequence = at.registry_sequence,
                "server configuration reloaded with the agency registry"
            );
        }
        self.record(&at).await?;
        self.applied = Some(at);
        Ok(changed)
    }

    fn write(&self, text: &str) -> Result<()> {
        let tmp = self.path.with_extension("conf.new");
        crate::credentials::write_private(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| BusError::io(format!("replacing {}", self.path.display()), e))
    }

    /// Closes the leaf links bound to `accounts` on every server of the cluster (`LEAFZ` of
    /// all servers, then `KICK` each on its server).
    async fn close_leaf_links(&self, accounts: &[String]) -> Result<()> {
        let inbox = self.system.new_inbox();
        let mut answers = self
            .system
            .subscribe(inbox.clone())
            .await
            .map_err(|e| BusError::nats("listing the servers' leaf links", e))?;
        self.system
            .publish_with_reply(
                "$SYS.REQ.SERVER.PING.LEAFZ",
                inbox,
                Bytes::from_static(b"{}"),
            )
            .await
            .map_err(|e| BusError::nats("listing the servers' leaf links", e))?;
        // Every server answers at once; a second is plenty on a city's network.
        let mut leafs = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Some(m)) = tokio::time::timeout_at(until, answers.next()).await {
            let answer: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
            let server = answer["server"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for leaf in answer["data"]["leafs"].as_array().into_iter().flatten() {
                leafs.push((server.clone(), leaf.clone()));
            }
        }
        for (id, leaf) in leafs {
            let account = leaf["account"].as_str().unwrap_or_default();
            let Some(cid) = leaf["id"].as_u64() else {
                continue;
            };
            if !accounts.iter().any(|a| a == account) {
                continue;
            }
            let reply = self
                .system
                .request(
                    format!("$SYS.REQ.SERVER.{id}.KICK"),
                    serde_json::to_vec(&serde_json::json!({ "cid": cid }))
                        .expect("serialises")
                        .into(),
                )
                .await
                .map_err(|e| BusError::nats("closing a leaf link", e))?;
            let answer: serde_json::Value =
                serde_json::from_slice(&reply.payload).unwrap_or_default();
            match answer.get("error") {
                None => info!(
                    account,
                    cid,
                    server = id,
                    "leaf link closed: its registration changed, or a server just learnt its account"
                ),
                Some(e) => warn!(account, cid, "closing a leaf link: {e}"),
            }
        }
        Ok(())
    }

    /// Asks the server this agent's system user is connected to, to reload its configuration.
    async fn reload(&self) -> Result<()> {
        let id = self.system.server_info().server_id;
        let reply = self
            .system
            .request(format!("$SYS.REQ.SERVER.{id}.RELOAD"), Bytes::new())
            .await
            .map_err(|e| BusError::nats("asking the server to reload", e))?;
        let answer: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap_or_default();
        match answer.get("error") {
            None => Ok(()),
            Some(e) => Err(BusError::Server(format!(
                "the server refused to reload its configuration: {e}"
            ))),
        }
    }

    /// Records, for the `agency` commands, what this server now applies.
    async fn record(&self, at: &Applied) -> Result<()> {
        let kv = self
            .operator
            .get_key_value(AGENCY_ACCESS_BUCKET)
            .await
            .map_err(|e| BusError::nats(format!("opening KV {AGENCY_ACCESS_BUCKET}"), e))?;
        let server = self.system.server_info().server_name;
        kv.put(
            applied_key(&server),
            serde_json::to_vec(at).expect("serialises").into(),
        )
        .await
        .map_err(|e| BusError::nats("recording the applied registry", e))?;
        Ok(())
    }

    /// Applies changes until `stop` completes. A failure is logged and tried again.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.apply().await {
                warn!("applying the agency registry: {e}");
                self.applied = None;
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// The accounts of sites and agencies whose users changed, that are gone, or that are new
/// between two configurations of a server: links admitted by what no longer admits them, and
/// links made before this server knew their account.
pub fn changed_leaf_accounts(before: &AccountsConfig, after: &AccountsConfig) -> Vec<String> {
    let users = |a: &crate::roles::AccountConfig| {
        let mut u: Vec<(String, String)> = a
            .users
            .iter()
            .map(|u| (u.user.clone(), u.password.clone()))
            .collect();
        u.sort();
        u
    };
    let leafy =
        |name: &String| name.starts_with(crate::sites::PREFIX) || name.starts_with(super::PREFIX);
    let changed = before.iter().filter(|(name, account)| {
        leafy(name)
            && after
                .get(*name)
                .is_none_or(|now| users(now) != users(account))
    });
    let new = after
        .iter()
        .filter(|(name, _)| leafy(name) && !before.contains_key(*name));
    changed.chain(new).map(|(name, _)| name.clone()).collect()
}

pub fn digest(hashes: &Access) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(hashes).expect("serialises"));
    hex::encode(h.finalize())
}

/// The entries of `AGENCY_ACCESS` whose key `keep` accepts, with their values.
async fn entries(
    js: &jetstream::Context,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Bytes)>> {
    let kv = js
        .get_key_value(AGENCY_ACCESS_BUCKET)
        .await
        .map_err(|e| BusError::nats(format!("opening KV {AGENCY_ACCESS_BUCKET}"), e))?;
    let mut keys = kv
        .keys()
        .await
        .map_err(|e| BusError::nats(format!("listing KV {AGENCY_ACCESS_BUCKET}"), e))?;
    let mut out = Vec::new();
    while let Some(key) = keys.next().await {
        let key =
            key.map_err(|e| BusError::nats(format!("listing KV {AGENCY_ACCESS_BUCKET}"), e))?;
        if !keep(&key) {
            continue;
        }
        if let Some(v) = kv
            .get(&key)
            .await
            .map_err(|e| BusError::nats(format!("reading {AGENCY_ACCESS_BUCKET} {key}"), e))?
        {
            out.push((key, v));
        }
    }
    Ok(out)
}

/// Every agency's hashes, and every site's record, in `AGENCY_ACCESS`.
pub async fn read_access(operator: &jetstream::Context) -> Result<Access> {
    let site_key = |key: &str| {
        key.strip_prefix(crate::sites::KEY_PREFIX)
            .is_some_and(|s| crate::sites::check_name(s).is_ok())
    };
    let publisher_key = |key: &str| key.starts_with(crate::registry::admin::PUBLISHER_KEY_PREFIX);
    let mut out = Access::default();
    for (key, v) in entries(operator, |k| {
        super::check_name(k).is_ok() || site_key(k) || publisher_key(k)
    })
    .await?
    {
        let read =
            if let Some(role) = key.strip_prefix(crate::registry::admin::PUBLISHER_KEY_PREFIX) {
                serde_json::from_slice::<crate::registry::admin::PublisherAccess>(&v).map(|p| {
                    out.publishers.insert(role.to_string(), p.password);
                })
            } else if site_key(&key) {
                serde_json::from_slice::<SiteRecord>(&v).map(|s| out.sites.push(s))
            } else {
                serde_json::from_slice::<AccessHashes>(&v).map(|h| {
                    out.agencies.insert(key.clone(), h);
                })
            };
        if let Err(e) = read {
            warn!("AGENCY_ACCESS {key}: unreadable ({e}); left out");
        }
    }
    Ok(out)
}

/// What each server applies, from the records of their agents.
pub async fn applied_records(js: &jetstream::Context) -> Result<BTreeMap<String, Applied>> {
    Ok(entries(js, |k| k.starts_with("applied."))
        .await?
        .into_iter()
        .filter_map(|(key, v)| {
            let a = serde_json::from_slice::<Applied>(&v).ok()?;
            Some((key.strip_prefix("applied.")?.to_string(), a))
        })
        .collect())
}

/// The registry sequence each server applies, from the records of their agents.
pub async fn applied_by_servers(js: &jetstream::Context) -> Result<BTreeMap<String, u64>> {
    Ok(applied_records(js)
        .await?
        .into_iter()
        .map(|(server, a)| (server, a.registry_sequence))
        .collect())
}
