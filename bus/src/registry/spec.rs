//! A subsystem described for registration on a running bus: the file an integrator writes
//! (`lienthong subsystem register SPEC`), checked before anything is created.
//!
//! ```toml
//! name = "devices"                         # types vn.egov.devices.…, subjects egov.devices.…
//! stream = "DEVICES"
//! title = "Environmental monitoring and water-level stations"
//! title_vi = "Trạm quan trắc môi trường và mực nước"
//! formats = "MQTT readings; monitoring data files (10/2021/TT-BTNMT)"
//! source = "urn:lienthong:phanthiet:devices"   # the CloudEvents source its publishers use
//! classification = "public"                # public | internal | confidential | restricted
//! audited = true                           # hash-chained, covered by signed checkpoints
//! grantable = true                         # agencies may be granted its stream
//! retention_days = 400                     # raw events kept this long; absent: for ever
//!                                          # (retention_seconds for short-lived data)
//! compatibility = "backward"               # how later schema versions must relate
//!
//! [[events]]
//! type = "vn.egov.devices.reading.measured"
//! schema = "reading.measured.v1.json"      # relative to this file
//! key = "/station"                         # the aggregate key in the data (JSON pointer)
//! time = "/measured_at"                    # the subsystem's time in the data
//! ```
//!
//! The schemas travel inside the registration (the event on `REGISTRY` holds them), so
//! every process of the bus can compile them without the integrator's files.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::Classification;
use crate::error::{BusError, Result};
use crate::schema::SCHEMA_BASE;
use crate::subject::EventType;

/// How a new version of an event's schema must relate to the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compatibility {
    /// The new version accepts everything the previous one did (readers of the new version
    /// read the old events): the schema registries' default.
    #[default]
    Backward,
    /// The previous version accepts everything the new one does (old readers read new events).
    Forward,
    /// Both.
    Full,
    /// Any change (not recommended: readers must cope).
    None,
}

impl Compatibility {
    /// Every way version `new` of a schema breaks this compatibility with version `old`,
    /// by the rules `lienthong schema check` applies to the compiled schemas
    /// ([`crate::evolution`]): backward, `new` accepts everything `old` did; forward, `old`
    /// accepts everything `new` does; full, both.
    pub fn breaking_changes(
        self,
        resolver: &crate::evolution::Resolver,
        old: (&str, &Value),
        new: (&str, &Value),
    ) -> Vec<String> {
        use crate::evolution::{acceptance_breaks, breaking_changes};
        let backward = || breaking_changes(resolver, old.0, old.1, new.0, new.1, "");
        let forward = || {
            acceptance_breaks(resolver, new.0, new.1, old.0, old.1)
                .into_iter()
                .map(|p| format!("{p} (the previous version would not accept what it allows)"))
                .collect::<Vec<_>>()
        };
        match self {
            Self::Backward => backward(),
            Self::Forward => forward(),
            Self::Full => backward().into_iter().chain(forward()).collect(),
            Self::None => Vec::new(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backward => "backward",
            Self::Forward => "forward",
            Self::Full => "full",
            Self::None => "none",
        }
    }
}

/// One event type of a spec file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    #[serde(rename = "type")]
    ty: String,
    /// A JSON Schema file, relative to the spec.
    schema: String,
    key: String,
    time: String,
}

/// A spec file as written (TOML, or JSON with the same fields).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: String,
    stream: String,
    title: String,
    title_vi: String,
    #[serde(default)]
    formats: String,
    source: String,
    #[serde(default)]
    classification: Classification,
    #[serde(default = "yes")]
    audited: bool,
    #[serde(default)]
    grantable: bool,
    #[serde(default)]
    retention_days: Option<u32>,
    #[serde(default)]
    retention_seconds: Option<u32>,
    #[serde(default)]
    compatibility: Compatibility,
    events: Vec<EventFile>,
}

const fn yes() -> bool {
    true
}

/// One event type of a registered subsystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSpec {
    #[serde(rename = "type")]
    pub ty: String,
    /// The schema's version (1 at registration; `schema register` adds the next ones).
    pub version: u32,
    /// The JSON Schema (2020-12), its `$id` set to the bus's.
    pub schema: Value,
    /// JSON pointer to the aggregate key in the data.
    pub key: String,
    /// JSON pointer to the subsystem's time (RFC 3339) in the data.
    pub time: String,
}

/// A subsystem registered on a running bus: what the registration event records and what
/// every part of the bus derives from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubsystemSpec {
    pub name: String,
    pub stream: String,
    pub title: String,
    pub title_vi: String,
    #[serde(default)]
    pub formats: String,
    pub source: String,
    pub classification: Classification,
    pub audited: bool,
    pub grantable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// The same in seconds, for short-lived data (and tests); at least 10; not with
    /// `retention_days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_seconds: Option<u32>,
    pub compatibility: Compatibility,
    pub events: Vec<EventSpec>,
}

fn invalid(at: &str, reason: impl Into<String>) -> BusError {
    BusError::Config(format!("{at}: {}", reason.into()))
}

impl SubsystemSpec {
    /// Reads a spec file (`.toml` or `.json`) and the schema files it names, and checks it.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BusError::io(format!("reading {}", path.display()), e))?;
        let shown = path.display().to_string();
        let file: SpecFile = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| invalid(&shown, e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| invalid(&shown, e.to_string()))?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut events = Vec::new();
        for (i, e) in file.events.iter().enumerate() {
            let schema_path = dir.join(&e.schema);
            let at = format!("{shown}: events[{i}] ({})", e.ty);
            let bytes = std::fs::read(&schema_path)
                .map_err(|err| invalid(&at, format!("schema {}: {err}", schema_path.display())))?;
            let schema: Value = serde_json::from_slice(&bytes).map_err(|err| {
                invalid(
                    &at,
                    format!("schema {}: not JSON: {err}", schema_path.display()),
                )
            })?;
            events.push(EventSpec {
                ty: e.ty.clone(),
                version: 1,
                schema,
                key: e.key.clone(),
                time: e.time.clone(),
            });
        }
        let mut spec = Self {
            name: file.name,
            stream: file.stream,
            title: file.title,
            title_vi: file.title_vi,
            formats: file.formats,
            source: file.source,
            classification: file.classification,
            audited: file.audited,
            grantable: file.grantable,
            retention_days: file.retention_days,
            retention_seconds: file.retention_seconds,
            compatibility: file.compatibility,
            events,
        };
        spec.set_ids(&shown)?;
        spec.check()?;
        Ok(spec)
    }

    /// Gives each schema the bus's `$id` ([`give_bus_id`]).
    fn set_ids(&mut self, shown: &str) -> Result<()> {
        for e in &mut self.events {
            let Ok(ty) = EventType::parse(&e.ty) else {
                continue; // named by check()
            };
            give_bus_id(&ty, e.version, &mut e.schema)
                .map_err(|r| invalid(&format!("{shown}: {} schema", e.ty), r))?;
        }
        Ok(())
    }

    /// Everything that can be checked without the bus: names, types, schemas, pointers.
    pub fn check(&self) -> Result<()> {
        let at = |field: &str| format!("subsystem {:?}: {field}", self.name);
        let name_ok = (2..=32).contains(&self.name.len())
            && self.name.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(invalid(
                &at("name"),
                "2 to 32 lower-case letters, digits and `_`, starting with a letter (it is a subject token and a part of every type)",
            ));
        }
        let stream_ok = (2..=32).contains(&self.stream.len())
            && self
                .stream
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !stream_ok {
            return Err(invalid(
                &at("stream"),
                format!(
                    "{:?}: 2 to 32 upper-case letters, digits and `_`",
                    self.stream
                ),
            ));
        }
        for (field, v) in [("title", &self.title), ("title_vi", &self.title_vi)] {
            if v.trim().is_empty() || v.len() > 200 {
                return Err(invalid(&at(field), "1 to 200 characters"));
            }
        }
        let source = expected_source(&self.name);
        if self.source != source {
            return Err(invalid(
                &at("source"),
                format!(
                    "{:?}: a registered subsystem speaks as {source:?} (the centre's namespace and its name: no ward's, no other subsystem's)",
                    self.source
                ),
            ));
        }
        let size = serde_json::to_vec(self).map_or(usize::MAX, |v| v.len());
        if size > MAX_SPEC_BYTES {
            return Err(invalid(
                &at("events"),
                format!(
                    "the description with its schemas is {size} bytes; at most {MAX_SPEC_BYTES} (it is recorded as one event)"
                ),
            ));
        }
        if self.retention_seconds.is_some_and(|s| s < 10)
            || (self.retention_seconds.is_some() && self.retention_days.is_some())
        {
            return Err(invalid(
                &at("retention_seconds"),
                "at least 10, and not with retention_days",
            ));
        }
        if self.retention_days == Some(0) {
            return Err(invalid(
                &at("retention_days"),
                "at least 1 (leave it out to keep events for ever)",
            ));
        }
        if self.events.is_empty() {
            return Err(invalid(&at("events"), "at least one event type"));
        }
        let mut seen = BTreeSet::new();
        for e in &self.events {
            let at = |field: &str| format!("subsystem {:?}: event {:?}: {field}", self.name, e.ty);
            let ty =
                EventType::parse(&e.ty).map_err(|err| invalid(&at("type"), err.to_string()))?;
            if ty.subsystem != self.name {
                return Err(invalid(
                    &at("type"),
                    format!("must be vn.egov.{}.<entity>.<action>", self.name),
                ));
            }
            if !seen.insert((e.ty.as_str(), e.version)) {
                return Err(invalid(&at("type"), "listed twice"));
            }
            check_event_schema(e).map_err(|reason| invalid(&at("schema"), reason))?;
        }
        Ok(())
    }

    /// The newest version of each event type.
    pub fn latest_events(&self) -> Vec<&EventSpec> {
        let mut out: Vec<&EventSpec> = Vec::new();
        for e in &self.events {
            match out.iter_mut().find(|o| o.ty == e.ty) {
                Some(o) if o.version < e.version => *o = e,
                Some(_) => {}
                None => out.push(e),
            }
        }
        out
    }

    /// The path of a schema under the schema tree (`<name>/<entity>.<action>/v<N>.json`).
    pub fn schema_path(e: &EventSpec) -> Option<String> {
        let ty = EventType::parse(&e.ty).ok()?;
        Some(format!(
            "{}/{}.{}/v{}.json",
            ty.subsystem, ty.entity, ty.action, e.version
        ))
    }
}

/// The most a description with its schemas may weigh (it is one event on `REGISTRY`).
pub const MAX_SPEC_BYTES: usize = 512 * 1024;

/// The source of registered subsystem `name`: `urn:lienthong:<city>:<name>`, in the
/// namespace of the centre's compiled subsystems (which wards may not take).
pub fn expected_source(name: &str) -> String {
    let city = super::SUBSYSTEMS[0]
        .default_source
        .strip_prefix("urn:lienthong:")
        .and_then(|r| r.split(':').next())
        .unwrap_or("city");
    format!("urn:lienthong:{city}:{name}")
}

/// Gives `schema` the bus's `$id` for version `version` of `ty` when it has none; one that
/// names another id is refused (its `$ref`s would not resolve the same way).
pub fn give_bus_id(
    ty: &EventType,
    version: u32,
    schema: &mut Value,
) -> std::result::Result<(), String> {
    let id = schema_id(ty, version);
    match schema.get("$id").and_then(Value::as_str) {
        None => {
            if let Some(o) = schema.as_object_mut() {
                o.insert("$id".into(), Value::String(id));
            }
            Ok(())
        }
        Some(have) if have == id => Ok(()),
        Some(have) => Err(format!(
            "`$id` {have:?}: leave it out (the bus gives it {id:?}) or use that"
        )),
    }
}

/// The bus's `$id` for version `version` of `ty`'s schema.
pub fn schema_id(ty: &EventType, version: u32) -> String {
    format!(
        "{SCHEMA_BASE}{}/{}.{}/v{version}.json",
        ty.subsystem, ty.entity, ty.action
    )
}

/// The property a JSON pointer names at the top of an object schema, and whether it is
/// required: `/station` → (`station`, schema of it).
fn pointed<'a>(schema: &'a Value, pointer: &str) -> std::result::Result<&'a Value, String> {
    let mut node = schema;
    let mut required = true;
    if !pointer.starts_with('/') || pointer.len() < 2 {
        return Err(format!(
            "{pointer:?} is not a JSON pointer to a field (e.g. \"/station\")"
        ));
    }
    for token in pointer[1..].split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        let props = node.get("properties").ok_or_else(|| {
            format!("{pointer:?}: the schema has no `properties` where {token:?} would be")
        })?;
        let is_required = node
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|n| n.as_str() == Some(token.as_str())));
        required &= is_required;
        node = props
            .get(&token)
            .ok_or_else(|| format!("{pointer:?}: the schema has no property {token:?}"))?;
    }
    if !required {
        return Err(format!(
            "{pointer:?}: must be `required` in the schema (every event needs it)"
        ));
    }
    Ok(node)
}

/// An event type's schema compiles alone (draft 2020-12; `$ref`s to the bus's common
/// definitions resolve), is an object, and holds the key and the time where the spec says.
pub(crate) fn check_event_schema(e: &EventSpec) -> std::result::Result<(), String> {
    if e.schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err("the data must be a JSON object (`\"type\": \"object\"`)".into());
    }
    crate::schema::compile_registered(&e.schema)?;
    let key = pointed(&e.schema, &e.key).map_err(|r| format!("key {r}"))?;
    if key.get("type").and_then(Value::as_str) != Some("string") {
        return Err(format!("key {:?}: must be a string in the schema", e.key));
    }
    let time = pointed(&e.schema, &e.time).map_err(|r| format!("time {r}"))?;
    if time.get("type").and_then(Value::as_str) != Some("string")
        || time.get("format").and_then(Value::as_str) != Some("date-time")
    {
        return Err(format!(
            "time {:?}: must be a string with `\"format\": \"date-time\"` (RFC 3339)",
            e.time
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> SubsystemSpec {
        SubsystemSpec {
            name: "gauges".into(),
            stream: "GAUGES".into(),
            title: "Water-level gauges".into(),
            title_vi: "Trạm đo mực nước".into(),
            formats: String::new(),
            source: "urn:lienthong:phanthiet:gauges".into(),
            classification: Classification::Public,
            audited: true,
            grantable: true,
            retention_days: Some(400),
            retention_seconds: None,
            compatibility: Compatibility::Backward,
            events: vec![EventSpec {
                ty: "vn.egov.gauges.level.measured".into(),
                version: 1,
                schema: json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "$id": "https://lienthong.vn/schemas/gauges/level.measured/v1.json",
                    "type": "object",
                    "required": ["gauge", "at", "level_cm"],
                    "properties": {
                        "gauge": {"type": "string"},
                        "at": {"type": "string", "format": "date-time"},
                        "level_cm": {"type": "number"}
                    }
                }),
                key: "/gauge".into(),
                time: "/at".into(),
            }],
        }
    }

    #[test]
    fn a_good_spec_passes() {
        spec().check().unwrap();
    }

    #[test]
    fn each_mistake_is_named() {
        let cases: Vec<(Box<dyn Fn(&mut SubsystemSpec)>, &str)> = vec![
            (Box::new(|s| s.name = "Gauges".into()), "name"),
            (Box::new(|s| s.stream = "gauges".into()), "stream"),
            (Box::new(|s| s.source = "not a uri".into()), "source"),
            (
                Box::new(|s| s.source = "urn:lienthong:phuthuy:gauges".into()),
                "the centre's namespace",
            ),
            (Box::new(|s| s.source = "urn:lienthong:*".into()), "source"),
            (Box::new(|s| s.retention_days = Some(0)), "retention_days"),
            (
                Box::new(|s| s.events[0].ty = "vn.egov.other.level.measured".into()),
                "must be vn.egov.gauges",
            ),
            (
                Box::new(|s| s.events[0].key = "/nope".into()),
                "no property \"nope\"",
            ),
            (
                Box::new(|s| s.events[0].time = "/gauge".into()),
                "date-time",
            ),
            (
                Box::new(|s| s.events[0].schema["required"] = json!(["gauge"])),
                "must be `required`",
            ),
            (
                Box::new(|s| s.events[0].schema["properties"]["level_cm"] = json!({"type": 5})),
                "compile",
            ),
            (
                Box::new(|s| {
                    let e = s.events[0].clone();
                    s.events.push(e)
                }),
                "listed twice",
            ),
        ];
        for (change, expected) in cases {
            let mut s = spec();
            change(&mut s);
            let e = s.check().unwrap_err().to_string();
            assert!(e.contains(expected), "{e} (expected {expected:?})");
        }
    }

    #[test]
    fn a_spec_file_and_its_schemas_are_read_and_given_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut schema = spec().events[0].schema.clone();
        schema.as_object_mut().unwrap().remove("$id");
        std::fs::write(dir.path().join("level.json"), schema.to_string()).unwrap();
        std::fs::write(
            dir.path().join("gauges.toml"),
            r#"
name = "gauges"
stream = "GAUGES"
title = "Water-level gauges"
title_vi = "Trạm đo mực nước"
source = "urn:lienthong:phanthiet:gauges"
classification = "public"
grantable = true
retention_days = 400

[[events]]
type = "vn.egov.gauges.level.measured"
schema = "level.json"
key = "/gauge"
time = "/at"
"#,
        )
        .unwrap();
        let read = SubsystemSpec::read(&dir.path().join("gauges.toml")).unwrap();
        assert_eq!(read, spec());
        std::fs::write(dir.path().join("bad.toml"), "name = 1").unwrap();
        let e = SubsystemSpec::read(&dir.path().join("bad.toml")).unwrap_err();
        assert!(e.to_string().contains("bad.toml"), "{e}");
    }
}
