//! The file object behind `fastio.aiofiles.open`: aiofiles' API, with the
//! buffering in Rust. A call the buffer can answer (the next line, a small
//! read, a write into the buffer, tell) returns a [`Ready`] awaitable at once;
//! only calls that need the disk go to a blocking thread. aiofiles pays a
//! thread-pool round trip for every call, including every line of
//! `async for line in f`.
//!
//! Text mode is limited to ASCII-compatible encodings (newlines are found in
//! the bytes); python/fastio/aiofiles.py serves the others with a thread.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyStopAsyncIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyString, PyType};

use super::{blocking, decode, encode, io_err, path_arg};
use crate::errors::{Error, Result};
use crate::runtime::{check_fork, future_into_py, generation, ready, ReturnNone};

const CHUNK: usize = 1 << 18;
const WRITE_BUFFER: usize = 1 << 18;

/// How lines end, `open()`'s `newline` argument.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Newline {
    /// None: `\n`, `\r\n` and `\r` end lines and read as `\n`.
    Universal,
    /// "": the same line ends, returned untranslated.
    Any,
    Lf,
    Cr,
    CrLf,
}

struct TextCfg {
    encoding: String,
    errors: String,
    newline: Newline,
    /// Multi-byte characters are UTF-8 (else one byte per character).
    utf8: bool,
}

struct FileState {
    file: Option<File>,
    path: String,
    /// Unread bytes are `rbuf[rpos..]`; the OS offset is past them.
    rbuf: Vec<u8>,
    rpos: usize,
    eof: bool,
    /// Bytes written but not yet handed to the OS.
    wbuf: Vec<u8>,
}

fn closed_err() -> Error {
    Error::Python(PyValueError::new_err("I/O operation on closed file."))
}

impl FileState {
    fn file(&mut self) -> Result<&mut File> {
        self.file.as_mut().ok_or_else(closed_err)
    }

    fn unread(&self) -> &[u8] {
        &self.rbuf[self.rpos..]
    }

    fn consume(&mut self, n: usize) -> Vec<u8> {
        let out = self.rbuf[self.rpos..self.rpos + n].to_vec();
        self.rpos += n;
        out
    }

    fn flush_writes(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            let data = std::mem::take(&mut self.wbuf);
            let path = self.path.clone();
            self.file()?
                .write_all(&data)
                .map_err(|e| io_err(e, &path))?;
        }
        Ok(())
    }

    /// Drops read-ahead, moving the OS offset back to the logical position.
    fn drop_readahead(&mut self) -> Result<()> {
        let unread = (self.rbuf.len() - self.rpos) as i64;
        if unread > 0 {
            let path = self.path.clone();
            self.file()?
                .seek(SeekFrom::Current(-unread))
                .map_err(|e| io_err(e, &path))?;
        }
        self.rbuf.clear();
        self.rpos = 0;
        self.eof = false;
        Ok(())
    }

    /// Reads one more chunk into the buffer; false at end of file.
    fn fill(&mut self) -> Result<bool> {
        self.flush_writes()?;
        if self.rpos > 0 && self.rpos * 2 >= self.rbuf.len() {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        let have = self.rbuf.len();
        self.rbuf.resize(have + CHUNK, 0);
        let path = self.path.clone();
        let file = self.file.as_mut().ok_or_else(closed_err)?;
        let n = loop {
            match file.read(&mut self.rbuf[have..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.rbuf.truncate(have);
                    return Err(io_err(e, &path));
                }
            }
        };
        self.rbuf.truncate(have + n);
        self.eof = n == 0;
        Ok(n > 0)
    }

    fn tell(&mut self) -> Result<u64> {
        let path = self.path.clone();
        let unread = (self.rbuf.len() - self.rpos) as u64;
        let pending = self.wbuf.len() as u64;
        let os = self
            .file()?
            .stream_position()
            .map_err(|e| io_err(e, &path))?;
        Ok(os + pending - unread)
    }
}

/// Where the next line ends in `buf` (exclusive), `None` if more data is
/// needed to tell. At end of file the rest is a line.
fn line_end(buf: &[u8], newline: Option<Newline>, eof: bool) -> Option<usize> {
    let found = match newline {
        None | Some(Newline::Lf) => memchr::memchr(b'\n', buf).map(|i| i + 1),
        Some(Newline::Cr) => memchr::memchr(b'\r', buf).map(|i| i + 1),
        Some(Newline::CrLf) => memchr::memmem::find(buf, b"\r\n").map(|i| i + 2),
        Some(Newline::Universal | Newline::Any) => match memchr::memchr2(b'\n', b'\r', buf) {
            Some(i) if buf[i] == b'\n' => Some(i + 1),
            Some(i) => match buf.get(i + 1) {
                Some(b'\n') => Some(i + 2),
                Some(_) => Some(i + 1),
                None if eof => Some(i + 1),
                None => return None,
            },
            None => None,
        },
    };
    match found {
        Some(end) => Some(end),
        None if eof => Some(buf.len()),
        None => None,
    }
}

fn utf8_width(b: u8) -> usize {
    match b {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// Bytes holding the first `n` characters of `buf` (a `\r\n` counts as one
/// under universal newlines); `None` if more data is needed.
fn char_prefix(buf: &[u8], n: usize, text: &TextCfg, eof: bool) -> Option<usize> {
    let mut i = 0;
    let mut count = 0;
    while count < n {
        let Some(&b) = buf.get(i) else {
            return eof.then_some(buf.len());
        };
        if b == b'\r' && text.newline == Newline::Universal {
            match buf.get(i + 1) {
                Some(b'\n') => i += 2,
                Some(_) => i += 1,
                None if eof => i += 1,
                None => return None,
            }
        } else {
            i += if text.utf8 { utf8_width(b) } else { 1 };
        }
        count += 1;
    }
    if i > buf.len() {
        return eof.then_some(buf.len());
    }
    Some(i)
}

/// `\r\n` and `\r` to `\n` (universal newlines), on ASCII-compatible bytes.
fn translate(bytes: Vec<u8>) -> Vec<u8> {
    if memchr::memchr(b'\r', &bytes).is_none() {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' {
            out.push(b'\n');
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
        } else {
            out.push(bytes[i]);
        }
        i += 1;
    }
    out
}

/// Data read from the file, made into `bytes` or `str` on the loop thread.
enum Out {
    None,
    Int(u64),
    Bool(bool),
    Data(Vec<u8>, Option<Arc<TextCfg>>),
    Lines(Vec<Vec<u8>>, Option<Arc<TextCfg>>),
    /// A line for `async for`: the empty line at the end stops the loop.
    Next(Vec<u8>, Option<Arc<TextCfg>>),
}

fn data_to_py<'py>(
    py: Python<'py>,
    bytes: Vec<u8>,
    text: &Option<Arc<TextCfg>>,
) -> PyResult<Bound<'py, PyAny>> {
    match text {
        None => Ok(PyBytes::new(py, &bytes).into_any()),
        Some(t) => {
            let bytes = if t.newline == Newline::Universal {
                translate(bytes)
            } else {
                bytes
            };
            Ok(decode(py, &bytes, &t.encoding, &t.errors)?.into_any())
        }
    }
}

impl<'py> IntoPyObject<'py> for Out {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        match self {
            Out::None => Ok(py.None().into_bound(py)),
            Out::Int(n) => Ok(n.into_pyobject(py)?.into_any()),
            Out::Bool(b) => Ok(pyo3::types::PyBool::new(py, b).to_owned().into_any()),
            Out::Data(bytes, text) => data_to_py(py, bytes, &text),
            Out::Next(bytes, text) => {
                if bytes.is_empty() {
                    Err(PyStopAsyncIteration::new_err(()))
                } else {
                    data_to_py(py, bytes, &text)
                }
            }
            Out::Lines(lines, text) => {
                let list = PyList::empty(py);
                for line in lines {
                    list.append(data_to_py(py, line, &text)?)?;
                }
                Ok(list.into_any())
            }
        }
    }
}

/// A file opened by `fastio.aiofiles.open`; its methods return awaitables.
#[pyclass(frozen, module = "fastio._fastio")]
pub(crate) struct _AsyncFile {
    state: Arc<Mutex<FileState>>,
    text: Option<Arc<TextCfg>>,
    readable: bool,
    writable: bool,
    fd: i32,
    /// Fork generation at creation: in a forked child the state lock may be
    /// held by a parent thread that does not exist there.
    born: u64,
}

fn lock(m: &Mutex<FileState>) -> MutexGuard<'_, FileState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unsupported(py: Python<'_>, msg: &str) -> PyErr {
    static UNSUPPORTED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    match UNSUPPORTED.import(py, "io", "UnsupportedOperation") {
        Ok(ty) => PyErr::from_type(ty.clone(), msg.to_owned()),
        Err(e) => e,
    }
}

/// What a read-type call wants from the buffer.
#[derive(Clone, Copy)]
enum ReadReq {
    /// `read(size)`; `None` = to the end.
    Read(Option<usize>),
    /// `readline(size)`.
    Line(Option<usize>),
    /// `__anext__`.
    Next,
    /// `readlines(hint)`.
    Lines(Option<usize>),
}

impl ReadReq {
    /// Serves the request from the buffer; with `io`, reads the file as
    /// needed, else returns `None` when the buffer is not enough.
    fn run(self, st: &mut FileState, text: &Option<Arc<TextCfg>>, io: bool) -> Result<Option<Out>> {
        let newline = text.as_ref().map(|t| t.newline);
        loop {
            let eof = st.eof;
            let buf = st.unread();
            let got = match self {
                ReadReq::Read(None) => eof.then_some(buf.len()),
                ReadReq::Read(Some(n)) => match text {
                    None => (buf.len() >= n || eof).then(|| n.min(buf.len())),
                    Some(t) => char_prefix(buf, n, t, eof),
                },
                ReadReq::Line(limit) => {
                    let end = line_end(buf, newline, eof);
                    match (end, limit, text) {
                        (_, Some(n), None) if buf.len() >= n && end.is_none_or(|e| e > n) => {
                            Some(n)
                        }
                        (_, Some(n), Some(t)) => match char_prefix(buf, n, t, eof) {
                            Some(p) if end.is_none_or(|e| e > p) => Some(p),
                            _ => end,
                        },
                        _ => end,
                    }
                }
                ReadReq::Next => line_end(buf, newline, eof),
                ReadReq::Lines(_) => None,
            };
            if let ReadReq::Lines(hint) = self {
                // readlines: lines until the hint is reached or the file ends.
                if !io {
                    return Ok(None);
                }
                let mut lines = Vec::new();
                let mut total = 0;
                loop {
                    let eof = st.eof;
                    match line_end(st.unread(), newline, eof) {
                        Some(0) => break,
                        Some(end) => {
                            total += end;
                            lines.push(st.consume(end));
                            if hint.is_some_and(|h| total > h) {
                                break;
                            }
                        }
                        None => {
                            st.fill()?;
                        }
                    }
                }
                return Ok(Some(Out::Lines(lines, text.clone())));
            }
            match got {
                Some(n) => {
                    let data = st.consume(n);
                    return Ok(Some(match self {
                        ReadReq::Next => Out::Next(data, text.clone()),
                        _ => Out::Data(data, text.clone()),
                    }));
                }
                None if io => {
                    st.fill()?;
                }
                None => return Ok(None),
            }
        }
    }
}

impl _AsyncFile {
    /// Answers from the buffer if it can (a `Ready`), else on a blocking thread.
    fn alive(&self) -> Result<()> {
        check_fork(self.born, "this file")
    }

    fn read_op<'py>(&self, py: Python<'py>, req: ReadReq) -> PyResult<Bound<'py, PyAny>> {
        self.alive()?;
        if !self.readable {
            return Err(unsupported(py, "not readable"));
        }
        if let Ok(mut st) = self.state.try_lock() {
            if st.file.is_none() {
                return Err(closed_err().into());
            }
            if st.wbuf.is_empty() {
                if let Some(out) = req.run(&mut st, &self.text, false)? {
                    drop(st);
                    return Ok(ready(py, out.into_pyobject(py)?)?.into_any());
                }
            }
        }
        let state = Arc::clone(&self.state);
        let text = self.text.clone();
        Ok(future_into_py(py, async move {
            blocking(move || {
                let mut st = lock(&state);
                st.flush_writes()?;
                Ok(req.run(&mut st, &text, true)?.unwrap_or(Out::None))
            })
            .await
        })?
        .into_any())
    }

    fn blocking_op<'py, F>(&self, py: Python<'py>, f: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: FnOnce(&mut FileState) -> Result<Out> + Send + 'static,
    {
        self.alive()?;
        let state = Arc::clone(&self.state);
        Ok(future_into_py(py, async move {
            blocking(move || {
                let mut st = lock(&state);
                f(&mut st)
            })
            .await
        })?
        .into_any())
    }

    fn to_bytes(&self, data: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        match &self.text {
            Some(t) => {
                let s = data.cast::<PyString>().map_err(|_| {
                    let name = data
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default();
                    PyTypeError::new_err(format!("write() argument must be str, not {name}"))
                })?;
                let bytes = match t.newline {
                    Newline::Cr | Newline::CrLf => {
                        let nl = if t.newline == Newline::Cr {
                            "\r"
                        } else {
                            "\r\n"
                        };
                        let s = s.call_method1("replace", ("\n", nl))?;
                        encode(s.cast::<PyString>()?, &t.encoding, &t.errors)?
                    }
                    _ => encode(s, &t.encoding, &t.errors)?,
                };
                Ok(bytes)
            }
            None => {
                if let Ok(b) = data.cast::<PyBytes>() {
                    return Ok(b.as_bytes().to_vec());
                }
                if data.is_instance_of::<PyString>() {
                    return Err(PyTypeError::new_err(
                        "a bytes-like object is required, not 'str'",
                    ));
                }
                let mv = data
                    .py()
                    .import("builtins")?
                    .getattr("memoryview")?
                    .call1((data,))?;
                Ok(mv
                    .call_method0("tobytes")?
                    .cast::<PyBytes>()?
                    .as_bytes()
                    .to_vec())
            }
        }
    }

    /// Appends to the write buffer; flushes on a blocking thread once it is big.
    fn buffer_write<'py>(
        &self,
        py: Python<'py>,
        chunks: Vec<Vec<u8>>,
        result: Out,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.alive()?;
        if !self.writable {
            return Err(unsupported(py, "not writable"));
        }
        let fast = if let Ok(mut st) = self.state.try_lock() {
            if st.file.is_none() {
                return Err(closed_err().into());
            }
            if st.rbuf.len() == st.rpos {
                st.rbuf.clear();
                st.rpos = 0;
                for c in &chunks {
                    st.wbuf.extend_from_slice(c);
                }
                Some(st.wbuf.len() < WRITE_BUFFER)
            } else {
                None
            }
        } else {
            None
        };
        match fast {
            Some(true) => Ok(ready(py, result.into_pyobject(py)?)?.into_any()),
            Some(false) => self.blocking_op(py, move |st| {
                st.flush_writes()?;
                Ok(result)
            }),
            None => self.blocking_op(py, move |st| {
                st.drop_readahead()?;
                for c in &chunks {
                    st.wbuf.extend_from_slice(c);
                }
                if st.wbuf.len() >= WRITE_BUFFER {
                    st.flush_writes()?;
                }
                Ok(result)
            }),
        }
    }
}

#[pymethods]
impl _AsyncFile {
    /// Opens `path` with `open()`'s flags (parsed by python/fastio/aiofiles.py).
    #[staticmethod]
    #[pyo3(signature = (path, read, write, append, create, truncate, exclusive, encoding = None, errors = None, newline = None, utf8 = true))]
    #[allow(clippy::too_many_arguments)]
    fn open<'py>(
        py: Python<'py>,
        path: &Bound<'py, PyAny>,
        read: bool,
        write: bool,
        append: bool,
        create: bool,
        truncate: bool,
        exclusive: bool,
        encoding: Option<String>,
        errors: Option<String>,
        newline: Option<&str>,
        utf8: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let path = path_arg("open", path)?;
        let text = match encoding {
            None => None,
            Some(encoding) => Some(Arc::new(TextCfg {
                encoding,
                errors: errors.unwrap_or_else(|| "strict".into()),
                newline: match newline {
                    None => Newline::Universal,
                    Some("") => Newline::Any,
                    Some("\n") => Newline::Lf,
                    Some("\r") => Newline::Cr,
                    Some("\r\n") => Newline::CrLf,
                    Some(other) => {
                        return Err(PyValueError::new_err(format!(
                            "illegal newline value: {other}"
                        )))
                    }
                },
                utf8,
            })),
        };
        Ok(future_into_py(py, async move {
            let (file, fd) = blocking(move || {
                use std::os::fd::AsRawFd;
                let mut opts = std::fs::OpenOptions::new();
                opts.read(read).write(write || append).append(append);
                if exclusive {
                    opts.create_new(true);
                } else {
                    opts.create(create).truncate(truncate);
                }
                let mut file = opts.open(&path).map_err(|e| io_err(e, &path))?;
                if append {
                    // Like io.FileIO: an append-mode file starts at its end.
                    file.seek(SeekFrom::End(0)).map_err(|e| io_err(e, &path))?;
                }
                // open() refuses directories even where the OS allows reading them.
                let meta = file.metadata().map_err(|e| io_err(e, &path))?;
                if meta.is_dir() {
                    return Err(io_err(
                        std::io::Error::from_raw_os_error(libc::EISDIR),
                        &path,
                    ));
                }
                let fd = file.as_raw_fd();
                Ok((
                    FileState {
                        file: Some(file),
                        path,
                        rbuf: Vec::new(),
                        rpos: 0,
                        eof: false,
                        wbuf: Vec::new(),
                    },
                    fd,
                ))
            })
            .await?;
            Ok(_AsyncFile {
                state: Arc::new(Mutex::new(file)),
                text,
                readable: read,
                writable: write || append,
                fd,
                born: generation(),
            })
        })?
        .into_any())
    }

    #[pyo3(signature = (size = -1))]
    fn read<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
        let size = size.filter(|n| *n >= 0).map(|n| n as usize);
        self.read_op(py, ReadReq::Read(size))
    }

    #[pyo3(signature = (size = -1))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
        let size = size.filter(|n| *n >= 0).map(|n| n as usize);
        self.read_op(py, ReadReq::Line(size))
    }

    #[pyo3(signature = (hint = -1))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
        let hint = hint.filter(|n| *n > 0).map(|n| n as usize);
        self.read_op(py, ReadReq::Lines(hint))
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.read_op(py, ReadReq::Next)
    }

    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn write<'py>(&self, py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let bytes = self.to_bytes(data)?;
        let n = if self.text.is_some() {
            data.len()? as u64
        } else {
            bytes.len() as u64
        };
        self.buffer_write(py, vec![bytes], Out::Int(n))
    }

    fn writelines<'py>(
        &self,
        py: Python<'py>,
        lines: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut chunks = Vec::new();
        for line in lines.try_iter()? {
            chunks.push(self.to_bytes(&line?)?);
        }
        self.buffer_write(py, chunks, Out::None)
    }

    fn flush<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.alive()?;
        if let Ok(st) = self.state.try_lock() {
            if st.file.is_none() {
                return Err(closed_err().into());
            }
            if st.wbuf.is_empty() {
                return Ok(ready(py, py.None().into_bound(py))?.into_any());
            }
        }
        self.blocking_op(py, |st| {
            st.flush_writes()?;
            Ok(Out::None)
        })
    }

    #[pyo3(signature = (offset, whence = 0))]
    fn seek<'py>(&self, py: Python<'py>, offset: i64, whence: i32) -> PyResult<Bound<'py, PyAny>> {
        if self.text.is_some() {
            if whence == 1 && offset != 0 {
                return Err(unsupported(py, "can't do nonzero cur-relative seeks"));
            }
            if whence == 2 && offset != 0 {
                return Err(unsupported(py, "can't do nonzero end-relative seeks"));
            }
        }
        let pos = match whence {
            0 if offset < 0 && self.text.is_some() => {
                return Err(PyValueError::new_err(format!(
                    "negative seek position {offset}"
                )))
            }
            0 if offset < 0 => {
                let e = std::io::Error::from_raw_os_error(libc::EINVAL);
                return Err(e.into());
            }
            0 => SeekFrom::Start(offset as u64),
            1 => SeekFrom::Current(offset),
            2 => SeekFrom::End(offset),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "invalid whence ({whence}, should be 0, 1 or 2)"
                )))
            }
        };
        self.blocking_op(py, move |st| {
            st.flush_writes()?;
            let pos = match pos {
                SeekFrom::Current(off) => SeekFrom::Current(off - (st.rbuf.len() - st.rpos) as i64),
                other => other,
            };
            st.rbuf.clear();
            st.rpos = 0;
            st.eof = false;
            let path = st.path.clone();
            let at = st.file()?.seek(pos).map_err(|e| io_err(e, &path))?;
            Ok(Out::Int(at))
        })
    }

    fn tell<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.alive()?;
        // A text file's tell() flushes first, as TextIOWrapper's does (it
        // matters in append mode, where the OS decides where writes land).
        let text = self.text.is_some();
        if let Ok(mut st) = self.state.try_lock() {
            if !text || st.wbuf.is_empty() {
                let at = st.tell()?;
                drop(st);
                return Ok(ready(py, Out::Int(at).into_pyobject(py)?)?.into_any());
            }
        }
        self.blocking_op(py, move |st| {
            if text {
                st.flush_writes()?;
            }
            Ok(Out::Int(st.tell()?))
        })
    }

    #[pyo3(signature = (size = None))]
    fn truncate<'py>(&self, py: Python<'py>, size: Option<u64>) -> PyResult<Bound<'py, PyAny>> {
        if !self.writable {
            return Err(unsupported(py, "File not open for writing"));
        }
        self.blocking_op(py, move |st| {
            st.flush_writes()?;
            st.drop_readahead()?;
            let size = match size {
                Some(s) => s,
                None => st.tell()?,
            };
            let path = st.path.clone();
            st.file()?.set_len(size).map_err(|e| io_err(e, &path))?;
            Ok(Out::Int(size))
        })
    }

    /// Flushes and closes; closing twice is fine.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.alive()?;
        let state = Arc::clone(&self.state);
        Ok(future_into_py(py, async move {
            blocking(move || {
                let mut st = lock(&state);
                if st.file.is_none() {
                    return Ok(ReturnNone);
                }
                let flushed = st.flush_writes();
                st.file = None;
                st.rbuf = Vec::new();
                st.rpos = 0;
                flushed.map(|()| ReturnNone)
            })
            .await
        })?
        .into_any())
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.state).file.is_none()
    }

    fn readable<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(ready(py, Out::Bool(self.readable).into_pyobject(py)?)?.into_any())
    }

    /// Whether the file was opened for reading, without an awaitable.
    #[getter(_readable)]
    fn readable_flag(&self) -> bool {
        self.readable
    }

    fn writable<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(ready(py, Out::Bool(self.writable).into_pyobject(py)?)?.into_any())
    }

    fn seekable<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(ready(py, Out::Bool(true).into_pyobject(py)?)?.into_any())
    }

    fn isatty<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: isatty on our own open descriptor.
        let tty = unsafe { libc::isatty(self.fd) } == 1;
        Ok(ready(py, Out::Bool(tty).into_pyobject(py)?)?.into_any())
    }

    fn fileno(&self) -> PyResult<i32> {
        if lock(&self.state).file.is_none() {
            return Err(closed_err().into());
        }
        Ok(self.fd)
    }
}

impl Drop for FileState {
    fn drop(&mut self) {
        // Like a Python file object: unflushed writes are written on close.
        let _ = self.flush_writes();
    }
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<_AsyncFile>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_by_newline_mode() {
        assert_eq!(line_end(b"ab\ncd", None, false), Some(3));
        assert_eq!(line_end(b"ab", None, false), None);
        assert_eq!(line_end(b"ab", None, true), Some(2));
        assert_eq!(
            line_end(b"ab\r\ncd", Some(Newline::Universal), false),
            Some(4)
        );
        assert_eq!(
            line_end(b"ab\rcd", Some(Newline::Universal), false),
            Some(3)
        );
        assert_eq!(line_end(b"ab\r", Some(Newline::Universal), false), None);
        assert_eq!(line_end(b"ab\r", Some(Newline::Universal), true), Some(3));
        assert_eq!(line_end(b"a\rb\n", Some(Newline::Lf), false), Some(4));
        assert_eq!(line_end(b"a\nb\r\n", Some(Newline::CrLf), false), Some(5));
    }

    #[test]
    fn universal_newlines_translate() {
        assert_eq!(translate(b"a\r\nb\rc\n".to_vec()), b"a\nb\nc\n");
    }
}
