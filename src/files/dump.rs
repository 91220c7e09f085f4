//! Python objects -> JSON text, byte for byte what `json.dumps(obj)` gives
//! with its defaults (`", "` / `": "` separators, `ensure_ascii=True`, NaN
//! and Infinity allowed), for every type `json.dumps` accepts by default.

use pyo3::exceptions::{PyRecursionError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// json.dumps reaches the recursion limit at about this depth.
const MAX_DEPTH: usize = 1000;

pub(crate) struct Dumper {
    pub out: Vec<u8>,
    ensure_ascii: bool,
    /// Containers being serialized, to tell a cycle from deep nesting.
    stack: Vec<*mut ffi::PyObject>,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Dumper {
    pub fn new(ensure_ascii: bool) -> Self {
        Dumper {
            out: Vec::with_capacity(1 << 16),
            ensure_ascii,
            stack: Vec::new(),
        }
    }

    pub fn dump(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = obj.py();
        let ptr = obj.as_ptr();
        // SAFETY: type checks on a live object with the GIL held.
        unsafe {
            if ptr == ffi::Py_None() {
                self.out.extend_from_slice(b"null");
            } else if ptr == ffi::Py_True() {
                self.out.extend_from_slice(b"true");
            } else if ptr == ffi::Py_False() {
                self.out.extend_from_slice(b"false");
            } else if ffi::PyUnicode_CheckExact(ptr) != 0 {
                self.string(obj.cast_unchecked::<PyString>())?;
            } else if ffi::PyLong_CheckExact(ptr) != 0 {
                self.int(obj)?;
            } else if ffi::PyFloat_CheckExact(ptr) != 0 {
                self.float(ffi::PyFloat_AS_DOUBLE(ptr));
            } else if ffi::PyDict_CheckExact(ptr) != 0 {
                self.dict(obj.cast_unchecked::<PyDict>())?;
            } else if ffi::PyList_CheckExact(ptr) != 0 || ffi::PyTuple_CheckExact(ptr) != 0 {
                self.sequence(obj)?;
            } else {
                // Subclasses, in json.encoder's order of checks.
                if let Ok(s) = obj.cast::<PyString>() {
                    self.string(s)?;
                } else if obj.is_instance_of::<PyInt>() {
                    self.int(obj)?;
                } else if let Ok(f) = obj.cast::<PyFloat>() {
                    self.float(f.value());
                } else if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
                    self.sequence(obj)?;
                } else if let Ok(d) = obj.cast::<PyDict>() {
                    self.dict(d)?;
                } else {
                    let name = obj.get_type().name()?;
                    return Err(PyTypeError::new_err(format!(
                        "Object of type {name} is not JSON serializable"
                    )));
                }
            }
        }
        let _ = py;
        Ok(())
    }

    fn enter(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.stack.len() >= MAX_DEPTH {
            let ptr = obj.as_ptr();
            if self.stack.contains(&ptr) {
                return Err(PyValueError::new_err("Circular reference detected"));
            }
            return Err(PyRecursionError::new_err(
                "maximum recursion depth exceeded while encoding a JSON object",
            ));
        }
        self.stack.push(obj.as_ptr());
        Ok(())
    }

    fn int(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(v) = obj.extract::<i64>() {
            self.out
                .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        } else {
            // int.__repr__, as json.encoder does (also for int subclasses).
            let s = int_repr(obj)?;
            self.out.extend_from_slice(s.to_str()?.as_bytes());
        }
        Ok(())
    }

    fn float(&mut self, v: f64) {
        if v.is_nan() {
            self.out.extend_from_slice(b"NaN");
        } else if v.is_infinite() {
            self.out
                .extend_from_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
        } else {
            float_repr(v, &mut self.out);
        }
    }

    fn sequence(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.enter(obj)?;
        self.out.push(b'[');
        let mut first = true;
        if let Ok(list) = obj.cast::<PyList>() {
            // Index each time: the list may change under a subclass's hooks.
            let mut i = 0;
            while i < list.len() {
                if !first {
                    self.out.extend_from_slice(b", ");
                }
                first = false;
                self.dump(&list.get_item(i)?)?;
                i += 1;
            }
        } else {
            for item in obj.cast::<PyTuple>()?.iter() {
                if !first {
                    self.out.extend_from_slice(b", ");
                }
                first = false;
                self.dump(&item)?;
            }
        }
        self.out.push(b']');
        self.stack.pop();
        Ok(())
    }

    fn dict(&mut self, dict: &Bound<'_, PyDict>) -> PyResult<()> {
        self.enter(dict.as_any())?;
        self.out.push(b'{');
        let mut first = true;
        for (k, v) in dict.iter() {
            if !first {
                self.out.extend_from_slice(b", ");
            }
            first = false;
            self.key(&k)?;
            self.out.extend_from_slice(b": ");
            self.dump(&v)?;
        }
        self.out.push(b'}');
        self.stack.pop();
        Ok(())
    }

    /// Keys: str as is; float, int, bool and None as json.dumps turns them into strings.
    fn key(&mut self, k: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(s) = k.cast::<PyString>() {
            return self.string(s);
        }
        let mut tmp = Dumper::new(self.ensure_ascii);
        if k.is_none() || k.is_instance_of::<pyo3::types::PyBool>() {
            tmp.dump(k)?;
        } else if k.is_instance_of::<PyFloat>() {
            tmp.float(k.cast::<PyFloat>()?.value());
        } else if k.is_instance_of::<PyInt>() {
            tmp.int(k)?;
        } else {
            let name = k.get_type().name()?;
            return Err(PyTypeError::new_err(format!(
                "keys must be str, int, float, bool or None, not {name}"
            )));
        }
        self.out.push(b'"');
        self.out.extend_from_slice(&tmp.out);
        self.out.push(b'"');
        Ok(())
    }

    fn string(&mut self, s: &Bound<'_, PyString>) -> PyResult<()> {
        let text = match s.to_str() {
            Ok(t) => t,
            Err(_) => {
                // Lone surrogates: not UTF-8; let the json module spell them.
                static ESC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
                let py = s.py();
                let name = if self.ensure_ascii {
                    "encode_basestring_ascii"
                } else {
                    "encode_basestring"
                };
                let f = ESC.import(py, "json.encoder", name)?;
                let f = if self.ensure_ascii {
                    f.clone()
                } else {
                    py.import("json.encoder")?.getattr(name)?
                };
                let quoted = f.call1((s,))?;
                let quoted = quoted.cast::<PyString>()?;
                // ensure_ascii=False keeps the surrogates; they cannot be written as UTF-8.
                let bytes = quoted
                    .call_method1("encode", ("utf-8", "surrogatepass"))?
                    .extract::<Vec<u8>>()?;
                self.out.extend_from_slice(&bytes);
                return Ok(());
            }
        };
        self.out.push(b'"');
        let bytes = text.as_bytes();
        let mut run = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let plain = if self.ensure_ascii {
                (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\'
            } else {
                b >= 0x20 && b != b'"' && b != b'\\'
            };
            if plain {
                continue;
            }
            if b >= 0x80 {
                // ensure_ascii: escape whole characters, at their first byte.
                if b & 0xC0 == 0x80 {
                    self.out.extend_from_slice(&bytes[run..i]);
                    run = i + 1;
                    continue;
                }
                self.out.extend_from_slice(&bytes[run..i]);
                let ch = text[i..].chars().next().expect("char boundary");
                let mut units = [0u16; 2];
                for u in ch.encode_utf16(&mut units) {
                    self.u_escape(*u);
                }
                run = i + 1;
                continue;
            }
            self.out.extend_from_slice(&bytes[run..i]);
            match b {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                0x08 => self.out.extend_from_slice(b"\\b"),
                0x0c => self.out.extend_from_slice(b"\\f"),
                other => self.u_escape(u16::from(other)),
            }
            run = i + 1;
        }
        self.out.extend_from_slice(&bytes[run..]);
        self.out.push(b'"');
        Ok(())
    }

    fn u_escape(&mut self, u: u16) {
        self.out.extend_from_slice(&[
            b'\\',
            b'u',
            HEX[(u >> 12) as usize & 15],
            HEX[(u >> 8) as usize & 15],
            HEX[(u >> 4) as usize & 15],
            HEX[u as usize & 15],
        ]);
    }
}

fn int_repr<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
    let py = obj.py();
    let int_type = py.get_type::<PyInt>();
    int_type
        .getattr("__repr__")?
        .call1((obj,))?
        .cast_into::<PyString>()
        .map_err(Into::into)
}

/// Python's `repr(float)`: the shortest digits that round-trip (Rust finds
/// the same ones), laid out the way Python does: positional for exponents in
/// -4..16, else `d.ddde+XX`.
pub(crate) fn float_repr(v: f64, out: &mut Vec<u8>) {
    let sci = format!("{v:e}"); // e.g. "-1.2345e-7", "1e16", "0e0"
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if neg {
        out.push(b'-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(digits.as_bytes());
        } else {
            let point = exp as usize + 1;
            if digits.len() <= point {
                out.extend_from_slice(digits.as_bytes());
                out.extend(std::iter::repeat_n(b'0', point - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits.as_bytes()[..point]);
                out.push(b'.');
                out.extend_from_slice(&digits.as_bytes()[point..]);
            }
        }
    } else {
        out.push(digits.as_bytes()[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits.as_bytes()[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(e).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::float_repr;

    fn r(v: f64) -> String {
        let mut out = Vec::new();
        float_repr(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn float_repr_matches_python() {
        assert_eq!(r(0.0), "0.0");
        assert_eq!(r(-0.0), "-0.0");
        assert_eq!(r(1.5), "1.5");
        assert_eq!(r(0.1), "0.1");
        assert_eq!(r(1e16), "1e+16");
        assert_eq!(r(1234567890123456.0), "1234567890123456.0");
        assert_eq!(r(0.0001), "0.0001");
        assert_eq!(r(0.00001), "1e-05");
        assert_eq!(r(1.5e-7), "1.5e-07");
        assert_eq!(r(1.7976931348623157e308), "1.7976931348623157e+308");
        assert_eq!(r(123.456), "123.456");
        assert_eq!(r(5e-324), "5e-324");
    }
}
