//! Replays every input the fuzzers found and that was kept (`fuzz/regressions/<target>/`)
//! through the same checks as the fuzz targets, so a fixed crash stays fixed. Seeds
//! written by hand live there too: the test fails if a folder is empty.

#[path = "../../../fuzz/src/checks.rs"]
mod checks;

use std::path::Path;

#[test]
fn every_kept_fuzz_input_passes_its_target_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    for (target, check) in checks::TARGETS {
        let dir = root.join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no kept inputs in {}", dir.display());
        for path in inputs {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{target}: {} fails its check",
                path.display()
            );
        }
    }
}

#[test]
fn a_real_checkpoint_passes_the_checkpoint_check() {
    let bytes = checks::small_checkpoint();
    assert!(bytes.len() > 100, "the small index writes a checkpoint");
    checks::checkpoint_decode(&bytes);
    // Every truncation of it is refused without a panic.
    for len in (0..bytes.len()).step_by(7) {
        checks::checkpoint_decode(&bytes[..len]);
    }
}
