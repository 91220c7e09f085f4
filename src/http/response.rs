//! `fastio.Response` and `fastio.Headers`. A Response keeps the body as Rust
//! bytes until `.content`, `.text` or `.json()` asks for it, so fetch_all
//! builds its result list without copying any body into Python.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pyo3::exceptions::{PyKeyError, PyStopAsyncIteration};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use pyo3::IntoPyObjectExt;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::Version;

use crate::errors::{Error, HttpErrorKind, Result};

/// A finished response, owned by Rust (cheap to clone: the body and headers
/// are shared).
#[derive(Debug, Clone)]
pub struct ResponseData {
    pub status: u16,
    pub version: Version,
    pub url: Arc<str>,
    pub headers: Arc<HeaderMap>,
    pub body: Bytes,
    /// Set when `body` lives in a Python `bytes` object (large bodies of
    /// known length): `.content` then hands out that object, no copy.
    pub py_body: Option<Arc<PyBody>>,
    pub elapsed: Duration,
    pub from_cache: bool,
}

/// A response body read straight into a Python `bytes` object.
///
/// Large bodies (H3: 200 x 1 MB) cost two copies the other way: hyper's
/// chunks into one Rust buffer, then that buffer into a new `bytes` for
/// `.content`, with both alive. Here the `bytes` object is allocated once the
/// length is known (one short attach to Python on the tokio thread), the
/// chunks are copied into it without the GIL, and `.content` returns it.
pub struct PyBody {
    obj: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: `ptr` points into `obj`'s buffer, which lives as long as `obj` and
// is never written after the PyBody is built (PyBodyWriter::finish); `obj`
// itself is only touched while attached to Python (Py<T> is Send + Sync).
unsafe impl Send for PyBody {}
unsafe impl Sync for PyBody {}

impl std::fmt::Debug for PyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PyBody({} bytes)", self.len)
    }
}

impl PyBody {
    /// The `bytes` object holding the body.
    pub fn object(&self, py: Python<'_>) -> Py<PyBytes> {
        self.obj.clone_ref(py)
    }
}

/// Lets a [`Bytes`] share a [`PyBody`]'s buffer, so every reader of
/// `ResponseData::body` (json, text, the cache) works unchanged.
struct PyBodyOwner(Arc<PyBody>);

impl AsRef<[u8]> for PyBodyOwner {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see PyBody; the buffer is `len` initialised bytes, immutable.
        unsafe { std::slice::from_raw_parts(self.0.ptr, self.0.len) }
    }
}

/// Fills a new `bytes` object of a known length, chunk by chunk, detached
/// from Python. Nothing outside the writer sees the object until `finish`.
pub struct PyBodyWriter {
    obj: Py<PyBytes>,
    ptr: *mut u8,
    len: usize,
    filled: usize,
}

// SAFETY: the writer owns the only reference to `obj` and its buffer.
unsafe impl Send for PyBodyWriter {}

impl PyBodyWriter {
    /// A `bytes` object of `len` uninitialised bytes; None when Python is
    /// not available (finalizing) or the allocation fails.
    pub fn new(len: usize) -> Option<Self> {
        let size = isize::try_from(len).ok()?;
        Python::try_attach(|py| {
            // SAFETY: a NULL source asks CPython for an uninitialised buffer
            // of `size` bytes; the new reference is owned by `obj`.
            unsafe {
                let raw = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
                if raw.is_null() {
                    PyErr::fetch(py); // MemoryError: fall back to a Rust buffer
                    return None;
                }
                let ptr = pyo3::ffi::PyBytes_AsString(raw).cast::<u8>();
                let obj = Bound::from_owned_ptr(py, raw)
                    .cast_into_unchecked::<PyBytes>()
                    .unbind();
                Some(PyBodyWriter {
                    obj,
                    ptr,
                    len,
                    filled: 0,
                })
            }
        })
        .flatten()
    }

    /// Appends `chunk`; false (nothing written) if it would overflow.
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        if chunk.len() > self.len - self.filled {
            return false;
        }
        // SAFETY: in bounds (checked above); the buffer is ours alone.
        unsafe {
            std::ptr::copy_nonoverlapping(chunk.as_ptr(), self.ptr.add(self.filled), chunk.len());
        }
        self.filled += chunk.len();
        true
    }

    /// The part not written yet, for a read straight into the object.
    pub fn spare(&mut self) -> &mut [std::mem::MaybeUninit<u8>] {
        // SAFETY: `filled <= len` and the buffer is ours alone; the slice is
        // handed out as uninitialised memory.
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.add(self.filled).cast(), self.len - self.filled)
        }
    }

    /// Counts `n` more bytes as written.
    ///
    /// # Safety
    /// The first `n` bytes of [`spare`](Self::spare) must have been initialised.
    pub unsafe fn advance(&mut self, n: usize) {
        assert!(
            n <= self.len - self.filled,
            "advance past the end of the body"
        );
        self.filled += n;
    }

    /// The bytes written so far.
    pub fn filled(&self) -> &[u8] {
        // SAFETY: the first `filled` bytes were written by `push`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.filled) }
    }

    /// The body, if exactly `len` bytes were written.
    pub fn finish(self) -> std::result::Result<(Bytes, Arc<PyBody>), Self> {
        if self.filled != self.len {
            return Err(self);
        }
        let body = Arc::new(PyBody {
            obj: self.obj,
            ptr: self.ptr,
            len: self.len,
        });
        Ok((Bytes::from_owner(PyBodyOwner(Arc::clone(&body))), body))
    }
}

pub fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}

pub fn reason_of(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// The charset named in a Content-Type header, if any.
pub fn charset_of(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_ascii_lowercase())
    })
}

/// Decodes a body with `charset` (UTF-8 when absent or unknown), replacing
/// undecodable bytes.
pub fn decode_text(body: &[u8], charset: Option<&str>) -> String {
    let enc = charset
        .and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    if enc == encoding_rs::UTF_8 {
        return String::from_utf8_lossy(body).into_owned();
    }
    enc.decode(body).0.into_owned()
}

/// A serde_json value as Python objects.
pub fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_bound_py_any(py)?,
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_bound_py_any(py)?
            } else if let Some(u) = n.as_u64() {
                u.into_bound_py_any(py)?
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py)?
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let d = PyDict::new(py);
            for (k, item) in map {
                d.set_item(PyString::new(py, k), json_to_py(py, item)?)?;
            }
            d.into_any()
        }
    })
}

/// Parses JSON in Rust (without the GIL for large bodies) into Python objects.
pub fn parse_json<'py>(py: Python<'py>, body: &[u8], url: &str) -> PyResult<Bound<'py, PyAny>> {
    let parse = || serde_json::from_slice::<serde_json::Value>(body);
    let value = if body.len() > 64 * 1024 {
        py.detach(parse)
    } else {
        parse()
    }
    .map_err(|e| {
        Error::http(
            HttpErrorKind::Decoding,
            format!("invalid JSON in the response from {url}: {e}"),
        )
    })?;
    json_to_py(py, &value)
}

/// Response headers: case-insensitive, several values per name kept.
/// `h[name]` is the first value; `get_all(name)` every one.
#[pyclass(frozen, module = "fastio._fastio", mapping)]
pub struct Headers {
    map: Arc<HeaderMap>,
}

impl Headers {
    pub fn new(map: Arc<HeaderMap>) -> Self {
        Headers { map }
    }
}

fn value_str(v: &reqwest::header::HeaderValue) -> String {
    match v.to_str() {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
    }
}

const SENSITIVE: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

#[pymethods]
impl Headers {
    fn __getitem__(&self, key: &str) -> PyResult<String> {
        self.map
            .get(key)
            .map(value_str)
            .ok_or_else(|| PyKeyError::new_err(key.to_owned()))
    }

    #[pyo3(signature = (key, default = None))]
    fn get(&self, py: Python<'_>, key: &str, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match self.map.get(key) {
            Some(v) => value_str(v).into_py_any(py),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// Every value of `key`, in order (empty if absent).
    fn get_all(&self, key: &str) -> Vec<String> {
        self.map.get_all(key).iter().map(value_str).collect()
    }

    /// aiohttp's spelling of get_all (KeyError when absent unless a default is given).
    #[pyo3(signature = (key, default = None))]
    fn getall(&self, py: Python<'_>, key: &str, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let all = self.get_all(key);
        if all.is_empty() {
            return default.ok_or_else(|| PyKeyError::new_err(key.to_owned()));
        }
        all.into_py_any(py)
    }

    /// Header names (lower-case), once per value.
    fn keys(&self) -> Vec<String> {
        self.map
            .iter()
            .map(|(k, _)| k.as_str().to_owned())
            .collect()
    }

    fn values(&self) -> Vec<String> {
        self.map.iter().map(|(_, v)| value_str(v)).collect()
    }

    /// (name, value) pairs, a repeated header once per value.
    fn items(&self) -> Vec<(String, String)> {
        self.map
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), value_str(v)))
            .collect()
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> bool {
        key.extract::<&str>()
            .map(|k| self.map.contains_key(k))
            .unwrap_or(false)
    }

    fn __len__(&self) -> usize {
        self.map.len()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(PyList::new(py, self.keys())?
            .try_iter()?
            .into_any()
            .unbind())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        if let Ok(o) = other.cast::<Headers>() {
            return Ok(*o.get().map == *self.map);
        }
        if let Ok(d) = other.cast::<PyDict>() {
            if d.len() != self.map.keys_len() {
                return Ok(false);
            }
            for (k, v) in d.iter() {
                let (Ok(k), Ok(v)) = (k.extract::<String>(), v.extract::<String>()) else {
                    return Ok(false);
                };
                if self.map.get(k.as_str()).map(value_str).as_deref() != Some(v.as_str()) {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let items: Vec<String> = self
            .map
            .iter()
            .map(|(k, v)| {
                let shown = if SENSITIVE.contains(&k.as_str()) {
                    "[redacted]".to_owned()
                } else {
                    value_str(v)
                };
                format!("{:?}: {:?}", k.as_str(), shown)
            })
            .collect();
        format!("Headers({{{}}})", items.join(", "))
    }
}

/// An HTTP response. The body stays in Rust until it is asked for.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct Response {
    pub data: ResponseData,
    headers: PyOnceLock<Py<Headers>>,
    content: PyOnceLock<Py<PyBytes>>,
    text: PyOnceLock<Py<PyString>>,
}

impl Response {
    pub fn new(data: ResponseData) -> Self {
        Response {
            data,
            headers: PyOnceLock::new(),
            content: PyOnceLock::new(),
            text: PyOnceLock::new(),
        }
    }

    pub fn status_error(&self) -> Option<Error> {
        let status = self.data.status;
        if status < 400 {
            return None;
        }
        let kind = if status < 500 { "Client" } else { "Server" };
        Some(Error::HttpStatus {
            status,
            url: self.data.url.to_string(),
            msg: format!(
                "{kind} error '{status} {}' for url '{}'",
                reason_of(status),
                self.data.url
            ),
        })
    }
}

#[pymethods]
impl Response {
    /// The status code, e.g. 200.
    #[getter]
    fn status(&self) -> u16 {
        self.data.status
    }

    /// httpx's name for `status`.
    #[getter]
    fn status_code(&self) -> u16 {
        self.data.status
    }

    #[getter]
    fn reason(&self) -> &'static str {
        reason_of(self.data.status)
    }

    /// True for status < 400.
    #[getter]
    fn ok(&self) -> bool {
        self.data.status < 400
    }

    /// The final URL (after redirects).
    #[getter]
    fn url(&self) -> &str {
        &self.data.url
    }

    #[getter]
    fn headers(&self, py: Python<'_>) -> PyResult<Py<Headers>> {
        self.headers
            .get_or_try_init(py, || {
                Py::new(py, Headers::new(Arc::clone(&self.data.headers)))
            })
            .map(|h| h.clone_ref(py))
    }

    /// The body as bytes.
    #[getter]
    fn content(&self, py: Python<'_>) -> Py<PyBytes> {
        self.content
            .get_or_init(py, || match &self.data.py_body {
                Some(b) => b.object(py),
                None => PyBytes::new(py, &self.data.body).unbind(),
            })
            .clone_ref(py)
    }

    /// The body decoded with the response's charset (UTF-8 by default).
    #[getter]
    fn text(&self, py: Python<'_>) -> Py<PyString> {
        self.text
            .get_or_init(py, || {
                let charset = charset_of(&self.data.headers);
                let s = decode_text(&self.data.body, charset.as_deref());
                PyString::new(py, &s).unbind()
            })
            .clone_ref(py)
    }

    /// The charset of the body (from Content-Type; "utf-8" when absent).
    #[getter]
    fn encoding(&self) -> String {
        charset_of(&self.data.headers).unwrap_or_else(|| "utf-8".to_owned())
    }

    /// Time from sending the request to the whole body read.
    #[getter]
    fn elapsed(&self) -> Duration {
        self.data.elapsed
    }

    /// "HTTP/1.1" or "HTTP/2".
    #[getter]
    fn http_version(&self) -> &'static str {
        version_str(self.data.version)
    }

    /// True when served from the client's TTL cache.
    #[getter(from_cache)]
    fn is_from_cache(&self) -> bool {
        self.data.from_cache
    }

    /// The body parsed as JSON (in Rust).
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        parse_json(py, &self.data.body, &self.data.url)
    }

    /// Raises HTTPStatusError for 4xx/5xx; returns the response otherwise.
    fn raise_for_status(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        match slf.get().status_error() {
            None => Ok(slf),
            Some(e) => {
                let py = slf.py();
                let err = e.into_pyerr(py);
                err.value(py).setattr("response", &slf)?;
                Err(err)
            }
        }
    }

    fn __len__(&self) -> usize {
        self.data.body.len()
    }

    fn __bool__(&self) -> bool {
        true
    }

    fn __repr__(&self) -> String {
        format!(
            "<Response [{} {}]>",
            self.data.status,
            reason_of(self.data.status)
        )
    }
}

/// A Rust result turned into a Python Response or exception object (for
/// fetch_all's `return_exceptions=True` lists).
pub fn outcome_to_py(py: Python<'_>, r: Result<ResponseData>) -> PyResult<Py<PyAny>> {
    match r {
        Ok(data) => Ok(Py::new(py, Response::new(data))?.into_any()),
        Err(e) => Ok(e.into_pyerr(py).into_value(py).into_any()),
    }
}

/// The end of an async iteration, as an error a bridged future can return.
pub fn stop_async_iteration() -> Error {
    Error::Python(PyStopAsyncIteration::new_err(()))
}

/// Bytes handed to Python as `bytes`.
pub struct PyBytesOut(pub Bytes);

impl<'py> IntoPyObject<'py> for PyBytesOut {
    type Target = PyBytes;
    type Output = Bound<'py, PyBytes>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> std::result::Result<Self::Output, Self::Error> {
        Ok(PyBytes::new(py, &self.0))
    }
}

/// A finished response handed to Python as a `Response`.
pub struct ResponseOut(pub ResponseData);

impl<'py> IntoPyObject<'py> for ResponseOut {
    type Target = Response;
    type Output = Bound<'py, Response>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> std::result::Result<Self::Output, Self::Error> {
        Bound::new(py, Response::new(self.0))
    }
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Response>()?;
    m.add_class::<Headers>()?;
    Ok(())
}
