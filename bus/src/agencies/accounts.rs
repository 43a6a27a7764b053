//! The server accounts of the agencies, rendered from the registry.
//!
//! For agency `health` granted `FIELD_REPORTS` with filter `F`:
//!
//! - the bus account `EGOV` exports the service `$JS.API.CONSUMER.CREATE.FIELD_REPORTS.*.F`
//!   to `agency-health` only — creating a consumer on the bus's stream with exactly that
//!   filter (the server checks the filter in the subject against the request) — the stream of
//!   deliveries `lienthong.deliver.agency-health.>` to it only, and flow control;
//! - the account `agency-health` imports them (the service as
//!   `$JS.EGOV.API.CONSUMER.CREATE.…`), and its copy `FIELD_REPORTS` sources the bus's
//!   stream through them;
//! - its user `agency-health` may read its copies (info, consumers of its own, direct get,
//!   acks) and nothing else; `admin-agency-health` (the operator's) manages the copies and
//!   the webhook deliveries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{account, admin_user, deliver_prefix, AgencyRecord, BUS_API_PREFIX};
use crate::roles::{
    inbox, strings, AccountConfig, AccountsConfig, Export, Import, ImportSource, Permission,
    Permissions, UserConfig, BUS_ACCOUNT,
};

/// An agency's password hashes, as kept in the `AGENCY_ACCESS` bucket under its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessHashes {
    /// bcrypt of the agency's password.
    pub password: String,
    /// bcrypt of its administrator's password (held by the operator).
    pub admin: String,
    /// The certificate of the agency's site, when it links by mutual TLS (`site add NAME
    /// --role agency --certificate FILE`): a user named by its subject, with the agency's
    /// permissions, that may connect only as a leaf node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_certificate: Option<crate::sites::SiteCertificate>,
}

/// What the agency's own user may do in its account: read its copies of the granted
/// streams, with consumers of its own.
pub fn agency_permissions(agency: &AgencyRecord) -> Permissions {
    let mut allow = strings(&[
        "$JS.API.INFO",
        "$JS.API.STREAM.NAMES",
        "$JS.API.STREAM.LIST",
    ]);
    for g in &agency.grants {
        let s = &g.stream;
        allow.extend([
            format!("$JS.API.STREAM.INFO.{s}"),
            format!("$JS.API.STREAM.MSG.GET.{s}"),
            format!("$JS.API.DIRECT.GET.{s}"),
            format!("$JS.API.DIRECT.GET.{s}.>"),
            format!("$JS.API.CONSUMER.CREATE.{s}"),
            format!("$JS.API.CONSUMER.CREATE.{s}.>"),
            format!("$JS.API.CONSUMER.DURABLE.CREATE.{s}.*"),
            format!("$JS.API.CONSUMER.INFO.{s}.*"),
            format!("$JS.API.CONSUMER.DELETE.{s}.*"),
            format!("$JS.API.CONSUMER.NAMES.{s}"),
            format!("$JS.API.CONSUMER.LIST.{s}"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{s}.*"),
            format!("$JS.API.CONSUMER.PAUSE.{s}.*"),
            format!("$JS.ACK.{s}.>"),
            format!("$JS.FC.{s}.>"),
        ]);
        // A site of the agency's own mirrors the copy over a leaf connection.
        allow.extend(crate::sites::agency_site_publish(s));
    }
    Permissions {
        publish: Permission {
            allow,
            deny: Vec::new(),
        },
        subscribe: Permission {
            allow: vec![
                format!("{}.>", inbox(&account(&agency.name))),
                crate::sites::SERVER_REPLIES.to_string(),
            ],
            deny: Vec::new(),
        },
    }
}

/// What the agency's administrator may do: anything JetStream in the agency's account (never
/// the bus's API directly: only the server's sourcing uses the import).
pub fn admin_permissions(agency: &str) -> Permissions {
    Permissions {
        publish: Permission {
            allow: strings(&["$JS.API.>", "$JS.ACK.>", "$JS.FC.>"]),
            deny: vec![format!("{BUS_API_PREFIX}.>")],
        },
        subscribe: Permission {
            allow: vec![format!("{}.>", inbox(&admin_user(agency)))],
            deny: Vec::new(),
        },
    }
}

/// The consumer-create subject of the bus's `stream` with `filter`, as exported.
fn create_subject(stream: &str, filter: &str) -> String {
    format!("$JS.API.CONSUMER.CREATE.{stream}.*.{filter}")
}

/// Adds every agency's account, and the bus account's exports to them, to `accounts`.
/// Agencies without hashes (not yet written, or removed) are left out.
pub fn add_agencies(
    accounts: &mut AccountsConfig,
    agencies: &[&AgencyRecord],
    hashes: &BTreeMap<String, AccessHashes>,
) {
    // Exports of the same subject are one export, with every account that may import it.
    let mut services: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut fc: Vec<String> = Vec::new();
    let mut streams: Vec<Export> = Vec::new();
    for agency in agencies {
        let Some(h) = hashes.get(&agency.name) else {
            continue;
        };
        let acc = account(&agency.name);
        let mut imports = Vec::new();
        for g in &agency.grants {
            for f in g.filters() {
                let subject = create_subject(&g.stream, &f);
                services
                    .entry(subject.clone())
                    .or_default()
                    .push(acc.clone());
                imports.push(Import {
                    service: Some(ImportSource {
                        account: BUS_ACCOUNT.into(),
                        subject: subject.clone(),
                    }),
                    stream: None,
                    to: Some(subject.replacen("$JS.API", BUS_API_PREFIX, 1)),
                });
            }
            imports.push(Import {
                service: Some(ImportSource {
                    account: BUS_ACCOUNT.into(),
                    subject: format!("$JS.FC.{}.>", g.stream),
                }),
                stream: None,
                to: None,
            });
        }
        fc.push(acc.clone());
        let deliveries = format!("{}.>", deliver_prefix(&agency.name));
        streams.push(Export {
            service: None,
            stream: Some(deliveries.clone()),
            response_type: None,
            accounts: vec![acc.clone()],
        });
        imports.push(Import {
            service: None,
            stream: Some(ImportSource {
                account: BUS_ACCOUNT.into(),
                subject: deliveries,
            }),
            to: None,
        });
        accounts.insert(
            acc.clone(),
            AccountConfig {
                jetstream: Some("enabled".into()),
                users: vec![
                    UserConfig {
                        user: acc.clone(),
                        password: h.password.clone(),
                        permissions: agency_permissions(agency),
                        allowed_connection_types: Vec::new(),
                    },
                    UserConfig {
                        user: admin_user(&agency.name),
                        password: h.admin.clone(),
                        permissions: admin_permissions(&agency.name),
                        allowed_connection_types: Vec::new(),
                    },
                ]
                .into_iter()
                // No password: nats-server admits it only by its certificate, on a leaf port
                // that maps certificates (the agent renders it only for such a server).
                .chain(h.site_certificate.as_ref().map(|c| UserConfig {
                    user: c.subject.clone(),
                    password: String::new(),
                    permissions: agency_permissions(agency),
                    allowed_connection_types: vec!["LEAFNODE".into()],
                }))
                .collect(),
                exports: Vec::new(),
                imports,
            },
        );
    }
    let Some(bus) = accounts.get_mut(BUS_ACCOUNT) else {
        return;
    };
    bus.exports.clear();
    for (subject, accounts) in services {
        bus.exports.push(Export {
            service: Some(subject),
            stream: None,
            response_type: Some("stream".into()),
            accounts,
        });
    }
    if !fc.is_empty() {
        bus.exports.push(Export {
            service: Some("$JS.FC.>".into()),
            stream: None,
            response_type: None,
            accounts: fc,
        });
    }
    bus.exports.extend(streams);
}

/// Carries the agencies' and ward sites' accounts, and the bus account's exports to and
/// imports from them, from a previous
/// configuration into a new one (a restart keeps what the agent last applied).
pub fn carry_over(previous: &AccountsConfig, accounts: &mut AccountsConfig) {
    for (name, account) in previous {
        if name.starts_with(super::PREFIX) || name.starts_with(crate::sites::PREFIX) {
            accounts.insert(name.clone(), account.clone());
        }
    }
    if let (Some(old), Some(bus)) = (previous.get(BUS_ACCOUNT), accounts.get_mut(BUS_ACCOUNT)) {
        bus.exports = old.exports.clone();
        bus.imports = old.imports.clone();
    }
}

/// What the server configuration says of the agencies that the registry does not, one line
/// per disagreement. Empty when they agree.
pub fn check(
    accounts: &AccountsConfig,
    agencies: &[&AgencyRecord],
    hashes: &BTreeMap<String, AccessHashes>,
) -> Vec<String> {
    let mut expected = AccountsConfig::new();
    if let Some(bus) = accounts.get(BUS_ACCOUNT) {
        expected.insert(BUS_ACCOUNT.into(), bus.clone());
    }
    add_agencies(&mut expected, agencies, hashes);
    let mut problems = Vec::new();
    for (name, want) in &expected {
        match accounts.get(name) {
            None => problems.push(format!("agency account {name}: missing")),
            Some(have) if name == BUS_ACCOUNT => {
                // What each export gives agencies (one may also go to a standby site).
                let to_agencies = |a: &AccountConfig| -> Vec<Export> {
                    a.exports
                        .iter()
                        .filter_map(|e| {
                            let mut e = e.clone();
                            e.accounts.retain(|a| a.starts_with(super::PREFIX));
                            (!e.accounts.is_empty()).then_some(e)
                        })
                        .collect()
                };
                if to_agencies(have) != to_agencies(want) {
                    problems.push(format!(
                        "account {BUS_ACCOUNT}: its exports to agencies differ from the registry's grants"
                    ))
                }
            }
            Some(have) if have != want => problems.push(format!(
                "agency account {name}: differs from the registry's grants"
            )),
            Some(_) => {}
        }
    }
    for name in accounts.keys() {
        if name.starts_with(super::PREFIX) && !expected.contains_key(name) {
            problems.push(format!(
                "agency account {name}: not in the registry (revoked or never granted)"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agencies::Grant;

    fn agency(name: &str, grants: Vec<Grant>) -> AgencyRecord {
        let t = "2026-01-01T00:00:00Z".parse().unwrap();
        AgencyRecord {
            name: name.into(),
            grants,
            since: t,
            granted_at: t,
            granted_by: "ops".into(),
            rotated_at: None,
            sequence: 1,
        }
    }

    fn hashes(names: &[&str]) -> BTreeMap<String, AccessHashes> {
        names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    AccessHashes {
                        password: format!("hash-{n}"),
                        admin: format!("admin-hash-{n}"),
                        site_certificate: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn each_agency_gets_an_account_importing_exactly_its_grants() {
        let health = agency(
            "health",
            vec![Grant {
                stream: "FIELD_REPORTS".into(),
                subjects: vec!["egov.field_reports.report.*.resolved".into()],
            }],
        );
        let ioc = agency(
            "ioc",
            vec![
                Grant {
                    stream: "FIELD_REPORTS".into(),
                    subjects: vec![],
                },
                Grant {
                    stream: "SSO".into(),
                    subjects: vec![],
                },
            ],
        );
        let mut accounts =
            crate::roles::accounts(&crate::roles::roles(), |r| Ok(format!("pw-{r}"))).unwrap();
        add_agencies(&mut accounts, &[&health, &ioc], &hashes(&["health", "ioc"]));
        let bus = &accounts[BUS_ACCOUNT];
        let export = |s: &str| {
            bus.exports
                .iter()
                .find(|e| e.service.as_deref() == Some(s))
                .map(|e| e.accounts.clone())
        };
        assert_eq!(
            export("$JS.API.CONSUMER.CREATE.FIELD_REPORTS.*.egov.field_reports.report.*.resolved"),
            Some(vec!["agency-health".to_string()])
        );
        assert_eq!(
            export("$JS.API.CONSUMER.CREATE.FIELD_REPORTS.*.egov.field_reports.>"),
            Some(vec!["agency-ioc".to_string()])
        );
        assert_eq!(
            export("$JS.API.CONSUMER.CREATE.SSO.*.egov.sso.>"),
            Some(vec!["agency-ioc".to_string()])
        );
        let h = &accounts["agency-health"];
        assert_eq!(h.users[0].user, "agency-health");
        assert_eq!(h.users[1].user, "admin-agency-health");
        let allow = &h.users[0].permissions.publish.allow;
        assert!(allow.contains(&"$JS.API.STREAM.INFO.FIELD_REPORTS".to_string()));
        assert!(!allow.iter().any(|s| s.contains("SSO")));
        assert!(!allow.iter().any(|s| s.starts_with("$JS.EGOV")));
        // Its own inbox, and the replies to its site's server (mirroring over a leaf link).
        assert_eq!(
            h.users[0].permissions.subscribe.allow,
            vec!["_INBOX.agency-health.>".to_string(), "$JSC.R.*".to_string()]
        );
        assert!(allow.contains(&"$JS.hub.API.CONSUMER.CREATE.FIELD_REPORTS".to_string()));
        // It renders, reads back, and agrees with the registry; a revoked agency's account
        // left in the configuration is named.
        let text = crate::roles::render_accounts(&accounts).unwrap();
        let back = crate::roles::parse_accounts(&text).unwrap();
        assert_eq!(back, accounts);
        assert!(check(&back, &[&health, &ioc], &hashes(&["health", "ioc"])).is_empty());
        let problems = check(&back, &[&ioc], &hashes(&["ioc"]));
        assert!(
            problems.iter().any(|p| p.contains("agency-health")),
            "{problems:?}"
        );
        assert!(crate::roles::check_accounts(&back).is_empty());
    }
}
