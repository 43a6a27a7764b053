//! The open data catalogue itself as a dataset: one row per dataset of the city's portal
//! (the bus's own datasets, published there and read back, are not listed again).

use serde_json::{json, Value};

use super::{CatalogueView, NAME};
use crate::datasets::{Column, ColumnType as T, DatasetSpec};

const COLUMNS: &[Column] = &[
    Column::open(
        "dataset_id",
        T::String,
        "Mã bộ dữ liệu",
        "Dataset id",
        "The dataset's identifier on the portal (CKAN package id).",
    ),
    Column::open(
        "name",
        T::String,
        "Tên định danh",
        "Name",
        "The dataset's URL name on the portal.",
    ),
    Column::open(
        "title",
        T::String,
        "Tên bộ dữ liệu",
        "Title",
        "The dataset's title.",
    ),
    Column::open(
        "organization",
        T::String,
        "Đơn vị công bố",
        "Publisher",
        "The organization that publishes it.",
    ),
    Column::open(
        "licence",
        T::String,
        "Giấy phép",
        "Licence",
        "The licence id on the portal.",
    ),
    Column::open(
        "status",
        T::String,
        "Trạng thái",
        "Status",
        "`active`, or `withdrawn` when taken down.",
    ),
    Column::open(
        "first_published",
        T::String,
        "Công bố lần đầu",
        "First published",
        "When it was first seen on the portal (RFC 3339).",
    ),
    Column::open(
        "last_modified",
        T::String,
        "Cập nhật lần cuối",
        "Last modified",
        "Its last modification on the portal (RFC 3339).",
    ),
    Column::open(
        "resources",
        T::Integer,
        "Số tài nguyên",
        "Resources",
        "Files and links it offers.",
    ),
    Column::open(
        "tags",
        T::String,
        "Từ khóa",
        "Tags",
        "Its tags, separated by `;`.",
    ),
];

pub const SPEC: DatasetSpec = DatasetSpec {
    id: "open-data-catalogue",
    projection: NAME,
    stream: "OPEN_DATA",
    title_vi: "Danh mục dữ liệu mở của thành phố",
    title_en: "The city's open data catalogue",
    description_vi: "Các bộ dữ liệu trên cổng dữ liệu mở của thành phố, đang công bố hay đã gỡ, với đơn vị công bố, giấy phép và số tài nguyên.",
    description_en: "The datasets of the city's open data portal, active or withdrawn, with their publisher, licence and resources.",
    keywords: &["dữ liệu mở", "open data", "CKAN", "danh mục", "catalogue"],
    theme: "GOVE",
    columns: COLUMNS,
    key: &["dataset_id"],
    rows,
    panel: "open-data",
};

fn rows(tree: &sled::Tree) -> crate::Result<Vec<Vec<Value>>> {
    Ok((CatalogueView { tree })
        .datasets()?
        .into_iter()
        .filter(|d| d.bus_dataset.is_none())
        .map(|d| {
            let org = d.organization.as_ref().and_then(|o| {
                o.get("title")
                    .or_else(|| o.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            vec![
                json!(d.dataset_id),
                json!(d.name),
                json!(d.title),
                json!(org),
                json!(d.license_id),
                json!(d.status),
                json!(d.first_published),
                json!(d.metadata_modified),
                json!(d.resources.len()),
                json!(d.tags.join(";")),
            ]
        })
        .collect())
}
