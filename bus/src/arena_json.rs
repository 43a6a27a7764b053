//! Validating an event's data held as sonic-rs's arena-allocated `Value` (one allocation
//! for the whole document, parsed several times faster than a `serde_json::Value`), through
//! jsonschema's `Json` trait. Newtypes: neither the trait nor the value is ours.

use std::borrow::Cow;

use jsonschema::json::{Array, Json, JsonNumber, Node, NodeIdentity, Object};
use jsonschema::JsonType;
use sonic_rs::{JsonContainerTrait, JsonNumberTrait, JsonValueTrait};

/// The representation: data parsed by sonic-rs.
pub struct Arena;

/// One node of a sonic-rs document.
#[derive(Clone, Copy)]
pub struct ArenaNode<'a>(pub &'a sonic_rs::Value);

/// An object of a sonic-rs document.
#[derive(Clone, Copy)]
pub struct ArenaObject<'a>(&'a sonic_rs::Object);

/// An array of a sonic-rs document.
#[derive(Clone, Copy)]
pub struct ArenaArray<'a>(&'a sonic_rs::Array);

/// A number, with the text serde_json would give it (for messages and exact comparisons).
pub struct ArenaNumber(sonic_rs::Number);

impl Json for Arena {
    type Node<'a> = ArenaNode<'a>;
    type PreparedKey = String;
    // An object is a list of members, searched in order: a pass over a few of them costs
    // less than the lookups it replaces.
    const KEYS_PER_LOOKUP: usize = 4;
    type StringBuffer = sonic_rs::Value;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(
        buffer: &mut sonic_rs::Value,
        string: &str,
        f: impl FnOnce(ArenaNode<'_>) -> T,
    ) -> T {
        *buffer = sonic_rs::Value::from(string);
        f(ArenaNode(buffer))
    }
}

impl JsonNumber for ArenaNumber {
    fn as_u64(&self) -> Option<u64> {
        self.0.as_u64()
    }
    fn as_i64(&self) -> Option<i64> {
        self.0.as_i64()
    }
    fn as_f64(&self) -> Option<f64> {
        self.0.as_f64()
    }
    fn as_str(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_number().to_string())
    }
    fn to_number(&self) -> Cow<'_, serde_json::Number> {
        let n = if let Some(u) = self.0.as_u64() {
            serde_json::Number::from(u)
        } else if let Some(i) = self.0.as_i64() {
            serde_json::Number::from(i)
        } else {
            // sonic-rs holds only finite numbers.
            self.0
                .as_f64()
                .and_then(serde_json::Number::from_f64)
                .unwrap_or_else(|| serde_json::Number::from(0))
        };
        Cow::Owned(n)
    }
}

impl<'a> Node<'a, Arena> for ArenaNode<'a> {
    type Object = ArenaObject<'a>;
    type Array = ArenaArray<'a>;
    type Number = ArenaNumber;

    fn as_object(&self) -> Option<ArenaObject<'a>> {
        self.0.as_object().map(ArenaObject)
    }
    fn as_array(&self) -> Option<ArenaArray<'a>> {
        self.0.as_array().map(ArenaArray)
    }
    fn as_string(&self) -> Option<Cow<'a, str>> {
        self.0.as_str().map(Cow::Borrowed)
    }
    fn as_number(&self) -> Option<ArenaNumber> {
        self.0.as_number().map(ArenaNumber)
    }
    fn as_boolean(&self) -> Option<bool> {
        self.0.as_bool()
    }
    fn is_null(&self) -> bool {
        self.0.is_null()
    }
    fn json_type(&self) -> JsonType {
        match self.0.get_type() {
            sonic_rs::JsonType::Null => JsonType::Null,
            sonic_rs::JsonType::Boolean => JsonType::Boolean,
            sonic_rs::JsonType::Number => JsonType::Number,
            sonic_rs::JsonType::String => JsonType::String,
            sonic_rs::JsonType::Array => JsonType::Array,
            sonic_rs::JsonType::Object => JsonType::Object,
        }
    }
    // Cold paths only: error messages, `const`/`enum`, `uniqueItems`.
    fn to_value(&self) -> Cow<'a, serde_json::Value> {
        Cow::Owned(
            serde_json::from_str(&sonic_rs::to_string(self.0).unwrap_or_default())
                .unwrap_or_default(),
        )
    }
    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(std::ptr::from_ref(self.0) as usize))
    }
}

impl<'a> Object<'a, Arena> for ArenaObject<'a> {
    type Node = ArenaNode<'a>;
    type MemberName = &'a str;
    type MembersIter = ArenaMembers<'a>;

    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, key: &String) -> Option<ArenaNode<'a>> {
        self.0.get(key).map(ArenaNode)
    }
    fn members(&self) -> Self::MembersIter {
        ArenaMembers(self.0.iter())
    }
}

/// An object's members as nodes: a named iterator rather than a `Map` over a function
/// pointer, which the validators called indirectly for every member.
pub struct ArenaMembers<'a>(sonic_rs::value::object::Iter<'a>);

impl<'a> Iterator for ArenaMembers<'a> {
    type Item = (&'a str, ArenaNode<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k, ArenaNode(v)))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<'a> Array<'a, Arena> for ArenaArray<'a> {
    type Node = ArenaNode<'a>;
    type ElementsIter = std::iter::Map<
        std::slice::Iter<'a, sonic_rs::Value>,
        fn(&'a sonic_rs::Value) -> ArenaNode<'a>,
    >;

    fn len(&self) -> usize {
        self.0.len()
    }
    fn elements(&self) -> Self::ElementsIter {
        self.0
            .iter()
            .map(ArenaNode as fn(&'a sonic_rs::Value) -> ArenaNode<'a>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_representation_keeps_jsonschemas_contract() {
        let doc: sonic_rs::Value =
            sonic_rs::from_str(&jsonschema::json::conformance::document().to_string()).unwrap();
        jsonschema::json::conformance::assert_conformance::<Arena>(&ArenaNode(&doc));
    }
}

#[cfg(test)]
mod agreement {
    use crate::SchemaRegistry;

    #[test]
    fn every_example_is_judged_the_same_as_with_serde_json() {
        let registry = SchemaRegistry::embedded().unwrap();
        assert!(!registry.examples().is_empty());
        for ex in registry.examples() {
            let arena: sonic_rs::Value = sonic_rs::from_str(&ex.json.to_string()).unwrap();
            assert_eq!(
                registry.is_valid_arena(&ex.schema_id, &arena),
                Some(registry.validate(&ex.schema_id, &ex.json).is_ok()),
                "{}",
                ex.path
            );
        }
    }
}
