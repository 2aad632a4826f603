//! The progress display of `handler purge` and `handler apply`: on standard error, only
//! when it is a terminal and `--quiet` is not given, drawn with `indicatif`. It shows the
//! repositories finished out of those covered, the items deleted (or to be deleted), the
//! delete rate, the 429s received and the estimated time left. acr purge's lines on
//! standard output are printed around it, never changed.

use crate::registry::{RegistryClient, RequestStats};
use crate::run::Tracker;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

/// How often the display is redrawn.
const TICK: Duration = Duration::from_millis(200);

/// A progress display, or nothing when it is off.
pub struct Display {
    bar: Option<ProgressBar>,
    tracker: Tracker,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Display {
    /// Starts the display for a run through `client`, unless `quiet` or standard error is
    /// not a terminal.
    pub fn start(quiet: bool, client: &RegistryClient) -> Display {
        let tracker = Tracker::default();
        if quiet || !std::io::stderr().is_terminal() {
            return Display {
                bar: None,
                tracker,
                ticker: None,
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(listing_style());
        bar.set_message("reading the catalog…");
        let ticker = tokio::spawn(tick(bar.clone(), tracker.clone(), client.stats_handle()));
        Display {
            bar: Some(bar),
            tracker,
            ticker: Some(ticker),
        }
    }

    /// The counters the run updates.
    pub fn tracker(&self) -> Tracker {
        self.tracker.clone()
    }

    /// Runs `print` with the display hidden, so that lines do not mix with it.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Removes the display.
    pub fn finish(&self) {
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.finish();
    }
}

fn listing_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} [{elapsed}] {bar:24} {pos}/{len} repositories · {msg} · {eta} left",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Redraws from the counters every [`TICK`].
async fn tick(bar: ProgressBar, tracker: Tracker, stats: Arc<RequestStats>) {
    let started = tokio::time::Instant::now();
    let mut sized = false;
    loop {
        tokio::time::sleep(TICK).await;
        let tracked = tracker.read();
        let Some(total) = tracked.total else {
            bar.tick();
            continue;
        };
        if !sized {
            bar.set_style(bar_style());
            bar.set_length(total);
            sized = true;
        }
        bar.set_position(tracked.done);
        let requests = stats.snapshot();
        let deletes = requests.by_category.delete.requests;
        let seconds = started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "{} deleted · {:.1} deletes/s · {} throttled",
            tracked.deleted.max(deletes),
            deletes as f64 / seconds,
            requests.throttled
        ));
    }
}
