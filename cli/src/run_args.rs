//! Options shared by the commands that run modules: reproducibility
//! (`--deterministic`, `--seed`, `--fuel`), retries (`--retries`) and
//! directory grants (`--dir`).
//!
//! `--deterministic` runs every task in deterministic mode (virtual clocks,
//! seeded random bytes, canonical NaNs, fuel metering, a fresh instance per
//! item; see `guest-sdk/ABI.md`); `--seed N` picks the random seed (and
//! implies it). `--fuel` turns fuel metering on in the local cluster's
//! engines so results report the fuel they used (a remote cluster meters
//! when its engines were started with `grid engine --fuel`, and always in
//! deterministic mode). `--dir HOST[::GUEST]` grants a command read-only
//! access to a directory, as wasmtime's CLI spells it: the guest sees it at
//! GUEST, by default at HOST as written (`--dir .` is its working
//! directory). A remote engine grants only what its operator allowed
//! (`grid engine --allow-dir`).

use std::path::{Path, PathBuf};

use clap::Args;
use grid_client::{Command, LoadBalancedView};
use grid_host::EngineConfig;

use crate::failure::usage;

/// `--deterministic`, `--seed` and `--fuel`.
#[derive(Args, Debug, Clone, Default)]
pub struct ReproArgs {
    /// Run reproducibly: the same module and input give the same value,
    /// output and fuel on every engine and machine (virtual clocks, seeded
    /// random bytes, fuel metering)
    #[arg(long)]
    pub deterministic: bool,

    /// The seed of the guest's random bytes (implies --deterministic);
    /// without it each task's seed comes from its module and input
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Count fuel (wasm instructions) in the local cluster's engines;
    /// results then report the fuel they used
    #[arg(long)]
    pub fuel: bool,
}

impl ReproArgs {
    /// The local cluster's engine configuration.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig::default().fuel_metering(self.fuel)
    }

    /// `view` with these options.
    pub fn apply(&self, view: LoadBalancedView) -> LoadBalancedView {
        match self.seed {
            Some(seed) => view.seed(seed),
            None => view.deterministic(self.deterministic),
        }
    }
}

/// `--retries N` of the commands that place work by the scheduler.
#[derive(Args, Debug, Clone, Default)]
pub struct RetryArgs {
    /// Run a task that fails (a trap, an error, a limit, its engine dying)
    /// again, up to N more times, each time on an engine where it has not
    /// failed yet when there is one; only its last outcome is reported
    #[arg(long, value_name = "N", default_value = "0")]
    pub retries: u32,
}

impl RetryArgs {
    /// `view` with these options.
    pub fn apply(&self, view: LoadBalancedView) -> LoadBalancedView {
        view.retries(self.retries)
    }
}

/// `--dir HOST[::GUEST]`, repeatable.
#[derive(Args, Debug, Clone, Default)]
pub struct DirArgs {
    /// Grant read-only access to directory HOST, seen by the guest at GUEST
    /// (default: HOST as written; `--dir .` is the working directory)
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    pub dirs: Vec<(PathBuf, String)>,
}

impl DirArgs {
    /// `command` with these grants.
    pub fn grant(&self, mut command: Command) -> anyhow::Result<Command> {
        for (host, guest) in &self.dirs {
            command = command
                .dir(host, guest.clone())
                .map_err(|e| usage(e.to_string()))?;
        }
        Ok(command)
    }
}

/// The `argv[0]` a command module gets: its file name, as a shell would
/// give a program its name.
pub fn program_name(module: &Path) -> String {
    module.file_name().map_or_else(
        || module.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Parses `HOST[::GUEST]`; HOST must be a directory.
pub fn parse_dir(text: &str) -> Result<(PathBuf, String), String> {
    let (host, guest) = match text.split_once("::") {
        Some((host, guest)) => (host, guest),
        None => (text, text),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("`{text}` is not HOST[::GUEST]"));
    }
    if !std::path::Path::new(host).is_dir() {
        return Err(format!("{host} is not a directory"));
    }
    Ok((PathBuf::from(host), guest.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_are_host_and_guest() {
        assert_eq!(parse_dir("."), Ok((PathBuf::from("."), ".".to_string())));
        assert_eq!(
            parse_dir("/tmp::data"),
            Ok((PathBuf::from("/tmp"), "data".to_string()))
        );
        assert!(parse_dir("/no/such/dir").is_err());
        assert!(parse_dir("::x").is_err());
    }
}
