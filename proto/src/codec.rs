//! The CBOR codec: every message on the wire is CBOR, through serde and cbor4ii.
//!
//! Two functions and one error, so every crate encodes the same way. Decoding
//! untrusted bytes returns an error, never panics; cbor4ii bounds nesting depth.

use serde::{Serialize, de::DeserializeOwned};

/// Why bytes could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode message: {0}")]
    Encode(String),
    #[error("malformed message: {0}")]
    Decode(String),
}

/// Encodes a value as CBOR.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    cbor4ii::serde::to_vec(Vec::new(), value).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a value from CBOR bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    cbor4ii::serde::from_slice(bytes).map_err(|e| CodecError::Decode(e.to_string()))
}
