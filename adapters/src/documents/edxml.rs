//! edXML packages (QCVN 102:2016/BTTTT) as exchanged between agencies, and their mapping.
//!
//! Kept: identifiers (`DocumentId`, organisation codes and names, number/notation, type,
//! promulgation date and place, subject line, recipients, due date, priority), the business
//! type and reason, and for each attachment its name, type, size and SHA-256. Never kept:
//! attachment bodies, the document's full content, the staff's name, phone and e-mail, the
//! signer's name, agencies' contact details, and the XML signature.

use base64::Engine;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use lienthong_bus::{Classification, EventDraft, EventType};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::RecordError;
use crate::pii::mask;
use crate::xml::{self, Element};

pub const SUBSYSTEM: &str = "documents";

/// An agency, by its QCVN 102 code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Organ {
    pub organ_id: String,
    pub organ_name: Option<String>,
    pub organization_in_charge: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attachment {
    pub name: String,
    pub content_type: Option<String>,
    /// Decoded size in bytes.
    pub size: Option<u64>,
    /// Hex SHA-256 of the decoded body.
    pub sha256: Option<String>,
}

/// A document message (new, revoke, update, replace).
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentMessage {
    pub from: Organ,
    pub to: Vec<Organ>,
    pub document_id: String,
    pub code_number: Option<String>,
    pub code_notation: Option<String>,
    pub promulgation_place: Option<String>,
    pub promulgation_date: Option<NaiveDate>,
    pub type_code: Option<String>,
    pub type_name: Option<String>,
    pub subject: Option<String>,
    pub due_date: Option<NaiveDate>,
    pub priority: Option<u32>,
    pub steering_type: Option<String>,
    /// `BussinessDocType`: 0 new, 1 revoke, 2 update, 3 replace.
    pub business_type: u32,
    pub business_reason: Option<String>,
    pub paper_copy: bool,
    /// When the sender's system sent it (first trace header).
    pub sent_at: Option<DateTime<FixedOffset>>,
    pub attachments: Vec<Attachment>,
}

/// A status message about a document (arrived, accepted, assigned, …).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusMessage {
    pub document_id: String,
    pub code: Option<String>,
    pub sender_organ_id: Option<String>,
    pub from: Organ,
    pub status_code: String,
    pub description: Option<String>,
    pub at: Option<DateTime<FixedOffset>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Package {
    Document(DocumentMessage),
    Status(StatusMessage),
}

/// edXML times are local (Việt Nam, UTC+7): `2023/11/20 09:15:42`.
fn local_time(text: &str) -> Option<DateTime<FixedOffset>> {
    let tz = FixedOffset::east_opt(7 * 3600)?;
    let naive = NaiveDateTime::parse_from_str(text.trim(), "%Y/%m/%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    tz.from_local_datetime(&naive).single()
}

fn date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y/%m/%d")
        .or_else(|_| NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d"))
        .ok()
}

fn organ(e: &Element) -> Option<Organ> {
    Some(Organ {
        organ_id: e.text_at(&["OrganId"])?,
        organ_name: e.text_at(&["OrganName"]),
        organization_in_charge: e.text_at(&["OrganizationInCharge"]),
    })
}

/// Parses an edXML package.
pub fn parse(text: &str) -> Result<Package, RecordError> {
    let root = xml::parse(text)?;
    if root.name != "edXML" {
        return Err(RecordError::invalid(
            "root element",
            format!("<{}>, expected <edXML>", root.name),
        ));
    }
    let header = root
        .at(&["edXMLEnvelope", "edXMLHeader"])
        .ok_or_else(|| RecordError::missing("edXMLEnvelope/edXMLHeader"))?;
    if let Some(status) = header.child("Status") {
        let document_id = status
            .text_at(&["ResponseFor", "DocumentId"])
            .ok_or_else(|| RecordError::missing("status ResponseFor/DocumentId"))?;
        return Ok(Package::Status(StatusMessage {
            document_id,
            code: status.text_at(&["ResponseFor", "Code"]),
            sender_organ_id: status.text_at(&["ResponseFor", "OrganId"]),
            from: status
                .child("From")
                .and_then(organ)
                .ok_or_else(|| RecordError::missing("status From/OrganId"))?,
            status_code: status
                .text_at(&["StatusCode"])
                .ok_or_else(|| RecordError::missing("status StatusCode"))?,
            description: status.text_at(&["Description"]),
            at: status.text_at(&["Timestamp"]).and_then(|t| local_time(&t)),
        }));
    }
    let mh = header
        .child("MessageHeader")
        .ok_or_else(|| RecordError::missing("MessageHeader (or Status)"))?;
    let document_id = mh
        .text_at(&["DocumentId"])
        .ok_or_else(|| RecordError::missing("DocumentId"))?;
    let trace = header.child("TraceHeaderList");
    let business = trace.and_then(|t| t.child("Bussiness"));
    let business_type = business
        .and_then(|b| b.text_at(&["BussinessDocType"]))
        .map(|t| {
            t.parse::<u32>().map_err(|_| {
                RecordError::invalid("BussinessDocType", format!("{t:?} is not a number"))
            })
        })
        .transpose()?
        .unwrap_or(0);
    if business_type > 3 {
        return Err(RecordError::invalid(
            "BussinessDocType",
            format!("{business_type} is not 0 (new), 1 (revoke), 2 (update) or 3 (replace)"),
        ));
    }

    // Attachments: names from the manifest, sizes and digests from the encoded bodies.
    let mut bodies = std::collections::HashMap::new();
    let mut encoded = Vec::new();
    root.descendants("Attachment", &mut encoded);
    for a in encoded {
        if let (Some(id), Some(body)) = (
            a.text_at(&["ContentId"]),
            a.text_at(&["ContentTransferEncoded"]),
        ) {
            let cleaned: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(cleaned.as_bytes())
                .map_err(|e| {
                    RecordError::invalid(format!("attachment {id}"), format!("not base64: {e}"))
                })?;
            bodies.insert(
                id,
                (bytes.len() as u64, hex::encode(Sha256::digest(&bytes))),
            );
        }
    }
    let attachments = root
        .at(&["edXMLEnvelope", "edXMLBody", "edXMLManifest"])
        .map(|m| {
            m.children_named("Reference")
                .map(|r| {
                    let body = r
                        .text_at(&["ContentId"])
                        .and_then(|id| bodies.get(&id).cloned());
                    Attachment {
                        name: r
                            .text_at(&["AttachmentName"])
                            .or_else(|| r.text_at(&["Description"]))
                            .unwrap_or_else(|| "(unnamed)".into()),
                        content_type: r.text_at(&["ContentType"]),
                        size: body.as_ref().map(|b| b.0),
                        sha256: body.map(|b| b.1),
                    }
                })
                .collect()
        })
        .unwrap_or_default();

    Ok(Package::Document(DocumentMessage {
        from: mh
            .child("From")
            .and_then(organ)
            .ok_or_else(|| RecordError::missing("From/OrganId"))?,
        to: mh.children_named("To").filter_map(organ).collect(),
        document_id,
        code_number: mh.text_at(&["Code", "CodeNumber"]),
        code_notation: mh.text_at(&["Code", "CodeNotation"]),
        promulgation_place: mh.text_at(&["PromulgationInfo", "Place"]),
        promulgation_date: mh
            .text_at(&["PromulgationInfo", "PromulgationDate"])
            .and_then(|d| date(&d)),
        type_code: mh.text_at(&["DocumentType", "Type"]),
        type_name: mh.text_at(&["DocumentType", "TypeName"]),
        subject: mh.text_at(&["Subject"]),
        due_date: mh.text_at(&["DueDate"]).and_then(|d| date(&d)),
        priority: mh
            .text_at(&["OtherInfo", "Priority"])
            .and_then(|p| p.parse().ok()),
        steering_type: mh.text_at(&["SteeringType"]),
        business_type,
        business_reason: business.and_then(|b| b.text_at(&["BussinessDocReason"])),
        paper_copy: business.and_then(|b| b.text_at(&["Paper"])).as_deref() == Some("1"),
        sent_at: trace
            .and_then(|t| t.child("TraceHeader"))
            .and_then(|t| t.text_at(&["Timestamp"]))
            .and_then(|t| local_time(&t)),
        attachments,
    }))
}

/// Status codes of QCVN 102 status messages.
pub fn status_name(code: &str) -> Option<&'static str> {
    Some(match code {
        "01" => "arrived",
        "02" => "rejected",
        "03" => "accepted",
        "04" => "assigned",
        "05" => "in_progress",
        "06" => "completed",
        "13" => "take_back_requested",
        "15" => "take_back_accepted",
        "16" => "take_back_rejected",
        _ => return None,
    })
}

fn draft(
    action: &str,
    id: String,
    key: &str,
    time: DateTime<FixedOffset>,
    data: serde_json::Value,
) -> EventDraft {
    EventDraft::new(
        EventType::new(SUBSYSTEM, "document", action),
        id,
        key.to_string(),
        time.to_utc(),
        data,
        Classification::Internal,
    )
}

/// What identifies a package's event besides its document: the time it carries, or — for
/// a package without one — a digest of the package itself (never the time it was received:
/// the same package delivered twice must be the same event).
fn instant_or_digest(at: Option<DateTime<FixedOffset>>, raw: &[u8]) -> String {
    match at {
        Some(t) => t.to_rfc3339(),
        None => format!("sha256:{}", hex::encode(&Sha256::digest(raw)[..16])),
    }
}

/// The event for a package (`raw`: the package as received). `received_at` stands in for the
/// event's time when the package carries none; it never enters the event's id.
pub fn to_event(package: &Package, received_at: DateTime<FixedOffset>, raw: &[u8]) -> EventDraft {
    match package {
        Package::Document(d) => {
            let at = d.sent_at.unwrap_or(received_at);
            let action = match d.business_type {
                1 => "revoked",
                2 => "updated",
                3 => "replaced",
                _ => "sent",
            };
            let code = match (&d.code_number, &d.code_notation) {
                (Some(n), Some(x)) => Some(format!("{n}/{x}")),
                (Some(n), None) => Some(n.clone()),
                _ => None,
            };
            let data = json!({
                "document_id": d.document_id,
                "from": d.from,
                "to": d.to,
                "code": code,
                "document_type": {"code": d.type_code, "name": d.type_name},
                "subject": d.subject.as_deref().map(mask),
                "promulgation_place": d.promulgation_place,
                "promulgation_date": d.promulgation_date.map(|x| x.to_string()),
                "due_date": d.due_date.map(|x| x.to_string()),
                "priority": d.priority,
                "business_type": d.business_type,
                "reason": d.business_reason.as_deref().map(mask),
                "paper_copy": d.paper_copy,
                "attachments": d.attachments,
                "at": at.to_rfc3339(),
            });
            draft(
                action,
                format!(
                    "edxml/{}/{}/{}",
                    d.document_id,
                    d.business_type,
                    instant_or_digest(d.sent_at, raw)
                ),
                &d.document_id,
                at,
                data,
            )
        }
        Package::Status(s) => {
            let at = s.at.unwrap_or(received_at);
            let name = status_name(&s.status_code);
            let action = if s.status_code == "01" {
                "received"
            } else {
                "status_changed"
            };
            let data = json!({
                "document_id": s.document_id,
                "code": s.code,
                "sender_organ_id": s.sender_organ_id,
                "organ": s.from,
                "status_code": s.status_code,
                "status": name,
                "description": s.description.as_deref().map(mask),
                "at": at.to_rfc3339(),
            });
            draft(
                action,
                format!(
                    "edxml-status/{}/{}/{}/{}",
                    s.document_id,
                    s.from.organ_id,
                    s.status_code,
                    instant_or_digest(s.at, raw)
                ),
                &s.document_id,
                at,
                data,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    const NEW: &str = include_str!("../../fixtures/documents/edxml/2023-1245-UBND-VP.edxml");
    const REVOKE: &str =
        include_str!("../../fixtures/documents/edxml/2023-1245-UBND-VP.revoke.edxml");
    const STATUS: &str = include_str!("../../fixtures/documents/edxml/status-03-phu-thuy.edxml");

    fn now() -> DateTime<FixedOffset> {
        "2024-01-01T00:00:00+07:00".parse().unwrap()
    }

    #[test]
    fn a_new_document_keeps_identifiers_and_drops_what_is_personal_or_secret() {
        let Package::Document(d) = parse(NEW).unwrap() else {
            panic!()
        };
        assert_eq!(d.document_id, "000.31.08.H08,2023/11/20,1245/UBND-VP");
        assert_eq!(d.to.len(), 2);
        assert_eq!(d.business_type, 0);
        assert_eq!(d.attachments.len(), 1);
        assert_eq!(d.attachments[0].name, "1245-UBND-VP.pdf");
        assert!(d.attachments[0].size.unwrap() > 0);
        let e = to_event(&Package::Document(d), now(), NEW.as_bytes());
        assert_eq!(e.event_type.to_string(), "vn.egov.documents.document.sent");
        assert_eq!(e.data["code"], "1245/UBND-VP");
        assert_eq!(e.time.to_rfc3339(), "2023-11-20T02:15:42+00:00");
        let text = e.data.to_string();
        for secret in [
            "JVBERi0",
            "Nguyễn Thị Hồng",
            "hong.nt@example.gov.vn",
            "0912345678",
            "Trần Văn An",
            "c2FtcGxl",
            "vanthu.phanthiet@example.gov.vn",
            "0252 3821 234",
            "Đề nghị UBND các phường",
        ] {
            assert!(!text.contains(secret), "{secret} leaked");
        }
    }

    #[test]
    fn revoke_and_status_messages() {
        let e = to_event(&parse(REVOKE).unwrap(), now(), REVOKE.as_bytes());
        assert_eq!(e.event_type.action, "revoked");
        assert_eq!(e.data["reason"], "Thu hồi văn bản điện tử: gửi nhầm đơn vị");
        let e = to_event(&parse(STATUS).unwrap(), now(), STATUS.as_bytes());
        assert_eq!(e.event_type.action, "status_changed");
        assert_eq!(e.data["status"], "accepted");
        assert_eq!(e.data["organ"]["organ_id"], "011.31.08.H08");
        assert!(
            !e.data.to_string().contains("Lê Thị Mai")
                && !e.data.to_string().contains("0987654321")
        );
        assert_eq!(e.key, "000.31.08.H08,2023/11/20,1245/UBND-VP");
    }

    #[test]
    fn a_package_without_a_time_is_the_same_event_whenever_it_arrives() {
        let bare = Regex::new(r"<edXML:TraceHeaderList>[\s\S]*?</edXML:TraceHeaderList>")
            .unwrap()
            .replace(NEW, "")
            .into_owned();
        let p = parse(&bare).unwrap();
        let Package::Document(d) = &p else { panic!() };
        assert!(
            d.sent_at.is_none(),
            "the fixture without its trace header has no time"
        );
        let a = to_event(
            &p,
            "2024-01-01T00:00:00+07:00".parse().unwrap(),
            bare.as_bytes(),
        );
        let b = to_event(
            &p,
            "2024-03-09T17:45:00+07:00".parse().unwrap(),
            bare.as_bytes(),
        );
        assert_eq!(a.id, b.id);
        assert!(a.id.contains("sha256:"), "{}", a.id);
    }

    #[test]
    fn bad_packages_are_named() {
        assert!(parse("<html/>")
            .unwrap_err()
            .to_string()
            .contains("expected <edXML>"));
        assert!(parse("not xml <").is_err());
        let broken = NEW.replace(
            "<edXML:BussinessDocType>0</edXML:BussinessDocType>",
            "<edXML:BussinessDocType>7</edXML:BussinessDocType>",
        );
        assert_eq!(
            parse(&broken).unwrap_err(),
            RecordError::invalid(
                "BussinessDocType",
                "7 is not 0 (new), 1 (revoke), 2 (update) or 3 (replace)"
            )
        );
    }
}
