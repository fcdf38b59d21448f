//! Moving bytes across the sandbox wall: reading and writing guest memory,
//! asking the guest to allocate, and the packed `(ptr << 32) | len` of ABI.md.
//!
//! Every pointer here comes from the guest, so every access is checked by
//! wasmtime's `Memory::read`/`write`; a bad pointer is an error, never a crash.

use wasmtime::{AsContext, AsContextMut, Extern, Memory, TypedFunc};

/// Packs a (ptr, len) pair as ABI.md says.
pub(crate) fn pack(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

/// Unpacks a (ptr, len) pair.
pub(crate) fn unpack(packed: i64) -> (u32, u32) {
    let p = packed as u64;
    ((p >> 32) as u32, p as u32)
}

/// The module's exported `memory`, if it has one.
pub(crate) fn exported_memory(export: Option<Extern>) -> Option<Memory> {
    export.and_then(Extern::into_memory)
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(
    store: impl AsContext,
    memory: Memory,
    ptr: u32,
    len: u32,
    what: &str,
) -> wasmtime::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    memory.read(&store, ptr as usize, &mut buf).map_err(|_| {
        wasmtime::Error::msg(format!(
            "{what}: bytes {ptr:#x}..{:#x} are outside the guest's memory",
            u64::from(ptr) + u64::from(len)
        ))
    })?;
    Ok(buf)
}

/// Asks the guest's `grid_alloc` for room, writes `bytes` there, returns the pointer.
pub(crate) fn write_new(
    mut store: impl AsContextMut,
    memory: Memory,
    alloc: &TypedFunc<i32, i32>,
    bytes: &[u8],
    what: &str,
) -> wasmtime::Result<u32> {
    let len = i32::try_from(bytes.len()).map_err(|_| {
        wasmtime::Error::msg(format!("{what}: {} bytes do not fit wasm32", bytes.len()))
    })?;
    let ptr = alloc.call(&mut store, len)? as u32;
    if ptr == 0 && len > 0 {
        return Err(wasmtime::Error::msg(format!(
            "{what}: grid_alloc({len}) returned 0 (out of memory)"
        )));
    }
    memory.write(&mut store, ptr as usize, bytes).map_err(|_| {
        wasmtime::Error::msg(format!(
            "{what}: grid_alloc({len}) returned {ptr:#x}, outside the guest's memory"
        ))
    })?;
    Ok(ptr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        for (p, l) in [(0, 0), (1, 2), (u32::MAX, u32::MAX), (0x8000_0000, 7)] {
            assert_eq!(unpack(pack(p, l)), (p, l));
        }
    }
}
