//! The subcommands, one file each. Every `run` returns the process's exit
//! code, or an error that `main` prints on one line (see `failure`).

pub mod apply;
pub mod map;
