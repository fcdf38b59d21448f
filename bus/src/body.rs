//! Large message bodies through the blob store.
//!
//! A [`Body`] bigger than [`SPILL_THRESHOLD`] is moved into the bus's blob
//! store before its message is published, and fetched (and verified by the
//! store) before it is decoded: messages stay small, whatever the values.
//! Senders call [`spill_body`], receivers [`load_body`]; the controller,
//! which never decodes bodies, never fetches them.

use bytes::Bytes;
use grid_proto::Body;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Bus, BusError};

/// Bodies larger than this (in encoded bytes) go to the blob store. Well
/// under NATS's default 1 MiB message limit.
pub const SPILL_THRESHOLD: usize = 256 * 1024;

/// `body`, moved to the blob store if it is inline and larger than `threshold`.
pub async fn spill_body<T>(
    bus: &dyn Bus,
    body: Body<T>,
    threshold: usize,
) -> Result<Body<T>, BusError> {
    match body.inline() {
        Some(bytes) if bytes.len() > threshold => {
            let hash = bus.put_blob(Bytes::copy_from_slice(bytes)).await?;
            Ok(Body::from_blob(hash))
        }
        _ => Ok(body),
    }
}

/// The value of `body`, fetched from the blob store if it is there.
pub async fn load_body<T: Serialize + DeserializeOwned>(
    bus: &dyn Bus,
    body: &Body<T>,
) -> Result<T, BusError> {
    let decoded = match body.blob() {
        None => body.decode(),
        Some(hash) => {
            let bytes = bus.get_blob(&hash).await?.ok_or_else(|| {
                BusError::Other(format!("blob {} is not in the blob store", hash.short()))
            })?;
            Body::<T>::decode_bytes(&bytes)
        }
    };
    decoded.map_err(|e| BusError::Other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalBus;
    use grid_proto::Value;

    #[tokio::test]
    async fn big_bodies_travel_through_the_blob_store() {
        let bus = LocalBus::new();
        let small = Body::new(&Value::from("small")).unwrap();
        let kept = spill_body(&bus, small.clone(), 1024).await.unwrap();
        assert_eq!(kept, small);
        let big_value = Value::Bytes(vec![7; 4096]);
        let big = spill_body(&bus, Body::new(&big_value).unwrap(), 1024)
            .await
            .unwrap();
        assert!(big.blob().is_some());
        assert!(big.len() < 100);
        assert_eq!(load_body(&bus, &big).await.unwrap(), big_value);
        assert_eq!(load_body(&bus, &kept).await.unwrap(), Value::from("small"));
    }
}
