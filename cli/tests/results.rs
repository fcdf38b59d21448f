//! `grid results` with `grid map --ids` and `grid apply --ids`: tasks
//! submitted by one process, which exits, and read back, queried and purged
//! by others, on a real NATS server with a controller and an engine process;
//! and the usage errors, which need no cluster.
//!
//! Each test has its own NATS server (`grid_bus::testing`), cache and state
//! directories, and kills the processes it started, even when it fails.
//! Nothing sleeps to wait: the engines are polled for, with a deadline that
//! only runs out when something is wrong.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Processes, Run};
use grid_bus::testing::NatsServer;
use tempfile::TempDir;

/// For the cluster to come up.
const UP: Duration = Duration::from_secs(60);

fn square_wat() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/guests/wat/square.wat")
        .display()
        .to_string()
}

/// The Rust example guest's path (see `grid_examples::require_path`).
fn rust_guest() -> Option<String> {
    grid_examples::require_path(grid_examples::rust_guest()).map(|p| p.display().to_string())
}

/// A NATS server, a controller and an engine process of two slots, and
/// this test's directories.
struct Cluster {
    url: String,
    dir: TempDir,
    _processes: Processes,
    _server: NatsServer,
}

impl Cluster {
    /// `None` when nats-server is missing and the tests may skip.
    fn start() -> Option<Cluster> {
        let server = NatsServer::start_or_skip()?;
        let url = server.url();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut processes = Processes(Vec::new());
        for (log, args) in [
            ("controller.log", vec!["controller", "--url", &url]),
            ("engine.log", vec!["engine", "--url", &url, "-n", "2"]),
        ] {
            let out = std::fs::File::create(dir.path().join(log)).expect("log file");
            let err = out.try_clone().expect("log file");
            let child = common::grid_command(&args, &dir.path().join("cache"))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("grid starts");
            processes.0.push(child);
        }
        let cluster = Cluster {
            url,
            dir,
            _processes: processes,
            _server: server,
        };
        common::wait_for("2 engines", UP, || {
            let run = cluster.grid(&["status", "--json"]);
            let status: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
            (status["engines"].as_array()?.len() == 2).then_some(())
        });
        Some(cluster)
    }

    /// `grid args...` with this cluster's URL in GRID_URL.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = common::grid_command(args, &self.dir.path().join("cache"));
        command
            .env("GRID_URL", &self.url)
            .env("GRID_STATE_DIR", self.dir.path().join("state"));
        command
    }

    fn grid(&self, args: &[&str]) -> Run {
        common::run(self.command(args), None)
    }

    fn grid_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        common::run(self.command(args), Some(stdin))
    }

    /// The ids `grid map --ids` (or `apply`) printed: one per line, each a uuid.
    fn submit(&self, args: &[&str]) -> Vec<String> {
        let run = self.grid(args).ok();
        assert_eq!(run.stderr, "", "submitting says nothing");
        let ids: Vec<String> = run.lines().iter().map(|l| l.to_string()).collect();
        for id in &ids {
            assert_eq!(id.len(), 36, "a uuid: {id:?}");
        }
        ids
    }

    /// The records `grid results --query EXPR --json` lists.
    fn records(&self, expr: &str) -> Vec<serde_json::Value> {
        let run = self.grid(&["results", "--query", expr, "--json"]).ok();
        run.lines()
            .iter()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }
}

fn args<'a>(ids: &'a [String], first: &[&'a str]) -> Vec<&'a str> {
    first
        .iter()
        .copied()
        .chain(ids.iter().map(String::as_str))
        .collect()
}

#[test]
fn results_outlive_the_process_that_submitted_them() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let m = square_wat();
    // `map --ids` exits once the controller has the tasks, before they run.
    let ids = cluster.submit(&["map", "--ids", &m, "square", "--range", "0..6"]);
    assert_eq!(ids.len(), 6);

    let run = cluster.grid(&args(&ids, &["results"])).ok();
    assert_eq!(run.lines(), ["0", "1", "4", "9", "16", "25"]);
    assert_eq!(run.stderr, "");
    // In the order given, and from stdin (as from a pipe).
    let reversed: Vec<String> = ids.iter().rev().cloned().collect();
    let run = cluster.grid(&args(&reversed, &["results"])).ok();
    assert_eq!(run.lines(), ["25", "16", "9", "4", "1", "0"]);
    let run = cluster
        .grid_with_stdin(&["results"], &format!("{}\n\n", ids[..3].join("\n")))
        .ok();
    assert_eq!(run.lines(), ["0", "1", "4"]);

    // --meta: `grid map --json-meta`'s objects, with the msg id.
    let run = cluster.grid(&args(&ids[4..], &["results", "--meta"])).ok();
    let lines = run.lines();
    assert_eq!(lines.len(), 2);
    for (line, (id, value)) in lines.iter().zip(ids[4..].iter().zip([16, 25])) {
        let meta: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(meta["msg_id"], id.as_str(), "{line}");
        assert_eq!(meta["value"], value, "{line}");
        assert!(meta["engine"].as_u64().is_some_and(|e| e < 2), "{line}");
        assert!(
            meta["completed"].as_u64() >= meta["started"].as_u64(),
            "{line}"
        );
        assert_eq!(meta["attempts"], 1, "{line}");
        assert!(meta["fingerprint"]["digest"].is_string(), "{line}");
    }

    let applied = cluster.submit(&["apply", "--ids", &m, "square", "12"]);
    assert_eq!(applied.len(), 1);
    let run = cluster.grid(&args(&applied, &["results", "-"])).ok();
    assert_eq!(run.lines(), ["144"]);

    // Purged by id, a task is unknown: it fails as lost.
    let run = cluster.grid(&["results", "--purge", &applied[0]]).ok();
    assert_eq!(
        (run.stdout.as_str(), run.stderr.as_str()),
        ("1\n", "purged 1 record\n")
    );
    let run = cluster.grid(&args(&applied, &["results"]));
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_error_lines();
    assert!(
        run.stderr
            .starts_with(&format!("error: task {}: [no engine] lost:", applied[0])),
        "{}",
        run.stderr
    );
    assert!(run.stderr.ends_with("error: 1 of 1 tasks failed\n"));

    assert_eq!(cluster.records("all").len(), 6);
    let run = cluster.grid(&["results", "--purge", "--all"]).ok();
    assert_eq!(run.stdout, "6\n");
    assert_eq!(cluster.records("all"), Vec::<serde_json::Value>::new());
    let run = cluster.grid(&["results", "--query", "all"]).ok();
    assert_eq!(
        (run.stdout.as_str(), run.stderr.as_str()),
        ("", "no task records match\n")
    );
}

#[test]
fn a_failed_task_fails_its_line_and_a_query_finds_it() {
    let Some(guest) = rust_guest() else { return };
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let ids = cluster.submit(&["map", "--ids", &guest, "checked_sqrt", "4", "-1", "9"]);
    assert_eq!(ids.len(), 3);

    let run = cluster.grid(&args(&ids, &["results"]));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.lines(), ["2.0", "3.0"]);
    run.assert_error_lines();
    let errors = run.error_lines();
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    assert!(
        errors[0].starts_with(&format!("error: task {}: [engine ", ids[1]))
            && errors[0].contains("cannot take the square root of a negative number: -1"),
        "{}",
        errors[0]
    );
    assert_eq!(errors[1], "error: 1 of 3 tasks failed");

    // With --meta the failed task has its line too, with the error.
    let run = cluster.grid(&args(&ids[1..2], &["results", "--meta"]));
    assert_eq!(run.code, 1, "{}", run.stderr);
    let meta: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!(meta["msg_id"], ids[1].as_str());
    assert!(
        meta["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("negative number")),
        "{meta}"
    );
    assert!(meta.get("value").is_none(), "{meta}");

    let failed = cluster.records("status=error");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let record = &failed[0];
    assert_eq!(record["msg_id"], ids[1].as_str());
    assert_eq!(record["status"], "error");
    assert!(record["error"]["kind"].is_string(), "{record}");
    assert!(
        record["submitted"].as_u64() <= record["completed"].as_u64(),
        "{record}"
    );
    assert_eq!(record["value"], serde_json::Value::Null);
    let ok = cluster.records("status=ok,aborted");
    let values: Vec<&serde_json::Value> = ok.iter().map(|r| &r["value"]).collect();
    assert_eq!(values, [&serde_json::json!(2.0), &serde_json::json!(3.0)]);

    // The table: a header and one row per record, the error last.
    let run = cluster
        .grid(&["results", "--query", "status=error", "--since", "1h"])
        .ok();
    let lines = run.lines();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(lines[0].starts_with("MSG_ID "), "{}", lines[0]);
    assert!(
        lines[1].starts_with(&format!("{}  error  ", ids[1])),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("negative number"), "{}", lines[1]);
    // Nothing was submitted more than an hour ago.
    let run = cluster
        .grid(&["results", "--query", "all", "--until", "1h", "--json"])
        .ok();
    assert_eq!(run.stdout, "");

    let run = cluster.grid(&["results", "--purge", "--all"]).ok();
    assert_eq!(run.stdout, "3\n");
    assert_eq!(
        cluster.records("status=error"),
        Vec::<serde_json::Value>::new()
    );
}

#[test]
fn bad_input_is_a_usage_error_that_names_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let grid = |args: &[&str], stdin: Option<&str>| {
        let mut command = common::grid_command(args, &dir.path().join("cache"));
        command
            .env("GRID_URL", "nats://127.0.0.1:1")
            .env("GRID_STATE_DIR", dir.path().join("state"));
        common::run(command, stdin)
    };
    let id = "01a2356f-9b7c-7353-b4e8-fc82bb486e0f";
    for (args, stdin, named) in [
        (
            vec!["results", id, "not-an-id"],
            None,
            "`not-an-id` is not a task id",
        ),
        (
            vec!["results"],
            Some(format!("{id}\n{id}x\n")),
            "line 2 of stdin: `01a2356f-9b7c-7353-b4e8-fc82bb486e0fx` is not a task id",
        ),
        (
            vec!["results", "--purge", "zzz"],
            None,
            "`zzz` is not a task id",
        ),
        (
            vec!["results", "--query", "status=done"],
            None,
            "unknown status `done`",
        ),
        (
            vec!["results", "--query", "all", "--since", "1y"],
            None,
            "`1y` is not a duration",
        ),
        (
            vec!["results", "--purge", "--before", "soon"],
            None,
            "`soon` is not a duration",
        ),
        (
            vec!["results", "--purge"],
            None,
            "--purge needs what to purge",
        ),
        (
            vec!["results", "--client", "me", "--query", "all"],
            None,
            "`me` is not a client id",
        ),
    ] {
        let run = grid(&args, stdin.as_deref());
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(named), "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, "");
    }

    // No cluster to ask: neither --url nor one started by `grid cluster start`.
    let mut command = common::grid_command(&["results", id], &dir.path().join("cache"));
    command.env("GRID_STATE_DIR", dir.path().join("state"));
    let run = common::run(command, None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("error: give --url URL"),
        "{}",
        run.stderr
    );

    // A task submitted to a local cluster would die with it.
    let m = square_wat();
    for args in [
        vec!["map", "--ids", &m, "square", "1"],
        vec!["apply", "--ids", &m, "square", "1"],
    ] {
        let command = common::grid_command(&args, &dir.path().join("cache"));
        let run = common::run(command, None);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_eq!(
            run.stderr,
            "error: --ids needs a cluster that outlives this command: give --url URL (or \
             set GRID_URL; `grid cluster start` starts one)\n"
        );
    }
}
