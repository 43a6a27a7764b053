//! The crash campaign, short: `lienthong chaos` on a single server and on a cluster of three,
//! every component killed with SIGKILL at least once; nothing acknowledged lost, nothing
//! stored twice, every report of the source system on the stream, the read model equal to a
//! fresh rebuild. (`scripts/chaos N` runs the long one.)

use std::process::Command;

fn chaos(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .arg("chaos")
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "chaos failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn check(report: &str, rounds: usize, per_round: usize) {
    for killed in ["ingress", "adapter", "replay"] {
        assert!(
            report.contains(&format!(": {killed} ")),
            "{killed} never killed:\n{report}"
        );
    }
    assert!(report.contains("nats"), "no server killed:\n{report}");
    let last = report.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "chaos: {rounds} rounds, {} acknowledged, 0 lost, 0 duplicated, read models equal",
            rounds * per_round
        ),
        "{report}"
    );
}

#[test]
fn a_single_server_loses_nothing_when_any_component_is_killed() {
    let report = chaos(&[
        "--rounds",
        "4",
        "--events-per-round",
        "40",
        "--reports",
        "200",
    ]);
    check(&report, 4, 40);
}

#[test]
fn a_cluster_loses_nothing_when_a_node_or_a_component_is_killed() {
    let report = chaos(&[
        "--cluster",
        "--rounds",
        "4",
        "--events-per-round",
        "40",
        "--reports",
        "200",
        "--seed",
        "7",
    ]);
    check(&report, 4, 40);
}
