//! CBOR encoding and decoding as Grid values use it (ABI.md section 2).
//!
//! Encoding goes through cbor4ii's serde serializer, with one fix at the top
//! level: cbor4ii writes Rust `()` as an empty array, but a function "with no
//! meaningful result" must return `null`, so a top-level unit becomes `null`.
//! Decoding is our own small reader into [`Value`], then serde from `Value` into
//! the wanted type: it accepts every encoding another language may produce (half
//! floats, indefinite lengths), reads the typed-array tags into [`Value::Typed`]
//! with one copy and refuses every other tag as the ABI says, and yields serde's
//! readable messages instead of cbor4ii's internal ones. Nothing here may trust
//! the bytes: lengths are checked against what is left, nesting is bounded.
//! Typed arrays are written by [`crate::typed`], since serde cannot write a tag.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

use crate::typed::{ElementKind, TypedArray};
use crate::{Error, Value};

/// Encodes `value` as one CBOR item. A top-level `()` (or unit struct) encodes
/// as `null`, not as cbor4ii's empty array.
///
/// # Errors
/// When the value's `Serialize` impl fails, or an integer is outside CBOR's range.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    cbor4ii::serde::to_vec(Vec::new(), &TopLevel(value)).map_err(|e| match e {
        cbor4ii::serde::EncodeError::Custom(message) => Error::new(message),
        other => Error::new(format_args!("cannot encode CBOR: {other:?}")),
    })
}

/// Decodes one CBOR item, which must span all of `bytes`, into a `T`.
///
/// # Errors
/// When the bytes are not one valid CBOR item of Grid's data model, or the item
/// does not fit `T` (the message is serde's, e.g. `invalid type: string "x",
/// expected i64`).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    crate::from_value(decode_value(bytes)?)
}

/// Decodes one CBOR item, which must span all of `bytes`, into a [`Value`].
///
/// # Errors
/// When the bytes are truncated, have trailing data, contain a tag other than a
/// typed array (or a typed array whose length is not a multiple of its element
/// size), an unsupported simple value or invalid UTF-8 text, or nest deeper than 256.
pub fn decode_value(bytes: &[u8]) -> Result<Value, Error> {
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader.item(0)?;
    if reader.pos != bytes.len() {
        return Err(Error::new(format_args!(
            "invalid CBOR: {} trailing bytes after the value",
            bytes.len() - reader.pos
        )));
    }
    Ok(value)
}

/// Major types the SDK writes by hand (the rest go through cbor4ii).
pub(crate) const MAJOR_BYTES: u8 = 2;
pub(crate) const MAJOR_TEXT: u8 = 3;
pub(crate) const MAJOR_TAG: u8 = 6;

/// Appends the head of a data item, in its shortest form: the major type and
/// the argument (a length, or a tag number).
pub(crate) fn write_head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    // The casts below only run where the match arm proves the value fits.
    match argument {
        0..=23 => out.push(major | argument as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, argument as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(argument as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(argument as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&argument.to_be_bytes());
        }
    }
}

/// Deeper nesting than this is refused so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 256;

/// The "break" stop code that ends an indefinite-length item.
const BREAK: u8 = 0xff;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, what: impl std::fmt::Display) -> Error {
        Error::new(format_args!("invalid CBOR at byte {}: {what}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.error("unexpected end of input"))?;
        let (bytes, start): (&'a [u8], usize) = (self.bytes, self.pos);
        self.pos = end;
        Ok(&bytes[start..end])
    }

    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// The argument of an initial byte: the number that follows the major type.
    /// `None` means indefinite length (additional information 31).
    fn argument(&mut self, info: u8) -> Result<Option<u64>, Error> {
        Ok(Some(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(self.be()?)),
            26 => u64::from(u32::from_be_bytes(self.be()?)),
            27 => u64::from_be_bytes(self.be()?),
            31 => return Ok(None),
            _ => return Err(self.error(format_args!("reserved additional information {info}"))),
        }))
    }

    fn definite(&mut self, info: u8, what: &str) -> Result<u64, Error> {
        self.argument(info)?
            .ok_or_else(|| self.error(format_args!("indefinite length not allowed for {what}")))
    }

    /// A length, refused when it is more than the bytes left could hold (each
    /// element takes at least one byte), so a forged length cannot make us
    /// allocate gigabytes.
    fn length(&self, n: u64) -> Result<usize, Error> {
        let left = self.bytes.len() - self.pos;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| self.error(format_args!("length {n} exceeds the {left} bytes left")))
    }

    fn item(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(self.error(format_args!("nested deeper than {MAX_DEPTH}")));
        }
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        match major {
            0 => Ok(Value::Integer(self.definite(info, "an integer")?.into())),
            1 => Ok(Value::Integer(
                -1 - i128::from(self.definite(info, "an integer")?),
            )),
            2 => Ok(Value::Bytes(self.string(2, info)?.into_owned())),
            3 => {
                let bytes = self.string(3, info)?.into_owned();
                String::from_utf8(bytes)
                    .map(Value::Text)
                    .map_err(|e| self.error(format_args!("text string is not UTF-8: {e}")))
            }
            4 => {
                let mut items = Vec::new();
                match self.argument(info)? {
                    Some(n) => {
                        let n = self.length(n)?;
                        items.reserve_exact(n);
                        for _ in 0..n {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                    None => {
                        while !self.at_break()? {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                }
                Ok(Value::Array(items))
            }
            5 => {
                let mut entries = Vec::new();
                match self.argument(info)? {
                    Some(n) => {
                        // Each entry takes at least two bytes.
                        let n = self.length(n.saturating_mul(2))? / 2;
                        entries.reserve_exact(n);
                        for _ in 0..n {
                            entries.push((self.item(depth + 1)?, self.item(depth + 1)?));
                        }
                    }
                    None => {
                        while !self.at_break()? {
                            entries.push((self.item(depth + 1)?, self.item(depth + 1)?));
                        }
                    }
                }
                Ok(Value::Map(entries))
            }
            6 => self.typed_array(info).map(Value::Typed),
            _ => match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 | 23 => Ok(Value::Null),
                25 => Ok(Value::Float(f16_to_f64(u16::from_be_bytes(self.be()?)))),
                26 => Ok(Value::Float(f32::from_be_bytes(self.be()?).into())),
                27 => Ok(Value::Float(f64::from_be_bytes(self.be()?))),
                31 => Err(self.error("unexpected break")),
                _ => Err(self.error(format_args!("unsupported simple value {info}"))),
            },
        }
    }

    /// Consumes a break byte if one is next; an indefinite item must end in one.
    fn at_break(&mut self) -> Result<bool, Error> {
        match self.peek() {
            Some(BREAK) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(self.error("unexpected end of input inside an indefinite-length item")),
        }
    }

    /// A tagged item whose tag (the argument of `info`) must be a typed array,
    /// holding a byte string: its elements, in one copy.
    fn typed_array(&mut self, info: u8) -> Result<TypedArray, Error> {
        let tag = self.definite(info, "a tag")?;
        let (kind, order) = ElementKind::of_tag(tag).map_err(|why| self.error(why))?;
        let initial = self.byte()?;
        if initial >> 5 != MAJOR_BYTES {
            return Err(self.error(format_args!("tag {tag} ({kind}) must hold a byte string")));
        }
        let bytes = self.string(MAJOR_BYTES, initial & 0x1f)?;
        TypedArray::from_bytes(kind, &bytes, order).map_err(|e| self.error(e))
    }

    /// The content of a byte or text string (`major` 2 or 3): borrowed, or the
    /// chunks of an indefinite-length one joined.
    fn string(&mut self, major: u8, info: u8) -> Result<Cow<'a, [u8]>, Error> {
        match self.argument(info)? {
            Some(n) => {
                let n = self.length(n)?;
                Ok(Cow::Borrowed(self.take(n)?))
            }
            None => {
                let mut out = Vec::new();
                while !self.at_break()? {
                    let initial = self.byte()?;
                    if initial >> 5 != major {
                        return Err(self.error("chunk of an indefinite string has the wrong type"));
                    }
                    let n = self.definite(initial & 0x1f, "a string chunk")?;
                    let n = self.length(n)?;
                    out.extend_from_slice(self.take(n)?);
                }
                Ok(Cow::Owned(out))
            }
        }
    }
}

/// IEEE 754 half precision to double (Rust has no stable `f16` yet).
fn f16_to_f64(half: u16) -> f64 {
    let sign = if half & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((half >> 10) & 0x1f);
    let mantissa = f64::from(half & 0x3ff);
    let magnitude = match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + mantissa / 1024.0) * 2f64.powi(e - 15),
    };
    sign * magnitude
}

/// Serializes the wrapped value through [`UnitAsNull`].
struct TopLevel<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for TopLevel<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(UnitAsNull(serializer))
    }
}

/// A serializer that forwards everything to `S` except a unit, which it writes
/// as `None` (CBOR null). Nested values reach `S` directly, so only the top level
/// changes.
struct UnitAsNull<S>(S);

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.0.$method($($arg),*)
        }
    )*};
}

impl<S: Serializer> Serializer for UnitAsNull<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = S::SerializeSeq;
    type SerializeTuple = S::SerializeTuple;
    type SerializeTupleStruct = S::SerializeTupleStruct;
    type SerializeTupleVariant = S::SerializeTupleVariant;
    type SerializeMap = S::SerializeMap;
    type SerializeStruct = S::SerializeStruct;
    type SerializeStructVariant = S::SerializeStructVariant;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(value)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, value)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, value)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<S::SerializeSeq, S::Error> {
        self.0.serialize_seq(len)
    }

    fn serialize_tuple(self, len: usize) -> Result<S::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<S::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<S::SerializeTupleVariant, S::Error> {
        self.0.serialize_tuple_variant(name, index, variant, len)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<S::SerializeMap, S::Error> {
        self.0.serialize_map(len)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<S::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<S::SerializeStructVariant, S::Error> {
        self.0.serialize_struct_variant(name, index, variant, len)
    }

    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn top_level_unit_is_null_but_nested_unit_is_left_alone() {
        assert_eq!(to_vec(&()).unwrap(), [0xf6]);
        assert_eq!(to_vec(&Some(())).unwrap(), [0x80]);
        assert_eq!(to_vec(&None::<i64>).unwrap(), [0xf6]);
    }

    #[test]
    fn round_trips_structured_values() {
        let mut map = BTreeMap::new();
        map.insert("a".to_owned(), vec![1.5f64, -2.0]);
        let bytes = to_vec(&map).unwrap();
        let back: BTreeMap<String, Vec<f64>> = from_slice(&bytes).unwrap();
        assert_eq!(back, map);
    }

    #[test]
    fn decodes_what_other_encoders_write() {
        // half float 1.5, indefinite array [1, "ab"] with a chunked string, -2^64
        assert_eq!(
            decode_value(&[0xf9, 0x3e, 0x00]).unwrap(),
            Value::Float(1.5)
        );
        let bytes = [0x9f, 0x01, 0x7f, 0x61, b'a', 0x61, b'b', 0xff, 0xff];
        assert_eq!(
            decode_value(&bytes).unwrap(),
            Value::Array(vec![Value::Integer(1), Value::Text("ab".into())])
        );
        let min = [0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(decode_value(&min).unwrap(), Value::Integer(-(1 << 64)));
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(f16_to_f64(0xfc00), f64::NEG_INFINITY);
    }

    #[test]
    fn refuses_malformed_input_without_panicking() {
        let cases: &[(&[u8], &str)] = &[
            (&[], "end of input"),
            (&[0x01, 0x02], "trailing"),
            (&[0xc1, 0x00], "tag 1 is not supported"),
            (&[0x62, 0xff, 0xfe], "UTF-8"),
            (
                &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                "exceeds",
            ),
            (
                &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                "exceeds",
            ),
            (&[0x9f, 0x01], "indefinite"),
            (&[0xff], "break"),
            (&[0x1c], "reserved"),
        ];
        for (bytes, expected) in cases {
            let err = decode_value(bytes).unwrap_err();
            assert!(err.message().contains(expected), "{bytes:x?}: {err}");
        }
        let deep = vec![0x81; MAX_DEPTH + 2];
        assert!(
            decode_value(&deep)
                .unwrap_err()
                .message()
                .contains("nested")
        );
    }

    #[test]
    fn type_errors_carry_serdes_message() {
        let bytes = to_vec("x").unwrap();
        let err = from_slice::<i64>(&bytes).unwrap_err();
        assert_eq!(err.message(), "invalid type: string \"x\", expected i64");
        let err = from_slice::<u8>(&to_vec(&300).unwrap()).unwrap_err();
        assert_eq!(err.message(), "invalid value: integer `300`, expected u8");
    }
}
