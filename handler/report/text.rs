//! Every line `acr purge` prints, and only here: the command line prints them, Functions
//! logs them and returns them in the timer's `Logs`. Wording follows acr purge exactly, so
//! scripts that read its output keep working.

use super::Outcome;
use std::fmt;

/// What a line names: `host/repository:tag` or `host/repository@digest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference<'a> {
    /// The registry's login server.
    pub host: &'a str,
    /// The repository.
    pub repository: &'a str,
    /// The tag or the digest.
    pub item: ItemName<'a>,
}

/// A tag name or a manifest digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemName<'a> {
    /// `:tag`.
    Tag(&'a str),
    /// `@digest`.
    Digest(&'a str),
}

impl fmt::Display for Reference<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            ItemName::Tag(tag) => write!(f, "{}/{}:{tag}", self.host, self.repository),
            ItemName::Digest(digest) => write!(f, "{}/{}@{digest}", self.host, self.repository),
        }
    }
}

/// Whether a repository's tags or its manifests are meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Tags.
    Tags,
    /// Manifests.
    Manifests,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::Tags => "tags",
            Kind::Manifests => "manifests",
        }
    }
}

/// One output line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// The dry-run banner.
    DryRunBanner,
    /// `Would delete tags for repository: r` (dry run).
    WouldDeleteIn(Kind, &'a str),
    /// `Would delete: host/r:tag` (dry run).
    WouldDelete(Reference<'a>),
    /// `Deleting tags for repository: r`.
    DeletingIn(Kind, &'a str),
    /// `Deleted host/r:tag`.
    Deleted(Reference<'a>),
    /// `Unlocked host/r:tag` (`--include-locked`).
    Unlocked(Reference<'a>),
    /// The unlock failed; the deletion is attempted anyway.
    UnlockFailed(Reference<'a>, &'a str),
    /// The registry answered 404: already gone (counted as deleted).
    AlreadyGone(Reference<'a>),
    /// The registry answered 405.
    NotAllowed(Reference<'a>),
    /// Not attempted, and why.
    Skipped(Reference<'a>, &'a str),
    /// The deletion failed.
    FailedToDelete(Reference<'a>, &'a str),
    /// A repository the catalog or a webhook named does not exist.
    RepositoryNotFound(&'a str),
    /// A repository could not be listed (dry run).
    FailedToPlan(&'a str, &'a str),
    /// The blast-radius guard refused a repository's plan: nothing in it is deleted.
    Refused(&'a super::Refusal),
    /// The run's guard refused the run's plans together: nothing in the run is deleted.
    RunRefused(&'a super::RunRefusal),
    /// The empty line before the counts.
    Blank,
    /// `Number of deleted tags: N` (or `… to be deleted` in a dry run).
    Count {
        /// Tags or manifests.
        kind: Kind,
        /// Whether it is a dry run.
        dry_run: bool,
        /// The count.
        count: u64,
    },
    /// What the deleted manifests free: `Storage freed: 12.4 GiB of at most 15.1 GiB …`
    /// (`Storage to be freed` in a dry run). Printed only when manifests are removed.
    Storage {
        /// Whether it is a dry run.
        dry_run: bool,
        /// The figures.
        storage: &'a super::StorageFreed,
    },
    /// The run did not complete.
    FailedToComplete(&'a str),
}

impl<'a> Line<'a> {
    /// The line for a deletion attempt's outcome.
    pub fn outcome(reference: Reference<'a>, outcome: &'a Outcome) -> Line<'a> {
        match outcome {
            Outcome::Deleted => Line::Deleted(reference),
            Outcome::AlreadyGone => Line::AlreadyGone(reference),
            Outcome::NotAllowed => Line::NotAllowed(reference),
            Outcome::Skipped { why } => Line::Skipped(reference, why),
            Outcome::Stopped => Line::Skipped(reference, Outcome::STOPPED),
            Outcome::Failed { error } => Line::FailedToDelete(reference, error),
        }
    }
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::DryRunBanner => f.write_str(
                "DRY RUN: The following output shows what WOULD be deleted if the purge command was executed. Nothing is deleted.",
            ),
            Line::WouldDeleteIn(kind, repository) => {
                write!(f, "Would delete {} for repository: {repository}", kind.plural())
            }
            Line::WouldDelete(reference) => write!(f, "Would delete: {reference}"),
            Line::DeletingIn(kind, repository) => {
                write!(f, "Deleting {} for repository: {repository}", kind.plural())
            }
            Line::Deleted(reference) => write!(f, "Deleted {reference}"),
            Line::Unlocked(reference) => write!(f, "Unlocked {reference}"),
            Line::UnlockFailed(reference, error) => write!(
                f,
                "Warning: Failed to unlock {reference}, error: {error}. Will attempt deletion anyway."
            ),
            Line::AlreadyGone(reference) => write!(f, "Skipped {reference}, HTTP status: 404"),
            Line::NotAllowed(reference) => write!(
                f,
                "Skipped {reference}, operation not allowed, HTTP status: 405"
            ),
            Line::Skipped(reference, why) => write!(f, "Skipped {reference}, {why}"),
            Line::FailedToDelete(reference, error) => {
                write!(f, "Failed to delete {reference}, error: {error}")
            }
            Line::RepositoryNotFound(repository) => write!(f, "{repository} repository not found"),
            Line::FailedToPlan(repository, error) => {
                write!(f, "Failed to plan repository {repository}: {error}")
            }
            Line::Refused(refusal) => write!(f, "Refused to purge repository {refusal}"),
            Line::RunRefused(refusal) => write!(f, "Refused to purge: {refusal}"),
            Line::Blank => Ok(()),
            Line::Count {
                kind,
                dry_run: true,
                count,
            } => write!(f, "Number of {} to be deleted: {count}", kind.plural()),
            Line::Count {
                kind,
                dry_run: false,
                count,
            } => write!(f, "Number of deleted {}: {count}", kind.plural()),
            Line::Storage { dry_run, storage } => {
                use super::storage::human_bytes;
                let what = match dry_run {
                    true => "Storage to be freed",
                    false => "Storage freed",
                };
                write!(
                    f,
                    "{what}: {} of at most {}",
                    human_bytes(storage.freed_bytes),
                    human_bytes(storage.at_most_bytes)
                )?;
                if !storage.exact {
                    f.write_str(" (blobs shared with other repositories count as freed; --exact-storage reads them all)")?;
                }
                if storage.unknown_manifests > 0 {
                    write!(
                        f,
                        " ({} manifests with unreadable bodies counted by imageSize only)",
                        storage.unknown_manifests
                    )?;
                }
                if storage.kept_unread > 0 {
                    write!(
                        f,
                        " ({} kept manifests not read before the run stopped: blobs they share count as freed)",
                        storage.kept_unread
                    )?;
                }
                Ok(())
            }
            Line::FailedToComplete(error) => write!(f, "Failed to complete purge: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_acr_purge_prints_them() {
        let tag = Reference {
            host: "r.azurecr.io",
            repository: "app",
            item: ItemName::Tag("v1"),
        };
        let digest = Reference {
            item: ItemName::Digest("sha256:ab"),
            ..tag
        };
        let cases = [
            (
                Line::WouldDeleteIn(Kind::Tags, "app"),
                "Would delete tags for repository: app",
            ),
            (Line::WouldDelete(tag), "Would delete: r.azurecr.io/app:v1"),
            (
                Line::DeletingIn(Kind::Manifests, "app"),
                "Deleting manifests for repository: app",
            ),
            (Line::Deleted(digest), "Deleted r.azurecr.io/app@sha256:ab"),
            (
                Line::AlreadyGone(tag),
                "Skipped r.azurecr.io/app:v1, HTTP status: 404",
            ),
            (
                Line::NotAllowed(digest),
                "Skipped r.azurecr.io/app@sha256:ab, operation not allowed, HTTP status: 405",
            ),
            (
                Line::Count {
                    kind: Kind::Tags,
                    dry_run: false,
                    count: 3,
                },
                "Number of deleted tags: 3",
            ),
            (
                Line::Count {
                    kind: Kind::Manifests,
                    dry_run: true,
                    count: 0,
                },
                "Number of manifests to be deleted: 0",
            ),
            (Line::RepositoryNotFound("app"), "app repository not found"),
            (Line::Blank, ""),
        ];
        for (line, text) in cases {
            assert_eq!(line.to_string(), text);
        }
    }
}
