//! The result envelope of a CBOR-ABI call (ABI.md section 2, step 2).
//!
//! Every `grid:NAME` export answers with a one-entry CBOR map: `{"ok": value}`,
//! `{"err": value}` or `{"bad_arguments": "message"}`. This file builds those
//! bytes for the export glue and reads them back for tests. It must stay the only
//! place that knows the three key names.

use serde::Serialize;

use crate::typed::{self, Element};
use crate::{Error, Value, cbor};

const OK: &str = "ok";
const ERR: &str = "err";
const BAD_ARGUMENTS: &str = "bad_arguments";

/// What a guest function answered, as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// `{"ok": value}`: the function's result.
    Ok(Value),
    /// `{"err": value}`: an expected failure; the task fails with kind `guest_error`.
    Err(Value),
    /// `{"bad_arguments": message}`: the arguments did not fit the parameters.
    BadArguments(String),
}

impl Envelope {
    /// Decodes an envelope, as the engine does with the bytes a `grid:NAME` export
    /// returned. Useful in native tests of the glue the export macro generates.
    ///
    /// # Errors
    /// When the bytes are not CBOR, or not a one-entry map with one of the three keys.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, Error> {
        let Value::Map(mut entries) = cbor::decode_value(bytes)? else {
            return Err(Error::new("an envelope must be a map"));
        };
        let (Some((Value::Text(key), value)), true) = (entries.pop(), entries.is_empty()) else {
            return Err(Error::new(
                "an envelope must have exactly one entry, with a text key",
            ));
        };
        match (key.as_str(), value) {
            (OK, value) => Ok(Envelope::Ok(value)),
            (ERR, value) => Ok(Envelope::Err(value)),
            (BAD_ARGUMENTS, Value::Text(message)) => Ok(Envelope::BadArguments(message)),
            (BAD_ARGUMENTS, _) => Err(Error::new("a bad_arguments message must be text")),
            (other, _) => Err(Error::new(format_args!("unknown envelope key {other:?}"))),
        }
    }
}

/// `{"ok": value}`. A top-level `()` becomes `null`.
pub(crate) fn ok<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    with_key(OK, value)
}

/// `{"err": error}`.
pub(crate) fn err<E: Serialize + ?Sized>(error: &E) -> Result<Vec<u8>, Error> {
    with_key(ERR, error)
}

/// `{"ok": typed array}`; cannot fail, numbers always encode.
pub(crate) fn ok_array<N: Element>(xs: &[N]) -> Vec<u8> {
    let mut out = header(OK);
    typed::encode_into(&mut out, xs);
    out
}

/// `{"bad_arguments": message}`; cannot fail, a string always encodes.
pub(crate) fn bad_arguments(message: &str) -> Vec<u8> {
    let mut out = header(BAD_ARGUMENTS);
    text_header(&mut out, message.len());
    out.extend_from_slice(message.as_bytes());
    out
}

fn with_key<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>, Error> {
    // The map header and key are fixed bytes; only the value needs serde. Writing
    // them directly avoids wrapping every result in a temporary map type.
    let mut out = header(key);
    out.extend_from_slice(&cbor::to_vec(value)?);
    Ok(out)
}

/// A one-entry map header followed by the text key.
fn header(key: &str) -> Vec<u8> {
    let mut out = vec![0xa1];
    text_header(&mut out, key.len());
    out.extend_from_slice(key.as_bytes());
    out
}

/// The initial bytes of a text string of `len` bytes (major type 3).
fn text_header(out: &mut Vec<u8>, len: usize) {
    // usize is at most 64 bits on every target Rust supports.
    cbor::write_head(out, cbor::MAJOR_TEXT, len as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_three_shapes() {
        assert_eq!(ok(&7).unwrap(), [0xa1, 0x62, b'o', b'k', 0x07]);
        assert_eq!(ok(&()).unwrap(), [0xa1, 0x62, b'o', b'k', 0xf6]);
        assert_eq!(
            Envelope::decode(&err("no").unwrap()).unwrap(),
            Envelope::Err(Value::Text("no".into()))
        );
        assert_eq!(
            Envelope::decode(&bad_arguments("expected 1 argument, got 0")).unwrap(),
            Envelope::BadArguments("expected 1 argument, got 0".into())
        );
    }

    #[test]
    fn text_headers_agree_with_cbor4ii_at_every_width() {
        for len in [0, 23, 24, 255, 256, 65535, 65536] {
            let message = "x".repeat(len);
            let mut ours = Vec::new();
            text_header(&mut ours, len);
            ours.extend_from_slice(message.as_bytes());
            assert_eq!(ours, cbor::to_vec(&message).unwrap(), "length {len}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_envelope() {
        for value in [
            Value::Integer(1),
            Value::Map(vec![]),
            Value::Map(vec![(Value::Text("what".into()), Value::Null)]),
            Value::Map(vec![(Value::Text("bad_arguments".into()), Value::Null)]),
            Value::Map(vec![
                (Value::Text("ok".into()), Value::Null),
                (Value::Text("err".into()), Value::Null),
            ]),
        ] {
            assert!(
                Envelope::decode(&cbor::to_vec(&value).unwrap()).is_err(),
                "{value:?}"
            );
        }
    }
}
