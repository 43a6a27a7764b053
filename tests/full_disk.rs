//! A full disk under continuous publishing: the store's filesystem (a tmpfs the test mounts
//! on `up`'s data folder) is filled, then freed. Meanwhile the ingress answers 503 with
//! `Retry-After` (never "stored" for what was not), `/healthz` names the full disk; after
//! space returns everything resumes by itself, and every acknowledged event is on its
//! stream exactly once. Needs root (mount); says SKIPPED where it cannot mount.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::up::{ingress_caller, json_or_null, post_report, Up, Writer};

/// A tmpfs mounted on a folder, unmounted when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mount(dir.to_path_buf()))
}

/// Fills the filesystem of `dir` with a file until it is full; returns the file.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test]
async fn a_full_disk_is_said_refused_with_retry_after_and_everything_resumes_when_freed() {
    if !nix_is_root() {
        eprintln!("SKIPPED: mounting a small filesystem needs root");
        return;
    }
    let mut mount = None;
    let up = Up::start_after(&["--demo", "--demo-scale", "0.02"], |data| {
        mount = mount_tmpfs(data, "64m");
    });
    if mount.is_none() {
        eprintln!("SKIPPED: could not mount a tmpfs");
        return;
    }
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while json_or_null(&http, format!("{}/healthz", up.base)).await["status"] != "ok"
        || !up.credentials("ingress-demo.env").exists()
    {
        assert!(Instant::now() < deadline, "{}", up.log_tail(20));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let caller = ingress_caller(&up.credentials("ingress-demo.env"));
    let writer = Writer::start(caller.clone(), "disk");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The disk fills.
    let filler = fill(&up.data);
    let filled = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let said = loop {
        let h = json_or_null(&http, format!("{}/healthz", up.base)).await;
        if let Some(reason) = h["down"]["nats-server"].as_str() {
            if reason.contains("disk is full") {
                assert_eq!(h["status"], "error", "{h}");
                break reason.to_string();
            }
        }
        assert!(Instant::now() < deadline, "{h}\n{}", up.log_tail(30));
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "/healthz after {:.1} s: {said}",
        filled.elapsed().as_secs_f64()
    );
    // The dashboard's alarm, in a real browser.
    let shown = common::browser::dashboard_alarm(&up.base, "nats-server").await;
    assert!(
        shown.starts_with("ok"),
        "{shown}\n{}\n{}",
        json_or_null(&http, format!("{}/api/v1/integrity", up.base)).await,
        up.log_tail(40)
    );
    eprintln!("dashboard: {shown}");
    // The server may still have room it set aside (a block begun): what fits is stored and
    // said stored; then the ingress refuses.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    let r = loop {
        n += 1;
        let r = post_report(&http, &caller, "full", &format!("PT-FULL-{n}"), "mui-ne")
            .await
            .unwrap();
        if r.status() != 202 || Instant::now() > deadline {
            break r;
        }
    };
    assert_eq!(r.status(), 503, "while the disk is full");
    assert!(
        r.headers().get("retry-after").is_some(),
        "{:?}",
        r.headers()
    );
    let acked_while_full = writer.acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        writer.acked.lock().unwrap().len(),
        acked_while_full,
        "nothing is acknowledged while the disk is full"
    );

    // Space returns: everything resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let h = json_or_null(&http, format!("{}/healthz", up.base)).await;
        if h["status"] == "ok" && writer.acked.lock().unwrap().len() > acked_while_full + 20 {
            break;
        }
        assert!(Instant::now() < deadline, "{h}\n{}", up.log_tail(30));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "healthy and storing again {:.1} s after space returned",
        freed.elapsed().as_secs_f64()
    );
    let (acked, unanswered) = writer.finish().await;

    // Every acknowledged event, exactly once.
    let stored = up.stored_ids("FIELD_REPORTS").await;
    let lost: Vec<&String> = acked.iter().filter(|a| !stored.contains_key(*a)).collect();
    let duplicated = stored.values().filter(|n| **n > 1).count();
    eprintln!(
        "{} acknowledged ({acked_while_full} before the disk filled), {unanswered} answers not 202 sent again, {} lost, {duplicated} duplicated",
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert_eq!(duplicated, 0);
    drop(up);
    drop(mount);
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The read models' disk (a tmpfs on `data/replay` only) filled while reports keep arriving,
/// then freed: the bus keeps acknowledging (its store has room), `/healthz` and the dashboard's
/// alarm name the read models' full disk, folding stops and is served as it was; once there is
/// room the store is opened again by itself and the read models catch up, every report counted
/// once.
#[tokio::test]
async fn the_read_models_disk_full_stops_folding_says_so_and_catches_up_after() {
    if !nix_is_root() {
        eprintln!("SKIPPED: mounting a small filesystem needs root");
        return;
    }
    let mut mount = None;
    let up = Up::start_after(&["--demo", "--demo-scale", "0.02"], |data| {
        mount = mount_tmpfs(&data.join("replay"), "48m");
    });
    assert!(mount.is_some(), "could not mount a tmpfs (as root)");
    let http = reqwest::Client::new();
    let before = common::up::settled_kpi(&http, &up).await;
    let total = |k: &serde_json::Value| k["field_reports"]["total"].as_u64().unwrap();
    let caller = ingress_caller(&up.credentials("ingress-demo.env"));
    let writer = Writer::start(caller, "rm");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let filler = fill(&up.data.join("replay"));
    let filled = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let said = loop {
        let h = json_or_null(&http, format!("{}/healthz", up.base)).await;
        if let Some(reason) = h["down"]["read models"].as_str() {
            assert_eq!(h["status"], "error", "{h}");
            break reason.to_string();
        }
        assert!(Instant::now() < deadline, "{h}\n{}", up.log_tail(30));
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(said.contains("disk is full"), "{said}");
    eprintln!(
        "/healthz after {:.1} s: {said}",
        filled.elapsed().as_secs_f64()
    );
    // The dashboard's alarm, in a real browser.
    let shown = common::browser::dashboard_alarm(&up.base, "read models").await;
    assert!(shown.starts_with("ok"), "{shown}");
    eprintln!("dashboard: {shown}");
    // The bus keeps storing: the stream's store has room.
    let acked_at_full = writer.acked.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while writer.acked.lock().unwrap().len() < acked_at_full + 20 {
        assert!(
            Instant::now() < deadline,
            "the ingress stopped acknowledging"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Folding stops (sled fails to write) and the figures are served as they were.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !up.log_tail(400).contains("folding stopped") {
        assert!(Instant::now() < deadline, "{}", up.log_tail(30));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The figures: as they were, or (sled may fail a read that would merge pages) 503 with
    // Retry-After naming the full disk — never a wrong figure, never a bare 500.
    let during = http
        .get(format!("{}/api/v1/kpi", up.base))
        .send()
        .await
        .unwrap();
    match during.status().as_u16() {
        200 => {
            let k: serde_json::Value = during.json().await.unwrap();
            assert!(total(&k) >= total(&before), "{k}");
        }
        503 => {
            assert!(during.headers().get("retry-after").is_some());
            let body = during.text().await.unwrap();
            assert!(body.contains("disk is full"), "{body}");
        }
        other => panic!("{other}: {}", during.text().await.unwrap()),
    }

    // Room again: the store is opened again by itself and the read models catch up.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let (acked, _) = writer.finish().await;
    let last_seq = {
        let ids = up.stored_ids("FIELD_REPORTS").await;
        for id in &acked {
            assert_eq!(ids.get(id), Some(&1), "{id}");
        }
        ids.values().sum::<usize>() as u64
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let h = json_or_null(&http, format!("{}/healthz", up.base)).await;
        let folded = h["projections"]["field_reports"]["stream_sequence"].as_u64();
        if h["status"] == "ok" && folded >= Some(last_seq) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{h}\nstream holds {last_seq}\n{}",
            up.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "read models healthy and caught up {:.1} s after space returned ({} reports acknowledged meanwhile)",
        freed.elapsed().as_secs_f64(),
        acked.len()
    );
    assert!(
        up.log_tail(2000).contains("opening their store again"),
        "the store was opened again"
    );
    let after = json_or_null(&http, format!("{}/api/v1/kpi", up.base)).await;
    assert_eq!(
        total(&after),
        total(&before) + acked.len() as u64,
        "every report counted once"
    );
    drop(up);
    drop(mount);
}

/// The store's configured limit (`up --max-store`) reached under continuous posting: the
/// ingress answers 503 with `Retry-After` and says why (never "stored" for what was not), and
/// after the limit is raised (a restart) the sender's retries are stored, every acknowledged
/// event exactly once. Needs no root.
#[tokio::test]
async fn the_store_limit_reached_is_refused_with_retry_after_and_raised_by_a_restart() {
    // One caller of the ingress, no demo: the limit holds only what the test posts.
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("ingress.toml");
    let (token, source) = (
        "limit-test-token",
        "urn:lienthong:phanthiet:field_reports:test",
    );
    std::fs::write(
        &config,
        format!(
            "[[callers]]\nname = \"test\"\ntoken_sha256 = \"{}\"\nsources = [\"{source}\"]\ntypes = [\"vn.egov.field_reports.*\"]\n",
            lienthong_adapters::ingress::token_hash(token)
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let mut up = Up::start(&["--max-store", "4MB", "--ingress-config", &config]);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while json_or_null(&http, format!("{}/healthz", up.base)).await["status"] != "ok" {
        assert!(Instant::now() < deadline, "{}", up.log_tail(20));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let caller: std::collections::BTreeMap<String, String> = [
        ("LIENTHONG_INGRESS_URL", up.ingress_url()),
        ("LIENTHONG_INGRESS_TOKEN", token.to_string()),
        ("LIENTHONG_INGRESS_SOURCE", source.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let started = Instant::now();
    let mut n = 0;
    let refused = loop {
        n += 1;
        let r = post_report(&http, &caller, "limit", &format!("PT-LIMIT-{n}"), "mui-ne")
            .await
            .unwrap();
        if r.status() != 202 {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "4 MB never filled after {n} reports"
        );
    };
    assert_eq!(refused.status(), 503, "the limit reached");
    assert!(refused.headers().get("retry-after").is_some());
    let body = refused.text().await.unwrap();
    assert!(body.contains("the store is full"), "{body}");
    let stored_before = n - 1;
    eprintln!(
        "4 MB limit reached after {stored_before} reports ({:.1} s): {body}",
        started.elapsed().as_secs_f64()
    );

    // The operator raises the limit; the sender's retry is stored.
    up.restart_with(&["--max-store", "64MB", "--ingress-config", &config]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = post_report(&http, &caller, "limit", &format!("PT-LIMIT-{n}"), "mui-ne").await;
        if r.is_ok_and(|r| r.status() == 202) {
            break;
        }
        assert!(Instant::now() < deadline, "{}", up.log_tail(20));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stored = up.stored_ids("FIELD_REPORTS").await;
    for i in 1..=n {
        assert_eq!(
            stored.get(&format!("limit/PT-LIMIT-{i}")),
            Some(&1),
            "PT-LIMIT-{i}"
        );
    }
    assert_eq!(stored.len(), n as usize, "nothing else, nothing twice");
}

/// One node's disk full in a cluster of three (a tmpfs on `data/nats-2` only) under continuous
/// posting: `/healthz` names that node, the two others — a majority — keep storing; once
/// freed, the node is started again on its store and catches up. Every acknowledged event is
/// on the stream exactly once. Needs root.
#[tokio::test]
async fn a_cluster_nodes_full_disk_is_named_and_the_majority_keeps_storing() {
    if !nix_is_root() {
        eprintln!("SKIPPED: mounting a small filesystem needs root");
        return;
    }
    let mut mount = None;
    let up = Up::start_after(
        &["--cluster", "3", "--demo", "--demo-scale", "0.02"],
        |data| {
            mount = mount_tmpfs(&data.join("nats-2"), "64m");
        },
    );
    assert!(mount.is_some(), "could not mount a tmpfs (as root)");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while json_or_null(&http, format!("{}/healthz", up.base)).await["status"] != "ok"
        || !up.credentials("ingress-demo.env").exists()
    {
        assert!(Instant::now() < deadline, "{}", up.log_tail(20));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let writer = Writer::start(ingress_caller(&up.credentials("ingress-demo.env")), "node");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let filler = fill(&up.data.join("nats-2"));
    let filled = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let said = loop {
        let h = json_or_null(&http, format!("{}/healthz", up.base)).await;
        if let Some(reason) = h["down"]["nats-server n2"].as_str() {
            break reason.to_string();
        }
        assert!(Instant::now() < deadline, "{h}\n{}", up.log_tail(30));
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(said.contains("disk is full"), "{said}");
    eprintln!(
        "/healthz after {:.1} s: nats-server n2: {said}",
        filled.elapsed().as_secs_f64()
    );
    // A majority has room: acknowledgements go on (after an election if n2 led).
    let acked_at_full = writer.acked.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while writer.acked.lock().unwrap().len() < acked_at_full + 50 {
        assert!(
            Instant::now() < deadline,
            "the majority stopped storing\n{}",
            up.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stored_meanwhile = writer.acked.lock().unwrap().len() - acked_at_full;

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let h = json_or_null(&http, format!("{}/healthz", up.base)).await;
        if h["status"] == "ok" {
            break;
        }
        assert!(Instant::now() < deadline, "{h}\n{}", up.log_tail(30));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "healthy again {:.1} s after space returned; {stored_meanwhile} acknowledged while n2's disk was full",
        freed.elapsed().as_secs_f64()
    );
    let (acked, unanswered) = writer.finish().await;
    let stored = up.stored_ids("FIELD_REPORTS").await;
    let lost: Vec<&String> = acked.iter().filter(|a| !stored.contains_key(*a)).collect();
    let duplicated = stored.values().filter(|n| **n > 1).count();
    eprintln!(
        "{} acknowledged, {unanswered} answers not 202 sent again, {} lost, {duplicated} duplicated",
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert_eq!(duplicated, 0);
    drop(up);
    drop(mount);
}
