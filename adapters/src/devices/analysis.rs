//! Analysis for direction: the stations' readings against the national air-quality standard
//! (QCVN 05:2023/BTNMT) and the water-level alarm levels, published as events of their own
//! (`vn.egov.devices.threshold.exceeded` / `…cleared`) that agencies subscribe to and the
//! operations centre shows.
//!
//! A deterministic fold of the `DEVICES` stream's readings, in stream order ([`Analyser`]):
//! - only readings taken while **measuring** count (calibrating and faulty ones never do);
//! - **hourly averages** per station and parameter (the local clock hour, UTC+7), closed when the
//!   station's first reading of a later hour arrives (readings for an hour already closed are
//!   stored but change no average);
//! - air limits (µg/Nm³; mg/Nm³ converted): `1h` on the hourly average, `8h` and `24h` on the
//!   mean of the last 8 and 24 hourly averages once 6 of 8 and 18 of 24 hours are there;
//! - water levels: each reading against each configured alarm level of its station;
//! - an exceedance is published once when a limit is crossed upwards, a clearing once when the
//!   value is back under it. Ids come from the station, parameter, averaging, limit and period,
//!   so folding the same readings again publishes nothing new.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, Timelike};
use serde::{Deserialize, Serialize};
use serde_json::json;

use lienthong_bus::{Classification, EventDraft, EventType};

/// One limit of QCVN 05:2023/BTNMT (µg/Nm³).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AirLimit {
    pub parameter: &'static str,
    pub averaging: Averaging,
    pub limit: f64,
}

/// QCVN 05:2023/BTNMT, national technical regulation on ambient air quality: the limits of
/// the hourly, 8-hour and 24-hour averages this analysis checks.
pub const QCVN_05_2023: &[AirLimit] = &[
    AirLimit {
        parameter: "SO2",
        averaging: Averaging::H1,
        limit: 350.0,
    },
    AirLimit {
        parameter: "SO2",
        averaging: Averaging::H24,
        limit: 125.0,
    },
    AirLimit {
        parameter: "NO2",
        averaging: Averaging::H1,
        limit: 200.0,
    },
    AirLimit {
        parameter: "NO2",
        averaging: Averaging::H24,
        limit: 100.0,
    },
    AirLimit {
        parameter: "CO",
        averaging: Averaging::H1,
        limit: 30_000.0,
    },
    AirLimit {
        parameter: "CO",
        averaging: Averaging::H8,
        limit: 10_000.0,
    },
    AirLimit {
        parameter: "O3",
        averaging: Averaging::H1,
        limit: 200.0,
    },
    AirLimit {
        parameter: "O3",
        averaging: Averaging::H8,
        limit: 120.0,
    },
    AirLimit {
        parameter: "TSP",
        averaging: Averaging::H1,
        limit: 300.0,
    },
    AirLimit {
        parameter: "TSP",
        averaging: Averaging::H24,
        limit: 200.0,
    },
    AirLimit {
        parameter: "PM10",
        averaging: Averaging::H24,
        limit: 100.0,
    },
    AirLimit {
        parameter: "PM2.5",
        averaging: Averaging::H24,
        limit: 50.0,
    },
];

/// The standard's name, as the events give it.
pub const QCVN: &str = "QCVN 05:2023/BTNMT";

/// What a limit is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Averaging {
    #[serde(rename = "reading")]
    Reading,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "8h")]
    H8,
    #[serde(rename = "24h")]
    H24,
}

impl Averaging {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reading => "reading",
            Self::H1 => "1h",
            Self::H8 => "8h",
            Self::H24 => "24h",
        }
    }

    /// Hours averaged, and how many of them must be there.
    fn window(self) -> Option<(usize, usize)> {
        match self {
            Self::H8 => Some((8, 6)),
            Self::H24 => Some((24, 18)),
            _ => None,
        }
    }
}

/// A configured alarm level of a water-level station (e.g. the flood-control board's levels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmLevel {
    /// Its name, e.g. "báo động 2" (alarm level 2).
    pub name: String,
    /// In the unit the station sends (cm).
    pub level: f64,
}

/// A parameter's symbol as this analysis knows it: `PM2,5` → `PM2.5`, `so2` → `SO2`.
pub fn normalise(parameter: &str) -> String {
    parameter.trim().replace(',', ".").to_ascii_uppercase()
}

/// A concentration in µg/Nm³, when its unit is one of mass per volume.
fn micrograms(value: f64, unit: &str) -> Option<f64> {
    let u = unit
        .trim()
        .replace('³', "3")
        .replace('μ', "µ")
        .to_ascii_lowercase();
    match u.as_str() {
        "µg/nm3" | "ug/nm3" | "µg/m3" | "ug/m3" => Some(value),
        "mg/nm3" | "mg/m3" => Some(value * 1000.0),
        _ => None,
    }
}

/// One reading as the analysis takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub station: String,
    pub parameter: String,
    pub value: f64,
    pub unit: String,
    pub measured_at: DateTime<FixedOffset>,
    pub measuring: bool,
    /// When the bus stored it: a reading measured more than an hour after that (a clock gone
    /// wrong) is not analysed — it would close the hours of every true reading after it.
    pub stored_at: DateTime<FixedOffset>,
}

/// A threshold crossed (or crossed back).
#[derive(Debug, Clone, PartialEq)]
pub struct Crossing {
    pub exceeded: bool,
    pub station: String,
    pub parameter: String,
    pub value: f64,
    pub limit: f64,
    pub unit: String,
    pub averaging: Averaging,
    pub standard: String,
    /// The end of the averaging period (the reading's time for `reading`).
    pub at: DateTime<FixedOffset>,
}

impl Crossing {
    pub fn to_event(&self) -> EventDraft {
        let action = if self.exceeded { "exceeded" } else { "cleared" };
        let at = self.at.format("%Y%m%d%H%M%S");
        EventDraft::new(
            EventType::new(super::SUBSYSTEM, "threshold", action),
            format!(
                "{}/{}/{}/{}/{}/{at}/{action}",
                self.station,
                self.parameter,
                self.averaging.as_str(),
                self.limit,
                self.standard
            ),
            self.station.as_str(),
            self.at.to_utc(),
            json!({
                "station": self.station,
                "parameter": self.parameter,
                "value": (self.value * 100.0).round() / 100.0,
                "limit": self.limit,
                "unit": self.unit,
                "averaging": self.averaging.as_str(),
                "standard": self.standard,
                "at": self.at.to_rfc3339(),
            }),
            Classification::Public,
        )
    }
}

/// What the analysis keeps of one station's parameter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Series {
    /// The open hour (its start, RFC 3339), with the sum and count of its valid readings.
    hour: Option<(DateTime<FixedOffset>, f64, u32)>,
    /// The last closed hours' averages, oldest first (at most 24), by hour start.
    hours: Vec<(DateTime<FixedOffset>, f64)>,
    /// The limits (averaging, limit) now exceeded.
    exceeded: Vec<(Averaging, String)>,
    /// The latest reading time seen (water levels: an older reading arriving later changes
    /// no alarm).
    #[serde(default)]
    last: Option<DateTime<FixedOffset>>,
}

/// The fewest valid readings an hourly average is made of (a station sends one every few
/// minutes).
pub const MIN_READINGS_PER_HOUR: u32 = 3;

/// A value to hold against a limit.
struct Check<'a> {
    averaging: Averaging,
    limit: f64,
    value: f64,
    unit: &'a str,
    standard: &'a str,
    at: DateTime<FixedOffset>,
}

impl Series {
    /// The crossing `c` makes, if it makes one (the limit's state changes).
    fn check(&mut self, r: &Reading, c: Check) -> Option<Crossing> {
        let limit_key = format!("{}/{}/{}", c.averaging.as_str(), c.limit, c.standard);
        let now = c.value > c.limit;
        let was = self.exceeded.iter().any(|(_, k)| *k == limit_key);
        if now == was {
            return None;
        }
        if now {
            self.exceeded.push((c.averaging, limit_key));
        } else {
            self.exceeded.retain(|(_, k)| *k != limit_key);
        }
        Some(Crossing {
            exceeded: now,
            station: r.station.clone(),
            parameter: r.parameter.clone(),
            value: c.value,
            limit: c.limit,
            unit: c.unit.to_string(),
            averaging: c.averaging,
            standard: c.standard.to_string(),
            at: c.at,
        })
    }
}

/// The fold: everything it needs to go on from where it was (kept in `ADAPTER_STATE`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Analyser {
    series: BTreeMap<String, Series>,
}

fn hour_of(t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    t.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

impl Analyser {
    /// Folds one reading; returns the thresholds it makes crossed or cleared.
    pub fn feed(
        &mut self,
        r: &Reading,
        alarms: &BTreeMap<String, Vec<AlarmLevel>>,
    ) -> Vec<Crossing> {
        let mut out = Vec::new();
        if !r.measuring || !r.value.is_finite() || r.measured_at > r.stored_at + Duration::hours(1)
        {
            return out;
        }
        let parameter = normalise(&r.parameter);
        let levels = alarms.get(&r.station).filter(|_| parameter == "WATERLEVEL");
        let limits: Vec<&AirLimit> = QCVN_05_2023
            .iter()
            .filter(|l| l.parameter == parameter)
            .collect();
        // Only what is analysed is kept (a file of made-up parameters grows nothing).
        if levels.is_none() && limits.is_empty() {
            return out;
        }
        let key = format!("{}/{parameter}", r.station);
        let series = self.series.entry(key).or_default();
        // Water levels: each reading against the station's alarm levels, in time order.
        if let Some(levels) = levels {
            if series.last.is_some_and(|last| r.measured_at < last) {
                return out;
            }
            series.last = Some(r.measured_at);
            for l in levels {
                let check = Check {
                    averaging: Averaging::Reading,
                    limit: l.level,
                    value: r.value,
                    unit: &r.unit,
                    standard: &l.name,
                    at: r.measured_at,
                };
                out.extend(series.check(r, check));
            }
            return out;
        }
        let Some(value) = micrograms(r.value, &r.unit) else {
            return out;
        };
        let hour = hour_of(r.measured_at);
        match series.hour {
            Some((open, _, _)) if hour < open => return out, // a closed hour: stored, not averaged
            Some((open, ref mut sum, ref mut n)) if hour == open => {
                *sum += value;
                *n += 1;
                return out;
            }
            _ => {}
        }
        // A later hour: the open one closes.
        if let Some((open, sum, n)) = series.hour.replace((hour, value, 1)) {
            if n < MIN_READINGS_PER_HOUR {
                // Too few readings for an hourly average: the hour counts as missing.
                return out;
            }
            series.hours.push((open, sum / f64::from(n)));
            if series.hours.len() > 24 {
                series.hours.remove(0);
            }
            let end = open + Duration::hours(1);
            for l in &limits {
                let average = match l.averaging.window() {
                    None => Some(sum / f64::from(n)),
                    Some((hours, needed)) => {
                        let since = end - Duration::hours(hours as i64);
                        let inside: Vec<f64> = series
                            .hours
                            .iter()
                            .filter(|(h, _)| *h >= since)
                            .map(|(_, a)| *a)
                            .collect();
                        (inside.len() >= needed)
                            .then(|| inside.iter().sum::<f64>() / inside.len() as f64)
                    }
                };
                let Some(average) = average else { continue };
                let check = Check {
                    averaging: l.averaging,
                    limit: l.limit,
                    value: average,
                    unit: "µg/Nm3",
                    standard: QCVN,
                    at: end,
                };
                out.extend(series.check(r, check));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<FixedOffset> {
        FixedOffset::east_opt(7 * 3600)
            .unwrap()
            .with_ymd_and_hms(2026, 10, day, hour, minute, 0)
            .unwrap()
    }

    fn reading(p: &str, v: f64, unit: &str, t: DateTime<FixedOffset>, measuring: bool) -> Reading {
        Reading {
            station: "S".into(),
            parameter: p.into(),
            value: v,
            unit: unit.into(),
            measured_at: t,
            measuring,
            stored_at: t,
        }
    }

    #[test]
    fn an_hourly_average_over_its_limit_is_exceeded_once_and_cleared_once() {
        let mut a = Analyser::default();
        let none = BTreeMap::new();
        let mut crossings = Vec::new();
        // NO2: hour 8 averages 250 (over 200), hour 9 averages 210, hour 10 averages 100.
        for (h, values) in [
            (8, [240.0, 250.0, 260.0]),
            (9, [200.0, 210.0, 220.0]),
            (10, [90.0, 100.0, 110.0]),
            (11, [0.0, 0.0, 0.0]),
        ] {
            for (i, v) in values.iter().enumerate() {
                crossings.extend(a.feed(
                    &reading("NO2", *v, "µg/Nm3", at(14, h, i as u32 * 20), true),
                    &none,
                ));
            }
        }
        let seen: Vec<(bool, String, f64)> = crossings
            .iter()
            .map(|c| (c.exceeded, c.at.format("%H:%M").to_string(), c.value))
            .collect();
        assert_eq!(
            seen,
            [
                (true, "09:00".into(), 250.0),
                (false, "11:00".into(), 100.0)
            ]
        );
        assert_eq!(
            crossings[0].to_event().id,
            "S/NO2/1h/200/QCVN 05:2023/BTNMT/20261014090000/exceeded"
        );
    }

    #[test]
    fn calibrating_and_faulty_readings_are_never_averaged_in() {
        let mut a = Analyser::default();
        let none = BTreeMap::new();
        let mut crossings = Vec::new();
        for h in 8..10 {
            crossings.extend(a.feed(
                &reading("SO2", 9999.0, "µg/Nm3", at(14, h, 0), false),
                &none,
            ));
            crossings.extend(a.feed(&reading("SO2", 20.0, "µg/Nm3", at(14, h, 10), true), &none));
        }
        assert!(crossings.is_empty(), "{crossings:?}");
    }

    #[test]
    fn a_24_hour_average_needs_18_hours_and_mg_are_converted() {
        let mut a = Analyser::default();
        let none = BTreeMap::new();
        let mut crossings = Vec::new();
        // PM2,5 at 0.06 mg/Nm3 (60 µg) three times an hour from midnight: the 24 h limit is 50.
        for h in 0..20 {
            for m in [5, 25, 45] {
                crossings
                    .extend(a.feed(&reading("PM2,5", 0.06, "mg/Nm3", at(14, h, m), true), &none));
            }
        }
        assert_eq!(crossings.len(), 1);
        assert_eq!(crossings[0].averaging, Averaging::H24);
        // Closed when hour 18 began: hours 0..=17 are 18 hours.
        assert_eq!(crossings[0].at, at(14, 18, 0));
        assert!((crossings[0].value - 60.0).abs() < 1e-9);
    }

    #[test]
    fn water_levels_against_the_stations_alarm_levels() {
        let mut a = Analyser::default();
        let alarms = BTreeMap::from([(
            "S".to_string(),
            vec![
                AlarmLevel {
                    name: "báo động 1".into(),
                    level: 150.0,
                },
                AlarmLevel {
                    name: "báo động 2".into(),
                    level: 200.0,
                },
            ],
        )]);
        let mut crossings = Vec::new();
        for (m, v) in [
            (0, 140.0),
            (5, 160.0),
            (10, 210.0),
            (15, 190.0),
            (20, 120.0),
        ] {
            crossings.extend(a.feed(&reading("WaterLevel", v, "cm", at(14, 8, m), true), &alarms));
        }
        let seen: Vec<(bool, String)> = crossings
            .iter()
            .map(|c| (c.exceeded, c.standard.clone()))
            .collect();
        assert_eq!(
            seen,
            [
                (true, "báo động 1".into()),
                (true, "báo động 2".into()),
                (false, "báo động 2".into()),
                (false, "báo động 1".into())
            ]
        );
    }

    #[test]
    fn the_state_survives_being_kept() {
        let mut a = Analyser::default();
        a.feed(
            &reading("NO2", 250.0, "µg/Nm3", at(14, 8, 0), true),
            &BTreeMap::new(),
        );
        let kept: Analyser = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(kept, a);
    }
}
