//! Cross-checks the subsystem registry (`lienthong_bus::registry`) against everything that
//! must agree with it: the server configuration a running server uses, the streams it has,
//! the schemas folder, and the replay service's read models. Each check returns one line per
//! disagreement, naming the subsystem (or stream, role, read model) and what differs.

use std::collections::BTreeSet;
use std::path::Path;

use async_nats::jetstream;
use futures::TryStreamExt;
use lienthong_bus::registry::{self, Subsystem};
use lienthong_bus::roles;
use lienthong_bus::SchemaRegistry;
use lienthong_replay::read_models::ReadModel;

use crate::error::StackError;

/// A stream as the server has it: name and subjects.
pub type ObservedStream = (String, Vec<String>);

/// The server configuration in `server_dir` (its generated `accounts.conf`).
pub fn check_server_config(subsystems: &[Subsystem], server_dir: &Path) -> Vec<String> {
    let path = server_dir.join(lienthong_bus::server::ACCOUNTS_CONF);
    match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|t| roles::parse_accounts(&t).map_err(|e| e.to_string()))
    {
        Ok(accounts) => roles::check_accounts_with(subsystems, &accounts),
        Err(e) => vec![format!("server configuration {}: {e}", path.display())],
    }
}

/// The streams a server has.
pub fn check_streams(subsystems: &[Subsystem], streams: &[ObservedStream]) -> Vec<String> {
    let mut problems = Vec::new();
    for s in subsystems {
        match streams.iter().find(|(name, _)| name == s.stream) {
            None => problems.push(format!(
                "subsystem {}: the server has no stream {}",
                s.name, s.stream
            )),
            Some((_, subjects)) if subjects != &vec![s.subjects()] => problems.push(format!(
                "subsystem {}: stream {} captures {subjects:?}, the registry says {}",
                s.name,
                s.stream,
                s.subjects()
            )),
            Some(_) => {}
        }
    }
    let known: BTreeSet<&str> = subsystems
        .iter()
        .map(|s| s.stream)
        .chain(registry::SYSTEM_STREAMS.iter().map(|s| s.name))
        .collect();
    for (name, subjects) in streams {
        if subjects.iter().any(|x| x.starts_with("egov.")) && !known.contains(name.as_str()) {
            problems.push(format!(
                "stream {name} captures {subjects:?} but no subsystem of the registry names it"
            ));
        }
    }
    problems
}

/// The schemas folder: every subsystem has event types, every folder of event types is a
/// subsystem (or the bus's own `dlq`, `audit`).
pub fn check_schemas(subsystems: &[Subsystem], schemas: &SchemaRegistry) -> Vec<String> {
    let with_types: BTreeSet<String> = schemas
        .event_types()
        .filter_map(|(ty, _, _)| lienthong_bus::EventType::parse(ty).ok())
        .map(|t| t.subsystem)
        .collect();
    let mut problems = Vec::new();
    for s in subsystems {
        if !with_types.contains(s.name) {
            problems.push(format!(
                "subsystem {}: no event schema under schemas/{}/",
                s.name, s.name
            ));
        }
    }
    for folder in &with_types {
        let known = subsystems.iter().any(|s| s.name == folder)
            || registry::SYSTEM_STREAMS
                .iter()
                .any(|s| s.subject_root == folder);
        if !known {
            problems.push(format!(
                "schemas/{folder}/ defines event types, but no subsystem of the registry is named {folder}"
            ));
        }
    }
    problems
}

/// The replay service's read models: each subsystem's projections and KPI section exist and
/// fold its stream; each read model folds a stream the registry knows.
pub fn check_read_models(subsystems: &[Subsystem], models: &[ReadModel]) -> Vec<String> {
    let mut problems = Vec::new();
    for s in subsystems {
        for p in s.projections {
            match models.iter().find(|m| m.projection.name() == *p) {
                None => problems.push(format!(
                    "subsystem {}: the replay service has no read model {p}",
                    s.name
                )),
                Some(m) if m.projection.stream() != s.stream => problems.push(format!(
                    "subsystem {}: read model {p} folds {}, not {}",
                    s.name,
                    m.projection.stream(),
                    s.stream
                )),
                Some(_) => {}
            }
        }
        if let Some(section) = s.kpi_section {
            let found = models.iter().any(|m| {
                m.kpi.as_ref().is_some_and(|k| k.name == section)
                    && s.projections.contains(&m.projection.name())
            });
            if !found {
                problems.push(format!(
                    "subsystem {}: no read model of it has the KPI section {section}",
                    s.name
                ));
            }
        }
    }
    for m in models {
        let stream = m.projection.stream();
        let owner = subsystems.iter().find(|s| s.stream == stream);
        match owner {
            None => problems.push(format!(
                "read model {} folds {stream}, which no subsystem of the registry has",
                m.projection.name()
            )),
            Some(s) if !s.projections.contains(&m.projection.name()) => problems.push(format!(
                "read model {} folds {stream}, but subsystem {} does not list it",
                m.projection.name(),
                s.name
            )),
            Some(_) => {}
        }
    }
    problems
}

/// The streams of a running server (as a role that may list them).
pub async fn observed_streams(js: &jetstream::Context) -> Result<Vec<ObservedStream>, StackError> {
    let streams: Vec<_> = js.streams().try_collect().await.map_err(|e| {
        StackError::Bus(lienthong_bus::BusError::Refused {
            operation: "listing streams".into(),
            reason: e.to_string(),
        })
    })?;
    Ok(streams
        .into_iter()
        .map(|i| (i.config.name, i.config.subjects))
        .collect())
}

/// Every check against a running server (its data directory and an operator connection).
pub async fn check_all(
    js: &jetstream::Context,
    server_dir: &Path,
    schemas: &SchemaRegistry,
) -> Result<Vec<String>, StackError> {
    let subsystems = registry::SUBSYSTEMS;
    let mut problems = check_server_config(subsystems, server_dir);
    problems.extend(check_streams(subsystems, &observed_streams(js).await?));
    problems.extend(check_schemas(subsystems, schemas));
    problems.extend(check_read_models(
        subsystems,
        &lienthong_replay::read_models::all(),
    ));
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parking() -> Vec<Subsystem> {
        let mut s = registry::SUBSYSTEMS.to_vec();
        s.push(Subsystem {
            name: "parking",
            stream: "PARKING",
            projections: &["parking"],
            kpi_section: Some("parking"),
            ..registry::SUBSYSTEMS[0]
        });
        s
    }

    #[test]
    fn a_subsystem_without_schemas_or_read_model_is_named() {
        let schemas = SchemaRegistry::embedded().unwrap();
        assert_eq!(
            check_schemas(registry::SUBSYSTEMS, &schemas),
            Vec::<String>::new()
        );
        let models = lienthong_replay::read_models::all();
        assert_eq!(
            check_read_models(registry::SUBSYSTEMS, &models),
            Vec::<String>::new()
        );
        let p = parking();
        let problems = check_schemas(&p, &schemas);
        assert_eq!(
            problems,
            vec!["subsystem parking: no event schema under schemas/parking/"]
        );
        let problems = check_read_models(&p, &models);
        assert!(
            problems.iter().any(|x| x.contains("no read model parking")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|x| x.contains("KPI section parking")),
            "{problems:?}"
        );
        // And the other way: a registry that forgot meetings leaves its schemas and read model
        // unclaimed.
        let without: Vec<Subsystem> = registry::SUBSYSTEMS
            .iter()
            .filter(|s| s.name != "meetings")
            .copied()
            .collect();
        assert!(check_schemas(&without, &schemas)
            .iter()
            .any(|x| x.contains("schemas/meetings/")));
        assert!(check_read_models(&without, &models)
            .iter()
            .any(|x| x.contains("read model meetings folds MEETINGS")));
    }

    #[test]
    fn streams_that_differ_from_the_registry_are_named() {
        let mut streams: Vec<ObservedStream> = lienthong_bus::topology::streams()
            .into_iter()
            .map(|s| (s.name.to_string(), vec![s.subject]))
            .collect();
        assert_eq!(
            check_streams(registry::SUBSYSTEMS, &streams),
            Vec::<String>::new()
        );
        streams.retain(|(n, _)| n != "MEETINGS");
        streams.push(("PARKING".into(), vec!["egov.parking.>".into()]));
        let problems = check_streams(registry::SUBSYSTEMS, &streams);
        assert!(problems
            .iter()
            .any(|p| p == "subsystem meetings: the server has no stream MEETINGS"));
        assert!(problems.iter().any(|p| p.starts_with("stream PARKING")));
    }
}
