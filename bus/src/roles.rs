//! Roles and their permissions, derived from the [subsystem registry](crate::registry), and
//! the server's accounts configuration rendered from them.
//!
//! One account (`EGOV`) holds the streams and one user per role; the system account (`SYS`)
//! has the `system` user that administers servers (configuration reloads, health). Each
//! agency has an account of its own, generated from the agency registry
//! ([`crate::agencies`]). Every user subscribes only to its own inbox (`_INBOX.<role>.>`, the
//! prefix the clients use), so nobody reads another role's replies or the live traffic of a
//! stream it was not granted; reading a stream goes through the JetStream API, whose subjects
//! name the stream. In `EGOV` only the operator and the replay service may create or use
//! consumers; the auditor reads by direct get, so nobody can touch another role's consumers.
//!
//! The rendered file (`accounts.conf`, included by `nats.conf`) is JSON in the shape the
//! server reads after `accounts:`, so tests can read back the configuration a running server
//! actually uses ([`parse_accounts`]). Passwords appear only as bcrypt hashes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{BusError, Result};
use crate::registry::{self, Subsystem, SUBSYSTEMS};

/// The account holding the bus's streams and roles.
pub const BUS_ACCOUNT: &str = "EGOV";
/// The system account (server administration).
pub const SYSTEM_ACCOUNT: &str = "SYS";
/// bcrypt cost of the hashes in the server configuration. Passwords are 32 random
/// alphanumerics (~190 bits): the work factor, which protects guessable passwords, adds
/// nothing here, while the server pays it on every connection.
pub const BCRYPT_COST: u32 = 6;

/// Allowed and denied subjects for publishing or subscribing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl Permission {
    /// Allows `subjects` (and nothing else).
    pub fn allow(subjects: impl IntoIterator<Item = String>) -> Self {
        Self {
            allow: subjects.into_iter().collect(),
            deny: Vec::new(),
        }
    }
}

/// What a role may publish and subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub publish: Permission,
    pub subscribe: Permission,
}

/// One user of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub account: &'static str,
    /// What the role is for (README, `lienthong up`, the catalogue).
    pub purpose: String,
    pub permissions: Permissions,
    /// Streams it may read.
    pub reads: Vec<String>,
}

/// The role's own inbox: the only subject it may subscribe to.
pub fn inbox(role: &str) -> String {
    format!("_INBOX.{role}")
}

pub(crate) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Read the named streams with consumers (the replay service): info, its own consumers,
/// direct get, acks, flow control.
fn js_consume(streams: &[String]) -> Vec<String> {
    let mut out = strings(&["$JS.API.INFO", "$JS.API.STREAM.NAMES"]);
    for s in streams {
        out.extend([
            format!("$JS.API.STREAM.INFO.{s}"),
            format!("$JS.API.CONSUMER.CREATE.{s}"),
            format!("$JS.API.CONSUMER.CREATE.{s}.>"),
            format!("$JS.API.CONSUMER.INFO.{s}.*"),
            format!("$JS.API.CONSUMER.DELETE.{s}.*"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{s}.*"),
            format!("$JS.API.DIRECT.GET.{s}"),
            format!("$JS.API.DIRECT.GET.{s}.>"),
            format!("$JS.API.STREAM.MSG.GET.{s}"),
            format!("$JS.ACK.{s}.>"),
        ]);
    }
    out.push("$JS.FC.>".into());
    out
}

/// Read the named streams without any consumer (the auditor): their state and their
/// messages by direct get. Nothing on the server changes.
pub fn js_read_only(streams: &[String]) -> Vec<String> {
    let mut out = strings(&["$JS.API.INFO", "$JS.API.STREAM.NAMES"]);
    for s in streams {
        out.extend([
            format!("$JS.API.STREAM.INFO.{s}"),
            format!("$JS.API.DIRECT.GET.{s}"),
            format!("$JS.API.DIRECT.GET.{s}.>"),
            format!("$JS.API.STREAM.MSG.GET.{s}"),
        ]);
    }
    out
}

/// Read and write `ADAPTER_STATE` keys under `<subsystem>.` only (another adapter's cursor
/// is neither readable nor writable).
fn adapter_state(subsystem: &str) -> Vec<String> {
    let bucket = crate::topology::ADAPTER_STATE_BUCKET;
    vec![
        format!("$KV.{bucket}.{subsystem}.>"),
        "$JS.API.INFO".into(),
        format!("$JS.API.STREAM.INFO.KV_{bucket}"),
        format!("$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{subsystem}.>"),
    ]
}

fn own_inbox(role: &str) -> Permission {
    Permission::allow([format!("{}.>", inbox(role))])
}

fn adapter(s: &Subsystem) -> Role {
    let name = s.adapter_role();
    let mut publish = vec![s.subjects(), s.dead_letter_subjects()];
    publish.extend(adapter_state(s.name));
    // A registered subsystem's publishers learn its event types and schemas from the
    // registry (a compiled adapter has them built in), and may read their own stream (what
    // they published: its analysis, e.g. the stations' thresholds).
    if !SUBSYSTEMS.iter().any(|c| c.name == s.name) {
        publish.extend(js_read_only(&[
            registry::REGISTRY.name.to_string(),
            s.stream.to_string(),
        ]));
    }
    Role {
        purpose: format!(
            "the {} adapter: publishes egov.{}.> and its own dead letters, keeps its cursor",
            s.title.to_lowercase(),
            s.name
        ),
        permissions: Permissions {
            publish: Permission::allow(publish),
            subscribe: own_inbox(&name),
        },
        reads: Vec::new(),
        account: BUS_ACCOUNT,
        name,
    }
}

/// Every role, derived from the registry (compiled and registered subsystems).
pub fn roles() -> Vec<Role> {
    let subsystems: Vec<Subsystem> = registry::subsystems().into_iter().copied().collect();
    roles_for(&subsystems)
}

/// Brings the bus account of `accounts` in line with the registry as this process knows it:
/// every role's permissions as [`roles`] derives them now (a registered subsystem's stream
/// added to what the replay service, the auditor, the ingress and the admission may use),
/// and a user for each registered subsystem's publishing role whose hash `publishers` holds.
/// Users the registry does not derive are left as they are.
pub fn apply_registry(accounts: &mut AccountsConfig, publishers: &BTreeMap<String, String>) {
    let Some(bus) = accounts.get_mut(BUS_ACCOUNT) else {
        return;
    };
    for role in roles().into_iter().filter(|r| r.account == BUS_ACCOUNT) {
        match bus.users.iter_mut().find(|u| u.user == role.name) {
            Some(u) => u.permissions = role.permissions,
            None => {
                if let Some(hash) = publishers.get(&role.name) {
                    bus.users.push(UserConfig {
                        user: role.name,
                        password: hash.clone(),
                        permissions: role.permissions,
                        allowed_connection_types: Vec::new(),
                    });
                }
            }
        }
    }
}

/// Every role the given subsystems (and the bus's own streams) call for.
pub fn roles_for(subsystems: &[Subsystem]) -> Vec<Role> {
    let every_stream: Vec<String> = subsystems
        .iter()
        .map(|s| s.stream)
        .chain(registry::SYSTEM_STREAMS.iter().map(|s| s.name))
        .map(str::to_string)
        .collect();
    // Auditors also read what ward sites offered the hub, admitted or not.
    let with_intake: Vec<String> = every_stream
        .iter()
        .cloned()
        .chain([crate::sites::intake::INTAKE.to_string()])
        .collect();
    let subsystem_subjects: Vec<String> = subsystems.iter().map(Subsystem::subjects).collect();
    let dlq = format!("egov.{}.>", registry::DLQ.subject_root);
    let audit = format!("egov.{}.>", registry::AUDIT.subject_root);
    let mut out = vec![
        Role {
            name: "operator".into(),
            account: BUS_ACCOUNT,
            purpose: "provisioning and administration: the only role that creates, changes or deletes streams".into(),
            permissions: Permissions {
                publish: Permission::allow([">".to_string()]),
                subscribe: Permission::allow([">".to_string()]),
            },
            reads: every_stream.clone(),
        },
        Role {
            name: "replay".into(),
            account: BUS_ACCOUNT,
            purpose: "the replay service: reads every stream, writes signed audit checkpoints".into(),
            permissions: Permissions {
                publish: Permission {
                    allow: js_consume(&every_stream).into_iter().chain([audit.clone()]).collect(),
                    deny: subsystem_subjects.iter().cloned().chain([dlq.clone()]).collect(),
                },
                subscribe: own_inbox("replay"),
            },
            reads: every_stream.clone(),
        },
        Role {
            name: "auditor".into(),
            account: BUS_ACCOUNT,
            purpose: "auditors: read-only everywhere, consumers included (reads by direct get)".into(),
            permissions: Permissions {
                publish: Permission {
                    allow: js_read_only(&with_intake),
                    deny: vec!["egov.>".into(), "$KV.>".into()],
                },
                subscribe: own_inbox("auditor"),
            },
            reads: with_intake.clone(),
        },
        Role {
            name: "ingress".into(),
            account: BUS_ACCOUNT,
            purpose: "the HTTP CloudEvents ingress: publishes for its callers and their dead letters".into(),
            permissions: Permissions {
                publish: Permission::allow(
                    subsystem_subjects
                        .iter()
                        .cloned()
                        .chain([dlq.clone()])
                        // The registry: the subsystems registered on the running bus, their
                        // schemas and their publishers' tokens.
                        .chain(js_read_only(&[registry::REGISTRY.name.to_string()])),
                ),
                subscribe: own_inbox("ingress"),
            },
            reads: Vec::new(),
        },
    ];
    out.extend(subsystems.iter().map(adapter));
    // The hub's admission: takes what ward sites sent from the intake, publishes what passes
    // into the central streams and what does not as dead letters, counts both per site.
    let intake = crate::sites::intake::INTAKE.to_string();
    out.push(Role {
        name: "admission".into(),
        account: BUS_ACCOUNT,
        purpose: "the hub's admission of what ward sites send: consumes INTAKE, publishes what passes its checks (source, schema, ids) and dead letters for the rest".into(),
        permissions: Permissions {
            publish: Permission::allow(
                js_consume(std::slice::from_ref(&intake))
                    .into_iter()
                    .chain(subsystem_subjects.iter().cloned())
                    .chain([dlq.clone()])
                    .chain(adapter_state(crate::sites::admission::STATE_KEY)),
            ),
            subscribe: own_inbox("admission"),
        },
        reads: vec![intake],
    });
    let subscriptions = format!("egov.{}.subscription.>", registry::AGENCIES.subject_root);
    out.push(Role {
        name: "deliver".into(),
        account: BUS_ACCOUNT,
        purpose: "webhook delivery: reports the state of agencies' subscriptions (it reads each agency's copies as that agency's administrator)".into(),
        permissions: Permissions {
            publish: Permission::allow(
                js_read_only(&[registry::AGENCIES.name.to_string()])
                    .into_iter()
                    .chain([subscriptions]),
            ),
            subscribe: own_inbox("deliver"),
        },
        reads: vec![registry::AGENCIES.name.to_string()],
    });
    out.push(Role {
        name: "system".into(),
        account: SYSTEM_ACCOUNT,
        purpose: "server administration: configuration reloads, server health".into(),
        permissions: Permissions {
            publish: Permission::allow([">".to_string()]),
            subscribe: Permission::allow([">".to_string()]),
        },
        reads: Vec::new(),
    });
    out
}

/// The names of every role.
pub fn role_names() -> Vec<String> {
    roles().into_iter().map(|r| r.name).collect()
}

/// The roles that may read `stream`.
pub fn readers(stream: &str) -> Vec<String> {
    roles()
        .into_iter()
        .filter(|r| r.reads.iter().any(|s| s == stream))
        .map(|r| r.name)
        .collect()
}

/// One user as the server reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserConfig {
    pub user: String,
    pub password: String,
    pub permissions: Permissions,
    /// How it may connect (`LEAFNODE` for a site's link); empty: any way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_connection_types: Vec<String>,
}

/// One account as the server reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<String>,
    pub users: Vec<UserConfig>,
    /// What other accounts may use of this one (services and streams).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<Export>,
    /// What this account uses of others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<Import>,
}

/// A service (request/reply subjects) or a stream (messages) offered to other accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// `stream` for services answering with several messages (JetStream's consumer create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
    /// Only these accounts may import it (empty: any account configured to).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
}

/// Where an import comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSource {
    pub account: String,
    pub subject: String,
}

/// A service or a stream used from another account, optionally under another subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ImportSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<ImportSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// The `accounts` block: account name → account.
pub type AccountsConfig = BTreeMap<String, AccountConfig>;

/// The accounts block for `roles`, each password given by `password_hash(role)`.
pub fn accounts(
    roles: &[Role],
    mut password_hash: impl FnMut(&str) -> Result<String>,
) -> Result<AccountsConfig> {
    let mut out = AccountsConfig::new();
    for role in roles {
        let account = out
            .entry(role.account.to_string())
            .or_insert_with(|| AccountConfig {
                jetstream: (role.account == BUS_ACCOUNT).then(|| "enabled".to_string()),
                users: Vec::new(),
                exports: Vec::new(),
                imports: Vec::new(),
            });
        account.users.push(UserConfig {
            user: role.name.clone(),
            password: password_hash(&role.name)?,
            permissions: role.permissions.clone(),
            allowed_connection_types: Vec::new(),
        });
    }
    Ok(out)
}

/// A bcrypt hash of `password`, as the server checks it.
pub fn hash_password(password: &str) -> Result<String> {
    bcrypt::hash(password, BCRYPT_COST)
        .map_err(|e| BusError::Config(format!("hashing a password: {e}")))
}

const HEADER: &str = "# Generated by Lienthong from its subsystem registry (bus/src/registry.rs, bus/src/roles.rs).\n\
# Do not edit: `lienthong up` writes it again at every start. Included by nats.conf.\n";

/// The text of `accounts.conf`.
pub fn render_accounts(accounts: &AccountsConfig) -> Result<String> {
    let json = serde_json::to_string_pretty(accounts)
        .map_err(|e| BusError::Config(format!("rendering the accounts: {e}")))?;
    Ok(format!("{HEADER}accounts: {json}\n"))
}

/// Reads back what [`render_accounts`] wrote (e.g. from a running server's data directory).
pub fn parse_accounts(text: &str) -> Result<AccountsConfig> {
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let json = body
        .trim_start()
        .strip_prefix("accounts:")
        .ok_or_else(|| BusError::Config("accounts.conf does not start with `accounts:`".into()))?;
    serde_json::from_str(json).map_err(|e| BusError::Config(format!("accounts.conf: {e}")))
}

/// What the server configuration `accounts` says that the registry does not, one line per
/// disagreement, naming the subsystem or role. Empty when they agree.
pub fn check_accounts(accounts: &AccountsConfig) -> Vec<String> {
    let subsystems: Vec<Subsystem> = registry::subsystems().into_iter().copied().collect();
    check_accounts_with(&subsystems, accounts)
}

/// [`check_accounts`] against the given subsystems.
pub fn check_accounts_with(subsystems: &[Subsystem], accounts: &AccountsConfig) -> Vec<String> {
    let mut problems = Vec::new();
    let user = |name: &str| {
        accounts
            .iter()
            .flat_map(|(a, acc)| acc.users.iter().map(move |u| (a, u)))
            .find(|(_, u)| u.user == name)
    };
    let expected = roles_for(subsystems);
    for role in &expected {
        match user(&role.name) {
            None => problems.push(format!(
                "role {}: no such user in the server configuration",
                role.name
            )),
            Some((account, u)) => {
                if account != role.account {
                    problems.push(format!(
                        "role {}: in account {account}, the registry says {}",
                        role.name, role.account
                    ));
                }
                if u.permissions != role.permissions {
                    problems.push(format!(
                        "role {}: its permissions differ from what the registry derives",
                        role.name
                    ));
                }
            }
        }
    }
    for s in subsystems {
        let role = s.adapter_role();
        let Some((_, u)) = user(&role) else {
            problems.push(format!(
                "subsystem {}: its adapter role {role} is not in the server configuration",
                s.name
            ));
            continue;
        };
        if !u.permissions.publish.allow.contains(&s.subjects()) {
            problems.push(format!(
                "subsystem {}: {role} may not publish {}",
                s.name,
                s.subjects()
            ));
        }
        if let Some((_, ingress)) = user("ingress") {
            if !ingress.permissions.publish.allow.contains(&s.subjects()) {
                problems.push(format!(
                    "subsystem {}: the ingress may not publish {}",
                    s.name,
                    s.subjects()
                ));
            }
        }
    }
    let known: std::collections::BTreeSet<&str> =
        expected.iter().map(|r| r.name.as_str()).collect();
    // Agencies' accounts are data (the agency registry), checked by `crate::agencies`.
    for (a, acc) in accounts
        .iter()
        .filter(|(a, _)| *a == BUS_ACCOUNT || *a == SYSTEM_ACCOUNT)
    {
        for u in &acc.users {
            if !known.contains(u.user.as_str()) {
                problems.push(format!(
                    "user {} (account {a}) is not a role the registry knows",
                    u.user
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(role: &str) -> Result<String> {
        Ok(format!("pw-{role}"))
    }

    #[test]
    fn every_subsystem_has_an_adapter_role_that_publishes_only_its_own_subjects() {
        let roles = roles();
        for s in SUBSYSTEMS {
            let r = roles
                .iter()
                .find(|r| r.name == s.adapter_role())
                .unwrap_or_else(|| panic!("no role for {}", s.name));
            let allow = &r.permissions.publish.allow;
            assert!(allow.contains(&format!("egov.{}.>", s.name)));
            assert!(allow.contains(&format!("egov.dlq.{}.>", s.name)));
            assert!(!allow.iter().any(|a| a.starts_with("egov.")
                && !a.starts_with(&format!("egov.{}.", s.name))
                && !a.starts_with(&format!("egov.dlq.{}.", s.name))));
        }
        assert!(readers("DLQ").contains(&"auditor".to_string()));
        assert!(readers("AGENCIES").contains(&"auditor".to_string()));
    }

    #[test]
    fn only_the_operator_the_replay_service_and_the_admission_may_use_consumers_in_the_bus_account()
    {
        for role in roles().iter().filter(|r| r.account == BUS_ACCOUNT) {
            let consumers = role.permissions.publish.allow.iter().any(|s| {
                s == ">" || s.starts_with("$JS.API.CONSUMER.") || s.starts_with("$JS.ACK.")
            });
            assert_eq!(
                consumers,
                role.name == "operator" || role.name == "replay" || role.name == "admission",
                "{}: {:?}",
                role.name,
                role.permissions.publish.allow
            );
        }
        // Nobody but the operator reads the agencies' credentials bucket.
        for role in roles().iter().filter(|r| r.name != "operator") {
            assert!(
                !role
                    .permissions
                    .publish
                    .allow
                    .iter()
                    .any(|s| s.contains("KV_AGENCY_ACCESS")
                        || s.ends_with(".*")
                            && (s.starts_with("$JS.API.DIRECT.GET")
                                || s.starts_with("$JS.API.STREAM.INFO"))),
                "{}",
                role.name
            );
        }
    }

    #[test]
    fn the_rendered_accounts_read_back_and_agree_with_the_registry() {
        let accounts = accounts(&roles(), plain).unwrap();
        let text = render_accounts(&accounts).unwrap();
        assert!(text.starts_with("# Generated"));
        let back = parse_accounts(&text).unwrap();
        assert_eq!(back, accounts);
        assert_eq!(check_accounts(&back), Vec::<String>::new());
        assert_eq!(back[SYSTEM_ACCOUNT].users[0].user, "system");
        assert_eq!(back[BUS_ACCOUNT].jetstream.as_deref(), Some("enabled"));
    }

    #[test]
    fn a_server_configuration_that_disagrees_with_the_registry_is_named() {
        let mut accounts = accounts(&roles(), plain).unwrap();
        // The meetings adapter loses its subjects; an unknown user appears.
        let egov = accounts.get_mut(BUS_ACCOUNT).unwrap();
        let meetings = egov
            .users
            .iter_mut()
            .find(|u| u.user == "adapter-meetings")
            .unwrap();
        meetings
            .permissions
            .publish
            .allow
            .retain(|s| s != "egov.meetings.>");
        egov.users.retain(|u| u.user != "adapter-sso");
        egov.users.push(UserConfig {
            user: "mallory".into(),
            password: "x".into(),
            permissions: Permissions::default(),
            allowed_connection_types: Vec::new(),
        });
        let problems = check_accounts(&accounts);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("subsystem meetings") && p.contains("egov.meetings.>")),
            "{problems:#?}"
        );
        assert!(problems.iter().any(|p| p.contains("role adapter-meetings")));
        assert!(problems
            .iter()
            .any(|p| p.contains("role adapter-sso: no such user")));
        assert!(problems.iter().any(|p| p.contains("user mallory")));
    }

    #[test]
    fn a_registry_entry_the_server_configuration_lacks_is_named() {
        // The server runs with the configuration of today's registry; the registry gains a
        // subsystem nobody generated the configuration for.
        let accounts = accounts(&roles(), plain).unwrap();
        let mut with_parking = SUBSYSTEMS.to_vec();
        with_parking.push(Subsystem {
            name: "parking",
            stream: "PARKING",
            ..SUBSYSTEMS[0]
        });
        let problems = check_accounts_with(&with_parking, &accounts);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("subsystem parking:") && p.contains("adapter-parking")),
            "{problems:#?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("role ingress:")),
            "the ingress must publish egov.parking.> too: {problems:#?}"
        );
    }

    #[test]
    fn passwords_are_bcrypt_hashes_the_server_accepts() {
        let h = hash_password("secret").unwrap();
        assert!(h.starts_with("$2"));
        assert!(bcrypt::verify("secret", &h).unwrap());
    }
}
