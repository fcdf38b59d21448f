//! Module and function handles.
//!
//! A [`Module`] is a wasm binary (`.wat` text is turned into binary first)
//! identified by its sha256; the client uploads it to the cluster's blob
//! store once, and tasks carry only the hash. Uploading counts as a use of
//! it, as does every task that runs it: the cluster's blob collector only
//! deletes a module no one has used for a long while, and loading it again
//! uploads it again. A [`Function`] names an export of a module; it is what
//! views apply and map.

use std::path::Path;

use grid_proto::ModuleHash;

/// A module known to the cluster by hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    hash: ModuleHash,
    name: String,
}

impl Module {
    pub(crate) fn new(hash: ModuleHash, name: String) -> Module {
        Module { hash, name }
    }

    pub fn hash(&self) -> ModuleHash {
        self.hash
    }

    /// Where the module came from (a path or `<bytes>`), for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A handle on the export `name`.
    pub fn func(&self, name: &str) -> Function {
        Function {
            module: self.hash,
            name: name.to_string(),
        }
    }
}

/// An exported function of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub module: ModuleHash,
    pub name: String,
}

/// Reads a module file and turns `.wat` text into a binary.
pub(crate) fn read_module(path: &Path) -> Result<Vec<u8>, crate::Error> {
    let err = |reason: String| crate::Error::Module {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    binary(&bytes).map_err(err)
}

/// A wasm binary from wasm or WAT bytes.
pub(crate) fn binary(bytes: &[u8]) -> Result<Vec<u8>, String> {
    wat::parse_bytes(bytes)
        .map(|b| b.into_owned())
        .map_err(|e| format!("not a wasm binary, and not valid WAT text: {e}"))
}
