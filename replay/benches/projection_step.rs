//! One projection step in isolation: folding a field-report event into a batch of changes.
//! `cargo bench -p lienthong-replay`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use lienthong_replay::field_reports::FieldReportsProjection;
use lienthong_replay::projection::data_of;
use lienthong_replay::{Changes, ProjectedEvent, Projection, ReadStore};
use serde_json::json;

fn benches(c: &mut Criterion) {
    let store = ReadStore::temporary().unwrap();
    let tree = store.current("field_reports").unwrap();
    let submitted = |i: u64| ProjectedEvent {
        ty: "vn.egov.field_reports.report.submitted".into(),
        id: format!("e{i}"),
        source: "urn:bench".into(),
        key: Some(format!("PT-{}", i % 1000)),
        time: None,
        data: data_of(
            &json!({"report_id": format!("PT-{}", i % 1000), "category": "CSDT", "category_name": "Chiếu sáng",
            "ward": "phu-thuy", "ward_name": "Phường Phú Thủy", "status": "open",
            "requested_at": "2023-11-18T19:42:10+07:00", "expected_at": "2023-11-20T19:42:10+07:00"}),
        ),
        version: 2,
        sequence: i,
    };
    let changed = |i: u64| ProjectedEvent {
        ty: "vn.egov.field_reports.report.status_changed".into(),
        data: data_of(
            &json!({"report_id": format!("PT-{}", i % 1000), "status": "fixed", "changed_at": "2023-11-21T08:30:00+07:00", "origin": "update"}),
        ),
        ..submitted(i)
    };
    c.bench_function("projection/field_reports/submitted", |b| {
        b.iter_batched(
            || Changes::new(&tree),
            |mut ch| {
                FieldReportsProjection
                    .apply(&mut ch, black_box(&submitted(7)))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("projection/field_reports/status_changed", |b| {
        b.iter_batched(
            || Changes::new(&tree),
            |mut ch| {
                FieldReportsProjection
                    .apply(&mut ch, black_box(&changed(7)))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("projection/field_reports/batch_of_1000_committed", |b| {
        let mut seq = 0u64;
        b.iter(|| {
            let mut ch = Changes::new(&tree);
            for i in 0..1000 {
                seq += 1;
                let ev = if i % 2 == 0 {
                    submitted(seq)
                } else {
                    changed(seq)
                };
                FieldReportsProjection.apply(&mut ch, &ev).unwrap();
            }
            ch.commit(seq).unwrap();
        })
    });
}

criterion_group!(projection_step, benches);
criterion_main!(projection_step);
