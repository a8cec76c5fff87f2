//! Where the start of a server stands: loading its indexes, ready, or failed, with
//! the progress that `/readyz` shows and the log reports.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tokio::sync::watch;

/// The phase of a server's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Indexes are being loaded; the API answers 503.
    Loading,
    /// Every index is loaded.
    Ready,
    /// Loading failed (the cause is in the log).
    Failed(String),
}

/// The progress of loading, shared by the loader and the handlers.
#[derive(Debug)]
pub struct Loading {
    phase: watch::Sender<Phase>,
    started: AtomicBool,
    /// Workspaces to load.
    pub workspaces: AtomicUsize,
    /// Workspaces loaded so far.
    pub loaded: AtomicUsize,
    /// Workspaces loaded from a checkpoint so far.
    pub from_checkpoints: AtomicUsize,
    /// Facts applied from the store so far (replayed after checkpoints, or rebuilt).
    pub facts: AtomicU64,
}

impl Default for Loading {
    fn default() -> Self {
        Loading {
            phase: watch::Sender::new(Phase::Loading),
            started: AtomicBool::new(false),
            workspaces: AtomicUsize::new(0),
            loaded: AtomicUsize::new(0),
            from_checkpoints: AtomicUsize::new(0),
            facts: AtomicU64::new(0),
        }
    }
}

impl Loading {
    /// Claims the start of loading: true once only.
    pub fn claim_start(&self) -> bool {
        !self.started.swap(true, Ordering::SeqCst)
    }

    /// Moves to `phase`.
    pub fn set(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase.borrow().clone()
    }

    /// Whether every index is loaded.
    pub fn is_ready(&self) -> bool {
        *self.phase.borrow() == Phase::Ready
    }

    /// Waits until every index is loaded (forever if loading fails).
    pub async fn wait_ready(&self) {
        let mut phase = self.phase.subscribe();
        let _ = phase.wait_for(|p| *p == Phase::Ready).await;
    }

    /// Waits until loading fails (forever if it succeeds).
    pub async fn wait_failed(&self) {
        let mut phase = self.phase.subscribe();
        let _ = phase.wait_for(|p| matches!(p, Phase::Failed(_))).await;
    }

    /// The progress as `/readyz` shows it while loading.
    pub fn progress(&self) -> Value {
        json!({
            "workspaces": self.workspaces.load(Ordering::Relaxed),
            "workspaces_loaded": self.loaded.load(Ordering::Relaxed),
            "from_checkpoints": self.from_checkpoints.load(Ordering::Relaxed),
            "facts_replayed": self.facts.load(Ordering::Relaxed),
        })
    }
}
