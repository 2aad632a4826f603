//! The applies of saved plans (`{"apply": digest}`) an instance has accepted: coalesced and
//! bounded like the other webhook runs (`queue`).
//!
//! - **Coalesced**: at most one apply of a given plan digest and dry-run flag is queued or
//!   running at once; an identical request joins it (same run id, same answer). Once it
//!   has ended, a new identical request opens a new apply.
//! - **Bounded**: at most [`MAX_APPLIES`] applies are queued or running at once per
//!   instance; one more is refused ([`AppliesFull`], answered 429).
//! - **One plan in memory**: an apply reads and parses its plan once, on the instance's
//!   turn (one run at a time), so however many are accepted only one plan is loaded at a
//!   time; a plan over [`MAX_PLAN_BYTES`] is refused unread beyond that size.

use super::queue::SharedResult;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// The most applies queued or running at once on an instance.
pub const MAX_APPLIES: usize = 4;

/// The largest saved plan the webhook applies (64 MiB of JSON): a larger one is refused
/// with 422 (the command line's `handler apply` has no such limit).
pub const MAX_PLAN_BYTES: usize = 64 * 1024 * 1024;

/// How an apply ended, for every request that waits for it.
#[derive(Debug, Clone)]
pub enum ApplyEnd {
    /// Refused before anything was contacted or deleted: the status and why.
    Refused {
        /// 404 (no such plan), 422 (the plan is not applicable) or 503 (the store).
        status: StatusCode,
        /// What the caller is told.
        message: String,
    },
    /// It ran (or its task died): the run's outcome.
    Ran(SharedResult),
}

/// What waiting requests watch: `None` until the apply ends.
pub type Ending = watch::Receiver<Option<Arc<ApplyEnd>>>;

/// Too many applies are queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "too many plans are being applied: at most {MAX_APPLIES} applies are queued or running at once; retry later"
)]
pub struct AppliesFull;

type Key = (String, bool);

struct Entry {
    id: String,
    ending: Ending,
}

/// The instance's applies.
#[derive(Default)]
pub struct Applies {
    entries: Mutex<HashMap<Key, Entry>>,
}

/// An accepted apply request.
pub struct Accepted {
    /// The apply's run id (shared by every request that joined it).
    pub id: String,
    /// Whether it joined an apply already queued or running.
    pub joined: bool,
    /// Its end, when it comes.
    pub ending: Ending,
    /// For the request that opened it: the right to carry it out and to say how it ended.
    pub ticket: Option<Ticket>,
}

/// Held by the task carrying an apply out; ending it (or dropping it, if the task dies)
/// frees its place, so a later identical request opens a new apply.
pub struct Ticket {
    applies: Arc<Applies>,
    key: Key,
    sender: watch::Sender<Option<Arc<ApplyEnd>>>,
}

impl Ticket {
    /// Says how the apply ended to every waiting request and frees its place.
    pub fn end(self, end: ApplyEnd) {
        self.applies.remove(&self.key);
        let _ = self.sender.send(Some(Arc::new(end)));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.applies.remove(&self.key);
    }
}

impl Applies {
    /// Accepts a request to apply plan `digest`: it joins the identical apply queued or
    /// running, else opens one with the id `new_id` gives, unless [`MAX_APPLIES`] are.
    pub fn admit(
        self: &Arc<Self>,
        digest: &str,
        dry_run: bool,
        new_id: impl FnOnce() -> String,
    ) -> Result<Accepted, AppliesFull> {
        let key = (digest.to_string(), dry_run);
        let mut entries = self.lock();
        if let Some(entry) = entries.get(&key) {
            return Ok(Accepted {
                id: entry.id.clone(),
                joined: true,
                ending: entry.ending.clone(),
                ticket: None,
            });
        }
        if entries.len() >= MAX_APPLIES {
            return Err(AppliesFull);
        }
        let id = new_id();
        let (sender, ending) = watch::channel(None);
        entries.insert(
            key.clone(),
            Entry {
                id: id.clone(),
                ending: ending.clone(),
            },
        );
        Ok(Accepted {
            id,
            joined: false,
            ending,
            ticket: Some(Ticket {
                applies: self.clone(),
                key,
                sender,
            }),
        })
    }

    /// How many applies are queued or running.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remove(&self, key: &Key) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Waits for the apply's end; `None` if its task died without saying.
pub async fn ended(mut ending: Ending) -> Option<Arc<ApplyEnd>> {
    ending.wait_for(Option::is_some).await.ok()?.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aa";
    const B: &str = "sha256:bb";

    #[test]
    fn identical_applies_join_and_a_new_one_opens_after_the_end() {
        let applies = Arc::new(Applies::default());
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("run-{n}")
        };
        let first = applies.admit(A, false, &mut next).unwrap();
        let joined = applies.admit(A, false, &mut next).unwrap();
        let dry = applies.admit(A, true, &mut next).unwrap();
        let other = applies.admit(B, false, &mut next).unwrap();
        assert!(!first.joined && first.ticket.is_some());
        assert!(joined.joined && joined.ticket.is_none());
        assert_eq!(first.id, joined.id);
        assert_ne!(first.id, dry.id, "a dry run is not a real apply");
        assert_ne!(first.id, other.id);
        assert_eq!(applies.len(), 3);
        let end = ApplyEnd::Refused {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: "no".into(),
        };
        first.ticket.unwrap().end(end);
        assert!(matches!(
            joined.ending.borrow().as_deref(),
            Some(ApplyEnd::Refused { .. })
        ));
        let again = applies.admit(A, false, &mut next).unwrap();
        assert!(!again.joined);
        assert_ne!(again.id, first.id);
    }

    #[test]
    fn at_most_max_applies_are_accepted_and_a_dying_task_frees_its_place() {
        let applies = Arc::new(Applies::default());
        let mut held: Vec<Accepted> = (0..MAX_APPLIES)
            .map(|i| applies.admit(&format!("sha256:{i}"), false, || i.to_string()))
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(matches!(
            applies.admit("sha256:x", false, || "x".into()),
            Err(AppliesFull)
        ));
        // Joining an apply under way is never refused.
        assert!(applies.admit("sha256:0", false, || "y".into()).is_ok());
        let dead = held.pop().and_then(|a| a.ticket);
        drop(dead);
        assert!(applies.admit("sha256:x", false, || "x".into()).is_ok());
    }

    #[tokio::test]
    async fn waiters_learn_the_end_or_that_the_task_died() {
        let applies = Arc::new(Applies::default());
        let first = applies.admit(A, false, || "1".into()).unwrap();
        let joined = applies.admit(A, false, || "2".into()).unwrap();
        let ticket = first.ticket.unwrap();
        let waiter = tokio::spawn(ended(joined.ending));
        ticket.end(ApplyEnd::Ran(Arc::new(Err("boom".into()))));
        assert!(matches!(
            waiter.await.unwrap().as_deref(),
            Some(ApplyEnd::Ran(_))
        ));
        let dying = applies.admit(B, false, || "3".into()).unwrap();
        let waiter = tokio::spawn(ended(dying.ending));
        drop(dying.ticket);
        assert!(waiter.await.unwrap().is_none());
    }
}
