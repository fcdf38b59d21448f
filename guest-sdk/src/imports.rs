//! The host imports of ABI.md section 4, module `"grid"`, declared once.
//!
//! Only compiled for wasm: on other targets there is no engine, and `ns` and
//! `panic` use their native stand-ins instead. Callers wrap these in safe
//! functions; nothing outside the SDK should call them directly.

#[link(wasm_import_module = "grid")]
unsafe extern "C" {
    /// `-1` if `name` is absent, else `(ptr << 32) | len` of a CBOR value the
    /// engine wrote into a buffer from our `grid_alloc`, which we now own.
    pub(crate) fn ns_get(name_ptr: *const u8, name_len: usize) -> i64;

    /// `0` when stored, `-1` when the bytes are not one valid CBOR value.
    pub(crate) fn ns_set(
        name_ptr: *const u8,
        name_len: usize,
        val_ptr: *const u8,
        val_len: usize,
    ) -> i32;

    /// `1` if `name` was there, `0` if not.
    pub(crate) fn ns_del(name_ptr: *const u8, name_len: usize) -> i32;

    /// Ends the task with kind `panic` and this message; does not return.
    pub(crate) fn panic(msg_ptr: *const u8, msg_len: usize) -> !;
}
