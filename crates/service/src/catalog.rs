//! The catalog: workspaces, keys and segments held in memory for the hot path, loaded
//! from the store at start and written through to it on every change.
//!
//! Whatever is stored loads: a segment whose definition cannot be parsed or planned
//! any more (a limit added since, a damaged row) is logged and *failing* — its plan is
//! an error that `details` and `data_series` report — and everything else is served.
//! An archived segment that no live filter reaches is kept without its filter, which
//! is read from the store again when asked for.
//!
//! Other processes (`headcount workspaces|keys …`) may change workspaces and keys
//! while the server runs: the server notices through `Store::catalog_version` and
//! [`Catalog::refresh`]es (see `upkeep.rs`).

use headcount_engine::{Measure, Plan, PlanError};
use headcount_model::filter::Pattern;
use headcount_model::{Filter, SegmentId, WorkspaceId};
use headcount_store::{ApiKey, Segment, Store, StoreError, Workspace, keys};
use jiff::tz::TimeZone;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
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
    /// The stored record; its `filter` is `null` while the definition is
    /// [`Definition::Unloaded`].
    pub segment: Segment,
    /// Its filter, or why there is none in memory.
    pub definition: Definition,
}

/// What the catalog holds of a segment's filter.
#[derive(Debug, Clone)]
pub enum Definition {
    /// The parsed filter.
    Parsed(Arc<Filter>),
    /// The stored filter does not parse (any more): why.
    Unparsable(String),
    /// Archived and reached by no live filter: read from the store when needed. The
    /// segments it names are kept, so that a change to one of them still clears and
    /// recomputes this segment's history.
    Unloaded {
        /// The segments its filter names.
        refs: Vec<SegmentId>,
    },
}

impl SegmentEntry {
    /// An entry for a segment whose filter is parsed.
    pub fn parsed(segment: Segment, filter: Filter) -> SegmentEntry {
        SegmentEntry {
            segment,
            definition: Definition::Parsed(Arc::new(filter)),
        }
    }

    /// The parsed filter, when the catalog holds one.
    pub fn filter(&self) -> Option<&Arc<Filter>> {
        match &self.definition {
            Definition::Parsed(filter) => Some(filter),
            _ => None,
        }
    }

    /// The segments this segment's filter names (none when it does not parse).
    fn refs(&self) -> Vec<SegmentId> {
        match &self.definition {
            Definition::Parsed(filter) => filter.segment_ids(),
            Definition::Unparsable(_) => Vec::new(),
            Definition::Unloaded { refs } => refs.clone(),
        }
    }
}

/// Parses a stored segment's filter, for a segment of the catalog or one read again.
fn parse_stored(segment: &Segment) -> Result<Filter, String> {
    Filter::parse(&segment.filter, "filter").map_err(|e| e.to_string())
}

/// Everything but user data, in memory.
#[derive(Debug, Default)]
pub struct Catalog {
    workspaces: HashMap<WorkspaceId, WorkspaceEntry>,
    keys: HashMap<String, ApiKey>,
    segments: HashMap<SegmentId, SegmentEntry>,
    order: Vec<SegmentId>,
    generation: u64,
    /// Plans compiled, or refused, since the last change of any segment.
    plans: Mutex<HashMap<SegmentId, Result<Arc<Plan>, PlanError>>>,
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
            let definition = match parse_stored(&segment) {
                Ok(filter) => Definition::Parsed(Arc::new(filter)),
                Err(reason) => Definition::Unparsable(reason),
            };
            catalog.order.push(segment.id);
            catalog.segments.insert(
                segment.id,
                SegmentEntry {
                    segment,
                    definition,
                },
            );
        }
        catalog.unload_unreached();
        catalog.log_failing();
        Ok(catalog)
    }

    /// Logs every live segment (and archived one still held) that cannot be computed.
    fn log_failing(&self) {
        let resolve = |id| self.resolve(id, None);
        let mut measure = Measure::new(&resolve);
        for id in &self.order {
            let Some(entry) = self.segments.get(id) else {
                continue;
            };
            let failure = match &entry.definition {
                Definition::Unloaded { .. } => continue,
                Definition::Unparsable(reason) => reason.clone(),
                Definition::Parsed(_) => match measure.segment(*id).and_then(|m| m.check()) {
                    Ok(()) => continue,
                    Err(e) => e.to_string(),
                },
            };
            tracing::warn!(segment = %id, error = %failure, "segment cannot be computed: update its filter");
        }
    }

    /// Forgets the filters of archived segments that no live filter reaches: nothing
    /// can come to need them again (a new reference to an archived segment is refused).
    fn unload_unreached(&mut self) {
        let mut reached: HashSet<SegmentId> = HashSet::new();
        let mut stack: Vec<SegmentId> = self
            .segments
            .values()
            .filter(|e| e.segment.archived_at.is_none())
            .flat_map(SegmentEntry::refs)
            .collect();
        while let Some(id) = stack.pop() {
            if reached.insert(id)
                && let Some(entry) = self.segments.get(&id)
            {
                stack.extend(entry.refs());
            }
        }
        for (id, entry) in &mut self.segments {
            let idle = entry.segment.archived_at.is_some() && !reached.contains(id);
            if idle && !matches!(entry.definition, Definition::Unloaded { .. }) {
                let refs = entry.refs();
                entry.definition = Definition::Unloaded { refs };
                entry.segment.filter = Value::Null;
            }
        }
    }

    /// The filter of segment `id` for a plan: held, read again from `store` when the
    /// catalog does not hold it, or why it cannot be had.
    fn resolve(&self, id: SegmentId, store: Option<&dyn Store>) -> Result<Arc<Filter>, PlanError> {
        let entry = self
            .segments
            .get(&id)
            .ok_or(PlanError::UnknownSegment(id))?;
        let failing = |reason: String| PlanError::Failing { id, reason };
        match (&entry.definition, store) {
            (Definition::Parsed(filter), _) => Ok(filter.clone()),
            (Definition::Unparsable(reason), _) => Err(failing(reason.clone())),
            (Definition::Unloaded { .. }, None) => Err(failing("its filter is not loaded".into())),
            (Definition::Unloaded { .. }, Some(store)) => {
                let stored = store
                    .segment(id)
                    .map_err(|e| failing(format!("reading it failed: {e}")))?
                    .ok_or(PlanError::UnknownSegment(id))?;
                parse_stored(&stored).map(Arc::new).map_err(failing)
            }
        }
    }

    /// Takes the workspaces and keys of `fresh` (a new [`Catalog::load`]), and its
    /// segments when they differ from those held: only then do the generation move
    /// and compiled plans go. Returns whether the segments changed.
    pub fn refresh(&mut self, fresh: Catalog) -> bool {
        self.workspaces = fresh.workspaces;
        self.keys = fresh.keys;
        let same_segments = self.order == fresh.order
            && self.order.iter().all(|id| {
                self.segments.get(id).map(|e| &e.segment)
                    == fresh.segments.get(id).map(|e| &e.segment)
            });
        if same_segments {
            return false;
        }
        self.segments = fresh.segments;
        self.order = fresh.order;
        self.generation += 1;
        self.plans
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        true
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
        self.unload_unreached();
    }

    /// A number that changes with every change to a segment: plans made from the
    /// catalog are the same while it does not.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The plan of a stored segment, compiled (or refused) once per catalog
    /// generation; `store` gives the filters the catalog does not hold.
    ///
    /// # Errors
    /// Why the segment cannot be computed: its filter does not parse, refers to a
    /// segment that cannot be computed, or is beyond the limits of a plan.
    pub fn segment_plan(
        &self,
        entry: &SegmentEntry,
        store: &dyn Store,
    ) -> Result<Arc<Plan>, PlanError> {
        let id = entry.segment.id;
        let cache = || self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(plan) = cache().get(&id) {
            return plan.clone();
        }
        let plan = match &entry.definition {
            Definition::Parsed(filter) => self.plan_with(filter, Some(store)).map(Arc::new),
            Definition::Unparsable(reason) => Err(PlanError::Failing {
                id,
                reason: reason.clone(),
            }),
            // Not kept: the catalog holds nothing of such a segment.
            Definition::Unloaded { .. } => {
                return self
                    .resolve(id, Some(store))
                    .and_then(|filter| self.plan_with(&filter, Some(store)).map(Arc::new));
            }
        };
        cache().insert(id, plan.clone());
        plan
    }

    /// Why a segment cannot be computed, if it cannot (see [`Catalog::segment_plan`]).
    pub fn failure(&self, entry: &SegmentEntry, store: &dyn Store) -> Option<String> {
        let own = entry.segment.id;
        self.segment_plan(entry, store).err().map(|e| match e {
            PlanError::Failing { id, reason } if id == own => reason,
            other => other.to_string(),
        })
    }

    /// The filter of segment `id`, read again from `store` if the catalog does not
    /// hold it.
    ///
    /// # Errors
    /// An unknown segment, or one whose stored filter does not parse.
    pub fn stored_filter(
        &self,
        id: SegmentId,
        store: &dyn Store,
    ) -> Result<Arc<Filter>, PlanError> {
        self.resolve(id, Some(store))
    }

    /// An evaluable plan of a filter (references resolved) from the filters held.
    ///
    /// # Errors
    /// As [`Catalog::segment_plan`].
    pub fn plan(&self, filter: &Filter) -> Result<Plan, PlanError> {
        self.plan_with(filter, None)
    }

    fn plan_with(&self, filter: &Filter, store: Option<&dyn Store>) -> Result<Plan, PlanError> {
        Plan::compile(filter, &|id| self.resolve(id, store))
    }

    /// Checks that `filter`, as the new filter of segment `own` (new or updated),
    /// keeps it and every live segment that refers to it within the limits of a plan.
    ///
    /// # Errors
    /// The first refusal, as a sentence that starts with the field (`filter: …`).
    pub fn check_plan_limits(&self, own: SegmentId, filter: &Arc<Filter>) -> Result<(), String> {
        let resolve = |id| match id == own {
            true => Ok(filter.clone()),
            false => self.resolve(id, None),
        };
        let mut measure = Measure::new(&resolve);
        measure
            .filter(filter)
            .and_then(|m| m.check())
            .map_err(|e| format!("filter: {e}"))?;
        for id in self.dependants(own) {
            let Some(entry) = self.segments.get(&id) else {
                continue;
            };
            if entry.segment.archived_at.is_some() {
                continue;
            }
            // Dependants already failing for another reason stay as they were.
            if let Err(e @ (PlanError::TooManyNodes(_) | PlanError::TooDeep(_))) =
                measure.segment(id).and_then(|m| m.check())
            {
                return Err(format!(
                    "filter: segment {id} (\"{}\") refers to this segment and would become too large: {e}",
                    entry.segment.name
                ));
            }
        }
        Ok(())
    }

    /// The `matches` patterns of the live segments of workspace `ws`, but segment `except`.
    pub fn live_patterns(&self, ws: WorkspaceId, except: SegmentId) -> Vec<Pattern> {
        self.segments_of(ws)
            .filter(|e| e.segment.archived_at.is_none() && e.segment.id != except)
            .filter_map(SegmentEntry::filter)
            .flat_map(|f| f.patterns().into_iter().cloned())
            .collect()
    }

    /// The segments whose filters reach `id` through `in_segment`, transitively.
    pub fn dependants(&self, id: SegmentId) -> Vec<SegmentId> {
        let mut found: Vec<SegmentId> = Vec::new();
        let mut frontier = vec![id];
        while let Some(target) = frontier.pop() {
            for (other, entry) in &self.segments {
                let refers = entry.refs().contains(&target);
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
        let mut stack: Vec<SegmentId> = filter.segment_ids();
        while let Some(next) = stack.pop() {
            if next == id {
                return true;
            }
            if seen.contains(&next) {
                continue;
            }
            seen.push(next);
            if let Some(entry) = self.segments.get(&next) {
                stack.extend(entry.refs());
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
