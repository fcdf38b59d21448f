//! The items a map runs over, and the arguments of one call.
//!
//! Items come as JSON values on the command line, as a `--range A..B` of
//! integers, or as JSON lines on stdin (blank lines skipped). Each item
//! becomes one call's arguments: a JSON array is spread into positional
//! arguments (`[3,4]` calls `f(3, 4)`; wrap it, `[[1,2]]`, to pass one
//! array), anything else is the single argument. Text that is not JSON is a
//! usage error naming the item or the line. With `--typed ELEM`, every
//! argument that is an array of numbers goes as a typed array of ELEM (one
//! buffer, which guests read with one copy); a number that does not fit ELEM
//! is a usage error naming the argument.

use std::io::BufRead;
use std::ops::Range;

use clap::Args;
use grid_proto::{Elem, Value};

use crate::failure::usage;

/// The `--typed` option of the commands that take JSON arguments.
#[derive(Args, Debug, Clone, Default)]
pub struct TypedArgs {
    /// Send each argument that is a JSON array of numbers as a typed array
    /// of ELEM (u8 i8 u16 i16 u32 i32 u64 i64 f32 f64): one buffer, which a
    /// guest reads with one copy
    #[arg(long, value_name = "ELEM", value_parser = parse_elem)]
    pub typed: Option<Elem>,
}

fn parse_elem(text: &str) -> Result<Elem, String> {
    text.parse()
        .map_err(|e: grid_proto::TypedError| e.to_string())
}

impl TypedArgs {
    /// `args` with each array of numbers made a typed array (see the
    /// module docs); `what` names the call in errors (`item 3`).
    fn apply(&self, args: CallArgs, what: &str) -> anyhow::Result<CallArgs> {
        let Some(elem) = self.typed else {
            return Ok(args);
        };
        args.into_iter()
            .enumerate()
            .map(|(i, arg)| match &arg {
                Value::Array(items)
                    if items
                        .iter()
                        .all(|v| matches!(v, Value::Int(_) | Value::Float(_))) =>
                {
                    arg.to_typed(elem).map(Value::Typed).map_err(|e| {
                        usage(format!("{what}, argument {}: --typed {elem}: {e}", i + 1))
                    })
                }
                _ => Ok(arg),
            })
            .collect()
    }
}

/// One call's arguments.
pub type CallArgs = Vec<Value>;

/// An item's arguments: an array spread into positional arguments, anything
/// else as the one argument.
pub fn spread(item: Value) -> CallArgs {
    match item {
        Value::Array(args) => args,
        other => vec![other],
    }
}

/// Items given as JSON texts on the command line, spread, with `typed`.
pub fn from_texts(texts: &[String], typed: &TypedArgs) -> anyhow::Result<Vec<CallArgs>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let item = Value::parse_json(text)
                .map(spread)
                .map_err(|e| usage(format!("item {i} (`{text}`): {e}")))?;
            typed.apply(item, &format!("item {i}"))
        })
        .collect()
}

/// A call's arguments given as JSON texts (each one argument, never
/// spread), with `typed`.
pub fn arguments(texts: &[String], typed: &TypedArgs) -> anyhow::Result<CallArgs> {
    let args = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Value::parse_json(text).map_err(|e| usage(format!("argument {i} (`{text}`): {e}")))
        })
        .collect::<anyhow::Result<CallArgs>>()?;
    typed.apply(args, "the call")
}

/// Items read lazily as JSON lines, spread; blank lines are skipped.
/// `source` names the input in messages (`stdin`). The iterator ends at the
/// first line that cannot be read or is not JSON, and leaves the usage
/// error naming it in `error`: a map over a hundred million lines never
/// holds them all.
pub fn lines_lazily<'a>(
    input: impl BufRead + 'a,
    source: &'a str,
    typed: &'a TypedArgs,
    error: &'a std::cell::RefCell<Option<anyhow::Error>>,
) -> impl Iterator<Item = CallArgs> + 'a {
    input
        .lines()
        .enumerate()
        .map_while(move |(n, line)| {
            let number = n + 1;
            let parsed = line
                .map_err(|e| usage(format!("cannot read line {number} of {source}: {e}")))
                .and_then(|line| {
                    if line.trim().is_empty() {
                        return Ok(None);
                    }
                    let item = Value::parse_json(&line)
                        .map(spread)
                        .map_err(|e| usage(format!("line {number} of {source}: {e}")))?;
                    typed
                        .apply(item, &format!("line {number} of {source}"))
                        .map(Some)
                });
            match parsed {
                Ok(item) => Some(item),
                Err(e) => {
                    *error.borrow_mut() = Some(e);
                    None
                }
            }
        })
        .flatten()
}

/// Items read as JSON lines (all of them), spread; see [`lines_lazily`].
#[cfg(test)]
pub fn from_lines(input: impl BufRead, source: &str) -> anyhow::Result<Vec<CallArgs>> {
    let error = std::cell::RefCell::new(None);
    let typed = TypedArgs::default();
    let items: Vec<CallArgs> = lines_lazily(input, source, &typed, &error).collect();
    match error.into_inner() {
        Some(e) => Err(e),
        None => Ok(items),
    }
}

/// Items `start, start+1, ..., end-1`, each the one argument of its call.
pub fn from_range(range: Range<i64>) -> impl Iterator<Item = CallArgs> {
    range.map(|i| vec![Value::from(i)])
}

/// Parses `A..B`: integers, half-open, `A <= B`.
pub fn parse_range(text: &str) -> Result<Range<i64>, String> {
    let bad = || format!("`{text}` is not a range: give A..B with integers A <= B, e.g. 0..10");
    let (start, end) = text.split_once("..").ok_or_else(bad)?;
    let start: i64 = start.trim().parse().map_err(|_| bad())?;
    let end: i64 = end.trim().parse().map_err(|_| bad())?;
    if start > end {
        return Err(bad());
    }
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        Value::parse_json(text).unwrap()
    }

    #[test]
    fn arrays_spread_into_positional_arguments() {
        assert_eq!(spread(json("[3,4]")), vec![json("3"), json("4")]);
        assert_eq!(spread(json("[[1,2]]")), vec![json("[1,2]")]);
        assert_eq!(spread(json("[]")), Vec::<Value>::new());
        assert_eq!(spread(json("5")), vec![json("5")]);
        assert_eq!(spread(json(r#"{"a":1}"#)), vec![json(r#"{"a":1}"#)]);
        assert_eq!(spread(json(r#""s""#)), vec![json(r#""s""#)]);
    }

    #[test]
    fn command_line_items_name_the_bad_one() {
        let texts = ["1", "[2,3]", "x"].map(String::from);
        let e = from_texts(&texts, &TypedArgs::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("item 2 (`x`): not valid JSON"), "{e}");
        let items = from_texts(&texts[..2], &TypedArgs::default()).unwrap();
        assert_eq!(items, vec![vec![json("1")], vec![json("2"), json("3")]]);
    }

    #[test]
    fn call_arguments_are_not_spread() {
        let texts = ["[1,2]", "\"s\""].map(String::from);
        assert_eq!(
            arguments(&texts, &TypedArgs::default()).unwrap(),
            vec![json("[1,2]"), json(r#""s""#)]
        );
        assert!(
            arguments(&["nope".into()], &TypedArgs::default())
                .unwrap_err()
                .to_string()
                .starts_with("argument 0 (`nope`)")
        );
    }

    #[test]
    fn lines_skip_blanks_and_name_the_bad_line() {
        let input = "1\n\n  \n[2, 3]\n\"s\"\n";
        let items = from_lines(input.as_bytes(), "stdin").unwrap();
        assert_eq!(
            items,
            vec![
                vec![json("1")],
                vec![json("2"), json("3")],
                vec![json(r#""s""#)]
            ]
        );
        let e = from_lines("1\n2\n{oops\n".as_bytes(), "stdin")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 3 of stdin: not valid JSON"), "{e}");
    }

    #[test]
    fn ranges_are_half_open_integers() {
        assert_eq!(parse_range("0..10"), Ok(0..10));
        assert_eq!(parse_range("-5..5"), Ok(-5..5));
        assert_eq!(parse_range("3..3"), Ok(3..3));
        for bad in ["10..0", "0..", "..5", "0...5", "a..b", "1.5..2", "0-10", ""] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
        let range: Vec<CallArgs> = from_range(2..4).collect();
        assert_eq!(range, vec![vec![json("2")], vec![json("3")]]);
    }
}
