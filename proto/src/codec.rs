//! The CBOR codec: every message on the wire is CBOR, through serde and cbor4ii.
//!
//! Two functions and one error, so every crate encodes the same way. Decoding
//! untrusted bytes returns an error, never panics; cbor4ii bounds nesting depth.
//! [`decode_shared`] decodes from a shared buffer: the typed arrays in it
//! become views of that buffer instead of copies.

use std::cell::RefCell;

use bytes::Bytes;
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

thread_local! {
    /// The buffer [`decode_shared`] is decoding on this thread.
    static SOURCE: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Decodes a value from `bytes`, as [`decode`] does, except that typed
/// arrays in it share `bytes` (a reference count) rather than copy their
/// elements out: a large array received in one buffer is read in place.
pub fn decode_shared<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, CodecError> {
    let outer = SOURCE.with(|s| s.replace(Some(bytes.clone())));
    let decoded = decode(bytes);
    SOURCE.with(|s| *s.borrow_mut() = outer);
    decoded
}

/// `slice` as a view of the buffer being decoded by [`decode_shared`] when it
/// lies inside it, else as a copy.
pub(crate) fn shared_or_copied(slice: &[u8]) -> Bytes {
    SOURCE.with(|s| {
        let source = s.borrow();
        match source.as_ref() {
            Some(buffer) if contains(buffer, slice) => buffer.slice_ref(slice),
            _ => Bytes::copy_from_slice(slice),
        }
    })
}

fn contains(buffer: &[u8], slice: &[u8]) -> bool {
    let outer = buffer.as_ptr_range();
    let inner = slice.as_ptr_range();
    !slice.is_empty() && outer.start <= inner.start && inner.end <= outer.end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TypedArray, Value};

    #[test]
    fn typed_arrays_decoded_from_a_shared_buffer_are_views_of_it() {
        let array = Value::Typed(TypedArray::from_vec(vec![1.5f64; 1000]));
        let wire = Bytes::from(encode(&vec![array.clone()]).unwrap());
        let back: Vec<Value> = decode_shared(&wire).unwrap();
        assert_eq!(back, vec![array.clone()]);
        let Value::Typed(view) = &back[0] else {
            panic!("a typed array")
        };
        let inside = wire.as_ptr_range().contains(&view.as_bytes().as_ptr());
        assert!(inside, "the array is a view of the received buffer");
        // Plain decode copies, and the thread is left as it was.
        let copied: Vec<Value> = decode(&wire).unwrap();
        let Value::Typed(copy) = &copied[0] else {
            panic!("a typed array")
        };
        assert!(!wire.as_ptr_range().contains(&copy.as_bytes().as_ptr()));
    }
}
