//! The severity of a vulnerability finding, as Microsoft Defender for Cloud grades it
//! (`Low`, `Medium`, `High`, `Critical`), ordered from least to most severe.

use serde::{Deserialize, Serialize};

/// A finding's severity; `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// `Low`.
    Low,
    /// `Medium`.
    Medium,
    /// `High`.
    High,
    /// `Critical`.
    Critical,
}

impl Severity {
    /// Every severity, most severe first (the order reports list them in).
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    /// Parses `Low`, `Medium`, `High` or `Critical`, ignoring case.
    pub fn parse(text: &str) -> Result<Severity, NotASeverity> {
        Severity::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| NotASeverity(text.to_string()))
    }

    /// The name, as Defender writes it.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }
}

/// A text that names no severity (the text as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a severity (one of Low, Medium, High, Critical)")]
pub struct NotASeverity(pub String);

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_parse_ignoring_case_and_order_by_gravity() {
        assert_eq!(Severity::parse("high"), Ok(Severity::High));
        assert_eq!(Severity::parse(" Critical "), Ok(Severity::Critical));
        assert!(Severity::parse("Severe").is_err());
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::High < Severity::Critical);
    }
}
