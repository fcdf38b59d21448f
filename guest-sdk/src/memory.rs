//! Guest memory that crosses the ABI boundary: `grid_alloc`, `grid_free` and the
//! packed `(ptr << 32) | len` results (ABI.md section 2), next to the
//! `grid_typed_arrays` marker export, which also goes into every guest.
//!
//! The engine writes arguments (and namespace values) into buffers it gets from
//! `grid_alloc`, and the guest owns them from then on; the guest hands back an
//! envelope the engine may free with `grid_free`. Both directions use one layout
//! rule, `size = max(len, 1), align = 1`, so any buffer can be freed by whoever
//! ends up owning it. Nothing else in the SDK may allocate or free such buffers.

use std::alloc::{self, Layout};

/// The layout of every buffer that crosses the boundary. A zero-length request
/// still gets one byte, because the global allocator must not be asked for zero.
fn layout(len: usize) -> Option<Layout> {
    Layout::from_size_align(len.max(1), 1).ok()
}

/// Allocates `len` bytes; null when the allocator (or the memory limit) says no.
pub(crate) fn alloc(len: usize) -> *mut u8 {
    match layout(len) {
        // SAFETY: the layout has a non-zero size.
        Some(layout) => unsafe { alloc::alloc(layout) },
        None => std::ptr::null_mut(),
    }
}

/// Frees what [`alloc`] returned for the same `len`, or what [`into_raw`] gave
/// out. Null is ignored, as `free(NULL)` is in C.
///
/// # Safety
/// `ptr` must come from `alloc(len)` or `into_raw` with this `len`, and must not
/// be used afterwards.
pub(crate) unsafe fn free(ptr: *mut u8, len: usize) {
    if let (false, Some(layout)) = (ptr.is_null(), layout(len)) {
        // SAFETY: the caller promises `ptr` was allocated with this layout.
        unsafe { alloc::dealloc(ptr, layout) }
    }
}

/// Hands `bytes` over to the engine: returns a pointer and length that
/// [`free`] (and so `grid_free`) accepts.
pub(crate) fn into_raw(bytes: Vec<u8>) -> (*mut u8, usize) {
    if bytes.is_empty() {
        // A zero-length box has no allocation, but `free` expects one byte.
        return (alloc(0), 0);
    }
    // `into_boxed_slice` shrinks the allocation to exactly `len` bytes with
    // align 1, which is the layout `free` uses.
    let boxed = bytes.into_boxed_slice();
    let len = boxed.len();
    (Box::into_raw(boxed).cast::<u8>(), len)
}

/// `(ptr << 32) | len` with both as unsigned 32-bit numbers.
pub(crate) fn pack(ptr: u32, len: u32) -> u64 {
    (u64::from(ptr) << 32) | u64::from(len)
}

/// The inverse of [`pack`].
pub(crate) fn unpack(packed: u64) -> (u32, u32) {
    // Truncation is the point: the halves are the two 32-bit numbers.
    ((packed >> 32) as u32, packed as u32)
}

/// A buffer the engine wrote into memory from `grid_alloc`, owned by the guest
/// and freed when dropped.
pub(crate) struct Received {
    ptr: *mut u8,
    len: usize,
}

impl Received {
    /// Takes ownership of `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be null or come from `alloc(len)` with `len` initialized bytes
    /// written, and nothing else may use or free it afterwards.
    pub(crate) unsafe fn from_raw(ptr: *mut u8, len: usize) -> Received {
        Received { ptr, len }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() {
            &[]
        } else {
            // SAFETY: `from_raw`'s contract: `len` initialized bytes, ours alone.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        // SAFETY: `from_raw`'s contract: allocated by `alloc(len)`, ours alone.
        unsafe { free(self.ptr, self.len) }
    }
}

/// The exports of ABI.md section 2. They exist only on wasm, where pointers are
/// 32 bits and these are the engine's way in.
#[cfg(target_arch = "wasm32")]
mod exports {
    /// `grid_typed_arrays`: never called; its presence tells the engine that this
    /// guest reads typed arrays (ABI.md section 2, "Typed arrays"), which the
    /// SDK's reader does everywhere a value is read.
    #[unsafe(no_mangle)]
    pub extern "C" fn grid_typed_arrays() {}

    /// `grid_alloc(len: i32) -> i32`: `len` fresh writable bytes, or 0.
    #[unsafe(no_mangle)]
    pub extern "C" fn grid_alloc(len: usize) -> *mut u8 {
        super::alloc(len)
    }

    /// `grid_free(ptr: i32, len: i32)`: frees what `grid_alloc` or a function returned.
    ///
    /// # Safety
    /// Only the engine calls this, with a buffer it was given and no longer uses.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn grid_free(ptr: *mut u8, len: usize) {
        // SAFETY: the ABI says `ptr, len` came from `grid_alloc` or a result.
        unsafe { super::free(ptr, len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_puts_the_pointer_high_and_the_length_low() {
        assert_eq!(pack(0x1234, 5), 0x0000_1234_0000_0005);
        assert_eq!(
            unpack(pack(0xffff_fff0, 0xffff_ffff)),
            (0xffff_fff0, 0xffff_ffff)
        );
    }

    #[test]
    fn buffers_round_trip_through_alloc_and_free() {
        for len in [0, 1, 100] {
            let ptr = alloc(len);
            assert!(!ptr.is_null());
            // SAFETY: `len` bytes were just allocated.
            unsafe { std::ptr::write_bytes(ptr, 7, len) };
            // SAFETY: allocated by `alloc(len)`, initialized above.
            let received = unsafe { Received::from_raw(ptr, len) };
            assert_eq!(received.as_slice(), vec![7; len].as_slice());
        }
        for bytes in [vec![], vec![1, 2, 3]] {
            let (ptr, len) = into_raw(bytes);
            // SAFETY: from `into_raw`, not used again.
            unsafe { free(ptr, len) };
        }
        // SAFETY: null is documented as ignored.
        unsafe { free(std::ptr::null_mut(), 10) };
        assert!(alloc(usize::MAX).is_null());
    }
}
