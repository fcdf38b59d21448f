//! `Body<T>`: a message part carried as CBOR bytes, decoded only by whoever
//! needs it.
//!
//! The controller routes and records every submission and result, but never
//! needs the work inside (a chunk of a map can hold 10,000 items) or the
//! values of a result. Carrying those as an encoded byte string means the
//! controller decodes a small header and copies the body as one block, while
//! the engine (work) and the client (results) decode it in full. The type
//! parameter keeps the body typed at both ends.
//!
//! A large body does not ride in the message at all: it is put in the
//! cluster's content-addressed blob store and the message carries its hash
//! (NATS refuses messages over 1 MiB). This type only represents the two
//! cases; moving bytes in and out of the store is `grid-bus`'s business
//! (`grid_bus::spill_body`, `grid_bus::load_body`).

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{BlobHash, CodecError};

/// A `T`, CBOR-encoded, in the message or in the blob store.
pub struct Body<T> {
    repr: Repr,
    _type: PhantomData<fn() -> T>,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
enum Repr {
    #[serde(rename = "i")]
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    #[serde(rename = "b")]
    Blob(BlobHash),
}

impl<T: Serialize + DeserializeOwned> Body<T> {
    /// Encodes `value`, inline.
    pub fn new(value: &T) -> Result<Body<T>, CodecError> {
        Ok(Self::from_repr(Repr::Inline(crate::encode(value)?)))
    }

    /// Decodes an inline body; a body in the blob store must be fetched first
    /// (see [`Body::blob`]) and its bytes decoded with
    /// [`decode_shared`](crate::decode_shared), which reads the typed arrays
    /// in them in place.
    pub fn decode(&self) -> Result<T, CodecError> {
        match &self.repr {
            Repr::Inline(bytes) => crate::decode(bytes),
            Repr::Blob(hash) => Err(CodecError::Decode(format!(
                "the body is blob {} in the blob store: fetch it first",
                hash.short()
            ))),
        }
    }
}

impl<T> Body<T> {
    fn from_repr(repr: Repr) -> Self {
        Body {
            repr,
            _type: PhantomData,
        }
    }

    /// A body stored in the blob store under `hash`.
    pub fn from_blob(hash: BlobHash) -> Self {
        Self::from_repr(Repr::Blob(hash))
    }

    /// The encoded bytes, when they travel in the message.
    pub fn inline(&self) -> Option<&[u8]> {
        match &self.repr {
            Repr::Inline(bytes) => Some(bytes),
            Repr::Blob(_) => None,
        }
    }

    /// The encoded bytes, taken out of an inline body (no copy); a body in
    /// the blob store is handed back unchanged.
    pub fn into_inline(self) -> Result<Vec<u8>, Body<T>> {
        match self.repr {
            Repr::Inline(bytes) => Ok(bytes),
            repr @ Repr::Blob(_) => Err(Self::from_repr(repr)),
        }
    }

    /// The blob holding the encoded bytes, when they are in the blob store.
    pub fn blob(&self) -> Option<BlobHash> {
        match &self.repr {
            Repr::Blob(hash) => Some(*hash),
            Repr::Inline(_) => None,
        }
    }

    /// The size it adds to a message.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Inline(bytes) => bytes.len(),
            Repr::Blob(_) => 32,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Body<T> {
    fn clone(&self) -> Self {
        Self::from_repr(self.repr.clone())
    }
}

impl<T> PartialEq for Body<T> {
    fn eq(&self, other: &Self) -> bool {
        self.repr == other.repr
    }
}

impl<T> fmt::Debug for Body<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = std::any::type_name::<T>();
        match &self.repr {
            Repr::Inline(bytes) => write!(f, "Body<{name}>({} bytes)", bytes.len()),
            Repr::Blob(hash) => write!(f, "Body<{name}>(blob {})", hash.short()),
        }
    }
}

impl<T> Serialize for Body<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.repr.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Body<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_repr(Repr::deserialize(d)?))
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

    #[test]
    fn a_blob_body_says_where_it_is() {
        let hash = BlobHash::of(b"big");
        let body: Body<Value> = Body::from_blob(hash);
        let back: Body<Value> = crate::decode(&crate::encode(&body).unwrap()).unwrap();
        assert_eq!(back.blob(), Some(hash));
        assert!(back.inline().is_none());
        assert!(back.decode().is_err());
    }
}
