//! A task graph: ipyparallel's DAG example in Rust. It draws a random
//! directed acyclic graph of N tasks (each node takes up to three parents
//! among the nodes before it), submits every node at once to the
//! load-balanced view with `after(parents)`, so the scheduler, not this
//! program, holds each task until its parents have finished, waits for
//! all, and then checks from the metadata that every task started no
//! earlier than the last of its parents completed. It prints the critical
//! path (the longest chain, summing each task's run time) beside the wall
//! time: how close the cluster came to the best that the graph and two
//! engines allow.
//!
//! It must not wait for anything between submissions (that would hide
//! whether the scheduler honours `after`), and it asserts nothing about
//! timing beyond that order, which holds on any machine however loaded.
//! Each task is `sleep_ms` of the Rust example guest, 1 to 5 ms.
//!
//! Run it with `cargo run -p grid-examples --example dag -- --tasks 200 --seed 7`;
//! it exits non-zero when a check fails.

use std::time::{Duration, Instant};

use grid_client::{AsyncResult, Client, Dependency, Value};

/// Tasks wait for their parents in the scheduler; this bounds the whole run.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The local cluster's engines.
const ENGINES: usize = 2;

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut tasks, mut seed) = (200usize, 1u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = || {
            let value = args.next().unwrap_or_default();
            value
                .parse()
                .map_err(|_| format!("{arg} takes a number, not {value:?}"))
        };
        match arg.as_str() {
            "--tasks" => tasks = number()? as usize,
            "--seed" => seed = number()?,
            other => return Err(format!("unexpected argument {other:?}").into()),
        }
    }
    run(tasks, seed)
}

/// Node `i`'s parents: 0 to 3 distinct nodes before `i`, drawn from `seed`.
pub fn random_dag(tasks: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..tasks)
        .map(|i| {
            let wanted = rng.usize(0..=3).min(i);
            let mut parents = Vec::with_capacity(wanted);
            while parents.len() < wanted {
                let p = rng.usize(0..i);
                if !parents.contains(&p) {
                    parents.push(p);
                }
            }
            parents
        })
        .collect()
}

/// The graph of `tasks` nodes from `seed`, run, checked and reported.
pub fn run(tasks: usize, seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    let Some(guest) = grid_examples::require_path(grid_examples::rust_guest()) else {
        return Ok(()); // the Rust example guests are not built here
    };
    let graph = random_dag(tasks, seed);
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
    let sleeps: Vec<u64> = (0..tasks).map(|_| rng.u64(1..=5)).collect();

    let client = Client::local(ENGINES)?;
    let sleep_ms = client.load_module(guest)?.func("sleep_ms");
    // Every engine compiles the module first, so the wall time is the graph's.
    client.view_all()?.apply_sync(&sleep_ms, [Value::from(0)])?;
    let lb = client.load_balanced_view();

    // Every node at once, in order: a node's parents were submitted before
    // it, so their msg ids are known; the scheduler does the waiting.
    let started = Instant::now();
    let mut results: Vec<AsyncResult> = Vec::with_capacity(tasks);
    for (parents, ms) in graph.iter().zip(&sleeps) {
        let after = Dependency::new(parents.iter().flat_map(|&p| results[p].msg_ids()));
        results.push(
            lb.clone()
                .after(after)
                .apply(&sleep_ms, [Value::from(*ms)])?,
        );
    }
    for (node, result) in results.iter().enumerate() {
        if result.get(Some(TIMEOUT))? != Value::from(sleeps[node]) {
            return Err(format!("task {node} returned a wrong value").into());
        }
    }
    let wall = started.elapsed();

    // (started, completed) of each node, in microseconds.
    let mut times = Vec::with_capacity(tasks);
    for (node, result) in results.iter().enumerate() {
        let md = result.metadata();
        match md.first().map(|m| (m.started, m.completed)) {
            Some((Some(s), Some(c))) => times.push((s.as_micros(), c.as_micros())),
            _ => return Err(format!("task {node} has no start or end time").into()),
        }
    }

    // The check of ipyparallel's `validate_tree`: no task before its parents.
    let mut early = Vec::new();
    for (node, parents) in graph.iter().enumerate() {
        let ready = parents.iter().map(|&p| times[p].1).max().unwrap_or(0);
        if times[node].0 < ready {
            early.push(format!(
                "task {node} started {} us before its parents were done",
                ready - times[node].0
            ));
        }
    }
    let edges: usize = graph.iter().map(Vec::len).sum();
    println!("DAG of {tasks} tasks and {edges} edges (seed {seed}) on {ENGINES} engines");
    if !early.is_empty() {
        return Err(format!(
            "{} of {tasks} tasks started too early: {}",
            early.len(),
            early.join("; ")
        )
        .into());
    }
    println!("every task started after all its parents completed");

    // Longest path by task time; nodes are in topological order already.
    let run_us: Vec<u64> = times.iter().map(|(s, c)| c - s).collect();
    let mut path_us = vec![0u64; tasks];
    let mut path_len = vec![0usize; tasks];
    for (node, parents) in graph.iter().enumerate() {
        let longest = parents.iter().max_by_key(|&&p| path_us[p]);
        path_us[node] = run_us[node] + longest.map_or(0, |&p| path_us[p]);
        path_len[node] = 1 + longest.map_or(0, |&p| path_len[p]);
    }
    let end = (0..tasks).max_by_key(|&n| path_us[n]);
    let (critical_us, critical_len) = end.map_or((0, 0), |n| (path_us[n], path_len[n]));
    let serial_us: u64 = run_us.iter().sum();
    // No schedule beats the critical path, nor the serial time spread evenly.
    let bound_us = critical_us.max(serial_us / ENGINES as u64);
    let ms = |us: u64| us as f64 / 1000.0;
    let wall_ms = wall.as_secs_f64() * 1000.0;
    println!(
        "critical path: {critical_len} tasks, {:.1} ms of task time; serial time {:.1} ms",
        ms(critical_us),
        ms(serial_us),
    );
    println!(
        "wall time {wall_ms:.1} ms: {:.2}x the least possible on {ENGINES} engines \
         ({:.1} ms, the larger of the critical path and the serial time / {ENGINES})",
        wall_ms / ms(bound_us.max(1)),
        ms(bound_us),
    );
    Ok(())
}
