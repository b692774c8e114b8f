//! Stored times, written and read back fast.
//!
//! Every event and fulfillment the gateway stores carries a handful of
//! RFC 3339 times, and every apply reads and writes them again. chrono's
//! general parser and its formatting machinery cost about as much as the
//! rest of the JSON around them, so the shape shipgate itself writes
//! (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`) takes a direct path; anything else
//! (an offset, a leap second, a year outside 0–9999) goes through chrono
//! exactly as before. Output is byte for byte what chrono's serde writes.

use chrono::offset::LocalResult;
use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Offset, ParseResult, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serializer};

/// The longest text of the direct path: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const LONGEST: usize = 30;

/// `t` as chrono's serde writes it: UTC with `Z`, and a fraction of 3, 6
/// or 9 digits only when the time has one.
pub fn format(t: &DateTime<Utc>) -> String {
    with_text(t, str::to_owned)
}

/// Hands `f` the text [`format`] answers, written on the stack: a
/// serializer only copies it, and a worker writes several per apply.
fn with_text<R>(t: &DateTime<Utc>, f: impl FnOnce(&str) -> R) -> R {
    let mut buffer = [0; LONGEST];
    match write_own(t, &mut buffer) {
        Some(text) => f(text),
        None => f(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
    }
}

/// The direct path of [`format`], digit by digit (`write!` with padding
/// cost more than the rest of the apply's JSON); `None` for a year
/// outside 0–9999 or a leap second, which chrono writes.
fn write_own<'b>(t: &DateTime<Utc>, buffer: &'b mut [u8; LONGEST]) -> Option<&'b str> {
    let naive = t.naive_utc();
    let nanos = naive.nanosecond();
    let year = u32::try_from(naive.year()).ok().filter(|y| *y <= 9999)?;
    if nanos >= 1_000_000_000 {
        return None;
    }
    buffer[..19].copy_from_slice(b"0000-00-00T00:00:00");
    digits(&mut buffer[0..4], year);
    digits(&mut buffer[5..7], naive.month());
    digits(&mut buffer[8..10], naive.day());
    digits(&mut buffer[11..13], naive.hour());
    digits(&mut buffer[14..16], naive.minute());
    digits(&mut buffer[17..19], naive.second());
    let mut end = 19;
    if nanos != 0 {
        let (value, width) = if nanos % 1_000_000 == 0 {
            (nanos / 1_000_000, 3)
        } else if nanos % 1_000 == 0 {
            (nanos / 1_000, 6)
        } else {
            (nanos, 9)
        };
        buffer[19] = b'.';
        digits(&mut buffer[20..20 + width], value);
        end = 20 + width;
    }
    buffer[end] = b'Z';
    std::str::from_utf8(&buffer[..=end]).ok()
}

/// `n` in decimal, zero-padded to fill `slot` (its high digits dropped if
/// it has more).
fn digits(slot: &mut [u8], mut n: u32) {
    for digit in slot.iter_mut().rev() {
        // A remainder of 10 fits in a u8.
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// An RFC 3339 time, as chrono's serde reads one (relaxed: any offset,
/// `t` or a space for `T`), converted to UTC.
pub fn parse(text: &str) -> ParseResult<DateTime<Utc>> {
    match parse_own(text.as_bytes()) {
        Some(t) => Ok(t),
        None => text
            .parse::<DateTime<FixedOffset>>()
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// A date-time as a provider that allows leaving out the offset sends it:
/// with an offset it is that instant; without one (Carriyo accepts
/// `2026-11-20T10:00:00`) it is a wall-clock time in `zone`. The rules
/// for wall-clock times a daylight-saving change makes odd are Java's
/// `ZonedDateTime.of`, which Carriyo's API runs on: an ambiguous time
/// (clocks turned back) is its earlier instant, and a time that does not
/// exist (clocks moved forward) moves forward by the gap's length, so
/// 02:30 in a gap from 02:00 to 03:00 is 03:30.
pub fn parse_in_zone(text: &str, zone: Tz) -> Option<DateTime<Utc>> {
    if let Ok(t) = parse(text) {
        return Some(t);
    }
    let local = parse_naive(text)?;
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => {
            // In a gap: read with the offset in force just before it.
            let before = zone
                .offset_from_utc_datetime(&(local - chrono::Duration::days(1)))
                .fix();
            Some((local - before).and_utc())
        }
    }
}

/// A date-time without an offset (`T` or a space between date and time,
/// an optional fraction).
pub fn parse_naive(text: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|shape| NaiveDateTime::parse_from_str(text, shape).ok())
}

/// The shape [`format`] writes, or `None` for chrono to judge (which
/// includes second 60: chrono places leap seconds in the fraction).
fn parse_own(b: &[u8]) -> Option<DateTime<Utc>> {
    let (head, rest) = (b.get(..19)?, b.get(19..)?);
    if head[4] != b'-' || head[7] != b'-' || head[10] != b'T' || head[13] != b':' {
        return None;
    }
    if head[16] != b':' || rest.last() != Some(&b'Z') {
        return None;
    }
    let number = |from: usize, to: usize| decimal(&head[from..to]);
    let fraction = &rest[..rest.len() - 1];
    let nanos = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            decimal(digits)? * 10u32.pow(9 - u32::try_from(digits.len()).ok()?)
        }
        _ => return None,
    };
    let year = i32::try_from(number(0, 4)?).ok()?;
    NaiveDate::from_ymd_opt(year, number(5, 7)?, number(8, 10)?)?
        .and_hms_nano_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?, nanos)
        .map(|t| t.and_utc())
}

/// ASCII digits as a number (at most nine of them, so it fits).
fn decimal(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// `#[serde(with = "crate::canonical::time::rfc3339")]` for `DateTime<Utc>`.
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        with_text(t, |text| s.serialize_str(text))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

/// [`rfc3339`] for `Option<DateTime<Utc>>`.
pub mod rfc3339_option {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => with_text(t, |text| s.serialize_some(text)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        text.map(|text| parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// What chrono's own serde writes and reads, to compare against.
    fn chrono_json(t: &DateTime<Utc>) -> String {
        serde_json::to_string(t).expect("a time serialises")
    }

    #[test]
    fn writes_what_chrono_writes() {
        let base = Utc.with_ymd_and_hms(2026, 11, 1, 7, 5, 9).unwrap();
        for nanos in [
            0,
            1,
            120,
            5_000,
            123_000,
            7_000_000,
            120_000_000,
            999_999_999,
        ] {
            let t = base + chrono::Duration::nanoseconds(nanos);
            assert_eq!(format!("\"{}\"", format(&t)), chrono_json(&t), "{nanos} ns");
        }
        let early = Utc.with_ymd_and_hms(12, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format!("\"{}\"", format(&early)), chrono_json(&early));
        let far = Utc.with_ymd_and_hms(12026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format!("\"{}\"", format(&far)), chrono_json(&far));
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_250_000_000))
            .unwrap()
            .and_utc();
        assert_eq!(format!("\"{}\"", format(&leap)), chrono_json(&leap));
        // Every field's digits, across years and the fraction's widths.
        let mut t = Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap();
        for step in 0..20_000i64 {
            t += chrono::Duration::seconds(86_413 * 7 + step)
                + chrono::Duration::microseconds(step * 37);
            assert_eq!(format!("\"{}\"", format(&t)), chrono_json(&t), "{t:?}");
        }
    }

    #[test]
    fn reads_its_own_shape_and_everything_chrono_reads() {
        for text in [
            "2026-11-01T07:05:09Z",
            "2026-11-01T07:05:09.1Z",
            "2026-11-01T07:05:09.120Z",
            "2026-11-01T07:05:09.000005Z",
            "2026-11-01T07:05:09.999999999Z",
            "2026-11-01T14:36:19-05:00",
            "2026-11-01t07:05:09z",
            "2026-11-01 07:05:09+00:00",
            "2016-12-31T23:59:60Z",
            "2024-02-29T00:00:00Z",
            "2026-11-01T07:05:09.1234567891Z",
        ] {
            let expected: DateTime<Utc> =
                serde_json::from_str(&format!("\"{text}\"")).expect("chrono reads it");
            assert_eq!(parse(text).ok(), Some(expected), "{text}");
        }
    }

    #[test]
    fn refuses_what_chrono_refuses() {
        for text in [
            "",
            "2026-11-01",
            "2026-13-01T07:05:09Z",
            "2025-02-29T00:00:00Z",
            "2026-11-01T24:00:00Z",
            "2026-11-01T07:05:09.Z",
            "2026-11-01T07:05:09",
            "2026-11-01T07:05:+9Z",
            "２026-11-01T07:05:09Z",
        ] {
            assert!(
                serde_json::from_str::<DateTime<Utc>>(&format!("\"{text}\"")).is_err(),
                "chrono takes '{text}'"
            );
            assert!(parse(text).is_err(), "'{text}' was taken");
        }
    }

    #[test]
    fn times_without_an_offset_are_read_in_the_zone() {
        let dubai: Tz = "Asia/Dubai".parse().unwrap();
        let at = |text: &str, zone: Tz| parse_in_zone(text, zone).map(|t| format(&t));
        assert_eq!(
            at("2026-11-22T09:30:00", dubai).as_deref(),
            Some("2026-11-22T05:30:00Z")
        );
        assert_eq!(
            at("2026-11-22 09:30:00.250", Tz::UTC).as_deref(),
            Some("2026-11-22T09:30:00.250Z")
        );
        assert_eq!(
            at("2026-11-22T09:30:00-05:00", dubai).as_deref(),
            Some("2026-11-22T14:30:00Z"),
            "an offset wins over the zone"
        );
        assert_eq!(at("22/11/2026 09:30", dubai), None);
        assert_eq!(at("2026-11-22", dubai), None);
    }

    #[test]
    fn daylight_saving_changes_follow_java_rules() {
        let new_york: Tz = "America/New_York".parse().unwrap();
        let at = |text: &str| parse_in_zone(text, new_york).map(|t| format(&t));
        // 2026-11-01 01:30 happens twice (EDT, then EST): the earlier one.
        assert_eq!(
            at("2026-11-01T01:30:00").as_deref(),
            Some("2026-11-01T05:30:00Z")
        );
        // 2026-03-08 02:30 does not exist: moved forward to 03:30 EDT.
        assert_eq!(
            at("2026-03-08T02:30:00").as_deref(),
            Some("2026-03-08T07:30:00Z")
        );
        assert_eq!(
            at("2026-03-08T03:30:00").as_deref(),
            Some("2026-03-08T07:30:00Z")
        );
    }

    #[test]
    fn round_trips_through_serde_attributes() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Times {
            #[serde(with = "rfc3339")]
            at: DateTime<Utc>,
            #[serde(default, with = "rfc3339_option")]
            maybe: Option<DateTime<Utc>>,
        }
        let at = Utc.with_ymd_and_hms(2026, 11, 1, 7, 5, 9).unwrap()
            + chrono::Duration::microseconds(15);
        for times in [
            Times { at, maybe: None },
            Times {
                at,
                maybe: Some(at),
            },
        ] {
            let json = serde_json::to_string(&times).expect("serialises");
            assert_eq!(serde_json::from_str::<Times>(&json).ok(), Some(times));
        }
        let json =
            r#"{"at":"2026-11-01T07:05:09.000015Z","maybe":"2026-11-01T09:05:09.000015+02:00"}"#;
        let read: Times = serde_json::from_str(json).expect("reads");
        assert_eq!(read.maybe, Some(at));
    }
}
