//! Numeric arrays: a `TypedArray` is numbers of one type in one buffer (the
//! way ipyparallel users send numpy arrays). It travels as one byte string,
//! reaches a guest function taking `&[f64]` or `Vec<f64>` with one copy,
//! comes back from one returning `Vec<f64>` as a typed array, and
//! scatters and gathers as slices of its buffer.
//! Run it with `cargo run -p grid-examples --example arrays`.

use std::collections::BTreeMap;

use grid_client::{Client, Elem, EngineId, TypedArray, Value};

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(guest) = grid_examples::require_path(grid_examples::rust_guest()) else {
        println!("the Rust example guest is not built: skipping");
        return Ok(());
    };
    let client = Client::local(2)?;
    let module = client.load_module(guest)?;
    let lb = client.load_balanced_view();

    // A million floats: one buffer, no per-element boxing. `from_vec` takes
    // the vector's memory as it is.
    let xs: Vec<f64> = (0..1_000_000).map(|i| i as f64).collect();
    let expected: f64 = xs.iter().sum();
    let array = TypedArray::from_vec(xs);

    // f(arr) in ipyparallel: the guest's `sum_f64(xs: &[f64])` gets the
    // buffer with one copy into its memory.
    let sum = lb.apply_sync(&module.func("sum_f64"), [Value::Typed(array.clone())])?;
    assert_eq!(sum, Value::Float(expected));

    // A guest returning `Vec<f64>` answers with a typed array: read it as a
    // slice (borrowed when the buffer is aligned, as it is here).
    let scaled = lb.apply_sync(
        &module.func("scale_f64"),
        [Value::Typed(array.slice(..4)), Value::Float(0.5)],
    )?;
    let scaled = scaled.as_typed().ok_or("expected a typed array")?;
    assert_eq!(
        scaled.as_slice::<f64>().as_deref(),
        Some(&[0.0, 0.5, 1.0, 1.5][..])
    );

    // dview.scatter('x', arr) and dview.gather('x'): each engine gets a
    // contiguous slice (as equal as possible, in engine order); gathering
    // joins them with one copy each.
    let all = client.view_all()?;
    all.scatter_array("x", &array, false)?.get(None)?;
    let e1 = client.view_one(EngineId(1));
    let part = e1.get("x")?;
    println!(
        "engine 1 holds {:?}",
        part.as_typed().ok_or("a typed part")?
    );
    assert_eq!(all.gather_array("x", Elem::F64, None)?, array);

    // dview.push({'a': arr}) and pull: the namespace keeps it typed.
    let small = Value::Typed(TypedArray::from_slice(&[1i64, 2, 3]));
    let values = BTreeMap::from([("a".to_string(), small.clone())]);
    all.push(values)?.get(None)?;
    assert_eq!(
        all.pull("a")?.get(None)?,
        Value::Array(vec![small.clone(); 2])
    );

    // Plain JSON-like arrays become typed ones where asked (what
    // `grid apply --typed i64` does with its arguments).
    let plain = Value::parse_json("[1, 2, 3]")?;
    assert_eq!(Value::Typed(plain.to_typed(Elem::I64)?), small);
    println!("sum of a million floats: {sum}; shown as JSON: {}", small);
    Ok(())
}
