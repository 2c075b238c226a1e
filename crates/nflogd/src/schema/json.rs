//! A small JSON writer into a byte buffer: no intermediate tree, no allocation per field.

use std::io::Write;

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f
}

/// Writes `s` as a JSON string (quotes included), escaping as RFC 8259 requires.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // A fold without early exit, so no branch per byte: most values need no escape and are
    // scanned to the end anyway.
    let clean = bytes.iter().fold(true, |ok, &b| {
        ok & (b >= 0x20) & (b != b'"') & (b != b'\\') & (b != 0x7f)
    });
    if clean {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{b:04x}");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// An object being written, compact (`,` and `:` without spaces). Its keys are `obj_key!`
/// tokens.
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

/// `,"key":` as one static token, for `Obj`: an ECS record has some sixty keys, and each is one
/// copy instead of four (comma, quote, name, quote-colon).
#[macro_export]
macro_rules! obj_key {
    ($k:literal) => {
        concat!(",\"", $k, "\":")
    };
}

impl<'a> Obj<'a> {
    pub fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// The token of the first key goes without its comma.
    #[inline(always)]
    fn key(&mut self, token: &'static str) {
        debug_assert!(token.starts_with(",\"") && token.ends_with("\":"));
        let t = token.as_bytes();
        self.out
            .extend_from_slice(if self.first { &t[1..] } else { t });
        self.first = false;
    }

    pub fn str(&mut self, k: &'static str, v: &str) -> &mut Self {
        self.key(k);
        string(self.out, v);
        self
    }

    /// A string the schema itself gives, plain ASCII: written without the escape scan.
    pub fn lit(&mut self, k: &'static str, v: &'static str) -> &mut Self {
        debug_assert!(!v.bytes().any(needs_escape));
        self.key(k);
        self.out.push(b'"');
        self.out.extend_from_slice(v.as_bytes());
        self.out.push(b'"');
        self
    }

    pub fn num(&mut self, k: &'static str, v: impl itoa::Integer) -> &mut Self {
        self.key(k);
        let mut b = itoa::Buffer::new();
        self.out.extend_from_slice(b.format(v).as_bytes());
        self
    }

    /// A number written as a JSON string (ECS keeps ids and protocol numbers as keywords).
    pub fn num_str(&mut self, k: &'static str, v: impl itoa::Integer) -> &mut Self {
        self.key(k);
        let mut b = itoa::Buffer::new();
        self.out.push(b'"');
        self.out.extend_from_slice(b.format(v).as_bytes());
        self.out.push(b'"');
        self
    }

    pub fn bool(&mut self, k: &'static str, v: bool) -> &mut Self {
        self.key(k);
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        self
    }

    /// A value written by `f` directly (already valid JSON).
    pub fn raw(&mut self, k: &'static str, f: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        self.key(k);
        f(self.out);
        self
    }

    /// A nested object, written by `f`.
    pub fn obj(&mut self, k: &'static str, f: impl FnOnce(&mut Obj)) -> &mut Self {
        self.key(k);
        let mut o = Obj::open(self.out);
        f(&mut o);
        o.close();
        self
    }

    pub fn strs<'s>(
        &mut self,
        k: &'static str,
        vs: impl IntoIterator<Item = &'s str>,
    ) -> &mut Self {
        self.array(k, vs, string)
    }

    pub fn nums<N: itoa::Integer>(
        &mut self,
        k: &'static str,
        vs: impl IntoIterator<Item = N>,
    ) -> &mut Self {
        let mut b = itoa::Buffer::new();
        self.array(k, vs, |out, v| {
            out.extend_from_slice(b.format(v).as_bytes())
        })
    }

    /// An array whose items `item` writes.
    pub fn array<T>(
        &mut self,
        k: &'static str,
        vs: impl IntoIterator<Item = T>,
        mut item: impl FnMut(&mut Vec<u8>, T),
    ) -> &mut Self {
        self.key(k);
        self.out.push(b'[');
        for (i, v) in vs.into_iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            item(self.out, v);
        }
        self.out.push(b']');
        self
    }

    pub fn close(self) {
        self.out.push(b'}');
    }
}

/// `, "key": ` as one static token, for `Flat`: ulogd-style objects are dozens of short keys,
/// and one copy per key instead of four halves the rendering cost.
#[macro_export]
macro_rules! flat_key {
    ($k:literal) => {
        concat!(", \"", $k, "\": ")
    };
}

/// A flat object with jansson's separators whose keys are `flat_key!` tokens.
pub struct Flat<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Flat<'a> {
    /// Opens the object with its first key, e.g. `"timestamp"`.
    #[inline]
    pub fn open(out: &'a mut Vec<u8>, first_key: &str) -> Self {
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(first_key.as_bytes());
        out.extend_from_slice(b"\": ");
        Flat { out }
    }

    /// The value of the first key, or of a key already written.
    pub fn out(&mut self) -> &mut Vec<u8> {
        self.out
    }

    #[inline]
    pub fn num(&mut self, token: &'static str, v: impl itoa::Integer) -> &mut Self {
        self.out.extend_from_slice(token.as_bytes());
        let mut b = itoa::Buffer::new();
        self.out.extend_from_slice(b.format(v).as_bytes());
        self
    }

    /// The key only when there is a value.
    pub fn opt_num(&mut self, token: &'static str, v: Option<impl itoa::Integer>) -> &mut Self {
        if let Some(v) = v {
            self.num(token, v);
        }
        self
    }

    #[inline]
    pub fn str(&mut self, token: &'static str, v: &str) -> &mut Self {
        self.out.extend_from_slice(token.as_bytes());
        string(self.out, v);
        self
    }

    #[inline]
    pub fn raw(&mut self, token: &'static str, f: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        self.out.extend_from_slice(token.as_bytes());
        f(self.out);
        self
    }

    pub fn close(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_nesting() {
        let mut v = Vec::new();
        let mut o = Obj::open(&mut v);
        o.str(obj_key!("a"), "x\"y\\z\n\u{1}é")
            .num(obj_key!("n"), -3i32)
            .obj(obj_key!("o"), |o| {
                o.bool(obj_key!("t"), true);
            });
        o.strs(obj_key!("l"), ["p", "q"]);
        o.close();
        let s = String::from_utf8(v).unwrap();
        assert_eq!(
            s,
            r#"{"a":"x\"y\\z\n\u0001é","n":-3,"o":{"t":true},"l":["p","q"]}"#
        );
        let _: serde_json::Value = serde_json::from_str(&s).unwrap();
    }
}
