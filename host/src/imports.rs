//! The host imports of ABI.md section 4 (module `"grid"`): namespace access
//! and `panic`.
//!
//! They run inside guest execution on the task's store, so they touch only the
//! store's data; every pointer and byte from the guest is checked, and a bad
//! one ends the task with a trap naming the import.

use grid_proto::cbor::{self, Typed};
use wasmtime::{Caller, Linker};

use crate::abi::TYPED_ARRAYS_EXPORT;
use crate::memory;
use crate::store::TaskState;

/// The guest called `grid.panic`.
#[derive(Debug, thiserror::Error)]
#[error("guest panicked")]
pub(crate) struct GuestPanicked;

pub(crate) fn add_to_linker(linker: &mut Linker<TaskState>) -> wasmtime::Result<()> {
    linker.func_wrap("grid", "ns_get", ns_get)?;
    linker.func_wrap("grid", "ns_set", ns_set)?;
    linker.func_wrap("grid", "ns_del", ns_del)?;
    linker.func_wrap("grid", "panic", panic)?;
    Ok(())
}

fn ns_get(
    mut caller: Caller<'_, TaskState>,
    name_ptr: i32,
    name_len: i32,
) -> wasmtime::Result<i64> {
    let mem = guest_memory(&mut caller, "grid.ns_get")?;
    let name = read_name(&caller, mem, name_ptr, name_len, "grid.ns_get")?;
    let typed = match caller.get_export(TYPED_ARRAYS_EXPORT) {
        Some(_) => Typed::Tags,
        None => Typed::Plain,
    };
    let Some(value) = caller.data().namespace.get(&name) else {
        return Ok(-1);
    };
    let bytes = cbor::encode_value(value, typed)
        .map_err(|e| wasmtime::Error::msg(format!("grid.ns_get(`{name}`): {e}")))?;
    let alloc = caller
        .get_export("grid_alloc")
        .and_then(|e| e.into_func())
        .ok_or_else(|| wasmtime::Error::msg("grid.ns_get needs the module to export `grid_alloc`"))?
        .typed::<i32, i32>(&caller)?;
    let ptr = memory::write_new(&mut caller, mem, &alloc, &bytes, "grid.ns_get")?;
    Ok(memory::pack(ptr, bytes.len() as u32))
}

fn ns_set(
    mut caller: Caller<'_, TaskState>,
    name_ptr: i32,
    name_len: i32,
    val_ptr: i32,
    val_len: i32,
) -> wasmtime::Result<i32> {
    let mem = guest_memory(&mut caller, "grid.ns_set")?;
    let name = read_name(&caller, mem, name_ptr, name_len, "grid.ns_set")?;
    let bytes = memory::read(&caller, mem, val_ptr as u32, val_len as u32, "grid.ns_set")?;
    match cbor::decode_value(&bytes) {
        Ok(value) => {
            caller.data_mut().namespace.set(name, value);
            Ok(0)
        }
        Err(_) => Ok(-1),
    }
}

fn ns_del(
    mut caller: Caller<'_, TaskState>,
    name_ptr: i32,
    name_len: i32,
) -> wasmtime::Result<i32> {
    let mem = guest_memory(&mut caller, "grid.ns_del")?;
    let name = read_name(&caller, mem, name_ptr, name_len, "grid.ns_del")?;
    Ok(i32::from(
        caller.data_mut().namespace.remove(&name).is_some(),
    ))
}

fn panic(mut caller: Caller<'_, TaskState>, msg_ptr: i32, msg_len: i32) -> wasmtime::Result<()> {
    let mem = guest_memory(&mut caller, "grid.panic")?;
    let bytes = memory::read(&caller, mem, msg_ptr as u32, msg_len as u32, "grid.panic")?;
    caller.data_mut().panic = Some(String::from_utf8_lossy(&bytes).into_owned());
    Err(wasmtime::Error::new(GuestPanicked))
}

fn guest_memory(
    caller: &mut Caller<'_, TaskState>,
    what: &str,
) -> wasmtime::Result<wasmtime::Memory> {
    memory::exported_memory(caller.get_export("memory"))
        .ok_or_else(|| wasmtime::Error::msg(format!("{what} needs the module to export `memory`")))
}

fn read_name(
    caller: &Caller<'_, TaskState>,
    mem: wasmtime::Memory,
    ptr: i32,
    len: i32,
    what: &str,
) -> wasmtime::Result<String> {
    let bytes = memory::read(caller, mem, ptr as u32, len as u32, what)?;
    String::from_utf8(bytes)
        .map_err(|_| wasmtime::Error::msg(format!("{what}: the name is not UTF-8")))
}
