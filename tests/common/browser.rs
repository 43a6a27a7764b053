//! The dashboard in a real browser (Debian's Chromium through playwright-core, from
//! `tests/js`), for checks of what an operator sees.

use std::path::{Path, PathBuf};

/// Debian's Chromium (or `$CHROMIUM`); fails with the install hint when it is missing.
pub fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        path.exists(),
        "Chromium is missing at {}: the browser tests need Debian's chromium (./scripts/test installs it: apt-get install chromium)",
        path.display()
    );
    path
}

/// Opens the dashboard at `base` and waits (30 s at most) for the alarm row of `component`
/// (as `/healthz` names it under `down`): `ok <the row's text>`, or `FAIL …`.
pub async fn dashboard_alarm(base: &str, component: &str) -> String {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/playwright-core/package.json").exists(),
        "playwright-core is missing from tests/js/node_modules: run ./scripts/install-js-sdk (./scripts/test does)"
    );
    let out = tokio::process::Command::new("node")
        .arg(js.join("alarm.mjs"))
        .arg(base)
        .arg(component)
        .env("CHROMIUM", chromium())
        .current_dir(&js)
        .output()
        .await
        .expect("Node.js is needed for the browser tests (Debian's nodejs)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr)
    )
}
