//! The blast-radius guard's limit (`--max-deletions`, the policy's `maxDeletions`): how many
//! of a repository's tagged images one run may take away, as a count or as a share.
//!
//! Grammar: `N` (a whole number: at most N tagged images), `P%` (a whole number from 0 to
//! 100: at most P percent of the repository's tagged images, rounded down), or `none`
//! (no limit, deliberately). Whitespace around the value is ignored; `none` is
//! case-insensitive. Anything else is an error that names the value.

use std::fmt;

/// The default limit of scheduled and webhook runs when the policy does not set one.
pub const SCHEDULED_DEFAULT: DeletionLimit = DeletionLimit::Percent(50);

/// The default limit of a whole scheduled or webhook run (`maxRunDeletions` absent): half
/// of the tagged images the run covers. With each repository held to 50% it only bites
/// when a policy raises or lifts `maxDeletions`, which then cannot empty the registry.
pub const RUN_SCHEDULED_DEFAULT: DeletionLimit = DeletionLimit::Percent(50);

/// A limit on the tagged images a run may take away in one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionLimit {
    /// At most this many tagged images.
    Count(u64),
    /// At most this percentage (0-100) of the repository's tagged images, rounded down.
    Percent(u8),
}

impl DeletionLimit {
    /// The most tagged images that may be taken away from a repository holding `total`.
    pub fn allowed(&self, total: u64) -> u64 {
        match *self {
            DeletionLimit::Count(n) => n,
            DeletionLimit::Percent(p) => total * u64::from(p) / 100,
        }
    }
}

impl fmt::Display for DeletionLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeletionLimit::Count(n) => write!(f, "{n}"),
            DeletionLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// The limit as a policy document or the command line sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitSetting {
    /// Not set: the adapter's default applies (none on the command line,
    /// [`SCHEDULED_DEFAULT`] for scheduled and webhook runs).
    #[default]
    Default,
    /// `none` / `null`: no limit.
    Lifted,
    /// A limit.
    Limit(DeletionLimit),
}

impl LimitSetting {
    /// The limit in force, given the adapter's default.
    pub fn effective(&self, default: Option<DeletionLimit>) -> Option<DeletionLimit> {
        match self {
            LimitSetting::Default => default,
            LimitSetting::Lifted => None,
            LimitSetting::Limit(limit) => Some(*limit),
        }
    }

    /// Parses `N`, `P%` or `none` (of `--max-deletions`).
    pub fn parse(text: &str) -> Result<LimitSetting, LimitError> {
        LimitSetting::parse_for("--max-deletions", text)
    }

    /// Parses `N`, `P%` or `none` given to `flag` (named in the error).
    pub fn parse_for(flag: &'static str, text: &str) -> Result<LimitSetting, LimitError> {
        let trimmed = text.trim();
        let error = |problem: &str| LimitError {
            flag,
            input: text.to_string(),
            problem: problem.to_string(),
        };
        if trimmed.eq_ignore_ascii_case("none") {
            return Ok(LimitSetting::Lifted);
        }
        let whole = |digits: &str| {
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<u64>().ok())
                .flatten()
        };
        if let Some(percent) = trimmed.strip_suffix('%') {
            return match whole(percent) {
                Some(p) if p <= 100 => Ok(LimitSetting::Limit(DeletionLimit::Percent(p as u8))),
                Some(_) => Err(error("a percentage is at most 100%")),
                None => Err(error("expected a whole number before %")),
            };
        }
        match whole(trimmed) {
            Some(n) => Ok(LimitSetting::Limit(DeletionLimit::Count(n))),
            None => Err(error("expected N, P% or none")),
        }
    }
}

impl fmt::Display for LimitSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitSetting::Default => f.write_str("default"),
            LimitSetting::Lifted => f.write_str("none"),
            LimitSetting::Limit(limit) => limit.fmt(f),
        }
    }
}

/// Why a `--max-deletions` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {flag} value {input:?}: {problem}")]
pub struct LimitError {
    flag: &'static str,
    input: String,
    problem: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_shares_and_none() {
        use DeletionLimit::{Count, Percent};
        for (text, want) in [
            ("0", LimitSetting::Limit(Count(0))),
            ("25", LimitSetting::Limit(Count(25))),
            (" 7 ", LimitSetting::Limit(Count(7))),
            ("50%", LimitSetting::Limit(Percent(50))),
            ("0%", LimitSetting::Limit(Percent(0))),
            ("100%", LimitSetting::Limit(Percent(100))),
            ("none", LimitSetting::Lifted),
            ("NONE", LimitSetting::Lifted),
        ] {
            assert_eq!(LimitSetting::parse(text), Ok(want), "{text}");
        }
        for bad in [
            "", "-1", "101%", "1.5", "50 %", "%", "10x", "null", "1e3", "+5",
        ] {
            let err = LimitSetting::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn shares_round_down() {
        assert_eq!(DeletionLimit::Percent(50).allowed(10), 5);
        assert_eq!(DeletionLimit::Percent(50).allowed(3), 1);
        assert_eq!(DeletionLimit::Percent(50).allowed(1), 0);
        assert_eq!(DeletionLimit::Percent(100).allowed(7), 7);
        assert_eq!(DeletionLimit::Count(4).allowed(1), 4);
    }

    #[test]
    fn the_setting_decides_over_the_default() {
        let d = Some(SCHEDULED_DEFAULT);
        assert_eq!(LimitSetting::Default.effective(d), d);
        assert_eq!(LimitSetting::Default.effective(None), None);
        assert_eq!(LimitSetting::Lifted.effective(d), None);
        let five = DeletionLimit::Count(5);
        assert_eq!(LimitSetting::Limit(five).effective(d), Some(five));
    }
}
