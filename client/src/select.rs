//! [`Select`]: engines by position, as ipyparallel's `rc[...]`.
//!
//! ipyparallel indexes and slices the client's list of engine ids with
//! Python's rules: `rc[-1]` is the last engine, `rc[1:3]` the second and
//! third, `rc[::2]` every other one, `rc[::-1]` all in reverse; the view is
//! evaluated when it is made. Rust has no slice syntax to overload, so a
//! `Select` is built from what reads closest: an integer (`-1`), a range
//! (`1..3`, `2..`, `..`, `..=2`), or a range and a step (`(.., 2)`). Positions
//! follow Python's slicing exactly (clamped, negative from the end), so a
//! slice past the end is simply shorter; an index past the end is an error,
//! as in Python. This file only computes positions; [`Client::select`]
//! (crate::Client::select) asks the controller for the ids.

use std::ops::{Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};

use grid_proto::EngineId;

use crate::error::Error;

/// Which engines of a list, by position: see the module docs and
/// [`Client::select`](crate::Client::select).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// One engine (`rc[i]`); negative counts from the end.
    Index(isize),
    /// A slice (`rc[start:stop:step]`); `None` bounds are Python's defaults.
    Slice {
        start: Option<isize>,
        stop: Option<isize>,
        step: isize,
    },
}

impl Select {
    /// Every engine (`rc[:]`).
    pub fn all() -> Select {
        Select::Slice {
            start: None,
            stop: None,
            step: 1,
        }
    }

    /// Python's `slice(start, stop, step)` spelled out: `rc[3:0:-1]` is
    /// `Select::slice(Some(3), Some(0), -1)` (a Rust range cannot run
    /// backwards).
    pub fn slice(start: Option<isize>, stop: Option<isize>, step: isize) -> Select {
        Select::Slice { start, stop, step }
    }

    /// The same slice with another step (`rc[a:b:step]`); an index becomes
    /// the slice from it to the end.
    pub fn step(self, step: isize) -> Select {
        match self {
            Select::Index(i) => Select::Slice {
                start: Some(i),
                stop: None,
                step,
            },
            Select::Slice { start, stop, .. } => Select::Slice { start, stop, step },
        }
    }

    /// Whether this picks one engine (a view whose `get` is one value).
    pub fn is_index(&self) -> bool {
        matches!(self, Select::Index(_))
    }

    /// The engines of `ids` this selects, in slice order.
    pub fn pick(&self, ids: &[EngineId]) -> Result<Vec<EngineId>, Error> {
        let len = isize::try_from(ids.len()).unwrap_or(isize::MAX);
        match *self {
            Select::Index(i) => {
                let at = if i < 0 { i + len } else { i };
                usize::try_from(at)
                    .ok()
                    .and_then(|at| ids.get(at))
                    .map(|id| vec![*id])
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "engine index {i} out of range: the cluster has {} engines",
                            ids.len()
                        ))
                    })
            }
            Select::Slice { start, stop, step } => {
                if step == 0 {
                    return Err(Error::Usage("a slice step cannot be zero".into()));
                }
                Ok(slice_positions(len, start, stop, step)
                    .filter_map(|p| ids.get(p).copied())
                    .collect())
            }
        }
    }
}

/// Python's `range(*slice(start, stop, step).indices(len))`.
fn slice_positions(
    len: isize,
    start: Option<isize>,
    stop: Option<isize>,
    step: isize,
) -> impl Iterator<Item = usize> {
    // Negative bounds count from the end; then clamp into what the step can reach.
    let clamp = |bound: isize, low: isize, high: isize| {
        let b = if bound < 0 { bound + len } else { bound };
        b.clamp(low, high)
    };
    let (start, stop) = if step > 0 {
        (
            start.map_or(0, |s| clamp(s, 0, len)),
            stop.map_or(len, |s| clamp(s, 0, len)),
        )
    } else {
        (
            start.map_or(len - 1, |s| clamp(s, -1, len - 1)),
            stop.map_or(-1, |s| clamp(s, -1, len - 1)),
        )
    };
    let mut at = start;
    std::iter::from_fn(move || {
        let more = if step > 0 { at < stop } else { at > stop };
        if !more {
            return None;
        }
        let here = at;
        at += step;
        usize::try_from(here).ok()
    })
}

impl From<isize> for Select {
    fn from(i: isize) -> Select {
        Select::Index(i)
    }
}

impl From<RangeFull> for Select {
    fn from(_: RangeFull) -> Select {
        Select::all()
    }
}

impl From<Range<isize>> for Select {
    fn from(r: Range<isize>) -> Select {
        Select::Slice {
            start: Some(r.start),
            stop: Some(r.end),
            step: 1,
        }
    }
}

impl From<RangeFrom<isize>> for Select {
    fn from(r: RangeFrom<isize>) -> Select {
        Select::Slice {
            start: Some(r.start),
            stop: None,
            step: 1,
        }
    }
}

impl From<RangeTo<isize>> for Select {
    fn from(r: RangeTo<isize>) -> Select {
        Select::Slice {
            start: None,
            stop: Some(r.end),
            step: 1,
        }
    }
}

/// `a..=b` is `a..b+1` (so `..=-1` is Python's `[:0]`, empty, as written).
impl From<RangeInclusive<isize>> for Select {
    fn from(r: RangeInclusive<isize>) -> Select {
        Select::Slice {
            start: Some(*r.start()),
            stop: Some(r.end().saturating_add(1)),
            step: 1,
        }
    }
}

impl From<RangeToInclusive<isize>> for Select {
    fn from(r: RangeToInclusive<isize>) -> Select {
        Select::Slice {
            start: None,
            stop: Some(r.end.saturating_add(1)),
            step: 1,
        }
    }
}

/// A range and a step: `(.., 2)` is `rc[::2]`.
impl<R: Into<Select>> From<(R, isize)> for Select {
    fn from((range, step): (R, isize)) -> Select {
        range.into().step(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<EngineId> {
        (0..n).map(EngineId).collect()
    }

    fn pick(which: impl Into<Select>, n: u32) -> Vec<u32> {
        which
            .into()
            .pick(&ids(n))
            .unwrap()
            .into_iter()
            .map(|e| e.0)
            .collect()
    }

    #[test]
    fn follows_python_slicing() {
        // Each case checked against Python's list(range(5))[...].
        assert_eq!(pick(0, 5), [0]);
        assert_eq!(pick(-1, 5), [4]);
        assert_eq!(pick(1..3, 5), [1, 2]);
        assert_eq!(pick(2.., 5), [2, 3, 4]);
        assert_eq!(pick(..2, 5), [0, 1]);
        assert_eq!(pick(.., 5), [0, 1, 2, 3, 4]);
        assert_eq!(pick((.., 2), 5), [0, 2, 4]);
        assert_eq!(pick((1.., 2), 5), [1, 3]);
        assert_eq!(pick((.., -1), 5), [4, 3, 2, 1, 0]);
        assert_eq!(pick((.., -2), 5), [4, 2, 0]);
        assert_eq!(pick(Select::slice(Some(3), Some(0), -1), 5), [3, 2, 1]);
        assert_eq!(pick(-2.., 5), [3, 4]);
        assert_eq!(pick(..-1, 5), [0, 1, 2, 3]);
        assert_eq!(pick(1..=3, 5), [1, 2, 3]);
        assert_eq!(pick(..=1, 5), [0, 1]);
        assert_eq!(pick(3..100, 5), [3, 4]);
        assert_eq!(pick(-100..2, 5), [0, 1]);
        assert_eq!(
            pick(Select::slice(Some(4), Some(2), 1), 5),
            Vec::<u32>::new()
        );
        assert_eq!(pick(.., 0), Vec::<u32>::new());
    }

    #[test]
    fn bad_positions_are_errors() {
        assert!(Select::from(5).pick(&ids(5)).is_err());
        assert!(Select::from(-6).pick(&ids(5)).is_err());
        assert!(Select::from(0).pick(&ids(0)).is_err());
        let zero_step = Select::all().step(0).pick(&ids(3)).unwrap_err();
        assert!(zero_step.to_string().contains("zero"), "{zero_step}");
    }
}
