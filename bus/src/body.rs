//! Large message bodies through the blob store.
//!
//! A [`Body`] bigger than [`SPILL_THRESHOLD`] is offered by its sender
//! ([`Bus::offer_blob`]: held in its memory, served by hash) before its
//! message is published, and fetched (and verified) before it is decoded:
//! messages stay small, whatever the values. Senders call [`spill_body`],
//! receivers [`load_body`]; the controller, which never decodes bodies,
//! never fetches them. A sender that knows when the receiver has read the
//! body (a client, once the reply to its task has come) releases it with
//! [`Bus::release_blob`]; offers never released are persisted to the blob
//! store under memory pressure (see the `offer` module).

use bytes::Bytes;
use grid_proto::Body;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Bus, BusError};

/// Bodies larger than this (in encoded bytes) go to the blob store. Well
/// under NATS's default 1 MiB message limit.
pub const SPILL_THRESHOLD: usize = 256 * 1024;

/// `body`, offered as a blob if it is inline and larger than `threshold`.
pub async fn spill_body<T>(
    bus: &dyn Bus,
    body: Body<T>,
    threshold: usize,
) -> Result<Body<T>, BusError> {
    if body.len() <= threshold {
        return Ok(body);
    }
    match body.into_inline() {
        Ok(bytes) => Ok(Body::from_blob(bus.offer_blob(Bytes::from(bytes)).await?)),
        Err(body) => Ok(body),
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
            // Typed arrays in it are read in place (the blob's buffer).
            grid_proto::decode_shared(&bytes)
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
