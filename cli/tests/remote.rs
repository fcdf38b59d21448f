//! The `grid` binary with clusters on real NATS servers: `grid cluster
//! start|stop`, controller and engine processes started by hand, an engine
//! killed in the middle of a task, two clusters on one server, and a URL
//! where no server listens.
//!
//! Every test has its own NATS server (from `grid_bus::testing`, or the one
//! `grid cluster start` runs), its own state and cache directories, and a
//! guard that kills every process it started, even when the test fails.
//! Nothing sleeps to wait: conditions are polled, with deadlines that only
//! run out when something is wrong.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Run;
use grid_bus::testing::NatsServer;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

/// For the cluster to come up, or to notice a change.
const UP: Duration = Duration::from_secs(60);

/// A module whose `spin` loops forever.
const SPIN_WAT: &str =
    r#"(module (func (export "spin") (param i64) (result i64) (loop $l br $l) local.get 0))"#;

fn square_wat() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/guests/wat/square.wat")
        .display()
        .to_string()
}

fn squares(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|i| (i * i).to_string()).collect()
}

/// A test's directories and the processes it started; dropping it kills
/// them (and those a `grid cluster start` recorded in its state dir).
struct Scene {
    dir: TempDir,
    children: Vec<Child>,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["cache", "state"] {
            std::fs::create_dir(dir.path().join(sub)).expect("create dir");
        }
        Scene {
            dir,
            children: Vec::new(),
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write temp file");
        path.display().to_string()
    }

    /// `grid args...`, with this test's cache and state dirs.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = common::grid_command(args, &self.dir.path().join("cache"));
        command.env("GRID_STATE_DIR", self.state_dir());
        command
    }

    /// Runs `grid args...` to the end.
    fn grid(&self, args: &[&str]) -> Run {
        common::run(self.command(args), None)
    }

    /// Starts `grid args...` in the background, its output to a log file
    /// named `log`; returns its index among the children.
    fn spawn(&mut self, log: &str, args: &[&str]) -> usize {
        let out = std::fs::File::create(self.dir.path().join(log)).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("grid starts");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Starts `grid args...` in the background with its output piped.
    fn spawn_piped(&mut self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("grid starts")
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// The engines `grid status --json` shows, as (id, state) pairs.
    fn engines(&self, url: &str, cluster: &str) -> Vec<(u64, String)> {
        let run = self.grid(&["status", "--url", url, "--cluster", cluster, "--json"]);
        if run.code != 0 {
            return Vec::new();
        }
        let status: serde_json::Value =
            serde_json::from_str(&run.stdout).expect("status is one JSON object");
        assert_eq!(status["cluster"], cluster);
        status["engines"]
            .as_array()
            .expect("an engines array")
            .iter()
            .map(|e| {
                (
                    e["id"].as_u64().expect("an id"),
                    e["state"].as_str().expect("a state").to_string(),
                )
            })
            .collect()
    }

    /// Waits until cluster `cluster` at `url` has exactly `n` engines.
    fn wait_for_engines(&self, url: &str, cluster: &str, n: usize) -> Vec<(u64, String)> {
        common::wait_for(&format!("{n} engines in cluster {cluster}"), UP, || {
            Some(self.engines(url, cluster)).filter(|e| e.len() == n)
        })
    }

    /// The processes recorded by `grid cluster start` for `cluster`.
    fn recorded(&self, cluster: &str) -> Vec<Recorded> {
        let path = self.state_dir().join(format!("{cluster}.json"));
        let Ok(text) = std::fs::read_to_string(path) else {
            return Vec::new();
        };
        let record: serde_json::Value = serde_json::from_str(&text).expect("state is JSON");
        record["processes"]
            .as_array()
            .expect("a processes array")
            .iter()
            .map(|p| Recorded {
                role: p["role"].as_str().expect("a role").to_string(),
                pid: p["pid"].as_u64().expect("a pid") as i32,
                start_time: p["start_time"].as_u64().expect("a start time"),
            })
            .collect()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let Ok(entries) = std::fs::read_dir(self.state_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(cluster) = name.strip_suffix(".json") {
                for p in self.recorded(cluster) {
                    p.kill();
                }
            }
        }
    }
}

/// A process recorded in a state file.
#[derive(Debug)]
struct Recorded {
    role: String,
    pid: i32,
    start_time: u64,
}

impl Recorded {
    /// Whether the recorded process still runs: same start time, not a zombie.
    fn is_running(&self) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return false;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields[0] != "Z" && fields[19].parse::<u64>().ok() == Some(self.start_time)
    }

    fn kill(&self) {
        if self.is_running() {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }
}

/// Whether tests that need `nats-server` should run (see `grid_bus::testing`).
fn nats_available() -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("nats-server").is_file())
    });
    if !found && std::env::var_os(grid_bus::testing::SKIP_VAR).is_some() {
        eprintln!("skipped: nats-server is not installed");
        return false;
    }
    true
}

fn nats_server() -> Option<NatsServer> {
    NatsServer::start_or_skip()
}

#[test]
fn cluster_start_map_status_and_stop() {
    if !nats_available() {
        return;
    }
    let scene = Scene::new();
    let run = scene.grid(&["cluster", "start", "-n", "2"]).ok();
    let url = run.stdout.trim().to_string();
    assert!(url.starts_with("nats://127.0.0.1:"), "{url}");
    assert!(
        run.stderr.contains(&format!("export GRID_URL={url}")),
        "{}",
        run.stderr
    );
    let recorded = scene.recorded("default");
    let roles: Vec<&str> = recorded.iter().map(|p| p.role.as_str()).collect();
    assert_eq!(roles, ["nats-server", "controller", "engine"]);
    assert!(recorded.iter().all(Recorded::is_running), "{recorded:?}");

    let m = square_wat();
    let run = scene
        .grid(&["map", "--url", &url, &m, "square", "--range", "0..100"])
        .ok();
    assert_eq!(run.lines(), squares(0..100));

    assert_eq!(scene.engines(&url, "default").len(), 2);
    let run = scene.grid(&["status", "--url", &url]).ok();
    assert!(run.stdout.contains("2 engines"), "{}", run.stdout);
    assert_eq!(
        run.lines().iter().filter(|l| l.contains(" idle ")).count(),
        2,
        "{}",
        run.stdout
    );
    let run = scene.grid(&["cluster", "status", "--json"]).ok();
    let status: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(status["url"], url.as_str());
    assert_eq!(status["engines"].as_array().map(Vec::len), Some(2));

    let run = scene.grid(&["cluster", "start", "-n", "1"]);
    assert_eq!(run.code, 1, "a second start of the same cluster is refused");
    run.assert_error_lines();
    assert!(
        run.stderr.contains("cluster `default` is already running"),
        "{}",
        run.stderr
    );

    let run = scene.grid(&["cluster", "stop"]).ok();
    assert!(run.stderr.contains("stopped"), "{}", run.stderr);
    for p in &recorded {
        assert!(!p.is_running(), "{p:?} still runs after stop");
    }
    assert!(!scene.state_dir().join("default.json").exists());
    let run = scene.grid(&["cluster", "stop"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no cluster `default`"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_engine_killed_mid_task_fails_the_task_and_a_new_one_takes_over() {
    let Some(server) = nats_server() else { return };
    let url = server.url();
    let mut scene = Scene::new();
    scene.spawn("controller.log", &["controller", "--url", &url]);
    let engine = scene.spawn("engine.log", &["engine", "--url", &url, "-n", "2"]);
    scene.wait_for_engines(&url, "default", 2);

    let m = square_wat();
    let run = scene
        .grid(&["map", "--url", &url, &m, "square", "--range", "0..100"])
        .ok();
    assert_eq!(run.lines(), squares(0..100));

    let spin = scene.file("spin.wat", SPIN_WAT);
    let apply = scene.spawn_piped(&["apply", "--url", &url, &spin, "spin", "1"]);
    let busy = common::wait_for("an engine running spin", UP, || {
        scene
            .engines(&url, "default")
            .into_iter()
            .find(|(_, state)| state == "busy")
            .map(|(id, _)| id)
    });
    scene.children[engine]
        .kill()
        .expect("kill the engine process");
    let killed = Instant::now();
    let output = common::finish(apply, "grid apply spin");
    let run = common::checked(output, killed.elapsed());
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_error_lines();
    assert!(
        run.stderr.contains(&format!("engine {busy} died")),
        "{}",
        run.stderr
    );
    // The controller's heartbeat timeout is 3 s; a hang would hit DEADLINE.
    assert!(
        run.elapsed < Duration::from_secs(15),
        "the client took {:?} to learn that the engine died",
        run.elapsed
    );
    scene.wait_for_engines(&url, "default", 0);

    scene.spawn("engine2.log", &["engine", "--url", &url, "-n", "1"]);
    scene.wait_for_engines(&url, "default", 1);
    let run = scene
        .grid(&["map", "--url", &url, &m, "square", "--range", "0..10"])
        .ok();
    assert_eq!(run.lines(), squares(0..10));
    assert!(
        scene
            .log("engine2.log")
            .contains("registered at nats://127.0.0.1:"),
        "{}",
        scene.log("engine2.log")
    );
}

#[test]
fn two_clusters_share_a_server_without_seeing_each_other() {
    let Some(server) = nats_server() else { return };
    let url = server.url();
    let mut scene = Scene::new();
    for (cluster, engines) in [("a", "1"), ("b", "2")] {
        scene.spawn(
            &format!("controller-{cluster}.log"),
            &["controller", "--url", &url, "--cluster", cluster],
        );
        scene.spawn(
            &format!("engine-{cluster}.log"),
            &["engine", "--url", &url, "--cluster", cluster, "-n", engines],
        );
    }
    scene.wait_for_engines(&url, "a", 1);
    scene.wait_for_engines(&url, "b", 2);
    let run = scene
        .grid(&["status", "--url", &url, "--cluster", "a"])
        .ok();
    assert!(run.stdout.contains("cluster `a`"), "{}", run.stdout);
    assert!(run.stdout.contains("1 engine,"), "{}", run.stdout);

    let m = square_wat();
    let run = scene
        .grid(&[
            "map",
            "--url",
            &url,
            "--cluster",
            "a",
            &m,
            "square",
            "--range",
            "0..20",
        ])
        .ok();
    assert_eq!(run.lines(), squares(0..20));
    // The environment names the server and the cluster just as well.
    let mut command = scene.command(&["map", &m, "square", "--range", "0..20", "--stats"]);
    command.env("GRID_URL", &url).env("GRID_CLUSTER", "b");
    let run = common::run(command, None).ok();
    assert_eq!(run.lines(), squares(0..20));
    let stats: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("stats");
    assert_eq!(stats["engines"], 2, "the map ran on cluster b");

    // A cluster with no controller is an error, not a hang.
    let run = scene.grid(&["map", "--url", &url, "--cluster", "c", &m, "square", "1"]);
    assert_eq!(run.code, 1);
    run.assert_error_lines();
    assert!(
        run.stderr.contains("no controller of cluster `c`"),
        "{}",
        run.stderr
    );
    // And so is a second controller for a cluster that has one.
    let run = scene.grid(&["controller", "--url", &url, "--cluster", "a"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("already runs"), "{}", run.stderr);
}

#[test]
fn no_server_at_the_url_is_a_one_line_error() {
    let closed = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.local_addr().expect("address").port()
    };
    let url = format!("nats://127.0.0.1:{closed}");
    let scene = Scene::new();
    let m = square_wat();
    for args in [
        vec!["map", "--url", &url, &m, "square", "--range", "0..10"],
        vec!["apply", "--url", &url, &m, "square", "2"],
        vec!["status", "--url", &url],
        vec!["controller", "--url", &url],
        vec!["engine", "--url", &url, "-n", "1"],
    ] {
        let run = scene.grid(&args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert_eq!(
            run.stderr.lines().count(),
            1,
            "{args:?}: one line:\n{}",
            run.stderr
        );
        assert!(
            run.stderr
                .starts_with(&format!("error: cannot connect to {url}: ")),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.elapsed < Duration::from_secs(10), "{args:?} was slow");
    }
}

#[test]
fn cluster_start_without_nats_server_names_the_package() {
    let scene = Scene::new();
    let mut command = scene.command(&["cluster", "start", "-n", "1"]);
    command.env("PATH", scene.dir.path());
    let run = common::run(command, None);
    assert_eq!(run.code, 1);
    run.assert_error_lines();
    assert!(
        run.stderr.contains("nats-server is not on PATH")
            && run.stderr.contains("Debian package `nats-server`"),
        "{}",
        run.stderr
    );
    assert!(
        !scene.state_dir().join("default.json").exists(),
        "a failed start leaves no record"
    );
}

/// A directory holding a fake `nats-server` script with this body, for a
/// PATH that finds it first.
fn fake_nats_server(scene: &Scene, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let bin = scene.dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("create bin");
    let script = bin.join("nats-server");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(bin).chain(std::env::split_paths(&path));
    std::env::join_paths(dirs)
        .expect("a PATH")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_process_that_dies_during_start_is_reported_with_its_log() {
    let scene = Scene::new();
    let path = fake_nats_server(&scene, "echo \"no port for me: $*\" >&2\nexit 3");
    let mut command = scene.command(&["cluster", "start", "-n", "1"]);
    command.env("PATH", path);
    let run = common::run(command, None);
    assert_eq!(run.code, 1);
    let lines = run.lines();
    assert!(lines.is_empty(), "no URL: {lines:?}");
    assert!(
        run.stderr.starts_with(
            "error: cannot start cluster `default`: the nats-server exited (exit status: 3)"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("  | no port for me: -a 127.0.0.1 -p "),
        "the log's last lines: {}",
        run.stderr
    );
    assert!(!scene.state_dir().join("default.json").exists());
}

#[test]
fn an_interrupted_start_stops_what_it_started() {
    let mut scene = Scene::new();
    // A server that never listens: start waits for it.
    let path = fake_nats_server(&scene, "exec sleep 1000");
    let mut command = scene.command(&["cluster", "start", "-n", "1"]);
    command
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Kept by the scene, so that it is killed if the test fails.
    scene.children.push(command.spawn().expect("grid starts"));
    let start = scene.children.len() - 1;
    let server = common::wait_for("the fake server to be recorded", UP, || {
        scene
            .recorded("default")
            .into_iter()
            .find(|p| p.role == "nats-server" && p.is_running())
    });
    let pid = scene.children[start].id();
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = common::wait_for("grid cluster start to exit", UP, || {
        scene.children[start].try_wait().expect("try_wait")
    });
    let mut stderr = String::new();
    let mut pipe = scene.children[start].stderr.take().expect("piped");
    std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("read stderr");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    assert!(!server.is_running(), "the fake server was stopped");
    assert!(!scene.state_dir().join("default.json").exists());
}

#[test]
fn a_command_waits_for_the_first_engines_of_a_cluster() {
    let Some(server) = nats_server() else { return };
    let url = server.url();
    let mut scene = Scene::new();
    scene.spawn("controller.log", &["controller", "--url", &url]);
    let m = square_wat();
    // Waits for the controller to answer: an empty cluster, not a missing one.
    let run = common::wait_for("the controller to answer", UP, || {
        let run = scene.grid(&[
            "apply",
            "--url",
            &url,
            &m,
            "square",
            "3",
            "--wait-engines",
            "0",
        ]);
        Some(run).filter(|r| r.stderr.contains("has no engines"))
    });
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        format!(
            "error: cluster `default` at {url} has no engines: start some with \
             `grid engine --url {url} --cluster default`\n"
        ),
        "--wait-engines 0 does not wait"
    );

    let run = scene.grid(&[
        "map",
        "--url",
        &url,
        &m,
        "square",
        "1",
        "--wait-engines",
        "0.3",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("waiting up to 0.3 s for the engines of cluster `default` at {url}").as_str(),
            format!(
                "error: cluster `default` at {url} has no engines after 0.3 s: start some \
                 with `grid engine --url {url} --cluster default`"
            )
            .as_str(),
        ]
    );
    assert!(
        run.elapsed >= Duration::from_millis(300),
        "{:?}",
        run.elapsed
    );

    // An engine that comes while the command waits serves it.
    let apply = scene.spawn(
        "apply.log",
        &[
            "apply",
            "--url",
            &url,
            &m,
            "square",
            "3",
            "--wait-engines",
            "60",
        ],
    );
    common::wait_for("apply to say that it waits", UP, || {
        scene
            .log("apply.log")
            .contains("waiting up to 60 s for the engines of cluster `default`")
            .then_some(())
    });
    scene.spawn("engine.log", &["engine", "--url", &url, "-n", "1"]);
    let status = common::wait_for("apply to finish", UP, || {
        scene.children[apply].try_wait().expect("try_wait")
    });
    let log = scene.log("apply.log");
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(
        log,
        format!("waiting up to 60 s for the engines of cluster `default` at {url}\n9\n")
    );

    // With engines there, nothing is said about waiting.
    let run = scene
        .grid(&["apply", "--url", &url, &m, "square", "4"])
        .ok();
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("16\n", ""));
}
