//! Logs: plain text without colour codes when stderr is not a terminal, one JSON object per
//! line with `--log-format json` (for log collectors).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The first log line of a read-only replay service started with `args`.
fn first_log_line(args: &[&str]) -> String {
    let db = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(args)
        .args([
            "replay",
            "serve",
            "--read-only",
            "--listen",
            "127.0.0.1:0",
            "--db",
        ])
        .arg(db.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    line
}

#[test]
fn text_logs_have_no_colour_codes_when_not_on_a_terminal() {
    let line = first_log_line(&[]);
    assert!(
        line.contains("INFO") && line.contains("replay service listening"),
        "{line:?}"
    );
    assert!(!line.contains('\u{1b}'), "colour codes in a pipe: {line:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let line = first_log_line(&["--log-format", "json"]);
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["message"], "replay service listening");
    assert_eq!(v["read_only"], true);
    assert!(v["timestamp"].is_string());
}
