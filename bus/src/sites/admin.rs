//! Registering sites on the hub (the operator's side of `lienthong site add|remove|list`):
//! the record in `AGENCY_ACCESS`, waiting for every server's agent to apply it, and a ward's
//! sources in the hub's intake.

use std::time::{Duration, Instant};

use async_nats::jetstream;

use super::{SiteCertificate, SiteKind, SiteRecord};
use crate::agencies::agent::{applied_records, digest, read_access, Access};
use crate::error::{retrying, BusError, Result};
use crate::topology::AGENCY_ACCESS_BUCKET;

/// How long the servers' agents may take to apply a change.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A site just registered, with the password of its leaf link (shown once; none for a site
/// known by certificate).
pub struct Registered {
    pub record: SiteRecord,
    pub password: Option<String>,
    /// Sources added to the hub's streams (a ward's; 0 when it was already a source).
    pub sources_added: usize,
}

/// The sites and agencies' hashes as the bucket holds them now.
pub async fn access(js: &jetstream::Context) -> Result<Access> {
    retrying(|| read_access(js)).await
}

/// Registers site `name`: checks its name and domain (unique among the sites; a site
/// registered again keeps its domain and kind), records it with a new password — or, given
/// its certificate, by the certificate's subject and key (no password at all) —, waits until
/// every server applies it, and for a ward adds its sources to the hub's streams. Registering
/// again replaces the password or certificate: a link open with the old certificate is
/// closed at once.
pub async fn register(
    js: &jetstream::Context,
    name: &str,
    domain: &str,
    kind: SiteKind,
    certificate: Option<SiteCertificate>,
) -> Result<Registered> {
    super::check_name(name)?;
    super::check_domain(domain)?;
    let sites = access(js).await?.sites;
    if let Some(other) = sites.iter().find(|s| s.domain == domain && s.name != name) {
        return Err(BusError::Config(format!(
            "domain {domain} is site {}'s; give {name} its own",
            other.name
        )));
    }
    if let Some(same) = sites.iter().find(|s| s.name == name) {
        if same.domain != domain || same.kind != kind {
            return Err(BusError::Config(format!(
                "site {name} is registered as a {:?} with domain {}; `lienthong site remove {name}` first to change it",
                same.kind, same.domain
            )));
        }
    }
    if let Some(c) = &certificate {
        let agencies = access(js).await?.agencies;
        let other = sites
            .iter()
            .filter(|s| s.name != name)
            .filter_map(|s| s.certificate.as_ref().map(|o| (s.name.clone(), o)))
            .chain(
                agencies
                    .iter()
                    .filter_map(|(a, h)| h.site_certificate.as_ref().map(|o| (a.clone(), o))),
            )
            .find(|(_, o)| o.subject == c.subject || o.pin == c.pin);
        if let Some((other, _)) = other {
            // Two users of one subject: nats-server would refuse the whole configuration.
            return Err(BusError::Config(format!(
                "that certificate (subject {}) is {other}'s site's; give {name} its own",
                c.subject
            )));
        }
    }
    let password = certificate.is_none().then(crate::credentials::new_password);
    // A new ward's account first, on every server; only then the bus's imports from it
    // (see [`SiteRecord::imported`]). A site registered again keeps what it had.
    let known = sites.iter().any(|s| s.name == name);
    let mut record = SiteRecord {
        name: name.into(),
        domain: domain.into(),
        password: match &password {
            Some(p) => crate::roles::hash_password(p)?,
            None => String::new(),
        },
        kind,
        certificate,
        imported: known || kind != SiteKind::Ward,
    };
    put_record(js, &record).await?;
    wait_applied(js).await?;
    if !record.imported {
        record.imported = true;
        put_record(js, &record).await?;
        wait_applied(js).await?;
    }
    let sources_added = match kind {
        SiteKind::Ward => set_sources(js, name, Some(&record)).await?,
        SiteKind::Witness | SiteKind::Standby => 0,
    };
    Ok(Registered {
        record,
        password,
        sources_added,
    })
}

/// Unregisters site `name`: its sources first (the hub keeps what it sourced), then its
/// record; waits until every server applies it.
pub async fn unregister(js: &jetstream::Context, name: &str) -> Result<()> {
    super::check_name(name)?;
    if !access(js).await?.sites.iter().any(|s| s.name == name) {
        return Err(BusError::Config(format!(
            "no site {name} (lienthong site list)"
        )));
    }
    set_sources(js, name, None).await?;
    retrying(|| async {
        bucket(js)
            .await?
            .delete(super::key(name))
            .await
            .map_err(|e| BusError::nats(format!("removing site {name}"), e))
    })
    .await?;
    wait_applied(js).await
}

/// Sets (`Some`) or clears (`None`) the certificate of agency `agency`'s site: with one, the
/// site links as the agency by mutual TLS (no password on the wire). Waits until every
/// server applies it; a link open with a certificate no longer registered is closed then.
pub async fn set_agency_site(
    js: &jetstream::Context,
    agency: &str,
    certificate: Option<SiteCertificate>,
) -> Result<()> {
    crate::agencies::check_name(agency)?;
    let access = access(js).await?;
    let Some(current) = access.agencies.get(agency) else {
        return Err(BusError::Config(format!(
            "no agency {agency}: `lienthong agency add {agency} --streams …` first"
        )));
    };
    if certificate.is_none() && current.site_certificate.is_none() {
        return Err(BusError::Config(format!(
            "agency {agency} has no site registered by certificate"
        )));
    }
    if let Some(c) = &certificate {
        let taken = access.sites.iter().any(|s| {
            s.certificate
                .as_ref()
                .is_some_and(|o| o.subject == c.subject || o.pin == c.pin)
        }) || access.agencies.iter().any(|(name, h)| {
            name != agency
                && h.site_certificate
                    .as_ref()
                    .is_some_and(|o| o.subject == c.subject || o.pin == c.pin)
        });
        if taken {
            return Err(BusError::Config(format!(
                "that certificate (subject {}) is another site's; give {agency}'s site its own",
                c.subject
            )));
        }
    }
    let mut hashes = current.clone();
    hashes.site_certificate = certificate;
    let value: bytes::Bytes = serde_json::to_vec(&hashes).expect("serialises").into();
    retrying(|| async {
        bucket(js)
            .await?
            .put(agency, value.clone())
            .await
            .map(|_| ())
            .map_err(|e| BusError::nats(format!("recording agency {agency}'s site"), e))
    })
    .await?;
    wait_applied(js).await
}

/// The servers of the hub: those holding the registry's bucket (a single server: none named).
async fn hub_servers(js: &jetstream::Context) -> Result<Vec<String>> {
    let mut stream = js
        .get_stream(format!("KV_{AGENCY_ACCESS_BUCKET}"))
        .await
        .map_err(|e| BusError::nats("reading the registry's bucket", e))?;
    let info = stream
        .info()
        .await
        .map_err(|e| BusError::nats("reading the registry's bucket", e))?;
    Ok(info
        .cluster
        .as_ref()
        .map(|c| {
            c.leader
                .iter()
                .cloned()
                .chain(c.replicas.iter().map(|r| r.name.clone()))
                .collect()
        })
        .unwrap_or_default())
}

async fn put_record(js: &jetstream::Context, record: &SiteRecord) -> Result<()> {
    let value: bytes::Bytes = serde_json::to_vec(record).expect("serialises").into();
    retrying(|| async {
        bucket(js)
            .await?
            .put(super::key(&record.name), value.clone())
            .await
            .map(|_| ())
            .map_err(|e| BusError::nats(format!("recording site {}", record.name), e))
    })
    .await
}

async fn bucket(js: &jetstream::Context) -> Result<jetstream::kv::Store> {
    js.get_key_value(AGENCY_ACCESS_BUCKET).await.map_err(|e| {
        BusError::nats(
            format!("opening {AGENCY_ACCESS_BUCKET} (the operator's bucket: is this the operator's --env?)"),
            e,
        )
    })
}

/// Adds (`record`) or removes (`None`) ward site `name`'s sources in the hub's intake (at
/// as many replicas as the hub's streams), from which the admission takes its events into
/// the central streams; returns how many of the ward's streams are sourced (0 when nothing
/// changed). Sources of the site that a hub set up before the intake had in its central
/// streams are removed: what they brought is kept, and what the intake brings again is
/// dropped by its message id within the duplicate window.
pub async fn set_sources(
    js: &jetstream::Context,
    name: &str,
    record: Option<&SiteRecord>,
) -> Result<usize> {
    let mut replicas = 1;
    for spec in super::ward_streams() {
        replicas = retrying(|| async {
            let nats = |what: &str, e: &dyn std::fmt::Display| {
                BusError::nats(format!("{what} {}", spec.name), e.to_string())
            };
            let mut stream = js
                .get_stream(spec.name)
                .await
                .map_err(|e| nats("opening stream (provision the hub first)", &e))?;
            let mut config = stream
                .info()
                .await
                .map_err(|e| nats("reading stream", &e))?
                .config
                .clone();
            let replicas = config.num_replicas;
            let Some(sources) = config.sources.as_mut() else {
                return Ok(replicas);
            };
            if !sources.iter().any(|s| super::is_from(s, name)) {
                return Ok(replicas);
            }
            sources.retain(|s| !super::is_from(s, name));
            js.update_stream(config)
                .await
                .map_err(|e| nats("changing the sources of", &e))?;
            Ok(replicas)
        })
        .await?;
    }
    let changed = super::intake::set_sources(js, name, record, replicas).await?;
    Ok(match (changed, record) {
        (true, Some(_)) => super::ward_streams().len(),
        _ => 0,
    })
}

/// Waits until every server's agent applies the sites as they are now.
pub async fn wait_applied(js: &jetstream::Context) -> Result<()> {
    let want = digest(&access(js).await?);
    let start = Instant::now();
    loop {
        // A server reloading answers nothing for a moment: that is "not yet". Every server
        // of the hub must have applied it, also one whose agent has not recorded anything
        // yet: the servers holding the registry's bucket (all of a hub's nodes) are named.
        let records = applied_records(js).await.unwrap_or_default();
        let servers = hub_servers(js).await.unwrap_or_default();
        if !records.is_empty()
            && records.values().all(|a| a.access_digest == want)
            && servers.iter().all(|s| records.contains_key(s))
        {
            return Ok(());
        }
        if start.elapsed() > APPLY_TIMEOUT {
            return Err(BusError::Unavailable {
                operation: "applying the sites".into(),
                attempts: 1,
                reason: format!(
                    "not every server applied them in {} s; is each server's configuration agent running (`lienthong up` runs one)?",
                    APPLY_TIMEOUT.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How far the hub's streams have sourced one ward.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceState {
    pub stream: String,
    /// Messages still to source, as the hub last saw it.
    pub lag: u64,
    /// Seconds since the source was last active (`None`: not connected).
    pub active_seconds_ago: Option<f64>,
}

/// How far the hub's intake has sourced ward `site`, stream by stream.
pub async fn sourcing(js: &jetstream::Context, site: &SiteRecord) -> Result<Vec<SourceState>> {
    super::intake::sourcing(js, site).await
}
