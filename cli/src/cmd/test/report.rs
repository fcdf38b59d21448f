//! What `grid test` shows: libtest's report format for people, one JSON
//! object per test for programs, and JUnit XML for CI.
//!
//! Results arrive in any order, from any binary; [`Printer`] decides what
//! can be shown now so that the report reads as cargo's does: each binary
//! in turn, its `running N tests` header, its tests' lines (in completion
//! order, or listing order when `ordered`), its failures with their output,
//! and its `test result:` line, while results of later binaries wait for
//! their turn. Everything here turns values into text: no I/O, no clock
//! (elapsed times are given), so it is tested as plain functions.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;

/// How one test ended, after its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Failed, then passed on a retry: counts as passed.
    Flaky,
    Failed,
    /// Over its `--timeout`: counts as failed.
    TimedOut,
    Ignored,
}

impl Outcome {
    /// The word on its `test NAME ... ` line (and in JSON).
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Passed => "ok",
            Outcome::Flaky => "FLAKY",
            Outcome::Failed => "FAILED",
            Outcome::TimedOut => "TIMEOUT",
            Outcome::Ignored => "ignored",
        }
    }

    pub fn failed(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::TimedOut)
    }
}

/// One test's result, as reported.
#[derive(Debug, Clone, PartialEq)]
pub struct TestReport {
    pub name: String,
    pub outcome: Outcome,
    /// Why it failed (one line), or why it was ignored.
    pub reason: Option<String>,
    /// What the test printed (libtest's own lines removed), last attempt.
    pub stdout: String,
    pub stderr: String,
    /// Its run time on the engine, last attempt.
    pub duration: Duration,
    pub attempts: u32,
    pub engine: Option<u32>,
    /// `Fingerprint::digest()` of the last attempt.
    pub fingerprint: Option<String>,
    pub fuel: Option<u64>,
}

/// One binary's tests, once all are done.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub binary: String,
    /// In listing order.
    pub tests: Vec<TestReport>,
    pub filtered_out: usize,
    /// From the start of the run to its last result.
    pub elapsed: Duration,
}

/// The numbers of a `test result:` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
    pub filtered_out: usize,
}

impl Counts {
    pub fn of<'a>(tests: impl IntoIterator<Item = &'a TestReport>, filtered_out: usize) -> Counts {
        let mut counts = Counts {
            filtered_out,
            ..Counts::default()
        };
        for t in tests {
            match t.outcome {
                Outcome::Passed | Outcome::Flaky => counts.passed += 1,
                Outcome::Failed | Outcome::TimedOut => counts.failed += 1,
                Outcome::Ignored => counts.ignored += 1,
            }
        }
        counts
    }
}

/// `test NAME ... ok` (or `FAILED`, `TIMEOUT`, `FLAKY (N attempts)`,
/// `ignored, REASON`).
pub fn result_line(t: &TestReport) -> String {
    let mut line = format!("test {} ... {}", t.name, t.outcome.word());
    match t.outcome {
        Outcome::Flaky => {
            let _ = write!(line, " ({} attempts)", t.attempts);
        }
        Outcome::Ignored => {
            if let Some(reason) = &t.reason {
                let _ = write!(line, ", {reason}");
            }
        }
        _ => {}
    }
    line
}

/// `running N tests`, as libtest says it.
pub fn header(tests: usize) -> String {
    let s = if tests == 1 { "" } else { "s" };
    format!("\nrunning {tests} test{s}\n")
}

/// The closing line.
pub fn summary(counts: Counts, elapsed: Duration) -> String {
    let verdict = if counts.failed > 0 { "FAILED" } else { "ok" };
    format!(
        "test result: {verdict}. {} passed; {} failed; {} ignored; 0 measured; \
         {} filtered out; finished in {:.2}s",
        counts.passed,
        counts.failed,
        counts.ignored,
        counts.filtered_out,
        elapsed.as_secs_f64()
    )
}

/// What follows a binary's test lines: its failures (each failed test's
/// output and cause, then their names), and the `test result:` line.
pub fn closing(tests: &[&TestReport], filtered_out: usize, elapsed: Duration) -> String {
    let mut text = String::from("\n");
    let failed: Vec<&&TestReport> = tests.iter().filter(|t| t.outcome.failed()).collect();
    if !failed.is_empty() {
        text.push_str("failures:\n\n");
        for t in &failed {
            text.push_str(&failure(t));
        }
        text.push_str("failures:\n");
        for t in &failed {
            let _ = writeln!(text, "    {}", t.name);
        }
        text.push('\n');
    }
    let counts = Counts::of(tests.iter().copied(), filtered_out);
    text.push_str(&summary(counts, elapsed));
    text.push_str("\n\n");
    text
}

/// One failed test in the failures section: its stdout and stderr under
/// libtest's `---- NAME stdout ----` headings, then its cause.
fn failure(t: &TestReport) -> String {
    let mut text = String::new();
    for (stream, output) in [("stdout", &t.stdout), ("stderr", &t.stderr)] {
        let output = output.trim_start_matches(['\n', '\r']);
        if output.trim().is_empty() {
            continue;
        }
        let _ = writeln!(text, "---- {} {stream} ----", t.name);
        text.push_str(output);
        if !output.ends_with('\n') {
            text.push('\n');
        }
    }
    let what = if t.outcome == Outcome::TimedOut {
        "timed out"
    } else {
        "failed"
    };
    let attempts = if t.attempts > 1 {
        format!(" ({} attempts)", t.attempts)
    } else {
        String::new()
    };
    let reason = t.reason.as_deref().unwrap_or("no reason given");
    let _ = writeln!(text, "---- {} {what}{attempts}: {reason}\n", t.name);
    text
}

/// One test as a JSON object: name, binary, outcome, duration (seconds),
/// attempts, engine, fingerprint, reason when there is one, fuel when
/// metered.
pub fn json_line(binary: &str, t: &TestReport) -> serde_json::Value {
    let mut object = json!({
        "name": t.name,
        "binary": binary,
        "outcome": t.outcome.word(),
        "duration": t.duration.as_secs_f64(),
        "attempts": t.attempts,
        "engine": t.engine,
        "fingerprint": t.fingerprint,
    });
    if let Some(map) = object.as_object_mut() {
        if let Some(reason) = &t.reason {
            map.insert("reason".into(), json!(reason));
        }
        if let Some(fuel) = t.fuel {
            map.insert("fuel".into(), json!(fuel));
        }
    }
    object
}

/// JUnit XML: one `<testsuite>` per binary, a `<testcase>` per test with
/// `<failure>` (cause, and the output as `<system-out>`/`<system-err>`),
/// `<skipped>` for ignored ones, and `<flakyFailure>` for flaky ones.
pub fn junit(suites: &[Suite]) -> String {
    let mut total = Counts::default();
    let mut time = Duration::ZERO;
    let mut body = String::new();
    for suite in suites {
        let counts = Counts::of(&suite.tests, suite.filtered_out);
        total.passed += counts.passed;
        total.failed += counts.failed;
        total.ignored += counts.ignored;
        time = time.max(suite.elapsed);
        let _ = writeln!(
            body,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" \
             skipped=\"{}\" time=\"{:.3}\">",
            xml(&suite.binary),
            suite.tests.len(),
            counts.failed,
            counts.ignored,
            suite.elapsed.as_secs_f64()
        );
        for t in &suite.tests {
            body.push_str(&testcase(&suite.binary, t));
        }
        body.push_str("  </testsuite>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites name=\"grid test\" tests=\"{}\" failures=\"{}\" errors=\"0\" \
         skipped=\"{}\" time=\"{:.3}\">\n{body}</testsuites>\n",
        total.passed + total.failed + total.ignored,
        total.failed,
        total.ignored,
        time.as_secs_f64()
    )
}

fn testcase(binary: &str, t: &TestReport) -> String {
    let mut text = format!(
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
        xml(&t.name),
        xml(binary),
        t.duration.as_secs_f64()
    );
    let reason = xml(t.reason.as_deref().unwrap_or_default());
    let element = match t.outcome {
        Outcome::Passed => return text + "/>\n",
        Outcome::Ignored => {
            return text + &format!(">\n      <skipped message=\"{reason}\"/>\n    </testcase>\n");
        }
        Outcome::Flaky => "flakyFailure",
        Outcome::Failed => "failure",
        Outcome::TimedOut => "failure",
    };
    let kind = if t.outcome == Outcome::TimedOut {
        "timeout"
    } else {
        "failure"
    };
    let _ = write!(
        text,
        ">\n      <{element} message=\"{reason}\" type=\"{kind}\">{reason}</{element}>\n"
    );
    if t.outcome.failed() {
        for (tag, output) in [("system-out", &t.stdout), ("system-err", &t.stderr)] {
            let _ = writeln!(text, "      <{tag}>{}</{tag}>", xml(output));
        }
    }
    text + "    </testcase>\n"
}

/// `text` escaped for XML text and attributes; characters XML 1.0 cannot
/// hold at all (most control characters) become U+FFFD.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Something the report can show now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// A binary's turn begins: its header.
    Start { suite: usize },
    /// A test's line.
    Test { suite: usize, index: usize },
    /// A binary is done: its failures and summary.
    End { suite: usize },
}

/// One binary while its results come in.
struct Pending {
    binary: String,
    slots: Vec<Option<TestReport>>,
    /// Indices in the order their results came.
    arrivals: Vec<usize>,
    /// How many test lines were emitted.
    shown: usize,
    started: bool,
    filtered_out: usize,
    elapsed: Duration,
}

/// Orders the report while results arrive (see the module doc).
pub struct Printer {
    suites: Vec<Pending>,
    current: usize,
    ordered: bool,
}

impl Printer {
    /// For binaries given as (name, number of selected tests, filtered out).
    pub fn new(suites: Vec<(String, usize, usize)>, ordered: bool) -> Printer {
        Printer {
            suites: suites
                .into_iter()
                .map(|(binary, tests, filtered_out)| Pending {
                    binary,
                    slots: vec![None; tests],
                    arrivals: Vec::new(),
                    shown: 0,
                    started: false,
                    filtered_out,
                    elapsed: Duration::ZERO,
                })
                .collect(),
            current: 0,
            ordered,
        }
    }

    /// What can be shown before any result arrives.
    pub fn start(&mut self) -> Vec<Emit> {
        self.advance()
    }

    /// Test `index` of binary `suite` is done, `elapsed` after the start;
    /// returns what can be shown now. A second result for the same test,
    /// or one out of range, is ignored.
    pub fn arrive(
        &mut self,
        suite: usize,
        index: usize,
        report: TestReport,
        elapsed: Duration,
    ) -> Vec<Emit> {
        if let Some(p) = self.suites.get_mut(suite)
            && let Some(slot @ None) = p.slots.get_mut(index)
        {
            *slot = Some(report);
            p.arrivals.push(index);
            p.elapsed = p.elapsed.max(elapsed);
        }
        self.advance()
    }

    fn advance(&mut self) -> Vec<Emit> {
        let mut emits = Vec::new();
        while let Some(p) = self.suites.get_mut(self.current) {
            let suite = self.current;
            if !p.started {
                p.started = true;
                emits.push(Emit::Start { suite });
            }
            loop {
                let next = if self.ordered {
                    Some(p.shown).filter(|&i| p.slots.get(i).is_some_and(Option::is_some))
                } else {
                    p.arrivals.get(p.shown).copied()
                };
                let Some(index) = next else { break };
                p.shown += 1;
                emits.push(Emit::Test { suite, index });
            }
            if p.shown < p.slots.len() {
                break;
            }
            emits.push(Emit::End { suite });
            self.current += 1;
        }
        emits
    }

    /// Whether every binary is done.
    #[cfg(test)]
    pub fn done(&self) -> bool {
        self.current == self.suites.len()
    }

    pub fn binary(&self, suite: usize) -> &str {
        self.suites.get(suite).map_or("", |p| p.binary.as_str())
    }

    pub fn report(&self, suite: usize, index: usize) -> Option<&TestReport> {
        self.suites.get(suite)?.slots.get(index)?.as_ref()
    }

    /// The text of `emit` in libtest's format.
    pub fn human(&self, emit: Emit) -> String {
        match emit {
            Emit::Start { suite } => header(self.suites.get(suite).map_or(0, |p| p.slots.len())),
            Emit::Test { suite, index } => self
                .report(suite, index)
                .map(|t| result_line(t) + "\n")
                .unwrap_or_default(),
            Emit::End { suite } => match self.suites.get(suite) {
                Some(p) => {
                    let tests: Vec<&TestReport> = p.slots.iter().flatten().collect();
                    closing(&tests, p.filtered_out, p.elapsed)
                }
                None => String::new(),
            },
        }
    }

    /// The binaries' results (those done), for JUnit and timings.
    pub fn into_suites(self) -> Vec<Suite> {
        self.suites
            .into_iter()
            .map(|p| Suite {
                binary: p.binary,
                tests: p.slots.into_iter().flatten().collect(),
                filtered_out: p.filtered_out,
                elapsed: p.elapsed,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, outcome: Outcome) -> TestReport {
        TestReport {
            name: name.into(),
            outcome,
            reason: None,
            stdout: String::new(),
            stderr: String::new(),
            duration: Duration::from_millis(1500),
            attempts: 1,
            engine: Some(1),
            fingerprint: Some("ab12".into()),
            fuel: None,
        }
    }

    #[test]
    fn lines_read_as_libtests() {
        assert_eq!(
            result_line(&report("m::a", Outcome::Passed)),
            "test m::a ... ok"
        );
        assert_eq!(
            result_line(&report("m::a", Outcome::Failed)),
            "test m::a ... FAILED"
        );
        assert_eq!(
            result_line(&report("m::a", Outcome::TimedOut)),
            "test m::a ... TIMEOUT"
        );
        let flaky = TestReport {
            attempts: 2,
            ..report("m::a", Outcome::Flaky)
        };
        assert_eq!(result_line(&flaky), "test m::a ... FLAKY (2 attempts)");
        let ignored = TestReport {
            reason: Some("should_panic needs unwinding".into()),
            ..report("m::a", Outcome::Ignored)
        };
        assert_eq!(
            result_line(&ignored),
            "test m::a ... ignored, should_panic needs unwinding"
        );
        assert_eq!(
            result_line(&report("m::a", Outcome::Ignored)),
            "test m::a ... ignored"
        );
        assert_eq!(header(1), "\nrunning 1 test\n");
        assert_eq!(header(0), "\nrunning 0 tests\n");
    }

    #[test]
    fn the_summary_counts_flaky_as_passed_and_timeouts_as_failed() {
        let tests = [
            report("a", Outcome::Passed),
            report("b", Outcome::Flaky),
            report("c", Outcome::Ignored),
        ];
        let counts = Counts::of(&tests, 4);
        assert_eq!(
            summary(counts, Duration::from_millis(1234)),
            "test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; \
             4 filtered out; finished in 1.23s"
        );
        let tests = [report("a", Outcome::TimedOut), report("b", Outcome::Failed)];
        assert!(
            summary(Counts::of(&tests, 0), Duration::ZERO)
                .starts_with("test result: FAILED. 0 passed; 2 failed; 0 ignored;")
        );
    }

    #[test]
    fn failures_show_output_and_cause_then_the_names() {
        let failed = TestReport {
            stdout: "printed\n".into(),
            stderr: "thread 'main' panicked at src/lib.rs:3:5:\nboom".into(),
            reason: Some("trap (unreachable): wasm trap".into()),
            attempts: 3,
            ..report("m::bad", Outcome::Failed)
        };
        let slow = TestReport {
            reason: Some("wall time limit of 2000 ms exceeded".into()),
            ..report("m::slow", Outcome::TimedOut)
        };
        let ok = report("m::ok", Outcome::Passed);
        let text = closing(&[&ok, &failed, &slow], 0, Duration::from_secs(2));
        assert_eq!(
            text,
            "\nfailures:\n\n\
             ---- m::bad stdout ----\nprinted\n\
             ---- m::bad stderr ----\nthread 'main' panicked at src/lib.rs:3:5:\nboom\n\
             ---- m::bad failed (3 attempts): trap (unreachable): wasm trap\n\n\
             ---- m::slow timed out: wall time limit of 2000 ms exceeded\n\n\
             failures:\n    m::bad\n    m::slow\n\n\
             test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; \
             0 filtered out; finished in 2.00s\n\n"
        );
        let text = closing(&[&ok], 2, Duration::ZERO);
        assert_eq!(
            text,
            "\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; \
             2 filtered out; finished in 0.00s\n\n"
        );
    }

    #[test]
    fn json_has_every_field_and_fuel_only_when_metered() {
        let t = TestReport {
            fuel: Some(42),
            ..report("m::a", Outcome::Passed)
        };
        let v = json_line("suite.wasm", &t);
        assert_eq!(
            v,
            json!({"name": "m::a", "binary": "suite.wasm", "outcome": "ok",
                   "duration": 1.5, "attempts": 1, "engine": 1,
                   "fingerprint": "ab12", "fuel": 42})
        );
        let v = json_line("s", &report("m::a", Outcome::Failed));
        assert!(v.get("fuel").is_none());
    }

    #[test]
    fn xml_is_escaped_and_control_characters_replaced() {
        assert_eq!(
            xml("a<b & \"c\" 'd'>\u{1b}[0m\tok\n"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\u{FFFD}[0m\tok\n"
        );
    }

    #[test]
    fn junit_has_a_suite_per_binary() {
        let failed = TestReport {
            stderr: "<boom>".into(),
            reason: Some("exit code 101".into()),
            ..report("m::bad", Outcome::Failed)
        };
        let ignored = TestReport {
            reason: Some("needs \"unwinding\"".into()),
            ..report("m::skip", Outcome::Ignored)
        };
        let suites = [
            Suite {
                binary: "a.wasm".into(),
                tests: vec![report("m::ok", Outcome::Passed), failed, ignored],
                filtered_out: 0,
                elapsed: Duration::from_secs(1),
            },
            Suite {
                binary: "b.wasm".into(),
                tests: vec![],
                filtered_out: 3,
                elapsed: Duration::ZERO,
            },
        ];
        let text = junit(&suites);
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"grid test\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"1.000\">\n"), "{text}");
        assert!(text.contains("<testsuite name=\"a.wasm\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"1.000\">"), "{text}");
        assert!(text.contains("<testcase name=\"m::ok\" classname=\"a.wasm\" time=\"1.500\"/>"));
        assert!(text.contains(
            "<failure message=\"exit code 101\" type=\"failure\">exit code 101</failure>"
        ));
        assert!(text.contains("<system-err>&lt;boom&gt;</system-err>"));
        assert!(text.contains("<skipped message=\"needs &quot;unwinding&quot;\"/>"));
        assert!(text.contains("<testsuite name=\"b.wasm\" tests=\"0\""));
        assert!(text.ends_with("</testsuites>\n"));
    }

    fn arrive(p: &mut Printer, suite: usize, index: usize) -> Vec<Emit> {
        let name = format!("t{suite}.{index}");
        p.arrive(
            suite,
            index,
            report(&name, Outcome::Passed),
            Duration::from_secs(index as u64),
        )
    }

    #[test]
    fn binaries_take_turns_and_lines_come_in_completion_order() {
        use Emit::*;
        let mut p = Printer::new(
            vec![("a".into(), 2, 0), ("b".into(), 0, 1), ("c".into(), 1, 0)],
            false,
        );
        assert_eq!(p.start(), [Start { suite: 0 }]);
        assert_eq!(arrive(&mut p, 2, 0), []);
        assert_eq!(arrive(&mut p, 0, 1), [Test { suite: 0, index: 1 }]);
        assert_eq!(arrive(&mut p, 0, 1), [], "a second result is ignored");
        assert_eq!(
            arrive(&mut p, 0, 0),
            [
                Test { suite: 0, index: 0 },
                End { suite: 0 },
                Start { suite: 1 },
                End { suite: 1 },
                Start { suite: 2 },
                Test { suite: 2, index: 0 },
                End { suite: 2 }
            ]
        );
        assert!(p.done());
        assert!(p.human(End { suite: 0 }).contains("finished in 1.00s"));
        let suites = p.into_suites();
        assert_eq!(suites[0].tests[0].name, "t0.0", "listing order");
        assert_eq!(suites[1].filtered_out, 1);
    }

    #[test]
    fn ordered_lines_follow_the_listing() {
        use Emit::*;
        let mut p = Printer::new(vec![("a".into(), 3, 0)], true);
        assert_eq!(p.start(), [Start { suite: 0 }]);
        assert_eq!(arrive(&mut p, 0, 1), []);
        assert_eq!(
            arrive(&mut p, 0, 0),
            [Test { suite: 0, index: 0 }, Test { suite: 0, index: 1 }]
        );
        assert_eq!(
            arrive(&mut p, 0, 2),
            [Test { suite: 0, index: 2 }, End { suite: 0 }]
        );
        assert_eq!(p.human(Test { suite: 0, index: 2 }), "test t0.2 ... ok\n");
    }
}
