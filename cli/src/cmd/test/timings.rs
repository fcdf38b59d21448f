//! How long each test took last time, so that the next run starts the
//! longest tests first and the run does not end waiting on one slow test
//! started last.
//!
//! One small JSON file per binary, `{"test name": seconds, ...}`, at
//! `$XDG_CACHE_HOME/grid/test-times/<binary file name>.json` (else under
//! `~/.cache`). It is only a hint: a file that is missing, unreadable or
//! not this shape is an empty record, and a failure to write one is
//! ignored; neither ever fails a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Test name -> seconds, for one binary.
pub type Times = BTreeMap<String, f64>;

/// The record's path for the binary at `binary`, when there is a cache
/// directory to put it in.
pub fn path(binary: &Path) -> Option<PathBuf> {
    let name = binary.file_name()?.to_string_lossy();
    Some(
        grid_host::cache_home()?
            .join("test-times")
            .join(format!("{name}.json")),
    )
}

/// The record at `path`; empty when there is none or it cannot be read.
pub fn read(path: Option<&Path>) -> Times {
    path.and_then(|p| std::fs::read(p).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Writes `times` over the record at `path`, keeping the tests of the old
/// record that this run did not time. Errors are ignored (see above).
pub fn update(path: Option<&Path>, times: impl IntoIterator<Item = (String, Duration)>) {
    let Some(path) = path else { return };
    let mut record = read(Some(path));
    record.extend(times.into_iter().map(|(name, d)| (name, d.as_secs_f64())));
    let Ok(text) = serde_json::to_vec(&record) else {
        return;
    };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // Written aside and renamed, so a concurrent run never reads half a file.
    let aside = path.with_extension(format!("json.{}", std::process::id()));
    if std::fs::write(&aside, text).is_ok() && std::fs::rename(&aside, path).is_err() {
        let _ = std::fs::remove_file(&aside);
    }
}

/// `items` reordered longest first by their recorded seconds (`seconds`);
/// items with no record come first, as they may be long; ties keep their
/// order.
pub fn longest_first<T>(items: &mut [T], seconds: impl Fn(&T) -> Option<f64>) {
    let key = |item: &T| seconds(item).unwrap_or(f64::INFINITY);
    items.sort_by(|a, b| key(b).total_cmp(&key(a)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_first_with_unknown_ones_before_all() {
        let times: Times = [("a".to_string(), 0.5), ("b".to_string(), 2.0)].into();
        let mut names = vec!["a", "b", "new", "c_new"];
        longest_first(&mut names, |n| times.get(*n).copied());
        assert_eq!(names, ["new", "c_new", "b", "a"]);
    }

    #[test]
    fn a_record_is_merged_and_a_bad_one_is_empty() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub/x.wasm.json");
        assert!(read(Some(&path)).is_empty());
        update(Some(&path), [("a".to_string(), Duration::from_secs(2))]);
        update(Some(&path), [("b".to_string(), Duration::from_millis(500))]);
        let record = read(Some(&path));
        assert_eq!(record.get("a"), Some(&2.0));
        assert_eq!(record.get("b"), Some(&0.5));
        std::fs::write(&path, "not json").expect("write");
        assert!(read(Some(&path)).is_empty());
        update(None, [("a".to_string(), Duration::ZERO)]);
    }

    #[test]
    fn the_record_is_named_after_the_binary() {
        let p = path(Path::new("/x/target/deps/suite-abc.wasm"));
        if let Some(p) = p {
            assert!(p.ends_with("grid/test-times/suite-abc.wasm.json"), "{p:?}");
        }
    }
}
