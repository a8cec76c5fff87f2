//! What the server keeps in memory per segment (its cached live size, its size lock,
//! the store's cache of its sizes) is let go when the segment is archived, so that a
//! server that creates and archives segments for months does not grow with them.

#[allow(dead_code)] // the helpers this file does not use
mod common;

use common::TestServer;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_segments_leave_no_live_size_and_no_size_lock() {
    let (server, key) = TestServer::simple().await;
    let state = server.state();
    let mut ids = Vec::new();
    for n in 0..12 {
        let filter = json!({"attribute": "plan", "op": "eq", "value": format!("p{n}")});
        ids.push(server.create_segment(&key, &format!("S{n}"), filter).await);
    }
    // Every backfill done (its lock let go), then each segment's series read, today's
    // live size included.
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &ids {
        let segment = id.parse().expect("a segment id");
        while state
            .store
            .last_computed_at(segment)
            .expect("read")
            .is_none()
        {
            assert!(
                Instant::now() < deadline,
                "the backfill of {id} never ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let points = server
            .series(&key, &format!("segment_id={id}&length=3"))
            .await;
        assert_eq!(points.len(), 3);
    }
    let (live, _) = state.segment_entries();
    assert_eq!(live, 12, "one live size per segment read");

    for id in &ids {
        server
            .post(&key, "/segments/archive", &json!({"segment_id": id}))
            .await
            .expect(200);
    }
    assert_eq!(state.segment_entries(), (0, 0));

    // An archived segment still answers, from the store.
    let points = server
        .series(&key, &format!("segment_id={}&length=3", ids[0]))
        .await;
    assert_eq!(points.len(), 3);
}
