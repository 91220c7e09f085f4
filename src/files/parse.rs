//! A JSON parser that runs without the GIL and produces a flat tape, which
//! `topy` turns into Python objects on the event-loop thread.
//!
//! It follows Python's `json.loads` rather than RFC 8259 where they differ,
//! because users compare against `json.loads`: `NaN`, `Infinity` and
//! `-Infinity` are accepted, integers of any size stay exact (kept as text and
//! turned into a Python int with `int(str)`), lone `\uD800` surrogate escapes
//! are kept (decoded with `surrogatepass`), and the error messages use the
//! `json` module's wording.

/// One JSON value on the tape. Containers are followed by their children
/// (objects: key, value, key, value, ...).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Tok {
    Null,
    True,
    False,
    Int(i64),
    /// An integer beyond i64: its digits are `arena[start..start + len]`.
    BigInt(u32, u32),
    Float(f64),
    /// A string in `arena[start..start + len]`.
    Str(u32, u32, StrKind),
    /// An array with this many elements.
    Array(u32),
    /// An object with this many key/value pairs.
    Object(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StrKind {
    Ascii,
    Utf8,
    /// Contains a lone surrogate from a `\uD8xx` escape, encoded as
    /// surrogatepass bytes (what CPython's codec accepts).
    Surrogates,
}

/// A parse error: the `json` module's message and the byte offset in the line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub msg: String,
    pub pos: usize,
}

/// Deeper nesting than this is an error (json.loads raises RecursionError at
/// about the same depth).
const MAX_DEPTH: usize = 1000;

/// Parsed values, appended one after another.
#[derive(Default, Debug)]
pub(crate) struct Tape {
    pub toks: Vec<Tok>,
    pub arena: Vec<u8>,
}

impl Tape {
    /// Parses one complete JSON document (`line`, already valid UTF-8) onto
    /// the tape. On error the tape is left as it was.
    pub fn parse_doc(&mut self, line: &[u8]) -> Result<(), SyntaxError> {
        let toks = self.toks.len();
        let arena = self.arena.len();
        let mut p = Parser {
            s: line,
            i: 0,
            tape: self,
        };
        let res = p.document();
        if res.is_err() {
            self.toks.truncate(toks);
            self.arena.truncate(arena);
        }
        res
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    tape: &'a mut Tape,
}

fn err<T>(msg: impl Into<String>, pos: usize) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        msg: msg.into(),
        pos,
    })
}

impl Parser<'_> {
    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&c) = self.s.get(self.i) {
            if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn document(&mut self) -> Result<(), SyntaxError> {
        self.skip_ws();
        self.value(0)?;
        self.skip_ws();
        if self.i != self.s.len() {
            return err("Extra data", self.i);
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<(), SyntaxError> {
        if depth > MAX_DEPTH {
            return err("Nesting too deep", self.i);
        }
        let Some(&c) = self.s.get(self.i) else {
            return err("Expecting value", self.i);
        };
        match c {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => {
                let tok = self.string()?;
                self.tape.toks.push(tok);
                Ok(())
            }
            b'-' | b'0'..=b'9' => self.number(),
            b'n' => self.literal(b"null", Tok::Null),
            b't' => self.literal(b"true", Tok::True),
            b'f' => self.literal(b"false", Tok::False),
            b'N' => self.literal(b"NaN", Tok::Float(f64::NAN)),
            b'I' => self.literal(b"Infinity", Tok::Float(f64::INFINITY)),
            _ => err("Expecting value", self.i),
        }
    }

    fn literal(&mut self, word: &[u8], tok: Tok) -> Result<(), SyntaxError> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            self.tape.toks.push(tok);
            Ok(())
        } else {
            err("Expecting value", self.i)
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), SyntaxError> {
        let at = self.tape.toks.len();
        self.tape.toks.push(Tok::Object(0));
        self.i += 1;
        self.skip_ws();
        let mut n: u32 = 0;
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            if self.s.get(self.i) != Some(&b'"') {
                return err("Expecting property name enclosed in double quotes", self.i);
            }
            let key = self.string()?;
            self.tape.toks.push(key);
            self.skip_ws();
            if self.s.get(self.i) != Some(&b':') {
                return err("Expecting ':' delimiter", self.i);
            }
            self.i += 1;
            self.skip_ws();
            self.value(depth + 1)?;
            n += 1;
            self.skip_ws();
            match self.s.get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return err("Expecting ',' delimiter", self.i),
            }
        }
        self.tape.toks[at] = Tok::Object(n);
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<(), SyntaxError> {
        let at = self.tape.toks.len();
        self.tape.toks.push(Tok::Array(0));
        self.i += 1;
        self.skip_ws();
        let mut n: u32 = 0;
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            n += 1;
            self.skip_ws();
            match self.s.get(self.i) {
                Some(b',') => {
                    self.i += 1;
                    self.skip_ws();
                }
                Some(b']') => {
                    self.i += 1;
                    break;
                }
                _ => return err("Expecting ',' delimiter", self.i),
            }
        }
        self.tape.toks[at] = Tok::Array(n);
        Ok(())
    }

    fn number(&mut self) -> Result<(), SyntaxError> {
        let s = self.s;
        let start = self.i;
        let mut i = start;
        if s[i] == b'-' {
            i += 1;
            if s[i..].starts_with(b"Infinity") {
                self.i = i + 8;
                self.tape.toks.push(Tok::Float(f64::NEG_INFINITY));
                return Ok(());
            }
        }
        let int_start = i;
        match s.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while matches!(s.get(i), Some(b'0'..=b'9')) {
                    i += 1;
                }
            }
            _ => return err("Expecting value", start),
        }
        let int_end = i;
        let mut is_float = false;
        // A fraction or exponent only counts when digits follow, as in the
        // json module's regex; otherwise the number ends before it.
        if s.get(i) == Some(&b'.') && matches!(s.get(i + 1), Some(b'0'..=b'9')) {
            is_float = true;
            i += 1;
            while matches!(s.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        if matches!(s.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(s.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if matches!(s.get(j), Some(b'0'..=b'9')) {
                is_float = true;
                while matches!(s.get(j), Some(b'0'..=b'9')) {
                    j += 1;
                }
                i = j;
            }
        }
        self.i = i;
        // SAFETY: the bytes matched are ASCII digits, sign, '.', 'e', '+'.
        let text = unsafe { std::str::from_utf8_unchecked(&s[start..i]) };
        if is_float {
            // Rust's parser is correctly rounded, like Python's float(str).
            let v: f64 = text.parse().map_err(|_| SyntaxError {
                msg: "Expecting value".into(),
                pos: start,
            })?;
            self.tape.toks.push(Tok::Float(v));
        } else if int_end - int_start <= 18 {
            let mut v: i64 = 0;
            for &d in &s[int_start..int_end] {
                v = v * 10 + i64::from(d - b'0');
            }
            if start != int_start {
                v = -v;
            }
            self.tape.toks.push(Tok::Int(v));
        } else if let Ok(v) = text.parse::<i64>() {
            self.tape.toks.push(Tok::Int(v));
        } else {
            let at = self.tape.arena.len() as u32;
            self.tape.arena.extend_from_slice(text.as_bytes());
            self.tape.toks.push(Tok::BigInt(at, text.len() as u32));
        }
        Ok(())
    }

    /// Parses a string starting at the opening quote, copying its unescaped
    /// text to the arena.
    fn string(&mut self) -> Result<Tok, SyntaxError> {
        let s = self.s;
        let begin = self.i;
        let mut i = begin + 1;
        let at = self.tape.arena.len();
        let mut ascii = true;
        let mut surrogates = false;
        loop {
            // Copy the run up to the next quote, backslash or control character.
            let run_start = i;
            while let Some(&c) = s.get(i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                ascii &= c < 0x80;
                i += 1;
            }
            self.tape.arena.extend_from_slice(&s[run_start..i]);
            match s.get(i) {
                None => return err("Unterminated string starting at", begin),
                Some(b'"') => {
                    i += 1;
                    break;
                }
                Some(b'\\') => {
                    let esc = i;
                    let Some(&e) = s.get(i + 1) else {
                        return err("Unterminated string starting at", begin);
                    };
                    i += 2;
                    let byte = match e {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let mut cp = hex4(s, i).ok_or(SyntaxError {
                                msg: "Invalid \\uXXXX escape".into(),
                                pos: esc + 1,
                            })?;
                            i += 4;
                            if (0xD800..0xDC00).contains(&cp)
                                && s.get(i) == Some(&b'\\')
                                && s.get(i + 1) == Some(&b'u')
                            {
                                if let Some(lo) = hex4(s, i + 2) {
                                    if (0xDC00..0xE000).contains(&lo) {
                                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                        i += 6;
                                    }
                                }
                            }
                            if cp >= 0x80 {
                                ascii = false;
                            }
                            if (0xD800..0xE000).contains(&cp) {
                                surrogates = true;
                                push_surrogate(&mut self.tape.arena, cp);
                            } else {
                                let ch = char::from_u32(cp).expect("not a surrogate");
                                let mut buf = [0u8; 4];
                                self.tape
                                    .arena
                                    .extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            }
                            continue;
                        }
                        _ => return err("Invalid \\escape", esc),
                    };
                    self.tape.arena.push(byte);
                }
                Some(_) => return err("Invalid control character at", i),
            }
        }
        self.i = i;
        let kind = if surrogates {
            StrKind::Surrogates
        } else if ascii {
            StrKind::Ascii
        } else {
            StrKind::Utf8
        };
        let len = self.tape.arena.len() - at;
        Ok(Tok::Str(at as u32, len as u32, kind))
    }
}

fn hex4(s: &[u8], i: usize) -> Option<u32> {
    let digits = s.get(i..i + 4)?;
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + (d as char).to_digit(16)?;
    }
    Some(v)
}

/// A lone surrogate as the 3 bytes CPython's `surrogatepass` UTF-8 decoder takes.
fn push_surrogate(out: &mut Vec<u8>, cp: u32) {
    out.push(0xE0 | (cp >> 12) as u8);
    out.push(0x80 | ((cp >> 6) & 0x3F) as u8);
    out.push(0x80 | (cp & 0x3F) as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Tape, SyntaxError> {
        let mut t = Tape::default();
        t.parse_doc(s.as_bytes()).map(|()| t)
    }

    #[test]
    fn scalars_and_containers() {
        let t = parse(r#" {"a": [1, -2.5, true, null], "b": "x\n\u00e9"} "#).unwrap();
        assert_eq!(t.toks[0], Tok::Object(2));
        assert_eq!(t.toks[2], Tok::Array(4));
        assert_eq!(t.toks[3], Tok::Int(1));
        assert_eq!(t.toks[4], Tok::Float(-2.5));
        assert!(matches!(t.toks[8], Tok::Str(_, _, StrKind::Utf8)));
        assert_eq!(&t.arena[2..], "x\né".as_bytes());
    }

    #[test]
    fn big_ints_stay_text() {
        let t = parse("123456789012345678901234567890").unwrap();
        assert_eq!(t.toks[0], Tok::BigInt(0, 30));
        let t = parse("-9223372036854775808").unwrap();
        assert_eq!(t.toks[0], Tok::Int(i64::MIN));
    }

    #[test]
    fn errors_use_json_module_wording() {
        assert_eq!(
            parse("{\"a\" 1}").unwrap_err().msg,
            "Expecting ':' delimiter"
        );
        assert_eq!(parse("[1,]").unwrap_err().msg, "Expecting value");
        assert_eq!(
            parse("1 2").unwrap_err(),
            SyntaxError {
                msg: "Extra data".into(),
                pos: 2
            }
        );
        assert_eq!(
            parse("\"abc").unwrap_err().msg,
            "Unterminated string starting at"
        );
        assert_eq!(parse("").unwrap_err().msg, "Expecting value");
    }

    #[test]
    fn surrogate_pairs_and_lone_surrogates() {
        let t = parse(r#""\ud83d\ude00""#).unwrap();
        assert_eq!(&t.arena[..], "😀".as_bytes());
        let t = parse(r#""\ud800x""#).unwrap();
        assert!(matches!(t.toks[0], Tok::Str(_, _, StrKind::Surrogates)));
    }
}
