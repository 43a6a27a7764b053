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

/// The contract's streams a ward site keeps and the hub sources: every subsystem's and the
/// dead letters (the audit trail and the agency registry are central).
pub fn ward_streams() -> Vec<crate::topology::StreamSpec> {
    crate::topology::streams()
        .into_iter()
        .filter(|s| s.name != registry::AUDIT.name && s.name != registry::AGENCIES.name)
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
    let witnesses: Vec<&SiteRecord> = sites
        .iter()
        .filter(|s| s.kind == SiteKind::Witness)
        .collect();
    add_witnesses(accounts, &witnesses);
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

/// Each witness's account: it imports, from the bus account, the creation of consumers on
/// `AUDIT` (under [`WITNESS_API_PREFIX`]), their deliveries to it, and their flow control —
/// nothing else of the bus.
fn add_witnesses(accounts: &mut AccountsConfig, witnesses: &[&SiteRecord]) {
    let audit = registry::AUDIT.name;
    let creates = [
        format!("$JS.API.CONSUMER.CREATE.{audit}"),
        format!("$JS.API.CONSUMER.CREATE.{audit}.>"),
    ];
    let fc = format!("$JS.FC.{audit}.>");
    let names: Vec<String> = witnesses.iter().map(|w| account(&w.name)).collect();
    for w in witnesses {
        let acc = account(&w.name);
        let service = |subject: &str, to: Option<String>| Import {
            service: Some(ImportSource {
                account: BUS_ACCOUNT.into(),
                subject: subject.to_string(),
            }),
            stream: None,
            to,
        };
        let mut imports: Vec<Import> = creates
            .iter()
            .map(|s| service(s, Some(s.replacen("$JS.API", WITNESS_API_PREFIX, 1))))
            .collect();
        imports.push(service(&fc, None));
        imports.push(Import {
            service: None,
            stream: Some(ImportSource {
                account: BUS_ACCOUNT.into(),
                subject: format!("{}.>", witness_deliver(&w.name)),
            }),
            to: None,
        });
        accounts.insert(
            acc.clone(),
            AccountConfig {
                jetstream: None,
                users: vec![site_user(w)],
                exports: Vec::new(),
                imports,
            },
        );
    }
    let Some(bus) = accounts.get_mut(BUS_ACCOUNT) else {
        return;
    };
    bus.exports
        .retain(|e| !e.accounts.iter().any(|a| a.starts_with(PREFIX)));
    if names.is_empty() {
        return;
    }
    for s in creates {
        bus.exports.push(Export {
            service: Some(s),
            stream: None,
            response_type: Some("stream".into()),
            accounts: names.clone(),
        });
    }
    bus.exports.push(Export {
        service: Some(fc),
        stream: None,
        response_type: None,
        accounts: names.clone(),
    });
    for w in witnesses {
        bus.exports.push(Export {
            service: None,
            stream: Some(format!("{}.>", witness_deliver(&w.name))),
            response_type: None,
            accounts: vec![account(&w.name)],
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
