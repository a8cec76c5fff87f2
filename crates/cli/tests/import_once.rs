//! `headcount import` exactly once: the same content is refused (unless
//! `--allow-duplicate`), and an import stopped half-way (by `--strict`, or killed) is
//! finished by running the same command again, each line's facts landing once.

#[allow(dead_code)]
mod common;

use common::{TempDir, command, create_workspace, facts, hc, hc_stdin, wait_timeout};
use headcount_model::{Fact, FactKind, UserKey};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How many times each event name was stored.
fn name_counts(all: &[(UserKey, Fact)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, fact) in all {
        if let FactKind::Event { name, .. } = &fact.kind {
            *counts.entry(name.clone()).or_insert(0) += 1;
        }
    }
    counts
}

/// A line with one event named `e{n}`.
fn line(n: u64) -> String {
    format!(
        "{{\"events\":[{{\"external_id\":\"u{}\",\"name\":\"e{n}\",\"time\":\"2024-01-01T00:00:00Z\"}}]}}\n",
        n % 97
    )
}

fn lines(range: std::ops::RangeInclusive<u64>) -> String {
    range.map(line).collect()
}

/// Every name of `range` exactly once.
fn once(range: std::ops::RangeInclusive<u64>) -> BTreeMap<String, usize> {
    range.map(|n| (format!("e{n}"), 1)).collect()
}

#[test]
fn the_same_content_again_is_refused_with_the_date_unless_allowed() {
    let tmp = TempDir::new("import-twice");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    create_workspace(&data, "other", "UTC");
    let path = tmp.write("a.ndjson", &lines(1..=5));
    let file = path.to_str().expect("UTF-8 path");
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();

    hc(&data, &["import", "--workspace", "acme", file]).ok();
    let again = hc(&data, &["import", "--workspace", "acme", file]);
    assert_eq!(again.code(), Some(2), "{again:#?}");
    assert!(
        again
            .stderr
            .contains(&format!("{file}: not imported: the same content (SHA-256 "))
            && again
                .stderr
                .contains(&format!("was imported into workspace \"acme\" at {today}T"))
            && again.stderr.contains("--allow-duplicate"),
        "{again:#?}"
    );
    assert_eq!(name_counts(&facts(&data, "acme")), once(1..=5));

    // The same content under another name is the same content.
    let copy = tmp.write("copy.ndjson", &lines(1..=5));
    let copy = copy.to_str().expect("UTF-8 path");
    let run = hc(&data, &["import", "--workspace", "acme", "--json", copy]);
    assert_eq!(run.code(), Some(2), "{run:#?}");
    assert!(run.stderr.contains(&format!("(as {file})")), "{run:#?}");
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!(summary["refused_inputs"], 1);
    assert_eq!(summary["lines"], 0);
    assert_eq!(name_counts(&facts(&data, "acme")), once(1..=5));

    // Another workspace has its own memory.
    hc(&data, &["import", "--workspace", "other", file]).ok();
    assert_eq!(name_counts(&facts(&data, "other")), once(1..=5));

    // --allow-duplicate imports it anyway.
    hc(
        &data,
        &["import", "--workspace", "acme", "--allow-duplicate", file],
    )
    .ok();
    let twice: BTreeMap<String, usize> = (1..=5).map(|n| (format!("e{n}"), 2)).collect();
    assert_eq!(name_counts(&facts(&data, "acme")), twice);

    // Several files: each is its own unit; the new one is imported, the old refused,
    // and a file given twice is imported once.
    let new = tmp.write("b.ndjson", &lines(6..=8));
    let new = new.to_str().expect("UTF-8 path");
    let run = hc(&data, &["import", "--workspace", "acme", file, new, new]);
    assert_eq!(run.code(), Some(2), "{run:#?}");
    assert!(
        run.stderr.contains(&format!(
            "{new}: not imported: the same content as {new}, given earlier in this command"
        )),
        "{run:#?}"
    );
    assert!(run.stderr.contains("imported 3 of 3 lines"), "{run:#?}");
    let counts = name_counts(&facts(&data, "acme"));
    assert_eq!(counts.get("e6"), Some(&1));
    assert_eq!(counts.get("e1"), Some(&2));
}

#[test]
fn stdin_is_recorded_when_finished_and_a_file_of_the_same_content_is_refused() {
    let tmp = TempDir::new("import-stdin-once");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let content = lines(1..=3);
    hc_stdin(&data, &["import", "--workspace", "acme", "-"], &content).ok();
    let path = tmp.write("same.ndjson", &content);
    let run = hc(
        &data,
        &[
            "import",
            "--workspace",
            "acme",
            path.to_str().expect("UTF-8 path"),
        ],
    );
    assert_eq!(run.code(), Some(2), "{run:#?}");
    assert!(run.stderr.contains("(as -)"), "{run:#?}");
    assert_eq!(name_counts(&facts(&data, "acme")), once(1..=3));
}

#[test]
fn an_import_stopped_by_strict_is_finished_by_running_it_again() {
    let tmp = TempDir::new("import-resume-strict");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    let mut content = lines(1..=4);
    content.push_str("{\"events\":[{\"external_id\":\"bad\",\"name\":\"no time\"}]}\n");
    content.push_str(&lines(6..=9));
    let path = tmp.write("strict.ndjson", &content);
    let file = path.to_str().expect("UTF-8 path");
    let strict = ["import", "--workspace", "acme", "--strict", file];

    let run = hc(&data, &strict);
    assert_eq!(run.code(), Some(2), "{run:#?}");
    assert!(
        run.stderr.contains(&format!("{file}:5: rejected")),
        "{run:#?}"
    );
    assert_eq!(name_counts(&facts(&data, "acme")), once(1..=4));

    // The same command again: the 4 committed lines are skipped, and it stops at the
    // same line again.
    let run = hc(&data, &strict);
    assert_eq!(run.code(), Some(2), "{run:#?}");
    assert!(
        run.stderr
            .contains("skipping its first 4 lines, already committed"),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains(&format!("{file}:5: rejected")),
        "{run:#?}"
    );
    assert!(run.stderr.contains("imported 0 of 1 line:"), "{run:#?}");
    assert_eq!(name_counts(&facts(&data, "acme")), once(1..=4));

    // Without --strict it goes on past the bad line and finishes.
    let run = hc(&data, &["import", "--workspace", "acme", "--json", file]);
    assert_eq!(
        run.code(),
        Some(2),
        "the bad line is still rejected: {run:#?}"
    );
    assert!(
        run.stderr
            .contains("skipping its first 4 lines, already committed")
            && run.stderr.contains("imported 4 of 5 lines"),
        "{run:#?}"
    );
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!(summary["skipped_lines"], 4);
    let mut want = once(1..=4);
    want.extend(once(6..=9));
    assert_eq!(name_counts(&facts(&data, "acme")), want);

    // Finished: now it is a duplicate.
    let run = hc(&data, &["import", "--workspace", "acme", file]);
    assert_eq!(run.code(), Some(2), "{run:#?}");
    assert!(run.stderr.contains("not imported"), "{run:#?}");
    assert_eq!(name_counts(&facts(&data, "acme")), want);

    // A file edited after --strict stopped it has other content: imported whole, with
    // a note about the unfinished import of the same name.
    let edited = tmp.write(
        "edited.ndjson",
        &(lines(20..=21) + "{\"nope\":1}\n" + &lines(22..=23)),
    );
    let edited = edited.to_str().expect("UTF-8 path");
    let run = hc(
        &data,
        &["import", "--workspace", "acme", "--strict", edited],
    );
    assert_eq!(run.code(), Some(2), "{run:#?}");
    std::fs::write(edited, lines(20..=23)).expect("fix the file");
    let run = hc(&data, &["import", "--workspace", "acme", edited]).ok();
    assert!(
        run.stderr.contains(&format!(
            "{edited}: note: an unfinished import of {edited} with other content committed its first 2 lines"
        )),
        "{run:#?}"
    );
    let counts = name_counts(&facts(&data, "acme"));
    assert_eq!((counts.get("e20"), counts.get("e23")), (Some(&2), Some(&1)));
}

#[test]
fn an_import_killed_half_way_is_finished_by_running_it_again() {
    let tmp = TempDir::new("import-resume-kill");
    let data = tmp.data();
    create_workspace(&data, "acme", "UTC");
    const LINES: u64 = 300_000;
    let path = tmp.write("big.ndjson", &lines(1..=LINES));
    let file = path.to_str().expect("UTF-8 path");
    // Small commits, so that the kill lands between two of them.
    let args = [
        "import",
        "--workspace",
        "acme",
        "--commit-facts",
        "5000",
        file,
    ];
    let mut child = command(&data)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the import");
    // Wait until some commits are in the write-ahead log, then SIGKILL.
    let wal = data.join("headcount.db-wal");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if size > 1 << 20 {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the import ended ({status}) before it could be killed: make the file bigger");
        }
        assert!(Instant::now() < deadline, "no commit within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    let status = wait_timeout(&mut child, Duration::from_secs(10)).expect("killed");
    assert_eq!(status.code(), None, "killed by a signal, not finished");
    let landed = name_counts(&facts(&data, "acme"));
    assert!(
        !landed.is_empty() && (landed.len() as u64) < LINES,
        "killed half-way: {} lines landed",
        landed.len()
    );
    assert!(landed.values().all(|n| *n == 1));

    let run = hc(&data, &args).ok();
    let skipped = format!(
        "skipping its first {} lines, already committed",
        landed.len()
    );
    assert!(run.stderr.contains(&skipped), "{skipped:?} in {run:#?}");
    assert!(
        run.stderr.contains(&format!(
            "imported {0} of {0} lines",
            LINES - landed.len() as u64
        )),
        "{run:#?}"
    );
    assert_eq!(name_counts(&facts(&data, "acme")), once(1..=LINES));
}
