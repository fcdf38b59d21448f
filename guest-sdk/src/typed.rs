//! Typed arrays: arrays of numbers that cross the ABI as one block of memory.
//!
//! RFC 8746 writes an array of numbers as a CBOR tag naming the element type
//! around a byte string that holds the elements back to back. Grid uses the
//! little-endian tags (ABI.md section 2, "Typed arrays"), and wasm is
//! little-endian, so reading one is a single copy into a `Vec` of the element
//! type and writing one is a single copy out of a slice: no loop over elements.
//! `#[export]` uses this for parameters written `Vec<f64>`, `&[f64]` or
//! `Box<[f64]>` (any of the ten element types) and for such results; the same
//! functions are public here for values built by hand.
//!
//! ```
//! use grid_guest::typed;
//!
//! let bytes = typed::encode(&[1.5f64, -2.0]);
//! // tag 86 (float64, little-endian), a 16-byte string, the elements
//! assert_eq!(bytes[..3], [0xd8, 86, 0x50]);
//! let back: Vec<f64> = typed::decode(&bytes).unwrap();
//! assert_eq!(back, [1.5, -2.0]);
//! // A plain CBOR array of numbers decodes too, element by element.
//! let plain = grid_guest::cbor::to_vec(&[1, 2, 3]).unwrap();
//! assert_eq!(typed::decode::<f64>(&plain).unwrap(), [1.0, 2.0, 3.0]);
//! ```
//!
//! The input is never trusted: a byte string whose length is not a multiple of
//! the element size, a half or quad precision array and any other tag are errors
//! with a message naming them, never a panic.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

use crate::{Error, Value, cbor};

/// The element type of a typed array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementKind {
    /// `u8`: tag 64 (and 68, "clamped", read as the same).
    U8,
    /// `i8`: tag 72.
    I8,
    /// `u16`: tag 69 (65 big-endian).
    U16,
    /// `i16`: tag 77 (73 big-endian).
    I16,
    /// `u32`: tag 70 (66 big-endian).
    U32,
    /// `i32`: tag 78 (74 big-endian).
    I32,
    /// `u64`: tag 71 (67 big-endian).
    U64,
    /// `i64`: tag 79 (75 big-endian).
    I64,
    /// `f32`: tag 85 (81 big-endian).
    F32,
    /// `f64`: tag 86 (82 big-endian).
    F64,
}

impl ElementKind {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElementKind::U8 | ElementKind::I8 => 1,
            ElementKind::U16 | ElementKind::I16 => 2,
            ElementKind::U32 | ElementKind::I32 | ElementKind::F32 => 4,
            ElementKind::U64 | ElementKind::I64 | ElementKind::F64 => 8,
        }
    }

    /// The tag the SDK writes: RFC 8746's little-endian tag for this type.
    pub fn tag(self) -> u64 {
        match self {
            ElementKind::U8 => 64,
            ElementKind::U16 => 69,
            ElementKind::U32 => 70,
            ElementKind::U64 => 71,
            ElementKind::I8 => 72,
            ElementKind::I16 => 77,
            ElementKind::I32 => 78,
            ElementKind::I64 => 79,
            ElementKind::F32 => 85,
            ElementKind::F64 => 86,
        }
    }

    /// RFC 8746's name of the type: `uint8`, `sint32`, `float64`, ...
    pub fn name(self) -> &'static str {
        match self {
            ElementKind::U8 => "uint8",
            ElementKind::I8 => "sint8",
            ElementKind::U16 => "uint16",
            ElementKind::I16 => "sint16",
            ElementKind::U32 => "uint32",
            ElementKind::I32 => "sint32",
            ElementKind::U64 => "uint64",
            ElementKind::I64 => "sint64",
            ElementKind::F32 => "float32",
            ElementKind::F64 => "float64",
        }
    }

    /// The element type and byte order a tag stands for, or why it is refused.
    pub(crate) fn of_tag(tag: u64) -> Result<(ElementKind, ByteOrder), String> {
        use ByteOrder::{Big, Little};
        Ok(match tag {
            64 | 68 => (ElementKind::U8, Little),
            72 => (ElementKind::I8, Little),
            65 => (ElementKind::U16, Big),
            69 => (ElementKind::U16, Little),
            66 => (ElementKind::U32, Big),
            70 => (ElementKind::U32, Little),
            67 => (ElementKind::U64, Big),
            71 => (ElementKind::U64, Little),
            73 => (ElementKind::I16, Big),
            77 => (ElementKind::I16, Little),
            74 => (ElementKind::I32, Big),
            78 => (ElementKind::I32, Little),
            75 => (ElementKind::I64, Big),
            79 => (ElementKind::I64, Little),
            81 => (ElementKind::F32, Big),
            85 => (ElementKind::F32, Little),
            82 => (ElementKind::F64, Big),
            86 => (ElementKind::F64, Little),
            80 | 84 => return Err(format!("tag {tag} (float16 typed array) is not supported")),
            83 | 87 => return Err(format!("tag {tag} (float128 typed array) is not supported")),
            _ => {
                return Err(format!(
                    "tag {tag} is not supported: the only tags are typed arrays \
                     of 8- to 64-bit integers and 32- or 64-bit floats (tags 64..86)"
                ));
            }
        })
    }
}

impl fmt::Display for ElementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The byte order of a typed array's elements in its byte string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteOrder {
    Little,
    Big,
}

/// A decoded typed array: the elements in a `Vec` of their own type, so taking
/// them out ([`TypedArray::into_vec`]) costs nothing.
///
/// Through serde (any `Deserialize` type, [`crate::from_value`]) a typed array
/// reads as a sequence of numbers, and a `uint8` array also as bytes; through
/// serde's `Serialize` it writes a plain array of numbers, because serde has no
/// way to write a tag. [`TypedArray::encode_into`] writes the tag.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedArray {
    /// Tags 64 and 68.
    U8(Vec<u8>),
    /// Tag 72.
    I8(Vec<i8>),
    /// Tags 69 and 65.
    U16(Vec<u16>),
    /// Tags 77 and 73.
    I16(Vec<i16>),
    /// Tags 70 and 66.
    U32(Vec<u32>),
    /// Tags 78 and 74.
    I32(Vec<i32>),
    /// Tags 71 and 67.
    U64(Vec<u64>),
    /// Tags 79 and 75.
    I64(Vec<i64>),
    /// Tags 85 and 81.
    F32(Vec<f32>),
    /// Tags 86 and 82.
    F64(Vec<f64>),
}

/// Applies `$body` to the `Vec` inside any variant, bound as `$v`.
macro_rules! each {
    ($array:expr, $v:ident => $body:expr) => {
        match $array {
            TypedArray::U8($v) => $body,
            TypedArray::I8($v) => $body,
            TypedArray::U16($v) => $body,
            TypedArray::I16($v) => $body,
            TypedArray::U32($v) => $body,
            TypedArray::I32($v) => $body,
            TypedArray::U64($v) => $body,
            TypedArray::I64($v) => $body,
            TypedArray::F32($v) => $body,
            TypedArray::F64($v) => $body,
        }
    };
}

impl TypedArray {
    /// The element type.
    pub fn kind(&self) -> ElementKind {
        match self {
            TypedArray::U8(_) => ElementKind::U8,
            TypedArray::I8(_) => ElementKind::I8,
            TypedArray::U16(_) => ElementKind::U16,
            TypedArray::I16(_) => ElementKind::I16,
            TypedArray::U32(_) => ElementKind::U32,
            TypedArray::I32(_) => ElementKind::I32,
            TypedArray::U64(_) => ElementKind::U64,
            TypedArray::I64(_) => ElementKind::I64,
            TypedArray::F32(_) => ElementKind::F32,
            TypedArray::F64(_) => ElementKind::F64,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        each!(self, v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements, if they are `N`s.
    pub fn as_slice<N: Element>(&self) -> Option<&[N]> {
        N::view(self)
    }

    /// The elements, if they are `N`s; the array itself otherwise.
    ///
    /// # Errors
    /// Gives `self` back when its element type is not `N`.
    pub fn into_vec<N: Element>(self) -> Result<Vec<N>, TypedArray> {
        N::unwrap(self)
    }

    /// Elements of type `kind` from their little-endian bytes, in one copy.
    ///
    /// # Errors
    /// When the length of `bytes` is not a multiple of the element size.
    pub fn from_le_bytes(kind: ElementKind, bytes: &[u8]) -> Result<TypedArray, Error> {
        TypedArray::from_bytes(kind, bytes, ByteOrder::Little)
    }

    pub(crate) fn from_bytes(
        kind: ElementKind,
        bytes: &[u8],
        order: ByteOrder,
    ) -> Result<TypedArray, Error> {
        if !bytes.len().is_multiple_of(kind.size()) {
            return Err(Error::new(format_args!(
                "a {kind} typed array of {} bytes: not a multiple of {}",
                bytes.len(),
                kind.size()
            )));
        }
        Ok(match kind {
            ElementKind::U8 => TypedArray::U8(bytes.to_vec()),
            ElementKind::I8 => TypedArray::I8(vec_from_bytes(bytes, order)),
            ElementKind::U16 => TypedArray::U16(vec_from_bytes(bytes, order)),
            ElementKind::I16 => TypedArray::I16(vec_from_bytes(bytes, order)),
            ElementKind::U32 => TypedArray::U32(vec_from_bytes(bytes, order)),
            ElementKind::I32 => TypedArray::I32(vec_from_bytes(bytes, order)),
            ElementKind::U64 => TypedArray::U64(vec_from_bytes(bytes, order)),
            ElementKind::I64 => TypedArray::I64(vec_from_bytes(bytes, order)),
            ElementKind::F32 => TypedArray::F32(vec_from_bytes(bytes, order)),
            ElementKind::F64 => TypedArray::F64(vec_from_bytes(bytes, order)),
        })
    }

    /// Appends the CBOR encoding (tag, byte string header, elements) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        each!(self, v => encode_into(out, v))
    }

    /// Element `index` as a [`Value::Integer`] or [`Value::Float`].
    pub(crate) fn get(&self, index: usize) -> Option<Value> {
        match self {
            TypedArray::F32(v) => v.get(index).map(|&x| Value::Float(x.into())),
            TypedArray::F64(v) => v.get(index).map(|&x| Value::Float(x)),
            TypedArray::U8(v) => v.get(index).map(|&x| Value::Integer(x.into())),
            TypedArray::I8(v) => v.get(index).map(|&x| Value::Integer(x.into())),
            TypedArray::U16(v) => v.get(index).map(|&x| Value::Integer(x.into())),
            TypedArray::I16(v) => v.get(index).map(|&x| Value::Integer(x.into())),
            TypedArray::U32(v) => v.get(index).map(|&x| Value::Integer(x.into())),
            TypedArray::I32(v) => v.get(index).map(|&x| Value::Integer(x.into())),
            TypedArray::U64(v) => v.get(index).map(|&x| Value::Integer(x.into())),
            TypedArray::I64(v) => v.get(index).map(|&x| Value::Integer(x.into())),
        }
    }
}

impl<N: Element> From<Vec<N>> for TypedArray {
    fn from(v: Vec<N>) -> TypedArray {
        N::wrap(v)
    }
}

impl From<TypedArray> for Value {
    fn from(v: TypedArray) -> Value {
        Value::Typed(v)
    }
}

/// A plain array of numbers: serde cannot write tags (see [`TypedArray`]).
impl Serialize for TypedArray {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        each!(self, v => v.serialize(serializer))
    }
}

/// A type that can be an element of a typed array: `u8`, `i8`, `u16`, `i16`,
/// `u32`, `i32`, `u64`, `i64`, `f32` and `f64`, and no others.
pub trait Element:
    sealed::Sealed + Copy + PartialEq + fmt::Debug + Serialize + DeserializeOwned + 'static
{
    /// The element type's tag family.
    const KIND: ElementKind;
}

mod sealed {
    use super::TypedArray;

    /// What [`super::Element`] needs but its users must not call or implement:
    /// the unsafe copies below are sound only for these plain number types.
    pub trait Sealed: Sized {
        fn wrap(v: Vec<Self>) -> TypedArray;
        fn unwrap(array: TypedArray) -> Result<Vec<Self>, TypedArray>;
        fn view(array: &TypedArray) -> Option<&[Self]>;
        fn swap_bytes(self) -> Self;
    }
}

macro_rules! element {
    ($($t:ident => $variant:ident, $swap:expr;)*) => {$(
        impl sealed::Sealed for $t {
            fn wrap(v: Vec<$t>) -> TypedArray {
                TypedArray::$variant(v)
            }
            fn unwrap(array: TypedArray) -> Result<Vec<$t>, TypedArray> {
                match array {
                    TypedArray::$variant(v) => Ok(v),
                    other => Err(other),
                }
            }
            fn view(array: &TypedArray) -> Option<&[$t]> {
                match array {
                    TypedArray::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn swap_bytes(self) -> $t {
                let swap: fn($t) -> $t = $swap;
                swap(self)
            }
        }
        impl Element for $t {
            const KIND: ElementKind = ElementKind::$variant;
        }
    )*};
}

element! {
    u8 => U8, |x| x;
    i8 => I8, |x| x;
    u16 => U16, u16::swap_bytes;
    i16 => I16, i16::swap_bytes;
    u32 => U32, u32::swap_bytes;
    i32 => I32, i32::swap_bytes;
    u64 => U64, u64::swap_bytes;
    i64 => I64, i64::swap_bytes;
    f32 => F32, |x| f32::from_bits(x.to_bits().swap_bytes());
    f64 => F64, |x| f64::from_bits(x.to_bits().swap_bytes());
}

/// The elements whose bytes (in `order`) are `bytes`, in one copy into memory
/// aligned for `N`. A remainder shorter than one element is ignored; callers
/// check the length first.
fn vec_from_bytes<N: Element>(bytes: &[u8], order: ByteOrder) -> Vec<N> {
    let len = bytes.len() / size_of::<N>();
    let mut out = Vec::<N>::with_capacity(len);
    // SAFETY: `out` has room for `len` elements, `len * size_of::<N>()` bytes,
    // all inside `bytes`; the two do not overlap; `Element` is sealed to plain
    // numbers, for which any bit pattern is a valid value.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            out.as_mut_ptr().cast::<u8>(),
            len * size_of::<N>(),
        );
        out.set_len(len);
    }
    if (order == ByteOrder::Big) != cfg!(target_endian = "big") {
        // Only big-endian input on wasm (rare) or any input on a big-endian host.
        for x in &mut out {
            *x = x.swap_bytes();
        }
    }
    out
}

/// The memory of `xs` as bytes, in the host's byte order.
fn raw_bytes<N: Element>(xs: &[N]) -> &[u8] {
    // SAFETY: `Element` is sealed to plain numbers: no padding, every byte is
    // initialized, and `u8` has no alignment requirement.
    unsafe { std::slice::from_raw_parts(xs.as_ptr().cast::<u8>(), size_of_val(xs)) }
}

/// Encodes `xs` as one CBOR typed array: the little-endian tag of `N`, a byte
/// string header and the elements, copied in one go.
///
/// ```
/// // [1i32, -2] is tag 78 (sint32, little-endian) around 8 bytes.
/// assert_eq!(
///     grid_guest::typed::encode(&[1i32, -2]),
///     [0xd8, 78, 0x48, 1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]
/// );
/// ```
pub fn encode<N: Element>(xs: &[N]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, xs);
    out
}

/// As [`encode`], appending to `out` (to build a larger value by hand).
pub fn encode_into<N: Element>(out: &mut Vec<u8>, xs: &[N]) {
    let len = size_of_val(xs);
    out.reserve(2 + 9 + len);
    cbor::write_head(out, cbor::MAJOR_TAG, N::KIND.tag());
    cbor::write_head(out, cbor::MAJOR_BYTES, len as u64);
    if cfg!(target_endian = "little") {
        out.extend_from_slice(raw_bytes(xs));
    } else {
        let swapped: Vec<N> = xs.iter().map(|x| x.swap_bytes()).collect();
        out.extend_from_slice(raw_bytes(&swapped));
    }
}

/// Decodes one CBOR item, which must span all of `bytes`, into a `Vec<N>`: see
/// [`from_value`] for what it accepts.
///
/// # Errors
/// When the bytes are not valid CBOR, or the value is not an array of numbers
/// that fit `N`.
pub fn decode<N: Element>(bytes: &[u8]) -> Result<Vec<N>, Error> {
    from_value(cbor::decode_value(bytes)?)
}

/// The numbers in `value` as a `Vec<N>`:
///
/// - a typed array of `N`s is taken as it is, without a copy;
/// - for `u8`, so is a byte string;
/// - any other array, typed or plain, converts element by element as serde
///   does, with its messages (`invalid value: integer `300`, expected u8`); a
///   float element type accepts integers.
///
/// ```
/// use grid_guest::{Value, typed};
///
/// let typed = Value::from(typed::TypedArray::from(vec![1i32, 2]));
/// assert_eq!(typed::from_value::<i32>(typed.clone()).unwrap(), [1, 2]);
/// assert_eq!(typed::from_value::<f64>(typed).unwrap(), [1.0, 2.0]);
/// let err = typed::from_value::<u8>(Value::Array(vec![300.into()])).unwrap_err();
/// assert_eq!(err.message(), "invalid value: integer `300`, expected u8");
/// ```
///
/// # Errors
/// When `value` is not an array, or an element is not a number that fits `N`.
pub fn from_value<N: Element>(value: Value) -> Result<Vec<N>, Error> {
    let value = match value {
        Value::Bytes(bytes) if N::KIND == ElementKind::U8 => Value::Typed(TypedArray::U8(bytes)),
        other => other,
    };
    match value {
        Value::Typed(array) => match N::unwrap(array) {
            Ok(v) => Ok(v),
            Err(other) => crate::from_value(Value::Typed(other)),
        },
        other => crate::from_value(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One array per element type, with the extremes of each.
    fn samples() -> Vec<TypedArray> {
        vec![
            TypedArray::from(vec![0u8, 1, 255]),
            TypedArray::from(vec![i8::MIN, -1, 0, i8::MAX]),
            TypedArray::from(vec![0u16, 0x1234, u16::MAX]),
            TypedArray::from(vec![i16::MIN, -2, i16::MAX]),
            TypedArray::from(vec![0u32, 0x1234_5678, u32::MAX]),
            TypedArray::from(vec![i32::MIN, -3, i32::MAX]),
            TypedArray::from(vec![0u64, 0x0102_0304_0506_0708, u64::MAX]),
            TypedArray::from(vec![i64::MIN, -4, i64::MAX]),
            TypedArray::from(vec![1.5f32, -0.0, f32::MAX, f32::INFINITY]),
            TypedArray::from(vec![1.5f64, -0.0, f64::MIN_POSITIVE, f64::NEG_INFINITY]),
            TypedArray::F64(vec![]),
        ]
    }

    #[test]
    fn every_element_type_round_trips() {
        for array in samples() {
            let mut bytes = Vec::new();
            array.encode_into(&mut bytes);
            assert_eq!(bytes[0], 0xd8, "{array:?}");
            assert_eq!(u64::from(bytes[1]), array.kind().tag(), "{array:?}");
            assert_eq!(
                cbor::decode_value(&bytes).unwrap(),
                Value::Typed(array.clone())
            );
        }
    }

    #[test]
    fn decode_reaches_every_element_type() {
        fn check<N: Element>(xs: Vec<N>) {
            assert_eq!(decode::<N>(&encode(&xs)).unwrap(), xs);
            // Through serde element by element, the same numbers.
            let via_serde: Vec<N> = crate::from_value(Value::Typed(xs.clone().into())).unwrap();
            assert_eq!(via_serde, xs);
        }
        check(vec![1u8, 2]);
        check(vec![-1i8, 2]);
        check(vec![1u16, 2]);
        check(vec![-1i16, 2]);
        check(vec![1u32, 2]);
        check(vec![-1i32, 2]);
        check(vec![1u64, u64::MAX]);
        check(vec![-1i64, i64::MIN]);
        check(vec![1.25f32, -2.0]);
        check(vec![1.25f64, -2.0]);
    }

    /// RFC 8746 encodings worked out by hand.
    #[test]
    fn encodings_are_byte_exact() {
        // 1.5 = 0x3FF8000000000000, -2.0 = 0xC000000000000000, little-endian
        assert_eq!(
            encode(&[1.5f64, -2.0]),
            [
                0xd8, 0x56, 0x50, // tag 86, bytes(16)
                0, 0, 0, 0, 0, 0, 0xf8, 0x3f, //
                0, 0, 0, 0, 0, 0, 0, 0xc0,
            ]
        );
        assert_eq!(
            encode(&[1i32, -2, 0x0102_0304]),
            [
                0xd8, 0x4e, 0x4c, // tag 78, bytes(12)
                1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 4, 3, 2, 1,
            ]
        );
        assert_eq!(encode::<u8>(&[]), [0xd8, 0x40, 0x40]);
        // 24 bytes need the one-byte length form.
        let long = encode(&[0u64, 1, 2]);
        assert_eq!(long[..4], [0xd8, 0x47, 0x58, 24]);
        assert_eq!(long.len(), 4 + 24);
    }

    #[test]
    fn big_endian_input_is_swapped() {
        let cases: [(u8, &[u8], TypedArray); 6] = [
            (65, &[0x12, 0x34], TypedArray::U16(vec![0x1234])),
            (66, &[0, 0, 1, 2], TypedArray::U32(vec![0x0102])),
            (67, &[0, 0, 0, 0, 0, 0, 1, 2], TypedArray::U64(vec![0x0102])),
            (73, &[0xff, 0xfe], TypedArray::I16(vec![-2])),
            (74, &[0xff, 0xff, 0xff, 0xfe], TypedArray::I32(vec![-2])),
            (
                75,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
                TypedArray::I64(vec![-2]),
            ),
        ];
        for (tag, content, want) in cases {
            let mut bytes = vec![0xd8, tag, 0x40 | content.len() as u8];
            bytes.extend_from_slice(content);
            assert_eq!(cbor::decode_value(&bytes).unwrap(), Value::Typed(want));
        }
        let f32_be = [0xd8, 81, 0x44, 0x3f, 0xc0, 0, 0];
        assert_eq!(
            cbor::decode_value(&f32_be).unwrap(),
            Value::Typed(TypedArray::F32(vec![1.5]))
        );
        let f64_be = [0xd8, 82, 0x48, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            cbor::decode_value(&f64_be).unwrap(),
            Value::Typed(TypedArray::F64(vec![1.5]))
        );
        // uint8 "clamped" is plain uint8 to us.
        assert_eq!(
            cbor::decode_value(&[0xd8, 68, 0x42, 7, 8]).unwrap(),
            Value::Typed(TypedArray::U8(vec![7, 8]))
        );
    }

    #[test]
    fn bad_typed_arrays_are_errors_naming_the_problem() {
        let cases: &[(&[u8], &str)] = &[
            (
                &[0xd8, 86, 0x43, 1, 2, 3],
                "a float64 typed array of 3 bytes: not a multiple of 8",
            ),
            (
                &[0xd8, 78, 0x45, 1, 2, 3, 4, 5],
                "a sint32 typed array of 5 bytes: not a multiple of 4",
            ),
            (
                &[0xd8, 84, 0x42, 0, 0x3c],
                "tag 84 (float16 typed array) is not supported",
            ),
            (&[0xd8, 80, 0x40], "tag 80 (float16 typed array)"),
            (&[0xd8, 83, 0x40], "tag 83 (float128 typed array)"),
            (&[0xd8, 87, 0x40], "tag 87 (float128 typed array)"),
            (&[0xd8, 76, 0x40], "tag 76 is not supported"),
            (&[0xc1, 0x00], "tag 1 is not supported"),
            (&[0xd9, 0x01, 0x00, 0x40], "tag 256 is not supported"),
            (
                &[0xd8, 86, 0x82, 0x01, 0x02],
                "tag 86 (float64) must hold a byte string",
            ),
            (&[0xd8, 86, 0x48, 1, 2], "length 8 exceeds the 2 bytes left"),
            (&[0xd8, 86], "end of input"),
        ];
        for (bytes, expected) in cases {
            let err = cbor::decode_value(bytes).unwrap_err();
            assert!(err.message().contains(expected), "{bytes:x?}: {err}");
        }
    }

    #[test]
    fn a_chunked_byte_string_is_joined() {
        let bytes = [0xd8, 70, 0x5f, 0x42, 1, 0, 0x42, 0, 0, 0xff];
        assert_eq!(
            cbor::decode_value(&bytes).unwrap(),
            Value::Typed(TypedArray::U32(vec![1]))
        );
    }

    #[test]
    fn from_value_takes_plain_arrays_and_converts_other_types() {
        let plain = Value::Array(vec![1.into(), 2.5.into()]);
        assert_eq!(from_value::<f64>(plain.clone()).unwrap(), [1.0, 2.5]);
        assert_eq!(
            from_value::<i64>(plain).unwrap_err().message(),
            "invalid type: floating point `2.5`, expected i64"
        );
        let wide = Value::Typed(TypedArray::I64(vec![1, -1]));
        assert_eq!(
            from_value::<u32>(wide).unwrap_err().message(),
            "invalid value: integer `-1`, expected u32"
        );
        assert_eq!(from_value::<u8>(Value::Bytes(vec![1, 2])).unwrap(), [1, 2]);
        assert_eq!(
            from_value::<i8>(Value::Text("x".into()))
                .unwrap_err()
                .message(),
            "invalid type: string \"x\", expected a sequence"
        );
    }

    #[test]
    fn serde_sees_numbers_and_u8_bytes() {
        let floats = Value::Typed(TypedArray::F32(vec![0.5, 2.0]));
        let pair: (f64, f64) = crate::from_value(floats.clone()).unwrap();
        assert_eq!(pair, (0.5, 2.0));
        let any: Value = crate::from_value(floats).unwrap();
        assert_eq!(any, Value::Array(vec![0.5.into(), 2.0.into()]));
        let bytes = Value::Typed(TypedArray::U8(vec![1, 2, 3]));
        let buf: serde_bytes_like::ByteBuf = crate::from_value(bytes.clone()).unwrap();
        assert_eq!(buf.0, [1, 2, 3]);
        let too_short: Result<(u8, u8), _> = crate::from_value(bytes);
        assert!(too_short.is_err());
        // Serialize writes a plain array, which reads back as one.
        let plain = crate::to_value(&Value::Typed(TypedArray::I16(vec![-1, 2]))).unwrap();
        assert_eq!(plain, Value::Array(vec![(-1).into(), 2.into()]));
    }

    /// A `Deserialize` that asks for bytes, as `serde_bytes::ByteBuf` does.
    mod serde_bytes_like {
        use serde::de::{Deserialize, Deserializer, Error, Visitor};
        use std::fmt;

        pub struct ByteBuf(pub Vec<u8>);

        impl<'de> Deserialize<'de> for ByteBuf {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteBuf, D::Error> {
                struct Bytes;
                impl Visitor<'_> for Bytes {
                    type Value = ByteBuf;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v))
                    }
                }
                d.deserialize_byte_buf(Bytes)
            }
        }
    }
}
