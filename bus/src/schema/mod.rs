//! The schema registry: every JSON Schema (2020-12) under `schemas/`, compiled once.
//!
//! Layout of the tree (the same paths are served under `/schemas/` by the replay service):
//!
//! ```text
//! schemas/common/v1.json                                  shared $defs ($ref'd by others)
//! schemas/<subsystem>/<entity>.<action>/v<N>.json         event type vn.egov.<subsystem>.<entity>.<action>, version N
//! schemas/<subsystem>/<entity>.<action>/v<N>.examples/valid-*.json    data that must validate
//! schemas/<subsystem>/<entity>.<action>/v<N>.examples/invalid-*.json  data that must not
//! ```
//!
//! Every schema's `$id` is [`SCHEMA_BASE`] followed by its path, and that `$id` is the
//! event's `dataschema`. `$ref`s resolve against the registry only: no schema is ever
//! fetched over the network. The tree is embedded in the binary at build time; a directory
//! can be loaded instead (`--schemas DIR`). Schemas registered on the running bus
//! ([`registered`]) are found by every registry as well.

use std::collections::BTreeMap;

// Looked up per event by `$id` or type (publishing, validating, folding); a fixed set of
// keys, hashed faster than by the standard SipHash.
use foldhash::HashMap;
use std::path::Path;

use include_dir::{include_dir, Dir};
use serde_json::Value;

use crate::error::{BusError, Result, Violation};
use crate::subject::EventType;

pub mod registered;
pub use registered::compile_registered;

/// The annotation of a schema version whose readers upcast the previous version's data (it
/// may then break it; the replay service's upcasters must know the step).
pub const UPCAST_KEYWORD: &str = "x-lienthong-upcast";

/// The base of every schema `$id`.
pub const SCHEMA_BASE: &str = "https://lienthong.vn/schemas/";

static EMBEDDED: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../schemas");

/// One schema file.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// Path relative to the schema root, `/`-separated.
    pub path: String,
    /// The `$id` (= `dataschema`).
    pub id: String,
    /// The event type and version this schema defines, if it defines one.
    pub event: Option<(EventType, u32)>,
    pub json: Value,
}

/// An example beside a schema, expected to validate (`valid-*`) or not (`invalid-*`).
#[derive(Debug, Clone)]
pub struct Example {
    pub path: String,
    pub schema_id: String,
    pub expect_valid: bool,
    pub json: Value,
}

/// One schema compiled for the JSON representation `F` (draft 2020-12, formats checked,
/// references resolved in `registry`).
fn compile<F: jsonschema::json::Json>(
    registry: &jsonschema::Registry,
    file: &SchemaFile,
) -> Result<jsonschema::Validator<F>, BusError> {
    jsonschema::options_for::<F>()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_registry(registry)
        .build(&file.json)
        .map_err(|e| BusError::Schema {
            path: file.path.clone(),
            reason: format!("does not compile: {e}"),
        })
}

/// Compiled schemas, looked up by `$id` or by event type and version.
pub struct SchemaRegistry {
    files: BTreeMap<String, SchemaFile>,
    validators: HashMap<String, jsonschema::Validator>,
    /// The same schemas, compiled for data held as an arena value ([`crate::arena_json`]).
    arena_validators: HashMap<String, jsonschema::Validator<crate::arena_json::Arena>>,
    by_type: BTreeMap<(String, u32), String>,
    /// Type → `$id` of its newest version (the publish path looks this up per event).
    latest: HashMap<String, String>,
    /// `$id` → the type it defines.
    type_of: HashMap<String, String>,
    examples: Vec<Example>,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("schemas", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SchemaRegistry {
    /// The schemas built into this binary.
    pub fn embedded() -> Result<Self> {
        let mut sources = Vec::new();
        collect_embedded(&EMBEDDED, &mut sources);
        Self::from_sources(sources)
    }

    /// The schemas in a directory laid out as described in the module docs.
    pub fn from_dir(root: &Path) -> Result<Self> {
        let mut sources = Vec::new();
        collect_dir(root, root, &mut sources)?;
        if sources.is_empty() {
            return Err(BusError::Config(format!(
                "no schema files under {}",
                root.display()
            )));
        }
        Self::from_sources(sources)
    }

    /// `from_dir` when a directory is given, else the embedded schemas.
    pub fn load(dir: Option<&Path>) -> Result<Self> {
        match dir {
            Some(d) => Self::from_dir(d),
            None => Self::embedded(),
        }
    }

    fn from_sources(sources: Vec<(String, Vec<u8>)>) -> Result<Self> {
        let mut files = BTreeMap::new();
        let mut examples = Vec::new();
        let mut by_type = BTreeMap::new();
        for (path, bytes) in sources {
            if !path.ends_with(".json") {
                continue;
            }
            let json: Value = serde_json::from_slice(&bytes).map_err(|e| BusError::Schema {
                path: path.clone(),
                reason: format!("not JSON: {e}"),
            })?;
            if let Some((dir, name)) = example_location(&path) {
                let schema_path = format!("{dir}.json");
                let expect_valid = if name.starts_with("valid") {
                    true
                } else if name.starts_with("invalid") {
                    false
                } else {
                    return Err(BusError::Schema {
                        path,
                        reason: "example names start with `valid` or `invalid`".into(),
                    });
                };
                examples.push(Example {
                    path,
                    schema_id: format!("{SCHEMA_BASE}{schema_path}"),
                    expect_valid,
                    json,
                });
                continue;
            }
            let id = json
                .get("$id")
                .and_then(Value::as_str)
                .ok_or_else(|| BusError::Schema {
                    path: path.clone(),
                    reason: "has no `$id`".into(),
                })?
                .to_string();
            let expected_id = format!("{SCHEMA_BASE}{path}");
            if id != expected_id {
                return Err(BusError::Schema {
                    path,
                    reason: format!(
                        "`$id` is {id:?}, expected {expected_id:?} (the id follows the path)"
                    ),
                });
            }
            let event = event_of_path(&path);
            if let Some((ty, version)) = &event {
                by_type.insert((ty.to_string(), *version), id.clone());
            }
            files.insert(
                id.clone(),
                SchemaFile {
                    path,
                    id,
                    event,
                    json,
                },
            );
        }

        let registry = jsonschema::Registry::new()
            .extend(files.values().map(|f| (f.id.clone(), f.json.clone())))
            .and_then(|b| b.prepare())
            .map_err(|e| BusError::Schema {
                path: "(registry)".into(),
                reason: e.to_string(),
            })?;
        let mut validators = HashMap::default();
        let mut arena_validators = HashMap::default();
        for file in files.values() {
            validators.insert(file.id.clone(), compile(&registry, file)?);
            arena_validators.insert(file.id.clone(), compile(&registry, file)?);
        }
        for ex in &examples {
            if !files.contains_key(&ex.schema_id) {
                return Err(BusError::Schema {
                    path: ex.path.clone(),
                    reason: format!(
                        "example for a schema that does not exist ({})",
                        ex.schema_id
                    ),
                });
            }
        }
        let mut latest = HashMap::default();
        let mut type_of = HashMap::default();
        for ((ty, _), id) in &by_type {
            // Ascending versions: the last insert per type is the newest.
            latest.insert(ty.clone(), id.clone());
            type_of.insert(id.clone(), ty.clone());
        }
        Ok(Self {
            files,
            validators,
            arena_validators,
            by_type,
            latest,
            type_of,
            examples,
        })
    }

    /// The `$id` of the schema for `ty`: the given version, or the newest one.
    pub fn schema_id(&self, ty: &str, version: Option<u32>) -> Result<&str> {
        let unknown = || BusError::UnknownSchema {
            ty: ty.to_string(),
            version,
        };
        match version {
            Some(v) => self.by_type.get(&(ty.to_string(), v)).map(String::as_str),
            None => self.latest.get(ty).map(String::as_str),
        }
        .or_else(|| registered::by_type(ty, version).map(|r| r.file.id.as_str()))
        .ok_or_else(unknown)
    }

    /// Whether `schema_id` is a registered schema of the event type `ty`.
    pub fn is_schema_of(&self, ty: &str, schema_id: &str) -> bool {
        match self.type_of.get(schema_id) {
            Some(t) => t == ty,
            None => registered::by_id(schema_id).is_some_and(|r| r.ty == ty),
        }
    }

    /// Validates `data` against the schema `schema_id`, collecting every violation.
    pub fn validate(&self, schema_id: &str, data: &Value) -> Result<(), ValidationFailure> {
        let validator = match self.validators.get(schema_id) {
            Some(v) => v,
            None => {
                &registered::by_id(schema_id)
                    .ok_or(ValidationFailure::UnknownSchema)?
                    .validator
            }
        };
        if validator.is_valid(data) {
            return Ok(());
        }
        let violations = validator
            .iter_errors(data)
            .map(|e| Violation {
                pointer: e.instance_path().to_string(),
                message: e.to_string(),
                schema_pointer: e.schema_path().to_string(),
            })
            .collect();
        Err(ValidationFailure::Violations(violations))
    }

    /// Whether `data`, held as an arena value, is valid against the schema `schema_id`
    /// (`None`: no such schema). Violations are named by [`SchemaRegistry::validate`].
    pub fn is_valid_arena(&self, schema_id: &str, data: &sonic_rs::Value) -> Option<bool> {
        let node = crate::arena_json::ArenaNode(data);
        match self.arena_validators.get(schema_id) {
            Some(v) => Some(v.is_valid(node)),
            None => registered::by_id(schema_id).map(|r| r.arena.is_valid(node)),
        }
    }

    /// Every schema: the built-in ones by `$id`, then the registered ones.
    pub fn files(&self) -> impl Iterator<Item = &SchemaFile> {
        self.files
            .values()
            .chain(registered::all().into_iter().map(|r| &r.file))
    }

    /// A schema by its path relative to the root (as served under `/schemas/`).
    pub fn file_by_path(&self, path: &str) -> Option<&SchemaFile> {
        let id = format!("{SCHEMA_BASE}{path}");
        self.files
            .get(&id)
            .or_else(|| registered::by_id(&id).map(|r| &r.file))
    }

    /// Every event type with its versions: the built-in ones, then the registered ones.
    pub fn event_types(&self) -> impl Iterator<Item = (&str, u32, &str)> {
        self.by_type
            .iter()
            .map(|((ty, v), id)| (ty.as_str(), *v, id.as_str()))
            .chain(
                registered::all()
                    .into_iter()
                    .map(|r| (r.ty.as_str(), r.version, r.file.id.as_str())),
            )
    }

    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// Checks each version of each event's schema against the previous version: it must
    /// accept everything the previous one did (see [`crate::evolution`]).
    pub fn check_evolution(&self) -> Vec<String> {
        let schemas: BTreeMap<String, Value> = self
            .files
            .iter()
            .map(|(id, f)| (id.clone(), f.json.clone()))
            .collect();
        let resolver = crate::evolution::Resolver { schemas: &schemas };
        let mut problems = Vec::new();
        let mut previous: Option<(&str, u32, &str)> = None;
        for ((ty, version), id) in &self.by_type {
            if let Some((pty, pversion, pid)) = previous {
                // A version whose readers upcast the previous one's data says so
                // (`x-lienthong-upcast`): its breaking changes are a migration, not a mistake.
                let migrated = self.files[id].json.get(UPCAST_KEYWORD).is_some();
                if pty == ty && !migrated {
                    for p in crate::evolution::breaking_changes(
                        &resolver,
                        pid,
                        &self.files[pid].json,
                        id,
                        &self.files[id].json,
                        "",
                    ) {
                        problems.push(format!("{ty} v{version} breaks v{pversion}: {p}"));
                    }
                }
            }
            previous = Some((ty.as_str(), *version, id.as_str()));
        }
        problems
    }

    /// Validates every example against its schema; returns what did not behave as named.
    pub fn check_examples(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for ex in &self.examples {
            match (self.validate(&ex.schema_id, &ex.json), ex.expect_valid) {
                (Ok(()), true) | (Err(ValidationFailure::Violations(_)), false) => {}
                (Ok(()), false) => problems.push(format!(
                    "{}: expected to be invalid, but validates",
                    ex.path
                )),
                (Err(ValidationFailure::Violations(v)), true) => problems.push(format!(
                    "{}: expected to be valid, but: {}",
                    ex.path,
                    v.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
                (Err(ValidationFailure::UnknownSchema), _) => {
                    problems.push(format!("{}: its schema is missing", ex.path))
                }
            }
        }
        problems
    }
}

/// Why data did not validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationFailure {
    UnknownSchema,
    Violations(Vec<Violation>),
}

/// `a/b/v1.examples/valid-x.json` → (`a/b/v1`, `valid-x.json`).
fn example_location(path: &str) -> Option<(&str, &str)> {
    let (dir, name) = path.rsplit_once('/')?;
    let dir = dir.strip_suffix(".examples")?;
    Some((dir, name))
}

/// `field_reports/report.submitted/v1.json` → (vn.egov.field_reports.report.submitted, 1).
fn event_of_path(path: &str) -> Option<(EventType, u32)> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() != 3 {
        return None;
    }
    let (entity, action) = parts[1].split_once('.')?;
    let version = parts[2]
        .strip_prefix('v')?
        .strip_suffix(".json")?
        .parse()
        .ok()?;
    Some((EventType::new(parts[0], entity, action), version))
}

fn collect_embedded(dir: &Dir<'_>, out: &mut Vec<(String, Vec<u8>)>) {
    for file in dir.files() {
        out.push((
            file.path().to_string_lossy().replace('\\', "/"),
            file.contents().to_vec(),
        ));
    }
    for sub in dir.dirs() {
        collect_embedded(sub, out);
    }
}

fn collect_dir(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| BusError::io(format!("reading {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BusError::io(format!("reading {}", dir.display()), e))?;
        let path = entry.path();
        if path.is_dir() {
            collect_dir(root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .map_err(|_| {
                    BusError::Config(format!("{} is outside {}", path.display(), root.display()))
                })?
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(&path)
                .map_err(|e| BusError::io(format!("reading {}", path.display()), e))?;
            out.push((rel, bytes));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_compile_and_examples_behave() {
        let reg = SchemaRegistry::embedded().unwrap();
        assert!(reg.event_types().count() >= 3);
        let problems = reg.check_examples();
        assert!(problems.is_empty(), "{problems:#?}");
        let problems = reg.check_evolution();
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(reg.examples().iter().any(|e| !e.expect_valid));
    }

    #[test]
    fn every_violation_is_reported_with_its_pointer() {
        let reg = SchemaRegistry::embedded().unwrap();
        let id = reg
            .schema_id("vn.egov.field_reports.report.submitted", None)
            .unwrap()
            .to_string();
        let data = serde_json::json!({
            "report_id": 5,
            "ward": "atlantis",
            "category": "CSDT",
        });
        let Err(ValidationFailure::Violations(v)) = reg.validate(&id, &data) else {
            panic!("expected violations")
        };
        let pointers: Vec<&str> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"/report_id"), "{pointers:?}");
        assert!(pointers.contains(&"/ward"), "{pointers:?}");
        assert!(
            pointers.contains(&""),
            "missing required reported at the root: {pointers:?}"
        );
    }

    #[test]
    fn paths_name_types() {
        let (t, v) = event_of_path("field_reports/report.submitted/v2.json").unwrap();
        assert_eq!(t.to_string(), "vn.egov.field_reports.report.submitted");
        assert_eq!(v, 2);
        assert!(event_of_path("common/v1.json").is_none());
        assert_eq!(
            example_location("a/b.c/v1.examples/valid-1.json"),
            Some(("a/b.c/v1", "valid-1.json"))
        );
    }
}
