//! Sign-on activity as a dataset: by month and application. Users are pseudonymous on the
//! bus; here they are only counted, and small counts are withheld.

use serde_json::{json, Value};

use super::{SignOnView, NAME};
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
        "application",
        T::String,
        "Ứng dụng",
        "Application",
        "The application signed in to (the identity provider's client id).",
    ),
    Column::open(
        "logins",
        T::Integer,
        "Lượt đăng nhập",
        "Sign-ins",
        "Successful sign-ins.",
    )
    .count(),
    Column::open(
        "failures",
        T::Integer,
        "Đăng nhập thất bại",
        "Failed sign-ins",
        "Failed sign-in attempts.",
    )
    .count(),
    Column::open(
        "active_users",
        T::Integer,
        "Người dùng hoạt động",
        "Active users",
        "Distinct users who signed in at least once that month through that application.",
    )
    .count(),
];

pub const SPEC: DatasetSpec = DatasetSpec {
    id: "sign-on-monthly",
    projection: NAME,
    stream: "SSO",
    title_vi: "Hoạt động đăng nhập tập trung theo tháng và ứng dụng",
    title_en: "Central sign-on activity by month and application",
    description_vi: "Số lượt đăng nhập, đăng nhập thất bại và số người dùng hoạt động của hệ thống xác thực tập trung, theo tháng và ứng dụng.",
    description_en: "Sign-ins, failed sign-ins and active users of the central sign-on, by month and application.",
    keywords: &["xác thực tập trung", "single sign-on", "Keycloak", "dịch vụ công", "digital services"],
    theme: "TECH",
    columns: COLUMNS,
    key: &["month", "application"],
    rows,
    panel: "sso",
};

fn rows(tree: &sled::Tree) -> crate::Result<Vec<Vec<Value>>> {
    Ok((SignOnView { tree })
        .monthly()?
        .into_iter()
        .map(|m| {
            vec![
                json!(m.month),
                json!(m.client),
                json!(m.logins),
                json!(m.failures),
                json!(m.active_users),
            ]
        })
        .collect())
}
