//! CBOR as guests see it: [`Value`]s with RFC 8746 typed arrays.
//!
//! Grid's own messages go through serde and cbor4ii ([`crate::encode`]),
//! which cannot write or read tags. Guests are another matter: the guest ABI
//! (`guest-sdk/ABI.md`) carries typed arrays as RFC 8746 tags, so that any
//! language can read a million floats as one byte string. This module is the
//! engine's side of that boundary: a writer of values, with typed arrays as
//! tags or (for a guest that has not declared it reads them) as plain arrays
//! of numbers, and a reader of what guests return.
//!
//! The reader trusts nothing: lengths are checked against what is left,
//! preallocation is capped, nesting is bounded, and every failure is an error
//! naming the offset and the cause. It accepts what the ABI says a guest may
//! write: definite or indefinite lengths, 32- or 64-bit floats, integers in
//! `-2^63 ..= 2^64-1`, and the typed-array tags of [`Elem::of_tag`]
//! (big-endian ones are swapped). Other tags, 16-bit floats and simple values
//! other than false, true, null and undefined are refused.

use crate::{CodecError, Elem, TypedArray, Value};

/// Deeper nesting than this is refused, so hostile bytes cannot exhaust the stack.
const MAX_DEPTH: usize = 256;

/// Items reserved up front at most for an array or map, whatever its header says.
const MAX_PREALLOC: usize = 4096;

/// How typed arrays are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Typed {
    /// As RFC 8746 tags around a byte string.
    Tags,
    /// As arrays of numbers, for a reader that knows no tags.
    Plain,
}

/// Appends the CBOR encoding of `value`.
pub fn write_value(value: &Value, typed: Typed, out: &mut Vec<u8>) -> Result<(), CodecError> {
    match value {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Int(n) => write_int(*n, out)?,
        Value::Float(x) => {
            out.push(0xfb);
            out.extend_from_slice(&x.to_be_bytes());
        }
        Value::Str(s) => {
            head(3, s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            head(2, b.len() as u64, out);
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            head(4, items.len() as u64, out);
            for item in items {
                write_value(item, typed, out)?;
            }
        }
        Value::Map(entries) => {
            head(5, entries.len() as u64, out);
            for (k, v) in entries {
                write_value(k, typed, out)?;
                write_value(v, typed, out)?;
            }
        }
        Value::Typed(a) => match typed {
            Typed::Tags => {
                head(6, a.elem().tag(), out);
                head(2, a.as_bytes().len() as u64, out);
                out.extend_from_slice(a.as_bytes());
            }
            Typed::Plain => {
                head(4, a.len() as u64, out);
                for item in a.values() {
                    write_value(&item, typed, out)?;
                }
            }
        },
    }
    Ok(())
}

/// The CBOR encoding of `items` as one array, as a guest function gets
/// its arguments.
pub fn encode_array(items: &[Value], typed: Typed) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(16 + items.len() * 9);
    head(4, items.len() as u64, &mut out);
    for item in items {
        write_value(item, typed, &mut out)?;
    }
    Ok(out)
}

/// The CBOR encoding of `value`.
pub fn encode_value(value: &Value, typed: Typed) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    write_value(value, typed, &mut out)?;
    Ok(out)
}

/// Decodes one CBOR item, which must span all of `bytes`.
pub fn decode_value(bytes: &[u8]) -> Result<Value, CodecError> {
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader.item(0)?;
    if reader.pos != bytes.len() {
        return Err(reader.fail(format_args!(
            "{} trailing bytes after the value",
            bytes.len() - reader.pos
        )));
    }
    Ok(value)
}

fn write_int(n: i128, out: &mut Vec<u8>) -> Result<(), CodecError> {
    if let Ok(u) = u64::try_from(n) {
        head(0, u, out);
    } else if n >= i64::MIN as i128 {
        head(1, (-1 - n) as u64, out);
    } else {
        return Err(CodecError::Encode(format!(
            "integer {n} is outside i64::MIN..=u64::MAX"
        )));
    }
    Ok(())
}

/// A major type's head with its argument in the shortest form.
fn head(major: u8, arg: u64, out: &mut Vec<u8>) {
    let major = major << 5;
    if arg < 24 {
        out.push(major | arg as u8);
    } else if arg <= u8::MAX as u64 {
        out.extend_from_slice(&[major | 24, arg as u8]);
    } else if arg <= u16::MAX as u64 {
        out.push(major | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= u32::MAX as u64 {
        out.push(major | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// An item's head: its major type and argument, or an indefinite length.
enum Head {
    Arg(u8, u64),
    Indefinite(u8),
}

impl<'a> Reader<'a> {
    fn fail(&self, why: impl std::fmt::Display) -> CodecError {
        CodecError::Decode(format!("invalid CBOR at byte {}: {why}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                self.fail(format_args!(
                    "{n} bytes wanted, {} left",
                    self.bytes.len() - self.pos
                ))
            })?;
        let taken = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn head(&mut self) -> Result<Head, CodecError> {
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        let arg = match info {
            0..=23 => info as u64,
            24 => self.byte()? as u64,
            25 => u16::from_be_bytes(self.array()?) as u64,
            26 => u32::from_be_bytes(self.array()?) as u64,
            27 => u64::from_be_bytes(self.array()?),
            31 if matches!(major, 2..=5) => return Ok(Head::Indefinite(major)),
            _ => return Err(self.fail(format_args!("reserved head byte {initial:#04x}"))),
        };
        Ok(Head::Arg(major, arg))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len(&self, arg: u64) -> Result<usize, CodecError> {
        usize::try_from(arg).map_err(|_| self.fail(format_args!("length {arg} is too large")))
    }

    fn item(&mut self, depth: usize) -> Result<Value, CodecError> {
        if depth > MAX_DEPTH {
            return Err(self.fail(format_args!("nested deeper than {MAX_DEPTH}")));
        }
        if self.peek().is_some_and(|b| b >> 5 == 7) {
            return self.simple();
        }
        match self.head()? {
            Head::Arg(0, n) => Ok(Value::Int(n.into())),
            Head::Arg(1, n) => Ok(Value::Int(-1 - n as i128)),
            Head::Arg(2, n) => {
                let n = self.len(n)?;
                Ok(Value::Bytes(self.take(n)?.to_vec()))
            }
            Head::Arg(3, n) => {
                let n = self.len(n)?;
                Ok(Value::Str(self.text(n)?))
            }
            Head::Arg(4, n) => {
                let n = self.len(n)?;
                let mut items = Vec::with_capacity(n.min(MAX_PREALLOC));
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            Head::Arg(5, n) => {
                let n = self.len(n)?;
                let mut entries = Vec::with_capacity(n.min(MAX_PREALLOC));
                for _ in 0..n {
                    let k = self.item(depth + 1)?;
                    entries.push((k, self.item(depth + 1)?));
                }
                Ok(Value::Map(entries))
            }
            Head::Arg(6, tag) => self.tagged(tag),
            Head::Indefinite(major) => self.indefinite(major, depth),
            Head::Arg(major, _) => Err(self.fail(format_args!("unexpected major type {major}"))),
        }
    }

    fn text(&mut self, n: usize) -> Result<String, CodecError> {
        let at = self.pos;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            CodecError::Decode(format!("invalid CBOR at byte {at}: text is not UTF-8"))
        })
    }

    fn tagged(&mut self, tag: u64) -> Result<Value, CodecError> {
        let Some((elem, big_endian)) = Elem::of_tag(tag) else {
            return Err(self.fail(format_args!(
                "tag {tag} (the only tags Grid reads are RFC 8746 typed arrays of 8- to 64-bit \
                 integers and 32- or 64-bit floats)"
            )));
        };
        let data = match self.head()? {
            Head::Arg(2, n) => {
                let n = self.len(n)?;
                self.take(n)?
            }
            _ => {
                return Err(self.fail(format_args!(
                    "typed-array tag {tag} must hold a definite-length byte string"
                )));
            }
        };
        let array = if big_endian {
            TypedArray::from_big_endian(elem, data)
        } else {
            TypedArray::new(elem, data.to_vec())
        };
        array.map(Value::Typed).map_err(|e| self.fail(e))
    }

    /// A simple value or a float (major type 7).
    fn simple(&mut self) -> Result<Value, CodecError> {
        let at = self.pos;
        let initial = self.byte()?;
        match initial {
            0xf4 => Ok(Value::Bool(false)),
            0xf5 => Ok(Value::Bool(true)),
            0xf6 | 0xf7 => Ok(Value::Null),
            0xfa => Ok(Value::Float(f32::from_be_bytes(self.array()?).into())),
            0xfb => Ok(Value::Float(f64::from_be_bytes(self.array()?))),
            0xf9 => Err(CodecError::Decode(format!(
                "invalid CBOR at byte {at}: 16-bit floats are not accepted (use 32 or 64 bits)"
            ))),
            other => Err(CodecError::Decode(format!(
                "invalid CBOR at byte {at}: unsupported simple value {other:#04x}"
            ))),
        }
    }

    /// An indefinite-length string, array or map, up to its break.
    fn indefinite(&mut self, major: u8, depth: usize) -> Result<Value, CodecError> {
        const BREAK: u8 = 0xff;
        match major {
            2 | 3 => {
                let mut data = Vec::new();
                while self.peek() != Some(BREAK) {
                    match self.head()? {
                        Head::Arg(m, n) if m == major => {
                            let n = self.len(n)?;
                            data.extend_from_slice(self.take(n)?);
                        }
                        _ => return Err(self.fail("a chunk of another type in a string")),
                    }
                }
                self.take(1)?;
                if major == 2 {
                    Ok(Value::Bytes(data))
                } else {
                    String::from_utf8(data)
                        .map(Value::Str)
                        .map_err(|_| self.fail("text is not UTF-8"))
                }
            }
            4 => {
                let mut items = Vec::new();
                while self.peek() != Some(BREAK) {
                    items.push(self.item(depth + 1)?);
                }
                self.take(1)?;
                Ok(Value::Array(items))
            }
            _ => {
                let mut entries = Vec::new();
                while self.peek() != Some(BREAK) {
                    let k = self.item(depth + 1)?;
                    entries.push((k, self.item(depth + 1)?));
                }
                self.take(1)?;
                Ok(Value::Map(entries))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Value) -> Value {
        decode_value(&encode_value(v, Typed::Tags).unwrap()).unwrap()
    }

    #[test]
    fn values_round_trip_with_typed_arrays_as_tags() {
        let v = Value::Array(vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-1),
            Value::Int(u64::MAX.into()),
            Value::Int(i64::MIN.into()),
            Value::Float(1.5),
            Value::Str("héllo".into()),
            Value::Bytes(vec![0, 1, 255]),
            Value::Map(vec![(Value::Str("k".into()), Value::Int(300))]),
            Value::Typed(TypedArray::from_slice(&[1.0f64, -2.5])),
            Value::Typed(TypedArray::from_slice(&[-3i32, 4])),
            Value::Typed(TypedArray::from_slice::<u8>(&[])),
        ]);
        assert_eq!(round_trip(&v), v);
    }

    #[test]
    fn typed_arrays_are_rfc_8746_tags() {
        let a = Value::Typed(TypedArray::from_slice(&[1.0f64]));
        // tag 86 (f64 little-endian), byte string of 8, 1.0 little-endian
        let expected = [0xd8, 86, 0x48, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f];
        assert_eq!(encode_value(&a, Typed::Tags).unwrap(), expected);
        let b = Value::Typed(TypedArray::from_slice(&[1i32, -1]));
        let expected = [0xd8, 78, 0x48, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(encode_value(&b, Typed::Tags).unwrap(), expected);
    }

    #[test]
    fn plain_readers_get_arrays_of_numbers() {
        let a = Value::Typed(TypedArray::from_slice(&[1u16, 2]));
        assert_eq!(encode_value(&a, Typed::Plain).unwrap(), [0x82, 1, 2]);
        let f = Value::Typed(TypedArray::from_slice(&[0.5f32]));
        let back = decode_value(&encode_value(&f, Typed::Plain).unwrap()).unwrap();
        assert_eq!(back, Value::Array(vec![Value::Float(0.5)]));
    }

    #[test]
    fn big_endian_tags_and_encodings_from_other_writers_are_read() {
        // tag 65: uint16 big-endian
        let v = decode_value(&[0xd8, 65, 0x44, 0x01, 0x02, 0x00, 0x03]).unwrap();
        assert_eq!(v, Value::Typed(TypedArray::from_slice(&[0x0102u16, 3])));
        // indefinite array of a 32-bit float and an indefinite text
        let v =
            decode_value(&[0x9f, 0xfa, 0x3f, 0xc0, 0, 0, 0x7f, 0x61, b'a', 0xff, 0xff]).unwrap();
        assert_eq!(
            v,
            Value::Array(vec![Value::Float(1.5), Value::Str("a".into())])
        );
    }

    #[test]
    fn bad_bytes_are_errors_naming_the_cause() {
        let cases: &[(&[u8], &str)] = &[
            (&[0xd8, 86, 0x43, 0, 0, 0], "a multiple of 8 bytes"),
            (&[0xd8, 84, 0x42, 0, 0], "tag 84"),
            (&[0xc1, 0x00], "tag 1"),
            (&[0xd8, 86, 0x01], "byte string"),
            (&[0xf9, 0, 0], "16-bit floats"),
            (&[0x82, 0x01], "wanted"),
            (&[0x01, 0x02], "trailing"),
            (&[0x62, 0xff, 0xfe], "UTF-8"),
            (&[0x1c], "reserved"),
            (
                &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                "wanted",
            ),
        ];
        for (bytes, why) in cases {
            let err = decode_value(bytes).unwrap_err().to_string();
            assert!(err.contains(why), "{bytes:x?}: {err}");
        }
        let deep = vec![0x81; MAX_DEPTH + 2];
        assert!(
            decode_value(&deep)
                .unwrap_err()
                .to_string()
                .contains("nested")
        );
    }

    #[test]
    fn arguments_are_one_array() {
        let args = [Value::Int(2), Value::Typed(TypedArray::from_slice(&[7u8]))];
        let bytes = encode_array(&args, Typed::Tags).unwrap();
        assert_eq!(bytes, [0x82, 0x02, 0xd8, 64, 0x41, 7]);
        assert_eq!(
            encode_array(&args, Typed::Plain).unwrap(),
            [0x82, 0x02, 0x81, 7]
        );
    }
}
