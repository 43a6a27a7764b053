//! Document exchange as a dataset: by agency and month. Secret documents never reach the bus,
//! so they are never counted.

use serde_json::{json, Value};

use super::{DocumentsView, ExchangeFilter, NAME};
use crate::datasets::{Column, ColumnType as T, DatasetSpec};

const COLUMNS: &[Column] = &[
    Column::open(
        "month",
        T::YearMonth,
        "Tháng",
        "Month",
        "Month (local time, UTC+7).",
    ),
    Column::open(
        "agency",
        T::String,
        "Mã cơ quan",
        "Agency code",
        "The agency's code in the document exchange (edXML organ id).",
    ),
    Column::open(
        "agency_name",
        T::String,
        "Cơ quan",
        "Agency",
        "The agency's name.",
    ),
    Column::open(
        "sent",
        T::Integer,
        "Văn bản đi",
        "Documents sent",
        "Documents the agency sent (electronically or on paper).",
    ),
    Column::open(
        "sent_electronic",
        T::Integer,
        "Văn bản đi điện tử",
        "Sent electronically",
        "Of those, sent electronically.",
    ),
    Column::open(
        "electronic_share",
        T::Number,
        "Tỷ lệ gửi điện tử",
        "Electronic share",
        "sent_electronic / sent, between 0 and 1; empty when nothing was sent.",
    )
    .unit("1"),
    Column::open(
        "received",
        T::Integer,
        "Văn bản đến",
        "Documents received",
        "Documents the agency received.",
    ),
    Column::open(
        "edxml_sent",
        T::Integer,
        "Gói edXML gửi",
        "edXML packages sent",
        "edXML packages sent through the national exchange platform.",
    ),
    Column::open(
        "edxml_revoked",
        T::Integer,
        "Gói edXML thu hồi",
        "edXML packages revoked",
        "edXML packages revoked after sending.",
    ),
];

pub const SPEC: DatasetSpec = DatasetSpec {
    id: "documents-exchange-monthly",
    projection: NAME,
    stream: "DOCUMENTS",
    title_vi: "Trao đổi văn bản điện tử theo cơ quan và tháng",
    title_en: "Document exchange by agency and month",
    description_vi: "Số văn bản đi, đến và tỷ lệ văn bản gửi điện tử của từng cơ quan theo tháng. Văn bản mật không bao giờ lên hệ thống nên không được tính.",
    description_en: "Documents sent and received by each agency per month, and the share sent electronically. Secret documents never reach the bus and are never counted.",
    keywords: &["văn bản điện tử", "electronic documents", "edXML", "chính quyền điện tử", "e-government"],
    theme: "GOVE",
    columns: COLUMNS,
    key: &["month", "agency"],
    rows,
    panel: "documents",
};

fn rows(tree: &sled::Tree) -> crate::Result<Vec<Vec<Value>>> {
    let mut rows = (DocumentsView { tree }).rows(&ExchangeFilter::default())?;
    rows.sort_by(|a, b| (&a.month, &a.organ_id).cmp(&(&b.month, &b.organ_id)));
    Ok(rows
        .into_iter()
        .map(|r| {
            vec![
                json!(r.month),
                json!(r.organ_id),
                json!(r.organ_name),
                json!(r.sent()),
                json!(r.sent_electronic),
                json!(r
                    .electronic_ratio()
                    .map(|x| (x * 10_000.0).round() / 10_000.0)),
                json!(r.received_electronic + r.received_paper),
                json!(r.edxml_sent),
                json!(r.edxml_revoked),
            ]
        })
        .collect())
}
