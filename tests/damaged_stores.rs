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

/// Every directory named `name` under `dir`.
fn dirs_named(dir: &std::path::Path, name: &str, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == name) {
                out.push(path.clone());
            }
            dirs_named(&path, name, out);
        }
    }
}

/// In a cluster of three, one node's replica of `FIELD_REPORTS` is damaged (its block cut in
/// half) while the node is down; the documented repair — remove that node's copy of the
/// stream, start the node again — makes the stream's leader send the replica whole. Proved by
/// making the repaired node the leader and reading every message through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_replica_in_a_cluster_is_taken_whole_from_its_peers() {
    use lienthong_bus::jsapi;
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = lienthong::nodes::start(dir.path(), 3, "repair")
        .await
        .unwrap();
    let connect = |role: &str| nodes.credentials.settings(role, &nodes.url).unwrap();
    let operator = connect("operator").connect("test-operator").await.unwrap();
    let publisher = async_nats::jetstream::new(
        connect("adapter-field_reports")
            .connect("test-publisher")
            .await
            .unwrap(),
    );
    let n = 400u64;
    for i in 1..=n {
        publisher
            .publish(
                format!("egov.field_reports.report.PT-{i:06}.submitted"),
                format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(200)).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let info = |client: async_nats::Client| async move {
        jsapi::call(
            &client,
            "$JS.API",
            "STREAM.INFO.FIELD_REPORTS",
            &Value::Null,
            "stream info",
        )
        .await
    };
    let first = info(operator.clone()).await.unwrap();
    assert_eq!(first["state"]["messages"], n);
    let leader = first["cluster"]["leader"].as_str().unwrap().to_string();
    let k = (0..3).find(|i| format!("n{}", i + 1) != leader).unwrap();
    let node = format!("n{}", k + 1);

    // The node goes down; its copy is damaged on disk; the repair: remove its copy.
    nodes.servers[k].kill().await;
    let mut copies = Vec::new();
    dirs_named(
        &lienthong::nodes::store_dir(dir.path(), 3, k),
        "FIELD_REPORTS",
        &mut copies,
    );
    let copy = copies
        .into_iter()
        .find(|p| p.parent().is_some_and(|s| s.ends_with("streams")))
        .expect("the node's copy of FIELD_REPORTS");
    let block = copy.join("msgs/1.blk");
    let len = std::fs::metadata(&block).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&block)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    std::fs::remove_dir_all(&copy).unwrap();
    nodes.servers[k].restart().await.unwrap();

    // The node's replica is current again.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let i = info(operator.clone()).await.unwrap_or(Value::Null);
        let current = i["cluster"]["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| {
                r["name"] == node.as_str()
                    && r["current"] == true
                    && r["lag"].as_u64().unwrap_or(0) == 0
            });
        if current {
            break;
        }
        assert!(Instant::now() < deadline, "{node} never current: {i}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // It leads the stream, and every message is read through it, as it was published.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let i = info(operator.clone()).await.unwrap_or(Value::Null);
        if i["cluster"]["leader"] == node.as_str() {
            break;
        }
        let _ = jsapi::call(
            &operator,
            "$JS.API",
            "STREAM.LEADER.STEPDOWN.FIELD_REPORTS",
            &serde_json::json!({"placement": {"preferred": node}}),
            "leader stepdown",
        )
        .await;
        assert!(Instant::now() < deadline, "{node} never led: {i}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for seq in 1..=n {
        let m = jsapi::call(
            &operator,
            "$JS.API",
            "STREAM.MSG.GET.FIELD_REPORTS",
            &serde_json::json!({"seq": seq}),
            "reading a message from the leader",
        )
        .await
        .unwrap_or_else(|e| panic!("sequence {seq}: {e}"));
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD
            .decode(m["message"]["data"].as_str().unwrap())
            .unwrap();
        let v: Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(v["n"], seq, "sequence {seq}");
    }
    eprintln!("{node}'s damaged replica taken whole from its peers: {n} messages read through it as the leader");
    for s in nodes.servers {
        s.stop().await.unwrap();
    }
}
