//! Where the work runs: a local cluster in this process, and the module
//! uploaded to it.
//!
//! `--engines N` starts a controller and N engine slots on an in-process bus
//! (`Client::local_with`); the CLI then talks to them only through the
//! client library, as it would to a remote cluster. A module file is read
//! before the cluster starts, so that a missing file fails fast, and a
//! missing file and a file that is not wasm get their own one-line messages.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use grid_client::{Client, Error, Module};
use grid_host::EngineConfig;

use crate::failure::{one_line, usage};

/// The `--engines` option.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Engines to start in the local cluster [default: the number of cores]
    #[arg(long, value_name = "N")]
    pub engines: Option<NonZeroUsize>,
}

impl ClusterArgs {
    /// The number of engines to start.
    pub fn engines(&self) -> usize {
        self.engines
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
    }

    /// Starts the local cluster and connects to it.
    pub fn connect(&self) -> anyhow::Result<Client> {
        let engines = self.engines();
        Client::local_with(engines, EngineConfig::default())
            .with_context(|| format!("cannot start a local cluster of {engines} engines"))
    }
}

/// A module file read from disk, not yet uploaded.
pub struct ModuleFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl ModuleFile {
    /// Reads the module at `path` (`.wasm`, or `.wat` text).
    pub fn read(path: &Path) -> anyhow::Result<ModuleFile> {
        let bytes = std::fs::read(path)
            .map_err(|e| usage(format!("cannot read module {}: {e}", path.display())))?;
        Ok(ModuleFile {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// The path, for messages.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Uploads the module to the cluster (text is turned into wasm first).
    pub fn upload(&self, client: &Client) -> anyhow::Result<Module> {
        client.module_from_bytes(&self.bytes).map_err(|e| match e {
            Error::Module { reason, .. } => usage(format!(
                "{}: invalid module: {}",
                self.name(),
                wat_reason(&reason)
            )),
            other => {
                anyhow::Error::new(other).context(format!("cannot upload module {}", self.name()))
            }
        })
    }
}

/// The client's reason for rejecting a module, on one line: the WAT parser's
/// message draws the offending source line under a `--> <anon>:L:C` line;
/// keep the message and the position.
fn wat_reason(reason: &str) -> String {
    let head = reason.lines().next().unwrap_or_default().trim();
    let at = reason.lines().find_map(|l| {
        let location = l.trim().strip_prefix("-->")?.trim();
        let (rest, column) = location.rsplit_once(':')?;
        let (_, line) = rest.rsplit_once(':')?;
        Some(format!(" (line {line}, column {column})"))
    });
    match at {
        Some(at) => format!("{head}{at}"),
        None => one_line(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wat_errors_keep_message_and_position() {
        let reason = "not a wasm binary, and not valid WAT text: expected `(`\n     \
                      --> <anon>:3:7\n      |\n    3 | garbage\n      |       ^";
        assert_eq!(
            wat_reason(reason),
            "not a wasm binary, and not valid WAT text: expected `(` (line 3, column 7)"
        );
        assert_eq!(wat_reason("short\nreason"), "short reason");
    }
}
