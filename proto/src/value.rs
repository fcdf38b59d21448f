//! `Value`: the data model of arguments, results and namespace entries.
//!
//! null, bool, integers, floats, strings, bytes, arrays and maps: what CBOR and
//! JSON can both say, plus typed arrays ([`TypedArray`]: numbers of one type in
//! one buffer, RFC 8746's typed arrays in CBOR, arrays of numbers in JSON), so
//! a value typed on the command line, produced by a Rust guest through serde,
//! or built by a C guest by hand all mean the same thing.
//! Integers span `i64::MIN..=u64::MAX` (CBOR's native range); maps keep their
//! entries in order and may have any keys, as CBOR maps do.
//!
//! JSON mapping (for the CLI): objects are maps with string keys; numbers are
//! integers when they have no fraction or exponent, floats otherwise. Going back
//! to JSON, bytes become an array of integers, non-finite floats become null and
//! non-string map keys are written as their JSON text: close enough to read,
//! not meant to round-trip.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::typed::{Elem, TypedArray, TypedError};

/// A value on the wire.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    /// An integer in `i64::MIN..=u64::MAX`.
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// Numbers of one type in one shared buffer (see [`TypedArray`]).
    Typed(TypedArray),
}

impl Value {
    /// The name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Typed(a) => a.elem().array_name(),
        }
    }

    /// The value of `key` if this is a map with a string key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => i64::try_from(*n).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(x) => Some(*x),
            Value::Int(n) => Some(*n as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Converts parsed JSON into a value.
    pub fn from_json(json: serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i.into())
                } else if let Some(u) = n.as_u64() {
                    Value::Int(u.into())
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::Map(
                map.into_iter()
                    .map(|(k, v)| (Value::Str(k), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Parses JSON text into a value.
    pub fn parse_json(text: &str) -> Result<Value, FromJsonError> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FromJsonError(e.to_string()))?;
        Ok(Value::from_json(json))
    }

    /// This value as a typed array of `elem`: an array of numbers that fit
    /// (see [`TypedArray::from_values`]), bytes as `u8`, or a typed array
    /// (converted when its element type differs).
    pub fn to_typed(&self, elem: Elem) -> Result<TypedArray, TypedError> {
        match self {
            Value::Array(items) => TypedArray::from_values(elem, items),
            Value::Typed(a) if a.elem() == elem => Ok(a.clone()),
            Value::Typed(a) => TypedArray::from_values(elem, &a.values().collect::<Vec<_>>()),
            Value::Bytes(b) if elem == Elem::U8 => Ok(TypedArray::from_slice(b)),
            other => Err(TypedError::NotAnArray(other.type_name())),
        }
    }

    /// The typed array in this value, if it is one.
    pub fn as_typed(&self) -> Option<&TypedArray> {
        match self {
            Value::Typed(a) => Some(a),
            _ => None,
        }
    }

    /// Converts this value to JSON (see the module docs for what is lossy).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(n) => {
                if let Ok(i) = i64::try_from(*n) {
                    J::from(i)
                } else if let Ok(u) = u64::try_from(*n) {
                    J::from(u)
                } else {
                    J::String(n.to_string())
                }
            }
            Value::Float(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Bytes(b) => J::Array(b.iter().map(|&x| J::from(x)).collect()),
            Value::Array(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Typed(a) => J::Array(a.values().map(|v| v.to_json()).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Value::Str(s) => s.clone(),
                            other => other.to_json().to_string(),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
        }
    }
}

/// Text that is not JSON.
#[derive(Debug, thiserror::Error)]
#[error("not valid JSON: {0}")]
pub struct FromJsonError(String);

/// Values display as compact JSON.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Value { Value::Int(n as i128) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32, u64, isize, usize);

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Float(x)
    }
}
impl From<f32> for Value {
    fn from(x: f32) -> Value {
        Value::Float(x.into())
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Value {
        Value::Array(items.into_iter().map(Into::into).collect())
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(n) => {
                if let Ok(i) = i64::try_from(*n) {
                    s.serialize_i64(i)
                } else if let Ok(u) = u64::try_from(*n) {
                    s.serialize_u64(u)
                } else {
                    Err(serde::ser::Error::custom(format!(
                        "integer {n} is outside i64::MIN..=u64::MAX"
                    )))
                }
            }
            Value::Float(x) => s.serialize_f64(*x),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            // See the typed module's docs for both forms.
            Value::Typed(a) if s.is_human_readable() => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for item in a.values() {
                    seq.serialize_element(&item)?;
                }
                seq.end()
            }
            Value::Typed(a) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(a.elem().wire_key(), serde_bytes::Bytes::new(a.as_bytes()))?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Grid value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Int(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Int(n.into()))
    }
    fn visit_i128<E: de::Error>(self, n: i128) -> Result<Value, E> {
        if n < i64::MIN as i128 || n > u64::MAX as i128 {
            return Err(E::custom(format!(
                "integer {n} is outside i64::MIN..=u64::MAX"
            )));
        }
        Ok(Value::Int(n))
    }
    fn visit_u128<E: de::Error>(self, n: u128) -> Result<Value, E> {
        match u64::try_from(n) {
            Ok(n) => Ok(Value::Int(n.into())),
            Err(_) => Err(E::custom(format!("integer {n} is larger than u64::MAX"))),
        }
    }
    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        Ok(Value::Float(x))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }
    fn visit_bytes<E>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(b.to_vec()))
    }
    fn visit_byte_buf<E>(self, b: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(b))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // Cap the preallocation: the length comes from untrusted bytes.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        let Some(key) = map.next_key::<Value>()? else {
            return Ok(Value::Map(entries));
        };
        // A typed array on Grid's own wire: one entry, a reserved key.
        if let Some(elem) = key.as_str().and_then(Elem::of_wire_key) {
            let value = map.next_value_seed(DataOrValue)?;
            let rest = map.next_entry::<Value, Value>()?;
            match (value, rest) {
                (Data::Bytes(data), None) => {
                    return TypedArray::new(elem, data)
                        .map(Value::Typed)
                        .map_err(de::Error::custom);
                }
                (value, rest) => {
                    entries.push((key, value.into_value()));
                    entries.extend(rest);
                }
            }
        } else {
            entries.push((key, map.next_value()?));
        }
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}

/// The value under a typed array's wire key: its bytes, shared with the
/// buffer being decoded when they can be (see `codec::decode_shared`), or
/// any other value (then the map is an ordinary one).
enum Data {
    Bytes(bytes::Bytes),
    Value(Value),
}

impl Data {
    fn into_value(self) -> Value {
        match self {
            Data::Bytes(b) => Value::Bytes(b.to_vec()),
            Data::Value(v) => v,
        }
    }
}

struct DataOrValue;

impl<'de> de::DeserializeSeed<'de> for DataOrValue {
    type Value = Data;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Data, D::Error> {
        d.deserialize_any(self)
    }
}

/// Bytes become [`Data::Bytes`]; everything else is what [`ValueVisitor`]
/// makes of it.
impl<'de> Visitor<'de> for DataOrValue {
    type Value = Data;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Grid value")
    }
    fn visit_borrowed_bytes<E: de::Error>(self, b: &'de [u8]) -> Result<Data, E> {
        Ok(Data::Bytes(crate::codec::shared_or_copied(b)))
    }
    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Data, E> {
        Ok(Data::Bytes(bytes::Bytes::copy_from_slice(b)))
    }
    fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> Result<Data, E> {
        Ok(Data::Bytes(b.into()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Data, E> {
        ValueVisitor.visit_unit().map(Data::Value)
    }
    fn visit_none<E: de::Error>(self) -> Result<Data, E> {
        ValueVisitor.visit_none().map(Data::Value)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Data, D::Error> {
        ValueVisitor.visit_some(d).map(Data::Value)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Data, E> {
        ValueVisitor.visit_bool(b).map(Data::Value)
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Data, E> {
        ValueVisitor.visit_i64(n).map(Data::Value)
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Data, E> {
        ValueVisitor.visit_u64(n).map(Data::Value)
    }
    fn visit_i128<E: de::Error>(self, n: i128) -> Result<Data, E> {
        ValueVisitor.visit_i128(n).map(Data::Value)
    }
    fn visit_u128<E: de::Error>(self, n: u128) -> Result<Data, E> {
        ValueVisitor.visit_u128(n).map(Data::Value)
    }
    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Data, E> {
        ValueVisitor.visit_f64(x).map(Data::Value)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Data, E> {
        ValueVisitor.visit_str(s).map(Data::Value)
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Data, E> {
        ValueVisitor.visit_string(s).map(Data::Value)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Data, A::Error> {
        ValueVisitor.visit_seq(seq).map(Data::Value)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Data, A::Error> {
        ValueVisitor.visit_map(map).map(Data::Value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode};

    fn round_trip(v: &Value) -> Value {
        decode(&encode(v).unwrap()).unwrap()
    }

    #[test]
    fn typed_arrays_cross_the_wire_as_one_byte_string() {
        use crate::{Elem, TypedArray};
        let a = Value::Typed(TypedArray::from_vec(vec![0.5f64; 1000]));
        let bytes = encode(&a).unwrap();
        assert!(bytes.len() < 8000 + 32, "{} bytes", bytes.len());
        assert_eq!(round_trip(&a), a);
        let nested = Value::Array(vec![a.clone(), Value::Map(vec![(Value::from("x"), a)])]);
        assert_eq!(round_trip(&nested), nested);
        // The reserved key with something else than bytes stays a map.
        let odd = Value::Map(vec![(Value::from(Elem::I32.wire_key()), Value::Int(1))]);
        assert_eq!(round_trip(&odd), odd);
        let odd = Value::Map(vec![
            (Value::from(Elem::I32.wire_key()), Value::Bytes(vec![0; 4])),
            (Value::from("more"), Value::Null),
        ]);
        assert_eq!(round_trip(&odd), odd);
        // Bytes that are not whole elements are a malformed message.
        let bad = Value::Map(vec![(
            Value::from(Elem::I32.wire_key()),
            Value::Bytes(vec![0; 3]),
        )]);
        assert!(decode::<Value>(&encode(&bad).unwrap()).is_err());
    }

    #[test]
    fn typed_arrays_are_json_arrays() {
        use crate::{Elem, TypedArray};
        let a = Value::Typed(TypedArray::from_slice(&[1i64, -2]));
        assert_eq!(a.to_string(), "[1,-2]");
        assert_eq!(serde_json::to_string(&a).unwrap(), "[1,-2]");
        assert_eq!(a.type_name(), "i64 array");
        let typed = Value::parse_json("[1, 2.5]")
            .unwrap()
            .to_typed(Elem::F64)
            .unwrap();
        assert_eq!(typed.to_vec::<f64>(), Some(vec![1.0, 2.5]));
        let err = Value::from("x").to_typed(Elem::F64).unwrap_err();
        assert_eq!(err.to_string(), "expected an array of numbers, got string");
    }

    #[test]
    fn every_kind_round_trips_through_cbor() {
        let v = Value::Map(vec![
            (Value::from("n"), Value::Null),
            (Value::from("b"), Value::Bool(true)),
            (Value::from("i"), Value::from(-5i64)),
            (Value::from("big"), Value::from(u64::MAX)),
            (Value::from("small"), Value::from(i64::MIN)),
            (Value::from("f"), Value::Float(1.5)),
            (Value::from("s"), Value::from("héllo")),
            (Value::from("bytes"), Value::Bytes(vec![0, 1, 255])),
            (Value::from(7), Value::from(vec![1, 2, 3])),
        ]);
        assert_eq!(round_trip(&v), v);
    }

    #[test]
    fn out_of_range_integers_do_not_encode() {
        assert!(encode(&Value::Int(u64::MAX as i128 + 1)).is_err());
    }

    #[test]
    fn json_numbers_keep_their_kind() {
        let v = Value::parse_json(r#"[1, -2, 1.5, 18446744073709551615, {"a": "b"}]"#).unwrap();
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Int(1),
                Value::Int(-2),
                Value::Float(1.5),
                Value::Int(u64::MAX as i128),
                Value::Map(vec![(Value::from("a"), Value::from("b"))]),
            ])
        );
        assert_eq!(
            v.to_string(),
            r#"[1,-2,1.5,18446744073709551615,{"a":"b"}]"#
        );
    }

    #[test]
    fn garbage_does_not_decode() {
        assert!(decode::<Value>(&[0xff, 0x00, 0x13]).is_err());
        assert!(decode::<Value>(&[]).is_err());
    }
}
