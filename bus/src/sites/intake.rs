//! The hub's intake: what ward sites stored, before the hub admits it.
//!
//! Every ward's own streams are sourced into one stream of the bus account, [`INTAKE`], not
//! into the central streams: NATS's sourcing carries them over the leaf link (resuming where
//! it stopped, flow-controlled), and the admission ([`super::admission`]) checks each one
//! before it enters a central stream. The intake keeps what each site sent, as it sent it —
//! the record of what was offered, admitted or not — under `intake.<domain>.<subject>`: the
//! hub's sourcing moves each ward's subjects there ([`source`]), so the subject says which
//! ward sent it. Its configuration's metadata names the site of each JetStream domain
//! (`lienthong.site.<domain>`: `<site>`), written by the operator with the ward's sources;
//! the admission reads it to know whose an event is.

use std::collections::BTreeMap;

use async_nats::jetstream::{self, stream};

use super::{local_stream, SiteRecord};
use crate::error::{retrying, BusError, Result};

/// The intake stream of the hub.
pub const INTAKE: &str = "INTAKE";
/// The prefix of the metadata keys that name a domain's site.
pub const SITE_KEY: &str = "lienthong.site.";

/// The intake's configuration (no subjects of its own: it only sources the wards), at
/// `replicas` copies.
pub fn config(replicas: usize) -> stream::Config {
    stream::Config {
        name: INTAKE.into(),
        description: Some(
            "What ward sites stored, sourced over their links, before the hub admits it into \
             the central streams (source, schema, ids); kept as it came"
                .into(),
        ),
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: replicas.max(1),
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        duplicate_window: crate::topology::DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// The first token of every subject in the intake: `intake.<domain>.<the ward's subject>`.
pub const SUBJECT_PREFIX: &str = "intake";

/// The source, in the intake, of ward `site`'s own copy of `stream`: only the contract's
/// subjects of that stream, each moved under `intake.<domain>.` by the hub's own
/// configuration — so the subject names the ward it came from, and no ward can say otherwise
/// (headers a site writes prove nothing).
pub fn source(site: &SiteRecord, stream: &str) -> stream::Source {
    let mut s = super::source(site, stream);
    if let Some(filter) = s.filter_subject.take() {
        s.subject_transforms = vec![stream::SubjectTransform {
            destination: format!("{SUBJECT_PREFIX}.{}.{filter}", site.domain),
            source: filter,
        }];
    }
    s
}

/// The domain of the ward an intake message came from, and the subject the ward stored it
/// under, read from its subject in the intake.
pub fn origin(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix(SUBJECT_PREFIX)?.strip_prefix('.')?;
    let (domain, original) = rest.split_once('.')?;
    (!domain.is_empty() && !original.is_empty()).then_some((domain, original))
}

/// Which site each domain is, as the intake's metadata says.
pub fn sites_by_domain(config: &stream::Config) -> BTreeMap<String, String> {
    config
        .metadata
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(SITE_KEY)?.to_string(), v.clone())))
        .collect()
}

/// Adds (`record`) or removes (`None`) ward site `name`'s sources in the intake (created if
/// missing, at `replicas` copies); returns whether it changed. The domain's site stays named
/// in the metadata after a removal, for what the intake still holds of it.
pub async fn set_sources(
    js: &jetstream::Context,
    name: &str,
    record: Option<&SiteRecord>,
    replicas: usize,
) -> Result<bool> {
    retrying(|| async {
        let mut config = match js.get_stream(INTAKE).await {
            Ok(mut s) => s
                .info()
                .await
                .map_err(|e| BusError::nats(format!("reading stream {INTAKE}"), e))?
                .config
                .clone(),
            Err(_) => {
                js.create_stream(config(replicas))
                    .await
                    .map_err(|e| BusError::nats(format!("creating stream {INTAKE}"), e))?;
                config(replicas)
            }
        };
        let sources = config.sources.get_or_insert_with(Vec::new);
        let before = sources.clone();
        sources.retain(|s| !super::is_from(s, name));
        if let Some(r) = record {
            for spec in super::ward_streams() {
                sources.push(source(r, spec.name));
            }
            config
                .metadata
                .insert(format!("{SITE_KEY}{}", r.domain), r.name.clone());
        }
        if config.sources.as_ref() == Some(&before) {
            return Ok(false);
        }
        js.update_stream(config)
            .await
            .map_err(|e| BusError::nats(format!("changing the sources of {INTAKE}"), e))?;
        Ok(true)
    })
    .await
}

/// How far the intake has sourced one ward: per stream of the ward, what is still to come.
pub async fn sourcing(
    js: &jetstream::Context,
    site: &SiteRecord,
) -> Result<Vec<super::admin::SourceState>> {
    let Ok(mut stream) = js.get_stream(INTAKE).await else {
        return Ok(Vec::new());
    };
    let info = stream
        .info()
        .await
        .map_err(|e| BusError::nats(format!("reading stream {INTAKE}"), e))?;
    Ok(super::ward_streams()
        .into_iter()
        .filter_map(|spec| {
            let local = local_stream(spec.name, &site.domain);
            info.sources
                .iter()
                .find(|s| s.name == local)
                .map(|s| super::admin::SourceState {
                    stream: spec.name.to_string(),
                    lag: s.lag,
                    active_seconds_ago: s.active.map(|d| d.as_secs_f64()),
                })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_the_subject_the_hub_gives() {
        assert_eq!(
            origin("intake.phuthuy.egov.field_reports.report.X.submitted"),
            Some(("phuthuy", "egov.field_reports.report.X.submitted"))
        );
        assert_eq!(origin("egov.field_reports.report.X.submitted"), None);
        assert_eq!(origin("intake.phuthuy"), None);
        assert_eq!(origin("intake..egov.x"), None);
        let ward = SiteRecord {
            name: "phu-thuy".into(),
            domain: "phuthuy".into(),
            password: String::new(),
            kind: Default::default(),
            certificate: None,
            imported: true,
        };
        let s = source(&ward, "FIELD_REPORTS");
        assert_eq!(s.filter_subject, None);
        assert_eq!(
            (
                s.subject_transforms[0].source.as_str(),
                s.subject_transforms[0].destination.as_str()
            ),
            (
                "egov.field_reports.>",
                "intake.phuthuy.egov.field_reports.>"
            )
        );
    }
}
