//! The `--ago` duration grammar.
//!
//! acr purge accepts `[<days>d][<go-duration>]`: `30d`, `1d3h6m`, `15m`, `0d`, `2h30m`, `1.5h`.
//! Unlike acr purge, the whole string must be consumed: `3h2d` (which acr purge reads as
//! 3 days) and `d5h` (which it reads as 0, making everything eligible) are rejected, and so
//! is a negative duration (which acr purge turns into a cut-off in the future). Values above
//! 150 years are capped, as acr purge does since v0.16.

use chrono::TimeDelta;
use std::fmt;

/// The largest `--ago` honoured; longer values are capped to it.
pub const MAX_AGO: TimeDelta = TimeDelta::days(150 * 365);

/// A parsed `--ago` value: how old an item must be to be eligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ago {
    /// The age itself, between zero and [`MAX_AGO`].
    pub duration: TimeDelta,
    /// True when the written value was above [`MAX_AGO`] and has been capped.
    pub capped: bool,
}

/// Why an `--ago` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --ago value {input:?}: {problem}")]
pub struct AgoError {
    input: String,
    problem: String,
}

impl fmt::Display for Ago {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.duration.num_seconds();
        let (d, h, m, s) = (
            secs / 86_400,
            secs % 86_400 / 3_600,
            secs % 3_600 / 60,
            secs % 60,
        );
        let mut out = String::new();
        for (value, unit) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
            if value > 0 {
                out.push_str(&format!("{value}{unit}"));
            }
        }
        if out.is_empty() {
            out.push_str("0s");
        }
        f.write_str(&out)
    }
}

impl Ago {
    /// The zero age: everything older than now is eligible.
    pub const ZERO: Ago = Ago {
        duration: TimeDelta::zero(),
        capped: false,
    };

    /// Parses an `--ago` value strictly (see the module docs).
    pub fn parse(input: &str) -> Result<Ago, AgoError> {
        let fail = |problem: &str| AgoError {
            input: input.to_string(),
            problem: problem.to_string(),
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(fail("it is empty; write e.g. 30d, 1d3h or 15m"));
        }
        if text.starts_with('-') {
            return Err(fail(
                "negative ages would put the cut-off in the future and make every image eligible",
            ));
        }
        let text = text.strip_prefix('+').unwrap_or(text);
        let (days, rest) = match text.find('d') {
            Some(at) => {
                let digits = &text[..at];
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(fail(
                        "the day count must be a whole number written first, as in 3d or 1d12h",
                    ));
                }
                (Some(digits), &text[at + 1..])
            }
            None => (None, text),
        };
        let mut nanos: u128 = 0;
        if let Some(digits) = days {
            let days: u128 = digits.parse().unwrap_or(u128::MAX / 2);
            nanos = nanos.saturating_add(days.saturating_mul(86_400 * NANOS_PER_SEC));
        }
        if !rest.is_empty() {
            nanos =
                nanos.saturating_add(parse_go_duration(rest).map_err(|p| fail(&p.to_string()))?);
        } else if days.is_none() {
            return Err(fail("missing unit"));
        }
        let max = MAX_AGO.num_seconds() as u128 * NANOS_PER_SEC;
        if nanos > max {
            return Ok(Ago {
                duration: MAX_AGO,
                capped: true,
            });
        }
        let duration = TimeDelta::nanoseconds(nanos as i64);
        Ok(Ago {
            duration,
            capped: false,
        })
    }
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Why the Go-duration part of an age does not parse (shown as the [`AgoError`]'s problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum GoDurationError {
    /// No number where one must start (the rest of the text).
    #[error("expected a number at {0:?}")]
    ExpectedNumber(String),
    /// A number without its unit.
    #[error("missing unit")]
    MissingUnit,
    /// Days after a smaller unit.
    #[error("days must come first, as in 2d3h")]
    DaysFirst,
    /// A unit Go does not know.
    #[error("unknown unit {0:?} (use d, h, m, s, ms, us, ns)")]
    UnknownUnit(String),
}

/// Parses Go's `time.ParseDuration` grammar without a sign: `(<number><unit>)+` with units
/// ns, us, µs, ms, s, m, h, or the bare `0`. Returns nanoseconds (saturating).
fn parse_go_duration(text: &str) -> Result<u128, GoDurationError> {
    if text == "0" {
        return Ok(0);
    }
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut total: u128 = 0;
    while at < bytes.len() {
        let start = at;
        while at < bytes.len() && (bytes[at].is_ascii_digit() || bytes[at] == b'.') {
            at += 1;
        }
        let number = &text[start..at];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(GoDurationError::ExpectedNumber(text[start..].to_string()));
        }
        let unit_start = at;
        while at < bytes.len() && !(bytes[at].is_ascii_digit() || bytes[at] == b'.') {
            at += 1;
        }
        let unit = &text[unit_start..at];
        let scale: u128 = match unit {
            "" => return Err(GoDurationError::MissingUnit),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3_600 * NANOS_PER_SEC,
            "d" => return Err(GoDurationError::DaysFirst),
            other => return Err(GoDurationError::UnknownUnit(other.to_string())),
        };
        total = total.saturating_add(scale_number(number, scale));
    }
    Ok(total)
}

/// `number` (digits with at most one dot) times `scale`, saturating.
fn scale_number(number: &str, scale: u128) -> u128 {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().unwrap_or(u128::MAX / 2)
    };
    let mut value = whole.saturating_mul(scale);
    let mut place = scale;
    for digit in frac.bytes().take(18) {
        place /= 10;
        value = value.saturating_add(u128::from(digit - b'0') * place);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(text: &str) -> i64 {
        Ago::parse(text).expect(text).duration.num_minutes()
    }

    #[test]
    fn accepts_acr_purge_table() {
        assert_eq!(minutes("15m"), 15);
        assert_eq!(minutes("1d1h3m"), 25 * 60 + 3);
        assert_eq!(minutes("3d"), 72 * 60);
        assert_eq!(minutes("0m"), 0);
        assert_eq!(minutes("0d"), 0);
        assert_eq!(minutes("0"), 0);
        assert_eq!(minutes("30d"), 30 * 24 * 60);
        assert_eq!(minutes("1d3h6m"), 27 * 60 + 6);
        assert_eq!(minutes("1.5h"), 90);
        assert_eq!(Ago::parse("90s").unwrap().duration.num_seconds(), 90);
        assert_eq!(
            Ago::parse("2h45m30.5s")
                .unwrap()
                .duration
                .num_milliseconds(),
            9_930_500
        );
    }

    #[test]
    fn rejects_what_acr_purge_misreads_or_rejects() {
        for bad in [
            "", "15", "15p", "3h2d", "d5h", "-1d", "1w", "1y", "5 d", "1dd", "1.2.3s", "h",
        ] {
            let err = Ago::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("invalid --ago value"), "{err}");
        }
        assert!(
            Ago::parse("15")
                .unwrap_err()
                .to_string()
                .contains("missing unit")
        );
        assert!(
            Ago::parse("15p")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
    }

    #[test]
    fn caps_at_150_years() {
        for huge in ["999999d", "999999999h", "99999999999999999999999999d"] {
            let ago = Ago::parse(huge).unwrap();
            assert!(ago.capped, "{huge}");
            assert_eq!(ago.duration, MAX_AGO);
        }
        let under = Ago::parse("54750d").unwrap();
        assert!(!under.capped);
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(Ago::parse("1d3h6m").unwrap().to_string(), "1d3h6m");
        assert_eq!(Ago::ZERO.to_string(), "0s");
    }
}
