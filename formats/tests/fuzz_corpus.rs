//! Replays the committed fuzz corpus (`formats/fuzz/corpus/<target>/`) and every input that
//! once broke a target (`formats/fuzz/regressions/<target>/`) through the fuzz targets'
//! own code, as a plain test on the stable toolchain: the invariants the fuzzer checks
//! (no panic, bounded memory, any chunking and the seek path give the same answer) hold for
//! every input found so far. `scripts/fuzz` runs the fuzzer itself.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

/// Runs every file of `dir/<target>/` through its target; returns how many ran.
fn replay(dir: &Path) -> usize {
    let mut ran = 0;
    for (name, target) in harness::TARGETS {
        let Ok(entries) = std::fs::read_dir(dir.join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let input = std::fs::read(&path).expect("read corpus file");
            let outcome = std::panic::catch_unwind(|| target(&input));
            assert!(outcome.is_ok(), "{name}: {} breaks it", path.display());
            ran += 1;
        }
    }
    ran
}

#[test]
fn fuzz_corpus_keeps_every_invariant() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = replay(&root.join("corpus"));
    assert!(
        corpus >= harness::TARGETS.len(),
        "the corpus is committed ({corpus} inputs)"
    );
    replay(&root.join("regressions"));
}
