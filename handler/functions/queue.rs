//! The run queue: one run at a time per instance, the timer first, and webhook runs
//! coalesced so the queue stays small however many deliveries arrive.
//!
//! - **One at a time**: a run takes the instance's single [`Turn`] and gives it back when it
//!   ends (also when its task dies).
//! - **The timer goes first**: while a timer invocation waits, no webhook run takes the turn;
//!   the timer runs as soon as the run in flight ends.
//! - **Coalescing**: there is at most one pending webhook run per registry (of a fleet) and
//!   dry-run flag. A webhook request joins the pending run of its registry and (effective)
//!   dry-run flag: the repositories become
//!   the union of both sets, and a full run (no repositories named) absorbs narrowed ones.
//!   A dry run and a real run, or runs of two registries, are never merged, so at most one
//!   run is going and two per registry are pending. Joined requests share the pending run's id and its
//!   report, which covers the union.
//! - **Bounded**: a pending run names at most [`MAX_PENDING_REPOSITORIES`] repositories; a
//!   request that would make the union larger is refused ([`QueueFull`], answered 429).
//!
//! The timer does not absorb pending webhook runs: its invocation keeps its own report.

use crate::report::RunReport;
use crate::telemetry::RunContext;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Notify, oneshot};

/// The most repositories a pending run may name (the union of its requests).
pub const MAX_PENDING_REPOSITORIES: usize = 1000;

/// How a run ended: its report, or why it stopped without one (details in the logs).
pub type SharedResult = Arc<Result<RunReport, String>>;

/// Which repositories a run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueScope {
    /// Every repository the policy covers.
    Full,
    /// These repositories only.
    Only(BTreeSet<String>),
}

impl QueueScope {
    /// The scope of a request (`None`: every repository).
    pub fn of(repositories: Option<Vec<String>>) -> QueueScope {
        match repositories {
            None => QueueScope::Full,
            Some(names) => QueueScope::Only(names.into_iter().collect()),
        }
    }

    /// Both scopes together.
    fn union(&self, other: &QueueScope) -> QueueScope {
        match (self, other) {
            (QueueScope::Only(a), QueueScope::Only(b)) => {
                QueueScope::Only(a.union(b).cloned().collect())
            }
            (QueueScope::Full, _) | (_, QueueScope::Full) => QueueScope::Full,
        }
    }

    fn len(&self) -> usize {
        match self {
            QueueScope::Full => 0,
            QueueScope::Only(names) => names.len(),
        }
    }

    /// The repositories to pass to the engine (`None`: every repository).
    pub fn into_repositories(self) -> Option<Vec<String>> {
        match self {
            QueueScope::Full => None,
            QueueScope::Only(names) => Some(names.into_iter().collect()),
        }
    }
}

/// A webhook run waiting for its turn.
pub struct Pending {
    /// Its run id (shared by every request that joined it).
    pub id: String,
    /// What it covers.
    pub scope: QueueScope,
    /// The telemetry context of the request that opened it.
    pub context: RunContext,
    waiters: Vec<oneshot::Sender<SharedResult>>,
}

impl Pending {
    /// Hands the outcome to every request waiting for it.
    pub fn complete(self, outcome: SharedResult) {
        for waiter in self.waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}

/// A request admitted to the queue.
#[derive(Debug)]
pub struct Admitted {
    /// The run it belongs to.
    pub id: String,
    /// Whether it joined a run already pending (else it opened one, which the caller must
    /// start with [`RunQueue::take`] once it has a turn).
    pub joined: bool,
    /// The run's outcome, when it ends.
    pub outcome: oneshot::Receiver<SharedResult>,
}

/// The pending run would name too many repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the run queue is full: the pending run would name more than {MAX_PENDING_REPOSITORIES} repositories; retry later"
)]
pub struct QueueFull;

#[derive(Default)]
struct State {
    busy: bool,
    timers_waiting: usize,
    /// Keyed by the registry (its login server) and the dry-run flag.
    pending: BTreeMap<(String, bool), Pending>,
}

/// The instance's run queue.
#[derive(Default)]
pub struct RunQueue {
    state: Mutex<State>,
    changed: Notify,
}

/// The right to run: one at a time; given back when dropped.
pub struct Turn {
    queue: Arc<RunQueue>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.queue.lock().busy = false;
        self.queue.changed.notify_waiters();
    }
}

/// Counts a waiting timer invocation while it waits (also when its request goes away).
struct TimerWaiting<'a>(&'a RunQueue);

impl Drop for TimerWaiting<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.timers_waiting = state.timers_waiting.saturating_sub(1);
        drop(state);
        self.0.changed.notify_waiters();
    }
}

impl RunQueue {
    /// Adds a webhook request for a run of `context.registry` with this dry-run flag and these
    /// repositories: it joins the pending run of that registry and flag, or opens one with
    /// the id `new_id` gives.
    pub fn submit(
        &self,
        dry_run: bool,
        scope: QueueScope,
        context: RunContext,
        new_id: impl FnOnce() -> String,
    ) -> Result<Admitted, QueueFull> {
        let (sender, outcome) = oneshot::channel();
        let mut state = self.lock();
        let key = (context.registry.clone(), dry_run);
        if let Some(pending) = state.pending.get_mut(&key) {
            let merged = pending.scope.union(&scope);
            if merged.len() > MAX_PENDING_REPOSITORIES {
                return Err(QueueFull);
            }
            pending.scope = merged;
            pending.waiters.push(sender);
            return Ok(Admitted {
                id: pending.id.clone(),
                joined: true,
                outcome,
            });
        }
        if scope.len() > MAX_PENDING_REPOSITORIES {
            return Err(QueueFull);
        }
        let id = new_id();
        let pending = Pending {
            id: id.clone(),
            scope,
            context,
            waiters: vec![sender],
        };
        state.pending.insert(key, pending);
        Ok(Admitted {
            id,
            joined: false,
            outcome,
        })
    }

    /// Takes the pending run of this registry and dry-run flag (after it got its turn):
    /// later requests open a new one.
    pub fn take(&self, registry: &str, dry_run: bool) -> Option<Pending> {
        self.lock().pending.remove(&(registry.to_string(), dry_run))
    }

    /// Waits for the turn; a timer invocation goes before every webhook run.
    pub async fn turn(self: &Arc<Self>, timer: bool) -> Turn {
        let _waiting = timer.then(|| {
            self.lock().timers_waiting += 1;
            TimerWaiting(self)
        });
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.lock();
                if !state.busy && (timer || state.timers_waiting == 0) {
                    state.busy = true;
                    return Turn {
                        queue: self.clone(),
                    };
                }
            }
            changed.await;
        }
    }

    /// Waits until no run is going.
    pub async fn idle(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.lock().busy {
                return;
            }
            changed.await;
        }
    }

    /// How many timer invocations wait for the turn (for tests).
    #[cfg(test)]
    pub(crate) fn timers_waiting(&self) -> usize {
        self.lock().timers_waiting
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Trigger;
    use std::time::Duration;

    fn context() -> RunContext {
        RunContext {
            trigger: Trigger::Webhook,
            invocation_id: None,
            function_name: None,
            registry: "r".to_string(),
            dry_run: false,
            parent: None,
            run_id: None,
        }
    }

    fn only(names: &[&str]) -> QueueScope {
        QueueScope::Only(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn two_registries_runs_never_merge() {
        let queue = RunQueue::default();
        let mut ids = 0;
        let mut next = || {
            ids += 1;
            format!("run-{ids}")
        };
        let mut other = context();
        other.registry = "prod.azurecr.io".to_string();
        let home = queue
            .submit(false, only(&["app"]), context(), &mut next)
            .unwrap();
        let prod = queue
            .submit(false, only(&["lib"]), other.clone(), &mut next)
            .unwrap();
        let again = queue
            .submit(false, only(&["web"]), other, &mut next)
            .unwrap();
        assert!(!home.joined && !prod.joined && again.joined);
        assert_ne!(home.id, prod.id);
        assert_eq!(prod.id, again.id);
        let taken = queue.take("prod.azurecr.io", false).unwrap();
        assert_eq!(taken.scope, only(&["lib", "web"]));
        assert_eq!(taken.context.registry, "prod.azurecr.io");
        assert_eq!(queue.take("r", false).unwrap().scope, only(&["app"]));
    }

    #[test]
    fn coalesces_per_dry_run_flag() {
        let queue = RunQueue::default();
        let mut ids = 0;
        let mut next = || {
            ids += 1;
            format!("run-{ids}")
        };
        let a = queue
            .submit(false, only(&["app"]), context(), &mut next)
            .unwrap();
        let b = queue
            .submit(false, only(&["tools/ci"]), context(), &mut next)
            .unwrap();
        let dry = queue
            .submit(true, only(&["app"]), context(), &mut next)
            .unwrap();
        assert!(!a.joined && b.joined && !dry.joined);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, dry.id);
        let real = queue.take("r", false).unwrap();
        assert_eq!(real.scope, only(&["app", "tools/ci"]));
        assert_eq!(queue.take("r", true).unwrap().scope, only(&["app"]));
        assert!(queue.take("r", false).is_none());
        // A full run absorbs narrowed ones, before or after.
        queue
            .submit(false, only(&["app"]), context(), &mut next)
            .unwrap();
        queue
            .submit(false, QueueScope::Full, context(), &mut next)
            .unwrap();
        queue
            .submit(false, only(&["x"]), context(), &mut next)
            .unwrap();
        assert_eq!(queue.take("r", false).unwrap().scope, QueueScope::Full);
    }

    #[test]
    fn the_pending_union_is_bounded() {
        let queue = RunQueue::default();
        let names = |from: usize, n: usize| {
            QueueScope::Only((from..from + n).map(|i| format!("tools/{i}")).collect())
        };
        let new = || "id".to_string();
        queue
            .submit(false, names(0, MAX_PENDING_REPOSITORIES), context(), new)
            .unwrap();
        // The same names again do not grow it; one more does.
        queue.submit(false, names(0, 10), context(), new).unwrap();
        assert_eq!(
            queue
                .submit(false, names(5000, 1), context(), new)
                .unwrap_err(),
            QueueFull
        );
        // A full run is never too large.
        queue
            .submit(false, QueueScope::Full, context(), new)
            .unwrap();
        queue.submit(false, names(5000, 1), context(), new).unwrap();
        assert_eq!(
            queue
                .submit(true, names(0, MAX_PENDING_REPOSITORIES + 1), context(), new)
                .unwrap_err(),
            QueueFull
        );
    }

    #[tokio::test]
    async fn the_timer_goes_before_waiting_webhook_runs() {
        let queue = Arc::new(RunQueue::default());
        let first = queue.turn(false).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let webhook = {
            let (queue, order) = (queue.clone(), order.clone());
            tokio::spawn(async move {
                let _turn = queue.turn(false).await;
                order.lock().unwrap().push("webhook");
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let timer = {
            let (queue, order) = (queue.clone(), order.clone());
            tokio::spawn(async move {
                let _turn = queue.turn(true).await;
                order.lock().unwrap().push("timer");
                tokio::time::sleep(Duration::from_millis(20)).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(order.lock().unwrap().is_empty(), "one run at a time");
        drop(first);
        timer.await.unwrap();
        webhook.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["timer", "webhook"]);
        queue.idle().await;
    }

    #[tokio::test]
    async fn a_dying_holder_gives_the_turn_back() {
        let queue = Arc::new(RunQueue::default());
        let holder = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let _turn = queue.turn(false).await;
                panic!("the run died");
            })
        };
        assert!(holder.await.is_err());
        let turn = tokio::time::timeout(Duration::from_secs(5), queue.turn(true)).await;
        assert!(turn.is_ok(), "the turn came back");
    }
}
