//! The background purge: a thread that removes deleted users' facts from the store's
//! older chunks in small steps ([`Store::purge_step`]), letting go of the store between
//! steps so that ingestion never waits on it for more than a step. Woken by the writer
//! when deletions commit, at start (a purge interrupted by a stop resumes), and every
//! minute after an error.

use headcount_store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// The pause between two steps: the writer, waiting on the store, gets it first.
const PAUSE: Duration = Duration::from_millis(2);
/// How long the thread sleeps when nothing wakes it (then looks again).
const IDLE: Duration = Duration::from_secs(60);

/// The purge thread; stopped and joined when dropped.
pub struct Purger {
    wake: SyncSender<()>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Purger {
    /// Starts the thread, which first finishes whatever purge is pending. It holds the
    /// store weakly, so it never keeps the data directory open.
    pub fn start(store: &Arc<dyn Store>) -> Purger {
        let (wake, woken) = sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let store = Arc::downgrade(store);
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("headcount-purge".into())
            .spawn(move || run(&store, &woken, &stopping));
        let thread = match thread {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the purge thread; deleted facts stay on disk until a restart");
                None
            }
        };
        Purger { wake, stop, thread }
    }

    /// A handle that wakes the thread (cheap to clone, never blocks).
    pub fn waker(&self) -> SyncSender<()> {
        self.wake.clone()
    }
}

impl Drop for Purger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.try_send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(store: &Weak<dyn Store>, woken: &Receiver<()>, stop: &AtomicBool) {
    loop {
        while !stop.load(Ordering::SeqCst) {
            let Some(store) = store.upgrade() else {
                return;
            };
            match store.purge_step() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::error!(error = %e, "purging deleted facts failed; retrying later");
                    break;
                }
            }
            drop(store);
            std::thread::sleep(PAUSE);
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match woken.recv_timeout(IDLE) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
