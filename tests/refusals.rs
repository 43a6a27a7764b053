//! Clear refusals: every command run with credentials that may not do what it asks fails
//! within seconds, naming the role, the stream or subject, and what it may not do — never a
//! silent wait. Run as a user would: the `lienthong` binary with `--env FILE`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Bus;

/// Runs `lienthong ARGS --env ENV`; returns (success, stderr, how long it took).
fn run(env: &Path, args: &[&str]) -> (bool, String, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(args)
        .arg("--env")
        .arg(env)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        start.elapsed(),
    )
}

fn assert_refused(env: &Path, args: &[&str], says: &[&str]) {
    let (ok, stderr, took) = run(env, args);
    assert!(!ok, "{args:?} succeeded: {stderr}");
    assert!(
        took < Duration::from_secs(5),
        "{args:?} took {took:?}: {stderr}"
    );
    for s in says {
        assert!(stderr.contains(s), "{args:?}: expected {s:?} in: {stderr}");
    }
}

#[tokio::test]
async fn every_command_refused_by_the_server_says_who_may_not_do_what_within_seconds() {
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    bus.creds.write(dir.path(), &bus.server.url()).unwrap();
    let env = |role: &str| dir.path().join(format!("{role}.env"));
    let agencies = bus.agencies(dir.path()).await;
    agencies
        .admin
        .add(
            "urban",
            lienthong_bus::agencies::grants(&["FIELD_REPORTS".into(), "OPEN_DATA".into()], &[])
                .unwrap(),
            None,
        )
        .await
        .unwrap();

    // An agency asking for a stream it was not granted.
    assert_refused(
        &env("agency-urban"),
        &["tail", "SSO", "--no-follow"],
        &[
            "agency-urban may not read stream SSO",
            "$JS.API.STREAM.INFO.SSO",
        ],
    );
    // Publishing another subsystem's events.
    assert_refused(
        &env("adapter-field_reports"),
        &[
            "publish",
            "--type",
            "vn.egov.sso.session.started",
            "--key",
            "S-1",
            "--id",
            "s-1",
            "--data",
            r#"{"user_ref": "u-0123456789abcdef0123456789abcdef", "realm": "binhthuan", "client_id": "qlvb", "at": "2023-11-20T02:16:42Z", "session_ref": "s-0123456789abcdef0123456789abcdef", "auth_method": "openid-connect"}"#,
        ],
        &["adapter-field_reports may not publish egov.sso events"],
    );
    // Reading the dead letters, the audit trail, rebuilding: not an adapter's or the
    // ingress's business; the auditor may not create consumers.
    assert_refused(
        &env("adapter-sso"),
        &["dlq", "list"],
        &["adapter-sso may not read stream DLQ"],
    );
    let key = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[1; 32])
            .verifying_key()
            .to_bytes(),
    );
    assert_refused(
        &env("ingress"),
        &["audit", "verify", "--public-key", &key],
        &["ingress may not read stream"],
    );
    bus.js("operator")
        .await
        .publish("egov.field_reports.report.A.submitted", "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let db = dir.path().join("rebuild");
    assert_refused(
        &env("auditor"),
        &["replay", "rebuild", "--db", db.to_str().unwrap()],
        &["auditor may not create or change a consumer on stream"],
    );
    // An adapter run with another adapter's credentials.
    let config = dir.path().join("field_reports.toml");
    std::fs::write(
        &config,
        "[field_reports]\nendpoint = \"http://127.0.0.1:9/open311/v2/\"\nsource = \"urn:lienthong:test\"\n",
    )
    .unwrap();
    assert_refused(
        &env("adapter-sso"),
        &[
            "adapter",
            "run",
            "field_reports",
            "--config",
            config.to_str().unwrap(),
        ],
        &["adapter-sso may not write field_reports."],
    );
    // What is allowed still works, as quickly.
    let (ok, stderr, _) = run(
        &env("agency-urban"),
        &["tail", "FIELD_REPORTS", "--no-follow"],
    );
    assert!(ok, "{stderr}");
    let (ok, stderr, _) = run(&env("auditor"), &["dlq", "list"]);
    assert!(ok, "{stderr}");
}
