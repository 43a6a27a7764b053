//! Schemas registered on a running bus (`lienthong subsystem register`, `schema register`),
//! beside the ones built into the binary.
//!
//! One process serves one bus, and the bus's registrations are the `REGISTRY` stream's
//! events ([`crate::registry::live`]): every process installs the same schemas from them.
//! Every [`super::SchemaRegistry`] looks here for what it does not hold itself, so the
//! publisher, the ingress, the replay service and the catalogue all know a type registered
//! after they started. A registered version never changes and is never removed (the
//! stream keeps its events), so each is compiled once and kept for the life of the process
//! (interned: a few kilobytes per version).

use std::collections::BTreeMap;
use std::sync::{LazyLock, RwLock};

use serde_json::Value;

use super::{SchemaFile, EMBEDDED};
use crate::subject::EventType;

/// One registered version of an event type's schema, compiled.
pub struct RegisteredSchema {
    pub file: SchemaFile,
    pub ty: String,
    pub version: u32,
    pub(super) validator: jsonschema::Validator,
    pub(super) arena: jsonschema::Validator<crate::arena_json::Arena>,
}

#[derive(Default)]
struct Installed {
    by_id: BTreeMap<String, &'static RegisteredSchema>,
    /// Type → its versions in order.
    by_type: BTreeMap<String, BTreeMap<u32, &'static RegisteredSchema>>,
}

static INSTALLED: LazyLock<RwLock<Installed>> = LazyLock::new(Default::default);

/// The built-in schemas, for the `$ref`s of registered ones (`common/v1.json`).
static BUILT_IN: LazyLock<Vec<(String, Value)>> = LazyLock::new(|| {
    let mut sources = Vec::new();
    super::collect_embedded(&EMBEDDED, &mut sources);
    sources
        .into_iter()
        .filter(|(path, _)| path.ends_with(".json") && super::example_location(path).is_none())
        .filter_map(|(_, bytes)| {
            let json: Value = serde_json::from_slice(&bytes).ok()?;
            let id = json.get("$id")?.as_str()?.to_string();
            Some((id, json))
        })
        .collect()
});

fn compile<F: jsonschema::json::Json>(schema: &Value) -> Result<jsonschema::Validator<F>, String> {
    let registry = jsonschema::Registry::new()
        .extend(BUILT_IN.iter().cloned())
        .and_then(|b| b.prepare())
        .map_err(|e| format!("the built-in schemas: {e}"))?;
    jsonschema::options_for::<F>()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_registry(&registry)
        .build(schema)
        .map_err(|e| format!("does not compile: {e}"))
}

/// Checks that a schema compiles as a registered one would (draft 2020-12, formats checked,
/// `$ref`s only to the bus's own schemas).
pub fn compile_registered(schema: &Value) -> Result<(), String> {
    compile::<jsonschema::json::SerdeJson>(schema).map(|_| ())
}

/// Why version `version` of `ty`'s schema cannot be installed (a bad type, a schema that
/// does not compile, another schema under its id), if it cannot. Nothing is installed.
pub fn conflict(ty: &str, version: u32, schema: &Value) -> Option<String> {
    let parsed = match EventType::parse(ty) {
        Ok(t) => t,
        Err(e) => return Some(e.to_string()),
    };
    let id = crate::registry::spec::schema_id(&parsed, version);
    if let Some(have) = by_id(&id) {
        return (have.file.json != *schema)
            .then(|| format!("{id}: a different schema is already registered"));
    }
    if schema.get("$id").and_then(Value::as_str) != Some(id.as_str()) {
        return Some(format!("{ty} v{version}: its `$id` must be {id}"));
    }
    compile_registered(schema)
        .err()
        .map(|e| format!("{ty} v{version}: {e}"))
}

/// Installs version `version` of `ty`'s schema. The same schema again changes nothing; a
/// different one under the same version is refused.
pub fn install(ty: &str, version: u32, schema: &Value) -> Result<(), String> {
    let parsed = EventType::parse(ty).map_err(|e| e.to_string())?;
    let id = crate::registry::spec::schema_id(&parsed, version);
    {
        let installed = INSTALLED.read().expect("registered schemas lock");
        if let Some(have) = installed.by_id.get(&id) {
            return if have.file.json == *schema {
                Ok(())
            } else {
                Err(format!("{id}: a different schema is already registered"))
            };
        }
    }
    let entry = RegisteredSchema {
        file: SchemaFile {
            path: format!(
                "{}/{}.{}/v{version}.json",
                parsed.subsystem, parsed.entity, parsed.action
            ),
            id: id.clone(),
            event: Some((parsed, version)),
            json: schema.clone(),
        },
        ty: ty.to_string(),
        version,
        validator: compile(schema)?,
        arena: compile(schema)?,
    };
    let mut installed = INSTALLED.write().expect("registered schemas lock");
    if installed.by_id.contains_key(&id) {
        return Ok(()); // installed meanwhile by another task, from the same event
    }
    let entry: &'static RegisteredSchema = Box::leak(Box::new(entry));
    installed.by_id.insert(id, entry);
    installed
        .by_type
        .entry(ty.to_string())
        .or_default()
        .insert(version, entry);
    Ok(())
}

/// The registered schema whose `$id` is `id`.
pub fn by_id(id: &str) -> Option<&'static RegisteredSchema> {
    INSTALLED
        .read()
        .expect("registered schemas lock")
        .by_id
        .get(id)
        .copied()
}

/// Version `version` of `ty`'s registered schema, or its newest.
pub fn by_type(ty: &str, version: Option<u32>) -> Option<&'static RegisteredSchema> {
    let installed = INSTALLED.read().expect("registered schemas lock");
    let versions = installed.by_type.get(ty)?;
    match version {
        Some(v) => versions.get(&v).copied(),
        None => versions.values().next_back().copied(),
    }
}

/// Every registered schema, by `$id`.
pub fn all() -> Vec<&'static RegisteredSchema> {
    INSTALLED
        .read()
        .expect("registered schemas lock")
        .by_id
        .values()
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn installed_schemas_are_found_and_a_changed_version_is_refused() {
        let ty = "vn.egov.schematest.thing.happened";
        let schema = json!({
            "$id": "https://lienthong.vn/schemas/schematest/thing.happened/v1.json",
            "type": "object",
            "required": ["ward"],
            "properties": {"ward": {"$ref": "https://lienthong.vn/schemas/common/v1.json#/$defs/ward"}}
        });
        install(ty, 1, &schema).unwrap();
        install(ty, 1, &schema).unwrap();
        let mut other = schema.clone();
        other["required"] = json!([]);
        assert!(install(ty, 1, &other).unwrap_err().contains("different"));
        let got = by_type(ty, None).unwrap();
        assert_eq!(got.version, 1);
        assert!(by_id(&got.file.id).is_some());
        let reg = super::super::SchemaRegistry::embedded().unwrap();
        let id = reg.schema_id(ty, None).unwrap().to_string();
        assert!(reg.is_schema_of(ty, &id));
        assert!(reg.validate(&id, &json!({"ward": "phu-thuy"})).is_ok());
        assert!(reg.validate(&id, &json!({})).is_err());
        assert!(reg.files().any(|f| f.id == id));
    }
}
