//! The blob collector: which blobs of the durable store to delete, and
//! deleting them.
//!
//! Modules and persisted values (offers moved to the store under memory
//! pressure) stay in the cluster's blob store until collected here. A blob is
//! collected when nothing has used it for `max_age` and it is not
//! `protected`; its last use is the later of when it was stored and the last
//! use recorded for it ([`Bus::touch_blob`]). Engines record a module's use
//! when a task needs it and again every 10 s or so while the task runs;
//! clients record one by uploading (`put_blob`). So with a `max_age` of
//! minutes or more, the module of a running task is never collected. Results
//! are used by no one in particular: the controller protects those its task
//! store refers to. [`collectable`] is the rule, without I/O or a clock;
//! [`collect_blobs`] reads the store, applies the rule and deletes.
//!
//! It must not look at offered blobs (they live in their holders' memory,
//! not in the store), nor run where a slow call would hold anything up:
//! listing a store of thousands of blobs takes a while. Known limits: times
//! come from the clocks of the processes that store, use and collect, so
//! clock skew between machines shifts every age by as much; a blob used
//! again between the read of its uses and its deletion is deleted anyway (a
//! window of milliseconds, after `max_age` without a use); and the modules
//! of tasks that wait (for a dependency, or in an engine's queue) are not
//! recorded as used until a task of theirs starts.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use grid_bus::{BlobInfo, Bus, BusError};
use grid_proto::{BlobHash, Timestamp};

/// What one [`collect_blobs`] run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs in the store when it started.
    pub examined: usize,
    /// Blobs deleted.
    pub collected: usize,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Use records dropped that named no stored blob (see [`forgettable`]).
    pub forgotten: usize,
}

/// The blobs to collect at `now`: those whose last use (the later of when
/// they were stored and their recorded use in `uses`) is more than `max_age`
/// ago, except the `protected` ones. A time later than `now` (another
/// machine's clock running ahead) counts as a use now.
pub fn collectable(
    blobs: &[BlobInfo],
    uses: &HashMap<BlobHash, Timestamp>,
    protected: &HashSet<BlobHash>,
    max_age: Duration,
    now: Timestamp,
) -> Vec<BlobHash> {
    blobs
        .iter()
        .filter(|blob| !protected.contains(&blob.hash))
        .filter(|blob| {
            let last = match uses.get(&blob.hash) {
                Some(&used) => used.max(blob.stored),
                None => blob.stored,
            };
            now.since(last) > max_age
        })
        .map(|blob| blob.hash)
        .collect()
}

/// The use records to drop at `now`: those of hashes not in `blobs`, more
/// than `max_age` old. An engine that still holds a module in memory records
/// its uses after the blob was collected; once it stops, nothing else would
/// ever remove the record.
pub fn forgettable(
    blobs: &[BlobInfo],
    uses: &HashMap<BlobHash, Timestamp>,
    max_age: Duration,
    now: Timestamp,
) -> Vec<BlobHash> {
    let stored: HashSet<BlobHash> = blobs.iter().map(|blob| blob.hash).collect();
    uses.iter()
        .filter(|(hash, used)| !stored.contains(hash) && now.since(**used) > max_age)
        .map(|(hash, _)| *hash)
        .collect()
}

/// Deletes from `bus`'s durable store the blobs unused for more than
/// `max_age`, except the `protected` ones (see [`collectable`]), with their
/// use records, and drops stale records of blobs no longer stored. Stops at
/// the first error: what was deleted until then stays deleted, and the next
/// run carries on.
pub async fn collect_blobs(
    bus: &dyn Bus,
    protected: &HashSet<BlobHash>,
    max_age: Duration,
) -> Result<GcReport, BusError> {
    // The blobs first: a blob stored after the listing is not a candidate,
    // and a use recorded before the uses are read is seen.
    let blobs = bus.list_blobs().await?;
    let uses = bus.blob_uses().await?;
    let now = Timestamp::now();
    let mut report = GcReport {
        examined: blobs.len(),
        ..GcReport::default()
    };
    let doomed: HashSet<BlobHash> = collectable(&blobs, &uses, protected, max_age, now)
        .into_iter()
        .collect();
    for blob in blobs.iter().filter(|blob| doomed.contains(&blob.hash)) {
        // `false`: another collector was quicker.
        if bus.delete_blob(&blob.hash).await? {
            report.collected += 1;
            report.bytes_freed += blob.size;
        }
    }
    for hash in forgettable(&blobs, &uses, max_age, now) {
        bus.delete_blob(&hash).await?;
        report.forgotten += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    /// Minutes since the epoch, as a time.
    fn at(minutes: u64) -> Timestamp {
        Timestamp(minutes * 60_000_000)
    }

    fn blob(name: &str, stored: Timestamp) -> BlobInfo {
        BlobInfo {
            hash: BlobHash::of(name.as_bytes()),
            size: name.len() as u64,
            stored,
        }
    }

    fn hash(name: &str) -> BlobHash {
        BlobHash::of(name.as_bytes())
    }

    #[test]
    fn a_blob_unused_for_longer_than_max_age_is_collected() {
        let blobs = [blob("old", at(0)), blob("fresh", at(55))];
        let collected = collectable(
            &blobs,
            &HashMap::new(),
            &HashSet::new(),
            30 * MINUTE,
            at(60),
        );
        assert_eq!(collected, vec![hash("old")]);
    }

    #[test]
    fn the_later_of_storing_and_the_recorded_use_counts() {
        let blobs = [
            blob("used lately", at(0)),
            blob("stored again lately", at(55)),
            blob("used long ago", at(0)),
        ];
        let uses = HashMap::from([
            (hash("used lately"), at(50)),
            // An older record than the store's time: the store's time wins.
            (hash("stored again lately"), at(1)),
            (hash("used long ago"), at(10)),
        ]);
        let collected = collectable(&blobs, &uses, &HashSet::new(), 30 * MINUTE, at(60));
        assert_eq!(collected, vec![hash("used long ago")]);
    }

    #[test]
    fn protected_blobs_are_kept_however_old() {
        let blobs = [blob("a result", at(0)), blob("a module", at(0))];
        let protected = HashSet::from([hash("a result")]);
        let collected = collectable(&blobs, &HashMap::new(), &protected, MINUTE, at(600));
        assert_eq!(collected, vec![hash("a module")]);
    }

    #[test]
    fn exactly_max_age_is_not_older_than_max_age() {
        let blobs = [blob("on the edge", at(0))];
        let none = HashMap::new();
        let keep = HashSet::new();
        assert!(collectable(&blobs, &none, &keep, 30 * MINUTE, at(30)).is_empty());
        let just_after = Timestamp(at(30).as_micros() + 1);
        assert_eq!(
            collectable(&blobs, &none, &keep, 30 * MINUTE, just_after),
            vec![hash("on the edge")]
        );
    }

    #[test]
    fn times_ahead_of_the_collectors_clock_count_as_now() {
        let blobs = [blob("stored ahead", at(90)), blob("used ahead", at(0))];
        let uses = HashMap::from([(hash("used ahead"), at(95))]);
        let collected = collectable(&blobs, &uses, &HashSet::new(), Duration::ZERO, at(60));
        assert!(collected.is_empty(), "{collected:?}");
    }

    #[test]
    fn stale_records_of_blobs_not_stored_are_forgotten() {
        let blobs = [blob("stored", at(0))];
        let uses = HashMap::from([
            (hash("stored"), at(0)),
            (hash("collected, used since"), at(10)),
            (hash("collected, in use"), at(55)),
        ]);
        let forgotten = forgettable(&blobs, &uses, 30 * MINUTE, at(60));
        assert_eq!(forgotten, vec![hash("collected, used since")]);
    }
}
