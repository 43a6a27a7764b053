//! A read model damaged on disk is never served as it is: `up` finds it at start — a store
//! sled cannot open, or a read model whose contents no longer give its seal — says so on
//! `/healthz`, and folds it again from its stream to the same figures.

mod common;

use std::time::{Duration, Instant};

use common::up::{json_or_null, settled_kpi, Up};
use serde_json::Value;

/// Waits (at most 120 s) for the KPIs to equal `want`; the last answer otherwise.
async fn kpi_becomes(http: &reqwest::Client, up: &Up, want: &Value) -> Result<(), Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let k = json_or_null(http, format!("{}/api/v1/kpi", up.base)).await;
        if &k == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(k);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn health(http: &reqwest::Client, up: &Up) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = json_or_null(http, format!("{}/healthz", up.base)).await;
        if !h.is_null() {
            return h;
        }
        assert!(Instant::now() < deadline, "{}", up.log_tail(20));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_damaged_read_model_is_found_at_start_and_folded_again_never_served() {
    let mut up = Up::start(&["--demo", "--demo-scale", "0.02"]);
    let http = reqwest::Client::new();
    let before = settled_kpi(&http, &up).await;

    // Damage sled does not see: a value of the field reports' read model changed on disk.
    let mut changed = String::new();
    up.restart_after(|data| {
        let store = lienthong_replay::store::ReadStore::open(&data.join("replay")).unwrap();
        let tree = store.current("field_reports").unwrap();
        let (key, value) = tree
            .iter()
            .filter_map(Result::ok)
            .find(|(k, v)| !k.starts_with(b"\0") && v.len() > 8)
            .expect("a value to damage");
        let mut damaged = value.to_vec();
        damaged[4] ^= 0x01;
        tree.insert(&key, damaged).unwrap();
        store.flush().unwrap();
        changed = String::from_utf8_lossy(&key).into_owned();
    });
    let h = health(&http, &up).await;
    let repaired = h["repaired_at_start"].to_string();
    assert!(
        repaired.contains("read model field_reports was damaged on disk"),
        "{h}\n{}",
        up.log_tail(20)
    );
    if let Err(k) = kpi_becomes(&http, &up, &before).await {
        panic!("after damage to {changed:?}: {k}\nwant {before}");
    }

    // Damage sled sees: its configuration unreadable. The store is set aside and every read
    // model folded again.
    up.restart_after(|data| {
        std::fs::write(data.join("replay/conf"), "not sled's").unwrap();
    });
    let h = health(&http, &up).await;
    let repaired = h["repaired_at_start"].to_string();
    assert!(
        repaired.contains("could not be opened") && repaired.contains("set aside as"),
        "{h}"
    );
    let aside = std::fs::read_dir(&up.data)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("replay.damaged-")
        });
    assert!(aside, "the damaged store is kept aside");
    if let Err(k) = kpi_becomes(&http, &up, &before).await {
        panic!("after an unreadable store: {k}\nwant {before}");
    }
}
