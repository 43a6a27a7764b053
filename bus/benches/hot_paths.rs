//! Micro-benchmarks of the bus's hot paths, so regressions show in isolation:
//! subject encoding, envelope encode/decode, validation, event preparation.
//! `cargo bench -p lienthong-bus`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use lienthong_bus::envelope::{self, Classification};
use lienthong_bus::subject::{decode_key, encode_key, EventType};
use lienthong_bus::SchemaRegistry;
use serde_json::json;

fn data() -> serde_json::Value {
    json!({
        "report_id": "PT-2023-000981", "category": "CSDT", "category_name": "Chiếu sáng đô thị",
        "category_group": "Đô thị", "ward": "phu-thuy", "ward_name": "Phường Phú Thủy", "status": "open",
        "description": "Ba cột đèn trên đường Nguyễn Đình Chiểu không sáng từ tối qua",
        "address": "Nguyễn Đình Chiểu, phường Phú Thủy", "location": {"lat": 10.9289, "long": 108.1021},
        "agency_responsible": "UBND phường Phú Thủy", "requested_at": "2023-11-18T19:42:10+07:00",
        "expected_at": "2023-11-20T19:42:10+07:00", "media_url": null
    })
}

fn benches(c: &mut Criterion) {
    let registry = SchemaRegistry::embedded().unwrap();
    let schema = registry
        .schema_id("vn.egov.field_reports.report.submitted", None)
        .unwrap()
        .to_string();
    let ty = EventType::new("field_reports", "report", "submitted");
    c.bench_function("subject/encode_key", |b| {
        b.iter(|| encode_key(black_box("PT.2023/1003 >")))
    });
    c.bench_function("subject/decode_key", |b| {
        b.iter(|| decode_key(black_box("PT~2E2023~2F1003~20~3E")).unwrap())
    });
    c.bench_function("subject/build", |b| {
        b.iter(|| ty.subject(black_box("PT-2023-000981")))
    });
    let d = data();
    c.bench_function("schema/validate", |b| {
        b.iter(|| registry.validate(&schema, black_box(&d)).unwrap())
    });
    let event = envelope::build_event(
        "report/PT-2023-000981/submitted",
        "urn:lienthong:phanthiet:field_reports",
        &ty.to_string(),
        "PT-2023-000981",
        "2023-11-18T12:42:10Z".parse().unwrap(),
        &schema,
        d.clone(),
        Classification::Public,
        None,
    )
    .unwrap();
    c.bench_function("envelope/build", |b| {
        b.iter(|| {
            envelope::build_event(
                "report/PT-2023-000981/submitted",
                "urn:lienthong:phanthiet:field_reports",
                &ty.to_string(),
                "PT-2023-000981",
                "2023-11-18T12:42:10Z".parse().unwrap(),
                &schema,
                black_box(d.clone()),
                Classification::Public,
                None,
            )
            .unwrap()
        })
    });
    c.bench_function("envelope/encode_structured", |b| {
        b.iter(|| envelope::encode_structured(black_box(&event)).unwrap())
    });
    let time: chrono::DateTime<chrono::Utc> = "2023-11-18T12:42:10Z".parse().unwrap();
    c.bench_function("envelope/encode_parts", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(512);
            envelope::encode_parts(
                &mut out,
                "report/PT-2023-000981/submitted",
                "urn:lienthong:phanthiet:field_reports",
                "vn.egov.field_reports.report.submitted",
                "PT-2023-000981",
                &time,
                &schema,
                black_box(&d),
                Classification::Public,
                None,
            )
            .unwrap();
            out
        })
    });
    let bytes = envelope::encode_structured(&event).unwrap();
    c.bench_function("envelope/decode_structured", |b| {
        b.iter(|| envelope::decode(None, black_box(&bytes)).unwrap())
    });
    c.bench_function("envelope/read_structured", |b| {
        b.iter(|| {
            envelope::Structured::read(None, black_box(&bytes))
                .unwrap()
                .unwrap()
        })
    });
    c.bench_function("json/parse_data_value", |b| {
        let data = serde_json::to_vec(&d).unwrap();
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&data)).unwrap())
    });
    c.bench_function("json/parse_data_arena", |b| {
        let data = serde_json::to_vec(&d).unwrap();
        b.iter(|| sonic_rs::from_slice::<sonic_rs::Value>(black_box(&data)).unwrap())
    });
    let arena: sonic_rs::Value = sonic_rs::from_slice(&serde_json::to_vec(&d).unwrap()).unwrap();
    assert_eq!(registry.is_valid_arena(&schema, &arena), Some(true));
    c.bench_function("schema/validate_arena", |b| {
        b.iter(|| registry.is_valid_arena(&schema, black_box(&arena)).unwrap())
    });
    c.bench_function("publisher/message_id", |b| {
        b.iter(|| {
            lienthong_bus::publisher::message_id(
                black_box("urn:lienthong:phanthiet:field_reports"),
                black_box("report/PT-2023-000981/submitted"),
            )
        })
    });
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
