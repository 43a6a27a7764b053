//! A small element tree over quick-xml: local names (namespaces ignored), text, children.
//! Enough to read edXML packages without a schema binding.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::error::RecordError;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element at `path` (child names) below this one.
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, name| e.child(name))
    }

    /// Trimmed text at `path`, `None` when missing or empty.
    pub fn text_at(&self, path: &[&str]) -> Option<String> {
        self.at(path)
            .map(|e| e.text.trim().to_string())
            .filter(|t| !t.is_empty())
    }

    /// Every descendant named `name`, depth first.
    pub fn descendants<'a>(&'a self, name: &'a str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.descendants(name, out);
        }
    }
}

fn local(name: &str) -> String {
    match name.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => name.to_string(),
    }
}

/// Parses a document into its root element.
pub fn parse(text: &str) -> Result<Element, RecordError> {
    let bad = |reason: &str| RecordError::malformed("XML", None, reason);
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let event = reader.read_event().map_err(|e| {
            RecordError::malformed("XML", Some(reader.buffer_position()), e.to_string())
        })?;
        match event {
            Event::Start(e) => stack.push(Element {
                name: local(e.name().as_ref()),
                ..Default::default()
            }),
            Event::Empty(e) => {
                let el = Element {
                    name: local(e.name().as_ref()),
                    ..Default::default()
                };
                stack
                    .last_mut()
                    .ok_or_else(|| bad("unbalanced elements"))?
                    .children
                    .push(el);
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| bad("unbalanced elements"))?;
                stack
                    .last_mut()
                    .ok_or_else(|| bad("unbalanced elements"))?
                    .children
                    .push(el);
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c.into_inner());
                }
            }
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => match r.xml10_content().as_ref() {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => return Err(bad(&format!("unknown entity &{other};"))),
                    },
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(bad("it ends inside an element"));
    }
    let root = stack.pop().ok_or_else(|| bad("empty document"))?;
    root.children
        .into_iter()
        .next()
        .ok_or_else(|| bad("no root element"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_text_and_entities() {
        let root = parse(
            r#"<?xml version="1.0"?><a:x xmlns:a="u"><a:y>1 &amp; 2</a:y><z/><y>3&#33;</y></a:x>"#,
        )
        .unwrap();
        assert_eq!(root.name, "x");
        assert_eq!(root.text_at(&["y"]).unwrap(), "1 & 2");
        assert_eq!(root.children_named("y").count(), 2);
        assert!(root.child("z").is_some());
        assert_eq!(root.children[2].text, "3!");
        assert!(parse("<a><b></a>").is_err());
    }
}
