//! Data files of automatic continuous monitoring stations, in the layout of the environment
//! ministry's circular on monitoring data (10/2021/TT-BTNMT): what a station's datalogger sends
//! by (s)FTP every few minutes, and keeps for at least 60 days.
//!
//! - **Name**: `<province>_<facility>_<station>_<yyyyMMddHHmmss>.txt` (the station's code,
//!   then when the file was made), under `<station>/<yyyy>/<MM>/<dd>/` on the receiving server.
//! - **Lines**: one parameter each, five fields separated by tabs — the parameter's symbol
//!   (`PM2,5`, `SO2`, `pH`, `WaterLevel`, …), the value, its unit, the measurement time
//!   `yyyyMMddHHmmss` (the station's local time, UTC+7) and the device status: `00` measuring,
//!   `01` calibrating, `02` fault.
//!
//! The layout is the one dataloggers and receiving systems implement; the annex's own PDF
//! could not be consulted from here. Values with a decimal comma (`25,4`) are read too; a
//! byte-order mark is ignored; blank lines are skipped; anything else that does not fit is
//! named with its line number.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use serde_json::json;

use lienthong_bus::{Classification, EventDraft, EventType};

/// The station's local time.
pub fn local() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("UTC+7")
}

/// A device's status as the circular codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Measuring,
    Calibrating,
    Fault,
}

impl Status {
    fn parse(code: &str) -> Option<Self> {
        match code {
            // Two digits exactly: a line cut short (`…\t0` of `01`) is not read as measuring.
            "00" => Some(Self::Measuring),
            "01" => Some(Self::Calibrating),
            "02" => Some(Self::Fault),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Measuring => "measuring",
            Self::Calibrating => "calibrating",
            Self::Fault => "fault",
        }
    }
}

/// One line of a data file.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub parameter: String,
    pub value: f64,
    pub unit: String,
    pub measured_at: DateTime<FixedOffset>,
    pub status: Status,
}

/// A data file's name taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// `<province>_<facility>_<station>`.
    pub station: String,
    pub made_at: NaiveDateTime,
}

/// Reads `<station>_<yyyyMMddHHmmss>.txt`.
pub fn parse_name(name: &str) -> Result<FileName, String> {
    let stem = name
        .strip_suffix(".txt")
        .or_else(|| name.strip_suffix(".TXT"))
        .ok_or_else(|| format!("{name:?}: a data file is named <station>_<yyyyMMddHHmmss>.txt"))?;
    let (station, time) = stem
        .rsplit_once('_')
        .ok_or_else(|| format!("{name:?}: no _<yyyyMMddHHmmss> after the station's code"))?;
    let made_at = timestamp(time).map_err(|e| format!("{name:?}: {e}"))?;
    let ok = !station.is_empty()
        && station.len() <= 80
        && station
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !ok {
        return Err(format!(
            "{name:?}: the station's code {station:?} is not <province>_<facility>_<station> of letters, digits, _ - ."
        ));
    }
    Ok(FileName {
        station: station.to_string(),
        made_at,
    })
}

fn timestamp(s: &str) -> Result<NaiveDateTime, String> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a time yyyyMMddHHmmss"));
    }
    NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S")
        .map_err(|e| format!("{s:?} is not a time yyyyMMddHHmmss ({e})"))
}

/// A line that could not be read: its number, its text, why.
pub type BadLine<'a> = (usize, &'a str, String);

/// Reads a data file's lines: the readings, and what could not be read. A reading measured
/// more than ten minutes after `now` (a datalogger's clock gone wrong) is not read.
pub fn parse_lines(text: &str, now: DateTime<FixedOffset>) -> (Vec<Reading>, Vec<BadLine<'_>>) {
    let mut readings = Vec::new();
    let mut bad = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let latest = now + chrono::Duration::minutes(10);
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(r) if r.measured_at > latest => bad.push((
                n,
                line,
                "measured in the future (the datalogger's clock?)".into(),
            )),
            Ok(r) => readings.push(r),
            Err(e) => bad.push((n, line, e)),
        }
    }
    (readings, bad)
}

fn parse_line(line: &str) -> Result<Reading, String> {
    let fields: Vec<&str> = if line.contains('\t') {
        line.split('\t').map(str::trim).collect()
    } else {
        line.split_whitespace().collect()
    };
    if fields.len() != 5 {
        return Err(format!(
            "{} fields, expected 5 (parameter, value, unit, time, status) separated by tabs",
            fields.len()
        ));
    }
    let (parameter, value, unit, time, status) =
        (fields[0], fields[1], fields[2], fields[3], fields[4]);
    if parameter.is_empty()
        || parameter.chars().count() > 40
        || parameter.chars().any(char::is_control)
    {
        return Err("the parameter's symbol: 1 to 40 printable characters".into());
    }
    let decimal = if value.contains(',') && !value.contains('.') {
        value.replace(',', ".")
    } else {
        value.to_string()
    };
    let value = decimal
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| "the value is not a number".to_string())?;
    if unit.chars().count() > 20 || unit.chars().any(char::is_control) {
        return Err("the unit: at most 20 printable characters".into());
    }
    let measured_at = local()
        .from_local_datetime(
            &timestamp(time).map_err(|_| "the time is not yyyyMMddHHmmss".to_string())?,
        )
        .single()
        .ok_or_else(|| "the time does not exist in UTC+7".to_string())?;
    let status = Status::parse(status)
        .ok_or_else(|| "the status: 00 (measuring), 01 (calibrating) or 02 (fault)".to_string())?;
    Ok(Reading {
        parameter: parameter.to_string(),
        value,
        unit: unit.to_string(),
        measured_at,
        status,
    })
}

/// The event type of a reading.
pub fn reading_type() -> EventType {
    EventType::new(super::SUBSYSTEM, "reading", "measured")
}

/// A reading as an event: its id from the station, the parameter and the measurement time
/// (the same line read twice is the same event).
pub fn to_event(station: &str, file: &str, r: &Reading) -> EventDraft {
    let at = r.measured_at.format("%Y%m%d%H%M%S");
    EventDraft::new(
        reading_type(),
        format!("{station}/{}/{at}", r.parameter),
        station,
        r.measured_at.to_utc(),
        json!({
            "station": station,
            "parameter": r.parameter,
            "value": r.value,
            "unit": r.unit,
            "measured_at": r.measured_at.to_rfc3339(),
            "status": r.status.as_str(),
            "via": "file",
            "file": file,
        }),
        Classification::Public,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\u{feff}PM2,5\t31.4\tµg/Nm3\t20261014083000\t00\r\n\
PM10\t58,2\tµg/Nm3\t20261014083000\t00\r\n\
SO2\t12.0\tµg/Nm3\t20261014083000\t01\r\n\
\r\n\
NO2\t-\tµg/Nm3\t20261014083000\t00\r\n\
CO\t410\tµg/Nm3\t20261014083000\t02\r\n\
O3\t40\tµg/Nm3\t20261014083000\t07\r\n";

    #[test]
    fn a_file_name_names_its_station_and_time() {
        let n = parse_name("BTH_NMDPT_KK01_20261014083000.txt").unwrap();
        assert_eq!(n.station, "BTH_NMDPT_KK01");
        assert_eq!(n.made_at.to_string(), "2026-10-14 08:30:00");
        for bad in [
            "BTH_KK01_2026101408.txt",
            "20261014083000.txt",
            "BTH_KK01_20261014083000.csv",
            "BTH KK01_20261014083000.txt",
            "BTH_KK01_20261399083000.txt",
        ] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_are_read_with_their_status_and_bad_ones_named() {
        let now = local().with_ymd_and_hms(2026, 10, 14, 9, 0, 0).unwrap();
        let (readings, bad) = parse_lines(FILE, now);
        assert_eq!(readings.len(), 4);
        assert_eq!(readings[0].parameter, "PM2,5");
        assert_eq!(readings[0].value, 31.4);
        assert_eq!(readings[1].value, 58.2, "decimal comma");
        assert_eq!(readings[2].status, Status::Calibrating);
        assert_eq!(readings[3].status, Status::Fault);
        assert_eq!(
            readings[0].measured_at.to_rfc3339(),
            "2026-10-14T08:30:00+07:00"
        );
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].0, 5);
        assert!(bad[0].2.contains("not a number"), "{}", bad[0].2);
        assert!(
            !bad[0].2.contains("-"),
            "the reason quotes the station's content"
        );
        assert_eq!(bad[1].0, 7);
        assert!(bad[1].2.contains("status"), "{}", bad[1].2);
        // Spaces instead of tabs, as some dataloggers write.
        let (r, b) = parse_lines("pH 7.2 - 20261014083000 00\n", now);
        assert_eq!((r.len(), b.len()), (1, 0));
        let (r, b) = parse_lines("pH\t7.2\n", now);
        assert_eq!((r.len(), b.len()), (0, 1));
        // A status cut short, a clock in the future.
        let (r, b) = parse_lines("pH\t7.2\t-\t20261014083000\t0\n", now);
        assert_eq!((r.len(), b.len()), (0, 1));
        let (r, b) = parse_lines("pH\t7.2\t-\t20991014083000\t00\n", now);
        assert_eq!((r.len(), b.len()), (0, 1));
        assert!(b[0].2.contains("future"));
    }

    #[test]
    fn the_same_line_is_the_same_event() {
        let (readings, _) = parse_lines(
            FILE,
            local().with_ymd_and_hms(2026, 10, 14, 9, 0, 0).unwrap(),
        );
        let a = to_event("BTH_NMDPT_KK01", "f1.txt", &readings[0]);
        let b = to_event("BTH_NMDPT_KK01", "f2.txt", &readings[0]);
        assert_eq!(a.id, b.id);
        assert_eq!(a.id, "BTH_NMDPT_KK01/PM2,5/20261014083000");
        assert_eq!(a.data["status"], "measuring");
        assert_eq!(a.key, "BTH_NMDPT_KK01");
    }
}
