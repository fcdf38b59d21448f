//! The engine's namespace: named values that outlive a task.
//!
//! It is the only state shared between the tasks of one engine slot: clients
//! push and pull values, task arguments may refer to names, and guests read
//! and write entries through the `grid.ns_*` imports (see `imports.rs`). It is
//! a plain map; it knows nothing of wasm.

use std::collections::HashMap;

use grid_proto::{Arg, TaskError, Value};

/// Named values of one engine slot.
#[derive(Clone, Debug, Default)]
pub struct Namespace {
    entries: HashMap<String, Value>,
}

impl Namespace {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries.get(name)
    }

    /// Stores `value` under `name`, returning the previous value.
    pub fn set(&mut self, name: impl Into<String>, value: Value) -> Option<Value> {
        self.entries.insert(name.into(), value)
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.entries.remove(name)
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Turns task arguments into values, looking references up here.
    pub fn resolve(&self, function: &str, args: &[Arg]) -> Result<Vec<Value>, TaskError> {
        args.iter()
            .enumerate()
            .map(|(i, arg)| match arg {
                Arg::Value(v) => Ok(v.clone()),
                Arg::Ref(name) => self.get(name).cloned().ok_or_else(|| TaskError::BadArguments {
                    function: function.to_string(),
                    message: format!(
                        "argument {}: reference to `{name}`, which is not in this engine's namespace",
                        i + 1
                    ),
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_or_name_what_is_missing() {
        let mut ns = Namespace::default();
        ns.set("x", Value::from(3));
        let args = [Arg::Ref("x".into()), Arg::Value(Value::from(4))];
        assert_eq!(
            ns.resolve("f", &args).unwrap(),
            vec![Value::from(3), Value::from(4)]
        );
        let err = ns.resolve("f", &[Arg::Ref("y".into())]).unwrap_err();
        assert!(err.to_string().contains("`y`"), "{err}");
    }
}
