//! `--filter <repository-regex>:<tag-regex>` parsing and matching.
//!
//! As in acr purge, the filter is split on the one colon that is neither inside a `[...]`
//! class nor the colon of a `(?flags:...)` group, the repository regex is anchored to the
//! whole name and the tag regex is a search (`latest` also matches `not-latest-1`).
//! Differences: the repository regex is anchored as `^(?:re)$` (acr purge writes `^re$`, so
//! `a|b` would match `xb`), and the regexes run on fancy-regex (look-around supported) with a
//! bounded backtrack budget instead of a 60 s timeout, so a pathological pattern fails fast.

use fancy_regex::{Regex, RegexBuilder};
use std::fmt;

/// The backtracking budget of one match; a match that needs more fails with an error.
pub const BACKTRACK_LIMIT: usize = 1_000_000;

/// One parsed `--filter`.
#[derive(Clone)]
pub struct Filter {
    source: String,
    repo_source: String,
    tag_source: String,
    repo: Regex,
    tag: Regex,
}

/// Why a filter could not be parsed or compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter {filter:?}: {problem}")]
pub struct FilterError {
    filter: String,
    problem: String,
}

/// A regex evaluation that ran out of its backtracking budget (or failed otherwise).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("regex {pattern:?} could not be evaluated against {subject:?}: {problem}")]
pub struct MatchError {
    pattern: String,
    subject: String,
    problem: String,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Filter").field(&self.source).finish()
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Filter {
    /// Parses and compiles `<repository-regex>:<tag-regex>`.
    pub fn parse(source: &str) -> Result<Filter, FilterError> {
        let fail = |problem: String| FilterError {
            filter: source.to_string(),
            problem,
        };
        let separators = separator_positions(source);
        if separators.len() != 1 {
            return Err(fail(format!(
                "expected <repository-regex>:<tag-regex> with exactly one separating colon, found {}",
                separators.len()
            )));
        }
        let (repo_source, tag_source) = (&source[..separators[0]], &source[separators[0] + 1..]);
        if repo_source.is_empty() {
            return Err(fail("missing repository name/expression".to_string()));
        }
        if tag_source.is_empty() {
            return Err(fail("missing tag name/expression".to_string()));
        }
        let repo = compile(&format!("^(?:{repo_source})$"))
            .map_err(|e| fail(format!("repository regex {repo_source:?}: {e}")))?;
        let tag =
            compile(tag_source).map_err(|e| fail(format!("tag regex {tag_source:?}: {e}")))?;
        Ok(Filter {
            source: source.to_string(),
            repo_source: repo_source.to_string(),
            tag_source: tag_source.to_string(),
            repo,
            tag,
        })
    }

    /// The filter as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The tag part as written.
    pub fn tag_source(&self) -> &str {
        &self.tag_source
    }

    /// Whether the repository regex matches the whole repository name.
    pub fn matches_repository(&self, repository: &str) -> Result<bool, MatchError> {
        run(&self.repo, &self.repo_source, repository)
    }

    /// Whether the tag regex matches anywhere in the tag.
    pub fn matches_tag(&self, tag: &str) -> Result<bool, MatchError> {
        run(&self.tag, &self.tag_source, tag)
    }
}

/// The tag regexes of every filter that covers one repository, OR-ed (acr purge joins
/// them with `|`).
#[derive(Debug, Clone, Default)]
pub struct TagMatcher {
    filters: Vec<Filter>,
}

impl TagMatcher {
    /// Builds the matcher of `repository` from the filters whose repository part matches it.
    /// Returns `None` when no filter covers the repository.
    pub fn for_repository(
        filters: &[Filter],
        repository: &str,
    ) -> Result<Option<TagMatcher>, MatchError> {
        let mut covering = Vec::new();
        for filter in filters {
            if filter.matches_repository(repository)? {
                covering.push(filter.clone());
            }
        }
        Ok((!covering.is_empty()).then_some(TagMatcher { filters: covering }))
    }

    /// The first filter whose tag regex matches `tag`, if any.
    pub fn first_match(&self, tag: &str) -> Result<Option<&Filter>, MatchError> {
        for filter in &self.filters {
            if filter.matches_tag(tag)? {
                return Ok(Some(filter));
            }
        }
        Ok(None)
    }
}

fn compile(pattern: &str) -> Result<Regex, fancy_regex::Error> {
    RegexBuilder::new(pattern)
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
}

fn run(regex: &Regex, pattern: &str, subject: &str) -> Result<bool, MatchError> {
    regex.is_match(subject).map_err(|e| MatchError {
        pattern: pattern.to_string(),
        subject: subject.to_string(),
        problem: e.to_string(),
    })
}

/// Byte offsets of the colons that separate the repository part from the tag part: colons
/// outside character classes, not escaped, and not the colon of a `(?flags:` group.
fn separator_positions(source: &str) -> Vec<usize> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut class_depth = 0usize;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 1,
            b'[' if class_depth == 0 => {
                class_depth = 1;
                // A `]` right after `[` or `[^` is a literal member of the class.
                if bytes.get(at + 1) == Some(&b'^') {
                    at += 1;
                }
                if bytes.get(at + 1) == Some(&b']') {
                    at += 1;
                }
            }
            b'[' => {
                // POSIX classes like `[:digit:]` and nested classes inside a class.
                class_depth += 1;
            }
            b']' if class_depth > 0 => class_depth -= 1,
            b':' if class_depth == 0 && !is_group_flag_colon(&bytes[..at]) => found.push(at),
            _ => {}
        }
        at += 1;
    }
    found
}

/// Whether the text before a colon ends with `(?` followed by flag letters (`(?:`, `(?i:`,
/// `(?imsU-x:`).
fn is_group_flag_colon(before: &[u8]) -> bool {
    let flags_start = before
        .iter()
        .rposition(|b| !(b.is_ascii_alphabetic() || *b == b'-'))
        .map_or(0, |p| p + 1);
    before[..flags_start].ends_with(b"(?")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(source: &str) -> (String, String) {
        let f = Filter::parse(source).expect(source);
        (f.repo_source, f.tag_source)
    }

    #[test]
    fn splits_like_acr_purge() {
        assert_eq!(parts("repo:tag"), ("repo".into(), "tag".into()));
        assert_eq!(
            parts("hello-(?:abc)?:z-(?:[:])zz"),
            ("hello-(?:abc)?".into(), "z-(?:[:])zz".into())
        );
        assert_eq!(
            parts("(?imsU:test):[[:digit:]][tes:]"),
            ("(?imsU:test)".into(), "[[:digit:]][tes:]".into())
        );
        assert_eq!(
            parts("foo/bar(?:.*)?:(?:.*)"),
            ("foo/bar(?:.*)?".into(), "(?:.*)".into())
        );
        assert_eq!(parts("a:[]:]x"), ("a".into(), "[]:]x".into()));
    }

    #[test]
    fn rejects_malformed_filters() {
        for (bad, why) in [
            ("foo:bar:zzz", "exactly one separating colon"),
            ("foo", "exactly one separating colon"),
            (":.*", "missing repository"),
            ("repo.*:", "missing tag"),
            ("r:[", "tag regex"),
            ("(:x", "repository regex"),
        ] {
            let err = Filter::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains(bad), "error names the filter: {err}");
        }
    }

    #[test]
    fn repository_regex_is_anchored_and_grouped() {
        let f = Filter::parse("ba:.*").unwrap();
        for repo in ["bar", "foo", "baz", "foo/bar"] {
            assert!(!f.matches_repository(repo).unwrap(), "{repo}");
        }
        assert!(f.matches_repository("ba").unwrap());
        let alt = Filter::parse("a|b:.*").unwrap();
        assert!(alt.matches_repository("a").unwrap());
        assert!(!alt.matches_repository("xb").unwrap());
        let all = Filter::parse(".+:x").unwrap();
        assert!(all.matches_repository("foo/bar").unwrap());
    }

    #[test]
    fn tag_regex_is_a_search_with_lookaround() {
        let f = Filter::parse("r:latest").unwrap();
        assert!(f.matches_tag("not-latest-1").unwrap());
        let ahead = Filter::parse("r:v1(?!-a)").unwrap();
        let behind = Filter::parse("r:v1-*[abc]+(?<!-[a])").unwrap();
        for (tag, expected) in [
            ("v1-a", false),
            ("v1-b", true),
            ("v1-c", true),
            ("v2", false),
        ] {
            assert_eq!(ahead.matches_tag(tag).unwrap(), expected, "ahead {tag}");
            assert_eq!(behind.matches_tag(tag).unwrap(), expected, "behind {tag}");
        }
        let not_prod = Filter::parse("r:^((?!prod|dev).)*$").unwrap();
        assert!(not_prod.matches_tag("v1.2").unwrap());
        assert!(!not_prod.matches_tag("prod-1").unwrap());
    }

    #[test]
    fn filters_for_one_repository_are_ored() {
        let filters = vec![
            Filter::parse("app:^v1").unwrap(),
            Filter::parse("app:^v2").unwrap(),
            Filter::parse("other:.*").unwrap(),
        ];
        let m = TagMatcher::for_repository(&filters, "app")
            .unwrap()
            .unwrap();
        assert!(m.first_match("v1.0").unwrap().is_some());
        assert!(m.first_match("v2.0").unwrap().is_some());
        assert!(m.first_match("v3.0").unwrap().is_none());
        assert!(
            TagMatcher::for_repository(&filters, "nope")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn pathological_pattern_fails_instead_of_hanging() {
        let f = Filter::parse(r"r:^(\w+\s?)*$(?<=x)").unwrap();
        let subject = format!("{}!", "aaaa ".repeat(12));
        let started = std::time::Instant::now();
        let result = f.matches_tag(&subject);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        let err = result.expect_err("backtrack limit should trip");
        assert!(err.to_string().contains("could not be evaluated"), "{err}");
    }
}
