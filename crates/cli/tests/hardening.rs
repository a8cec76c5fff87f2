//! Import lines are held to the API's rules (issue 9): a line whose JSON names a key
//! twice, or with a fact time before the supported range, is rejected with the API's
//! reason.

#[allow(dead_code)] // the helpers this file does not use
mod common;

use common::{TempDir, create_workspace, ext, facts, hc, of};

#[test]
fn import_rejects_a_line_with_a_key_named_twice() {
    let tmp = TempDir::new("dup-keys");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let lines = [
        r#"{"attributes":[{"external_id":"bad1","plan":"a"}],"attributes":[{"external_id":"bad2","plan":"b"}]}"#,
        r#"{"events":[{"external_id":"bad3","external_id":"bad4","name":"x","time":"2024-01-11T09:00:00Z"}]}"#,
        r#"{"events":[{"external_id":"bad5","name":"x","time":"2024-01-11T09:00:00Z","properties":{"k":1,"k":2}}]}"#,
        r#"{"events":[{"external_id":"bad6","name":"x","time":"1899-12-31T00:00:00Z"}]}"#,
        r#"{"events":[{"external_id":"good","name":"x","time":"2024-01-11T09:00:00Z"}]}"#,
    ];
    let file = tmp.write("lines.ndjson", &lines.join("\n"));
    let file = file.to_str().expect("UTF-8 path");
    let run = hc(&data, &["import", "--workspace", "acme", file]);
    assert_eq!(run.code(), Some(2), "{run:#?}");
    for needle in [
        format!("{file}:1: rejected: the request body has the key \"attributes\" twice\n"),
        format!(
            "{file}:2: rejected: the request body has the key \"external_id\" twice in events[0]\n"
        ),
        format!(
            "{file}:3: rejected: the request body has the key \"k\" twice in events[0].properties\n"
        ),
        format!(
            "{file}:4: rejected: events[0]: 'time' \"1899-12-31T00:00:00Z\" is outside the supported range of instants (from 1900-01-01T00:00:00Z to the end of year 9999)\n"
        ),
    ] {
        assert!(run.stderr.contains(&needle), "no {needle:?} in {run:#?}");
    }
    let all = facts(&data, "acme");
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(of(&all, &ext("good")).len(), 1);
}
