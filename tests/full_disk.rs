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
