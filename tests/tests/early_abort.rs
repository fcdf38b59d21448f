//! An abort sent right after its submission always wins (issue 10, trap 2),
//! on both buses (`local::` and `nats::`).
//!
//! `apply_async(...)?.abort()` publishes the task (on `sched.submit`, or on
//! `engine.<id>.task` for a direct view) and then asks the controller on
//! `hub.abort`: different subjects, read by different subscriptions, so the
//! controller may see the abort first. Each test does that many times with a
//! task that never ends by itself (a spin loop), so an abort that is lost
//! shows as a task that never answers; every task must end `aborted` within a
//! generous deadline, and the engine must then be free for a quick task.

use std::time::{Duration, Instant};

use grid_client::{AsyncResult, EngineId, Error, Function, Status, Value};
use grid_tests::{Backend, Cluster, on_both_buses};

on_both_buses!(
    load_balanced_tasks_aborted_at_once_never_run,
    direct_tasks_aborted_at_once_never_run,
);

/// Runs until interrupted: only an abort ends it.
const SPIN: &str = r#"(module (func (export "spin") (loop br 0)))"#;

/// Submit-and-abort rounds per test: enough that a race lost half the time
/// (or even a few percent of the time) shows.
const ROUNDS: usize = 50;

/// For all the rounds together; only reached when an abort was lost.
const PATIENCE: Duration = Duration::from_secs(10);

/// Which view the tasks go through.
#[derive(Clone, Copy, Debug)]
enum Via {
    LoadBalanced,
    Direct,
}

fn load_balanced_tasks_aborted_at_once_never_run(backend: Backend) {
    aborted_at_once(backend, Via::LoadBalanced);
}

fn direct_tasks_aborted_at_once_never_run(backend: Backend) {
    aborted_at_once(backend, Via::Direct);
}

fn aborted_at_once(backend: Backend, via: Via) {
    let client = grid_tests::cluster(backend, 1);
    let spin = client
        .module_from_bytes(SPIN.as_bytes())
        .expect("spin module uploads")
        .func("spin");
    let square = client
        .load_module(grid_examples::wat_square())
        .expect("square module uploads")
        .func("square");
    // The engine is up and serving before the clock starts.
    assert_eq!(quick_task(&client, via, &square), Ok(Value::from(36)));

    let start = Instant::now();
    let results: Vec<AsyncResult> = (0..ROUNDS)
        .map(|_| {
            let r = submit(&client, via, &spin);
            r.abort().expect("abort request answered");
            r
        })
        .collect();
    let deadline = start + PATIENCE;
    let mut lost = Vec::new();
    for (round, r) in results.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        match r.get(Some(left)) {
            Err(Error::Remote(e)) if e.kind() == "aborted" => {
                assert_eq!(r.metadata()[0].status, Some(Status::Aborted));
            }
            Err(Error::Timeout(_)) => lost.push(round),
            other => panic!("round {round}: expected `aborted`, got {other:?}"),
        }
    }
    if !lost.is_empty() {
        // Known by now wherever they are: free the engine so the cluster
        // stops promptly, then fail.
        for &round in &lost {
            let _ = results[round].abort();
        }
        panic!(
            "{via:?} on {backend:?}: {} of {ROUNDS} tasks aborted right after submission \
             still ran (rounds {lost:?})",
            lost.len()
        );
    }
    assert_eq!(
        quick_task(&client, via, &square),
        Ok(Value::from(36)),
        "the engine is free again"
    );
}

fn submit(client: &Cluster, via: Via, f: &Function) -> AsyncResult {
    let args = Vec::<Value>::new();
    let submitted = match via {
        Via::LoadBalanced => client.load_balanced_view().apply_async(f, args),
        Via::Direct => client.view_one(EngineId(0)).apply_async(f, args),
    };
    submitted.expect("task submitted")
}

/// `square(6)` through `via`, within [`PATIENCE`]; the error as text.
fn quick_task(client: &Cluster, via: Via, square: &Function) -> Result<Value, String> {
    let args = [Value::from(6)];
    let submitted = match via {
        Via::LoadBalanced => client.load_balanced_view().apply_async(square, args),
        Via::Direct => client.view_one(EngineId(0)).apply_async(square, args),
    };
    submitted
        .and_then(|r| r.get(Some(PATIENCE)))
        .map_err(|e| e.to_string())
}
