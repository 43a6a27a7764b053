//! `lienthong deploy apply`: what a deployment needs on the running hub, from its inventory —
//! every stream provisioned at the hub's replicas, every ward and witness registered by its
//! link's certificate, every agency added with its grants and its site registered by
//! certificate. Idempotent: the components node's bundle runs it at every start.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong_bus::agencies::admin::AgencyAdmin;
use lienthong_bus::agencies::Grant;
use lienthong_bus::sites::{admin, SiteCertificate, SiteKind};
use lienthong_bus::{ConnectSettings, SchemaRegistry};

use super::{Inventory, SiteRole};
use crate::error::StackError;

/// How long the hub may take to form (its nodes to find each other, elect leaders).
pub const FORMING: Duration = Duration::from_secs(300);

/// The certificate of site `name` in `sites` (`<name>.crt`, from the bundle).
fn site_certificate(sites: &Path, name: &str) -> Result<SiteCertificate, StackError> {
    let path = sites.join(format!("{name}.crt"));
    let info = lienthong_bus::tls::pki::inspect(&path)?
        .into_iter()
        .next()
        .ok_or_else(|| StackError::Config(format!("{} holds no certificate", path.display())))?;
    Ok(SiteCertificate {
        subject: info.subject,
        pin: info.pin,
    })
}

/// Applies `inv` to the hub reached with `operator`; returns what it did, line by line.
pub async fn apply(
    inv: &Inventory,
    sites: &Path,
    credentials_dir: &Path,
    operator: &ConnectSettings,
    schemas: Arc<SchemaRegistry>,
) -> Result<Vec<String>, StackError> {
    let deadline = Instant::now() + FORMING;
    let (client, refusals) = loop {
        match operator.connect_watched("lienthong-deploy-apply").await {
            Ok(c) => break c,
            // Only a hub not up yet is waited for: a wrong setting (a CA file, a password
            // that would go in the clear) is said at once.
            Err(e @ lienthong_bus::BusError::Unavailable { .. }) if Instant::now() < deadline => {
                tracing::info!("waiting for the hub: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let js = async_nats::jetstream::new(client.clone());
    let mut done = Vec::new();
    let replicas = inv.hub.len();
    loop {
        match lienthong_bus::topology::provision_replicated(&js, replicas).await {
            Ok(p) => {
                done.extend(p.iter().map(|p| p.to_string()));
                break;
            }
            Err(e) if Instant::now() < deadline => {
                tracing::info!("waiting for the cluster to provision: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let agencies = AgencyAdmin::new(
        client,
        refusals,
        schemas,
        credentials_dir,
        &operator.url,
        "lienthong deploy apply",
    )
    .with_ca(operator.ca.clone());
    for site in &inv.site {
        let cert = site_certificate(sites, &site.name)?;
        match site.role {
            SiteRole::Ward | SiteRole::Witness | SiteRole::Standby => {
                let kind = match site.role {
                    SiteRole::Ward => SiteKind::Ward,
                    SiteRole::Witness => SiteKind::Witness,
                    _ => SiteKind::Standby,
                };
                // Registered again every time: a record already there is written unchanged,
                // a registration a failure left half done (its imports, its sources) is
                // completed.
                let r = admin::register(&js, &site.name, &site.domain, kind, Some(cert)).await?;
                done.push(format!(
                    "site {} ({}): registered by its certificate, {} sources added",
                    site.name,
                    site.role.as_str(),
                    r.sources_added
                ));
            }
            SiteRole::Agency => {
                let grants: Vec<Grant> = site
                    .streams
                    .iter()
                    .map(|s| Grant {
                        stream: s.clone(),
                        subjects: Vec::new(),
                    })
                    .collect();
                let registry = agencies.registry().await?;
                match registry.agencies.get(&site.name) {
                    None => {
                        agencies
                            .add(&site.name, grants, Some("from the inventory".into()))
                            .await?;
                        done.push(format!(
                            "agency {}: added ({})",
                            site.name,
                            site.streams.join(", ")
                        ));
                    }
                    Some(record) => {
                        let missing: Vec<Grant> = grants
                            .into_iter()
                            .filter(|g| !record.grants.iter().any(|h| h.stream == g.stream))
                            .collect();
                        if !missing.is_empty() {
                            let names: Vec<String> =
                                missing.iter().map(|g| g.stream.clone()).collect();
                            agencies
                                .grant(&site.name, missing, Some("from the inventory".into()))
                                .await?;
                            done.push(format!(
                                "agency {}: granted {}",
                                site.name,
                                names.join(", ")
                            ));
                        }
                    }
                }
                let current = admin::access(&js).await?;
                let same = current
                    .agencies
                    .get(&site.name)
                    .and_then(|h| h.site_certificate.as_ref())
                    .is_some_and(|c| c.subject == cert.subject);
                if !same {
                    admin::set_agency_site(&js, &site.name, Some(cert)).await?;
                    done.push(format!(
                        "agency {}'s site: registered by certificate",
                        site.name
                    ));
                }
            }
        }
    }
    Ok(done)
}
