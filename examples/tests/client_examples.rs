//! Runs every client program of `examples/examples/` (each one's `main`, in
//! this process), so the examples a user copies keep compiling and keep
//! doing what their comments say: each asserts what it shows.

#[path = "../examples/abort.rs"]
mod abort;
#[path = "../examples/arrays.rs"]
mod arrays;
#[path = "../examples/commands.rs"]
mod commands;
#[allow(dead_code)] // its `main`: the test calls `run` with fewer tasks
#[path = "../examples/dag.rs"]
mod dag;
#[path = "../examples/data.rs"]
mod data;
#[path = "../examples/errors.rs"]
mod errors;
#[allow(dead_code)] // its `main`: the test calls `run` with fewer items
#[path = "../examples/maps.rs"]
mod maps;
#[path = "../examples/metadata.rs"]
mod metadata;
#[path = "../examples/views.rs"]
mod views;

#[test]
fn commands_live_output_and_reproducible_runs() {
    commands::main().unwrap();
}

#[test]
fn numeric_arrays() {
    arrays::main().unwrap();
}

#[test]
fn views_and_slices() {
    views::main().unwrap();
}

#[test]
fn maps_and_imap() {
    // `main` maps a million items: fine in release, some 20 s in a debug build.
    maps::run(100_000).unwrap();
}

#[test]
fn data_movement_and_references() {
    data::main().unwrap();
}

#[test]
fn metadata_and_timing() {
    metadata::main().unwrap();
}

#[test]
fn abort_queued_and_running_tasks() {
    abort::main().unwrap();
}

#[test]
fn remote_errors() {
    errors::main().unwrap();
}

#[test]
fn task_graph_with_after() {
    // `main` runs 200 tasks of 1 to 5 ms; 60 show the same in less time.
    dag::run(60, 7).unwrap();
}
