//! The datasets' catalogue in DCAT-AP 3, as JSON-LD with a self-contained `@context` (no
//! network needed to read it): titles and descriptions in Vietnamese and English, publisher,
//! contact point, licence, temporal and spatial coverage, update frequency, keywords, theme,
//! and a CSV and a JSON distribution each conforming to its column description.

use serde_json::{json, Value};

use super::{disclosure_note, DatasetSpec, Table};

/// Who publishes the datasets, under which licence.
#[derive(Debug, Clone)]
pub struct Publication {
    pub publisher_vi: String,
    pub publisher_en: String,
    pub contact_name: String,
    pub contact_email: String,
    /// The licence's URL (the demo: CC BY 4.0).
    pub licence: String,
    pub licence_title: String,
    /// Counts from 1 to this − 1 are withheld.
    pub min_cell: u64,
}

impl Default for Publication {
    fn default() -> Self {
        Self {
            publisher_vi: "Ủy ban nhân dân thành phố Phan Thiết".into(),
            publisher_en: "People's Committee of Phan Thiết City".into(),
            contact_name: "Trung tâm điều hành thông minh (IOC) Phan Thiết".into(),
            contact_email: "ioc@phanthiet.binhthuan.gov.vn".into(),
            licence: "https://creativecommons.org/licenses/by/4.0/".into(),
            licence_title: "Creative Commons Attribution 4.0 International (CC BY 4.0)".into(),
            min_cell: super::DEFAULT_MIN_CELL,
        }
    }
}

/// The wards and communes (slug, name), for spatial coverage.
pub fn ward_names() -> Vec<(String, String)> {
    crate::reference::wards()
        .iter()
        .map(|w| (w.slug.clone(), w.name.clone()))
        .collect()
}

/// The `@context`: every prefix and term the documents use, nothing fetched.
pub fn context() -> Value {
    json!({
        "dcat": "http://www.w3.org/ns/dcat#",
        "dct": "http://purl.org/dc/terms/",
        "foaf": "http://xmlns.com/foaf/0.1/",
        "vcard": "http://www.w3.org/2006/vcard/ns#",
        "skos": "http://www.w3.org/2004/02/skos/core#",
        "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
        "xsd": "http://www.w3.org/2001/XMLSchema#",
        "dcat:startDate": {"@type": "xsd:gYearMonth"},
        "dcat:endDate": {"@type": "xsd:gYearMonth"},
        "dcat:accessURL": {"@type": "@id"},
        "dcat:downloadURL": {"@type": "@id"},
        "dcat:landingPage": {"@type": "@id"},
        "dcat:theme": {"@type": "@id"},
        "dcat:mediaType": {"@type": "@id"},
        "dct:license": {"@type": "@id"},
        "dct:conformsTo": {"@type": "@id"},
        "dct:format": {"@type": "@id"},
        "dct:accrualPeriodicity": {"@type": "@id"},
        "foaf:homepage": {"@type": "@id"},
        "vcard:hasEmail": {"@type": "@id"}
    })
}

fn both(vi: &str, en: &str) -> Value {
    json!([{"@value": vi, "@language": "vi"}, {"@value": en, "@language": "en"}])
}

fn publisher(p: &Publication) -> Value {
    json!({"@type": "foaf:Agent", "foaf:name": both(&p.publisher_vi, &p.publisher_en)})
}

fn contact(p: &Publication) -> Value {
    json!({
        "@type": "vcard:Organization",
        "vcard:fn": p.contact_name,
        "vcard:hasEmail": format!("mailto:{}", p.contact_email),
    })
}

/// The URLs of a dataset under `base` (`http://host:port`).
pub fn urls(base: &str, id: &str) -> (String, String, String, String) {
    let d = format!("{base}/api/v1/datasets/{id}");
    (
        d.clone(),
        format!("{d}/data.csv"),
        format!("{d}/data.json"),
        format!("{d}/schema.json"),
    )
}

/// One dataset's DCAT record.
pub fn dataset(
    spec: &DatasetSpec,
    table: &Table,
    p: &Publication,
    base: &str,
    version: &str,
) -> Value {
    let (id_url, csv, json_url, schema) = urls(base, spec.id);
    let wards = ward_names();
    let in_table = table.wards();
    let mut spatial = vec![json!({
        "@type": "dct:Location",
        "skos:prefLabel": both("Thành phố Phan Thiết, tỉnh Bình Thuận", "Phan Thiết City, Bình Thuận Province"),
    })];
    for (slug, name) in wards.iter().filter(|(s, _)| in_table.contains(s)) {
        spatial.push(json!({
            "@type": "dct:Location",
            "dct:identifier": slug,
            "skos:prefLabel": {"@value": name, "@language": "vi"},
        }));
    }
    let mut d = json!({
        "@id": id_url,
        "@type": "dcat:Dataset",
        "dct:identifier": spec.id,
        "dct:title": both(spec.title_vi, spec.title_en),
        "dct:description": both(spec.description_vi, spec.description_en),
        "dcat:keyword": spec.keywords,
        "dcat:theme": format!("http://publications.europa.eu/resource/authority/data-theme/{}", spec.theme),
        "dct:publisher": publisher(p),
        "dcat:contactPoint": contact(p),
        "dct:license": p.licence,
        "dct:accrualPeriodicity": "http://publications.europa.eu/resource/authority/frequency/UPDATE_CONT",
        "dcat:version": version,
        "dct:spatial": spatial,
        "dcat:landingPage": format!("{base}/catalog#dataset-{}", spec.id),
        "dct:provenance": {
            "@type": "dct:ProvenanceStatement",
            "rdfs:label": format!(
                "Folded from the {} stream of the Lienthong bus (read model {}); verifiable against its signed audit checkpoints with `lienthong datasets verify`. {}",
                spec.stream, spec.projection, disclosure_note(p.min_cell)
            ),
        },
        "dcat:distribution": [
            distribution(&csv, &schema, "CSV", "text/csv", &format!("{} (CSV)", spec.title_en), p),
            distribution(&json_url, &schema, "JSON", "application/json", &format!("{} (JSON)", spec.title_en), p),
        ],
    });
    if let Some((from, to)) = table.months() {
        d["dct:temporal"] = json!({
            "@type": "dct:PeriodOfTime",
            "dcat:startDate": from,
            "dcat:endDate": to,
        });
    }
    d
}

fn distribution(
    url: &str,
    schema: &str,
    format: &str,
    media: &str,
    title: &str,
    p: &Publication,
) -> Value {
    json!({
        "@id": url,
        "@type": "dcat:Distribution",
        "dct:title": title,
        "dcat:accessURL": url,
        "dcat:downloadURL": url,
        "dct:format": format!("http://publications.europa.eu/resource/authority/file-type/{format}"),
        "dcat:mediaType": format!("https://www.iana.org/assignments/media-types/{media}"),
        "dct:conformsTo": schema,
        "dct:license": p.licence,
    })
}

/// The catalogue of every dataset.
pub fn catalog(datasets: Vec<Value>, p: &Publication, base: &str) -> Value {
    json!({
        "@context": context(),
        "@id": format!("{base}/api/v1/datasets/catalog.jsonld"),
        "@type": "dcat:Catalog",
        "dct:title": both(
            "Dữ liệu dùng chung của hệ thống liên thông thành phố Phan Thiết",
            "Shared datasets of the Phan Thiết integration bus",
        ),
        "dct:description": both(
            "Các bộ dữ liệu tổng hợp từ lịch sử sự kiện đã được kiểm toán của hệ thống liên thông: phản ánh hiện trường, trao đổi văn bản, đăng nhập tập trung, họp trực tuyến và danh mục dữ liệu mở. Mỗi con số có thể được kiểm chứng lại từ lịch sử.",
            "Aggregates folded from the audited event history of the integration bus: field reports, document exchange, central sign-on, online meetings and the open data catalogue. Every figure can be checked against that history.",
        ),
        "dct:publisher": publisher(p),
        "dcat:contactPoint": contact(p),
        "dct:license": p.licence,
        "foaf:homepage": format!("{base}/catalog"),
        "dct:spatial": {"@type": "dct:Location", "skos:prefLabel": both("Thành phố Phan Thiết, tỉnh Bình Thuận", "Phan Thiết City, Bình Thuận Province")},
        "dcat:dataset": datasets,
    })
}
