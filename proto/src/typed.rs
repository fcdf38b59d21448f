//! Typed arrays: numbers of one type as one contiguous little-endian buffer.
//!
//! A million `f64` as a [`Value::Array`] is a million boxed values, each
//! encoded, sent and decoded on its own. A [`TypedArray`] is the same numbers
//! as 8 MB of bytes: built from a slice with one copy (or none, from a `Vec`),
//! encoded as one byte string, decoded with one copy, read back as a slice.
//! Scatter and gather split and join them as slices.
//!
//! The buffer is a [`bytes::Bytes`]: immutable and shared, so clones and
//! [`TypedArray::slice`]s cost a reference count, never a copy, and a received
//! array can be handed on as it is. A value large enough to travel as a blob
//! (see `grid_bus::spill_body`) is decoded in place
//! ([`crate::decode_shared`]): its arrays are views of the fetched buffer. On
//! the way out, encoding a message copies its arrays once into it. Reading it as `&[f64]` needs the buffer to
//! be aligned for `f64`; [`TypedArray::as_slice`] borrows when it is and copies
//! when it is not (a buffer cut out of a received message may be unaligned).
//!
//! How they travel:
//! - Wherever Grid writes CBOR for others (the guest ABI, see
//!   `guest-sdk/ABI.md`, through [`crate::cbor`]), a typed array is RFC 8746's
//!   typed-array tag for its element type around a byte string.
//! - Between Grid's own processes, messages go through serde and cbor4ii,
//!   which cannot write or read tags. There a typed array is a map with one
//!   entry whose key is the text `"\u{0}grid.typed.<elem>"` (e.g.
//!   `"\u{0}grid.typed.f64"`) and whose value is the byte string. Such a key
//!   is reserved: a map sent in that shape comes back as a typed array.
//! - In JSON, and to serializers that are human-readable, a typed array is an
//!   array of numbers.
//!
//! Elements are little-endian on every host Grid runs on; the constructors
//! from Rust slices copy native bytes, so this module refuses to build on a
//! big-endian target rather than send wrong numbers.

use std::borrow::Cow;
use std::fmt;
use std::ops::RangeBounds;
use std::str::FromStr;

use bytes::Bytes;

use crate::Value;

#[cfg(target_endian = "big")]
compile_error!("grid-proto's typed arrays assume a little-endian host");

/// The element type of a [`TypedArray`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl Elem {
    /// Every element type, smallest integers first.
    pub const ALL: [Elem; 10] = [
        Elem::U8,
        Elem::I8,
        Elem::U16,
        Elem::I16,
        Elem::U32,
        Elem::I32,
        Elem::U64,
        Elem::I64,
        Elem::F32,
        Elem::F64,
    ];

    /// What Grid knows of this element type.
    fn facts(self) -> &'static Facts {
        &FACTS[self as usize]
    }

    /// The size of one element in bytes.
    pub fn size(self) -> usize {
        self.facts().size
    }

    /// Its name as users write it: `u8`, `i64`, `f64`, ...
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// The name of an array of it, for messages: `f64 array`.
    pub fn array_name(self) -> &'static str {
        self.facts().array_name
    }

    /// RFC 8746's tag for arrays of this type, little-endian.
    pub fn tag(self) -> u64 {
        self.facts().tag
    }

    /// The element type and byte order of an RFC 8746 tag Grid reads:
    /// `Some((elem, big_endian))`, or `None` for any other tag (including
    /// 16- and 128-bit floats, which Grid has no type for). RFC 8746 sets
    /// bit 2 of a tag for little-endian (the bit means nothing for 8-bit
    /// types), and tag 68 is uint8 "clamped", read as uint8.
    pub fn of_tag(tag: u64) -> Option<(Elem, bool)> {
        const LITTLE_ENDIAN: u64 = 4;
        if tag == 68 {
            return Some((Elem::U8, false));
        }
        Elem::ALL.into_iter().find_map(|elem| {
            if elem.tag() == tag {
                Some((elem, false))
            } else if elem.size() > 1
                && elem.tag() == tag | LITTLE_ENDIAN
                && tag & LITTLE_ENDIAN == 0
            {
                Some((elem, true))
            } else {
                None
            }
        })
    }

    /// The key of the one-entry map that carries an array of this type on
    /// Grid's own wire (see the module docs).
    pub(crate) fn wire_key(self) -> &'static str {
        self.facts().wire_key
    }

    /// The element type whose [`wire_key`](Self::wire_key) is `key`.
    pub(crate) fn of_wire_key(key: &str) -> Option<Elem> {
        Elem::ALL.into_iter().find(|e| e.wire_key() == key)
    }
}

/// An element type's sizes and names, in [`Elem`]'s order.
struct Facts {
    size: usize,
    name: &'static str,
    array_name: &'static str,
    tag: u64,
    wire_key: &'static str,
}

macro_rules! facts {
    ($($size:literal $name:literal $tag:literal),* $(,)?) => {
        [$(Facts {
            size: $size,
            name: $name,
            array_name: concat!($name, " array"),
            tag: $tag,
            wire_key: concat!("\u{0}grid.typed.", $name),
        }),*]
    };
}

const FACTS: [Facts; 10] = facts![
    1 "u8" 64,
    1 "i8" 72,
    2 "u16" 69,
    2 "i16" 77,
    4 "u32" 70,
    4 "i32" 78,
    8 "u64" 71,
    8 "i64" 79,
    4 "f32" 85,
    8 "f64" 86,
];

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Elem {
    type Err = TypedError;

    fn from_str(s: &str) -> Result<Elem, TypedError> {
        Elem::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| TypedError::UnknownElem(s.to_string()))
    }
}

/// Why a typed array could not be made.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TypedError {
    #[error("a {elem} array needs a multiple of {size} bytes, got {len}", size = .elem.size())]
    Length { elem: Elem, len: usize },
    #[error("unknown element type {0:?} (one of u8 i8 u16 i16 u32 i32 u64 i64 f32 f64)")]
    UnknownElem(String),
    #[error("item {index}: {found} does not fit a {elem} array")]
    Item {
        elem: Elem,
        index: usize,
        found: String,
    },
    #[error("expected an array of numbers, got {0}")]
    NotAnArray(&'static str),
}

/// A Rust number type that can be an element of a [`TypedArray`].
pub trait Element: bytemuck::Pod + Send + Sync + sealed::Sealed {
    /// Its element type.
    const ELEM: Elem;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! elements {
    ($($t:ty => $e:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const ELEM: Elem = Elem::$e;
        }
    )*};
}
elements!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32,
          u64 => U64, i64 => I64, f32 => F32, f64 => F64);

/// Numbers of one type in one shared little-endian buffer.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TypedArray {
    elem: Elem,
    data: Bytes,
}

impl TypedArray {
    /// An array of `elem` over `data`, whose length must be a multiple of
    /// the element size. Shares `data`, copies nothing.
    pub fn new(elem: Elem, data: impl Into<Bytes>) -> Result<TypedArray, TypedError> {
        let data = data.into();
        if !data.len().is_multiple_of(elem.size()) {
            return Err(TypedError::Length {
                elem,
                len: data.len(),
            });
        }
        Ok(TypedArray { elem, data })
    }

    /// The numbers of `items`, copied once.
    pub fn from_slice<N: Element>(items: &[N]) -> TypedArray {
        TypedArray {
            elem: N::ELEM,
            data: Bytes::copy_from_slice(bytemuck::cast_slice(items)),
        }
    }

    /// The numbers of `items`, without a copy: the buffer keeps the vector.
    pub fn from_vec<N: Element>(items: Vec<N>) -> TypedArray {
        TypedArray {
            elem: N::ELEM,
            data: Bytes::from_owner(AsBytes(items)),
        }
    }

    /// An array of `elem` from big-endian bytes (RFC 8746's other byte
    /// order): the one constructor that visits every element.
    pub fn from_big_endian(elem: Elem, data: &[u8]) -> Result<TypedArray, TypedError> {
        let mut swapped = data.to_vec();
        for chunk in swapped.chunks_exact_mut(elem.size()) {
            chunk.reverse();
        }
        TypedArray::new(elem, swapped)
    }

    /// An array of `elem` holding the numbers of `items` (integers and
    /// floats), each checked to fit: the way JSON and plain arrays become
    /// typed ones.
    pub fn from_values(elem: Elem, items: &[Value]) -> Result<TypedArray, TypedError> {
        let mut data = Vec::with_capacity(items.len() * elem.size());
        for (index, item) in items.iter().enumerate() {
            let misfit = || TypedError::Item {
                elem,
                index,
                found: item.to_string(),
            };
            push_number(elem, item, &mut data).ok_or_else(misfit)?;
        }
        Ok(TypedArray {
            elem,
            data: data.into(),
        })
    }

    /// Its element type.
    pub fn elem(&self) -> Elem {
        self.elem
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / self.elem.size()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements' bytes, little-endian.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The shared buffer (a reference count, not a copy).
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// The elements as a slice of `N`, when `N` is the element type:
    /// borrowed when the buffer is aligned for `N`, else copied.
    pub fn as_slice<N: Element>(&self) -> Option<Cow<'_, [N]>> {
        if N::ELEM != self.elem {
            return None;
        }
        Some(match bytemuck::try_cast_slice(&self.data) {
            Ok(slice) => Cow::Borrowed(slice),
            Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(&self.data)),
        })
    }

    /// The elements copied into a vector, when `N` is the element type.
    pub fn to_vec<N: Element>(&self) -> Option<Vec<N>> {
        (N::ELEM == self.elem).then(|| bytemuck::pod_collect_to_vec(&self.data))
    }

    /// Element `index` as a value (an integer or a float).
    pub fn get(&self, index: usize) -> Option<Value> {
        let size = self.elem.size();
        let bytes = self.data.get(index * size..(index + 1) * size)?;
        Some(element_value(self.elem, bytes))
    }

    /// The elements as values, one by one.
    pub fn values(&self) -> impl ExactSizeIterator<Item = Value> + '_ {
        self.data
            .chunks_exact(self.elem.size())
            .map(|bytes| element_value(self.elem, bytes))
    }

    /// Elements `range` as an array sharing this one's buffer.
    ///
    /// # Panics
    /// When the range is out of bounds, as slicing does.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> TypedArray {
        let size = self.elem.size();
        let start = match range.start_bound() {
            std::ops::Bound::Included(&s) => s,
            std::ops::Bound::Excluded(&s) => s + 1,
            std::ops::Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            std::ops::Bound::Included(&e) => e + 1,
            std::ops::Bound::Excluded(&e) => e,
            std::ops::Bound::Unbounded => self.len(),
        };
        TypedArray {
            elem: self.elem,
            data: self.data.slice(start * size..end * size),
        }
    }

    /// `parts` joined, one copy each; `None` when their element types
    /// differ (or there are none).
    pub fn concat<'a>(parts: impl IntoIterator<Item = &'a TypedArray>) -> Option<TypedArray> {
        let parts: Vec<&TypedArray> = parts.into_iter().collect();
        let elem = parts.first()?.elem;
        if parts.iter().any(|p| p.elem != elem) {
            return None;
        }
        if let [one] = parts[..] {
            return Some(one.clone());
        }
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.data.len()).sum());
        for part in parts {
            data.extend_from_slice(&part.data);
        }
        Some(TypedArray {
            elem,
            data: data.into(),
        })
    }
}

impl fmt::Debug for TypedArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        write!(f, "{}[", self.elem)?;
        for (i, v) in self.values().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{v}")?;
        }
        if self.len() > SHOWN {
            write!(f, ", ... {} in all", self.len())?;
        }
        f.write_str("]")
    }
}

impl<N: Element> From<Vec<N>> for TypedArray {
    fn from(items: Vec<N>) -> TypedArray {
        TypedArray::from_vec(items)
    }
}

impl<N: Element> From<&[N]> for TypedArray {
    fn from(items: &[N]) -> TypedArray {
        TypedArray::from_slice(items)
    }
}

impl From<TypedArray> for Value {
    fn from(array: TypedArray) -> Value {
        Value::Typed(array)
    }
}

/// A vector seen as its bytes, so a `Bytes` can own it.
struct AsBytes<N>(Vec<N>);

impl<N: Element> AsRef<[u8]> for AsBytes<N> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// One little-endian element as a value.
fn element_value(elem: Elem, bytes: &[u8]) -> Value {
    fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        out
    }
    match elem {
        Elem::U8 => Value::Int(bytes[0].into()),
        Elem::I8 => Value::Int((bytes[0] as i8).into()),
        Elem::U16 => Value::Int(u16::from_le_bytes(array(bytes)).into()),
        Elem::I16 => Value::Int(i16::from_le_bytes(array(bytes)).into()),
        Elem::U32 => Value::Int(u32::from_le_bytes(array(bytes)).into()),
        Elem::I32 => Value::Int(i32::from_le_bytes(array(bytes)).into()),
        Elem::U64 => Value::Int(u64::from_le_bytes(array(bytes)).into()),
        Elem::I64 => Value::Int(i64::from_le_bytes(array(bytes)).into()),
        Elem::F32 => Value::Float(f32::from_le_bytes(array(bytes)).into()),
        Elem::F64 => Value::Float(f64::from_le_bytes(array(bytes))),
    }
}

/// Appends `value` as an `elem`, if it fits exactly (integers in range;
/// floats only to float arrays; integers to float arrays as they convert).
fn push_number(elem: Elem, value: &Value, out: &mut Vec<u8>) -> Option<()> {
    match (elem, value) {
        (Elem::F64, Value::Float(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Elem::F64, Value::Int(n)) => out.extend_from_slice(&(*n as f64).to_le_bytes()),
        (Elem::F32, Value::Float(x)) => out.extend_from_slice(&(*x as f32).to_le_bytes()),
        (Elem::F32, Value::Int(n)) => out.extend_from_slice(&(*n as f32).to_le_bytes()),
        (_, Value::Int(n)) => {
            let n = *n;
            match elem {
                Elem::U8 => out.push(u8::try_from(n).ok()?),
                Elem::I8 => out.extend_from_slice(&i8::try_from(n).ok()?.to_le_bytes()),
                Elem::U16 => out.extend_from_slice(&u16::try_from(n).ok()?.to_le_bytes()),
                Elem::I16 => out.extend_from_slice(&i16::try_from(n).ok()?.to_le_bytes()),
                Elem::U32 => out.extend_from_slice(&u32::try_from(n).ok()?.to_le_bytes()),
                Elem::I32 => out.extend_from_slice(&i32::try_from(n).ok()?.to_le_bytes()),
                Elem::U64 => out.extend_from_slice(&u64::try_from(n).ok()?.to_le_bytes()),
                Elem::I64 => out.extend_from_slice(&i64::try_from(n).ok()?.to_le_bytes()),
                Elem::F32 | Elem::F64 => unreachable!("floats are matched above"),
            }
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_and_vectors_become_arrays_of_their_type() {
        let a = TypedArray::from_slice(&[1.5f64, -2.0, 3.25]);
        assert_eq!(a.elem(), Elem::F64);
        assert_eq!(a.len(), 3);
        assert_eq!(a.as_slice::<f64>().unwrap().as_ref(), &[1.5, -2.0, 3.25]);
        assert_eq!(a.as_slice::<f32>(), None);
        let b = TypedArray::from_vec(vec![7i32, -8]);
        assert_eq!(b.as_bytes(), &[7, 0, 0, 0, 0xf8, 0xff, 0xff, 0xff]);
        assert_eq!(b.to_vec::<i32>(), Some(vec![7, -8]));
        assert_eq!(b.get(1), Some(Value::Int(-8)));
        assert_eq!(b.get(2), None);
    }

    #[test]
    fn lengths_must_be_whole_elements() {
        assert_eq!(
            TypedArray::new(Elem::F64, vec![0u8; 12]),
            Err(TypedError::Length {
                elem: Elem::F64,
                len: 12
            })
        );
        assert!(TypedArray::new(Elem::U16, vec![0u8; 4]).is_ok());
        assert!(TypedArray::from_big_endian(Elem::U32, &[0, 0, 1]).is_err());
    }

    #[test]
    fn big_endian_input_is_swapped_once() {
        let a = TypedArray::from_big_endian(Elem::U16, &[0x01, 0x02, 0x00, 0x05]).unwrap();
        assert_eq!(a.to_vec::<u16>(), Some(vec![0x0102, 5]));
    }

    #[test]
    fn unaligned_buffers_are_read_by_copy() {
        let bytes = Bytes::from(vec![0u8; 17]).slice(1..);
        let a = TypedArray::new(Elem::F64, bytes).unwrap();
        assert_eq!(a.as_slice::<f64>().unwrap().as_ref(), &[0.0, 0.0]);
    }

    #[test]
    fn slices_share_and_concat_joins() {
        let a = TypedArray::from_vec((0..10i64).collect::<Vec<_>>());
        let (x, y) = (a.slice(..4), a.slice(4..));
        assert_eq!(x.len() + y.len(), 10);
        assert_eq!(y.get(0), Some(Value::Int(4)));
        assert_eq!(TypedArray::concat([&x, &y]), Some(a.clone()));
        let other = TypedArray::from_slice(&[1u8]);
        assert_eq!(TypedArray::concat([&x, &other]), None);
        assert_eq!(TypedArray::concat([]), None);
    }

    #[test]
    fn values_become_typed_when_they_fit() {
        let items = [Value::Int(1), Value::Int(255)];
        let a = TypedArray::from_values(Elem::U8, &items).unwrap();
        assert_eq!(a.as_bytes(), &[1, 255]);
        let err = TypedArray::from_values(Elem::U8, &[Value::Int(256)]).unwrap_err();
        assert_eq!(err.to_string(), "item 0: 256 does not fit a u8 array");
        let err = TypedArray::from_values(Elem::I64, &[Value::Float(1.5)]).unwrap_err();
        assert!(err.to_string().contains("1.5"), "{err}");
        let f = TypedArray::from_values(Elem::F64, &[Value::Int(2), Value::Float(0.5)]).unwrap();
        assert_eq!(f.to_vec::<f64>(), Some(vec![2.0, 0.5]));
    }

    #[test]
    fn tags_name_their_element_types() {
        for elem in Elem::ALL {
            assert_eq!(Elem::of_tag(elem.tag()), Some((elem, false)));
            assert_eq!(Elem::of_wire_key(elem.wire_key()), Some(elem));
            assert_eq!(elem.name().parse::<Elem>(), Ok(elem));
        }
        assert_eq!(Elem::of_tag(84), None, "float16 has no Grid type");
        assert_eq!(Elem::of_tag(82), Some((Elem::F64, true)));
        assert!("f16".parse::<Elem>().is_err());
    }
}
