//! Backups and restores, as an operator would run them: `lienthong backup` of the demo city
//! while it takes events, `backup verify` offline (and on damaged copies), `restore --data`
//! onto a new machine's folder with the secrets, and the restored bus: the same history
//! (`audit verify` with the original key), the same figures, agencies reading with their
//! credentials, adapters resuming from their cursors without publishing anything twice.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::up::{ingress_caller, lienthong, lienthong_status, settled_kpi, Up, Writer};
use serde_json::Value;

/// Every event id in each event stream of `up`, with how many times it is there.
async fn ids_by_stream(up: &Up) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    for stream in [
        "DOCUMENTS",
        "SSO",
        "FIELD_REPORTS",
        "OPEN_DATA",
        "MEETINGS",
        "DLQ",
    ] {
        out.insert(stream.to_string(), up.stored_ids(stream).await);
    }
    out
}

fn run(args: &[&str]) -> (bool, String, f64) {
    let began = Instant::now();
    let (ok, out) = lienthong_status(args);
    (ok, out, began.elapsed().as_secs_f64())
}

#[tokio::test]
async fn a_running_bus_is_backed_up_checked_offline_and_restored_with_nothing_lost_or_repeated() {
    let up = Up::start(&["--demo", "--demo-scale", "0.02"]);
    let http = reqwest::Client::new();
    settled_kpi(&http, &up).await;
    let work = tempfile::tempdir().unwrap();
    let path = |p: &str| work.path().join(p).to_str().unwrap().to_string();
    let operator = up.credentials("operator.env");
    let operator = operator.to_str().unwrap();
    let data = up.data.to_str().unwrap().to_string();

    // A key for the secrets, kept apart from the backups.
    let recipient = lienthong(&["backup", "key", "--out", &path("backup.key")]);
    let recipient = recipient.lines().next().unwrap().trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");

    // The backup is taken while a writer keeps posting reports to the ingress.
    let writer = Writer::start(
        ingress_caller(&up.credentials("ingress-demo.env")),
        "during",
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked_before = writer.acked.lock().unwrap().clone();
    let (ok, out, backup_s) = run(&[
        "--env",
        operator,
        "backup",
        "--out",
        &path("b"),
        "--secrets-from",
        &data,
        "--recipient",
        &recipient,
    ]);
    assert!(ok, "{out}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (acked, unanswered) = writer.finish().await;
    assert!(
        acked.len() > acked_before.len(),
        "the writer was not writing during the backup"
    );
    let original_kpi = settled_kpi(&http, &up).await;
    let original_ids = ids_by_stream(&up).await;
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(path("b/manifest.json")).unwrap()).unwrap();
    let secrets = std::fs::read(path("b/secrets.tar.age")).unwrap();
    let password = std::fs::read_to_string(operator).unwrap();
    let password = password
        .lines()
        .find_map(|l| l.strip_prefix("NATS_PASSWORD="))
        .unwrap();
    assert!(
        !secrets
            .windows(password.len())
            .any(|w| w == password.as_bytes()),
        "the secrets are encrypted"
    );
    let b_manifest = std::fs::read_to_string(path("b/manifest.json")).unwrap();
    assert!(!b_manifest.contains(password), "no secret in the manifest");

    // Checked offline: restored into a private server, chains and signatures verified.
    let (ok, out, verify_s) = run(&[
        "backup",
        "verify",
        &path("b"),
        "--identity",
        &path("backup.key"),
    ]);
    assert!(ok && out.contains(": good"), "{out}");
    assert!(out.contains("FIELD_REPORTS: intact"), "{out}");

    // A damaged copy, an incomplete one, the wrong key: each named.
    let copy = |name: &str| {
        let to = work.path().join(name);
        std::fs::create_dir_all(to.join("streams")).unwrap();
        for f in std::fs::read_dir(path("b/streams")).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join("streams").join(f.file_name().unwrap())).unwrap();
        }
        for f in ["manifest.json", "secrets.tar.age"] {
            std::fs::copy(path(&format!("b/{f}")), to.join(f)).unwrap();
        }
        to
    };
    let damaged = copy("damaged");
    let archive = damaged.join("streams/FIELD_REPORTS.tar.s2");
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&archive, bytes).unwrap();
    let (ok, out, _) = run(&["backup", "verify", damaged.to_str().unwrap()]);
    assert!(
        !ok && out.contains("FIELD_REPORTS") && out.contains("is damaged"),
        "{out}"
    );
    let incomplete = copy("incomplete");
    let mut m = manifest.clone();
    m["streams"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["name"] != "AUDIT");
    std::fs::write(incomplete.join("manifest.json"), m.to_string()).unwrap();
    let (ok, out, _) = run(&["backup", "verify", incomplete.to_str().unwrap()]);
    assert!(!ok && out.contains("AUDIT is missing"), "{out}");
    lienthong(&["backup", "key", "--out", &path("other.key")]);
    let (ok, out, _) = run(&[
        "backup",
        "verify",
        &path("b"),
        "--identity",
        &path("other.key"),
    ]);
    assert!(!ok && out.contains("cannot be decrypted"), "{out}");

    // The centre is lost; a new machine gets the backup and the key.
    drop(up);
    let restore_out = std::sync::Mutex::new(String::new());
    let restored = Up::start_after(&["--demo", "--demo-scale", "0.02"], |data| {
        let (ok, out, restore_s) = run(&[
            "restore",
            &path("b"),
            "--data",
            data.to_str().unwrap(),
            "--identity",
            &path("backup.key"),
        ]);
        assert!(ok, "{out}");
        // A second restore into the same folder would mix two histories: refused.
        let (again, refusal, _) = run(&["restore", &path("b"), "--data", data.to_str().unwrap()]);
        assert!(
            !again && refusal.contains("already holds events"),
            "{refusal}"
        );
        *restore_out.lock().unwrap() = format!("{out}\nrestore: {restore_s:.2} s");
    });
    let restored_kpi = settled_kpi(&http, &restored).await;
    eprintln!(
        "backup {backup_s:.2} s (while {} events were acknowledged, {unanswered} tries sent again), verify {verify_s:.2} s, {}",
        acked.len(),
        restore_out.lock().unwrap().lines().last().unwrap()
    );

    // The same history, checked with the original audit key.
    let public_key = work.path().join("audit-public.key");
    std::fs::write(&public_key, manifest["audit_public_key"].as_str().unwrap()).unwrap();
    let (ok, out) = restored.audit_verify(&public_key);
    assert!(ok && !out.contains("TAMPERED"), "{out}");
    assert!(out.contains("FIELD_REPORTS: intact"), "{out}");
    let new_key = std::fs::read_to_string(restored.data.join("audit-public.key")).unwrap();
    assert_eq!(
        new_key.trim(),
        manifest["audit_public_key"].as_str().unwrap(),
        "the restored centre signs with the same key"
    );

    // Nothing acknowledged before the backup began is lost, nothing is there twice (the
    // restored demo's adapters resumed from their cursors; its feeds sent everything again).
    let ids = ids_by_stream(&restored).await;
    let lost: Vec<&String> = acked_before
        .iter()
        .filter(|id| !ids["FIELD_REPORTS"].contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    for (stream, stream_ids) in &ids {
        let twice: Vec<&String> = stream_ids
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, _)| id)
            .collect();
        assert!(twice.is_empty(), "{stream}: stored twice: {twice:?}");
    }
    // The same figures, but for the reports the writer posted after the snapshot of
    // FIELD_REPORTS (on the original only), and the open-data catalogue: the demo's CKAN
    // portal is new on the new machine, so the datasets published to it are new events.
    for kpi in ["documents", "sso", "meetings"] {
        assert_eq!(restored_kpi[kpi], original_kpi[kpi], "{kpi}");
    }
    let after_snapshot = original_ids["FIELD_REPORTS"].len() - ids["FIELD_REPORTS"].len();
    assert_eq!(
        restored_kpi["field_reports"]["total"].as_u64().unwrap() + after_snapshot as u64,
        original_kpi["field_reports"]["total"].as_u64().unwrap(),
        "restored {}, original {}",
        restored_kpi["field_reports"],
        original_kpi["field_reports"]
    );
    for (stream, stream_ids) in &ids {
        if stream == "OPEN_DATA" {
            continue;
        }
        for id in stream_ids.keys() {
            assert!(
                original_ids[stream].contains_key(id),
                "{stream}: {id} published again on the restored bus"
            );
        }
    }

    // Agencies read with the credentials they had.
    let agency = restored.credentials("agency-urban.env");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = lienthong(&[
            "--env",
            agency.to_str().unwrap(),
            "tail",
            "FIELD_REPORTS",
            "--all",
            "--no-follow",
            "--json",
        ]);
        let read = out.lines().filter(|l| l.starts_with('{')).count();
        if read == ids["FIELD_REPORTS"].len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agency read {read} of {} events",
            ids["FIELD_REPORTS"].len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    drop(restored);

    // The same backup onto a cluster of three: every stream at three replicas.
    let cluster = Up::start_after(&["--cluster", "3"], |data| {
        let (ok, out, restore_s) = run(&[
            "restore",
            &path("b"),
            "--data",
            data.to_str().unwrap(),
            "--cluster",
            "3",
            "--identity",
            &path("backup.key"),
        ]);
        assert!(ok && out.contains("up --cluster 3 --data"), "{out}");
        eprintln!("restored onto a cluster of three in {restore_s:.2} s");
    });
    let operator = cluster.credentials("operator.env");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (ok, out) = lienthong_status(&[
            "--env",
            operator.to_str().unwrap(),
            "streams",
            "status",
            "--replicas",
            "3",
        ]);
        let field_reports = out
            .lines()
            .find(|l| l.starts_with("FIELD_REPORTS"))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string());
        if ok && field_reports.as_deref() == Some(&*ids["FIELD_REPORTS"].len().to_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "{out}\n{}", cluster.log_tail(20));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (ok, out) = cluster.audit_verify(&public_key);
    assert!(
        ok && !out.contains("TAMPERED") && out.contains("FIELD_REPORTS: intact"),
        "{out}"
    );
}
