//! A controller that dies, with real processes on a real NATS server: a
//! `grid map` whose tasks wait in a controller killed with SIGKILL fails
//! them within its controller timeout, naming the controller, instead of
//! hanging; a controller killed in the middle of a map and started again on
//! the same `--db` takes over (the map finishes with every value right, the
//! engines keep their ids, every result recorded before the crash is still
//! there, and the others are recorded too, those published while no
//! controller ran included); an engine declared dead after an outage
//! (SIGSTOP past the heartbeat timeout) comes back by itself under its id.
//!
//! Each test has its own nats-server, directories and processes, killed by
//! a guard even when the test fails. Conditions are polled, with deadlines
//! that only run out when something is wrong.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use grid_bus::testing::NatsServer;
use grid_client::{Client, EngineId, RecordStatus, TaskFilter};
use tempfile::TempDir;

/// For the cluster to come up, or to notice a change.
const UP: Duration = Duration::from_secs(60);

/// Tasks of the map, each a sleep of `SLEEP_MS`: enough that many still
/// wait when the controller dies, few enough for a test.
const TASKS: usize = 400;
const SLEEP_MS: u64 = 10;

/// A test's directory and the `grid` processes it started.
struct Scene {
    dir: TempDir,
    url: String,
    children: Vec<(String, Child)>,
}

impl Scene {
    fn new(server: &NatsServer) -> Scene {
        Scene {
            dir: tempfile::tempdir().expect("temp dir"),
            url: server.url(),
            children: Vec::new(),
        }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Starts `grid args...` in the background, its output to `NAME.log`.
    fn spawn(&mut self, name: &str, args: &[&str]) {
        let log =
            std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log file");
        let child = common::grid_command(args, &self.cache())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("grid starts");
        self.children.push((name.to_string(), child));
    }

    fn controller(&mut self, db: Option<&Path>) {
        let url = self.url.clone();
        let db = db.map(|p| p.display().to_string());
        let mut args = vec!["controller", "--url", &url];
        if let Some(db) = &db {
            args.extend(["--db", db.as_str()]);
        }
        self.spawn("controller", &args);
    }

    /// Kills the controller with SIGKILL, as a crash would.
    fn kill_controller(&mut self) {
        let (_, child) = self
            .children
            .iter_mut()
            .find(|(name, _)| name == "controller")
            .expect("a controller runs");
        child.kill().expect("kill the controller");
        child.wait().expect("reap the controller");
        self.children.retain(|(name, _)| name != "controller");
    }

    /// `grid map` of `sleep_ms` over TASKS unchunked tasks of [`SLEEP_MS`], piped.
    fn map(&self, guest: &str) -> Child {
        let mut command = common::grid_command(
            &[
                "map",
                "--url",
                &self.url,
                "--controller-timeout",
                "3",
                guest,
                "sleep_ms",
            ],
            &self.cache(),
        );
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("grid map starts");
        let items = format!("{SLEEP_MS}\n").repeat(TASKS);
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(items.as_bytes()).expect("items written");
        child
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A client of the scene's cluster, on a runtime of its own.
fn client(url: &str) -> Client {
    Client::connect(url, grid_client::DEFAULT_CLUSTER).expect("a client connects")
}

/// The Rust example guest, or `None` (skipped) when it cannot be built here.
fn rust_guest() -> Option<String> {
    grid_examples::require_path(grid_examples::rust_guest()).map(|p| p.display().to_string())
}

/// How many tasks the controller's store holds as ok.
fn recorded_ok(client: &Client) -> Option<usize> {
    let ok = TaskFilter::new().status_in([RecordStatus::Ok]);
    client
        .db_query(ok, &[grid_client::RecordKey::Stderr])
        .ok()
        .map(|r| r.len())
}

#[test]
fn a_controller_killed_mid_map_fails_its_waiting_tasks_naming_it() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let Some(guest) = rust_guest() else { return };
    let mut scene = Scene::new(&server);
    scene.controller(None);
    let url = scene.url.clone();
    scene.spawn("engine", &["engine", "--url", &url, "-n", "1"]);
    let watcher = client(&url);
    common::wait_for("one engine", UP, || {
        (watcher.ids().ok()?.len() == 1).then_some(())
    });
    let map = scene.map(&guest);
    common::wait_for("some results recorded", UP, || {
        (recorded_ok(&watcher)? >= 20).then_some(())
    });
    scene.kill_controller();
    let killed = Instant::now();
    let output = common::finish(map, "grid map");
    let run = common::checked(output, killed.elapsed());
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the controller has not been heard from"),
        "{}",
        run.stderr
    );
    // The bound (3 s here) and a watchdog period or two; a hang would hit
    // the harness's deadline.
    assert!(
        run.elapsed < Duration::from_secs(20),
        "the client took {:?} to give up on the controller",
        run.elapsed
    );
}

#[test]
fn a_controller_restarted_on_its_db_takes_over_a_running_map() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let Some(guest) = rust_guest() else { return };
    let mut scene = Scene::new(&server);
    let db = scene.dir.path().join("tasks.db");
    scene.controller(Some(&db));
    let url = scene.url.clone();
    scene.spawn("engine", &["engine", "--url", &url, "-n", "2"]);
    let watcher = client(&url);
    let engines = common::wait_for("two engines", UP, || {
        Some(watcher.engines().ok()?).filter(|e| e.len() == 2)
    });

    let map = scene.map(&guest);
    // A query writes what is pending first: these are on disk.
    let before_crash = common::wait_for("results recorded", UP, || {
        recorded_ok(&watcher).filter(|&n| n >= 60)
    });
    scene.kill_controller();
    std::thread::sleep(Duration::from_millis(500));
    scene.controller(Some(&db));

    let output = common::finish(map, "grid map");
    let run = common::checked(output, Duration::ZERO);
    assert_eq!(
        run.code,
        0,
        "{}\ncontroller:\n{}",
        run.stderr,
        scene.log("controller")
    );
    assert_eq!(run.lines(), vec![SLEEP_MS.to_string(); TASKS]);

    // The engines are back under their ids and uuids.
    let again = common::wait_for("the engines back", UP, || {
        Some(watcher.engines().ok()?).filter(|e| e.len() == 2)
    });
    assert_eq!(again, engines);
    assert_eq!(watcher.ids().unwrap(), vec![EngineId(0), EngineId(1)]);
    // Nothing recorded before the crash is lost, and every other result is
    // recorded too: those that came after the restart, and those the
    // engines published while no controller ran (they publish the latest
    // again for a new controller).
    common::wait_for("every result recorded", UP, || {
        recorded_ok(&watcher).filter(|&n| n == TASKS)
    });
    assert!(before_crash <= TASKS);
    // The new controller schedules as the old one did.
    let run = common::run(
        common::grid_command(
            &["map", "--url", &url, &guest, "square", "--range", "0..50"],
            &scene.cache(),
        ),
        None,
    )
    .ok();
    assert_eq!(run.lines().len(), 50);
}

#[test]
fn an_engine_declared_dead_after_an_outage_comes_back_by_itself() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let mut scene = Scene::new(&server);
    scene.controller(None);
    let url = scene.url.clone();
    scene.spawn("engine", &["engine", "--url", &url, "-n", "1"]);
    let watcher = client(&url);
    let before = common::wait_for("one engine", UP, || {
        Some(watcher.engines().ok()?).filter(|e| e.len() == 1)
    });
    // An outage: the engine process stops answering for longer than the
    // controller's heartbeat timeout (3 s), then carries on.
    let (_, engine) = scene
        .children
        .iter()
        .find(|(name, _)| name == "engine")
        .expect("the engine runs");
    let pid = Pid::from_raw(engine.id() as i32);
    kill(pid, Signal::SIGSTOP).expect("stop the engine");
    common::wait_for("the engine declared dead", UP, || {
        watcher.engines().ok()?.is_empty().then_some(())
    });
    kill(pid, Signal::SIGCONT).expect("continue the engine");
    let after = common::wait_for("the engine back", UP, || {
        Some(watcher.engines().ok()?).filter(|e| e.len() == 1)
    });
    assert_eq!(after, before, "same id, uuid and host");
    let run = common::run(
        common::grid_command(
            &[
                "map",
                "--url",
                &url,
                &square_wat(),
                "square",
                "--range",
                "0..20",
            ],
            &scene.cache(),
        ),
        None,
    )
    .ok();
    assert_eq!(run.lines().len(), 20);
}

fn square_wat() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/guests/wat/square.wat")
        .display()
        .to_string()
}
