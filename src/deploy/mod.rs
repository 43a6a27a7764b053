//! A city's deployment, described once: the hub's nodes, the ward, agency and witness sites,
//! where each runs and how the others reach it ([`Inventory`], read from a TOML file), and
//! from it one bundle per host ([`plan`]), the registrations on the running hub ([`apply`]),
//! and a check of the running deployment from outside ([`check`]).
//!
//! See `docs/deployment.md` for the inventory's format and the bundles' contents.

pub mod apply;
pub mod check;
pub mod plan;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::StackError;

/// The inventory: every host of the city's bus and what runs on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// The city's name (bundles' and units' descriptions).
    pub city: String,
    /// The organisation named in the certificates (`pki init`).
    #[serde(default = "default_organisation")]
    pub organisation: String,
    #[serde(default)]
    pub ports: Ports,
    /// The hub's nodes: one (a single server) or three or more (a cluster, every stream at as
    /// many replicas).
    pub hub: Vec<HubNode>,
    /// Ward, agency and witness sites.
    #[serde(default)]
    pub site: Vec<SiteHost>,
    /// Callers of the hub's CloudEvents ingress (its tokens are generated and kept in the
    /// planner's state; the bundle holds their hashes). No caller: no central ingress.
    #[serde(default)]
    pub caller: Vec<IngressCaller>,
    /// The most each hub node's JetStream store may hold (`max_file_store`, e.g. `500GB`;
    /// default 64GB): see docs/operations.md, "Sizing the stores".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_store: Option<String>,
}

/// A caller of the hub's ingress: who, and what it may publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressCaller {
    pub name: String,
    /// `source`s it may publish: exact URIs, or prefixes ending in `*`.
    pub sources: Vec<String>,
    /// `type`s it may publish: exact, or prefixes ending in `*`.
    pub types: Vec<String>,
}

fn default_organisation() -> String {
    lienthong_bus::tls::pki::DEFAULT_ORGANISATION.to_string()
}

/// The ports every host uses (the same on each, each on its own address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ports {
    /// NATS clients (TLS).
    pub nats: u16,
    /// Routes between the hub's nodes (mutual TLS).
    pub routes: u16,
    /// Sites' leaf links to the hub (mutual TLS, certificates mapped to accounts).
    pub leaf: u16,
    /// The read models, dashboard and catalogue (HTTPS) on the node that runs the components,
    /// and an agency site's own read models.
    pub http: u16,
    /// The CloudEvents ingress (HTTPS): the hub's, and each ward site's.
    pub ingress: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            nats: 4222,
            routes: 6222,
            leaf: 7422,
            http: 8080,
            ingress: 8090,
        }
    }
}

/// A node of the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubNode {
    /// Its server name (`n1`, …): unique, also its files' names.
    pub name: String,
    /// The address the others reach it at (and its certificate names).
    pub address: IpAddr,
    /// DNS names it is also reached by.
    #[serde(default)]
    pub dns: Vec<String>,
    /// Runs the components (replay service and dashboard, webhook deliverer, ingress, audit
    /// checkpoints) and the registrations. Default: the first node.
    #[serde(default)]
    pub components: bool,
}

/// A site: a ward's or an agency's own server, or an auditor's witness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteHost {
    /// Its name (a ward's, an agency's — the agency's name on the bus —, a witness's).
    pub name: String,
    pub role: SiteRole,
    /// Its own JetStream domain (1–16 of a–z 0–9).
    pub domain: String,
    pub address: IpAddr,
    #[serde(default)]
    pub dns: Vec<String>,
    /// An agency: the streams granted to it (mirrored at its site).
    #[serde(default)]
    pub streams: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteRole {
    Ward,
    Agency,
    Witness,
    /// A standby centre: mirrors every stream and bucket; `lienthong standby promote` makes
    /// it the centre.
    Standby,
}

impl SiteRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ward => "ward",
            Self::Agency => "agency",
            Self::Witness => "witness",
            Self::Standby => "standby",
        }
    }
}

fn invalid(what: impl std::fmt::Display) -> StackError {
    StackError::Config(what.to_string())
}

impl Inventory {
    /// Reads and checks an inventory file; errors name the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, StackError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StackError::io(format!("reading {}", path.display()), e))?;
        let inv: Self =
            toml::from_str(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        inv.check()
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        Ok(inv)
    }

    /// Names unique and well formed, addresses unique, one or three or more hub nodes, at
    /// most one node running the components; nothing that could break out of a file it is
    /// written into (a configuration, a unit, a script).
    pub fn check(&self) -> Result<(), String> {
        for (what, text) in [("city", &self.city), ("organisation", &self.organisation)] {
            if text.trim().is_empty()
                || text
                    .chars()
                    .any(|c| c.is_control() || matches!(c, '"' | '\\' | '$' | '`' | '%'))
            {
                return Err(format!(
                    "{what} {text:?}: give a name without control characters, quotes, backslashes, $, ` or %"
                ));
            }
        }
        if let Some(size) = &self.max_store {
            lienthong_bus::server::check_store_size(size).map_err(|e| format!("max_store: {e}"))?;
        }
        let mut callers = BTreeSet::new();
        for c in &self.caller {
            lienthong_bus::sites::check_name(&c.name).map_err(|_| {
                format!(
                    "caller name {:?}: use 1 to 32 of a–z 0–9 -, starting with a letter",
                    c.name
                )
            })?;
            if !callers.insert(c.name.clone()) {
                return Err(format!("the caller {} is given twice", c.name));
            }
        }
        match self.hub.len() {
            0 => return Err("no [[hub]] node".into()),
            2 => return Err(
                "two hub nodes cannot keep a majority when one is lost: give one, or three or more"
                    .into(),
            ),
            _ => {}
        }
        if self.hub.iter().filter(|n| n.components).count() > 1 {
            return Err("components = true on more than one hub node".into());
        }
        let mut names = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        let mut domains = BTreeSet::new();
        let hosts = self
            .hub
            .iter()
            .map(|n| (&n.name, n.address))
            .chain(self.site.iter().map(|s| (&s.name, s.address)));
        for (name, address) in hosts {
            lienthong_bus::sites::check_name(name).map_err(|e| e.to_string())?;
            // Names the bundles' files take for themselves.
            if name == "ca" || name.ends_with("-link") {
                return Err(format!(
                    "the host name {name} is reserved (ca, *-link): choose another"
                ));
            }
            if !names.insert(name.clone()) {
                return Err(format!("the name {name} is given twice"));
            }
            if !addresses.insert(address) {
                return Err(format!("the address {address} is given twice ({name})"));
            }
        }
        for s in &self.site {
            lienthong_bus::sites::check_domain(&s.domain).map_err(|e| e.to_string())?;
            if !domains.insert(s.domain.clone()) {
                return Err(format!("the domain {} is given twice", s.domain));
            }
            match s.role {
                SiteRole::Agency => {
                    if s.streams.is_empty() {
                        return Err(format!(
                            "agency site {}: give the streams granted to it (streams = [\"FIELD_REPORTS\"])",
                            s.name
                        ));
                    }
                    for stream in &s.streams {
                        if !lienthong_bus::registry::grantable_streams()
                            .iter()
                            .any(|g| g == stream)
                        {
                            return Err(format!(
                                "agency site {}: {stream} is not a stream that can be granted ({})",
                                s.name,
                                lienthong_bus::registry::grantable_streams().join(", ")
                            ));
                        }
                    }
                }
                _ if !s.streams.is_empty() => {
                    return Err(format!(
                        "site {}: streams are granted to agencies only",
                        s.name
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The node that runs the components: the one marked, or the first.
    pub fn components_node(&self) -> &HubNode {
        self.hub
            .iter()
            .find(|n| n.components)
            .unwrap_or(&self.hub[0])
    }

    /// Every hub node's client address: what clients are given (`NATS_URL`).
    pub fn nats_url(&self) -> String {
        self.hub
            .iter()
            .map(|n| format!("tls://{}", socket(n.address, self.ports.nats)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every hub node's leaf address, for the sites' `--hub`.
    pub fn leaf_urls(&self) -> Vec<String> {
        self.hub
            .iter()
            .map(|n| format!("nats-leaf://{}", socket(n.address, self.ports.leaf)))
            .collect()
    }
}

/// `addr:port`, with brackets for IPv6.
pub fn socket(address: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(address, port).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXAMPLE: &str = include_str!("../../examples/city.toml");

    #[test]
    fn the_example_inventory_parses_and_checks() {
        let inv: Inventory = toml::from_str(EXAMPLE).unwrap();
        inv.check().unwrap();
        assert_eq!(inv.hub.len(), 3);
        assert_eq!(inv.components_node().name, "n1");
        assert!(inv.nats_url().starts_with("tls://"));
    }

    #[test]
    fn mistakes_are_named() {
        let mut inv: Inventory = toml::from_str(EXAMPLE).unwrap();
        inv.hub.truncate(2);
        assert!(inv.check().unwrap_err().contains("majority"));
        let mut inv: Inventory = toml::from_str(EXAMPLE).unwrap();
        inv.site[0].address = inv.hub[0].address;
        assert!(inv.check().unwrap_err().contains("twice"));
        let e = toml::from_str::<Inventory>(&EXAMPLE.replace("city =", "citty =")).unwrap_err();
        assert!(e.to_string().contains("citty"), "{e}");
    }
}
