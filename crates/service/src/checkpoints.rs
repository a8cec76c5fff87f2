//! Checkpoints of the in-memory indexes, one file per workspace under
//! `<data-dir>/checkpoints/`, and the one way an index is loaded: its checkpoint and
//! the facts appended after it, or, when the checkpoint is missing or unusable, every
//! stored fact. A checkpoint is derived data: whatever is wrong with it is logged
//! with the reason and the index rebuilt; it never produces a wrong answer.
//!
//! A write is atomic: a temporary file, synced, renamed over the old checkpoint, and
//! the directory synced, so a crash at any point leaves the previous checkpoint (or
//! none) in place. The index's read lock is held while it is serialized (queries go
//! on, ingestion waits), and released before the disk sync.

use crate::state::{AppState, Shared, SharedIndex, read, write};
use headcount_engine::Index;
use headcount_model::WorkspaceId;
use headcount_store::sqlite::private;
use headcount_store::{Store, StoreError};
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// The checkpoint directory of a data directory.
#[derive(Debug)]
pub struct Checkpoints {
    dir: PathBuf,
    /// Held by each write: one at a time.
    writing: Mutex<()>,
}

/// What a checkpoint write did.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// The file's size.
    pub bytes: u64,
    /// The fact-log position it includes.
    pub position: u64,
    /// The index's version it holds.
    pub version: u64,
    /// How long the index's read lock was held (serializing).
    pub locked: Duration,
    /// The whole write, disk syncs included.
    pub total: Duration,
}

/// How an index was loaded.
#[derive(Debug)]
pub struct Loaded {
    /// The index, ready to serve.
    pub index: Index,
    /// Whether it came from a checkpoint (then `replayed` facts were applied after).
    pub from_checkpoint: bool,
    /// Facts applied from the store (all of them for a rebuild).
    pub replayed: u64,
}

/// The checkpoint directory of data directory `data_dir`: `<data_dir>/checkpoints`.
pub fn dir_of(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoints")
}

impl Checkpoints {
    /// The checkpoints of data directory `data_dir`, in [`dir_of`] it.
    pub fn in_data_dir(data_dir: &Path) -> Checkpoints {
        Checkpoints::at(dir_of(data_dir))
    }

    /// Checkpoints in directory `dir`.
    pub fn at(dir: PathBuf) -> Checkpoints {
        Checkpoints {
            dir,
            writing: Mutex::new(()),
        }
    }

    /// The file of a workspace's checkpoint.
    pub fn path(&self, ws: WorkspaceId) -> PathBuf {
        self.dir.join(format!("workspace-{}.index", ws.0))
    }

    fn temporary(&self, ws: WorkspaceId) -> PathBuf {
        self.dir.join(format!("workspace-{}.index.tmp", ws.0))
    }

    /// Writes the index of `ws` atomically (see the module's documentation).
    ///
    /// # Errors
    /// Those of the file system; the previous checkpoint is then left as it was.
    pub fn write(&self, ws: WorkspaceId, index: &RwLock<Index>) -> io::Result<Written> {
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        // Owner-only, as the rest of the data directory.
        private::create_dir(&self.dir)?;
        let temporary = self.temporary(ws);
        let file = private::open_file(&temporary)?;
        file.set_len(0)?;
        let (file, position, version, locked) = {
            let index = read(index);
            let serializing = Instant::now();
            let file = index.write_checkpoint(ws, file)?;
            (
                file,
                index.position(),
                index.version(),
                serializing.elapsed(),
            )
        };
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        drop(file);
        std::fs::rename(&temporary, self.path(ws))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(Written {
            bytes,
            position,
            version,
            locked,
            total: started.elapsed(),
        })
    }

    /// Reads the checkpoint of `ws`: `Ok(None)` when there is none, `Err` with the
    /// reason when it cannot be used.
    pub fn read(&self, ws: WorkspaceId) -> Result<Option<Index>, String> {
        let path = self.path(ws);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
        };
        let len = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        let input = BufReader::with_capacity(1 << 20, file);
        let (header, index) =
            Index::read_checkpoint(input, len).map_err(|e| format!("{}: {e}", path.display()))?;
        if header.workspace != ws {
            return Err(format!(
                "{} holds workspace {}, not {ws}",
                path.display(),
                header.workspace
            ));
        }
        Ok(Some(index))
    }

    /// Removes what interrupted writes left behind.
    pub fn remove_temporaries(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Loads the index of workspace `ws` (named `name` in the log): its checkpoint, if
/// usable, and the facts after it; otherwise every stored fact. `progress` is called
/// with the number of facts applied so far, every 65,536 facts.
///
/// # Errors
/// Those of the store (a checkpoint's problems are logged, and the index rebuilt).
pub fn load_index(
    store: &dyn Store,
    checkpoints: Option<&Checkpoints>,
    ws: WorkspaceId,
    name: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Loaded, StoreError> {
    let log_end = store.last_fact_position()?;
    let checkpoint = match checkpoints.map(|c| c.read(ws)) {
        None => None,
        Some(Ok(None)) => {
            tracing::info!(workspace = %name, "no checkpoint: rebuilding the index from the facts");
            None
        }
        Some(Ok(Some(index))) if index.position() > log_end => {
            tracing::warn!(
                workspace = %name,
                checkpoint_position = index.position(),
                log_end,
                "stale checkpoint: it includes facts the store does not hold; rebuilding the index from the facts"
            );
            None
        }
        Some(Ok(Some(index))) => Some(index),
        Some(Err(reason)) => {
            tracing::warn!(workspace = %name, %reason, "unusable checkpoint: rebuilding the index from the facts");
            None
        }
    };
    let from_checkpoint = checkpoint.is_some();
    let mut index = checkpoint.unwrap_or_default();
    let mut replayed = 0u64;
    // Each chunk's users are looked up once (a key's lookup was a third of the replay).
    let mut slots: Vec<Option<u32>> = Vec::new();
    let mut current = None;
    let last = store.scan_chunks_after(ws, index.position(), &mut |chunk, users, user, fact| {
        if current != Some(chunk) {
            current = Some(chunk);
            slots.clear();
            slots.resize(users.len(), None);
        }
        let deletion = matches!(fact.kind, headcount_model::FactKind::Deletion);
        if let (Some(key), Some(slot)) = (users.get(user), slots.get_mut(user)) {
            index.apply_cached(key, slot, &fact);
        }
        if deletion {
            // Another key of the chunk might have named the same user.
            slots.fill(None);
        }
        replayed += 1;
        if replayed.is_multiple_of(65_536) {
            progress(replayed);
        }
    })?;
    progress(replayed);
    index.set_position(last);
    if replayed > 0 {
        // One sorted run per column, at its exact size: faster queries, less memory.
        index.compact();
    }
    Ok(Loaded {
        index,
        from_checkpoint,
        replayed,
    })
}

/// Checkpoints each workspace whose index is due: one that has none matching it, or
/// whose changes since its last checkpoint reach `Config::checkpoint_changes`, or
/// that changed and was last checkpointed `Config::checkpoint_every` ago; when
/// `stopping`, every one that changed. Each is compacted first (under its write
/// lock), then written (under its read lock). Does nothing before the state is ready.
pub fn checkpoint_due(state: &Shared, stopping: bool) {
    let Some(checkpoints) = &state.checkpoints else {
        return;
    };
    if !state.loading.is_ready() {
        return;
    }
    let indexes: Vec<(WorkspaceId, SharedIndex)> = read(&state.indexes)
        .iter()
        .map(|(ws, index)| (*ws, index.clone()))
        .collect();
    let config = &state.config;
    for (ws, index) in indexes {
        let version = read(&index).version();
        let last = state
            .checkpointed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ws)
            .copied();
        let due = match last {
            None => true,
            Some((written, _)) if written == version => false,
            Some((written, at)) => {
                stopping
                    || version.saturating_sub(written) >= config.checkpoint_changes
                    || at.elapsed() >= config.checkpoint_every
            }
        };
        if !due {
            continue;
        }
        let compacting = Instant::now();
        write(&index).compact();
        let compacted = compacting.elapsed();
        match checkpoints.write(ws, &index) {
            Ok(w) => {
                tracing::info!(
                    workspace = %ws,
                    bytes = w.bytes,
                    position = w.position,
                    compact_seconds = compacted.as_secs_f64(),
                    read_lock_seconds = w.locked.as_secs_f64(),
                    seconds = w.total.as_secs_f64(),
                    "checkpoint written"
                );
                state
                    .checkpointed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(ws, (w.version, Instant::now()));
            }
            Err(e) => tracing::error!(workspace = %ws, error = %e, "writing a checkpoint failed"),
        }
    }
}

/// The checkpoint schedule: once the indexes are loaded, looks every 10 seconds (or
/// `Config::checkpoint_every`, if shorter) for indexes due a checkpoint.
pub async fn schedule(state: AppState) {
    if state.checkpoints.is_none() {
        return;
    }
    state.loading.wait_ready().await;
    let period = state
        .config
        .checkpoint_every
        .clamp(Duration::from_millis(10), Duration::from_secs(10));
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || checkpoint_due(&state, false)).await;
    }
}
