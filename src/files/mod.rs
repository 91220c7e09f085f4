//! Files: whole-file reads and writes, JSON lines, and the aiofiles-style
//! async file object. The I/O runs on tokio's blocking threads; text is
//! decoded and encoded by CPython's codecs on the event-loop thread, so
//! `encoding`/`errors` mean exactly what they mean for `open()`.

mod aiofile;
mod dump;
mod jsonl;
mod parse;
mod topy;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::errors::{arg_type_error, Error, Result};
use crate::runtime::{future_into_py, Awaitable};

/// A path argument: `str` or `os.PathLike`, as text for error messages.
pub(crate) fn path_arg(func: &str, path: &Bound<'_, PyAny>) -> PyResult<String> {
    let p: PathBuf = path
        .extract()
        .map_err(|_| arg_type_error(func, "path", "a str or os.PathLike", path))?;
    Ok(p.into_os_string()
        .into_string()
        .unwrap_or_else(|s| s.to_string_lossy().into_owned()))
}

/// An I/O error on `path`, raised like `open()` raises it.
pub(crate) fn io_err(e: std::io::Error, path: &str) -> Error {
    Error::IoPath {
        source: e,
        path: path.to_owned(),
    }
}

/// `.gz` files are read and written through gzip.
pub(crate) fn is_gzip(path: &str) -> bool {
    path.len() >= 3 && path[path.len() - 3..].eq_ignore_ascii_case(".gz")
}

/// Where a write goes: the file itself, or (atomic) a temp file beside it
/// that is renamed over it once complete, so readers never see half a file.
pub(crate) struct AtomicTarget {
    path: PathBuf,
    tmp: Option<PathBuf>,
}

impl AtomicTarget {
    pub fn new(path: &str, atomic: bool) -> Self {
        let path = PathBuf::from(path);
        let tmp = atomic.then(|| {
            use std::sync::atomic::{AtomicU64, Ordering};
            static SEQ: AtomicU64 = AtomicU64::new(0);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp_name = format!(
                ".{name}.{}.{}.tmp",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            path.with_file_name(tmp_name)
        });
        AtomicTarget { path, tmp }
    }

    fn shown(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    pub fn open(&self, append: bool) -> Result<File> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true);
        if append {
            opts.append(true);
        } else {
            opts.truncate(true);
        }
        let at: &Path = self.tmp.as_deref().unwrap_or(&self.path);
        opts.open(at).map_err(|e| io_err(e, &self.shown()))
    }

    /// Makes the written file visible under its name (atomic: fsync, rename).
    pub fn commit(&self, file: File) -> Result<()> {
        if let Some(tmp) = &self.tmp {
            let done = file
                .sync_all()
                .and_then(|()| std::fs::rename(tmp, &self.path));
            if let Err(e) = done {
                let _ = std::fs::remove_file(tmp);
                return Err(io_err(e, &self.shown()));
            }
        }
        Ok(())
    }

    pub fn discard(&self) {
        if let Some(tmp) = &self.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Runs blocking file work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(panic) => Error::from_panic(panic),
            Err(e) => Error::Panic(e.to_string()),
        })?
}

/// Decodes bytes with a CPython codec: a new `str` or the codec's error
/// (UnicodeDecodeError, LookupError for an unknown encoding).
pub(crate) fn decode<'py>(
    py: Python<'py>,
    bytes: &[u8],
    encoding: &str,
    errors: &str,
) -> PyResult<Bound<'py, PyString>> {
    let enc = std::ffi::CString::new(encoding)
        .map_err(|_| Error::InvalidArgument("encoding must not contain NUL".into()))?;
    let err = std::ffi::CString::new(errors)
        .map_err(|_| Error::InvalidArgument("errors must not contain NUL".into()))?;
    // SAFETY: valid buffer and C strings; returns a new reference or null
    // with an exception set.
    unsafe {
        let s = ffi::PyUnicode_Decode(
            bytes.as_ptr().cast(),
            bytes.len() as ffi::Py_ssize_t,
            enc.as_ptr(),
            err.as_ptr(),
        );
        if s.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, s).cast_into_unchecked())
    }
}

/// `s.encode(encoding, errors)` as owned bytes.
pub(crate) fn encode(s: &Bound<'_, PyString>, encoding: &str, errors: &str) -> PyResult<Vec<u8>> {
    if encoding.eq_ignore_ascii_case("utf-8") && errors == "strict" {
        if let Ok(text) = s.to_str() {
            return Ok(text.as_bytes().to_vec());
        }
    }
    let b = s.call_method1(pyo3::intern!(s.py(), "encode"), (encoding, errors))?;
    Ok(b.cast::<PyBytes>()?.as_bytes().to_vec())
}

/// The text of a file, decoded on the event-loop thread.
struct Text {
    bytes: Vec<u8>,
    encoding: String,
    errors: String,
    /// Universal newlines: `\r\n` and `\r` become `\n` (newline=None).
    translate: bool,
}

impl<'py> IntoPyObject<'py> for Text {
    type Target = PyString;
    type Output = Bound<'py, PyString>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let s = decode(py, &self.bytes, &self.encoding, &self.errors)?;
        if self.translate && memchr::memchr(b'\r', &self.bytes).is_some() {
            let s = s.call_method1("replace", ("\r\n", "\n"))?;
            return Ok(s
                .call_method1("replace", ("\r", "\n"))?
                .cast_into::<PyString>()?);
        }
        Ok(s)
    }
}

/// Bytes handed to Python as `bytes` (one copy, on the loop thread).
struct Bytes(Vec<u8>);

impl<'py> IntoPyObject<'py> for Bytes {
    type Target = PyBytes;
    type Output = Bound<'py, PyBytes>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(PyBytes::new(py, &self.0))
    }
}

fn check_newline(func: &str, newline: Option<&str>) -> PyResult<()> {
    match newline {
        None | Some("" | "\n" | "\r" | "\r\n") => Ok(()),
        Some(other) => Err(Error::InvalidArgument(format!(
            "{func}(): illegal newline value: {other:?}"
        ))
        .into()),
    }
}

/// `await fastio.read_text(path, encoding="utf-8", errors="strict", newline=None)`.
#[pyfunction]
#[pyo3(signature = (path, encoding = "utf-8", errors = "strict", newline = None))]
fn read_text<'py>(
    py: Python<'py>,
    path: &Bound<'py, PyAny>,
    encoding: &str,
    errors: &str,
    newline: Option<&str>,
) -> PyResult<Bound<'py, Awaitable>> {
    let path = path_arg("read_text", path)?;
    check_newline("read_text", newline)?;
    let (encoding, errors) = (encoding.to_owned(), errors.to_owned());
    let translate = newline.is_none();
    future_into_py(py, async move {
        let bytes = blocking(move || std::fs::read(&path).map_err(|e| io_err(e, &path))).await?;
        Ok(Text {
            bytes,
            encoding,
            errors,
            translate,
        })
    })
}

/// `await fastio.read_bytes(path)`.
#[pyfunction]
fn read_bytes<'py>(py: Python<'py>, path: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Awaitable>> {
    let path = path_arg("read_bytes", path)?;
    future_into_py(py, async move {
        let bytes = blocking(move || std::fs::read(&path).map_err(|e| io_err(e, &path))).await?;
        Ok(Bytes(bytes))
    })
}

fn write_file(path: String, data: Vec<u8>, append: bool, atomic: bool) -> Result<()> {
    let target = AtomicTarget::new(&path, atomic);
    let mut file = target.open(append)?;
    if let Err(e) = file.write_all(&data) {
        target.discard();
        return Err(io_err(e, &path));
    }
    target.commit(file)
}

/// Text to bytes for writing: `\n` translated for newline="\r\n"/"\r", then encoded.
fn text_bytes(
    data: &Bound<'_, PyAny>,
    func: &str,
    encoding: &str,
    errors: &str,
    newline: Option<&str>,
) -> PyResult<(Vec<u8>, usize)> {
    check_newline(func, newline)?;
    let s = data
        .cast::<PyString>()
        .map_err(|_| arg_type_error(func, "data", "str", data))?;
    let chars = s.len()?;
    let bytes = match newline {
        Some(nl @ ("\r" | "\r\n")) => {
            let t = s.call_method1("replace", ("\n", nl))?;
            encode(t.cast::<PyString>()?, encoding, errors)?
        }
        _ => encode(s, encoding, errors)?,
    };
    Ok((bytes, chars))
}

/// `await fastio.write_text(path, data, encoding="utf-8", errors="strict",
/// newline=None, atomic=False)` -> number of characters written.
#[pyfunction]
#[pyo3(signature = (path, data, encoding = "utf-8", errors = "strict", newline = None, *, atomic = false))]
fn write_text<'py>(
    py: Python<'py>,
    path: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    encoding: &str,
    errors: &str,
    newline: Option<&str>,
    atomic: bool,
) -> PyResult<Bound<'py, Awaitable>> {
    let path = path_arg("write_text", path)?;
    let (bytes, chars) = text_bytes(data, "write_text", encoding, errors, newline)?;
    future_into_py(py, async move {
        blocking(move || write_file(path, bytes, false, atomic)).await?;
        Ok(chars)
    })
}

/// `await fastio.append_text(path, data, encoding="utf-8", errors="strict",
/// newline=None)` -> number of characters written.
#[pyfunction]
#[pyo3(signature = (path, data, encoding = "utf-8", errors = "strict", newline = None))]
fn append_text<'py>(
    py: Python<'py>,
    path: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    encoding: &str,
    errors: &str,
    newline: Option<&str>,
) -> PyResult<Bound<'py, Awaitable>> {
    let path = path_arg("append_text", path)?;
    let (bytes, chars) = text_bytes(data, "append_text", encoding, errors, newline)?;
    future_into_py(py, async move {
        blocking(move || write_file(path, bytes, true, false)).await?;
        Ok(chars)
    })
}

/// `await fastio.write_bytes(path, data, atomic=False)` -> number of bytes written.
#[pyfunction]
#[pyo3(signature = (path, data, *, atomic = false))]
fn write_bytes<'py>(
    py: Python<'py>,
    path: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    atomic: bool,
) -> PyResult<Bound<'py, Awaitable>> {
    let path = path_arg("write_bytes", path)?;
    // Any bytes-like object, as Path.write_bytes takes (memoryview(data)).
    let bytes: Vec<u8> = if let Ok(b) = data.cast::<PyBytes>() {
        b.as_bytes().to_vec()
    } else if data.is_instance_of::<PyString>() {
        return Err(arg_type_error(
            "write_bytes",
            "data",
            "a bytes-like object",
            data,
        ));
    } else {
        let mv = py
            .import("builtins")?
            .getattr("memoryview")?
            .call1((data,))
            .map_err(|_| arg_type_error("write_bytes", "data", "a bytes-like object", data))?;
        mv.call_method0("tobytes")?
            .cast::<PyBytes>()?
            .as_bytes()
            .to_vec()
    };
    let n = bytes.len();
    future_into_py(py, async move {
        blocking(move || write_file(path, bytes, false, atomic)).await?;
        Ok(n)
    })
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_text, m)?)?;
    m.add_function(wrap_pyfunction!(read_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(write_text, m)?)?;
    m.add_function(wrap_pyfunction!(write_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(append_text, m)?)?;
    jsonl::init_pymodule(m)?;
    aiofile::init_pymodule(m)?;
    Ok(())
}
