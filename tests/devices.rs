//! The monitoring stations, a subsystem registered on the running bus (not compiled in):
//! `subsystems/devices/devices.toml` registered against `lienthong up`, then the stations' data
//! files in the layout of 10/2021/TT-BTNMT dropped into the folder the devices adapter watches
//! (as their FTP transfers would), read back from `DEVICES` by an independent client with the
//! auditor's credentials: every reading once, calibrating and faulty ones kept and marked,
//! unreadable lines in the DLQ, a station's 3-day backlog taken in order without holding up
//! another station, a file sent again adding nothing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::up::{lienthong, wait_for, Up};
use serde_json::Value;

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Data files still waiting in the inbox (not under processed/ or failed/).
fn waiting(inbox: &Path) -> usize {
    let mut n = 0;
    let mut dirs = vec![inbox.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if d != inbox || (e.file_name() != "processed" && e.file_name() != "failed") {
                    dirs.push(p);
                }
            } else {
                n += 1;
            }
        }
    }
    n
}

/// A station's backlog: `days` of files every 5 minutes, written in one go.
fn backlog(inbox: &Path, station: &str, days: u32) -> usize {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 9, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let mut files = 0;
    for i in 0..(days * 288) {
        let t = start + chrono::Duration::minutes(5 * i64::from(i));
        let ts = t.format("%Y%m%d%H%M%S").to_string();
        let dir = inbox.join(station).join(t.format("%Y/%m/%d").to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("{station}_{ts}.txt")),
            format!("WaterLevel\t{}\tcm\t{ts}\t00\r\n", 100 + (i % 50)),
        )
        .unwrap();
        files += 1;
    }
    files
}

struct Adapter(Child);

impl Drop for Adapter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_adapter(env: &Path, config: &Path, log: &Path) -> Adapter {
    Adapter(
        Command::new(env!("CARGO_BIN_EXE_lienthong"))
            .args([
                "--env",
                env.to_str().unwrap(),
                "adapter",
                "run",
                "devices",
                "--config",
                config.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Every event of `stream`, read as its auditor.
async fn events(up: &Up, stream: &str) -> Vec<Value> {
    let (client, _) = lienthong_bus::ConnectSettings::resolve(Some(&up.credentials("auditor.env")))
        .unwrap()
        .connect_watched("test-auditor")
        .await
        .unwrap();
    let reader = lienthong_bus::StreamReader::new(client, Default::default());
    reader
        .read_all(stream, None)
        .await
        .unwrap()
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect()
}

#[tokio::test]
async fn monitoring_files_are_taken_in_once_each_in_order_with_calibrating_and_faulty_readings_marked(
) {
    let up = Up::start(&[]);
    let http = reqwest::Client::new();
    up.wait_healthy(&http).await;
    let work = tempfile::tempdir().unwrap();
    let creds = work.path().join("credentials");
    let spec: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "subsystems/devices/devices.toml",
    ]
    .iter()
    .collect();
    let out = lienthong(&[
        "--env",
        up.credentials("operator.env").to_str().unwrap(),
        "subsystem",
        "register",
        spec.to_str().unwrap(),
        "--credentials-dir",
        creds.to_str().unwrap(),
    ]);
    assert!(out.contains("subsystem devices registered"), "{out}");

    // The stations' files, as their transfers leave them, and the adapter watching them.
    let inbox = work.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let config = work.path().join("devices.toml");
    std::fs::write(
        &config,
        format!(
            "[devices]\ninbox = {:?}\npoll_interval_secs = 1\nsettle_secs = 0\nfiles_per_station = 50\n\
             [devices.analysis]\nalarm_levels = {{ BTH_CATY_MN01 = [{{ name = \"báo động 1\", level = 150.0 }}] }}\n",
            inbox.to_str().unwrap()
        ),
    )
    .unwrap();
    let fixtures: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/devices"]
        .iter()
        .collect();
    copy_tree(&fixtures, &inbox);
    // A file named against the layout.
    std::fs::write(
        inbox.join("readings.txt"),
        "pH\t7.1\t-\t20261014083000\t00\r\n",
    )
    .unwrap();
    // And a station's file left in another station's folder.
    std::fs::write(
        inbox.join("BTH_CATY_MN01/BTH_PTHIET_KK01_20261014090000.txt"),
        "PM10\t10\tµg/Nm3\t20261014090000\t00\r\n",
    )
    .unwrap();
    let log = work.path().join("adapter.log");
    let _adapter = start_adapter(&creds.join("adapter-devices.env"), &config, &log);
    let log_tail = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(
        "the fixtures taken in",
        Duration::from_secs(60),
        || async { waiting(&inbox) == 0 },
        log_tail,
    )
    .await;
    assert!(inbox.join("failed/readings.txt").exists());
    assert!(inbox
        .join("failed/BTH_CATY_MN01/BTH_PTHIET_KK01_20261014090000.txt")
        .exists());
    assert!(inbox
        .join("processed/BTH_PTHIET_KK01/2026/10/14/BTH_PTHIET_KK01_20261014084000.txt")
        .exists());

    wait_for(
        "the water level's alarm",
        Duration::from_secs(30),
        || async { events(&up, "DEVICES").await.len() >= 18 },
        log_tail,
    )
    .await;
    let all = events(&up, "DEVICES").await;
    let (stored, alarms): (Vec<Value>, Vec<Value>) = all
        .into_iter()
        .partition(|e| e["type"] == "vn.egov.devices.reading.measured");
    // 3 files × 5 parameters of the air station, 2 readable water levels.
    assert_eq!(stored.len(), 17, "{stored:#?}");
    // The water level over the flood-control board's alarm level 1, once.
    assert_eq!(alarms.len(), 1, "{alarms:#?}");
    assert_eq!(alarms[0]["type"], "vn.egov.devices.threshold.exceeded");
    assert_eq!(alarms[0]["data"]["standard"], "báo động 1");
    assert_eq!(alarms[0]["data"]["value"], 182.0);
    assert_eq!(alarms[0]["data"]["at"], "2026-10-14T08:30:00+07:00");
    let mut ids = std::collections::BTreeSet::new();
    for e in &stored {
        assert_eq!(e["type"], "vn.egov.devices.reading.measured");
        assert_eq!(
            e["dataschema"],
            "https://lienthong.vn/schemas/devices/reading.measured/v1.json"
        );
        assert!(
            ids.insert(e["id"].as_str().unwrap().to_string()),
            "twice: {e}"
        );
    }
    let status_of = |station: &str, parameter: &str, at: &str| {
        stored
            .iter()
            .find(|e| {
                e["data"]["station"] == station
                    && e["data"]["parameter"] == parameter
                    && e["data"]["measured_at"] == at
            })
            .map(|e| (e["data"]["status"].clone(), e["data"]["value"].clone()))
    };
    let air = "BTH_PTHIET_KK01";
    assert_eq!(
        status_of(air, "SO2", "2026-10-14T08:35:00+07:00"),
        Some(("calibrating".into(), 11.8.into()))
    );
    assert_eq!(
        status_of(air, "CO", "2026-10-14T08:40:00+07:00"),
        Some(("fault".into(), 9999.0.into()))
    );
    assert_eq!(
        status_of(air, "PM10", "2026-10-14T08:30:00+07:00"),
        Some(("measuring".into(), 58.2.into())),
        "decimal comma"
    );
    // The unreadable line and the misnamed file are dead letters, as digests.
    let dlq = events(&up, "DLQ").await;
    let dead: Vec<String> = dlq.iter().map(|e| e.to_string()).collect();
    assert!(
        dead.iter()
            .any(|d| d.contains("BTH_CATY_MN01_20261014084500.txt line 2")),
        "{dead:#?}"
    );
    assert!(dead.iter().any(|d| d.contains("readings.txt")), "{dead:#?}");
    assert!(
        !dead.iter().any(|d| d.contains("\\t--\\t")),
        "a dead letter holds the station's content"
    );

    // A file sent again (the datalogger resends after a timeout) adds nothing.
    let again = inbox.join("BTH_PTHIET_KK01/resent");
    std::fs::create_dir_all(&again).unwrap();
    std::fs::copy(
        fixtures.join("BTH_PTHIET_KK01/2026/10/14/BTH_PTHIET_KK01_20261014083000.txt"),
        again.join("BTH_PTHIET_KK01_20261014083000.txt"),
    )
    .unwrap();
    // A station's three days of backlog after an outage, and another station's file, arriving
    // together (written aside, then moved in).
    let stage = work.path().join("stage");
    let backlog_files = backlog(&stage, "BTH_MUINE_MN02", 3);
    let other = stage.join("BTH_PHUHAI_KK03/2026/10/15");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("BTH_PHUHAI_KK03_20261015070000.txt"),
        "PM2,5\t18.2\tµg/Nm3\t20261015070000\t00\r\n",
    )
    .unwrap();
    for station in ["BTH_MUINE_MN02", "BTH_PHUHAI_KK03"] {
        std::fs::rename(stage.join(station), inbox.join(station)).unwrap();
    }
    wait_for(
        "the backlog taken in",
        Duration::from_secs(180),
        || async { waiting(&inbox) == 0 },
        log_tail,
    )
    .await;
    let stored: Vec<Value> = events(&up, "DEVICES")
        .await
        .into_iter()
        .filter(|e| e["type"] == "vn.egov.devices.reading.measured")
        .collect();
    assert_eq!(stored.len(), 17 + backlog_files + 1, "{}", log_tail());
    let positions: BTreeMap<&str, Vec<usize>> =
        stored
            .iter()
            .enumerate()
            .fold(BTreeMap::new(), |mut m, (i, e)| {
                m.entry(e["data"]["station"].as_str().unwrap())
                    .or_default()
                    .push(i);
                m
            });
    // The backlog in order of measurement…
    let times: Vec<&str> = stored
        .iter()
        .filter(|e| e["data"]["station"] == "BTH_MUINE_MN02")
        .map(|e| e["data"]["measured_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "out of order");
    // …and the other station's reading did not wait for its end.
    let other_at = positions["BTH_PHUHAI_KK03"][0];
    let backlog_last = *positions["BTH_MUINE_MN02"].last().unwrap();
    assert!(
        other_at < backlog_last - 500,
        "the other station waited for the backlog (at {other_at}, the backlog ended at {backlog_last})"
    );

    // NO2 of the air station: hour 10 averages 260 µg/Nm³ (over QCVN 05:2023's 200 for one
    // hour; a calibration value of 9999 is not averaged in), hour 11 averages 50.
    let day = inbox.join("BTH_PTHIET_KK01/2026/10/15");
    std::fs::create_dir_all(&day).unwrap();
    let mut lines = Vec::new();
    for (hour, values) in [(10, [250, 260, 270]), (11, [50, 50, 50])] {
        for (i, v) in values.iter().enumerate() {
            let t = format!("20261015{hour}{:02}00", i * 20);
            lines.push((t.clone(), format!("NO2\t{v}\tµg/Nm3\t{t}\t00")));
        }
    }
    lines.push((
        "20261015100500".to_string(),
        "NO2\t9999\tµg/Nm3\t20261015100500\t01".to_string(),
    ));
    lines.push((
        "20261015120000".to_string(),
        "NO2\t40\tµg/Nm3\t20261015120000\t00".to_string(),
    ));
    for (time, line) in lines {
        std::fs::write(
            day.join(format!("BTH_PTHIET_KK01_{time}.txt")),
            format!("{line}\r\n"),
        )
        .unwrap();
    }
    let thresholds = || async {
        events(&up, "DEVICES")
            .await
            .into_iter()
            .filter(|e| {
                e["data"]["parameter"] == "NO2" && e["type"] != "vn.egov.devices.reading.measured"
            })
            .collect::<Vec<Value>>()
    };
    wait_for(
        "NO2 exceeded and cleared",
        Duration::from_secs(60),
        || async { thresholds().await.len() >= 2 },
        log_tail,
    )
    .await;
    let no2 = thresholds().await;
    let seen: Vec<(&str, &str, f64)> = no2
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["data"]["at"].as_str().unwrap(),
                e["data"]["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "vn.egov.devices.threshold.exceeded",
                "2026-10-15T11:00:00+07:00",
                260.0
            ),
            (
                "vn.egov.devices.threshold.cleared",
                "2026-10-15T12:00:00+07:00",
                50.0
            )
        ]
    );
    assert_eq!(no2[0]["data"]["standard"], "QCVN 05:2023/BTNMT");
    assert_eq!(no2[0]["data"]["averaging"], "1h");

    // The adapter started again goes on from where it was: nothing is said twice.
    let before = events(&up, "DEVICES").await.len();
    drop(_adapter);
    let _adapter = start_adapter(&creds.join("adapter-devices.env"), &config, &log);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(events(&up, "DEVICES").await.len(), before, "{}", log_tail());
}
