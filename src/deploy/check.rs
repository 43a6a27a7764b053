//! `lienthong deploy check`: a running deployment, checked from outside against its
//! inventory — every node and site reachable over TLS with a certificate from the city's CA
//! naming the address it was reached at (and how long it has left), the cluster formed with
//! every stream at its replicas and a leader, every ward linked and sourcing, every agency
//! site and the components' HTTPS services answering.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lienthong_bus::tls::pki::{inspect_der, Expiry};
use lienthong_bus::ConnectSettings;

use super::{Inventory, SiteRole};

/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One thing checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

fn check(what: impl Into<String>, result: Result<String, String>) -> Check {
    let (ok, detail) = match result {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    Check {
        what: what.into(),
        ok,
        detail,
    }
}

/// Everything of `inv`, checked with the operator's credentials and the city's CA.
pub async fn check_deployment(
    inv: &Inventory,
    operator: &ConnectSettings,
    ca: &Path,
) -> Vec<Check> {
    let mut out = Vec::new();
    let tls = match lienthong_bus::tls::client_config(Some(ca)) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            out.push(check("the CA", Err(e.to_string())));
            return out;
        }
    };
    let p = inv.ports;
    for node in &inv.hub {
        let addr = SocketAddr::new(node.address, p.nats);
        out.push(check(
            format!("hub {} NATS {addr}", node.name),
            presented(addr, &tls, true).await,
        ));
    }
    let components = inv.components_node();
    let http = http_client(ca);
    out.push(check(
        format!(
            "hub {} read models https://{}",
            components.name,
            SocketAddr::new(components.address, p.http)
        ),
        https_health(&http, SocketAddr::new(components.address, p.http), &tls).await,
    ));
    if !inv.caller.is_empty() {
        out.push(check(
            format!("hub {} ingress", components.name),
            https_health(&http, SocketAddr::new(components.address, p.ingress), &tls).await,
        ));
    }
    match operator.connect("lienthong-deploy-check").await {
        Err(e) => out.push(check("the operator's connection", Err(e.to_string()))),
        Ok(client) => {
            let js = async_nats::jetstream::new(client);
            out.extend(streams(&js, inv.hub.len()).await);
            match lienthong_bus::sites::admin::access(&js).await {
                Err(e) => out.push(check("the site registry", Err(e.to_string()))),
                Ok(access) => {
                    for site in inv.site.iter().filter(|s| s.role == SiteRole::Ward) {
                        let Some(record) = access.sites.iter().find(|r| r.name == site.name) else {
                            out.push(check(
                                format!("ward {}", site.name),
                                Err("not registered (deploy apply)".into()),
                            ));
                            continue;
                        };
                        let result = match lienthong_bus::sites::admin::sourcing(&js, record).await
                        {
                            Err(e) => Err(e.to_string()),
                            Ok(states) => {
                                let stale: Vec<String> = states
                                    .iter()
                                    .filter(|s| s.active_seconds_ago.is_none_or(|a| a > 30.0))
                                    .map(|s| s.stream.clone())
                                    .collect();
                                let lag: u64 = states.iter().map(|s| s.lag).sum();
                                let want = lienthong_bus::sites::ward_streams().len();
                                if states.len() < want {
                                    Err(format!(
                                        "sourced by {} of the hub's {want} streams (deploy apply)",
                                        states.len()
                                    ))
                                } else if stale.is_empty() {
                                    Ok(format!(
                                        "linked, {} streams sourcing, lag {lag}",
                                        states.len()
                                    ))
                                } else {
                                    Err(format!("not sourcing: {}", stale.join(", ")))
                                }
                            }
                        };
                        out.push(check(
                            format!("ward {} linked and sourcing", site.name),
                            result,
                        ));
                    }
                }
            }
        }
    }
    for site in &inv.site {
        let addr = SocketAddr::new(site.address, p.nats);
        out.push(check(
            format!("{} {} NATS {addr}", site.role.as_str(), site.name),
            presented(addr, &tls, true).await,
        ));
        let http_port = match site.role {
            SiteRole::Agency => Some(p.http),
            SiteRole::Ward => Some(p.ingress),
            SiteRole::Witness | SiteRole::Standby => None,
        };
        if let Some(port) = http_port {
            out.push(check(
                format!(
                    "{} {} HTTPS {}",
                    site.role.as_str(),
                    site.name,
                    SocketAddr::new(site.address, port)
                ),
                https_health(&http, SocketAddr::new(site.address, port), &tls).await,
            ));
        }
    }
    out
}

fn http_client(ca: &Path) -> reqwest::Client {
    // The CA was loaded already (client_config): were it unusable here, every HTTPS probe
    // would fail verification, not pass.
    lienthong_deliver::roots_of(ca)
        .unwrap_or_default()
        .into_iter()
        .fold(reqwest::Client::builder().timeout(PROBE_TIMEOUT), |b, c| {
            b.add_root_certificate(c)
        })
        .build()
        .unwrap_or_default()
}

/// The certificate `addr` presents (after NATS's INFO when `nats`), verified, and how long it
/// has left.
async fn presented(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    nats: bool,
) -> Result<String, String> {
    let der = tokio::time::timeout(
        PROBE_TIMEOUT,
        lienthong_bus::tls::presented_certificate(addr, tls.clone(), nats),
    )
    .await
    .unwrap_or_else(|_| Err("no answer in time".into()))?;
    let info = inspect_der(&addr.to_string(), &der).map_err(|e| e.to_string())?;
    match info.expiry(chrono::Utc::now()) {
        Expiry::Valid(d) => Ok(format!("TLS, {} ({d} days left)", info.subject)),
        e => Err(format!("TLS, {}: {e}", info.subject)),
    }
}

/// An HTTPS service: its certificate (verified) and its `/healthz`.
async fn https_health(
    http: &reqwest::Client,
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<String, String> {
    let cert = presented(addr, tls, false).await?;
    let health = http
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .map_err(|e| format!("{cert}; /healthz: {e}"))?;
    let body: serde_json::Value = health.json().await.unwrap_or_default();
    match body["status"].as_str() {
        Some("ok") => Ok(format!("{cert}; healthy")),
        Some(other) => Err(format!("{cert}; /healthz says {other}: {body}")),
        None => Err(format!("{cert}; /healthz answered {body}")),
    }
}

/// Every stream of the contract: at its replicas, with a leader, every replica current.
async fn streams(js: &async_nats::jetstream::Context, replicas: usize) -> Vec<Check> {
    let mut out = Vec::new();
    for spec in lienthong_bus::topology::streams() {
        let result = match js.get_stream(spec.name).await {
            Err(e) => Err(format!("not there: {e}")),
            Ok(mut s) => match s.info().await {
                Err(e) => Err(e.to_string()),
                Ok(info) => {
                    let n = info.config.num_replicas;
                    let cluster = info.cluster.clone();
                    let leader = cluster.as_ref().and_then(|c| c.leader.clone());
                    let behind: Vec<String> = cluster
                        .as_ref()
                        .map(|c| {
                            c.replicas
                                .iter()
                                .filter(|r| !r.current || r.offline)
                                .map(|r| r.name.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    if n != replicas {
                        Err(format!("{n} replicas, the inventory has {replicas} nodes"))
                    } else if replicas > 1 && leader.is_none() {
                        Err("no leader".into())
                    } else if !behind.is_empty() {
                        Err(format!("replicas not current: {}", behind.join(", ")))
                    } else {
                        Ok(format!(
                            "{n} replica(s){}",
                            leader.map(|l| format!(", leader {l}")).unwrap_or_default()
                        ))
                    }
                }
            },
        };
        out.push(check(format!("stream {}", spec.name), result));
    }
    out
}
