//! What to delete: filters, ages and rules, validated before any request is made.
//!
//! A [`Policy`] is a list of [`Rule`]s plus `protect` patterns. Each rule decides exactly as
//! one `acr purge` run with the same flags would; an item is deleted when at least one rule
//! selects it and nothing protects it.

mod ago;
mod document;
mod filter;
mod limit;
mod severity;

pub use ago::{Ago, AgoError, MAX_AGO};
pub use document::{PolicyDocument, PolicyError};
pub use filter::{BACKTRACK_LIMIT, Filter, FilterError, MatchError, TagMatcher};
pub use limit::{
    DeletionLimit, LimitError, LimitSetting, RUN_SCHEDULED_DEFAULT, SCHEDULED_DEFAULT,
};
pub use severity::{NotASeverity, Severity};

/// One purge rule: the flags of one `acr purge` invocation.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `--filter` values; empty only with `untagged_only` (then every repository is covered).
    pub filters: Vec<Filter>,
    /// `--ago`: only items last updated before now minus this are eligible.
    pub ago: Ago,
    /// `--keep`: the number of most recent eligible items to keep.
    pub keep: usize,
    /// `--untagged`: also delete manifests left without tags.
    pub untagged: bool,
    /// `--untagged-only`: only delete manifests without tags.
    pub untagged_only: bool,
    /// `--include-locked`: locked items become eligible and are unlocked before deletion.
    pub include_locked: bool,
    /// `--not-pulled-for`: only items whose last pull is older than this are eligible (read
    /// from the registry's pull logs; unknown pulls count as recent).
    pub not_pulled_for: Option<Ago>,
    /// `--vulnerable-min-severity` / `vulnerable: {"minSeverity"}`: only images carrying a
    /// Defender for Cloud finding at least this severe are eligible (read from Resource
    /// Graph's `securityresources`; findings that cannot be read make nothing eligible).
    pub vulnerable_min: Option<Severity>,
    /// `--min-tags`, `--max-tags`, `--min-untagged-manifests`, `--max-untagged-manifests`.
    pub bounds: Bounds,
}

/// Counts that hold whatever the age (acr-cli#670): per repository, the most recent items
/// a rule's filter matches are ranked (newest `lastUpdateTime` first, then by name or
/// digest; an item whose time is unknown ranks first); `min` keeps the first N of them even
/// when old, `max` deletes those beyond the first N even when younger than `--ago`. Every
/// protection still wins over `max`. `crate::plan` documents the order exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    /// `--min-tags` / `minTags`.
    pub min_tags: Option<usize>,
    /// `--max-tags` / `maxTags`.
    pub max_tags: Option<usize>,
    /// `--min-untagged-manifests` / `minUntaggedManifests`.
    pub min_untagged: Option<usize>,
    /// `--max-untagged-manifests` / `maxUntaggedManifests`.
    pub max_untagged: Option<usize>,
}

/// A rule as written, by command-line flags or a policy document's rule, before it is
/// checked: the one way both build a [`Rule`].
#[derive(Debug, Clone, Copy)]
pub struct RuleSpec<'a> {
    /// `--filter` values.
    pub filters: &'a [String],
    /// `--ago`, when given.
    pub ago: Option<&'a str>,
    /// `--keep`.
    pub keep: usize,
    /// `--untagged`.
    pub untagged: bool,
    /// `--untagged-only`.
    pub untagged_only: bool,
    /// `--include-locked`.
    pub include_locked: bool,
    /// `--not-pulled-for`, when given.
    pub not_pulled_for: Option<&'a str>,
    /// `--vulnerable-min-severity`, when given.
    pub vulnerable_min: Option<&'a str>,
    /// `--min-tags` and the other count bounds.
    pub bounds: Bounds,
}

/// What is wrong with a [`RuleSpec`]; each adapter names the place in its own terms
/// (`--ago`, `rules[0].ago`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSpecError {
    /// A filter does not parse.
    Filter {
        /// Its position among the filters.
        index: usize,
        /// Why.
        error: FilterError,
    },
    /// The age does not parse.
    Ago(AgoError),
    /// The not-pulled-for age does not parse.
    NotPulledFor(AgoError),
    /// The minimum severity is not one.
    Vulnerable(NotASeverity),
    /// No age, and not `--untagged-only` (where it defaults to 0).
    AgoMissing,
    /// The flags contradict each other.
    Flags(RuleError),
}

impl Rule {
    /// Parses and checks a rule. An age above the maximum is capped and marked
    /// ([`Ago::capped`]): the command line warns, as acr purge does; a policy document
    /// refuses it.
    pub fn build(spec: RuleSpec<'_>) -> Result<Rule, RuleSpecError> {
        let filters = spec
            .filters
            .iter()
            .enumerate()
            .map(|(index, f)| {
                Filter::parse(f).map_err(|error| RuleSpecError::Filter { index, error })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ago = match (spec.ago, spec.untagged_only) {
            (Some(text), _) => Ago::parse(text).map_err(RuleSpecError::Ago)?,
            (None, true) => Ago::ZERO,
            (None, false) => return Err(RuleSpecError::AgoMissing),
        };
        let not_pulled_for = spec
            .not_pulled_for
            .map(Ago::parse)
            .transpose()
            .map_err(RuleSpecError::NotPulledFor)?;
        let vulnerable_min = spec
            .vulnerable_min
            .map(Severity::parse)
            .transpose()
            .map_err(RuleSpecError::Vulnerable)?;
        let rule = Rule {
            filters,
            ago,
            keep: spec.keep,
            untagged: spec.untagged,
            untagged_only: spec.untagged_only,
            include_locked: spec.include_locked,
            not_pulled_for,
            vulnerable_min,
            bounds: spec.bounds,
        };
        rule.validate().map_err(RuleSpecError::Flags)?;
        Ok(rule)
    }
}

/// The whole purge policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The rules; an item is deleted when at least one selects it.
    pub rules: Vec<Rule>,
    /// `repository:tag` patterns whose tags are never deleted.
    pub protect: Vec<Filter>,
    /// Where to look for Azure workloads running this registry's images
    /// (`protectInUse`, `--protect-in-use`); empty: in-use protection is off.
    pub protect_in_use: Vec<WorkloadScope>,
    /// Keep the N most recently deployed digests per repository (`keepDeployed`), even
    /// after their workloads moved on; needs `protect_in_use`.
    pub keep_deployed: usize,
    /// With in-use protection on, items updated within this window stay (`inUseGrace`,
    /// `--in-use-grace`; [`DEFAULT_IN_USE_GRACE`] when not given): a deployment may be
    /// about to run them, and Resource Graph shows a new deployment only after a delay.
    pub in_use_grace: Option<Ago>,
    /// AKS clusters (resource ids) whose pods are not read (`inUseExcludeClusters`,
    /// `--in-use-exclude-cluster`): a cluster that cannot be read otherwise stops the run;
    /// the images only these clusters run are not protected.
    pub in_use_exclude_clusters: Vec<String>,
    /// Pulls by these identities do not count (`excludePullers`: scanners, CI).
    pub exclude_pullers: Vec<String>,
    /// Where Defender for Cloud's findings on the registry's images are read
    /// (`findingsScope`, `--findings-scope`: the registry's subscription at least); empty:
    /// `protect_in_use`'s scopes. Findings are read when this is given or a rule has
    /// `vulnerable`.
    pub findings_scope: Vec<WorkloadScope>,
}

/// The `inUseGrace` of a policy that protects what is in use and names none: 48 hours.
pub const DEFAULT_IN_USE_GRACE: &str = "48h";

/// Whether `id` is an AKS cluster's resource id
/// (`/subscriptions/…/resourceGroups/…/providers/Microsoft.ContainerService/managedClusters/…`).
pub fn check_cluster_id(id: &str) -> Result<(), NotAClusterId> {
    let lower = id.trim().trim_end_matches('/').to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').collect();
    let ok = parts.len() == 9
        && parts[0].is_empty()
        && parts[1] == "subscriptions"
        && parts[3] == "resourcegroups"
        && parts[5] == "providers"
        && parts[6] == "microsoft.containerservice"
        && parts[7] == "managedclusters"
        && [2, 4, 8].iter().all(|&i| !parts[i].is_empty());
    match ok {
        true => Ok(()),
        false => Err(NotAClusterId(id.to_string())),
    }
}

/// A text that is not an AKS cluster's resource id (the text as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an AKS cluster's resource id (/subscriptions/…/resourceGroups/…/providers/Microsoft.ContainerService/managedClusters/…)"
)]
pub struct NotAClusterId(pub String);

impl Policy {
    /// The freshness grace in force: `None` when in-use protection is off, else
    /// `inUseGrace` or [`DEFAULT_IN_USE_GRACE`].
    pub fn in_use_grace(&self) -> Option<chrono::TimeDelta> {
        if self.protect_in_use.is_empty() {
            return None;
        }
        Some(match self.in_use_grace {
            Some(grace) => grace.duration,
            None => chrono::TimeDelta::hours(48),
        })
    }

    /// Whether Defender's findings are read: `findingsScope` is given, or a rule targets
    /// `vulnerable` images.
    pub fn wants_findings(&self) -> bool {
        !self.findings_scope.is_empty() || self.rules.iter().any(|r| r.vulnerable_min.is_some())
    }

    /// Where findings are read: `findingsScope`, else `protectInUse`'s scopes.
    pub fn findings_scopes(&self) -> &[WorkloadScope] {
        match self.findings_scope.is_empty() {
            false => &self.findings_scope,
            true => &self.protect_in_use,
        }
    }

    /// The longest `notPulledFor` window of the rules, when any rule has one.
    pub fn longest_pull_window(&self) -> Option<chrono::TimeDelta> {
        self.rules
            .iter()
            .filter_map(|r| r.not_pulled_for.map(|a| a.duration))
            .max()
    }
}

/// A scope searched for workloads: a subscription or a management group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WorkloadScope {
    /// `/subscriptions/{id}`, or the bare id.
    Subscription(String),
    /// `/providers/Microsoft.Management/managementGroups/{id}`.
    ManagementGroup(String),
}

impl WorkloadScope {
    /// Parses `/subscriptions/{id}`, `/providers/Microsoft.Management/managementGroups/{id}`
    /// or a bare subscription id.
    pub fn parse(text: &str) -> Result<WorkloadScope, NotAWorkloadScope> {
        let trimmed = text.trim().trim_end_matches('/');
        let lower = trimmed.to_ascii_lowercase();
        let id = |prefix: &str| trimmed[prefix.len()..].to_string();
        let scope = if lower.starts_with("/subscriptions/") {
            WorkloadScope::Subscription(id("/subscriptions/"))
        } else if lower.starts_with("/providers/microsoft.management/managementgroups/") {
            WorkloadScope::ManagementGroup(id("/providers/Microsoft.Management/managementGroups/"))
        } else if !trimmed.contains('/') {
            WorkloadScope::Subscription(trimmed.to_string())
        } else {
            WorkloadScope::Subscription(String::new())
        };
        let name = match &scope {
            WorkloadScope::Subscription(id) | WorkloadScope::ManagementGroup(id) => id,
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c));
        match valid {
            true => Ok(scope),
            false => Err(NotAWorkloadScope(text.to_string())),
        }
    }

    /// The resource id form.
    pub fn resource_id(&self) -> String {
        match self {
            WorkloadScope::Subscription(id) => format!("/subscriptions/{id}"),
            WorkloadScope::ManagementGroup(id) => {
                format!("/providers/Microsoft.Management/managementGroups/{id}")
            }
        }
    }
}

/// A text that names neither a subscription nor a management group (the text as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a subscription (/subscriptions/ID or an id) or a management group (/providers/Microsoft.Management/managementGroups/ID)"
)]
pub struct NotAWorkloadScope(pub String);

/// A rule whose flags contradict each other (acr purge's own checks, in its words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// `--untagged` with `--untagged-only`.
    #[error("--untagged and --untagged-only cannot be used together")]
    BothUntaggedModes,
    /// No filter, and not `--untagged-only`.
    #[error("--filter is required when not using --untagged-only")]
    FilterRequired,
    /// `--min-tags` / `--max-tags` with `--untagged-only` (which deletes no tag).
    #[error("--min-tags and --max-tags cannot be used with --untagged-only, which deletes no tag")]
    TagBoundsUntaggedOnly,
    /// `--min/max-untagged-manifests` without `--untagged` or `--untagged-only`.
    #[error(
        "--min-untagged-manifests and --max-untagged-manifests need --untagged or --untagged-only"
    )]
    ManifestBoundsWithoutUntagged,
    /// A minimum above the maximum of the same kind.
    #[error(
        "--min-tags/--min-untagged-manifests cannot be above --max-tags/--max-untagged-manifests"
    )]
    MinAboveMax,
    /// `--max-tags 0` or `--max-untagged-manifests 0`: every matched item regardless of age.
    #[error(
        "--max-tags and --max-untagged-manifests must be at least 1 (to delete every matched item, use --ago 0d)"
    )]
    MaxZero,
}

impl Rule {
    /// Checks the flag combinations acr purge checks.
    pub fn validate(&self) -> Result<(), RuleError> {
        if self.untagged && self.untagged_only {
            return Err(RuleError::BothUntaggedModes);
        }
        if self.filters.is_empty() && !self.untagged_only {
            return Err(RuleError::FilterRequired);
        }
        let b = &self.bounds;
        if self.untagged_only && (b.min_tags.is_some() || b.max_tags.is_some()) {
            return Err(RuleError::TagBoundsUntaggedOnly);
        }
        if !self.purges_manifests() && (b.min_untagged.is_some() || b.max_untagged.is_some()) {
            return Err(RuleError::ManifestBoundsWithoutUntagged);
        }
        if b.max_tags == Some(0) || b.max_untagged == Some(0) {
            return Err(RuleError::MaxZero);
        }
        let above = |min: Option<usize>, max: Option<usize>| matches!((min, max), (Some(n), Some(x)) if n > x);
        if above(b.min_tags, b.max_tags) || above(b.min_untagged, b.max_untagged) {
            return Err(RuleError::MinAboveMax);
        }
        Ok(())
    }

    /// Whether this rule deletes untagged manifests.
    pub fn purges_manifests(&self) -> bool {
        self.untagged || self.untagged_only
    }

    /// Whether this rule covers `repository`, and with which tag matcher. With
    /// `--untagged-only` and no filter, every repository is covered (with no tag matcher).
    pub fn coverage(&self, repository: &str) -> Result<Option<Coverage>, MatchError> {
        if self.filters.is_empty() {
            return Ok(Some(Coverage { tags: None }));
        }
        Ok(TagMatcher::for_repository(&self.filters, repository)?
            .map(|tags| Coverage { tags: Some(tags) }))
    }
}

/// How a rule covers one repository.
#[derive(Debug, Clone)]
pub struct Coverage {
    /// The tag matcher, absent when the rule has no filter (`--untagged-only` alone).
    pub tags: Option<TagMatcher>,
}
