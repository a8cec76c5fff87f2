//! Who counts a workspace's segments: its in-memory index (engine `memory`) or
//! ClickHouse (engine `clickhouse`, see the `headcount-clickhouse` crate). [`Sizer`]
//! asks a [`Counting`] for "the sizes of this filter at these instants" and stores
//! and serves them alike; [`Engines`] knows each workspace's engine (read once from
//! the store) and writes the facts of ClickHouse workspaces there.
//!
//! [`Sizer`]: crate::sizes::Sizer

use headcount_clickhouse::{Batch, ClickHouse, SeqClock};
use headcount_engine::{Index, Plan};
use headcount_model::{Day, Fact, Filter, SegmentId, Timestamp, UserKey, WorkspaceId};
use headcount_store::{ENGINE_CLICKHOUSE, Store, StoreError};
use jiff::tz::TimeZone;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Seconds a client is asked to wait (`Retry-After`) when ClickHouse is unavailable.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// Why sizes could not be computed or stored.
#[derive(Debug, thiserror::Error)]
pub enum SizeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The workspace's engine (ClickHouse) is unavailable or refused the work: worth
    /// retrying later.
    #[error("{0}")]
    Engine(String),
}

/// The filters of a ClickHouse count: the target and every segment it reaches
/// through `in_segment`.
#[derive(Debug, Clone)]
pub struct Filters {
    /// The filter to size.
    pub target: Arc<Filter>,
    /// The filters `in_segment` names, transitively.
    pub named: HashMap<SegmentId, Arc<Filter>>,
}

impl Filters {
    /// `target` and the filters it reaches, as `resolve` gives them (a segment it
    /// cannot give is left out: the SQL compiler then refuses the filter).
    pub fn collect(
        target: Arc<Filter>,
        resolve: &dyn Fn(SegmentId) -> Option<Arc<Filter>>,
    ) -> Filters {
        let mut named = HashMap::new();
        let mut todo = target.segment_ids();
        while let Some(id) = todo.pop() {
            if named.contains_key(&id) {
                continue;
            }
            if let Some(filter) = resolve(id) {
                todo.extend(filter.segment_ids());
                named.insert(id, filter);
            }
        }
        Filters { target, named }
    }
}

/// What computes a segment's sizes.
#[derive(Clone, Copy)]
pub enum Counting<'a> {
    /// The workspace's in-memory index and the segment's plan.
    Memory {
        /// The facts.
        index: &'a Index,
        /// The segment's plan.
        plan: &'a Plan,
    },
    /// ClickHouse, with the segment's filters.
    ClickHouse {
        /// The servers.
        ch: &'a ClickHouse,
        /// The workspace.
        workspace: WorkspaceId,
        /// The segment's filters.
        filters: &'a Filters,
    },
}

impl Counting<'_> {
    /// The sizes as of the end of each of `days` (in `tz`).
    ///
    /// # Errors
    /// [`SizeError::Engine`] when ClickHouse fails.
    pub fn day_sizes(&self, days: &[Day], tz: &TimeZone) -> Result<Vec<u64>, SizeError> {
        match self {
            Counting::Memory { index, plan } => Ok(index.sizes(plan, days, tz)),
            Counting::ClickHouse { .. } => {
                let ends: Vec<Timestamp> = days.iter().map(|d| d.end(tz)).collect();
                self.sizes_at(&ends, tz)
            }
        }
    }

    /// The size as of `at` (days in `tz`).
    ///
    /// # Errors
    /// As [`Counting::day_sizes`].
    pub fn size_at(&self, at: Timestamp, tz: &TimeZone) -> Result<u64, SizeError> {
        match self {
            Counting::Memory { index, plan } => Ok(index.size(plan, at, tz)),
            Counting::ClickHouse { .. } => {
                Ok(self.sizes_at(&[at], tz)?.first().copied().unwrap_or(0))
            }
        }
    }

    fn sizes_at(&self, instants: &[Timestamp], tz: &TimeZone) -> Result<Vec<u64>, SizeError> {
        let Counting::ClickHouse {
            ch,
            workspace,
            filters,
        } = self
        else {
            return Ok(Vec::new());
        };
        if instants.is_empty() {
            return Ok(Vec::new());
        }
        let resolve = |id: SegmentId| filters.named.get(&id).cloned();
        let grid = ch
            .size_grid(workspace.0, &[&filters.target], &resolve, instants, tz)
            .map_err(|e| SizeError::Engine(e.to_string()))?;
        Ok(grid
            .iter()
            .map(|row| row.first().copied().unwrap_or(0))
            .collect())
    }
}

/// The engines of a server: ClickHouse if configured, and which workspaces use it.
#[derive(Debug, Default)]
pub struct Engines {
    clickhouse: Option<ClickHouse>,
    seq: SeqClock,
    /// Per workspace, whether its engine is ClickHouse (read once from the store).
    known: Mutex<HashMap<WorkspaceId, bool>>,
}

impl Engines {
    /// Engines with ClickHouse at `clickhouse`, if given.
    pub fn new(clickhouse: Option<ClickHouse>) -> Engines {
        Engines {
            clickhouse,
            ..Engines::default()
        }
    }

    /// Whether `ws`'s engine is ClickHouse (learnt from the store on first use; an
    /// engine never changes).
    ///
    /// # Errors
    /// The store failed.
    ///
    /// Blocking the first time: on an async task, see [`Engines::known_clickhouse`].
    pub fn is_clickhouse(&self, store: &dyn Store, ws: WorkspaceId) -> Result<bool, StoreError> {
        if let Some(is) = self.known_clickhouse(ws) {
            return Ok(is);
        }
        let is = store.workspace_engine(ws)? == ENGINE_CLICKHOUSE;
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ws, is);
        Ok(is)
    }

    /// Whether `ws`'s engine is ClickHouse when already learnt (no I/O); `None` when
    /// [`Engines::is_clickhouse`] would read the store.
    pub fn known_clickhouse(&self, ws: WorkspaceId) -> Option<bool> {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ws)
            .copied()
    }

    /// The ClickHouse of workspace `ws`: `None` for a memory workspace.
    ///
    /// # Errors
    /// The store failed, or the workspace's engine is ClickHouse and none is
    /// configured ([`SizeError::Engine`]).
    pub fn clickhouse_of(
        &self,
        store: &dyn Store,
        ws: WorkspaceId,
    ) -> Result<Option<&ClickHouse>, SizeError> {
        if !self.is_clickhouse(store, ws)? {
            return Ok(None);
        }
        match &self.clickhouse {
            Some(ch) => Ok(Some(ch)),
            None => Err(SizeError::Engine(
                "the workspace's engine is clickhouse, and this server runs without \
                 ClickHouse: start it with --clickhouse-url"
                    .into(),
            )),
        }
    }

    /// Writes facts (deletions included) of a ClickHouse workspace to ClickHouse;
    /// returns once ClickHouse has acknowledged every row. Blocking.
    ///
    /// # Errors
    /// [`SizeError::Engine`]: nothing may be taken as written.
    pub fn insert(
        &self,
        ch: &ClickHouse,
        ws: WorkspaceId,
        facts: &[(UserKey, Fact)],
    ) -> Result<(), SizeError> {
        let mut batch = Batch::new();
        for (user, fact) in facts {
            batch.push(ws.0, user, fact, self.seq.next());
        }
        ch.insert(&batch)
            .map_err(|e| SizeError::Engine(e.to_string()))
    }
}

/// The filters of segment `id` for a ClickHouse count, from the catalog (and the
/// store, for filters the catalog does not hold).
///
/// # Errors
/// An unknown segment, or one whose filter does not parse.
pub fn segment_filters(
    catalog: &crate::catalog::Catalog,
    store: &dyn Store,
    id: SegmentId,
) -> Result<Filters, headcount_engine::PlanError> {
    let target = catalog.stored_filter(id, store)?;
    Ok(Filters::collect(target, &|named| {
        catalog.stored_filter(named, store).ok()
    }))
}
