//! An unreadable `ending_at` is named once in the refusal, not repeated.

#[allow(dead_code)]
mod common;

use common::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_date_in_ending_at_is_named_once() {
    let (server, key) = TestServer::simple().await;
    let id = server.create_segment(&key, "all", json!({"all": []})).await;
    let r = server
        .get(
            &key,
            &format!("/segments/data_series?segment_id={id}&length=1&ending_at=2026-13-01"),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let message = r.message();
    assert!(
        message.starts_with("ending_at \"2026-13-01\" is not a date on the calendar; expected "),
        "{message}"
    );
    assert_eq!(message.matches("2026-13-01").count(), 1, "{message}");
    // A part of a longer value is still named with the value.
    let r = server
        .get(
            &key,
            &format!("/segments/data_series?segment_id={id}&length=1&ending_at=2026-02-30T10:00"),
        )
        .await;
    assert!(
        r.message()
            .starts_with("ending_at \"2026-02-30T10:00\" 2026-02-30 is not a date on the calendar"),
        "{r:?}"
    );
}
