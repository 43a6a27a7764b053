//! An event's `time` as the envelope writes it: RFC 3339 in UTC with `Z`, the fraction of a
//! second in 0, 3, 6 or 9 digits as needed — what chrono's `Serialize` writes, without the
//! formatting machinery (once per published event).

use chrono::{DateTime, Datelike, Timelike, Utc};

/// `time` as chrono serializes it.
pub struct Rfc3339<'a>(pub &'a DateTime<Utc>);

impl serde::Serialize for Rfc3339<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match written(self.0) {
            Some(text) => serializer.serialize_str(text.as_str()),
            // Years before 0 or after 9999 (a sign and more digits): chrono's own writing.
            None => self.0.serialize(serializer),
        }
    }
}

/// Up to `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (30 bytes), on the stack.
struct Text {
    bytes: [u8; 30],
    len: usize,
}

impl Text {
    fn byte(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    /// `value` in `width` decimal digits, zero-padded.
    fn digits(&mut self, value: u32, width: u32) {
        for i in (0..width).rev() {
            self.byte(b'0' + (value / 10u32.pow(i) % 10) as u8);
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and separators are written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// `time` written out; `None` for years outside 0..=9999.
fn written(time: &DateTime<Utc>) -> Option<Text> {
    let year = u32::try_from(time.year()).ok().filter(|y| *y <= 9999)?;
    let mut second = time.second();
    let mut nano = time.nanosecond();
    // A leap second, as chrono writes it: second 60.
    if nano >= 1_000_000_000 {
        second += 1;
        nano -= 1_000_000_000;
    }
    let mut t = Text {
        bytes: [0; 30],
        len: 0,
    };
    t.digits(year, 4);
    for (separator, value) in [
        (b'-', time.month()),
        (b'-', time.day()),
        (b'T', time.hour()),
        (b':', time.minute()),
        (b':', second),
    ] {
        t.byte(separator);
        t.digits(value, 2);
    }
    if nano != 0 {
        t.byte(b'.');
        if nano.is_multiple_of(1_000_000) {
            t.digits(nano / 1_000_000, 3);
        } else if nano.is_multiple_of(1_000) {
            t.digits(nano / 1_000, 6);
        } else {
            t.digits(nano, 9);
        }
    }
    t.byte(b'Z');
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn chrono_writes(t: &DateTime<Utc>) -> String {
        serde_json::to_string(t).unwrap()
    }

    #[test]
    fn times_are_written_as_chrono_writes_them() {
        let mut times = vec![
            Utc.with_ymd_and_hms(2024, 3, 5, 7, 12, 0).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 15, 12, 0, 0).unwrap(),
        ];
        // A leap second.
        times.push(
            chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                .unwrap()
                .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                .unwrap()
                .and_utc(),
        );
        let base = Utc.with_ymd_and_hms(2023, 10, 1, 8, 30, 5).unwrap();
        for nanos in [
            1,
            7,
            1_000,
            120_000,
            1_000_000,
            5_000_000,
            999_999_999,
            123_456_789,
        ] {
            times.push(base + chrono::Duration::nanoseconds(nanos));
        }
        // Across days, months and years.
        let mut t = Utc.with_ymd_and_hms(1999, 12, 30, 22, 0, 0).unwrap();
        for _ in 0..2_000 {
            t += chrono::Duration::nanoseconds(3_600_000_001_234);
            times.push(t);
        }
        for t in &times {
            assert_eq!(
                serde_json::to_string(&Rfc3339(t)).unwrap(),
                chrono_writes(t),
                "{t:?}"
            );
        }
    }
}
