//! The state file of a cluster started by `grid cluster start`: what `grid
//! cluster stop` and `grid cluster status` need to find it again.
//!
//! One JSON file per cluster name, `<state dir>/<cluster>.json`, next to a
//! directory `<state dir>/<cluster>/` with the processes' logs and the NATS
//! server's storage. The state dir is `$GRID_STATE_DIR`, else
//! `$XDG_STATE_HOME/grid`, else `~/.local/state/grid`. The file holds the URL
//! and every process started, each with the identity that tells it from a
//! later process with the same pid (see `process`). It is created with
//! `create_new`, so two starts of one cluster cannot both claim it, and
//! rewritten by rename, so a reader never sees half a file. A record none
//! of whose processes runs any more is stale: a new start replaces it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};

use crate::process::Recorded;

/// The format of the file, for a reader to refuse one it does not know.
const VERSION: u32 = 1;

/// A cluster started by `grid cluster start`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub version: u32,
    pub cluster: String,
    /// The NATS server's URL.
    pub url: String,
    /// Engine slots asked for.
    pub engines: usize,
    /// The logs and the NATS server's storage.
    pub dir: PathBuf,
    /// In the order started.
    pub processes: Vec<Recorded>,
}

impl ClusterRecord {
    pub fn new(cluster: &str, url: &str, engines: usize, dir: &Path) -> ClusterRecord {
        ClusterRecord {
            version: VERSION,
            cluster: cluster.to_string(),
            url: url.to_string(),
            engines,
            dir: dir.to_path_buf(),
            processes: Vec::new(),
        }
    }

    /// The recorded processes that still run.
    pub fn running(&self) -> Vec<&Recorded> {
        self.processes.iter().filter(|p| p.is_running()).collect()
    }

    /// The recorded processes of `role`.
    pub fn with_role(&self, role: &str) -> Vec<&Recorded> {
        self.processes.iter().filter(|p| p.role == role).collect()
    }
}

/// `$GRID_STATE_DIR`, else `$XDG_STATE_HOME/grid`, else `~/.local/state/grid`.
pub fn state_dir() -> anyhow::Result<PathBuf> {
    let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = nonempty("GRID_STATE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = nonempty("XDG_STATE_HOME") {
        return Ok(PathBuf::from(dir).join("grid"));
    }
    nonempty("HOME")
        .map(|home| PathBuf::from(home).join(".local/state/grid"))
        .ok_or_else(|| anyhow!("no state directory: set GRID_STATE_DIR (or HOME)"))
}

/// The state file of one cluster name.
pub struct StateFile {
    path: PathBuf,
    /// The cluster's directory of logs and storage.
    dir: PathBuf,
}

impl StateFile {
    /// The state file of cluster `cluster` (a valid cluster name, so a safe
    /// file name).
    pub fn of(cluster: &str) -> anyhow::Result<StateFile> {
        let root = state_dir()?;
        Ok(StateFile {
            path: root.join(format!("{cluster}.json")),
            dir: root.join(cluster),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cluster's directory of logs and storage.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record, if there is one.
    pub fn read(&self) -> anyhow::Result<Option<ClusterRecord>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| self.cannot("read")),
        };
        let record: ClusterRecord = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a cluster record", self.path.display()))?;
        if record.version != VERSION {
            return Err(anyhow!(
                "{} has format version {}, this grid knows {VERSION}",
                self.path.display(),
                record.version
            ));
        }
        Ok(Some(record))
    }

    /// Writes the first record; fails if there already is one.
    pub fn create(&self, record: &ClusterRecord) -> anyhow::Result<Created> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).with_context(|| {
                format!("cannot create the state directory {}", parent.display())
            })?;
        }
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Created::Exists),
            Err(e) => return Err(e).with_context(|| self.cannot("create")),
        };
        file.write_all(&to_json(record)?)
            .with_context(|| self.cannot("write"))?;
        Ok(Created::Yes)
    }

    /// Replaces the record, atomically.
    pub fn write(&self, record: &ClusterRecord) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, to_json(record)?).with_context(|| self.cannot("write"))?;
        std::fs::rename(&tmp, &self.path).with_context(|| self.cannot("write"))
    }

    /// Removes the record (gone already is fine).
    pub fn remove(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).with_context(|| self.cannot("remove"))
            }
            _ => Ok(()),
        }
    }

    fn cannot(&self, what: &str) -> String {
        format!("cannot {what} the state file {}", self.path.display())
    }
}

/// Whether [`StateFile::create`] claimed the file.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    Yes,
    Exists,
}

fn to_json(record: &ClusterRecord) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(record).context("cannot encode the state")?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_in(dir: &Path) -> StateFile {
        StateFile {
            path: dir.join("c.json"),
            dir: dir.join("c"),
        }
    }

    #[test]
    fn records_round_trip_and_are_claimed_once() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let file = file_in(tmp.path());
        assert_eq!(file.read().expect("read"), None);
        let mut record = ClusterRecord::new("c", "nats://127.0.0.1:1", 2, file.dir());
        assert_eq!(file.create(&record).expect("create"), Created::Yes);
        assert_eq!(file.create(&record).expect("create"), Created::Exists);
        let me = Recorded::identify("starter", std::process::id(), vec!["grid".into()], None)
            .expect("identify");
        record.processes.push(me);
        file.write(&record).expect("write");
        let read = file.read().expect("read").expect("a record");
        assert_eq!(read, record);
        assert_eq!(read.running().len(), 1);
        assert_eq!(read.with_role("starter").len(), 1);
        file.remove().expect("remove");
        file.remove().expect("removing twice is fine");
        assert_eq!(file.read().expect("read"), None);
    }

    #[test]
    fn a_foreign_file_is_an_error() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let file = file_in(tmp.path());
        std::fs::write(file.path(), "{\"hello\": 1}").expect("write");
        let e = file.read().unwrap_err().to_string();
        assert!(e.contains("is not a cluster record"), "{e}");
    }
}
