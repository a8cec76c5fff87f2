//! The SQLite store's in-memory cache of stored sizes: it holds the segments read, and
//! lets go of a segment when told to (its segment was archived), without losing the
//! stored sizes.

use headcount_model::{Day, SegmentId};
use headcount_store::{SqliteStore, Store};

#[test]
fn forgotten_segments_leave_the_size_cache_and_keep_their_stored_sizes() {
    let store = SqliteStore::in_memory().expect("open");
    let at = "2024-05-02T00:00:00Z".parse().expect("instant");
    let day = Day::ymd(2024, 5, 1);
    let segments: Vec<SegmentId> = (0..50).map(|_| SegmentId::new_random()).collect();
    for (n, id) in segments.iter().enumerate() {
        store.put_sizes(*id, &[(day, n as u64)], at).expect("put");
        store.sizes(*id, day, day).expect("read");
    }
    assert_eq!(store.cached_size_segments(), 50);

    for id in &segments[..40] {
        store.forget_cached_sizes(*id);
    }
    assert_eq!(store.cached_size_segments(), 10);

    // Read again: loaded from the database, the same sizes, cached again.
    let again = store.sizes(segments[3], day, day).expect("read");
    assert_eq!((again.len(), again[0].size), (1, 3));
    assert_eq!(store.cached_size_segments(), 11);
}
