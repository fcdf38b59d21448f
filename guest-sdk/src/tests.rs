//! End-to-end tests of `#[export]` on the host: CBOR arguments in, envelope out,
//! through the same generated decoder the wasm export calls.
//!
//! They pin the messages a caller sees for bad arguments and the envelope shape
//! for each kind of return type, which is what the engine and its users rely on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
