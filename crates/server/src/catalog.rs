//! The catalog: workspaces, keys and segments held in memory for the hot path, loaded
//! from the store at start and written through to it on every change.
//!
//! The data directory has one owning process, so nothing else changes the store
//! under the server's feet.

use headcount_engine::{Plan, PlanError};
use headcount_model::{Filter, SegmentId, WorkspaceId};
use headcount_store::{ApiKey, Segment, Store, StoreError, Workspace, keys};
use jiff::tz::TimeZone;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A workspace with its time zone resolved.
#[derive(Debug, Clone)]
pub struct WorkspaceEntry {
    /// The stored record.
    pub workspace: Workspace,
    /// Its time zone.
    pub tz: TimeZone,
}

/// A segment with its filter parsed.
#[derive(Debug, Clone)]
pub struct SegmentEntry {
    /// The stored record.
    pub segment: Segment,
    /// Its parsed filter.
    pub filter: Filter,
}

/// Everything but user data, in memory.
#[derive(Debug, Default)]
pub struct Catalog {
    workspaces: HashMap<WorkspaceId, WorkspaceEntry>,
    keys: HashMap<String, ApiKey>,
    segments: HashMap<SegmentId, SegmentEntry>,
    order: Vec<SegmentId>,
    generation: u64,
    /// Plans compiled since the last change of any segment.
    plans: Mutex<HashMap<SegmentId, Arc<Plan>>>,
}

/// Resolves an IANA time zone name, with a message fit for a user on failure.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("unknown time zone \"{name}\": use an IANA name such as UTC, Europe/Paris or America/New_York")
    })
}

impl Catalog {
    /// Reads the catalog from the store.
    pub fn load(store: &dyn Store) -> Result<Catalog, StoreError> {
        let mut catalog = Catalog::default();
        for workspace in store.workspaces()? {
            let tz = time_zone(&workspace.time_zone).map_err(StoreError::Corrupt)?;
            catalog
                .workspaces
                .insert(workspace.id, WorkspaceEntry { workspace, tz });
        }
        for key in store.keys()? {
            catalog.keys.insert(key.id.clone(), key);
        }
        for segment in store.segments()? {
            let filter = Filter::parse(&segment.filter, "filter")
                .map_err(|e| StoreError::Corrupt(format!("segment {}: {e}", segment.id)))?;
            catalog.order.push(segment.id);
            catalog
                .segments
                .insert(segment.id, SegmentEntry { segment, filter });
        }
        Ok(catalog)
    }

    /// Every workspace.
    pub fn workspaces(&self) -> impl Iterator<Item = &WorkspaceEntry> {
        self.workspaces.values()
    }

    /// One workspace.
    pub fn workspace(&self, id: WorkspaceId) -> Option<&WorkspaceEntry> {
        self.workspaces.get(&id)
    }

    /// The live key whose secret is `secret`, compared in constant time.
    pub fn authenticate(&self, secret: &str) -> Option<&ApiKey> {
        let key = self.keys.get(keys::public_id(secret))?;
        let matches = keys::hashes_equal(&key.hash, &keys::hash_secret(secret));
        (matches && key.revoked_at.is_none()).then_some(key)
    }

    /// The key with public id `id`, revoked or not.
    pub fn key(&self, id: &str) -> Option<&ApiKey> {
        self.keys.get(id)
    }

    /// A segment of workspace `ws`; `None` for unknown ids and other workspaces' ids alike.
    pub fn segment_in(&self, ws: WorkspaceId, id: SegmentId) -> Option<&SegmentEntry> {
        self.segments.get(&id).filter(|e| e.segment.workspace == ws)
    }

    /// The segments of a workspace in creation order, archived ones included.
    pub fn segments_of(&self, ws: WorkspaceId) -> impl DoubleEndedIterator<Item = &SegmentEntry> {
        self.order
            .iter()
            .filter_map(|id| self.segments.get(id))
            .filter(move |e| e.segment.workspace == ws)
    }

    /// Adds or replaces a segment (after the store accepted it).
    pub fn put_segment(&mut self, entry: SegmentEntry) {
        self.generation += 1;
        // A segment's plan inlines the filters it refers to: any change may alter any plan.
        self.plans
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let id = entry.segment.id;
        if self.segments.insert(id, entry).is_none() {
            self.order.push(id);
        }
    }

    /// A number that changes with every change to a segment: plans made from the
    /// catalog are the same while it does not.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The plan of a stored segment, compiled once per catalog generation.
    pub fn segment_plan(&self, entry: &SegmentEntry) -> Result<Arc<Plan>, PlanError> {
        let id = entry.segment.id;
        if let Some(plan) = self
            .plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(plan.clone());
        }
        let plan = Arc::new(self.plan(&entry.filter)?);
        self.plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, plan.clone());
        Ok(plan)
    }

    /// An evaluable plan of a segment's filter (references resolved).
    pub fn plan(&self, filter: &Filter) -> Result<Plan, PlanError> {
        Plan::compile(filter, &|id| {
            self.segments.get(&id).map(|e| e.filter.clone())
        })
    }

    /// The segments whose filters reach `id` through `in_segment`, transitively.
    pub fn dependants(&self, id: SegmentId) -> Vec<SegmentId> {
        let mut found: Vec<SegmentId> = Vec::new();
        let mut frontier = vec![id];
        while let Some(target) = frontier.pop() {
            for (other, entry) in &self.segments {
                let refers = entry
                    .filter
                    .segment_refs()
                    .iter()
                    .any(|(r, _)| *r == target);
                if refers && *other != id && !found.contains(other) {
                    found.push(*other);
                    frontier.push(*other);
                }
            }
        }
        found
    }

    /// Whether following `in_segment` references from `filter` reaches segment `id`.
    pub fn reaches(&self, filter: &Filter, id: SegmentId) -> bool {
        let mut seen = Vec::new();
        let mut stack: Vec<SegmentId> = filter.segment_refs().into_iter().map(|(r, _)| r).collect();
        while let Some(next) = stack.pop() {
            if next == id {
                return true;
            }
            if seen.contains(&next) {
                continue;
            }
            seen.push(next);
            if let Some(entry) = self.segments.get(&next) {
                stack.extend(entry.filter.segment_refs().into_iter().map(|(r, _)| r));
            }
        }
        false
    }
}

impl Catalog {
    /// A segment of any workspace, for background work that already knows the id.
    pub fn segment_in_any(&self, id: SegmentId) -> Option<&SegmentEntry> {
        self.segments.get(&id)
    }
}
