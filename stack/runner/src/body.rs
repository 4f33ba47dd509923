//! How HTTP bodies cross the JavaScript boundary without losing bytes.
//!
//! Text (valid UTF-8) crosses as a string, the fast and common case. Other bytes go into
//! JavaScript as an `ArrayBuffer`; they come back out as a *latin1 string* (one character per
//! byte, 0–255) with a flag beside it, since reading a typed array's memory from Rust needs
//! `unsafe`, which this crate forbids. The prelude (`toLatin1` / `fromLatin1`) does the other half.

use rquickjs::{ArrayBuffer, Ctx, IntoJs, Value};

/// A request body handed to a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Text(String),
    Bytes(Vec<u8>),
}

impl Body {
    /// Text when `bytes` are UTF-8, else the bytes as they are.
    pub fn from_bytes(bytes: Vec<u8>) -> Body {
        match String::from_utf8(bytes) {
            Ok(s) => Body::Text(s),
            Err(e) => Body::Bytes(e.into_bytes()),
        }
    }
}

impl<'js> IntoJs<'js> for Body {
    fn into_js(self, ctx: &Ctx<'js>) -> rquickjs::Result<Value<'js>> {
        match self {
            Body::Text(s) => s.into_js(ctx),
            Body::Bytes(b) => ArrayBuffer::new(ctx.clone(), b)?.into_js(ctx),
        }
    }
}

/// The bytes of a latin1 string; `None` when a character is above U+00FF (not latin1).
pub fn latin1_to_bytes(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

/// `bytes` as a latin1 string (each byte the character of the same code).
pub fn bytes_to_latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// A body coming out of JavaScript: a string, latin1 when `binary`.
pub fn from_js_string(s: String, binary: bool) -> Result<Vec<u8>, String> {
    if binary {
        latin1_to_bytes(&s).ok_or_else(|| "a binary body holds a character above U+00FF".into())
    } else {
        Ok(s.into_bytes())
    }
}

/// A body going into JavaScript as a string: `(text, false)` for UTF-8, else `(latin1, true)`.
pub fn to_js_string(bytes: Vec<u8>) -> (String, bool) {
    match String::from_utf8(bytes) {
        Ok(s) => (s, false),
        Err(e) => (bytes_to_latin1(e.as_bytes()), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_through_latin1() {
        let all: Vec<u8> = (0..=255).collect();
        let s = bytes_to_latin1(&all);
        assert_eq!(s.chars().count(), 256);
        assert_eq!(latin1_to_bytes(&s).as_deref(), Some(&all[..]));
        assert_eq!(from_js_string(s, true), Ok(all.clone()));
        assert!(latin1_to_bytes("snow ☃").is_none(), "not latin1");
        assert!(from_js_string("☃".into(), true).is_err());
        assert_eq!(
            to_js_string(b"caf\xc3\xa9".to_vec()),
            ("café".into(), false)
        );
        assert_eq!(to_js_string(vec![0xff, 0x00]), ("\u{ff}\u{0}".into(), true));
        assert_eq!(Body::from_bytes(b"hi".to_vec()), Body::Text("hi".into()));
        assert_eq!(Body::from_bytes(vec![0xc3]), Body::Bytes(vec![0xc3]));
    }
}
