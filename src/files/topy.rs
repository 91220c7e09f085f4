//! Tape -> Python objects, on the event-loop thread. This is the part of
//! `read_jsonl` that cannot leave the GIL, so it builds objects through the C
//! API directly and reuses one interned `str` per repeated dict key.

use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyString};

use super::parse::{StrKind, Tape, Tok};

const KEY_SLOTS: usize = 1024;
const MAX_CACHED_KEY: usize = 64;

/// Direct-mapped cache of dict keys: records of a JSON-lines file repeat the
/// same keys, and one shared interned `str` per key saves an allocation and
/// makes dict lookups on them faster.
struct KeyCache {
    slots: Vec<Option<CachedKey>>,
}

/// A key's UTF-8 bytes and its interned `str`.
type CachedKey = (Box<[u8]>, Py<PyString>);

static KEYS: PyOnceLock<Mutex<KeyCache>> = PyOnceLock::new();

fn fx_hash(bytes: &[u8]) -> usize {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    (h ^ (h >> 29)) as usize
}

/// Builds Python objects from a tape. Holds the key cache while it works.
pub(crate) struct Builder<'t> {
    tape: &'t Tape,
    pos: usize,
}

type Obj = *mut ffi::PyObject;

impl<'t> Builder<'t> {
    pub fn new(tape: &'t Tape) -> Self {
        Builder { tape, pos: 0 }
    }

    /// Converts the next `n` top-level values into `list`'s slots
    /// `start..start + n` (a list made with `PyList_New`).
    pub fn fill_list(
        &mut self,
        py: Python<'_>,
        list: &Bound<'_, PyList>,
        start: usize,
        n: usize,
    ) -> PyResult<()> {
        let cache = KEYS.get_or_init(py, || {
            Mutex::new(KeyCache {
                slots: (0..KEY_SLOTS).map(|_| None).collect(),
            })
        });
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        for k in 0..n {
            // SAFETY: called with the GIL held; each object is either a new
            // reference handed to the list (which steals it) or null with a
            // Python error set.
            unsafe {
                let obj = self.value(py, &mut cache)?;
                ffi::PyList_SET_ITEM(list.as_ptr(), (start + k) as ffi::Py_ssize_t, obj);
            }
        }
        Ok(())
    }

    #[inline]
    fn text(&self, start: u32, len: u32) -> &'t [u8] {
        &self.tape.arena[start as usize..(start + len) as usize]
    }

    unsafe fn value(&mut self, py: Python<'_>, cache: &mut KeyCache) -> PyResult<Obj> {
        let tok = self.tape.toks[self.pos];
        self.pos += 1;
        let obj = match tok {
            Tok::Null => {
                let none = ffi::Py_None();
                ffi::Py_IncRef(none);
                none
            }
            Tok::True => {
                let t = ffi::Py_True();
                ffi::Py_IncRef(t);
                t
            }
            Tok::False => {
                let f = ffi::Py_False();
                ffi::Py_IncRef(f);
                f
            }
            Tok::Int(v) => ffi::PyLong_FromLongLong(v),
            Tok::Float(v) => ffi::PyFloat_FromDouble(v),
            Tok::BigInt(start, len) => {
                let mut digits = self.text(start, len).to_vec();
                digits.push(0);
                ffi::PyLong_FromString(digits.as_ptr().cast(), std::ptr::null_mut(), 10)
            }
            Tok::Str(start, len, kind) => make_str(self.text(start, len), kind),
            Tok::Array(n) => {
                let list = ffi::PyList_New(n as ffi::Py_ssize_t);
                if list.is_null() {
                    return Err(PyErr::fetch(py));
                }
                for i in 0..n {
                    match self.value(py, cache) {
                        Ok(item) => ffi::PyList_SET_ITEM(list, i as ffi::Py_ssize_t, item),
                        Err(e) => {
                            // The list's unset slots are NULL, which dealloc skips.
                            ffi::Py_DecRef(list);
                            return Err(e);
                        }
                    }
                }
                list
            }
            Tok::Object(n) => {
                let dict = ffi::PyDict_New();
                if dict.is_null() {
                    return Err(PyErr::fetch(py));
                }
                for _ in 0..n {
                    let res = self.key(py, cache).and_then(|key| {
                        let value = self.value(py, cache);
                        let out = value.and_then(|value| {
                            // Duplicate keys: the last value wins, in the first
                            // key's position, as with json.loads.
                            let rc = ffi::PyDict_SetItem(dict, key, value);
                            ffi::Py_DecRef(value);
                            if rc == 0 {
                                Ok(())
                            } else {
                                Err(PyErr::fetch(py))
                            }
                        });
                        ffi::Py_DecRef(key);
                        out
                    });
                    if let Err(e) = res {
                        ffi::Py_DecRef(dict);
                        return Err(e);
                    }
                }
                dict
            }
        };
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(obj)
    }

    unsafe fn key(&mut self, py: Python<'_>, cache: &mut KeyCache) -> PyResult<Obj> {
        let Tok::Str(start, len, kind) = self.tape.toks[self.pos] else {
            unreachable!("the parser only puts strings in key position");
        };
        self.pos += 1;
        let bytes = self.text(start, len);
        if bytes.len() > MAX_CACHED_KEY || kind == StrKind::Surrogates {
            let obj = make_str(bytes, kind);
            return if obj.is_null() {
                Err(PyErr::fetch(py))
            } else {
                Ok(obj)
            };
        }
        let slot = &mut cache.slots[fx_hash(bytes) % KEY_SLOTS];
        if let Some((k, s)) = slot {
            if **k == *bytes {
                let p = s.as_ptr();
                ffi::Py_IncRef(p);
                return Ok(p);
            }
        }
        let obj = make_str(bytes, kind);
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        let mut interned = obj;
        ffi::PyUnicode_InternInPlace(&mut interned);
        let s: Py<PyString> = Bound::from_borrowed_ptr(py, interned)
            .cast_into_unchecked()
            .unbind();
        *slot = Some((bytes.into(), s));
        Ok(interned)
    }
}

/// A new `str` from text the parser produced (valid UTF-8, or surrogatepass
/// bytes for `StrKind::Surrogates`). Null with an error set on failure.
unsafe fn make_str(bytes: &[u8], kind: StrKind) -> Obj {
    match kind {
        #[cfg(not(feature = "abi3"))]
        StrKind::Ascii => {
            let s = ffi::PyUnicode_New(bytes.len() as ffi::Py_ssize_t, 127);
            if !s.is_null() {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    ffi::PyUnicode_DATA(s).cast::<u8>(),
                    bytes.len(),
                );
            }
            s
        }
        StrKind::Surrogates => ffi::PyUnicode_DecodeUTF8(
            bytes.as_ptr().cast(),
            bytes.len() as ffi::Py_ssize_t,
            c"surrogatepass".as_ptr(),
        ),
        _ => {
            ffi::PyUnicode_FromStringAndSize(bytes.as_ptr().cast(), bytes.len() as ffi::Py_ssize_t)
        }
    }
}

/// Runs `f` with Python's cyclic garbage collector paused (if it was on).
/// Parsed JSON is acyclic, so no collectable garbage appears meanwhile, but
/// building a batch of containers would otherwise trigger a collection every
/// few hundred of them, each scanning the records built so far (measured:
/// over half the conversion time for batches of thousands of records).
pub(crate) fn without_gc<T>(py: Python<'_>, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    static GC: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let gc = GC
        .get_or_try_init(py, || py.import("gc").map(Bound::unbind))?
        .bind(py);
    let was_enabled = gc
        .call_method0(pyo3::intern!(py, "isenabled"))?
        .is_truthy()?;
    if !was_enabled {
        return f();
    }
    gc.call_method0(pyo3::intern!(py, "disable"))?;
    // Re-enabled on every way out, a panic included.
    struct Resume<'a, 'py>(&'a Bound<'py, PyModule>);
    impl Drop for Resume<'_, '_> {
        fn drop(&mut self) {
            let py = self.0.py();
            if let Err(e) = self.0.call_method0(pyo3::intern!(py, "enable")) {
                e.write_unraisable(py, None);
            }
        }
    }
    let _resume = Resume(gc);
    f()
}

/// A new list of `n` empty slots, to be filled with `Builder::fill_list`.
pub(crate) fn new_list(py: Python<'_>, n: usize) -> PyResult<Bound<'_, PyList>> {
    // SAFETY: PyList_New returns a new reference or null with an error set.
    unsafe {
        let list = ffi::PyList_New(n as ffi::Py_ssize_t);
        if list.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, list).cast_into_unchecked())
    }
}
