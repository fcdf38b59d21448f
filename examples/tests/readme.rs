//! The README's Rust code is this crate's `readme` example, word for word,
//! and it runs: so what a reader copies from the README works.
//!
//! `cargo test` builds a package's examples before running its tests, so
//! the example's binary is found beside this test's, in `examples/`.

use std::path::PathBuf;
use std::process::Command;

/// The code between the "ten lines" heading's ```rust fence and its end.
fn readme_block() -> String {
    let root = grid_examples::repo_root();
    let text = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let section = text
        .split("## The client library in ten lines")
        .nth(1)
        .expect("the README has its client section");
    section
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n").next())
        .expect("a rust block in the section")
        .to_string()
}

/// `target/<profile>/examples/readme`, built by `cargo test`.
fn example_binary() -> PathBuf {
    let me = std::env::current_exe().expect("the test's own path");
    let profile_dir = me
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    profile_dir.join("examples").join("readme")
}

#[test]
fn the_readme_shows_the_example_and_it_runs() {
    let example = include_str!("../examples/readme.rs");
    let code = example
        .split_once("\n\n")
        .map(|(_docs, code)| code)
        .expect("module docs, then the code");
    assert_eq!(
        readme_block(),
        code,
        "README.md's client block and examples/examples/readme.rs differ: keep them the same"
    );
    let binary = example_binary();
    // The example's paths are relative to the repository root, as in the README.
    let output = Command::new(&binary)
        .current_dir(grid_examples::repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    assert!(
        output.status.success(),
        "the README's code failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("49 on engine Some(EngineId(0))"),
        "{stdout}"
    );
}
