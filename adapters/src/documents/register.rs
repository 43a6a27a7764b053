//! The document register (*sổ văn bản*) export: one JSON object per line.
//!
//! Every registered document, paper or electronic, with its secrecy level. A document whose
//! `secrecy` is anything but `thuong` (normal) never reaches the bus in any form: it is
//! withheld before mapping, counted, and logged without content. `registered_by` (a person)
//! is never read.

use chrono::{DateTime, FixedOffset, NaiveDate};
use lienthong_bus::{Classification, EventDraft, EventType};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::edxml::SUBSYSTEM;
use crate::pii::mask;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegisterOrgan {
    pub organ_id: String,
    #[serde(default)]
    pub organ_name: Option<String>,
}

/// One register line (personal fields are not read).
#[derive(Debug, Clone, Deserialize)]
pub struct RegisterEntry {
    pub register_id: String,
    pub direction: String,
    pub organ_id: String,
    #[serde(default)]
    pub organ_name: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub document_type: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub promulgation_date: Option<NaiveDate>,
    #[serde(default)]
    pub recipients: Vec<RegisterOrgan>,
    pub channel: String,
    pub secrecy: String,
    #[serde(default)]
    pub urgency: Option<String>,
    pub registered_at: DateTime<FixedOffset>,
}

/// What to do with one register line.
#[derive(Debug)]
pub enum RegisterOutcome {
    Publish(Box<EventDraft>),
    /// Secret: nothing about it may leave the adapter.
    Withheld,
}

/// Only `thuong` (normal) documents may be published.
pub fn is_public_level(secrecy: &str) -> bool {
    secrecy == "thuong"
}

/// Reads the secrecy level alone, so a secret line is withheld even if the rest is broken.
pub fn secrecy_of(line: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()?
        .get("secrecy")?
        .as_str()
        .map(str::to_string)
}

pub fn map(entry: &RegisterEntry) -> RegisterOutcome {
    if !is_public_level(&entry.secrecy) {
        return RegisterOutcome::Withheld;
    }
    let data = json!({
        "register_id": entry.register_id,
        "direction": entry.direction,
        "organ": {"organ_id": entry.organ_id, "organ_name": entry.organ_name},
        "code": entry.code,
        "document_type": entry.document_type,
        "subject": entry.subject.as_deref().map(mask),
        "promulgation_date": entry.promulgation_date.map(|d| d.to_string()),
        "recipients": entry.recipients,
        "channel": entry.channel,
        "urgency": entry.urgency,
        "registered_at": entry.registered_at.to_rfc3339(),
    });
    RegisterOutcome::Publish(Box::new(EventDraft::new(
        EventType::new(SUBSYSTEM, "document", "registered"),
        format!("register/{}", entry.register_id),
        entry.register_id.clone(),
        entry.registered_at.to_utc(),
        data,
        Classification::Internal,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = include_str!("../../fixtures/documents/register.jsonl");

    #[test]
    fn secret_documents_never_become_events() {
        let mut published = Vec::new();
        let mut withheld = 0;
        for line in REGISTER.lines().filter(|l| !l.trim().is_empty()) {
            let entry: RegisterEntry = serde_json::from_str(line).unwrap();
            match map(&entry) {
                RegisterOutcome::Publish(e) => published.push(e),
                RegisterOutcome::Withheld => withheld += 1,
            }
        }
        assert_eq!(withheld, 2, "mat and toi_mat");
        assert_eq!(published.len(), 11);
        let text =
            serde_json::to_string(&published.iter().map(|e| &e.data).collect::<Vec<_>>()).unwrap();
        for s in [
            "Nội dung mật",
            "Nội dung tối mật",
            "1247/UBND-NC",
            "1302/UBND-NC",
            "Nguyễn Thị Hồng",
            "hong.nt@",
            "0912345678",
            "registered_by",
        ] {
            assert!(!text.contains(s), "{s} leaked");
        }
        assert!(published.iter().any(|e| e.key == "VBDE 2023.000009 *"));
        assert_eq!(secrecy_of(r#"{"secrecy":"tuyet_mat","oops"#), None);
        assert_eq!(
            secrecy_of(r#"{"secrecy":"tuyet_mat"}"#).as_deref(),
            Some("tuyet_mat")
        );
    }
}
