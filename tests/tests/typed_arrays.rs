//! Typed arrays end to end, on both buses: a client sends `f64`/`i64`
//! arrays as [`TypedArray`]s, the Rust example guest (which exports
//! `grid_typed_arrays`) reads them with one copy and returns typed arrays,
//! and the namespace keeps them typed through push and pull.

use std::time::Duration;

use grid_client::{Elem, TypedArray, Value};
use grid_tests::{Backend, on_both_buses};

const T: Option<Duration> = Some(Duration::from_secs(60));

on_both_buses!(
    typed_arrays_go_into_guests_and_come_back_typed,
    typed_arrays_keep_their_type_in_the_namespace,
    typed_arrays_scatter_as_slices_and_gather_joined,
);

fn typed_arrays_go_into_guests_and_come_back_typed(backend: Backend) {
    let Some(wasm) = grid_examples::require_path(grid_examples::rust_guest()) else {
        return;
    };
    let client = grid_tests::cluster(backend, 2);
    let module = client.load_module(wasm).expect("module uploads");
    let lb = client.load_balanced_view();
    let xs: Vec<f64> = (0..100_000).map(|i| i as f64 * 0.5).collect();
    let sum: f64 = xs.iter().sum();
    let typed = Value::Typed(TypedArray::from_slice(&xs));
    let got = lb
        .apply_sync(&module.func("sum_f64"), [typed.clone()])
        .unwrap();
    assert_eq!(got, Value::Float(sum));
    // A plain array of numbers is read too (the element loop).
    let plain = Value::Array(xs.iter().take(4).map(|&x| Value::Float(x)).collect());
    let got = lb.apply_sync(&module.func("sum_f64"), [plain]).unwrap();
    assert_eq!(got, Value::Float(0.0 + 0.5 + 1.0 + 1.5));
    let scaled = lb
        .apply_sync(&module.func("scale_f64"), [typed, Value::Float(2.0)])
        .unwrap();
    let scaled = scaled.as_typed().expect("a typed array comes back");
    assert_eq!(scaled.as_slice::<f64>().unwrap()[99_999], 99_999.0);
    let sums = lb
        .apply_async(
            &module.func("cumsum_i64"),
            [Value::Typed(TypedArray::from_vec(vec![1i64, 2, 3]))],
        )
        .unwrap()
        .get(T)
        .unwrap();
    assert_eq!(
        sums.as_typed().unwrap().to_vec::<i64>(),
        Some(vec![1, 3, 6])
    );
}

fn typed_arrays_keep_their_type_in_the_namespace(backend: Backend) {
    let client = grid_tests::cluster(backend, 2);
    let all = client.view_all().unwrap();
    let a = Value::Typed(TypedArray::from_vec((0..1_000u32).collect::<Vec<_>>()));
    let values = [("a".to_string(), a.clone())].into_iter().collect();
    all.push(values).unwrap().get(T).unwrap();
    let pulled = all.pull("a").unwrap().get(T).unwrap();
    assert_eq!(pulled, Value::Array(vec![a; 2]));
}

fn typed_arrays_scatter_as_slices_and_gather_joined(backend: Backend) {
    let client = grid_tests::cluster(backend, 2);
    let all = client.view_all().unwrap();
    let xs: Vec<f64> = (0..1_001).map(f64::from).collect();
    let array = TypedArray::from_slice(&xs);
    all.scatter_array("x", &array, false)
        .unwrap()
        .get(T)
        .unwrap();
    // ipyparallel's partition: as equal as possible, in engine order.
    let parts = all.pull("x").unwrap().get(T).unwrap();
    let Value::Array(parts) = parts else {
        panic!("expected one part per engine, got {parts}")
    };
    let lens: Vec<usize> = parts.iter().map(|p| p.as_typed().unwrap().len()).collect();
    assert_eq!(lens, vec![501, 500]);
    let back = all.gather_array("x", Elem::F64, T).unwrap();
    assert_eq!(back, array);
    assert_eq!(all.gather("x", T).unwrap().len(), 1_001);
    // flatten: a part of one element is that number.
    let two = TypedArray::from_slice(&[7i64, 8]);
    all.scatter_array("y", &two, true).unwrap().get(T).unwrap();
    let parts = all.pull("y").unwrap().get(T).unwrap();
    assert_eq!(parts, Value::Array(vec![Value::Int(7), Value::Int(8)]));
    assert_eq!(all.gather_array("y", Elem::I64, T).unwrap(), two);
}
