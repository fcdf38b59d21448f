//! The subcommands, one file each (`cluster` is a directory: it has
//! subcommands of its own). Every `run` returns the process's exit code, or
//! an error that `main` prints on one line (see `failure`).

pub mod apply;
pub mod cluster;
pub mod controller;
pub mod engine;
pub mod map;
pub mod results;
pub mod run;
pub mod status;
pub mod test;
