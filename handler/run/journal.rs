//! What a durable run records as it goes ([`Journal`]): each repository's plan before
//! anything in it is deleted, and its deletion attempts once it ends. The run store's
//! journal (`crate::durable`) writes them to the run store; a plain run records nothing
//! ([`NoJournal`]).
//!
//! Safety: when a repository's plan cannot be recorded, nothing in it is deleted (the
//! repository is skipped and reported), and when its attempts cannot be recorded the run
//! stops, so no deletion goes unrecorded beyond the repository in flight (whose plan, on
//! record, lets the next invocation reconcile it).

use super::inventory::{KnownBlobs, Staying};
use crate::report::RepositoryReport;
use async_trait::async_trait;

/// Why a journal could not record a step. The engine deletes nothing past it: the
/// repository whose plan is not on record is skipped, and a run whose attempts are not on
/// record stops (see the module docs).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The run may no longer hold its registry's lease (another run could take it over).
    #[error("the registry's lease may be lost ({0})")]
    LeaseLost(String),
    /// The record could not be written (the store's error).
    #[error(transparent)]
    Unwritten(Box<dyn std::error::Error + Send + Sync>),
}

impl JournalError {
    /// The record could not be written because of `error`.
    pub fn unwritten(error: impl std::error::Error + Send + Sync + 'static) -> JournalError {
        JournalError::Unwritten(Box::new(error))
    }
}

/// Records a run's progress; see the module docs for what an error means.
#[async_trait]
pub trait Journal: Send + Sync {
    /// `repo` is planned (or, with status `notFound`, gone); nothing in it is deleted yet.
    async fn planned(&self, repo: &RepositoryReport) -> Result<(), JournalError>;
    /// `repo` ended; its deletion attempts are its items' outcomes. `completed` when
    /// nothing is left to do in it (a resumed run does not list it again).
    async fn ended(&self, repo: &RepositoryReport, completed: bool) -> Result<(), JournalError>;

    /// The run decided its `--max-run-deletions` over `run_images` tagged images: kept for
    /// the invocations that resume it (the first decision's total stands). An error stops
    /// the run before anything is deleted.
    async fn decided(&self, _run_images: u64) -> Result<(), JournalError> {
        Ok(())
    }

    /// The blobs of `repository`'s manifests an earlier run read (a manifest's blobs never
    /// change for its digest), so the storage figures read only bodies not seen before.
    /// Best effort: nothing known is an empty map.
    async fn known_blobs(&self, _repository: &str) -> KnownBlobs {
        KnownBlobs::new()
    }

    /// Remembers the blobs of the manifests that stay in `repository`, for the next run.
    /// Best effort: a failure only costs the next run its reads.
    async fn remember_blobs(&self, _repository: &str, _blobs: Staying<'_>) {}
}

/// The journal of a run that records nothing.
pub struct NoJournal;

#[async_trait]
impl Journal for NoJournal {
    async fn planned(&self, _repo: &RepositoryReport) -> Result<(), JournalError> {
        Ok(())
    }

    async fn ended(&self, _repo: &RepositoryReport, _completed: bool) -> Result<(), JournalError> {
        Ok(())
    }
}
