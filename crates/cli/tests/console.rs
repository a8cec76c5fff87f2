//! The console in a real browser: `headcount demo` data served by a real `headcount
//! serve`, driven through Debian's headless Chromium by `tests/browser/console.mjs`
//! (playwright-core). Missing Chromium or node modules fail the test with how to
//! install them; nothing is skipped.
//!
//! Screenshots go to a temporary directory, or to `HEADCOUNT_CONSOLE_SCREENSHOTS`
//! when set (`docs/console` keeps the README's).

#[allow(dead_code)]
mod common;

use common::{Server, TempDir, create_key, create_workspace, hc};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository's root")
}

fn chromium() -> PathBuf {
    let path = PathBuf::from(
        std::env::var("HEADCOUNT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    assert!(
        path.exists(),
        "{} is missing: install Debian's Chromium with `apt-get install -y chromium chromium-driver` \
         (or point HEADCOUNT_CHROMIUM at a Chromium)",
        path.display()
    );
    path
}

fn node_modules(root: &Path) {
    let module = root.join("tests/browser/node_modules/playwright-core/package.json");
    assert!(
        module.exists(),
        "tests/browser/node_modules is missing: run `npm ci --prefix tests/browser` (needs node and npm)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing: install it with `apt-get install -y nodejs npm`"
    );
}

#[test]
fn console_works_in_headless_chromium_on_the_demo_data() {
    let root = repo_root();
    let chromium = chromium();
    node_modules(&root);
    let tmp = TempDir::new("console");
    let data = tmp.data();
    // The data of the demo; its served run's printed console address and key are
    // checked by first_hour.rs.
    hc(&data, &["demo", "--users", "2000", "--no-serve"]).ok();
    let key = create_key(&data, "demo", "console", &[]);
    let reader = create_key(&data, "demo", "reader", &["--permission", "segments.list"]);
    create_workspace(&data, "other", "UTC");
    let other = create_key(&data, "other", "other", &[]);

    let server = Server::start(&data, tmp.path());
    let shots = std::env::var("HEADCOUNT_CONSOLE_SCREENSHOTS")
        .map(|dir| root.join(dir))
        .unwrap_or_else(|_| tmp.path().join("screenshots"));
    let run = Command::new("node")
        .arg(root.join("tests/browser/console.mjs"))
        .args([&server.base, &key, &reader, &other])
        .arg(&shots)
        .env("HEADCOUNT_CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success() && stdout.contains("console: all checks passed"),
        "the browser run failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        run.status,
        server.log_text()
    );
    for expected in [
        "the chart's point of",
        "the API's error is shown at the filter",
        "the preview's size today is the API's",
        "archiving without a token is refused (403)",
        "another workspace's segment is not found (404)",
        "a segment's page needs segments.details (403)",
    ] {
        assert!(
            stdout.contains(expected),
            "no check {expected:?} in:\n{stdout}"
        );
    }
    for shot in [
        "sign-in.png",
        "segments.png",
        "segment.png",
        "new-error.png",
        "new-preview.png",
        "archive.png",
    ] {
        assert!(shots.join(shot).exists(), "no screenshot {shot}");
    }
}
