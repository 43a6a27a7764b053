//! `DocumentExchangeProjection`: documents exchanged per agency and month — sent and
//! received, electronic and paper, the electronic ratio — and each edXML document's trail.
//!
//! Secret documents never reach the bus, so they are never counted: the ratio is over
//! documents of normal secrecy only, as the KPI requires. Keys: `reg/<register id>`
//! (seen marker), `m/<organ>/<YYYY-MM>` → [`MonthRow`], `d/<document id>` → [`DocumentTrail`].

pub mod dataset;
pub mod http;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::projection::{pointer, Data, ProjectedEvent, Projection};
use crate::store::Changes;
use sonic_rs::{JsonContainerTrait, JsonValueTrait};

pub const NAME: &str = "documents";

/// One agency's month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MonthRow {
    pub organ_id: String,
    pub organ_name: Option<String>,
    /// `YYYY-MM`, local time.
    pub month: String,
    pub sent_electronic: u64,
    pub sent_paper: u64,
    pub received_electronic: u64,
    pub received_paper: u64,
    /// edXML packages sent, revoked.
    pub edxml_sent: u64,
    pub edxml_revoked: u64,
}

impl MonthRow {
    pub fn sent(&self) -> u64 {
        self.sent_electronic + self.sent_paper
    }
    /// Share of documents sent electronically (`None` when none was sent).
    pub fn electronic_ratio(&self) -> Option<f64> {
        (self.sent() > 0).then(|| self.sent_electronic as f64 / self.sent() as f64)
    }
}

/// An edXML document as it travelled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocumentTrail {
    pub document_id: String,
    pub code: Option<String>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub sent_at: Option<String>,
    /// `sent`, `revoked`, `updated`, `replaced`.
    pub state: String,
    /// Latest status per receiving agency.
    pub statuses: BTreeMap<String, String>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct DocumentExchangeProjection;

fn month_of(at: &str) -> Option<String> {
    crate::projection::local_time(at).map(|t| t.format("%Y-%m").to_string())
}

fn row_key(organ: &str, month: &str) -> Vec<u8> {
    format!("m/{organ}/{month}").into_bytes()
}

fn s(v: &Data, p: &str) -> Option<String> {
    pointer(v, p).and_then(Data::as_str).map(str::to_string)
}

impl Projection for DocumentExchangeProjection {
    fn name(&self) -> &'static str {
        NAME
    }
    fn stream(&self) -> &'static str {
        "DOCUMENTS"
    }

    fn apply(&self, changes: &mut Changes<'_>, ev: &ProjectedEvent) -> Result<()> {
        let Some(action) = ev.ty.strip_prefix("vn.egov.documents.document.") else {
            return Ok(());
        };
        let d = &ev.data;
        match action {
            "registered" => {
                let Some(id) = s(d, "/register_id") else {
                    return Ok(());
                };
                let marker = format!("reg/{id}").into_bytes();
                if changes.get(&marker)?.is_some() {
                    return Ok(()); // Folded already.
                }
                changes.put(marker, Vec::new());
                let (Some(organ), Some(month)) = (
                    s(d, "/organ/organ_id"),
                    s(d, "/registered_at").and_then(|t| month_of(&t)),
                ) else {
                    return Ok(());
                };
                let key = row_key(&organ, &month);
                let mut row: MonthRow = changes.get_json(&key)?.unwrap_or_else(|| MonthRow {
                    organ_id: organ.clone(),
                    month: month.clone(),
                    ..Default::default()
                });
                row.organ_name = s(d, "/organ/organ_name").or(row.organ_name);
                let electronic = s(d, "/channel").as_deref() == Some("electronic");
                match (s(d, "/direction").as_deref(), electronic) {
                    (Some("outgoing"), true) => row.sent_electronic += 1,
                    (Some("outgoing"), false) => row.sent_paper += 1,
                    (_, true) => row.received_electronic += 1,
                    (_, false) => row.received_paper += 1,
                }
                changes.put_json(key, row)
            }
            "sent" | "revoked" | "updated" | "replaced" => {
                let Some(doc) = s(d, "/document_id") else {
                    return Ok(());
                };
                let key = format!("d/{doc}").into_bytes();
                let existing: Option<DocumentTrail> = changes.get_json(&key)?;
                let first = existing.is_none();
                let mut trail = existing.unwrap_or_else(|| DocumentTrail {
                    document_id: doc.clone(),
                    ..Default::default()
                });
                trail.code = s(d, "/code").or(trail.code);
                trail.subject = s(d, "/subject").or(trail.subject);
                trail.from = s(d, "/from/organ_id").or(trail.from);
                if let (true, Some(to)) = (
                    action == "sent" || trail.to.is_empty(),
                    d.get("to").and_then(Data::as_array),
                ) {
                    trail.to = to
                        .iter()
                        .filter_map(|o| {
                            o.get("organ_id").and_then(Data::as_str).map(str::to_string)
                        })
                        .collect();
                }
                if action == "sent" && trail.sent_at.is_none() {
                    trail.sent_at = s(d, "/at");
                }
                trail.state = action.to_string();
                if let (Some(organ), Some(month)) =
                    (trail.from.clone(), s(d, "/at").and_then(|t| month_of(&t)))
                {
                    let counts = match action {
                        "sent" => first,
                        "revoked" => true,
                        _ => false,
                    };
                    if counts {
                        let rk = row_key(&organ, &month);
                        let mut row: MonthRow =
                            changes.get_json(&rk)?.unwrap_or_else(|| MonthRow {
                                organ_id: organ.clone(),
                                month,
                                ..Default::default()
                            });
                        if row.organ_name.is_none() {
                            row.organ_name = s(d, "/from/organ_name");
                        }
                        if action == "sent" {
                            row.edxml_sent += 1;
                        } else {
                            row.edxml_revoked += 1;
                        }
                        changes.put_json(rk, row)?;
                    }
                }
                changes.put_json(key, trail)
            }
            "received" | "status_changed" => {
                let (Some(doc), Some(organ), Some(status)) = (
                    s(d, "/document_id"),
                    s(d, "/organ/organ_id"),
                    s(d, "/status"),
                ) else {
                    return Ok(());
                };
                let key = format!("d/{doc}").into_bytes();
                let mut trail: DocumentTrail =
                    changes.get_json(&key)?.unwrap_or_else(|| DocumentTrail {
                        document_id: doc,
                        state: "unknown".into(),
                        ..Default::default()
                    });
                trail.statuses.insert(organ, status);
                changes.put_json(key, trail)
            }
            _ => Ok(()),
        }
    }
}

/// Reads of the document-exchange read model.
pub struct DocumentsView<'a> {
    pub tree: &'a sled::Tree,
}

/// Filters of the exchange table.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExchangeFilter {
    pub organ: Option<String>,
    /// `YYYY-MM`.
    pub month: Option<String>,
    /// `YYYY`.
    pub year: Option<String>,
}

/// Totals over rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExchangeTotals {
    pub sent: u64,
    pub sent_electronic: u64,
    pub sent_paper: u64,
    pub received: u64,
    pub edxml_sent: u64,
    pub edxml_revoked: u64,
    pub electronic_ratio: Option<f64>,
}

impl DocumentsView<'_> {
    pub fn rows(&self, f: &ExchangeFilter) -> Result<Vec<MonthRow>> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(b"m/") {
            let (_, v) = item?;
            let Ok(row) = serde_json::from_slice::<MonthRow>(&v) else {
                continue;
            };
            if f.organ.as_ref().is_some_and(|o| *o != row.organ_id)
                || f.month.as_ref().is_some_and(|m| *m != row.month)
                || f.year
                    .as_ref()
                    .is_some_and(|y| !row.month.starts_with(y.as_str()))
            {
                continue;
            }
            out.push(row);
        }
        Ok(out)
    }

    pub fn totals(rows: &[MonthRow]) -> ExchangeTotals {
        let mut t = ExchangeTotals::default();
        for r in rows {
            t.sent += r.sent();
            t.sent_electronic += r.sent_electronic;
            t.sent_paper += r.sent_paper;
            t.received += r.received_electronic + r.received_paper;
            t.edxml_sent += r.edxml_sent;
            t.edxml_revoked += r.edxml_revoked;
        }
        t.electronic_ratio = (t.sent > 0)
            .then(|| (t.sent_electronic as f64 / t.sent as f64 * 10_000.0).round() / 10_000.0);
        t
    }

    pub fn trail(&self, document_id: &str) -> Result<Option<DocumentTrail>> {
        Ok(self
            .tree
            .get(format!("d/{document_id}"))?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ReadStore;
    use serde_json::{json, Value};

    fn fold(events: &[(&str, Value)]) -> (ReadStore, sled::Tree) {
        let store = ReadStore::temporary().unwrap();
        let tree = store.current(NAME).unwrap();
        let mut c = Changes::new(&tree);
        for (i, (action, data)) in events.iter().enumerate() {
            let ev = ProjectedEvent {
                ty: format!("vn.egov.documents.document.{action}"),
                id: format!("e{i}"),
                source: "s".into(),
                key: None,
                time: None,
                data: crate::projection::data_of(data),
                version: 1,
                sequence: i as u64 + 1,
            };
            DocumentExchangeProjection.apply(&mut c, &ev).unwrap();
        }
        c.commit(events.len() as u64).unwrap();
        (store, tree)
    }

    fn reg(id: &str, organ: &str, dir: &str, channel: &str, at: &str) -> (&'static str, Value) {
        (
            "registered",
            json!({"register_id": id, "direction": dir, "organ": {"organ_id": organ, "organ_name": "X"}, "channel": channel, "registered_at": at}),
        )
    }

    #[test]
    fn ratio_per_agency_and_month_counts_each_entry_once() {
        let (_s, tree) = fold(&[
            reg(
                "1",
                "000.31.08.H08",
                "outgoing",
                "electronic",
                "2023-11-20T09:15:42+07:00",
            ),
            reg(
                "2",
                "000.31.08.H08",
                "outgoing",
                "paper",
                "2023-11-21T08:00:00+07:00",
            ),
            reg(
                "3",
                "000.31.08.H08",
                "outgoing",
                "electronic",
                "2023-11-30T23:30:00+07:00",
            ),
            reg(
                "3",
                "000.31.08.H08",
                "outgoing",
                "electronic",
                "2023-11-30T23:30:00+07:00",
            ),
            reg(
                "4",
                "000.31.08.H08",
                "outgoing",
                "electronic",
                "2023-11-30T17:30:00Z",
            ),
            reg(
                "5",
                "011.31.08.H08",
                "incoming",
                "electronic",
                "2023-11-20T10:03:05+07:00",
            ),
        ]);
        let v = DocumentsView { tree: &tree };
        let rows = v
            .rows(&ExchangeFilter {
                organ: Some("000.31.08.H08".into()),
                ..Default::default()
            })
            .unwrap();
        let nov = rows.iter().find(|r| r.month == "2023-11").unwrap();
        assert_eq!(
            (nov.sent_electronic, nov.sent_paper),
            (2, 1),
            "the duplicate counted once"
        );
        let dec = rows.iter().find(|r| r.month == "2023-12").unwrap();
        assert_eq!(
            dec.sent_electronic, 1,
            "17:30 UTC is 00:30 the next day in Phan Thiết"
        );
        let t = DocumentsView::totals(&v.rows(&ExchangeFilter::default()).unwrap());
        assert_eq!(t.sent, 4);
        assert_eq!(t.received, 1);
        assert_eq!(t.electronic_ratio, Some(0.75));
    }

    #[test]
    fn a_document_trail_follows_sent_status_and_revoke() {
        let doc = "000.31.08.H08,2023/11/20,1245/UBND-VP";
        let (_s, tree) = fold(&[
            (
                "sent",
                json!({"document_id": doc, "from": {"organ_id": "000.31.08.H08"}, "to": [{"organ_id": "011.31.08.H08"}], "code": "1245/UBND-VP", "at": "2023-11-20T09:15:42+07:00"}),
            ),
            (
                "status_changed",
                json!({"document_id": doc, "organ": {"organ_id": "011.31.08.H08"}, "status": "accepted", "at": "2023-11-20T10:03:05+07:00"}),
            ),
            (
                "revoked",
                json!({"document_id": doc, "from": {"organ_id": "000.31.08.H08"}, "to": [], "at": "2023-11-21T14:02:10+07:00"}),
            ),
        ]);
        let v = DocumentsView { tree: &tree };
        let t = v.trail(doc).unwrap().unwrap();
        assert_eq!(t.state, "revoked");
        assert_eq!(t.statuses["011.31.08.H08"], "accepted");
        assert_eq!(
            t.to,
            ["011.31.08.H08"],
            "a revoke does not rewrite the recipients"
        );
        let totals = DocumentsView::totals(&v.rows(&ExchangeFilter::default()).unwrap());
        assert_eq!((totals.edxml_sent, totals.edxml_revoked), (1, 1));
    }
}
