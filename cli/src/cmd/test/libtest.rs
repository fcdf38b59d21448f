//! libtest's own command line and output, as `grid test` speaks them: how a
//! test binary lists its tests, which of them a run selects, the arguments
//! that run one test alone, and what libtest said about that test.
//!
//! `grid test` never links against libtest: it talks to a test binary
//! through argv and stdout, as cargo does. Listing is `--list --format
//! terse` (every test, one `NAME: test` line each) and the same with
//! `--ignored` (only the `#[ignore]`d ones). Selection follows libtest's
//! flags (substring filters, `--exact`, `--skip`, `--ignored`,
//! `--include-ignored`). A test runs as `--exact NAME --nocapture`, and
//! libtest's lines tell what happened: its `test result:` counts say
//! passed, failed or ignored, its `test NAME ... ` line carries an ignore
//! reason, and `test NAME - should panic ... ` marks a `#[should_panic]`
//! test. Everything here is pure text handling: no I/O, no panics on odd
//! output (a line that does not parse is simply not there).

use grid_client::Frame;

/// One test a binary lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// `#[ignore]`d: listed by `--list --ignored`.
    pub ignored: bool,
}

/// libtest's arguments to list the tests: every one, or only the ignored.
pub fn list_args(ignored: bool) -> Vec<String> {
    let mut args = vec!["--list".to_string(), "--format".into(), "terse".into()];
    if ignored {
        args.push("--ignored".into());
    }
    args
}

/// The test names of a `--list --format terse` output (`NAME: test` lines;
/// benchmarks and anything else are left out).
pub fn parse_list(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_string)
        .collect()
}

/// Every test of `all` (a full listing's names, in its order), marked
/// ignored when `ignored` (the `--ignored` listing's names) has it too.
pub fn listing(all: Vec<String>, ignored: &[String]) -> Vec<Listed> {
    let ignored: std::collections::HashSet<&str> = ignored.iter().map(String::as_str).collect();
    all.into_iter()
        .map(|name| Listed {
            ignored: ignored.contains(name.as_str()),
            name,
        })
        .collect()
}

/// libtest's selection flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// A test is selected when any filter matches (all are, without filters).
    pub filters: Vec<String>,
    /// Filters and skips match whole names, not substrings.
    pub exact: bool,
    /// A test that any of these matches is not selected.
    pub skip: Vec<String>,
    /// Run only the ignored tests.
    pub ignored: bool,
    /// Run the ignored tests too.
    pub include_ignored: bool,
}

/// A selected test and whether its body is to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub name: String,
    pub ignored: bool,
    /// `false` for an ignored test that this run does not run: it is
    /// reported ignored (libtest is still asked, for its reason).
    pub run: bool,
}

/// What a run does with a binary's tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The selected tests, in listing order.
    pub tests: Vec<Planned>,
    /// Listed but not selected.
    pub filtered_out: usize,
}

impl Selection {
    /// The tests of `listed` this selection keeps, as libtest keeps them.
    pub fn plan(&self, listed: &[Listed]) -> Plan {
        let tests: Vec<Planned> = listed
            .iter()
            .filter(|t| self.filters.is_empty() || self.filters.iter().any(|f| self.hit(t, f)))
            .filter(|t| !self.skip.iter().any(|s| self.hit(t, s)))
            .filter(|t| !self.ignored || t.ignored)
            .map(|t| Planned {
                name: t.name.clone(),
                ignored: t.ignored,
                run: !t.ignored || self.ignored || self.include_ignored,
            })
            .collect();
        Plan {
            filtered_out: listed.len() - tests.len(),
            tests,
        }
    }

    fn hit(&self, test: &Listed, pattern: &str) -> bool {
        if self.exact {
            test.name == pattern
        } else {
            test.name.contains(pattern)
        }
    }

    /// These flags as libtest's arguments (for a listing passed through).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.exact {
            args.push("--exact".to_string());
        }
        for skip in &self.skip {
            args.extend(["--skip".to_string(), skip.clone()]);
        }
        if self.ignored {
            args.push("--ignored".into());
        }
        if self.include_ignored {
            args.push("--include-ignored".into());
        }
        args.extend(self.filters.iter().cloned());
        args
    }
}

/// libtest's arguments to run `test` alone, its output uncaptured (so that
/// what it printed before an abort is not lost with libtest's buffer).
/// An ignored test that is to run gets `--include-ignored`.
pub fn run_args(test: &Planned) -> Vec<String> {
    let mut args = vec![
        "--exact".to_string(),
        test.name.clone(),
        "--nocapture".into(),
    ];
    if test.ignored && test.run {
        args.push("--include-ignored".into());
    }
    args
}

/// What libtest reported about the one test it was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Failed,
    Ignored {
        /// The text after `ignored, ` (from `#[ignore = "..."]`).
        reason: Option<String>,
        /// libtest marked it `- should panic`: on wasm it never runs those.
        should_panic: bool,
    },
    /// No `test result:` line, or one that counts no test: libtest was
    /// cut short (an abort, a limit) or ran nothing.
    Missing,
}

/// libtest's verdict on `name`, from its stdout: the counts of its closing
/// `test result:` line, with the `test NAME ... ` line for an ignored one.
pub fn verdict(name: &str, stdout: &str) -> Verdict {
    let Some(counts) = stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("test result: "))
    else {
        return Verdict::Missing;
    };
    let count = |what: &str| {
        counts
            .split(';')
            .filter_map(|part| part.trim().split_once(' '))
            .find(|(_, word)| *word == what)
            .and_then(|(n, _)| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // The first count follows `ok. ` or `FAILED. `.
    let passed = counts
        .split(';')
        .next()
        .and_then(|first| first.trim().strip_suffix(" passed"))
        .and_then(|n| n.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let (failed, ignored) = (count("failed"), count("ignored"));
    if failed > 0 {
        return Verdict::Failed;
    }
    if passed > 0 {
        return Verdict::Ok;
    }
    if ignored == 0 {
        return Verdict::Missing;
    }
    let (line, should_panic) = match test_line(name, stdout) {
        Some((rest, should_panic)) => (rest.lines().next().unwrap_or_default(), should_panic),
        None => ("", false),
    };
    let reason = line
        .strip_prefix("ignored, ")
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    Verdict::Ignored {
        reason,
        should_panic,
    }
}

/// What follows libtest's `test NAME ... ` in `stdout`, and whether it was
/// `test NAME - should panic ... `.
fn test_line<'a>(name: &str, stdout: &'a str) -> Option<(&'a str, bool)> {
    for (marker, should_panic) in [
        (format!("test {name} ... "), false),
        (format!("test {name} - should panic ... "), true),
    ] {
        if let Some(at) = stdout.find(&marker) {
            return Some((&stdout[at + marker.len()..], should_panic));
        }
    }
    None
}

/// The test's own stdout: what it printed, without libtest's framing
/// (`running 1 test`, `test NAME ... `, its verdict, its failures list and
/// its `test result:` line). With `--nocapture` the test's output follows
/// libtest's `test NAME ... ` on the same line.
pub fn test_stdout(name: &str, stdout: &str) -> String {
    let Some((mut body, _)) = test_line(name, stdout) else {
        return stdout.to_string();
    };
    let Some(end) = body.rfind("test result: ") else {
        // Cut short: everything after the test's line is its own.
        return body.to_string();
    };
    body = body[..end].trim_end_matches('\n');
    if let Some(at) = body.rfind("FAILED\n\nfailures:\n") {
        return body[..at].to_string();
    }
    for verdict in ["ok", "FAILED"] {
        if let Some(output) = body.strip_suffix(verdict) {
            return output.to_string();
        }
    }
    match body.rfind("ignored") {
        Some(at) if !body[at..].contains('\n') => body[..at].to_string(),
        _ => body.to_string(),
    }
}

/// The frames of a trap's backtrace (innermost first) that belong to the
/// test: a Rust panic on wasm aborts through a dozen frames of std's panic
/// machinery, under libtest's harness, and neither says where the test
/// failed. Leading frames of the standard crates (std, core, alloc, the
/// `__rustc` shims, the `abort` import's caller) and everything from the
/// first libtest frame outwards are dropped; when that leaves nothing (a
/// trap that is not a Rust panic), every frame is kept.
pub fn test_frames(frames: &[Frame]) -> Vec<Frame> {
    let name = |f: &Frame| f.func_name.clone().unwrap_or_default();
    let of_crate = |f: &Frame, crates: &[&str]| {
        let name = name(f);
        let name = name.trim_start_matches('<');
        crates.iter().any(|c| {
            name.strip_prefix(c)
                .is_some_and(|rest| rest.starts_with('[') || rest.starts_with("::"))
        })
    };
    let machinery = |f: &Frame| {
        of_crate(f, &["std", "core", "alloc", "__rustc", "panic_abort"])
            || matches!(
                name(f).as_str(),
                "abort" | "rust_begin_unwind" | "__rust_start_panic"
            )
    };
    let start = frames
        .iter()
        .position(|f| !machinery(f))
        .unwrap_or(frames.len());
    let end = frames[start..]
        .iter()
        .position(|f| of_crate(f, &["test"]))
        .map_or(frames.len(), |at| start + at);
    let mut own = &frames[start..end];
    while let Some((last, rest)) = own.split_last() {
        if !machinery(last) {
            break;
        }
        own = rest;
    }
    if own.is_empty() {
        frames.to_vec()
    } else {
        own.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(names: &[&str]) -> Vec<Frame> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Frame {
                func_index: i as u32,
                func_name: Some(n.to_string()),
                offset: None,
            })
            .collect()
    }

    fn frame_names(frames: &[Frame]) -> Vec<String> {
        frames.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn a_panics_backtrace_keeps_the_tests_own_frames() {
        let panic = frames(&[
            "abort",
            "std[a888]::process::abort",
            "__rustc[b797]::__rust_abort",
            "core[9f8d]::panicking::assert_failed::<u64, u64>",
            "suite::tests::fails::hb8e7",
            "suite::tests::fails::{{closure}}::h018",
            "std::panic::catch_unwind::h80",
            "suite::tests::outer::h1",
            "core::ops::function::FnOnce::call_once::h421d",
            "test[21b4]::__rust_begin_short_backtrace::<x>",
            "<test[21b4]::types::RunnableTest>::run",
        ]);
        assert_eq!(
            frame_names(&test_frames(&panic)),
            [
                "suite::tests::fails::hb8e7",
                "suite::tests::fails::{{closure}}::h018",
                "std::panic::catch_unwind::h80",
                "suite::tests::outer::h1"
            ]
        );
        let other = frames(&["std::x", "core[1]::y"]);
        assert_eq!(test_frames(&other), other, "nothing of its own: all kept");
        assert!(test_frames(&[]).is_empty());
        let unnamed = vec![Frame {
            func_index: 3,
            func_name: None,
            offset: Some(16),
        }];
        assert_eq!(test_frames(&unnamed), unnamed);
    }

    fn listed(names: &[(&str, bool)]) -> Vec<Listed> {
        names
            .iter()
            .map(|(name, ignored)| Listed {
                name: name.to_string(),
                ignored: *ignored,
            })
            .collect()
    }

    fn names(plan: &Plan) -> Vec<(&str, bool)> {
        plan.tests
            .iter()
            .map(|t| (t.name.as_str(), t.run))
            .collect()
    }

    #[test]
    fn listings_are_terse_lines_and_ignored_ones_are_marked() {
        let all = "a::one: test\na::two: test\nbench_x: benchmark\n\n2 tests\n";
        let ignored = parse_list("a::two: test\n");
        let listed = listing(parse_list(all), &ignored);
        assert_eq!(listed, self::listed(&[("a::one", false), ("a::two", true)]));
        assert_eq!(
            list_args(true),
            ["--list", "--format", "terse", "--ignored"]
        );
    }

    #[test]
    fn selection_follows_libtest() {
        let tests = listed(&[
            ("a::fast", false),
            ("a::slow", true),
            ("b::fast", false),
            ("b::fastest", false),
        ]);
        let all = Selection::default().plan(&tests);
        assert_eq!(
            names(&all),
            [
                ("a::fast", true),
                ("a::slow", false),
                ("b::fast", true),
                ("b::fastest", true)
            ]
        );
        assert_eq!(all.filtered_out, 0);

        let filtered = Selection {
            filters: vec!["b::".into(), "slow".into()],
            skip: vec!["est".into()],
            ..Selection::default()
        }
        .plan(&tests);
        assert_eq!(names(&filtered), [("a::slow", false), ("b::fast", true)]);
        assert_eq!(filtered.filtered_out, 2);

        let exact = Selection {
            filters: vec!["b::fast".into(), "fast".into()],
            exact: true,
            ..Selection::default()
        }
        .plan(&tests);
        assert_eq!(names(&exact), [("b::fast", true)]);
        assert_eq!(exact.filtered_out, 3);

        let ignored = Selection {
            ignored: true,
            ..Selection::default()
        }
        .plan(&tests);
        assert_eq!(names(&ignored), [("a::slow", true)]);
        assert_eq!(ignored.filtered_out, 3);

        let include = Selection {
            include_ignored: true,
            filters: vec!["a::".into()],
            ..Selection::default()
        }
        .plan(&tests);
        assert_eq!(names(&include), [("a::fast", true), ("a::slow", true)]);
    }

    #[test]
    fn one_test_runs_alone_and_an_ignored_one_only_when_asked() {
        let test = |ignored, run| Planned {
            name: "m::t".into(),
            ignored,
            run,
        };
        assert_eq!(
            run_args(&test(false, true)),
            ["--exact", "m::t", "--nocapture"]
        );
        assert_eq!(
            run_args(&test(true, true)),
            ["--exact", "m::t", "--nocapture", "--include-ignored"]
        );
        assert_eq!(
            run_args(&test(true, false)),
            ["--exact", "m::t", "--nocapture"]
        );
        let selection = Selection {
            filters: vec!["x".into()],
            exact: true,
            skip: vec!["y".into()],
            ignored: true,
            include_ignored: false,
        };
        assert_eq!(
            selection.to_args(),
            ["--exact", "--skip", "y", "--ignored", "x"]
        );
    }

    const PASSED: &str = "\nrunning 1 test\ntest m::t ... printed\nmore\nok\n\n\
        test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 14 filtered out; \
        finished in 0.00s\n\n";
    const RETURNED_ERR: &str = "\nrunning 1 test\ntest m::t ... before\nFAILED\n\n\
        failures:\n\nfailures:\n    m::t\n\ntest result: FAILED. 0 passed; 1 failed; \
        0 ignored; 0 measured; 3 filtered out; finished in 0.00s\n\n";
    const ABORTED: &str = "\nrunning 1 test\ntest m::t ... partial";
    const SHOULD_PANIC: &str = "\nrunning 1 test\ntest m::t - should panic ... ignored\n\n\
        test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 14 filtered out; \
        finished in 0.00s\n\n";
    const IGNORED: &str = "\nrunning 1 test\ntest m::t ... ignored, loops forever\n\n\
        test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 3 filtered out; \
        finished in 0.00s\n\n";
    const NOTHING: &str = "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; \
        0 ignored; 0 measured; 15 filtered out; finished in 0.00s\n\n";

    #[test]
    fn verdicts_come_from_the_counts_and_the_test_line() {
        assert_eq!(verdict("m::t", PASSED), Verdict::Ok);
        assert_eq!(verdict("m::t", RETURNED_ERR), Verdict::Failed);
        assert_eq!(verdict("m::t", ABORTED), Verdict::Missing);
        assert_eq!(verdict("m::t", NOTHING), Verdict::Missing);
        assert_eq!(verdict("m::t", ""), Verdict::Missing);
        assert_eq!(
            verdict("m::t", SHOULD_PANIC),
            Verdict::Ignored {
                reason: None,
                should_panic: true
            }
        );
        assert_eq!(
            verdict("m::t", IGNORED),
            Verdict::Ignored {
                reason: Some("loops forever".into()),
                should_panic: false
            }
        );
    }

    #[test]
    fn the_tests_own_output_is_kept_without_libtests_framing() {
        assert_eq!(test_stdout("m::t", PASSED), "printed\nmore\n");
        assert_eq!(test_stdout("m::t", RETURNED_ERR), "before\n");
        assert_eq!(test_stdout("m::t", ABORTED), "partial");
        assert_eq!(test_stdout("m::t", SHOULD_PANIC), "");
        assert_eq!(test_stdout("m::t", IGNORED), "");
        assert_eq!(test_stdout("other", "raw text"), "raw text");
        let silent = "\nrunning 1 test\ntest m::t ... ok\n\ntest result: ok. 1 passed; \
                      0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
        assert_eq!(test_stdout("m::t", silent), "");
    }
}
