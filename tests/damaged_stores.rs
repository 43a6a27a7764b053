//! Stores damaged on disk. A read model is never served as it is: `up` finds it at start — a
//! store sled cannot open, or a read model whose contents no longer give its seal — says so
//! on `/healthz`, and folds it again from its stream to the same figures. A stream that lost
//! messages on disk is named by `/healthz` and by `audit verify`, and comes back whole from a
//! backup.

mod common;

use std::time::{Duration, Instant};

use common::up::{json_or_null, lienthong, settled_kpi, Up};
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

#[tokio::test]
async fn a_stream_damaged_on_disk_is_named_and_comes_back_whole_from_a_backup() {
    let args = ["--demo", "--demo-scale", "0.02"];
    let mut up = Up::start(&args);
    let http = reqwest::Client::new();
    let before = settled_kpi(&http, &up).await;
    let work = tempfile::tempdir().unwrap();
    let path = |p: &str| work.path().join(p).to_str().unwrap().to_string();
    let recipient = lienthong(&["backup", "key", "--out", &path("key")]);
    let operator = up.credentials("operator.env");
    lienthong(&[
        "--env",
        operator.to_str().unwrap(),
        "backup",
        "--out",
        &path("b"),
        "--secrets-from",
        up.data.to_str().unwrap(),
        "--recipient",
        recipient.lines().next().unwrap().trim(),
    ]);

    // Half of FIELD_REPORTS' block file is lost on disk while the bus is down.
    up.restart_after(|data| {
        let msgs = data.join("nats/jetstream/jetstream/EGOV/streams/FIELD_REPORTS/msgs");
        let block = std::fs::read_dir(&msgs)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "blk"))
            .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .expect("a block file");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&block)
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len / 2).unwrap();
    });
    // /healthz names it (the read model stops following it) …
    let deadline = Instant::now() + Duration::from_secs(90);
    let alarm = loop {
        let h = json_or_null(&http, format!("{}/healthz", up.base)).await;
        if let Some(a) = h["alarms"]["FIELD_REPORTS"].as_str() {
            assert_eq!(h["status"], "error", "{h}");
            break a.to_string();
        }
        assert!(Instant::now() < deadline, "{h}\n{}", up.log_tail(20));
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(alarm.contains("is missing"), "{alarm}");
    eprintln!("/healthz: {alarm}");
    // … and so does audit verify, with the first sequence lost.
    let public_key = up.data.join("audit-public.key");
    let (ok, out) = up.audit_verify(&public_key);
    assert!(!ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("FIELD_REPORTS"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("TAMPERED") && line.contains("missing"),
        "{out}"
    );
    eprintln!("audit verify: {line}");
    let public = std::fs::read_to_string(&public_key).unwrap();

    // Restored from the backup onto a new folder: whole again.
    drop(up);
    let restored = Up::start_after(&args, |data| {
        lienthong(&[
            "restore",
            &path("b"),
            "--data",
            data.to_str().unwrap(),
            "--identity",
            &path("key"),
        ]);
    });
    let after = settled_kpi(&http, &restored).await;
    for kpi in ["documents", "sso", "meetings", "field_reports"] {
        assert_eq!(after[kpi], before[kpi], "{kpi}");
    }
    let public_file = work.path().join("public.key");
    std::fs::write(&public_file, public).unwrap();
    let (ok, out) = restored.audit_verify(&public_file);
    assert!(
        ok && !out.contains("TAMPERED") && out.contains("FIELD_REPORTS: intact"),
        "{out}"
    );
    let h = json_or_null(&http, format!("{}/healthz", restored.base)).await;
    assert!(h["alarms"].as_object().is_some_and(|a| a.is_empty()), "{h}");
}
