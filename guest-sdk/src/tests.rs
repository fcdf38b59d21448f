//! End-to-end tests of `#[export]` on the host: CBOR arguments in, envelope out,
//! through the same generated decoder the wasm export calls.
//!
//! They pin the messages a caller sees for bad arguments and the envelope shape
//! for each kind of return type, which is what the engine and its users rely on,
//! including the typed-array fast path for arrays of numbers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::typed::{self, TypedArray};
use crate::{Envelope, Value, cbor, export};

#[export]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[export]
fn nothing() {}

// Spelled out on purpose: `-> ()` must answer null just like no return type.
#[allow(clippy::unused_unit)]
#[export]
fn unit(_x: bool) -> () {}

#[export]
fn half(x: f64) -> f64 {
    x / 2.0
}

#[export]
fn checked(x: i64) -> Result<i64, String> {
    if x >= 0 {
        Ok(x)
    } else {
        Err(format!("negative: {x}"))
    }
}

#[export]
fn checked_unit(ok: bool) -> std::result::Result<(), Value> {
    if ok { Ok(()) } else { Err(Value::from("no")) }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum Shape {
    Dot,
    Circle(u32),
    Rect { w: u32, h: u32 },
}

#[export]
fn describe(point: Point, shape: Shape, tags: Option<Vec<String>>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    out.insert("x".to_owned(), Value::from(point.x));
    out.insert("shape".to_owned(), Value::from(format!("{shape:?}")));
    out.insert("tags".to_owned(), Value::from(tags.map(|t| t.join(","))));
    out
}

#[export(name = "renamed")]
fn r#type((a, b): (u8, u8)) -> u16 {
    u16::from(a) + u16::from(b)
}

#[export]
fn sum(xs: &[f64]) -> f64 {
    xs.iter().sum()
}

#[export]
fn scale(xs: Vec<f64>, k: f64) -> Vec<f64> {
    xs.into_iter().map(|x| x * k).collect()
}

// Boxed on purpose: the macro must accept `Box<[N]>` parameters.
#[allow(clippy::boxed_local)]
#[export]
fn negate(xs: Box<[i32]>) -> Box<[i32]> {
    xs.iter().map(|x| x.wrapping_neg()).collect()
}

#[export]
fn sorted(xs: &mut [u16]) -> Vec<u16> {
    xs.sort_unstable();
    xs.to_vec()
}

#[export]
fn halves(xs: Vec<i64>) -> Result<Vec<i64>, String> {
    xs.iter()
        .map(|x| {
            if x % 2 == 0 {
                Ok(x / 2)
            } else {
                Err(format!("{x} is odd"))
            }
        })
        .collect()
}

#[export]
fn histogram(bytes: &[u8]) -> Vec<u64> {
    let mut counts = vec![0; 4];
    for &b in bytes {
        counts[usize::from(b % 4)] += 1;
    }
    counts
}

/// Not a number element type: goes through serde as before, a plain array.
#[export]
fn strings(xs: Vec<String>) -> Vec<String> {
    xs
}

/// An argument array whose items are already encoded (typed arrays, say).
fn arguments(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0x80 | u8::try_from(items.len()).unwrap()];
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// Calls a generated decoder with `arguments` encoded as the engine would.
fn call<A: Serialize>(decoder: fn(&[u8]) -> Vec<u8>, arguments: A) -> Envelope {
    let envelope = decoder(&cbor::to_vec(&arguments).unwrap());
    Envelope::decode(&envelope).unwrap()
}

fn bad(message: &str) -> Envelope {
    Envelope::BadArguments(message.to_owned())
}

#[test]
fn results_come_back_as_ok() {
    assert_eq!(
        call(__grid_export_add, (2, 3)),
        Envelope::Ok(Value::Integer(5))
    );
    assert_eq!(add(2, 3), 5, "the function stays callable");
    assert_eq!(
        call(__grid_export_half, [3]),
        Envelope::Ok(Value::Float(1.5))
    );
    assert_eq!(
        call(__grid_export_type, [(1, 2)]),
        Envelope::Ok(Value::Integer(3))
    );
}

#[test]
fn no_result_is_null() {
    assert_eq!(
        call(__grid_export_nothing, [0; 0]),
        Envelope::Ok(Value::Null)
    );
    assert_eq!(call(__grid_export_unit, [true]), Envelope::Ok(Value::Null));
    assert_eq!(
        call(__grid_export_checked_unit, [true]),
        Envelope::Ok(Value::Null)
    );
}

#[test]
fn err_becomes_the_err_envelope() {
    assert_eq!(
        call(__grid_export_checked, [4]),
        Envelope::Ok(Value::Integer(4))
    );
    assert_eq!(
        call(__grid_export_checked, [-1]),
        Envelope::Err(Value::Text("negative: -1".into()))
    );
    assert_eq!(
        call(__grid_export_checked_unit, [false]),
        Envelope::Err(Value::Text("no".into()))
    );
}

#[test]
fn wrong_count_is_bad_arguments() {
    assert_eq!(
        call(__grid_export_add, (1, 2, 3)),
        bad("expected 2 arguments, got 3")
    );
    assert_eq!(
        call(__grid_export_half, [0; 0]),
        bad("expected 1 argument, got 0")
    );
    assert_eq!(
        call(__grid_export_nothing, [1]),
        bad("expected 0 arguments, got 1")
    );
}

#[test]
fn wrong_type_names_the_argument() {
    assert_eq!(
        call(__grid_export_add, (1, "two")),
        bad("argument 2 (b): invalid type: string \"two\", expected i64")
    );
    assert_eq!(
        call(__grid_export_add, (1.5, 2)),
        bad("argument 1 (a): invalid type: floating point `1.5`, expected i64")
    );
    assert_eq!(
        call(__grid_export_type, [(300, 1)]),
        bad("argument 1: invalid value: integer `300`, expected u8")
    );
}

#[test]
fn arguments_must_be_one_cbor_array() {
    let not_array = __grid_export_add(&cbor::to_vec(&7).unwrap());
    assert_eq!(
        Envelope::decode(&not_array).unwrap(),
        bad("arguments must be an array, got an integer")
    );
    let garbage = __grid_export_add(&[0x82, 0x01]);
    let Envelope::BadArguments(message) = Envelope::decode(&garbage).unwrap() else {
        panic!("truncated arguments must be bad_arguments");
    };
    assert!(
        message.starts_with("arguments are not valid CBOR: "),
        "{message}"
    );
}

#[test]
fn structured_arguments_use_serdes_data_model() {
    let point = Point { x: 1, y: 2 };
    let ok = call(
        __grid_export_describe,
        (&point, Shape::Rect { w: 1, h: 2 }, ["a", "b"]),
    );
    let Envelope::Ok(value) = ok else {
        panic!("describe failed: {ok:?}");
    };
    assert_eq!(
        value.get("shape"),
        Some(&Value::from("Rect { w: 1, h: 2 }"))
    );
    assert_eq!(value.get("tags"), Some(&Value::from("a,b")));

    let ok = call(__grid_export_describe, (&point, "Dot", None::<()>));
    let Envelope::Ok(value) = ok else {
        panic!("describe failed: {ok:?}");
    };
    assert_eq!(value.get("shape"), Some(&Value::from("Dot")));
    assert_eq!(value.get("tags"), Some(&Value::Null));

    let ok = call(
        __grid_export_describe,
        (&point, Shape::Circle(3), Value::Null),
    );
    assert!(matches!(ok, Envelope::Ok(_)), "{ok:?}");

    let missing_field = Value::Map(vec![(Value::from("x"), Value::from(1))]);
    assert_eq!(
        call(__grid_export_describe, (missing_field, "Dot", None::<()>)),
        bad("argument 1 (point): missing field `y`")
    );
}

#[test]
fn values_convert_both_ways() {
    let value = crate::to_value(&Point { x: 1, y: -2 }).unwrap();
    assert_eq!(value.get("y").and_then(Value::as_i64), Some(-2));
    let point: Point = crate::from_value(value).unwrap();
    assert_eq!(point, Point { x: 1, y: -2 });
    let any: Value = crate::from_value(Value::Array(vec![Value::Null, 1.5.into()])).unwrap();
    assert_eq!(any.as_array().map(<[Value]>::len), Some(2));
    assert_eq!(crate::from_value::<()>(Value::Array(vec![])), Ok(()));
}

#[test]
fn typed_array_arguments_and_results() {
    let ok = |v: TypedArray| Envelope::Ok(Value::Typed(v));
    let args = arguments(&[typed::encode(&[1.5f64, 2.0])]);
    assert_eq!(
        Envelope::decode(&__grid_export_sum(&args)).unwrap(),
        Envelope::Ok(Value::Float(3.5))
    );
    let args = arguments(&[typed::encode(&[1.5f64, -2.0]), cbor::to_vec(&2).unwrap()]);
    assert_eq!(
        Envelope::decode(&__grid_export_scale(&args)).unwrap(),
        ok(TypedArray::F64(vec![3.0, -4.0]))
    );
    let args = arguments(&[typed::encode(&[1i32, i32::MIN])]);
    assert_eq!(
        Envelope::decode(&__grid_export_negate(&args)).unwrap(),
        ok(TypedArray::I32(vec![-1, i32::MIN]))
    );
    let args = arguments(&[typed::encode(&[3u16, 1, 2])]);
    assert_eq!(
        Envelope::decode(&__grid_export_sorted(&args)).unwrap(),
        ok(TypedArray::U16(vec![1, 2, 3]))
    );
    let args = arguments(&[typed::encode(&[2i64, -4])]);
    assert_eq!(
        Envelope::decode(&__grid_export_halves(&args)).unwrap(),
        ok(TypedArray::I64(vec![1, -2]))
    );
    let args = arguments(&[typed::encode(&[2i64, 3])]);
    assert_eq!(
        Envelope::decode(&__grid_export_halves(&args)).unwrap(),
        Envelope::Err(Value::from("3 is odd"))
    );
    let args = arguments(&[typed::encode(&[0u8, 1, 5, 255])]);
    assert_eq!(
        Envelope::decode(&__grid_export_histogram(&args)).unwrap(),
        ok(TypedArray::U64(vec![1, 2, 0, 1]))
    );
}

/// The result bytes are the envelope header, then RFC 8746 exactly as worked
/// out by hand: tag, byte string header, little-endian elements.
#[test]
fn typed_array_results_are_byte_exact() {
    let args = arguments(&[typed::encode(&[1.5f64]), cbor::to_vec(&-1).unwrap()]);
    assert_eq!(
        __grid_export_scale(&args),
        [
            0xa1, 0x62, b'o', b'k', // {"ok":
            0xd8, 0x56, // tag 86: float64, little-endian
            0x48, // a byte string of 8 bytes
            0, 0, 0, 0, 0, 0, 0xf8, 0xbf, // -1.5 = 0xBFF8000000000000
        ]
    );
    let args = arguments(&[typed::encode(&[1i32, -256])]);
    assert_eq!(
        __grid_export_negate(&args),
        [
            0xa1, 0x62, b'o', b'k', // {"ok":
            0xd8, 0x4e, // tag 78: sint32, little-endian
            0x48, // a byte string of 8 bytes
            0xff, 0xff, 0xff, 0xff, // -1
            0x00, 0x01, 0x00, 0x00, // 256
        ]
    );
}

#[test]
fn array_parameters_accept_plain_arrays_with_serdes_checks() {
    assert_eq!(
        call(__grid_export_sum, [[1.0, 2.5]]),
        Envelope::Ok(3.5.into())
    );
    assert_eq!(call(__grid_export_sum, [[1, 2]]), Envelope::Ok(3.0.into()));
    assert_eq!(
        call(__grid_export_sorted, [[3, 1]]),
        Envelope::Ok(Value::Typed(TypedArray::U16(vec![1, 3])))
    );
    assert_eq!(
        call(__grid_export_histogram, [[1, 300]]),
        bad("argument 1 (bytes): invalid value: integer `300`, expected u8")
    );
    assert_eq!(
        call(__grid_export_negate, [[1.5]]),
        bad("argument 1 (xs): invalid type: floating point `1.5`, expected i32")
    );
    assert_eq!(
        call(__grid_export_sum, ["x"]),
        bad("argument 1 (xs): invalid type: string \"x\", expected a sequence")
    );
    assert_eq!(
        call(__grid_export_scale, (["a"], 1)),
        bad("argument 1 (xs): invalid type: string \"a\", expected f64")
    );
    assert_eq!(
        call(__grid_export_scale, ([1], 1, 2)),
        bad("expected 2 arguments, got 3")
    );
}

#[test]
fn array_parameters_convert_other_typed_arrays_and_bytes() {
    // A typed array of another element type converts element by element.
    let args = arguments(&[typed::encode(&[1i32, 2])]);
    assert_eq!(
        Envelope::decode(&__grid_export_sum(&args)).unwrap(),
        Envelope::Ok(3.0.into())
    );
    let args = arguments(&[typed::encode(&[-1i64])]);
    assert_eq!(
        Envelope::decode(&__grid_export_histogram(&args)).unwrap(),
        bad("argument 1 (bytes): invalid value: integer `-1`, expected u8")
    );
    // A byte string is an array of u8.
    let args = arguments(&[cbor::to_vec(&Value::Bytes(vec![4, 5, 6])).unwrap()]);
    assert_eq!(
        Envelope::decode(&__grid_export_histogram(&args)).unwrap(),
        Envelope::Ok(Value::Typed(TypedArray::U64(vec![1, 1, 1, 0])))
    );
    // Serde parameters read typed arrays too, as sequences of numbers.
    let args = arguments(&[typed::encode(&[1u8, 2])]);
    assert_eq!(
        Envelope::decode(&__grid_export_type(&args)).unwrap(),
        Envelope::Ok(Value::Integer(3))
    );
    let args = arguments(&[typed::encode(&[1u8])]);
    assert_eq!(
        Envelope::decode(&__grid_export_strings(&args)).unwrap(),
        bad("argument 1 (xs): invalid type: integer `1`, expected a string")
    );
    assert_eq!(
        call(__grid_export_strings, [["a"]]),
        Envelope::Ok(Value::Array(vec!["a".into()]))
    );
}

#[test]
fn malformed_typed_arrays_are_bad_arguments() {
    let cases: [(&[u8], &str); 3] = [
        (
            &[0x81, 0xd8, 86, 0x43, 1, 2, 3],
            "a float64 typed array of 3 bytes: not a multiple of 8",
        ),
        (
            &[0x81, 0xd8, 84, 0x40],
            "tag 84 (float16 typed array) is not supported",
        ),
        (&[0x81, 0xc0, 0x60], "tag 0 is not supported"),
    ];
    for (bytes, expected) in cases {
        let Envelope::BadArguments(message) = Envelope::decode(&__grid_export_sum(bytes)).unwrap()
        else {
            panic!("{bytes:x?} must be bad_arguments");
        };
        assert!(
            message.starts_with("arguments are not valid CBOR: "),
            "{message}"
        );
        assert!(message.contains(expected), "{message}");
    }
}
