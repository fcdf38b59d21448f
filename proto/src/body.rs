//! `Body<T>`: a message part carried as CBOR bytes, decoded only by whoever
//! needs it.
//!
//! The controller routes and records every submission and result, but never
//! needs the work inside (a chunk of a map can hold 10,000 items) or the
//! values of a result. Carrying those as an encoded byte string means the
//! controller decodes a small header and copies the body as one block, while
//! the engine (work) and the client (results) decode it in full. The type
//! parameter keeps the body typed at both ends.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::CodecError;

/// A `T`, CBOR-encoded.
pub struct Body<T> {
    bytes: Vec<u8>,
    _type: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Body<T> {
    /// Encodes `value`.
    pub fn new(value: &T) -> Result<Body<T>, CodecError> {
        Ok(Body {
            bytes: crate::encode(value)?,
            _type: PhantomData,
        })
    }

    /// Decodes the value.
    pub fn decode(&self) -> Result<T, CodecError> {
        crate::decode(&self.bytes)
    }
}

impl<T> Body<T> {
    /// The encoded size.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl<T> Clone for Body<T> {
    fn clone(&self) -> Self {
        Body {
            bytes: self.bytes.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> PartialEq for Body<T> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl<T> fmt::Debug for Body<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Body<{}>({} bytes)",
            std::any::type_name::<T>(),
            self.bytes.len()
        )
    }
}

impl<T> Serialize for Body<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.bytes)
    }
}

impl<'de, T> Deserialize<'de> for Body<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: serde_bytes::ByteBuf = Deserialize::deserialize(d)?;
        Ok(Body {
            bytes: bytes.into_vec(),
            _type: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    #[test]
    fn a_body_round_trips_inside_a_message() {
        let body = Body::new(&Value::from(vec![1, 2, 3])).unwrap();
        let wire = crate::encode(&(7u32, body.clone())).unwrap();
        let (n, back): (u32, Body<Value>) = crate::decode(&wire).unwrap();
        assert_eq!(n, 7);
        assert_eq!(back, body);
        assert_eq!(back.decode().unwrap(), Value::from(vec![1, 2, 3]));
    }
}
