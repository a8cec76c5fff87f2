//! Compiled `matches` patterns, shared process-wide between equal pattern texts.
//!
//! A compiled regular expression can take a megabyte; many segments of many
//! workspaces often use the same few patterns. Every [`Pattern`] with the same text
//! points at one compiled regex for as long as any of them lives: the cache holds weak
//! references only, so a pattern nobody uses any more is freed.

use regex_automata::meta;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// Compiled size limit of one `matches` regular expression (its automata, in bytes).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Capacity of the lazy DFA cache of each compiled regex (the `regex` crate's default).
const CACHE_CAPACITY: usize = 2 << 20;

/// A compiled `matches` pattern, compared by its source text.
#[derive(Clone)]
pub struct Pattern(Arc<Compiled>);

struct Compiled {
    source: String,
    regex: meta::Regex,
}

/// The live compiled patterns by source text; dead entries are swept as the map grows.
struct Cache {
    patterns: HashMap<String, Weak<Compiled>>,
    /// Size of the map at which dead entries are swept next.
    sweep_at: usize,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| {
    Mutex::new(Cache {
        patterns: HashMap::new(),
        sweep_at: 64,
    })
});

impl Pattern {
    /// The compiled pattern for `source`: the one already compiled if any pattern with
    /// this text is alive, else a new one.
    ///
    /// # Errors
    /// The message of the `regex` crate for a pattern that does not parse or whose
    /// automata exceed [`REGEX_SIZE_LIMIT`].
    pub fn new(source: &str) -> Result<Pattern, String> {
        if let Some(live) = lock().patterns.get(source).and_then(Weak::upgrade) {
            return Ok(Pattern(live));
        }
        // Compiled outside the lock: a slow pattern holds up no other one.
        let compiled = Arc::new(Compiled {
            source: source.to_string(),
            regex: compile(source)?,
        });
        let mut cache = lock();
        if let Some(live) = cache.patterns.get(source).and_then(Weak::upgrade) {
            return Ok(Pattern(live));
        }
        cache
            .patterns
            .insert(source.to_string(), Arc::downgrade(&compiled));
        if cache.patterns.len() >= cache.sweep_at {
            cache.patterns.retain(|_, p| p.strong_count() > 0);
            cache.sweep_at = (cache.patterns.len() * 2).max(64);
        }
        Ok(Pattern(compiled))
    }

    /// The pattern's source text.
    pub fn as_str(&self) -> &str {
        &self.0.source
    }

    /// Whether the pattern matches somewhere in `text` (an unanchored search).
    pub fn is_match(&self, text: &str) -> bool {
        self.0.regex.is_match(text)
    }

    /// Bytes held by the compiled automata (not counting the per-thread search caches).
    pub fn memory_usage(&self) -> usize {
        self.0.regex.memory_usage()
    }

    /// Whether both patterns use the same compiled regex.
    pub fn shares_with(&self, other: &Pattern) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Compiles `source` as `regex::Regex::new` would, with [`REGEX_SIZE_LIMIT`].
fn compile(source: &str) -> Result<meta::Regex, String> {
    let config = meta::Config::new()
        .match_kind(regex_automata::MatchKind::LeftmostFirst)
        .utf8_empty(true)
        .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
        .hybrid_cache_capacity(CACHE_CAPACITY);
    meta::Builder::new()
        .configure(config)
        .syntax(regex_automata::util::syntax::Config::new().utf8(true))
        .build(source)
        .map_err(|e| match (e.size_limit(), e.syntax_error()) {
            (Some(limit), _) => format!("Compiled regex exceeds size limit of {limit} bytes."),
            (None, Some(syntax)) => syntax.to_string(),
            (None, None) => e.to_string(),
        })
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.as_str()).finish()
    }
}
