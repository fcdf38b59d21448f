//! The engine's namespace: named values that outlive a task (ABI.md section 4).
//!
//! Every task gets a fresh instance, so the namespace is the only state one task
//! can leave for the next. On wasm these functions call the `grid.ns_*` imports;
//! on other targets they use a thread-local map instead, so a guest's functions
//! can be unit-tested with a plain `cargo test` (each test runs on its own thread,
//! so each starts with an empty namespace). Both keep entries as CBOR bytes, so a
//! value reads back natively exactly as it would through the engine. Arrays of
//! numbers have their own pair, [`set_array`] and [`get_array`], which store and
//! read typed arrays with one memcpy.
//!
//! ```
//! grid_guest::ns::set("count", &41).unwrap();
//! let count: i64 = grid_guest::ns::get("count").unwrap().unwrap_or(0);
//! assert_eq!(count, 41);
//! assert!(grid_guest::ns::del("count"));
//! assert_eq!(grid_guest::ns::get::<i64>("count").unwrap(), None);
//! ```

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::typed::{self, Element};
use crate::{Error, cbor};

/// Why a namespace read or write failed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NsError {
    /// The value given to [`set`] could not be encoded as CBOR.
    Encode {
        /// The entry's name.
        name: String,
        /// What went wrong.
        source: Error,
    },
    /// The entry exists but does not decode into the requested type.
    Decode {
        /// The entry's name.
        name: String,
        /// What went wrong, e.g. `invalid type: string "x", expected i64`.
        source: Error,
    },
    /// The engine refused the encoded value as not one valid CBOR value.
    Rejected {
        /// The entry's name.
        name: String,
    },
}

impl fmt::Display for NsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NsError::Encode { name, source } => {
                write!(
                    f,
                    "cannot encode the value for namespace entry {name:?}: {source}"
                )
            }
            NsError::Decode { name, source } => {
                write!(
                    f,
                    "namespace entry {name:?} has an unexpected value: {source}"
                )
            }
            NsError::Rejected { name } => {
                write!(
                    f,
                    "the engine refused the value for namespace entry {name:?}"
                )
            }
        }
    }
}

impl std::error::Error for NsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NsError::Encode { source, .. } | NsError::Decode { source, .. } => Some(source),
            NsError::Rejected { .. } => None,
        }
    }
}

/// Reads the entry `name` as a `T`; `Ok(None)` if there is none.
///
/// Numbers convert as arguments do: an entry holding the integer `2` reads as
/// `2.0f64`.
///
/// # Errors
/// [`NsError::Decode`] when the entry's value does not fit `T`.
pub fn get<T: DeserializeOwned>(name: &str) -> Result<Option<T>, NsError> {
    let Some(bytes) = sys::get(name) else {
        return Ok(None);
    };
    cbor::from_slice(&bytes)
        .map(Some)
        .map_err(|source| NsError::Decode {
            name: name.to_owned(),
            source,
        })
}

/// Stores `value` under `name`, replacing what was there. The write takes effect
/// at once and stays even if the task later fails.
///
/// # Errors
/// [`NsError::Encode`] when the value cannot be encoded, [`NsError::Rejected`]
/// when the engine refuses the bytes.
pub fn set<T: Serialize + ?Sized>(name: &str, value: &T) -> Result<(), NsError> {
    let bytes = cbor::to_vec(value).map_err(|source| NsError::Encode {
        name: name.to_owned(),
        source,
    })?;
    set_bytes(name, &bytes)
}

/// Stores the numbers `xs` under `name` as a typed array (ABI.md section 2),
/// copied in one go; [`set`] would store a plain array, element by element.
///
/// ```
/// grid_guest::ns::set_array("weights", &[0.25f64, 0.75]).unwrap();
/// let weights = grid_guest::ns::get_array::<f64>("weights").unwrap();
/// assert_eq!(weights, Some(vec![0.25, 0.75]));
/// ```
///
/// # Errors
/// [`NsError::Rejected`] when the engine refuses the bytes (one that does not
/// know typed arrays).
pub fn set_array<N: Element>(name: &str, xs: &[N]) -> Result<(), NsError> {
    set_bytes(name, &typed::encode(xs))
}

/// Reads the entry `name` as numbers; `Ok(None)` if there is none. A typed
/// array of `N`s costs one copy; any other array of numbers converts as
/// [`typed::from_value`] describes.
///
/// # Errors
/// [`NsError::Decode`] when the entry is not an array of numbers that fit `N`.
pub fn get_array<N: Element>(name: &str) -> Result<Option<Vec<N>>, NsError> {
    let Some(bytes) = sys::get(name) else {
        return Ok(None);
    };
    typed::decode(&bytes)
        .map(Some)
        .map_err(|source| NsError::Decode {
            name: name.to_owned(),
            source,
        })
}

fn set_bytes(name: &str, bytes: &[u8]) -> Result<(), NsError> {
    if sys::set(name, bytes) {
        Ok(())
    } else {
        Err(NsError::Rejected {
            name: name.to_owned(),
        })
    }
}

/// Removes the entry `name`; true if it was there.
pub fn del(name: &str) -> bool {
    sys::del(name)
}

/// The raw operations, on CBOR bytes, through the engine's imports.
#[cfg(target_arch = "wasm32")]
mod sys {
    use crate::imports;
    use crate::memory::{self, Received};

    pub(super) fn get(name: &str) -> Option<Vec<u8>> {
        // SAFETY: the pointer and length describe `name`, alive for the call.
        let packed = unsafe { imports::ns_get(name.as_ptr(), name.len()) };
        // Only exactly -1 means "absent": a real location with a pointer at or
        // above 2 GiB is negative as an i64 too.
        if packed == -1 {
            return None;
        }
        // Reinterpreting the bits is the ABI: the halves are unsigned.
        let (ptr, len) = memory::unpack(packed as u64);
        // SAFETY: the engine wrote `len` bytes into a buffer it got from our
        // `grid_alloc(len)` and handed it to us. On wasm32 both halves fit usize.
        let received = unsafe { Received::from_raw(ptr as usize as *mut u8, len as usize) };
        Some(received.as_slice().to_vec())
    }

    pub(super) fn set(name: &str, bytes: &[u8]) -> bool {
        // SAFETY: both pointer and length pairs describe live slices.
        let status =
            unsafe { imports::ns_set(name.as_ptr(), name.len(), bytes.as_ptr(), bytes.len()) };
        status == 0
    }

    pub(super) fn del(name: &str) -> bool {
        // SAFETY: the pointer and length describe `name`, alive for the call.
        unsafe { imports::ns_del(name.as_ptr(), name.len()) == 1 }
    }
}

/// The raw operations, on CBOR bytes, in a thread-local map standing in for the
/// engine.
#[cfg(not(target_arch = "wasm32"))]
mod sys {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    thread_local! {
        static ENTRIES: RefCell<BTreeMap<String, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
    }

    pub(super) fn get(name: &str) -> Option<Vec<u8>> {
        ENTRIES.with_borrow(|entries| entries.get(name).cloned())
    }

    pub(super) fn set(name: &str, bytes: &[u8]) -> bool {
        // Refuse what the engine would refuse, so native tests catch it too.
        if crate::cbor::decode_value(bytes).is_err() {
            return false;
        }
        ENTRIES.with_borrow_mut(|entries| entries.insert(name.to_owned(), bytes.to_vec()));
        true
    }

    pub(super) fn del(name: &str) -> bool {
        ENTRIES.with_borrow_mut(|entries| entries.remove(name).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    #[test]
    fn absent_entries_read_as_none() {
        assert_eq!(get::<i64>("missing"), Ok(None));
        assert!(!del("missing"));
    }

    #[test]
    fn values_round_trip_and_numbers_convert() {
        set("n", &2).unwrap();
        assert_eq!(get::<i64>("n"), Ok(Some(2)));
        assert_eq!(get::<f64>("n"), Ok(Some(2.0)));
        set("n", "text").unwrap();
        assert_eq!(get::<Value>("n"), Ok(Some(Value::Text("text".into()))));
        set("unit", &()).unwrap();
        assert_eq!(get::<Value>("unit"), Ok(Some(Value::Null)));
        assert!(del("n"));
        assert_eq!(get::<i64>("n"), Ok(None));
    }

    #[test]
    fn type_mismatch_names_the_entry() {
        set("s", "x").unwrap();
        let err = get::<i64>("s").unwrap_err();
        assert_eq!(
            err.to_string(),
            "namespace entry \"s\" has an unexpected value: invalid type: string \"x\", expected i64"
        );
    }

    #[test]
    fn values_outside_cbor_are_refused() {
        let err = set("big", &u128::MAX).unwrap_err();
        assert!(matches!(err, NsError::Rejected { .. }), "{err}");
    }

    #[test]
    fn arrays_are_stored_typed_and_read_either_way() {
        set_array("xs", &[1i32, -2]).unwrap();
        assert_eq!(get_array::<i32>("xs"), Ok(Some(vec![1, -2])));
        assert_eq!(get::<Vec<f64>>("xs"), Ok(Some(vec![1.0, -2.0])));
        assert!(matches!(
            get::<Value>("xs"),
            Ok(Some(Value::Array(items))) if items.len() == 2
        ));
        set("plain", &[1u8, 2]).unwrap();
        assert_eq!(get_array::<u8>("plain"), Ok(Some(vec![1, 2])));
        assert_eq!(get_array::<u8>("missing"), Ok(None));
        let err = get_array::<u8>("xs").unwrap_err();
        assert_eq!(
            err.to_string(),
            "namespace entry \"xs\" has an unexpected value: invalid value: integer `-2`, expected u8"
        );
    }

    #[test]
    fn each_thread_has_its_own_namespace() {
        set("shared", &1).unwrap();
        let seen = std::thread::spawn(|| get::<i64>("shared")).join().unwrap();
        assert_eq!(seen, Ok(None));
    }
}
