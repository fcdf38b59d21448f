//! `Value`: any value a Grid task can pass, as a plain Rust enum.
//!
//! A guest function that takes or returns "anything" (an echo, a key-value stash)
//! uses `Value` as its parameter or result type. It is also the intermediate form
//! the SDK decodes arguments and namespace entries into: `Value` implements
//! `serde::Deserializer`, so every typed argument goes bytes -> `Value` -> `T`,
//! which gives serde's own error messages ("invalid type: string \"x\", expected
//! i64") and lets a float parameter accept an integer, as the numeric ABI does.
//! A typed array stays one block of numbers here ([`Value::Typed`]) and reads
//! through serde as a sequence of numbers. This file must not know about wasm or
//! pointers; it is pure data.

use std::fmt;
use std::vec;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;
use crate::typed::TypedArray;

/// A dynamically typed value: exactly the data model of Grid task values (the
/// CBOR subset of ABI.md section 2: no tags but typed arrays).
///
/// Integers are `i128` because CBOR integers span `-2^64 ..= 2^64-1`, wider than
/// any single Rust primitive. Maps keep their entries in order and allow any key,
/// as CBOR does.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// CBOR `null` (and `undefined`, which decodes to it).
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer in `-2^64 ..= 2^64-1`.
    Integer(i128),
    /// A floating-point number (half, single and double precision all decode to it).
    Float(f64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A UTF-8 text string.
    Text(String),
    /// An array.
    Array(Vec<Value>),
    /// A map, entries in their encoded order.
    Map(Vec<(Value, Value)>),
    /// A typed array (RFC 8746): numbers of one type, kept in one `Vec`.
    ///
    /// Serde reads it as a sequence of numbers (a `uint8` array also as bytes),
    /// so any `Vec<T>` or tuple of numbers deserializes from it; serde writes it
    /// as a plain array, since a serde serializer cannot write a tag (write one
    /// with [`TypedArray::encode_into`]). It is not `==` to a [`Value::Array`]
    /// of the same numbers.
    Typed(TypedArray),
}

/// The smallest and largest integers CBOR can encode without tags.
const CBOR_INT_MIN: i128 = -(1 << 64);
const CBOR_INT_MAX: i128 = (1 << 64) - 1;

impl Value {
    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The boolean, if this is a [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, if this is a [`Value::Integer`] that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => i64::try_from(*i).ok(),
            _ => None,
        }
    }

    /// The integer, if this is a [`Value::Integer`] that fits a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Integer(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    /// The number as a float, if this is a [`Value::Float`] or a [`Value::Integer`]
    /// (large integers round to the nearest float).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The text, if this is a [`Value::Text`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, if this is a [`Value::Bytes`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is a [`Value::Array`].
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The typed array, if this is a [`Value::Typed`].
    pub fn as_typed(&self) -> Option<&TypedArray> {
        match self {
            Value::Typed(t) => Some(t),
            _ => None,
        }
    }

    /// The entries, if this is a [`Value::Map`].
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under the text key `key`, if this is a [`Value::Map`] that has one.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Serde's description of this value, for "invalid type" errors.
    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Value::Null => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Integer(i) => match (u64::try_from(*i), i64::try_from(*i)) {
                (Ok(u), _) => Unexpected::Unsigned(u),
                (_, Ok(s)) => Unexpected::Signed(s),
                _ => Unexpected::Other("integer"),
            },
            Value::Float(f) => Unexpected::Float(*f),
            Value::Bytes(b) => Unexpected::Bytes(b),
            Value::Text(s) => Unexpected::Str(s),
            Value::Array(_) | Value::Typed(_) => Unexpected::Seq,
            Value::Map(_) => Unexpected::Map,
        }
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Integer(v.into())
            }
        }
    )*};
}
from_integer!(i8, i16, i32, i64, u8, u16, u32, u64);

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Float(v.into())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::Array(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_none(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            // Pick the narrowest serde integer so every serializer (not only
            // cbor4ii's) can take it; only the ends of the CBOR range need i128.
            Value::Integer(i) => {
                if let Ok(u) = u64::try_from(*i) {
                    serializer.serialize_u64(u)
                } else if let Ok(s) = i64::try_from(*i) {
                    serializer.serialize_i64(s)
                } else if (CBOR_INT_MIN..=CBOR_INT_MAX).contains(i) {
                    serializer.serialize_i128(*i)
                } else {
                    // Beyond this range cbor4ii would emit a bignum tag, which
                    // the ABI does not allow.
                    Err(serde::ser::Error::custom(format_args!(
                        "integer {i} is outside the CBOR range -2^64 ..= 2^64-1"
                    )))
                }
            }
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::Text(s) => serializer.serialize_str(s),
            Value::Array(a) => {
                let mut seq = serializer.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = serializer.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Value::Typed(t) => t.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Integer(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        if (CBOR_INT_MIN..=CBOR_INT_MAX).contains(&v) {
            Ok(Value::Integer(v))
        } else {
            Err(E::custom(format_args!(
                "integer {v} is outside the CBOR range -2^64 ..= 2^64-1"
            )))
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        match i128::try_from(v) {
            Ok(v) => self.visit_i128(v),
            Err(_) => Err(E::custom(format_args!(
                "integer {v} is outside the CBOR range -2^64 ..= 2^64-1"
            ))),
        }
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // Cap the preallocation: the hint comes from the encoded length, which
        // the bytes do not have to honour.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(entry) = map.next_entry()? {
            out.push(entry);
        }
        Ok(Value::Map(out))
    }
}

/// Passes an integer to the visitor through the narrowest serde method, so the
/// visitor's own range checks ("invalid value: integer `300`, expected u8") apply.
fn visit_integer<'de, V: Visitor<'de>>(i: i128, visitor: V) -> Result<V::Value, Error> {
    if let Ok(u) = u64::try_from(i) {
        visitor.visit_u64(u)
    } else if let Ok(s) = i64::try_from(i) {
        visitor.visit_i64(s)
    } else {
        visitor.visit_i128(i)
    }
}

impl<'de> Deserializer<'de> for Value {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Integer(i) => visit_integer(i, visitor),
            Value::Float(f) => visitor.visit_f64(f),
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::Text(s) => visitor.visit_string(s),
            Value::Array(a) => visit_array(a, visitor),
            Value::Map(m) => visit_map(m, visitor),
            Value::Typed(t) => visit_typed(t, visitor),
        }
    }

    // A uint8 typed array is bytes to whoever asks for bytes, without a loop.
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Typed(TypedArray::U8(b)) => visitor.visit_byte_buf(b),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_byte_buf(visitor)
    }

    // A float parameter accepts an integer argument, as in the numeric ABI:
    // callers write `2` for `2.0` in most languages.
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Integer(i) => visitor.visit_f64(i as f64),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    // cbor4ii encodes `()` as an empty array, so accept that as well as null:
    // a value a Rust guest stored must read back as what it was.
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Null => visitor.visit_unit(),
            Value::Array(a) if a.is_empty() => visitor.visit_unit(),
            other => Err(de::Error::invalid_type(other.unexpected(), &visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    // Serde's externally tagged enums: a unit variant is its name, any other
    // variant is a one-entry map from its name to its content.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Value::Text(variant) => visitor.visit_enum(EnumDeserializer {
                variant: Value::Text(variant),
                content: None,
            }),
            Value::Map(mut m) if m.len() == 1 => match m.pop() {
                Some((variant, content)) => visitor.visit_enum(EnumDeserializer {
                    variant,
                    content: Some(content),
                }),
                None => Err(de::Error::invalid_length(0, &"a map with one entry")),
            },
            other => Err(de::Error::invalid_type(
                other.unexpected(),
                &"a variant name or a map with one entry",
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        // Must agree with the cbor4ii serializer that produced the bytes, or
        // types like `Uuid` and `IpAddr` would pick a different representation.
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string
        seq tuple tuple_struct map struct identifier
    }
}

impl IntoDeserializer<'_, Error> for Value {
    type Deserializer = Value;

    fn into_deserializer(self) -> Value {
        self
    }
}

fn visit_array<'de, V: Visitor<'de>>(a: Vec<Value>, visitor: V) -> Result<V::Value, Error> {
    let len = a.len();
    let mut seq = SeqDeserializer {
        iter: a.into_iter(),
    };
    let out = visitor.visit_seq(&mut seq)?;
    if seq.iter.len() == 0 {
        Ok(out)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in array"))
    }
}

fn visit_typed<'de, V: Visitor<'de>>(t: TypedArray, visitor: V) -> Result<V::Value, Error> {
    let len = t.len();
    let mut seq = TypedSeqDeserializer { array: t, next: 0 };
    let out = visitor.visit_seq(&mut seq)?;
    if seq.next == len {
        Ok(out)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in array"))
    }
}

fn visit_map<'de, V: Visitor<'de>>(m: Vec<(Value, Value)>, visitor: V) -> Result<V::Value, Error> {
    let len = m.len();
    let mut map = MapDeserializer {
        iter: m.into_iter(),
        value: None,
    };
    let out = visitor.visit_map(&mut map)?;
    if map.iter.len() == 0 {
        Ok(out)
    } else {
        Err(de::Error::invalid_length(len, &"fewer elements in map"))
    }
}

struct SeqDeserializer {
    iter: vec::IntoIter<Value>,
}

impl<'de> SeqAccess<'de> for SeqDeserializer {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.iter.next().map(|v| seed.deserialize(v)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// Hands out a typed array's elements one at a time, as number values.
struct TypedSeqDeserializer {
    array: TypedArray,
    next: usize,
}

impl<'de> SeqAccess<'de> for TypedSeqDeserializer {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(value) = self.array.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize(value).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.array.len() - self.next)
    }
}

struct MapDeserializer {
    iter: vec::IntoIter<(Value, Value)>,
    /// The value of the entry whose key was just handed out.
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for MapDeserializer {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(v),
            None => Err(de::Error::custom("map value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct EnumDeserializer {
    variant: Value,
    /// `None` for a unit variant written as a bare name.
    content: Option<Value>,
}

impl<'de> EnumAccess<'de> for EnumDeserializer {
    type Error = Error;
    type Variant = VariantDeserializer;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantDeserializer), Error> {
        let variant = seed.deserialize(self.variant)?;
        Ok((
            variant,
            VariantDeserializer {
                content: self.content,
            },
        ))
    }
}

struct VariantDeserializer {
    content: Option<Value>,
}

impl<'de> VariantAccess<'de> for VariantDeserializer {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.content {
            None => Ok(()),
            Some(v) => de::Deserialize::deserialize(v),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        match self.content {
            Some(v) => seed.deserialize(v),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"newtype variant",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.content {
            Some(Value::Array(a)) => visit_array(a, visitor),
            Some(Value::Typed(t)) => visit_typed(t, visitor),
            Some(other) => Err(de::Error::invalid_type(
                other.unexpected(),
                &"tuple variant",
            )),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"tuple variant",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.content {
            Some(Value::Map(m)) => visit_map(m, visitor),
            Some(Value::Array(a)) => visit_array(a, visitor),
            Some(other) => Err(de::Error::invalid_type(
                other.unexpected(),
                &"struct variant",
            )),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"struct variant",
            )),
        }
    }
}
