//! Identifiers and timestamps: small types that say what a number or a string is.
//!
//! `MsgId` names one task everywhere (client, controller, engine, result);
//! it is a UUIDv7, so ids sort by creation time. `ModuleHash` and `ArgsHash`
//! are sha256 digests, shown as hex, and on the wire a CBOR byte string of
//! 32 bytes (34 with its header; an array of 32 integers would take ~58). `Timestamp` is microseconds since the Unix
//! epoch, the resolution the metadata needs, and cheap to carry.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The unique id of one task, chosen by the client that submits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MsgId(pub uuid::Uuid);

impl MsgId {
    /// A new id, ordered after every id made before it in this process.
    pub fn new() -> Self {
        MsgId(uuid::Uuid::now_v7())
    }
}

impl Default for MsgId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The form `Display` writes (any form of a uuid, in fact).
impl FromStr for MsgId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(MsgId)
    }
}

/// The small integer id of an engine slot within a cluster (0, 1, 2, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EngineId(pub u32);

impl fmt::Display for EngineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The globally unique id of an engine slot, stable for its lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EngineUuid(pub uuid::Uuid);

impl EngineUuid {
    pub fn new() -> Self {
        EngineUuid(uuid::Uuid::new_v4())
    }

    /// No engine's uuid (all zeros): a placeholder.
    pub fn nil() -> Self {
        EngineUuid(uuid::Uuid::nil())
    }

    pub fn is_nil(&self) -> bool {
        self.0.is_nil()
    }
}

impl Default for EngineUuid {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EngineUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A hex string that is not a sha256 digest.
#[derive(Debug, thiserror::Error)]
#[error("not a sha256 digest (64 hex digits): {0:?}")]
pub struct ParseHashError(String);

macro_rules! sha256_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(#[serde(with = "serde_bytes")] pub [u8; 32]);

        impl $name {
            /// The sha256 digest of `bytes`.
            pub fn of(bytes: &[u8]) -> Self {
                $name(Sha256::digest(bytes).into())
            }

            /// Lowercase hex, 64 digits.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 12 hex digits, for messages meant for people.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..6])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseHashError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| ParseHashError(s.to_string()))?;
                Ok($name(out))
            }
        }
    };
}

sha256_id!(
    /// The sha256 of a module's binary (after `.wat` text is turned into binary).
    ModuleHash
);
sha256_id!(
    /// The sha256 of a blob in the content-addressed blob store (a module's
    /// blob hash equals its [`ModuleHash`]).
    BlobHash
);
sha256_id!(
    /// The sha256 of a task's CBOR-encoded arguments: with the module hash and the
    /// function name it tells one piece of work from another.
    ArgsHash
);
sha256_id!(
    /// The sha256 of what in an engine's configuration can change a task's
    /// result: the wasmtime version and settings, the task's effective
    /// limits, the deterministic flag and seed (see `Fingerprint`).
    ConfigHash
);
sha256_id!(
    /// The sha256 of a task's captured output: stdout and stderr, each
    /// preceded by its length as 8 little-endian bytes.
    OutputHash
);

impl OutputHash {
    /// The hash of this stdout and stderr.
    pub fn of_output(stdout: &[u8], stderr: &[u8]) -> OutputHash {
        static NONE: std::sync::OnceLock<OutputHash> = std::sync::OnceLock::new();
        if stdout.is_empty() && stderr.is_empty() {
            return *NONE.get_or_init(|| Self::hash(b"", b""));
        }
        Self::hash(stdout, stderr)
    }

    fn hash(stdout: &[u8], stderr: &[u8]) -> OutputHash {
        let mut h = Sha256::new();
        for stream in [stdout, stderr] {
            h.update((stream.len() as u64).to_le_bytes());
            h.update(stream);
        }
        OutputHash(h.finalize().into())
    }
}

/// A point in time: microseconds since the Unix epoch.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since.as_micros() as u64)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    pub fn as_micros(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_travel_as_byte_strings() {
        let h = ModuleHash::of(b"(module)");
        let bytes = crate::encode(&h).unwrap();
        assert_eq!(bytes.len(), 34);
        assert_eq!(crate::decode::<ModuleHash>(&bytes).unwrap(), h);
    }

    #[test]
    fn module_hash_round_trips_through_hex() {
        let h = ModuleHash::of(b"(module)");
        assert_eq!(h.to_hex().parse::<ModuleHash>().unwrap(), h);
        assert!("xyz".parse::<ModuleHash>().is_err());
    }

    #[test]
    fn msg_ids_sort_by_creation() {
        let a = MsgId::new();
        let b = MsgId::new();
        assert!(a < b);
    }
}
