//! The calling conventions of `guest-sdk/ABI.md`, host side.
//!
//! [`Exports`] reads a module's exports once, at load time, and answers "how
//! do I call `NAME`?": through the CBOR ABI (`grid:NAME`), directly as a
//! numeric export, or not at all (with the list of what *is* callable). The
//! `call_*` functions convert task values to wasm arguments and results back
//! to values. Everything here distinguishes errors the task caused
//! ([`TaskError`]) from failures inside the guest (a `wasmtime::Error` that the
//! engine classifies as a trap, limit or abort).

use std::collections::{BTreeMap, BTreeSet};

use grid_proto::cbor::{self, Typed};
use grid_proto::{TaskError, Value};
use wasmtime::{AsContextMut, ExternType, Instance, Module, Val, ValType};

use crate::memory;

pub(crate) const CBOR_PREFIX: &str = "grid:";

/// The export by which a module says it reads typed arrays.
pub(crate) const TYPED_ARRAYS_EXPORT: &str = "grid_typed_arrays";

/// How a function is called.
#[derive(Clone, Debug)]
pub(crate) enum Convention {
    /// `grid:NAME`, CBOR in and out.
    Cbor { export: String },
    /// A plain export with numeric parameters and results.
    Numeric {
        params: Vec<ValType>,
        results: Vec<ValType>,
    },
}

/// What a module offers to be called.
#[derive(Debug)]
pub(crate) struct Exports {
    functions: BTreeMap<String, Convention>,
    /// Plain exports that are not numeric (kept to explain why they can't be called).
    other: BTreeSet<String>,
    cbor_ready: bool,
    pub command: bool,
    pub initialize: bool,
    /// The module exports `grid_typed_arrays`: it reads RFC 8746 typed
    /// arrays (guest-sdk/ABI.md); other modules get arrays of numbers.
    typed_arrays: bool,
}

impl Exports {
    pub(crate) fn of(module: &Module) -> Exports {
        let mut functions = BTreeMap::new();
        let mut other = BTreeSet::new();
        let (mut has_alloc, mut has_memory, mut command, mut initialize) =
            (false, false, false, false);
        let mut typed_arrays = false;
        for export in module.exports() {
            let name = export.name();
            if name == TYPED_ARRAYS_EXPORT {
                typed_arrays = true;
                continue;
            }
            match export.ty() {
                ExternType::Memory(_) if name == "memory" => has_memory = true,
                ExternType::Func(f) => {
                    let params: Vec<ValType> = f.params().collect();
                    let results: Vec<ValType> = f.results().collect();
                    match name {
                        "grid_alloc" => has_alloc = true,
                        "grid_free" => {}
                        "_start" => command = true,
                        "_initialize" => initialize = true,
                        _ => {
                            if let Some(fname) = name.strip_prefix(CBOR_PREFIX) {
                                let sig_ok =
                                    matches!(params.as_slice(), [ValType::I32, ValType::I32])
                                        && matches!(results.as_slice(), [ValType::I64]);
                                if sig_ok {
                                    functions.insert(
                                        fname.to_string(),
                                        Convention::Cbor {
                                            export: name.to_string(),
                                        },
                                    );
                                    continue;
                                }
                            }
                            if params.iter().chain(&results).all(is_number) {
                                functions
                                    .entry(name.to_string())
                                    .or_insert(Convention::Numeric { params, results });
                            } else {
                                other.insert(name.to_string());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Exports {
            functions,
            other,
            cbor_ready: has_alloc && has_memory,
            command,
            initialize,
            typed_arrays,
        }
    }

    /// How typed arrays are written for this module.
    pub(crate) fn typed(&self) -> Typed {
        if self.typed_arrays {
            Typed::Tags
        } else {
            Typed::Plain
        }
    }

    /// How to call `name`, or why it cannot be called.
    pub(crate) fn find(&self, name: &str) -> Result<&Convention, TaskError> {
        match self.functions.get(name) {
            Some(Convention::Cbor { .. }) if !self.cbor_ready => Err(TaskError::ModuleInvalid {
                    reason: format!(
                        "`{CBOR_PREFIX}{name}` uses the CBOR ABI, but the module does not export both `grid_alloc` and `memory`"
                    ),
            }),
            Some(c) => Ok(c),
            None if self.other.contains(name) => Err(TaskError::BadArguments {
                function: name.to_string(),
                message: "the export's parameters or results are not all numbers (i32, i64, f32, f64), and there is no `grid:` CBOR export of that name".into(),
            }),
            None => Err(TaskError::ExportMissing {
                name: name.to_string(),
                exports: self.callable(),
            }),
        }
    }

    /// Names a task can call, for error messages.
    pub(crate) fn callable(&self) -> Vec<String> {
        let mut names: Vec<String> = self.functions.keys().cloned().collect();
        if self.command {
            names.push("_start (WASI command)".into());
        }
        names
    }
}

fn is_number(t: &ValType) -> bool {
    matches!(t, ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64)
}

fn type_name(t: &ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        _ => "non-numeric",
    }
}

/// A failed call: the task's fault, or something that happened in the guest.
pub(crate) enum CallError {
    Task(TaskError),
    Wasm(wasmtime::Error),
}

impl From<wasmtime::Error> for CallError {
    fn from(e: wasmtime::Error) -> Self {
        CallError::Wasm(e)
    }
}

impl From<TaskError> for CallError {
    fn from(e: TaskError) -> Self {
        CallError::Task(e)
    }
}

/// Converts task values into wasm arguments of the given types.
pub(crate) fn numeric_args(
    function: &str,
    params: &[ValType],
    args: &[Value],
) -> Result<Vec<Val>, TaskError> {
    let bad = |message: String| TaskError::BadArguments {
        function: function.to_string(),
        message,
    };
    if params.len() != args.len() {
        let sig: Vec<&str> = params.iter().map(type_name).collect();
        return Err(bad(format!(
            "takes {} argument{} ({}), got {}",
            params.len(),
            if params.len() == 1 { "" } else { "s" },
            sig.join(", "),
            args.len()
        )));
    }
    params
        .iter()
        .zip(args)
        .enumerate()
        .map(|(i, (ty, v))| to_val(ty, v).map_err(|m| bad(format!("argument {}: {m}", i + 1))))
        .collect()
}

fn to_val(ty: &ValType, v: &Value) -> Result<Val, String> {
    let int = |lo: i128, hi: i128| -> Result<i128, String> {
        match v {
            Value::Int(n) if (lo..=hi).contains(n) => Ok(*n),
            Value::Int(n) => Err(format!("{n} does not fit {} ({lo}..={hi})", type_name(ty))),
            other => Err(format!(
                "expected an integer for {}, got {} {other}",
                type_name(ty),
                other.type_name()
            )),
        }
    };
    let float = || -> Result<f64, String> {
        match v {
            Value::Float(x) => Ok(*x),
            Value::Int(n) => Ok(*n as f64),
            other => Err(format!(
                "expected a number for {}, got {} {other}",
                type_name(ty),
                other.type_name()
            )),
        }
    };
    Ok(match ty {
        ValType::I32 => Val::I32(int(i32::MIN.into(), i32::MAX.into())? as i32),
        ValType::I64 => Val::I64(int(i64::MIN.into(), i64::MAX.into())? as i64),
        ValType::F32 => Val::F32((float()? as f32).to_bits()),
        ValType::F64 => Val::F64(float()?.to_bits()),
        other => return Err(format!("unsupported parameter type {other}")),
    })
}

/// Converts wasm results into the task's value.
pub(crate) fn numeric_result(results: &[Val]) -> Value {
    let one = |v: &Val| match v {
        Val::I32(x) => Value::from(*x),
        Val::I64(x) => Value::from(*x),
        Val::F32(bits) => Value::Float(f32::from_bits(*bits).into()),
        Val::F64(bits) => Value::Float(f64::from_bits(*bits)),
        _ => Value::Null,
    };
    match results {
        [] => Value::Null,
        [v] => one(v),
        many => Value::Array(many.iter().map(one).collect()),
    }
}

/// Calls a numeric export.
pub(crate) fn call_numeric(
    mut store: impl AsContextMut,
    instance: &Instance,
    function: &str,
    params: &[ValType],
    results: usize,
    args: &[Value],
) -> Result<Value, CallError> {
    let vals = numeric_args(function, params, args)?;
    let func = instance
        .get_func(&mut store, function)
        .ok_or_else(|| TaskError::Internal(format!("export `{function}` vanished")))?;
    let mut out = vec![Val::I32(0); results];
    func.call(&mut store, &vals, &mut out)?;
    Ok(numeric_result(&out))
}

/// Calls a CBOR-ABI export with already encoded arguments.
pub(crate) fn call_cbor(
    mut store: impl AsContextMut,
    instance: &Instance,
    function: &str,
    export: &str,
    encoded_args: &[u8],
) -> Result<Value, CallError> {
    let internal = |what: &str| TaskError::Internal(format!("{what} vanished after load"));
    let mem = memory::exported_memory(instance.get_export(&mut store, "memory"))
        .ok_or_else(|| internal("memory"))?;
    let alloc = instance.get_typed_func::<i32, i32>(&mut store, "grid_alloc")?;
    let func = instance.get_typed_func::<(i32, i32), i64>(&mut store, export)?;
    let ptr = memory::write_new(&mut store, mem, &alloc, encoded_args, "passing arguments")?;
    let packed = func.call(&mut store, (ptr as i32, encoded_args.len() as i32))?;
    let (out_ptr, out_len) = memory::unpack(packed);
    let bytes = memory::read(&mut store, mem, out_ptr, out_len, "reading the result")
        .map_err(|e| TaskError::BadResult(e.to_string()))?;
    if let Ok(free) = instance.get_typed_func::<(i32, i32), ()>(&mut store, "grid_free") {
        free.call(&mut store, (out_ptr as i32, out_len as i32))?;
    }
    envelope(function, &bytes)
}

/// The value of the ok/error envelope a CBOR-ABI function returns: a map
/// with one entry, `ok`, `err` or `bad_arguments` (a string).
fn envelope(function: &str, bytes: &[u8]) -> Result<Value, CallError> {
    let malformed = |why: String| -> CallError {
        TaskError::BadResult(format!(
            "expected a CBOR map {{\"ok\": value}} or {{\"err\": value}} ({why})"
        ))
        .into()
    };
    let entries = match cbor::decode_value(bytes) {
        Ok(Value::Map(entries)) => entries,
        Ok(other) => return Err(malformed(format!("got {}", other.type_name()))),
        Err(e) => return Err(malformed(e.to_string())),
    };
    let [(key, value)]: [(Value, Value); 1] = entries
        .try_into()
        .map_err(|e: Vec<_>| malformed(format!("a map of {} entries", e.len())))?;
    match (key.as_str(), value) {
        (Some("ok"), v) => Ok(v),
        (Some("err"), v) => Err(TaskError::Guest(v).into()),
        (Some("bad_arguments"), Value::Str(message)) => Err(TaskError::BadArguments {
            function: function.to_string(),
            message,
        }
        .into()),
        (Some("bad_arguments"), other) => Err(malformed(format!(
            "bad_arguments holds {}, not a string",
            other.type_name()
        ))),
        (_, _) => Err(malformed(format!("unknown key {key}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<Vec<Val>, TaskError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn numeric_arguments_are_checked() {
        let i32s = [ValType::I32];
        assert!(
            msg(numeric_args("f", &i32s, &[Value::from(1i64 << 40)])).contains("does not fit i32")
        );
        assert!(
            msg(numeric_args("f", &[ValType::I64], &[Value::from("abc")])).contains("got string")
        );
        assert!(
            msg(numeric_args("f", &[ValType::I64], &[Value::Float(1.5)])).contains("got float 1.5")
        );
        assert!(msg(numeric_args("f", &i32s, &[])).contains("takes 1 argument (i32), got 0"));
        let ok = numeric_args(
            "f",
            &[ValType::F64, ValType::I32],
            &[Value::from(2), Value::from(-3)],
        )
        .unwrap();
        assert!(matches!(ok[0], Val::F64(b) if f64::from_bits(b) == 2.0));
        assert!(matches!(ok[1], Val::I32(-3)));
    }

    #[test]
    fn results_become_values() {
        assert_eq!(numeric_result(&[]), Value::Null);
        assert_eq!(numeric_result(&[Val::I32(-1)]), Value::from(-1));
        assert_eq!(
            numeric_result(&[Val::I64(2), Val::F64(0.5f64.to_bits())]),
            Value::Array(vec![Value::from(2), Value::Float(0.5)])
        );
    }
}
