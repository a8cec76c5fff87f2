//! The `headcount` command line, run as a real process over temporary data
//! directories: workspaces, keys, the data directory's single writer, import, the
//! durability of `/users/track`, and offline snapshots.

mod common;

use common::{
    Server, TempDir, create_key, create_workspace, event_names, ext, facts, hc, hc_stdin, of,
    open_store,
};
use headcount_model::{Day, FactKind, SegmentId, Timestamp, UserKey, Value};
use headcount_store::{Segment, Store};
use jiff::tz::TimeZone;
use serde_json::json;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------
// workspaces

/// The rows of a table printed by a list command, cells split on whitespace.
fn rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn workspaces_create_and_list_with_defaults_and_options() {
    let tmp = TempDir::new("ws");
    let data = tmp.data();

    // Nothing to list before the first workspace, and the directory is not created.
    let shown = data.display().to_string();
    hc(&data, &["workspaces", "list"]).fails_with(&[&shown, "does not exist"]);
    assert!(!data.exists());

    let created = hc(&data, &["workspaces", "create", "acme"]).ok();
    assert_eq!(created.stdout, "");
    assert!(
        created.stderr.contains(
            "created workspace \"acme\" (time zone UTC, export limit 250000/hour, track limit 3000/3s)"
        ),
        "{created:#?}"
    );
    hc(
        &data,
        &[
            "workspaces",
            "create",
            "paris",
            "--time-zone",
            "Europe/Paris",
            "--export-rate-limit",
            "1200",
            "--track-rate-limit",
            "7",
        ],
    )
    .ok();

    // Time zone names are matched without regard to case, and stored canonical.
    hc(
        &data,
        &[
            "workspaces",
            "create",
            "lower",
            "--time-zone",
            "america/new_york",
        ],
    )
    .ok();

    let before = Timestamp::now();
    let list = hc(&data, &["workspaces", "list"]).ok();
    let table = rows(&list.stdout);
    assert_eq!(table.len(), 4, "{list:#?}");
    assert_eq!(table[1][..4], ["acme", "UTC", "250000", "3000"]);
    assert_eq!(table[2][..4], ["paris", "Europe/Paris", "1200", "7"]);
    assert_eq!(
        table[3][..4],
        ["lower", "America/New_York", "250000", "3000"]
    );
    for row in &table[1..] {
        assert_eq!(row.len(), 5, "{row:?}");
        let created: Timestamp = row[4].parse().expect("CREATED_AT is an instant");
        assert!(created <= before, "{created} after {before}");
        assert!(before.duration_since(created).as_secs() < 120);
    }
}

#[test]
fn workspaces_create_rejects_bad_input_clearly() {
    let tmp = TempDir::new("ws-errors");
    let data = tmp.data();
    hc(&data, &["workspaces", "create", "acme"]).ok();

    let run = hc(
        &data,
        &[
            "workspaces",
            "create",
            "mars",
            "--time-zone",
            "Mars/Olympus_Mons",
        ],
    )
    .fails_with(&["unknown time zone \"Mars/Olympus_Mons\""]);
    assert_eq!(run.code(), Some(1));
    assert_eq!(run.stdout, "");

    hc(&data, &["workspaces", "create", "acme"])
        .fails_with(&["a workspace named \"acme\" already exists"]);
    // The trimmed name is the name: a padded duplicate is still a duplicate.
    hc(&data, &["workspaces", "create", " acme "])
        .fails_with(&["a workspace named \"acme\" already exists"]);
    hc(&data, &["workspaces", "create", "  "]).fails_with(&["must not be empty"]);
    hc(
        &data,
        &["workspaces", "create", "zero", "--track-rate-limit", "0"],
    )
    .fails_with(&["at least 1"]);

    // Nothing of the failures was created.
    let table = rows(&hc(&data, &["workspaces", "list"]).ok().stdout);
    let names: Vec<&str> = table[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["acme"]);
}

// ---------------------------------------------------------------------------------
// keys

/// The row of `keys list` whose ID is `id`.
fn key_row(table: &[Vec<String>], id: &str) -> Vec<String> {
    table
        .iter()
        .find(|r| r[0] == id)
        .unwrap_or_else(|| panic!("no key {id} in {table:?}"))
        .clone()
}

#[test]
fn keys_create_list_and_revoke() {
    let tmp = TempDir::new("keys");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    create_workspace(&data, "beta", "UTC");

    // `keys create` prints the key, alone, on one line.
    let run = hc(
        &data,
        &[
            "keys",
            "create",
            "--workspace",
            "acme",
            "--name",
            "reporting",
        ],
    )
    .ok();
    let full = run.stdout.trim_end().to_string();
    assert_eq!(run.stdout, format!("{full}\n"), "exactly one line");
    assert_eq!(full.len(), 36, "{full:?}");
    for (i, c) in full.char_indices() {
        if [8, 13, 18, 23].contains(&i) {
            assert_eq!(c, '-', "{full}");
        } else {
            assert!(c.is_ascii_hexdigit(), "{full}");
        }
    }

    let limited = create_key(
        &data,
        "acme",
        "exports",
        &[
            "--permission",
            "segments.data_series",
            "--permission",
            "segments.list",
            "--permission",
            "segments.list",
            "--allow-ip",
            "10.0.0.0/8",
            "--allow-ip",
            "192.168.1.7",
        ],
    );
    let other = create_key(&data, "beta", "ingest", &["--permission", "users.track"]);
    assert_ne!(full, limited);

    let list = hc(&data, &["keys", "list"]).ok();
    let table = rows(&list.stdout);
    assert_eq!(
        table[0],
        [
            "ID",
            "WORKSPACE",
            "NAME",
            "PERMISSIONS",
            "ALLOWED_IPS",
            "STATUS"
        ]
    );
    assert_eq!(table.len(), 4, "{list:#?}");
    assert_eq!(
        key_row(&table, &full[..8]),
        [&full[..8], "acme", "reporting", "all", "any", "active"]
    );
    assert_eq!(
        key_row(&table, &limited[..8]),
        [
            &limited[..8],
            "acme",
            "exports",
            "segments.list,segments.data_series",
            "10.0.0.0/8,192.168.1.7/32",
            "active"
        ]
    );
    assert_eq!(
        key_row(&table, &other[..8]),
        [
            &other[..8],
            "beta",
            "ingest",
            "users.track",
            "any",
            "active"
        ]
    );
    // Never a secret: not even its part after the public id.
    for secret in [&full, &limited, &other] {
        assert!(!list.stdout.contains(&secret[8..]), "{list:#?}");
        assert!(!list.stderr.contains(&secret[8..]), "{list:#?}");
    }

    // --workspace filters.
    let only_beta = rows(
        &hc(&data, &["keys", "list", "--workspace", "beta"])
            .ok()
            .stdout,
    );
    assert_eq!(only_beta.len(), 2);
    assert_eq!(only_beta[1][0], other[..8]);

    // Revoke by id; a second time is an error.
    let id = &full[..8];
    let run = hc(&data, &["keys", "revoke", id]).ok();
    assert!(
        run.stderr.contains(&format!("revoked key {id}")),
        "{run:#?}"
    );
    let table = rows(&hc(&data, &["keys", "list"]).ok().stdout);
    let row = key_row(&table, id);
    assert_eq!(row[5], "revoked", "{row:?}");
    let revoked_at: Timestamp = row[6].parse().expect("the revocation instant");
    assert!(Timestamp::now().duration_since(revoked_at).as_secs() < 120);
    assert_eq!(key_row(&table, &limited[..8])[5], "active");

    hc(&data, &["keys", "revoke", id]).fails_with(&[&format!("no active key with id {id}")]);
    hc(&data, &["keys", "revoke", "ffffffff"]).fails_with(&["no active key with id ffffffff"]);
    // The whole secret names its key too.
    hc(&data, &["keys", "revoke", &other]).ok();
    let table = rows(&hc(&data, &["keys", "list"]).ok().stdout);
    assert_eq!(key_row(&table, &other[..8])[5], "revoked");
}

#[test]
fn keys_create_validates_its_options() {
    let tmp = TempDir::new("keys-errors");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let base = ["keys", "create", "--workspace", "acme", "--name", "x"];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        hc(&data, &args)
    };

    let run = with(&[
        "--permission",
        "users.track",
        "--permission",
        "segments.delete",
    ])
    .fails_with(&[
        "unknown permission \"segments.delete\"",
        "segments.list",
        "segments.details",
        "segments.data_series",
        "segments.create",
        "segments.update",
        "segments.archive",
        "users.track",
        "users.delete",
    ]);
    assert_eq!(run.stdout, "", "no key printed on failure");

    for bad in ["10.0.0.0/33", "not-an-address", "10.0.0/8", "::1/129"] {
        let run = with(&["--allow-ip", bad])
            .fails_with(&[&format!("\"{bad}\" is not an IP address or CIDR subnet")]);
        assert_eq!(run.stdout, "");
    }

    hc(
        &data,
        &["keys", "create", "--workspace", "nope", "--name", "x"],
    )
    .fails_with(&["no workspace named \"nope\"", "acme"]);

    // None of the failures stored a key.
    let table = rows(&hc(&data, &["keys", "list"]).ok().stdout);
    assert_eq!(table.len(), 1, "{table:?}");

    // IPv6 subnets are fine.
    create_key(&data, "acme", "v6", &["--allow-ip", "2001:db8::/32"]);
    let table = rows(&hc(&data, &["keys", "list"]).ok().stdout);
    assert_eq!(table[1][4], "2001:db8::/32");
}

// ---------------------------------------------------------------------------------
// the data directory's single writer

#[test]
fn serve_owns_the_directory_until_sigterm() {
    let tmp = TempDir::new("lock");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let input = tmp.write(
        "one.ndjson",
        "{\"attributes\":[{\"external_id\":\"u1\"}]}\n",
    );

    let server = Server::start(&data, tmp.path());
    let in_use = format!(
        "the data directory {} is in use by another headcount process",
        data.display()
    );
    // Administration works next to it (crates/cli/tests/admin.rs); writers are refused.
    hc(
        &data,
        &[
            "import",
            "--workspace",
            "acme",
            input.to_str().expect("UTF-8 path"),
        ],
    )
    .fails_with(&[&in_use]);
    hc(
        &data,
        &[
            "snapshot",
            "--workspace",
            "acme",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
        ],
    )
    .fails_with(&[&in_use]);
    // A second server is refused as well.
    let second = hc(&data, &["serve", "--listen", "127.0.0.1:0"]).fails_with(&[&in_use]);
    assert_eq!(second.code(), Some(1));

    let log = server.log_text();
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "serve log: {log}");

    // Free again, and nothing was changed by the refused commands.
    let table = rows(&hc(&data, &["workspaces", "list"]).ok().stdout);
    assert_eq!(table.len(), 2);
    assert_eq!(table[1][0], "acme");
    assert!(facts(&data, "acme").is_empty());
}

// ---------------------------------------------------------------------------------
// import

fn ts(text: &str) -> Timestamp {
    text.parse().expect("an instant")
}

fn alias(name: &str, label: &str) -> UserKey {
    UserKey::Alias {
        name: name.into(),
        label: label.into(),
    }
}

/// The attribute values of a fact (panics on other kinds).
fn attributes(kind: &FactKind) -> BTreeMap<String, Option<Value>> {
    match kind {
        FactKind::Attributes(values) => values.iter().cloned().collect(),
        other => panic!("not attributes: {other:?}"),
    }
}

#[test]
fn import_skips_bad_lines_whole_and_reports_them() {
    let tmp = TempDir::new("import");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");

    let mut lines: Vec<Vec<u8>> = [
        // 1: attributes with "_time"
        r#"{"attributes":[{"external_id":"u1","country":"FR","age":31,"_time":"2024-01-10T10:00:00Z"}]}"#,
        // 2: events of an external id and of an alias
        r#"{"events":[{"external_id":"u1","name":"login","time":"2024-01-11T09:00:00Z"},{"user_alias":{"alias_name":"a1","alias_label":"crm"},"name":"login","time":"2024-01-11T09:30:00Z","properties":{"k":"v"}}]}"#,
        // 3: blank
        "",
        // 4: a purchase
        r#"{"purchases":[{"external_id":"u2","product_id":"p1","currency":"EUR","price":9.5,"quantity":2,"time":"2024-01-12T00:00:00Z"}]}"#,
        // 5: not JSON
        r#"{"events": [ {"external_id": "bad0""#,
        // 6: the second event has no time: the first, and the attributes, are not applied either
        r#"{"events":[{"external_id":"bad1","name":"login","time":"2024-01-13T00:00:00Z"},{"external_id":"bad2","name":"login"}],"attributes":[{"external_id":"bad3","plan":"gold"}]}"#,
        // 7: an unknown top-level field
        r#"{"attributes":[{"external_id":"bad4","x":1}],"users":[]}"#,
        // 8: not UTF-8 (filled in below)
        "",
        // 9: attributes without "_time" take the moment of import
        r#"{"attributes":[{"external_id":"u3","plan":"free"}],"events":[{"external_id":"u3","name":"open","time":"2024-01-14T00:00:00Z"}]}"#,
        // 10: a good line after bad ones, an alias user's attributes
        r#"{"attributes":[{"user_alias":{"alias_name":"a1","alias_label":"crm"},"tier":"vip","_time":"2024-01-15T00:00:00+01:00"}]}"#,
        // 11: only spaces
        "   ",
    ]
    .iter()
    .map(|l| l.as_bytes().to_vec())
    .collect();
    lines[7] = b"{\"attributes\":[{\"external_id\":\"bad5\",\"x\":\"\xff\"}]}".to_vec();
    let path = tmp.path().join("mixed.ndjson");
    std::fs::write(&path, lines.join(&b'\n')).expect("write");
    let file = path.to_str().expect("UTF-8 path");

    let before = Timestamp::now();
    let run = hc(&data, &["import", "--workspace", "acme", file]);
    let after = Timestamp::now();
    assert_eq!(run.code(), Some(2), "{run:#?}");
    for needle in [
        format!("{file}:5: rejected: invalid JSON"),
        format!("{file}:6: rejected: events[1]: 'time' is required"),
        format!("{file}:7: rejected: unknown field \"users\""),
        format!("{file}:8: rejected: the line is not valid UTF-8"),
        "imported 5 of 9 lines: 3 attribute objects, 3 events, 1 purchase".to_string(),
        "; 4 lines rejected".to_string(),
    ] {
        assert!(run.stderr.contains(&needle), "no {needle:?} in {run:#?}");
    }
    assert_eq!(run.stderr.matches("rejected:").count(), 4, "{run:#?}");
    assert_eq!(run.stdout, "");

    let all = facts(&data, "acme");
    assert_eq!(all.len(), 7, "{all:#?}");
    let mut users: Vec<&UserKey> = all.iter().map(|(u, _)| u).collect();
    users.sort();
    users.dedup();
    assert_eq!(
        users,
        [&ext("u1"), &ext("u2"), &ext("u3"), &alias("a1", "crm")]
    );
    for bad in ["bad0", "bad1", "bad2", "bad3", "bad4", "bad5"] {
        assert!(of(&all, &ext(bad)).is_empty(), "{bad} was imported");
    }

    let u1 = of(&all, &ext("u1"));
    assert_eq!(u1.len(), 2);
    let attrs = u1
        .iter()
        .find(|f| matches!(f.kind, FactKind::Attributes(_)))
        .expect("u1's attributes");
    assert_eq!(attrs.time, ts("2024-01-10T10:00:00Z"));
    assert_eq!(
        attributes(&attrs.kind),
        BTreeMap::from([
            ("age".to_string(), Some(Value::Number(31.0))),
            ("country".to_string(), Some(Value::String("FR".into()))),
        ])
    );
    assert_eq!(event_names(&u1), ["login"]);

    let a1 = of(&all, &alias("a1", "crm"));
    assert_eq!(a1.len(), 2);
    assert_eq!(event_names(&a1), ["login"]);
    let tier = a1
        .iter()
        .find(|f| matches!(f.kind, FactKind::Attributes(_)))
        .expect("a1's attributes");
    assert_eq!(tier.time, ts("2024-01-14T23:00:00Z"));

    let u2 = of(&all, &ext("u2"));
    assert_eq!(u2.len(), 1);
    assert_eq!(u2[0].time, ts("2024-01-12T00:00:00Z"));
    assert!(
        matches!(&u2[0].kind, FactKind::Purchase { product, .. } if product == "p1"),
        "{u2:?}"
    );

    let u3 = of(&all, &ext("u3"));
    assert_eq!(u3.len(), 2);
    let plan = u3
        .iter()
        .find(|f| matches!(f.kind, FactKind::Attributes(_)))
        .expect("u3's attributes");
    assert!(
        before <= plan.time && plan.time <= after,
        "an attribute without _time takes the moment of import: {} not in {before}..{after}",
        plan.time
    );
}

#[test]
fn import_strict_stops_at_the_first_bad_line() {
    let tmp = TempDir::new("import-strict");
    let data = tmp.data();
    create_workspace(&data, "strict", "UTC");
    create_workspace(&data, "lenient", "UTC");
    let path = tmp.write(
        "strict.ndjson",
        concat!(
            r#"{"attributes":[{"external_id":"u1"}]}"#,
            "\n",
            r#"{"events":[{"external_id":"u2","name":"e","time":"2024-02-01T00:00:00Z"}]}"#,
            "\n",
            r#"{"events":[{"external_id":"u3","name":"e"}]}"#,
            "\n",
            r#"{"events":[{"external_id":"u4","name":"e","time":"2024-02-02T00:00:00Z"}]}"#,
            "\n",
            r#"{"nope":1}"#,
            "\n",
        ),
    );
    let file = path.to_str().expect("UTF-8 path");

    let run = hc(
        &data,
        &["import", "--workspace", "strict", "--strict", file],
    );
    assert_eq!(run.code(), Some(2), "{run:#?}");
    assert!(
        run.stderr.contains(&format!(
            "{file}:3: rejected: events[0]: 'time' is required"
        )),
        "{run:#?}"
    );
    assert!(
        !run.stderr.contains(":5:"),
        "it stopped at line 3: {run:#?}"
    );
    assert!(
        run.stderr
            .contains("imported 2 of 3 lines: 1 attribute object, 1 event, 0 purchases")
            && run
                .stderr
                .contains("1 line rejected (stopped at the first, --strict)"),
        "{run:#?}"
    );
    let strict = facts(&data, "strict");
    assert_eq!(strict.len(), 2, "{strict:#?}");
    assert_eq!(of(&strict, &ext("u1")).len(), 1);
    assert_eq!(of(&strict, &ext("u2")).len(), 1);
    assert!(
        of(&strict, &ext("u4")).is_empty(),
        "line 4 is after the stop"
    );

    // Without --strict the same file goes on past both bad lines.
    let run = hc(&data, &["import", "--workspace", "lenient", file]);
    assert_eq!(run.code(), Some(2), "{run:#?}");
    assert!(
        run.stderr
            .contains(&format!("{file}:5: rejected: unknown field \"nope\""))
    );
    assert!(run.stderr.contains("imported 3 of 5 lines"), "{run:#?}");
    let lenient = facts(&data, "lenient");
    assert_eq!(lenient.len(), 3);
    assert_eq!(of(&lenient, &ext("u4")).len(), 1);
}

#[test]
fn import_reads_stdin_and_several_inputs() {
    let tmp = TempDir::new("import-stdin");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let stdin = concat!(
        r#"{"events":[{"external_id":"s1","name":"a","time":"2024-03-01T00:00:00Z"},{"external_id":"s1","name":"b","time":"2024-03-01T00:00:01Z"}]}"#,
        "\n",
        r#"{"events":[{"external_id":"s2","name":"a","time":"not a time"}]}"#,
        "\n",
        r#"{"attributes":[{"external_id":"s3","_time":"2024-03-02T00:00:00Z"}]}"#,
        "\n"
    );
    let run = hc_stdin(&data, &["import", "--workspace", "acme", "-"], stdin);
    assert_eq!(run.code(), Some(2), "{run:#?}");
    assert!(
        run.stderr
            .contains("-:2: rejected: events[0]: 'time' must be an ISO-8601 datetime"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("imported 2 of 3 lines"), "{run:#?}");
    let all = facts(&data, "acme");
    assert_eq!(all.len(), 3);
    assert_eq!(event_names(&of(&all, &ext("s1"))), ["a", "b"]);
    assert!(of(&all, &ext("s2")).is_empty());
    let s3 = of(&all, &ext("s3"));
    assert_eq!(s3.len(), 1);
    assert_eq!(s3[0].time, ts("2024-03-02T00:00:00Z"));
    assert!(
        attributes(&s3[0].kind).is_empty(),
        "an empty attribute object"
    );

    // A file then stdin, line numbers per input; a clean import exits 0.
    let path = tmp.write(
        "first.ndjson",
        "{\"attributes\":[{\"external_id\":\"f1\",\"n\":1}]}\n",
    );
    let run = hc_stdin(
        &data,
        &[
            "import",
            "--workspace",
            "acme",
            path.to_str().expect("UTF-8 path"),
            "-",
        ],
        "\n{\"attributes\":[{\"external_id\":\"f2\",\"n\":2}]}",
    )
    .ok();
    assert!(
        run.stderr.contains("imported 2 of 2 lines") && run.stderr.contains("0 lines rejected"),
        "{run:#?}"
    );
    let all = facts(&data, "acme");
    assert_eq!(all.len(), 5);
    assert_eq!(of(&all, &ext("f1")).len(), 1);
    assert_eq!(of(&all, &ext("f2")).len(), 1);
}

#[test]
fn import_of_good_lines_exits_zero_without_the_75_object_limit() {
    let tmp = TempDir::new("import-big");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let events: Vec<serde_json::Value> = (0..100)
        .map(|i| json!({"external_id": "big", "name": format!("e{}", i % 3), "time": "2024-04-01T00:00:00Z"}))
        .collect();
    let attributes: Vec<serde_json::Value> = (0..80)
        .map(
            |i| json!({"external_id": format!("user{i}"), "n": i, "_time": "2024-04-01T00:00:00Z"}),
        )
        .collect();
    let purchases: Vec<serde_json::Value> = (0..76)
        .map(|_| json!({"external_id": "big", "product_id": "p", "currency": "USD", "price": 1}))
        .collect();
    let contents = format!(
        "{}\n{}\n",
        json!({"attributes": attributes, "events": events}),
        json!({"purchases": purchases, "events": [], "attributes": []}),
    );
    let path = tmp.write("big.ndjson", &contents);
    let file = path.to_str().expect("UTF-8 path");
    let run = hc(&data, &["import", "--workspace", "acme", "--json", file]).ok();
    assert!(
        run.stderr
            .contains("imported 2 of 2 lines: 80 attribute objects, 100 events, 76 purchases"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("rejected:"), "{run:#?}");
    // --json: the same summary, for scripts.
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    for (field, want) in [
        ("lines", 2),
        ("imported_lines", 2),
        ("rejected_lines", 0),
        ("attributes", 80),
        ("events", 100),
        ("purchases", 76),
    ] {
        assert_eq!(summary[field], want, "{field} in {summary}");
    }
    assert_eq!(summary["stopped"], false);
    assert!(
        summary["seconds"].as_f64().is_some_and(|s| s > 0.0),
        "{summary}"
    );
    let all = facts(&data, "acme");
    assert_eq!(all.len(), 256);
    assert_eq!(of(&all, &ext("big")).len(), 176);

    // A missing input fails before anything is imported; so does an unknown workspace.
    let missing = tmp.path().join("missing.ndjson");
    let run = hc(
        &data,
        &[
            "import",
            "--workspace",
            "acme",
            file,
            missing.to_str().expect("UTF-8 path"),
        ],
    )
    .fails_with(&[&format!("cannot open {}", missing.display())]);
    assert_eq!(run.code(), Some(1));
    hc(&data, &["import", "--workspace", "nope", file])
        .fails_with(&["no workspace named \"nope\"", "acme"]);
    assert_eq!(facts(&data, "acme").len(), 256, "nothing more was imported");
}

// ---------------------------------------------------------------------------------
// durability of /users/track

#[test]
fn every_acknowledged_track_survives_kill_9() {
    let tmp = TempDir::new("durable");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let key = create_key(
        &data,
        "acme",
        "ingest",
        &[
            "--permission",
            "users.track",
            "--permission",
            "segments.create",
            "--permission",
            "segments.data_series",
        ],
    );
    let read_only = create_key(&data, "acme", "ro", &["--permission", "segments.list"]);
    let fenced = create_key(&data, "acme", "fenced", &["--allow-ip", "10.0.0.0/8"]);

    let server = Server::start(&data, tmp.path());
    let one = json!({"attributes": [{"external_id": "x"}]});
    // Keys made by the CLI are what the server checks.
    assert_eq!(
        server.call("/users/track", &read_only, Some(&one)).status,
        403
    );
    assert_eq!(server.call("/users/track", &fenced, Some(&one)).status, 403);
    let too_many: Vec<serde_json::Value> = (0..76)
        .map(|_| json!({"external_id": "x", "name": "e", "time": "2024-01-01T00:00:00Z"}))
        .collect();
    let resp = server.call("/users/track", &key, Some(&json!({"events": too_many})));
    assert_eq!(resp.status, 400, "{resp:?}");

    const REQUESTS: usize = 200;
    const USERS: usize = 10;
    let base = ts("2024-05-01T00:00:00Z");
    for i in 0..REQUESTS {
        let user = format!("u{}", i % USERS);
        let time = |j: i64| {
            base.checked_add(jiff::SignedDuration::from_secs(i as i64 * 10 + j))
                .expect("an instant")
                .to_string()
        };
        let body = json!({
            "attributes": [{"external_id": user, "n": i}],
            "events": [
                {"external_id": user, "name": "e0", "time": time(0)},
                {"external_id": user, "name": "e1", "time": time(1)},
                {"external_id": user, "name": "e2", "time": time(2)},
            ],
        });
        let resp = server.call("/users/track", &key, Some(&body));
        assert_eq!(resp.status, 201, "request {i}: {resp:?}");
        assert_eq!(
            resp.body,
            json!({"message": "success", "attributes_processed": 1, "events_processed": 3})
        );
    }
    // The moment after the last 201.
    server.kill9();

    let all = facts(&data, "acme");
    assert_eq!(
        all.len(),
        REQUESTS * 4,
        "every acknowledged object is stored"
    );
    for u in 0..USERS {
        let user = ext(&format!("u{u}"));
        let mine = of(&all, &user);
        let mut names = event_names(&mine);
        names.dedup();
        assert_eq!(names, ["e0", "e1", "e2"]);
        assert_eq!(
            mine.iter()
                .filter(|f| matches!(f.kind, FactKind::Event { .. }))
                .count(),
            3 * REQUESTS / USERS
        );
        let mut ns: Vec<usize> = mine
            .iter()
            .filter_map(|f| match &f.kind {
                FactKind::Attributes(values) => match values.as_slice() {
                    [(name, Some(Value::Number(n)))] if name == "n" => Some(*n as usize),
                    other => panic!("unexpected attributes {other:?}"),
                },
                _ => None,
            })
            .collect();
        ns.sort_unstable();
        let expected: Vec<usize> = (0..REQUESTS).filter(|i| i % USERS == u).collect();
        assert_eq!(ns, expected, "user u{u}");
    }
    assert!(
        of(&all, &ext("x")).is_empty(),
        "the refused requests stored nothing"
    );

    // The killed server left the directory usable: a new one serves every event.
    let server = Server::start(&data, tmp.path());
    let created = server.call(
        "/segments/create",
        &key,
        Some(&json!({"name": "all e0", "filter": {"event": "e0", "op": "eq", "value": REQUESTS / USERS}})),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.body["segment_id"].as_str().expect("segment_id");
    let series = server.call(
        &format!("/segments/data_series?segment_id={id}&length=1"),
        &key,
        None,
    );
    assert_eq!(series.status, 200, "{series:?}");
    assert_eq!(series.body["data"][0]["size"], json!(USERS), "{series:?}");
    let log = server.log_text();
    assert_eq!(server.terminate().code(), Some(0), "serve log: {log}");
}

// ---------------------------------------------------------------------------------
// snapshot

fn day(text: &str) -> Day {
    text.parse().expect("a day")
}

/// The stored sizes of a segment over `from..=to`, as (day, size) text pairs.
fn stored(data: &std::path::Path, id: SegmentId, from: &str, to: &str) -> Vec<(String, u64)> {
    let store = open_store(data);
    store
        .sizes(id, day(from), day(to))
        .expect("sizes")
        .into_iter()
        .map(|s| (s.day.to_string(), s.size))
        .collect()
}

fn expect_sizes(days: &[&str], sizes: &[u64]) -> Vec<(String, u64)> {
    days.iter()
        .map(|d| d.to_string())
        .zip(sizes.iter().copied())
        .collect()
}

#[test]
fn snapshot_stores_hand_computed_daily_sizes() {
    let tmp = TempDir::new("snapshot");
    let data = tmp.data();
    create_workspace(&data, "paris", "Europe/Paris");
    create_workspace(&data, "other", "UTC");
    // Days in Paris, across the switch to summer time (2024-03-31, UTC+1 → UTC+2):
    // u1 appears at 00:30 on 03-30 (23:30Z on 03-29), FR; becomes DE at 23:59:59 on 04-02.
    // u2 logs in at 23:30 on 03-30 (22:30Z, still UTC+1).
    // u3 logs in at 00:30 on 04-01 (22:30Z on 03-31, UTC+2).
    // a1 (an alias) appears at 14:00 on 04-01, FR.
    // u4 buys at 12:00 on 04-02.
    let input = tmp.write(
        "paris.ndjson",
        concat!(
            r#"{"attributes":[{"external_id":"u1","country":"FR","_time":"2024-03-29T23:30:00Z"}]}"#,
            "\n",
            r#"{"events":[{"external_id":"u2","name":"login","time":"2024-03-30T22:30:00Z"}]}"#,
            "\n",
            r#"{"events":[{"external_id":"u3","name":"login","time":"2024-03-31T22:30:00Z"}]}"#,
            "\n",
            r#"{"attributes":[{"user_alias":{"alias_name":"a1","alias_label":"crm"},"country":"FR","_time":"2024-04-01T12:00:00Z"}]}"#,
            "\n",
            r#"{"purchases":[{"external_id":"u4","product_id":"p","currency":"EUR","price":3,"time":"2024-04-02T10:00:00Z"}]}"#,
            "\n",
            r#"{"attributes":[{"external_id":"u1","country":"DE","_time":"2024-04-02T21:59:59Z"}]}"#,
            "\n",
        ),
    );
    hc(
        &data,
        &[
            "import",
            "--workspace",
            "paris",
            input.to_str().expect("UTF-8 path"),
        ],
    )
    .ok();

    // Segments stored directly, as the server does; it loads them from the store.
    let everyone = SegmentId::new_random();
    let french = SegmentId::new_random();
    let logged_in_that_day = SegmentId::new_random();
    let archived = SegmentId::new_random();
    let foreign = SegmentId::new_random();
    {
        let store = open_store(&data);
        let ws = store.workspaces().expect("workspaces");
        let paris = ws.iter().find(|w| w.name == "paris").expect("paris").id;
        let other = ws.iter().find(|w| w.name == "other").expect("other").id;
        let at = Timestamp::now();
        let segment = |id, workspace, name: &str, filter, archived_at| Segment {
            id,
            workspace,
            name: name.into(),
            filter,
            text_description: String::new(),
            tags: vec![],
            teams: vec![],
            analytics_tracking_enabled: false,
            created_at: at,
            updated_at: at,
            archived_at,
        };
        for s in [
            segment(everyone, paris, "everyone", json!({"all": []}), None),
            segment(
                french,
                paris,
                "french",
                json!({"attribute": "country", "op": "eq", "value": "FR"}),
                None,
            ),
            segment(
                logged_in_that_day,
                paris,
                "logged in that day",
                json!({"event": "login", "op": "gte", "value": 1, "within_days": 1}),
                None,
            ),
            segment(archived, paris, "archived", json!({"all": []}), Some(at)),
            segment(foreign, other, "foreign", json!({"all": []}), None),
        ] {
            store.insert_segment(&s).expect("insert segment");
        }
    }

    let snapshot = |extra: &[&str]| {
        let mut args = vec!["snapshot", "--workspace", "paris"];
        args.extend_from_slice(extra);
        hc(&data, &args)
    };
    let run = snapshot(&["--from", "2024-03-29", "--to", "2024-04-02"]).ok();
    assert!(
        run.stderr
            .contains("computed 15 daily sizes (3 segments x 5 days, 0 already stored)"),
        "{run:#?}"
    );
    let days = [
        "2024-03-29",
        "2024-03-30",
        "2024-03-31",
        "2024-04-01",
        "2024-04-02",
    ];
    let (from, to) = ("2024-03-01", "2024-04-30");
    assert_eq!(
        stored(&data, everyone, from, to),
        expect_sizes(&days, &[0, 2, 2, 4, 5])
    );
    assert_eq!(
        stored(&data, french, from, to),
        expect_sizes(&days, &[0, 1, 1, 2, 1])
    );
    assert_eq!(
        stored(&data, logged_in_that_day, from, to),
        expect_sizes(&days, &[0, 1, 0, 1, 0])
    );
    assert!(
        stored(&data, archived, from, to).is_empty(),
        "archived: skipped"
    );
    assert!(
        stored(&data, foreign, from, to).is_empty(),
        "another workspace's"
    );

    // Days already stored are kept; only new ones are computed.
    let run = snapshot(&["--from", "2024-03-28", "--to", "2024-04-03"]).ok();
    assert!(
        run.stderr
            .contains("computed 6 daily sizes (3 segments x 7 days, 15 already stored)"),
        "{run:#?}"
    );
    assert_eq!(
        stored(&data, everyone, "2024-03-28", "2024-04-03"),
        expect_sizes(
            &[
                "2024-03-28",
                "2024-03-29",
                "2024-03-30",
                "2024-03-31",
                "2024-04-01",
                "2024-04-02",
                "2024-04-03"
            ],
            &[0, 0, 2, 2, 4, 5, 5]
        )
    );

    // A stored size is not recomputed unless asked for.
    let long_ago = ts("2001-01-01T00:00:00Z");
    {
        let store = open_store(&data);
        store
            .put_sizes(french, &[(day("2024-04-01"), 999)], long_ago)
            .expect("put_sizes");
    }
    let one_day = ["--from", "2024-04-01", "--to", "2024-04-01"];
    let french_id = french.to_string();
    let mut args = vec!["--segment", french_id.as_str()];
    args.extend_from_slice(&one_day);
    let run = snapshot(&args).ok();
    assert!(
        run.stderr
            .contains("computed 0 daily sizes (1 segment x 1 day, 1 already stored)"),
        "{run:#?}"
    );
    assert_eq!(
        stored(&data, french, "2024-04-01", "2024-04-01"),
        [("2024-04-01".to_string(), 999)]
    );
    args.push("--recompute");
    let run = snapshot(&args).ok();
    assert!(
        run.stderr
            .contains("computed 1 daily size (1 segment x 1 day, 0 already stored)"),
        "{run:#?}"
    );
    {
        let store = open_store(&data);
        let sizes = store
            .sizes(french, day("2024-04-01"), day("2024-04-01"))
            .expect("sizes");
        assert_eq!(sizes.len(), 1);
        assert_eq!(sizes[0].size, 2);
        assert!(sizes[0].computed_at > long_ago);
    }
    // --segment repeats (a segment named twice is computed once).
    let everyone_id = everyone.to_string();
    let mut args = vec!["--segment", &everyone_id, "--segment", &french_id];
    args.extend_from_slice(&["--segment", &everyone_id, "--recompute"]);
    args.extend_from_slice(&one_day);
    let run = snapshot(&args).ok();
    assert!(
        run.stderr
            .contains("computed 2 daily sizes (2 segments x 1 day, 0 already stored)"),
        "{run:#?}"
    );
    let run = snapshot(&["--from", "2024-03-29", "--to", "2024-04-02", "--recompute"]).ok();
    assert!(run.stderr.contains("computed 15 daily sizes"), "{run:#?}");
    assert_eq!(
        stored(&data, french, "2024-03-29", "2024-04-02"),
        expect_sizes(&days, &[0, 1, 1, 2, 1])
    );

    // Errors: a day that has not ended, an unknown segment, bad dates.
    let tz = TimeZone::get("Europe/Paris").expect("Europe/Paris");
    let today = Day::containing(Timestamp::now(), &tz);
    for last in [today, today.add_days(1), day("2999-12-31")] {
        let last = last.to_string();
        snapshot(&["--from", "2024-03-29", "--to", &last]).fails_with(&[
            &format!("--to {last} has not ended yet in Europe/Paris"),
            "the last completed day is",
        ]);
    }
    let unknown = SegmentId::new_random().to_string();
    snapshot(&[
        "--segment",
        &unknown,
        "--from",
        "2024-03-29",
        "--to",
        "2024-03-30",
    ])
    .fails_with(&[&format!("no segment {unknown} in workspace paris")]);
    let foreign_id = foreign.to_string();
    snapshot(&[
        "--segment",
        &foreign_id,
        "--from",
        "2024-03-29",
        "--to",
        "2024-03-30",
    ])
    .fails_with(&[&format!("no segment {foreign_id} in workspace paris")]);
    snapshot(&[
        "--segment",
        "seg-1",
        "--from",
        "2024-03-29",
        "--to",
        "2024-03-30",
    ])
    .fails_with(&["--segment must be a segment id (a UUID), got \"seg-1\""]);
    snapshot(&["--from", "2024-04-02", "--to", "2024-03-29"])
        .fails_with(&["--from 2024-04-02 is after --to 2024-03-29"]);
    snapshot(&["--from", "yesterday", "--to", "2024-03-29"])
        .fails_with(&["--from must be a date YYYY-MM-DD, got \"yesterday\""]);
    hc(
        &data,
        &[
            "snapshot",
            "--workspace",
            "nope",
            "--from",
            "2024-03-29",
            "--to",
            "2024-03-30",
        ],
    )
    .fails_with(&["no workspace named \"nope\""]);
    assert!(stored(&data, foreign, from, to).is_empty());

    // The server serves the stored sizes.
    let key = create_key(&data, "paris", "exports", &[]);
    let server = Server::start(&data, tmp.path());
    let series = server.call(
        &format!("/segments/data_series?segment_id={everyone}&length=5&ending_at=2024-04-03"),
        &key,
        None,
    );
    assert_eq!(series.status, 200, "{series:?}");
    let points: Vec<(String, u64)> = series.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| {
            (
                p["time"].as_str().expect("time").to_string(),
                p["size"].as_u64().expect("size"),
            )
        })
        .collect();
    assert_eq!(points, expect_sizes(&days, &[0, 2, 2, 4, 5]));
    assert_eq!(server.terminate().code(), Some(0));
}
