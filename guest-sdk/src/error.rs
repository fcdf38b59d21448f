//! `Error`: why a value could not be encoded to or decoded from CBOR.
//!
//! One type for every conversion the SDK does (bytes to `Value`, `Value` to a
//! Rust type, a Rust type to bytes), because a guest author handles them the same
//! way: show the message. It is a message, not an enum to match on, since the
//! causes come from serde and from arbitrary `Deserialize` impls.

use std::fmt;

/// A CBOR encoding or decoding failure, with a message meant for a person
/// (for example `invalid type: string "x", expected i64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    pub(crate) fn new(message: impl fmt::Display) -> Error {
        Error {
            message: message.to_string(),
        }
    }

    /// The message, as `Display` shows it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error::new(msg)
    }
}

impl serde::ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error::new(msg)
    }
}
