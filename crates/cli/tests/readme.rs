//! README.md's walk-through, run verbatim with bash against the binary just built, on
//! a free port instead of 8080 and in a temporary directory: every output it shows
//! (the `# …` lines right after a command) must be what the commands print, with
//! `<today>`, `<yesterday>` and `<2 days ago>` standing for those dates in the
//! walk-through's time zone.

#[allow(dead_code)]
mod common;

use common::{BIN, TempDir};
use jiff::ToSpan;
use jiff::tz::TimeZone;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// The comment that marks the tested block in README.md.
const MARKER: &str = "<!-- The block below is run verbatim by crates/cli/tests/readme.rs";
/// The walk-through's workspace time zone, in which its dates are read.
const TIME_ZONE: &str = "Europe/Paris";

/// The `sh` block that follows the marker.
fn walkthrough(readme: &str) -> String {
    let after = &readme[readme.find(MARKER).expect("README.md has the marker")..];
    let start = after.find("```sh\n").expect("a sh block after the marker") + "```sh\n".len();
    let end = after[start..].find("```").expect("the block ends");
    after[start..start + end].to_string()
}

/// The outputs the block shows: each `# ` line that directly follows a command line or
/// another output line (a comment after a blank line is prose).
fn shown_outputs(block: &str) -> Vec<String> {
    let mut outputs = Vec::new();
    let mut previous_is_code_or_output = false;
    for line in block.lines() {
        let trimmed = line.trim_start();
        if let Some(output) = line.strip_prefix("# ") {
            if previous_is_code_or_output {
                outputs.push(output.to_string());
                continue;
            }
            previous_is_code_or_output = false;
        } else {
            previous_is_code_or_output = !trimmed.is_empty() && !trimmed.starts_with('#');
        }
    }
    outputs
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Today, yesterday and the day before in the walk-through's time zone.
fn dates() -> [String; 3] {
    let today = jiff::Timestamp::now()
        .to_zoned(TimeZone::get(TIME_ZONE).expect("a known zone"))
        .date();
    let back = |n: i64| today.checked_sub(n.days()).expect("a date").to_string();
    [back(0), back(1), back(2)]
}

#[test]
fn the_walkthrough_block_is_found_and_shows_outputs() {
    let readme = include_str!("../../../README.md");
    let block = walkthrough(readme);
    assert!(
        block.starts_with("headcount workspaces create acme"),
        "{block}"
    );
    let outputs = shown_outputs(&block);
    assert_eq!(outputs.len(), 4, "{outputs:#?}");
    assert!(outputs[0].starts_with("{\"message\":\"success\""));
    // Prose comments are not outputs.
    assert!(!outputs.iter().any(|o| o.starts_with("Users and events")));
}

#[test]
fn readme_walkthrough_runs_verbatim_and_prints_what_it_shows() {
    let readme = include_str!("../../../README.md");
    let port = free_port();
    let script = walkthrough(readme).replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let tmp = TempDir::new("readme");
    let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let before = dates();
    // `timeout` ends the whole process group (the background server too) if it hangs.
    let output = Command::new("timeout")
        .args(["-k", "5", "120", "bash", "-c", &script])
        .current_dir(tmp.path())
        .env("PATH", path)
        .env_remove("HEADCOUNT_DATA_DIR")
        .env("HEADCOUNT_LOG", "warn")
        .output()
        .expect("run bash");
    let after = dates();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the walk-through failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert_eq!(
        before, after,
        "midnight passed during the run: run it again"
    );
    let [today, yesterday, two_days_ago] = before;
    let expected: String = shown_outputs(&walkthrough(readme))
        .iter()
        .map(|line| {
            line.replace("<today>", &today)
                .replace("<yesterday>", &yesterday)
                .replace("<2 days ago>", &two_days_ago)
                + "\n"
        })
        .collect();
    assert_eq!(stdout, expected, "stderr:\n{stderr}");
    // The walk-through's data went to ./headcount-data, as the README says.
    assert!(tmp.path().join("headcount-data/headcount.db").is_file());
}
