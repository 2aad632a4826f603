//! `lastUpdateTime` held as integers: the instant, the zone as written and the number of
//! fractional digits, enough to write the text back exactly as received. A text that does
//! not read as an ACR timestamp ([`super::parse_time`]) is kept as it came (an age that
//! cannot be read keeps its item).

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt::{self, Write};

/// A `lastUpdateTime` as received: 16 bytes for a timestamp that parses, the text otherwise
/// (behind one thin pointer, so that it fits beside the parsed form's spare zone values:
/// 16 bytes either way, `Option` included).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Timestamp(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Parsed(Parsed),
    Raw(Box<Box<str>>),
}

/// The parts of a timestamp that [`Timestamp::parse`] read.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Parsed {
    /// Seconds since the Unix epoch (UTC).
    seconds: i64,
    nanos: u32,
    /// Minutes east of UTC, as written.
    offset_minutes: i16,
    /// How the zone was written.
    zone: Zone,
    /// Fractional digits written (0–9; trailing zeros count).
    digits: u8,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Zone {
    /// `Z`.
    Zulu,
    /// `+HH:MM`.
    Plus,
    /// `-HH:MM` (`-00:00` included).
    Minus,
}

impl Timestamp {
    /// Reads `text`: compact when it is an ACR timestamp that writes back to the very same
    /// text, kept as text otherwise.
    pub fn parse(text: &str) -> Timestamp {
        match parsed(text) {
            Some(parsed) => Timestamp(Repr::Parsed(parsed)),
            None => Timestamp(Repr::Raw(Box::new(text.into()))),
        }
    }

    /// The instant, when the text reads as an ACR timestamp ([`super::parse_time`]).
    pub fn instant(&self) -> Option<DateTime<Utc>> {
        match &self.0 {
            Repr::Parsed(p) => DateTime::from_timestamp(p.seconds, p.nanos),
            Repr::Raw(text) => super::parse_time(text),
        }
    }
}

/// The compact form of `text`, or `None` when it does not parse or would not write back
/// to exactly `text`.
fn parsed(text: &str) -> Option<Parsed> {
    let time = super::parse_time(text)?;
    let bytes = text.as_bytes();
    let digits = match bytes.get(19) {
        Some(b'.') => bytes[20..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count(),
        _ => 0,
    };
    let zone = match bytes.last() {
        Some(b'Z') => Zone::Zulu,
        _ if bytes.get(bytes.len().wrapping_sub(6)) == Some(&b'-') => Zone::Minus,
        _ => Zone::Plus,
    };
    let offset_minutes = DateTime::parse_from_rfc3339(text)
        .ok()?
        .offset()
        .local_minus_utc()
        / 60;
    let parsed = Parsed {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos(),
        offset_minutes: i16::try_from(offset_minutes).ok()?,
        zone,
        digits: u8::try_from(digits).ok()?,
    };
    (write(&parsed)? == text).then_some(parsed)
}

/// The text of a parsed timestamp.
fn write(p: &Parsed) -> Option<String> {
    let offset = FixedOffset::east_opt(i32::from(p.offset_minutes) * 60)?;
    let local = offset.timestamp_opt(p.seconds, p.nanos).single()?;
    let mut text = String::with_capacity(35);
    write!(text, "{}", local.format("%Y-%m-%dT%H:%M:%S")).ok()?;
    if p.digits > 0 {
        let fraction = format!("{:09}", p.nanos);
        text.push('.');
        text.push_str(fraction.get(..usize::from(p.digits))?);
    }
    match p.zone {
        Zone::Zulu => text.push('Z'),
        Zone::Plus | Zone::Minus => {
            let minutes = p.offset_minutes.unsigned_abs();
            let sign = if p.zone == Zone::Minus { '-' } else { '+' };
            write!(text, "{sign}{:02}:{:02}", minutes / 60, minutes % 60).ok()?;
        }
    }
    Some(text)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Raw(text) => f.write_str(text),
            Repr::Parsed(p) => f.write_str(&write(p).ok_or(fmt::Error)?),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Timestamp::parse(&text))
    }
}

impl From<&str> for Timestamp {
    fn from(text: &str) -> Timestamp {
        Timestamp::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_is_16_bytes_parsed_raw_or_absent() {
        assert_eq!(std::mem::size_of::<Timestamp>(), 16);
        assert_eq!(std::mem::size_of::<Option<Timestamp>>(), 16);
    }

    #[test]
    fn writes_back_exactly_what_it_read() {
        for text in [
            "2018-09-06T06:17:20.9983915Z",
            "2018-09-06T06:17:20.9983910Z",
            "2024-01-01T00:00:00+02:00",
            "2024-01-01T00:00:00-05:30",
            "2024-01-01T00:00:00-00:00",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01T00:00:00.123456789Z",
            "2024-01-01T00:00:00.0Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999+14:00",
            "date",
            "",
            " 2024-01-01T00:00:00Z",
            "2024-01-01t00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2016-12-31T23:59:60Z",
        ] {
            let time = Timestamp::parse(text);
            assert_eq!(time.to_string(), text);
            let json = serde_json::to_string(text).unwrap();
            assert_eq!(serde_json::to_string(&time).unwrap(), json);
            let back: Timestamp = serde_json::from_str(&json).unwrap();
            assert_eq!(back, time);
            assert_eq!(time.instant(), super::super::parse_time(text), "{text}");
        }
    }

    #[test]
    fn a_readable_timestamp_is_held_as_integers() {
        let compact = Timestamp::parse("2018-09-06T06:17:20.9983915+02:00");
        assert!(matches!(compact.0, Repr::Parsed(_)));
        assert_eq!(
            compact.instant().map(|t| t.to_rfc3339()),
            Some("2018-09-06T04:17:20.998391500+00:00".to_string())
        );
        assert!(matches!(Timestamp::parse("yesterday").0, Repr::Raw(_)));
        assert!(std::mem::size_of::<Option<Timestamp>>() <= 24);
    }
}
