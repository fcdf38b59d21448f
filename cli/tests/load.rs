//! Many `grid map` processes at once against one NATS cluster (issue 10,
//! trap 0): before the client bounded what it has in flight and learned to
//! recover lost tasks, twenty clients of 5,000 unchunked tasks against a
//! controller and one engine process of two slots left seven of them
//! hanging, after the controller's subscriptions dropped messages. Every
//! client must finish with every value right.
//!
//! The CI pass runs twenty clients of 5,000 tasks on debug builds;
//! `bench/load` runs the issue's fifty of 10,000 on release builds. Set
//! `GRID_LOAD_CLIENTS` and `GRID_LOAD_TASKS` to change the size here.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Processes;
use grid_bus::testing::NatsServer;

/// For the cluster to come up.
const UP: Duration = Duration::from_secs(60);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn many_concurrent_clients_all_finish_with_every_value() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let url = server.url();
    let clients = env_or("GRID_LOAD_CLIENTS", 20);
    let tasks = env_or("GRID_LOAD_TASKS", 5_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    let module = dir.path().join("square.wat");
    std::fs::write(
        &module,
        r#"(module (func (export "square") (param i64) (result i64)
             local.get 0 local.get 0 i64.mul))"#,
    )
    .expect("write module");
    let module = module.display().to_string();

    let log = |name: &str| {
        let file = std::fs::File::create(dir.path().join(name)).expect("log file");
        let err = file.try_clone().expect("log file");
        (Stdio::from(file), Stdio::from(err))
    };
    let mut cluster = Processes(Vec::new());
    for (name, args) in [
        ("controller.log", vec!["controller", "--url", &url]),
        ("engine.log", vec!["engine", "--url", &url, "-n", "2"]),
    ] {
        let (out, err) = log(name);
        let child = common::grid_command(&args, &cache)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("grid starts");
        cluster.0.push(child);
    }
    common::wait_for("two engines", UP, || {
        let run = common::run(
            common::grid_command(&["status", "--url", &url, "--json"], &cache),
            None,
        );
        let status: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
        (status["engines"].as_array()?.len() == 2).then_some(())
    });

    let range = format!("0..{tasks}");
    let started = Instant::now();
    let maps: Vec<Child> = (0..clients)
        .map(|_| {
            common::grid_command(
                &["map", "--url", &url, &module, "square", "--range", &range],
                &cache,
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("grid map starts")
        })
        .collect();
    let expected: String = (0..tasks as i64).map(|i| format!("{}\n", i * i)).collect();
    for (k, map) in maps.into_iter().enumerate() {
        let output = common::finish(map, &format!("client {k}"));
        let run = common::checked(output, started.elapsed());
        assert_eq!(run.code, 0, "client {k} failed:\n{}", run.stderr);
        assert!(
            run.stdout == expected,
            "client {k}: {} lines, not the {tasks} squares in order",
            run.stdout.lines().count()
        );
    }
    eprintln!(
        "{clients} clients x {tasks} tasks: {:.1} s, {:.0} tasks/s",
        started.elapsed().as_secs_f64(),
        (clients * tasks) as f64 / started.elapsed().as_secs_f64()
    );
}
