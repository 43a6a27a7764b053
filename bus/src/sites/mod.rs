//! Sites: ward and agency servers that are leaf nodes of the central one (the hub), each with
//! a JetStream domain of its own, so that they keep working while the link is down.
//!
//! - The hub's JetStream domain is [`HUB_DOMAIN`]; it listens for leaf nodes
//!   (`lienthong up --leaf-port`).
//! - A **ward site** (registered on the hub with `lienthong site add`) stores what its
//!   subsystems publish in streams of its own, named `<STREAM>_<DOMAIN>`
//!   ([`local_stream`]), capturing the contract's subjects. Its leaf connection binds to an
//!   account of its own on the hub, `site-<name>`, which holds no stream and no other user:
//!   nothing the ward publishes reaches the hub's streams by subject (so nothing is captured
//!   twice). The hub's intake ([`intake`]) **sources** the ward's streams through that
//!   account's exports — its JetStream API (`$JS.<domain>.API`), the deliveries
//!   (`lienthong.site.<name>.>`) and the flow control of its streams — which the bus account
//!   imports ([`add_sites`]); the [`admission`] lets into the central streams what passes its
//!   checks. When the link comes back, each source resumes where it stopped; the
//!   `Nats-Msg-Id` the admission derives for every event makes a repeat a no-op.
//! - An **agency site** connects as the agency (its own account on the hub) and keeps
//!   read-only mirrors of its copies of the granted streams (through `$JS.hub.API`, the
//!   deliveries under the agency's own inbox), and runs its own replay service on them.
//!
//! Ward sites' records (domain, password hash) are kept in the operator-only bucket
//! `AGENCY_ACCESS` under `site.<name>`; each server's configuration agent renders them into
//! the server's accounts, as it does the agencies'.

pub mod admin;
pub mod admission;
pub mod intake;

use async_nats::jetstream::stream;
use serde::{Deserialize, Serialize};

use crate::error::{BusError, Result};
use crate::registry;
use crate::roles::{
    AccountConfig, AccountsConfig, Export, Import, ImportSource, Permission, Permissions,
    UserConfig, BUS_ACCOUNT,
};

/// The hub's JetStream domain.
pub const HUB_DOMAIN: &str = "hub";
/// The hub's JetStream API, as sites reach it.
pub const HUB_API_PREFIX: &str = "$JS.hub.API";
/// The prefix of ward sites' accounts and users on the hub.
pub const PREFIX: &str = "site-";
/// The prefix of ward sites' records in `AGENCY_ACCESS`.
pub const KEY_PREFIX: &str = "site.";

/// What a registered site does for the hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteKind {
    /// Publishes its subsystems' events; the hub sources them into its intake and admits
    /// what passes its checks.
    #[default]
    Ward,
    /// An auditor's witness: mirrors the hub's `AUDIT` (the signed checkpoints) as they are
    /// written, on a machine the central operator does not control.
    Witness,
    /// A standby centre: mirrors every stream and bucket of the hub's bus account as they
    /// are written, on another machine, to be promoted to the centre after a disaster
    /// (`lienthong standby promote`).
    Standby,
}

impl SiteKind {
    /// Whether the hub lets this site mirror its streams (rather than source the site's).
    pub fn mirrors(self) -> bool {
        matches!(self, Self::Witness | Self::Standby)
    }
}

/// A site registered on the hub (a ward, or an auditor's witness).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    pub name: String,
    /// Its JetStream domain.
    pub domain: String,
    /// bcrypt of its leaf connection's password (empty for a site known by certificate).
    pub password: String,
    #[serde(default)]
    pub kind: SiteKind,
    /// The site's client certificate, when it links by mutual TLS: the hub maps it to the
    /// site's account by its subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<SiteCertificate>,
    /// The bus account imports the ward's API (what sourcing needs). Set only once every
    /// server has the site's account: an import makes the server subscribe, in the site's
    /// account, to the answers of the site's API, and a server that does not know that
    /// account yet drops that interest for good (nats-server: "unknown account" on the
    /// route), so that streams led there would never source the ward.
    #[serde(default = "yes")]
    pub imported: bool,
}

fn yes() -> bool {
    true
}

/// How the hub knows a site's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCertificate {
    /// Its subject (RFC 4514), the name of the site's user on the hub. Certificates from
    /// `lienthong pki issue` carry their serial number in their subject, so each issued
    /// certificate is its own identity: registering a new one ends the old one's.
    pub subject: String,
    /// SHA-256 of its public key (hex), for the record (`site list`).
    pub pin: String,
}

/// The bus's JetStream API as a witness site reaches it (only the creation of consumers on
/// `AUDIT` is imported under it).
pub const WITNESS_API_PREFIX: &str = "$JS.EGOV.API";

/// Where the hub delivers `AUDIT` to witness site `name`.
pub fn witness_deliver(name: &str) -> String {
    format!("lienthong.witness.{name}")
}

/// Where the hub delivers its streams to standby site `name`.
pub fn standby_deliver(name: &str) -> String {
    format!("lienthong.standby.{name}")
}

/// A standby site's read-only mirror of the hub's `stream` (any stream or bucket of the bus
/// account). Deletes and purges are not denied: a promotion may have to leave out what the
/// lost centre's checkpoints cover beyond what arrived (`lienthong standby promote`), and
/// takes the centre's own configuration, denials included, when it promotes.
pub fn standby_mirror_config(name: &str, stream: &str) -> stream::Config {
    let mut c = read_only_mirror(
        stream,
        format!("standby {name}: a mirror of the hub's {stream}, to be promoted after a disaster"),
        WITNESS_API_PREFIX,
        format!("{}.{stream}", standby_deliver(name)),
    );
    c.deny_delete = false;
    c.deny_purge = false;
    c
}

/// A witness site's read-only mirror of the hub's `AUDIT`.
pub fn witness_mirror_config(name: &str) -> stream::Config {
    let audit = registry::AUDIT.name;
    read_only_mirror(
        audit,
        format!("witness {name}: a read-only mirror of the hub's {audit}, kept outside the hub"),
        WITNESS_API_PREFIX,
        format!("{}.{audit}", witness_deliver(name)),
    )
}

/// A site's read-only mirror of the hub's `stream` (through `api`, delivered under
/// `deliver`): nothing deleted or purged, read by direct get.
fn read_only_mirror(
    stream: &str,
    description: String,
    api: &str,
    deliver: String,
) -> stream::Config {
    stream::Config {
        name: stream.to_string(),
        description: Some(description),
        mirror: Some(stream::Source {
            name: stream.to_string(),
            external: Some(stream::External {
                api_prefix: api.into(),
                delivery_prefix: Some(deliver),
            }),
            ..Default::default()
        }),
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        ..Default::default()
    }
}

/// The user of a site's leaf link in its own account on the hub: alone there, it may do
/// anything in it, and connect only as a leaf node (never as a client of the hub). A site
/// known by certificate is a user named by the certificate's subject, with no password:
/// nats-server admits it only through `verify_and_map` on a leaf port with TLS (and refuses
/// such a user a login by password), which is why only hubs whose leaf port maps
/// certificates render them ([`add_sites`]'s caller filters).
fn site_user(site: &SiteRecord) -> UserConfig {
    let (user, password) = match &site.certificate {
        Some(c) => (c.subject.clone(), String::new()),
        None => (account(&site.name), site.password.clone()),
    };
    UserConfig {
        user,
        password,
        permissions: Permissions {
            publish: Permission::allow([">".to_string()]),
            subscribe: Permission::allow([">".to_string()]),
        },
        allowed_connection_types: vec!["LEAFNODE".into()],
    }
}

/// The account (and the user) of ward site `name` on the hub: `site-<name>`.
pub fn account(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// The key of ward site `name`'s record in `AGENCY_ACCESS`.
pub fn key(name: &str) -> String {
    format!("{KEY_PREFIX}{name}")
}

/// Where the hub's streams receive what they source from ward site `name`.
pub fn deliver_prefix(name: &str) -> String {
    format!("lienthong.site.{name}")
}

/// A site's JetStream API as the hub reaches it.
pub fn api_prefix(domain: &str) -> String {
    format!("$JS.{domain}.API")
}

/// The name of a ward site's own stream for the contract's `stream`: `FIELD_REPORTS_PHUTHUY`
/// for domain `phuthuy`. Unique per site, so that the flow control of each source is the
/// site's own (`$JS.FC.<stream>.>`).
pub fn local_stream(stream: &str, domain: &str) -> String {
    format!("{stream}_{}", domain.to_ascii_uppercase())
}

/// The contract's streams a ward site keeps and the hub sources: every compiled subsystem's
/// and the dead letters (the audit trail and the agency and subsystem registries are central;
/// subsystems registered on the running bus publish at the centre).
pub fn ward_streams() -> Vec<crate::topology::StreamSpec> {
    crate::topology::streams()
        .into_iter()
        .filter(|s| {
            s.name == registry::DLQ.name || registry::SUBSYSTEMS.iter().any(|c| c.stream == s.name)
        })
        .collect()
}

/// A ward site's own streams: the contract's configuration under the site's names.
pub fn ward_stream_configs(domain: &str) -> Vec<stream::Config> {
    ward_streams()
        .into_iter()
        .map(|s| {
            let mut c = s.config();
            c.name = local_stream(s.name, domain);
            c.description = Some(format!(
                "{} at the site of domain {domain}; the hub's {} sources it",
                s.description, s.name
            ));
            c
        })
        .collect()
}

/// Provisions a ward site's server: its own streams and the adapters' cursors.
pub async fn provision_ward(
    js: &async_nats::jetstream::Context,
    domain: &str,
) -> Result<Vec<crate::topology::Provisioned>> {
    let mut out = crate::topology::provision_streams(js, ward_stream_configs(domain)).await?;
    out.push(
        crate::topology::provision_bucket(
            js,
            crate::topology::ADAPTER_STATE_BUCKET,
            "Adapter cursors: adapters are stateless processes",
            1,
        )
        .await?,
    );
    Ok(out)
}

/// Checks a site name: 1 to 32 of `a–z 0–9 -`, starting with a letter.
pub fn check_name(name: &str) -> Result<()> {
    crate::agencies::check_name(name).map_err(|_| {
        BusError::Config(format!(
            "site name {name:?}: use 1 to 32 of a–z 0–9 -, starting with a letter"
        ))
    })?;
    // A ward speaks for `urn:lienthong:<its name>:…`: never for the centre.
    let reserved = admission::reserved_names();
    if reserved.iter().any(|r| r == name) {
        return Err(BusError::Config(format!(
            "site name {name:?} is the centre's own namespace (urn:lienthong:{name}:…); \
             reserved: {}",
            reserved.join(", ")
        )));
    }
    Ok(())
}

/// Checks a JetStream domain: 1 to 16 of `a–z 0–9`, starting with a letter, not `hub`.
pub fn check_domain(domain: &str) -> Result<()> {
    let ok = !domain.is_empty()
        && domain.len() <= 16
        && domain.starts_with(|c: char| c.is_ascii_lowercase())
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok {
        return Err(BusError::Config(format!(
            "domain {domain:?}: use 1 to 16 of a–z 0–9, starting with a letter"
        )));
    }
    if domain == HUB_DOMAIN {
        return Err(BusError::Config(format!(
            "domain {HUB_DOMAIN:?} is the hub's; give the site its own"
        )));
    }
    Ok(())
}

/// The source, in the hub's `stream`, of ward site `site`'s own copy of it.
pub fn source(site: &SiteRecord, stream: &str) -> stream::Source {
    // Only the contract's subjects of that stream: whatever else a site's stream holds
    // stays at the site.
    let filter = ward_streams()
        .into_iter()
        .find(|s| s.name == stream)
        .map(|s| s.subject);
    stream::Source {
        name: local_stream(stream, &site.domain),
        filter_subject: filter,
        external: Some(stream::External {
            api_prefix: api_prefix(&site.domain),
            delivery_prefix: Some(format!("{}.{stream}", deliver_prefix(&site.name))),
        }),
        ..Default::default()
    }
}

/// Whether `source` (of a hub stream) comes from ward site `name`.
pub fn is_from(source: &stream::Source, name: &str) -> bool {
    source
        .external
        .as_ref()
        .and_then(|e| e.delivery_prefix.as_deref())
        .is_some_and(|d| d.starts_with(&format!("{}.", deliver_prefix(name))))
}

/// Adds every ward site's account, and the bus account's imports from them, to `accounts`.
/// Imports the bus account had from sites before are replaced.
pub fn add_sites(accounts: &mut AccountsConfig, sites: &[SiteRecord]) {
    if let Some(bus) = accounts.get_mut(BUS_ACCOUNT) {
        bus.imports.retain(|i| !from_a_site(i));
    }
    accounts.retain(|name, _| !name.starts_with(PREFIX));
    let mut imports = Vec::new();
    let mirroring: Vec<&SiteRecord> = sites.iter().filter(|s| s.kind.mirrors()).collect();
    add_mirroring(accounts, &mirroring);
    for site in sites.iter().filter(|s| s.kind == SiteKind::Ward) {
        let acc = account(&site.name);
        let to_bus = |service: Option<String>, stream: Option<String>| Export {
            service,
            stream,
            response_type: None,
            accounts: vec![BUS_ACCOUNT.into()],
        };
        let mut exports = vec![to_bus(
            None,
            Some(format!("{}.>", deliver_prefix(&site.name))),
        )];
        let import = |service: bool, subject: String| Import {
            service: service.then(|| ImportSource {
                account: acc.clone(),
                subject: subject.clone(),
            }),
            stream: (!service).then(|| ImportSource {
                account: acc.clone(),
                subject: subject.clone(),
            }),
            to: None,
        };
        let mut site_imports = vec![import(false, format!("{}.>", deliver_prefix(&site.name)))];
        for s in ward_streams() {
            // Of the site's JetStream API, only what sourcing its streams takes: creating
            // (and dropping) consumers on them. Never a stream's configuration or deletion.
            for subject in sourcing_api(&site.domain, &local_stream(s.name, &site.domain)) {
                exports.push(to_bus(Some(subject.clone()), None));
                site_imports.push(import(true, subject));
            }
            let fc = format!("$JS.FC.{}.>", local_stream(s.name, &site.domain));
            exports.push(to_bus(Some(fc.clone()), None));
            site_imports.push(import(true, fc));
        }
        if site.imported {
            imports.extend(site_imports);
        }
        accounts.insert(
            acc.clone(),
            AccountConfig {
                jetstream: None,
                users: vec![site_user(site)],
                exports,
                imports: Vec::new(),
            },
        );
    }
    if let Some(bus) = accounts.get_mut(BUS_ACCOUNT) {
        bus.imports.extend(imports);
    }
}

/// What of the bus account's JetStream API a mirroring site imports (under
/// [`WITNESS_API_PREFIX`]), each with the response type the bus exports it with: the
/// creation of consumers on what it may mirror — `AUDIT` for a witness, every stream for a
/// standby, which also lists them and reads their configuration.
fn mirroring_api(kind: SiteKind) -> Vec<(String, Option<&'static str>)> {
    let audit = registry::AUDIT.name;
    let stream = Some("stream");
    match kind {
        SiteKind::Standby => vec![
            ("$JS.API.CONSUMER.CREATE.>".into(), stream),
            ("$JS.API.STREAM.NAMES".into(), None),
            ("$JS.API.STREAM.INFO.*".into(), None),
        ],
        _ => vec![
            (format!("$JS.API.CONSUMER.CREATE.{audit}"), stream),
            (format!("$JS.API.CONSUMER.CREATE.{audit}.>"), stream),
        ],
    }
}

/// The flow control of what a mirroring site may mirror.
fn mirroring_flow_control(kind: SiteKind) -> String {
    match kind {
        SiteKind::Standby => "$JS.FC.>".into(),
        _ => format!("$JS.FC.{}.>", registry::AUDIT.name),
    }
}

/// Where the hub delivers to a mirroring site.
fn mirroring_deliver(site: &SiteRecord) -> String {
    match site.kind {
        SiteKind::Standby => standby_deliver(&site.name),
        _ => witness_deliver(&site.name),
    }
}

/// Each mirroring site's account (witnesses, standbys): it imports, from the bus account,
/// what [`mirroring_api`] gives its kind (under [`WITNESS_API_PREFIX`]), the deliveries to
/// it, and their flow control — nothing else of the bus.
fn add_mirroring(accounts: &mut AccountsConfig, sites: &[&SiteRecord]) {
    // The bus's exports, each to every site that imports it.
    let mut exports: std::collections::BTreeMap<(String, Option<&str>), Vec<String>> =
        Default::default();
    for site in sites {
        let acc = account(&site.name);
        let service = |subject: &str, to: Option<String>| Import {
            service: Some(ImportSource {
                account: BUS_ACCOUNT.into(),
                subject: subject.to_string(),
            }),
            stream: None,
            to,
        };
        let mut imports = Vec::new();
        for (subject, response) in mirroring_api(site.kind) {
            let to = subject.replacen("$JS.API", WITNESS_API_PREFIX, 1);
            imports.push(service(&subject, Some(to)));
            exports
                .entry((subject, response))
                .or_default()
                .push(acc.clone());
        }
        let fc = mirroring_flow_control(site.kind);
        imports.push(service(&fc, None));
        exports.entry((fc, None)).or_default().push(acc.clone());
        imports.push(Import {
            service: None,
            stream: Some(ImportSource {
                account: BUS_ACCOUNT.into(),
                subject: format!("{}.>", mirroring_deliver(site)),
            }),
            to: None,
        });
        accounts.insert(
            acc,
            AccountConfig {
                jetstream: None,
                users: vec![site_user(site)],
                exports: Vec::new(),
                imports,
            },
        );
    }
    let Some(bus) = accounts.get_mut(BUS_ACCOUNT) else {
        return;
    };
    // Sites' accounts leave the exports they were in (an export left to nobody goes: one
    // with no account would be public).
    for e in &mut bus.exports {
        if e.accounts.iter().any(|a| a.starts_with(PREFIX)) {
            e.accounts.retain(|a| !a.starts_with(PREFIX));
            if e.accounts.is_empty() {
                e.service = None;
                e.stream = None;
            }
        }
    }
    bus.exports
        .retain(|e| e.service.is_some() || e.stream.is_some());
    for ((subject, response), names) in exports {
        // One export per subject (the server keeps one): a standby's flow control
        // (`$JS.FC.>`) joins the agencies'.
        match bus
            .exports
            .iter_mut()
            .find(|e| e.service.as_deref() == Some(subject.as_str()))
        {
            Some(e) => e.accounts.extend(names),
            None => bus.exports.push(Export {
                service: Some(subject),
                stream: None,
                response_type: response.map(String::from),
                accounts: names,
            }),
        }
    }
    for site in sites {
        bus.exports.push(Export {
            service: None,
            stream: Some(format!("{}.>", mirroring_deliver(site))),
            response_type: None,
            accounts: vec![account(&site.name)],
        });
    }
}

/// The subjects of a ward site's JetStream API that sourcing its `stream` uses: the
/// creation of consumers (the form without a name, which the server's sourcing sends, and
/// the named forms) and their deletion.
pub fn sourcing_api(domain: &str, stream: &str) -> Vec<String> {
    let api = api_prefix(domain);
    vec![
        format!("{api}.CONSUMER.CREATE.{stream}"),
        format!("{api}.CONSUMER.CREATE.{stream}.>"),
        format!("{api}.CONSUMER.DELETE.{stream}.*"),
    ]
}

/// What a site refuses to receive over its link, whatever the hub's configuration says
/// (the hub's operator is who a witness guards against): any change to its streams or
/// account through its JetStream API — for a site the hub does not source (a witness, an
/// agency), its whole API — its buckets, and the contract's subjects (the hub publishing
/// into the site's streams).
pub fn site_denied_imports(domain: &str, not_sourced: bool) -> Vec<String> {
    let api = api_prefix(domain);
    let mut deny = vec!["egov.>".to_string(), "$KV.>".to_string()];
    if not_sourced {
        deny.push(format!("{api}.>"));
    } else {
        for part in [
            "STREAM.>",
            "ACCOUNT.>",
            "META.>",
            "SERVER.>",
            "DIRECT.>",
            "$KV.>",
            "$OBJ.>",
            "CONSUMER.DURABLE.>",
        ] {
            deny.push(format!("{api}.{part}"));
        }
    }
    deny
}

fn from_a_site(i: &Import) -> bool {
    i.service
        .as_ref()
        .or(i.stream.as_ref())
        .is_some_and(|s| s.account.starts_with(PREFIX))
}

/// What the agency's own user needs, besides reading its copies, for a site of its own to
/// mirror them over a leaf connection: consumers on its copies through the hub's domain,
/// the replies to the site's server, flow control.
pub fn agency_site_publish(stream: &str) -> Vec<String> {
    vec![
        format!("{HUB_API_PREFIX}.INFO"),
        format!("{HUB_API_PREFIX}.STREAM.NAMES"),
        format!("{HUB_API_PREFIX}.STREAM.INFO.{stream}"),
        format!("{HUB_API_PREFIX}.CONSUMER.CREATE.{stream}"),
        format!("{HUB_API_PREFIX}.CONSUMER.CREATE.{stream}.>"),
        format!("{HUB_API_PREFIX}.CONSUMER.DELETE.{stream}.*"),
    ]
}

/// The reply subjects of a site server's own requests (its mirrors' consumer creation).
pub const SERVER_REPLIES: &str = "$JSC.R.*";

/// Where an agency site's mirrors of the granted streams receive their messages: under the
/// agency's own inbox, the only subjects the hub delivers to it.
pub fn agency_mirror_deliver(agency: &str, stream: &str) -> String {
    format!(
        "{}.site.{stream}",
        crate::roles::inbox(&crate::agencies::account(agency))
    )
}

/// An agency site's read-only mirror of its copy of `stream` on the hub.
pub fn mirror_config(agency: &str, stream: &str) -> stream::Config {
    read_only_mirror(
        stream,
        format!(
            "{}'s site: a read-only mirror of its copy of {stream} on the hub",
            crate::agencies::account(agency)
        ),
        HUB_API_PREFIX,
        agency_mirror_deliver(agency, stream),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ward(name: &str, domain: &str) -> SiteRecord {
        SiteRecord {
            name: name.into(),
            domain: domain.into(),
            password: "$2b$06$hash".into(),
            kind: SiteKind::Ward,
            certificate: None,
            imported: true,
        }
    }

    #[test]
    fn a_witness_may_create_consumers_on_audit_and_nothing_else() {
        let mut accounts =
            crate::roles::accounts(&crate::roles::roles(), |r| Ok(r.to_string())).unwrap();
        let witness = SiteRecord {
            kind: SiteKind::Witness,
            ..ward("kiem-toan", "kiemtoan")
        };
        add_sites(&mut accounts, &[witness]);
        let w = &accounts["site-kiem-toan"];
        assert_eq!(w.jetstream, None);
        for i in &w.imports {
            let s = i.service.as_ref().or(i.stream.as_ref()).unwrap();
            assert_eq!(s.account, BUS_ACCOUNT);
            assert!(
                s.subject.contains("AUDIT")
                    || s.subject.starts_with("lienthong.witness.kiem-toan."),
                "{s:?}"
            );
        }
        let bus = &accounts[BUS_ACCOUNT];
        assert!(bus
            .exports
            .iter()
            .filter(|e| e.accounts.contains(&"site-kiem-toan".to_string()))
            .all(|e| e
                .service
                .as_deref()
                .or(e.stream.as_deref())
                .is_some_and(
                    |s| s.contains("AUDIT") || s.starts_with("lienthong.witness.kiem-toan.")
                )));
        // Removed again: nothing of it is left in the bus account.
        add_sites(&mut accounts, &[]);
        assert!(!accounts.contains_key("site-kiem-toan"));
        assert!(accounts[BUS_ACCOUNT]
            .exports
            .iter()
            .all(|e| !e.accounts.iter().any(|a| a.starts_with(PREFIX))));
    }

    #[test]
    fn a_standby_mirrors_every_stream_and_shares_the_flow_control_export() {
        let mut accounts =
            crate::roles::accounts(&crate::roles::roles(), |r| Ok(r.to_string())).unwrap();
        // An agency's export of every stream's flow control is there first (the agent adds
        // agencies, then sites).
        accounts.get_mut(BUS_ACCOUNT).unwrap().exports.push(Export {
            service: Some("$JS.FC.>".into()),
            stream: None,
            response_type: None,
            accounts: vec!["agency-health".into()],
        });
        let standby = SiteRecord {
            kind: SiteKind::Standby,
            ..ward("du-phong", "duphong")
        };
        for _ in 0..2 {
            add_sites(&mut accounts, std::slice::from_ref(&standby));
            let bus = &accounts[BUS_ACCOUNT];
            let fc: Vec<_> = bus
                .exports
                .iter()
                .filter(|e| e.service.as_deref() == Some("$JS.FC.>"))
                .collect();
            assert_eq!(fc.len(), 1, "one export per subject");
            assert_eq!(fc[0].accounts, ["agency-health", "site-du-phong"]);
            let imports: Vec<_> = accounts["site-du-phong"]
                .imports
                .iter()
                .filter_map(|i| i.service.as_ref().map(|s| s.subject.clone()))
                .collect();
            assert!(imports.contains(&"$JS.API.CONSUMER.CREATE.>".to_string()));
            assert!(imports.contains(&"$JS.API.STREAM.INFO.*".to_string()));
        }
        // Removed: the agency keeps its export, nothing is left to the standby.
        add_sites(&mut accounts, &[]);
        let bus = &accounts[BUS_ACCOUNT];
        assert!(bus
            .exports
            .iter()
            .all(|e| !e.accounts.is_empty() && !e.accounts.iter().any(|a| a.starts_with(PREFIX))));
        assert!(bus
            .exports
            .iter()
            .any(|e| e.service.as_deref() == Some("$JS.FC.>")));
    }

    #[test]
    fn each_ward_has_an_account_and_the_bus_imports_only_what_sourcing_needs() {
        let mut accounts =
            crate::roles::accounts(&crate::roles::roles(), |r| Ok(r.to_string())).unwrap();
        add_sites(
            &mut accounts,
            &[ward("phu-thuy", "phuthuy"), ward("mui-ne", "muine")],
        );
        let site = &accounts["site-phu-thuy"];
        assert_eq!(
            site.jetstream, None,
            "no stream on the hub in a site's account"
        );
        assert_eq!(site.users.len(), 1);
        assert!(site
            .exports
            .iter()
            .all(|e| e.accounts == vec![BUS_ACCOUNT.to_string()]));
        let bus = &accounts[BUS_ACCOUNT];
        let fc: Vec<_> = bus
            .imports
            .iter()
            .filter_map(|i| i.service.as_ref())
            .filter(|s| s.subject.starts_with("$JS.FC."))
            .map(|s| s.subject.clone())
            .collect();
        // One flow-control import per ward stream and site, none shared between sites.
        assert_eq!(fc.len(), 2 * ward_streams().len());
        let unique: std::collections::BTreeSet<_> = fc.iter().collect();
        assert_eq!(unique.len(), fc.len());
        assert!(fc.contains(&"$JS.FC.FIELD_REPORTS_PHUTHUY.>".to_string()));
        // Rendering again replaces, never doubles.
        add_sites(&mut accounts, &[ward("phu-thuy", "phuthuy")]);
        assert!(!accounts.contains_key("site-mui-ne"));
        assert_eq!(
            accounts[BUS_ACCOUNT].imports.len(),
            1 + 4 * ward_streams().len()
        );
        // Nothing of a site's API but creating and dropping consumers on its streams.
        for i in &accounts[BUS_ACCOUNT].imports {
            if let Some(s) = &i.service {
                assert!(
                    s.subject.starts_with("$JS.FC.")
                        || s.subject.contains(".API.CONSUMER.CREATE.")
                        || s.subject.contains(".API.CONSUMER.DELETE."),
                    "{s:?}"
                );
            }
        }
        let deny = site_denied_imports("phuthuy", false);
        assert!(deny.contains(&"$JS.phuthuy.API.STREAM.>".to_string()));
        assert!(site_denied_imports("kiemtoan", true).contains(&"$JS.kiemtoan.API.>".to_string()));
    }

    #[test]
    fn domains_and_names_are_checked() {
        assert!(check_domain("phuthuy").is_ok());
        for bad in [
            "",
            "hub",
            "Phu",
            "phu-thuy",
            "phu.thuy",
            "a_b",
            "abcdefghijklmnopq",
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
        assert!(check_name("phu-thuy").is_ok());
        assert!(check_name("phu.thuy").is_err());
        assert_eq!(local_stream("DLQ", "muine"), "DLQ_MUINE");
        let s = source(&ward("mui-ne", "muine"), "FIELD_REPORTS");
        assert!(is_from(&s, "mui-ne") && !is_from(&s, "mui"));
        assert!(ward_streams().iter().all(|s| s.name != "AUDIT"));
    }
}
