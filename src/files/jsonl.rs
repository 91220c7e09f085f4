//! JSON lines: a reader that reads and parses ahead on a blocking thread and
//! hands Python whole batches, and a writer that serializes in Rust.
//!
//! `read_jsonl`, `iter_jsonl` and `write_jsonl` (python/fastio/files.py) are
//! thin loops over `_JsonlReader.next_batch()` / `_JsonlWriter.write()`.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use tokio::sync::mpsc;

use super::dump::Dumper;
use super::parse::Tape;
use super::topy::{new_list, without_gc, Builder};
use super::{is_gzip, path_arg, AtomicTarget};
use crate::errors::{Error, Result};
use crate::runtime::{check_fork, future_into_py, generation, Awaitable, ReturnNone};

/// What to do with a line that is not valid JSON (or not UTF-8).
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnError {
    Raise,
    Skip,
    Collect,
}

impl OnError {
    fn parse(s: &str) -> Result<Self> {
        match s {
            "raise" => Ok(OnError::Raise),
            "skip" => Ok(OnError::Skip),
            "collect" => Ok(OnError::Collect),
            other => Err(Error::InvalidArgument(format!(
                "errors must be 'raise', 'skip' or 'collect', not {other:?}"
            ))),
        }
    }
}

/// Parsed records of one batch, plus the bad lines met on the way.
struct Batch {
    tape: Tape,
    count: usize,
    bad: Vec<Error>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            tape: Tape::default(),
            count: 0,
            bad: Vec::new(),
        }
    }
}

/// Python's reason strings for an invalid UTF-8 sequence.
fn utf8_error(path: &str, line: u64, bytes: &[u8], e: std::str::Utf8Error) -> Error {
    let start = e.valid_up_to();
    let (end, reason) = match e.error_len() {
        None => (bytes.len(), "unexpected end of data"),
        Some(n) => {
            let lead = bytes[start];
            let reason = if (0xC2..=0xF4).contains(&lead) {
                "invalid continuation byte"
            } else {
                "invalid start byte"
            };
            (start + n, reason)
        }
    };
    Error::Utf8Line {
        path: path.to_owned(),
        line,
        bytes: bytes.to_vec(),
        start,
        end,
        reason,
    }
}

/// Splits a byte stream into lines and parses each; calls `emit` with every
/// full batch. Stops early when `emit` returns false or a line fails in
/// `Raise` mode (that batch, with the error in `bad`, is the last one).
struct LineParser<'a> {
    path: &'a str,
    on_error: OnError,
    batch_size: usize,
    line: u64,
    batch: Batch,
}

impl LineParser<'_> {
    /// Returns false when reading must stop (a fatal bad line).
    fn line(&mut self, bytes: &[u8]) -> bool {
        self.line += 1;
        if bytes
            .first()
            .is_none_or(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
            && bytes
                .iter()
                .all(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        {
            return true; // blank lines carry no record
        }
        let bad = match std::str::from_utf8(bytes) {
            Err(e) => Some(utf8_error(self.path, self.line, bytes, e)),
            Ok(text) => match self.batch.tape.parse_doc(bytes) {
                Ok(()) => {
                    self.batch.count += 1;
                    None
                }
                Err(e) => Some(Error::JsonLine {
                    path: self.path.to_owned(),
                    line: self.line,
                    pos: text[..e.pos.min(text.len())].chars().count(),
                    msg: e.msg,
                    doc: text.to_owned(),
                }),
            },
        };
        match (bad, self.on_error) {
            (None, _) | (Some(_), OnError::Skip) => true,
            (Some(e), OnError::Collect) => {
                self.batch.bad.push(e);
                true
            }
            (Some(e), OnError::Raise) => {
                self.batch.bad.push(e);
                false
            }
        }
    }

    fn full(&self) -> bool {
        self.batch.count >= self.batch_size
    }

    fn take(&mut self) -> Batch {
        std::mem::replace(&mut self.batch, Batch::new())
    }
}

/// Opens `path` for reading, through a gzip decoder for `*.gz`.
fn open_read(path: &str) -> Result<Box<dyn Read + Send>> {
    let file = std::fs::File::open(path).map_err(|e| super::io_err(e, path))?;
    if is_gzip(path) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(
            std::io::BufReader::with_capacity(1 << 16, file),
        )))
    } else {
        Ok(Box::new(file))
    }
}

const CHUNK: usize = 1 << 20;

/// The producer: runs on a blocking thread, sends batches until the file
/// ends, a fatal line, an error, or the receiver is gone.
fn produce(path: String, batch_size: usize, on_error: OnError, tx: mpsc::Sender<Result<Batch>>) {
    let mut reader = match open_read(&path) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
            return;
        }
    };
    let mut lp = LineParser {
        path: &path,
        on_error,
        batch_size,
        line: 0,
        batch: Batch::new(),
    };
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    let mut eof = false;
    loop {
        // Refill: keep the unfinished last line, read a chunk after it.
        if !eof {
            let have = buf.len();
            buf.resize(have + CHUNK, 0);
            let n = loop {
                match reader.read(&mut buf[have..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(super::io_err(e, &path)));
                        return;
                    }
                }
            };
            buf.truncate(have + n);
            eof = n == 0;
        }
        let mut start = 0;
        let mut stop = false;
        for nl in memchr::memchr_iter(b'\n', &buf) {
            if !lp.line(&buf[start..nl]) {
                stop = true;
                break;
            }
            start = nl + 1;
            if lp.full() && tx.blocking_send(Ok(lp.take())).is_err() {
                return;
            }
        }
        if stop {
            let _ = tx.blocking_send(Ok(lp.take()));
            return;
        }
        buf.drain(..start);
        if eof {
            if !buf.is_empty() && !lp.line(&buf) {
                let _ = tx.blocking_send(Ok(lp.take()));
                return;
            }
            if lp.batch.count > 0 || !lp.batch.bad.is_empty() {
                let _ = tx.blocking_send(Ok(lp.take()));
            }
            return;
        }
    }
}

/// A batch on its way to Python: `(records, errors)`.
struct BatchOut(Batch);

impl<'py> IntoPyObject<'py> for BatchOut {
    type Target = PyTuple;
    type Output = Bound<'py, PyTuple>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let batch = self.0;
        let records = new_list(py, batch.count)?;
        without_gc(py, || {
            Builder::new(&batch.tape).fill_list(py, &records, 0, batch.count)
        })?;
        let errors = PyList::empty(py);
        for e in batch.bad {
            errors.append(e.into_pyerr(py).into_value(py))?;
        }
        PyTuple::new(py, [records.into_any(), errors.into_any()])
    }
}

type ProducerArgs = (String, usize, OnError, mpsc::Sender<Result<Batch>>);
type Receiver = Arc<tokio::sync::Mutex<mpsc::Receiver<Result<Batch>>>>;

/// Reads a JSON-lines file ahead on a blocking thread, parsing as it goes;
/// at most `prefetch` parsed batches wait in memory. Internal: see
/// `fastio.iter_jsonl` / `fastio.read_jsonl`.
#[pyclass(frozen, module = "fastio._fastio")]
struct _JsonlReader {
    /// The producer's arguments until the first `next_batch()` starts it.
    pending: Mutex<Option<ProducerArgs>>,
    rx: Receiver,
    /// Fork generation at creation: the read-ahead thread does not exist in
    /// a forked child, so waiting on it there would hang.
    born: u64,
}

#[pymethods]
impl _JsonlReader {
    #[new]
    #[pyo3(signature = (path, batch_size = 4096, errors = "raise", prefetch = 2, func = "iter_jsonl"))]
    fn new(
        path: &Bound<'_, PyAny>,
        batch_size: usize,
        errors: &str,
        prefetch: usize,
        func: &str,
    ) -> PyResult<Self> {
        let path = path_arg(func, path)?;
        if batch_size == 0 {
            return Err(Error::InvalidArgument("batch_size must be at least 1".into()).into());
        }
        let on_error = OnError::parse(errors)?;
        let (tx, rx) = mpsc::channel(prefetch.max(1));
        Ok(_JsonlReader {
            pending: Mutex::new(Some((path, batch_size, on_error, tx))),
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            born: generation(),
        })
    }

    /// The next `(records, errors)` batch, or None at the end of the file.
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        check_fork(self.born, "this JSON-lines reader")?;
        let start = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let rx = Arc::clone(&self.rx);
        future_into_py(py, async move {
            if let Some((path, batch_size, on_error, tx)) = start {
                tokio::task::spawn_blocking(move || produce(path, batch_size, on_error, tx));
            }
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(Ok(batch)) => Ok(Some(BatchOut(batch))),
                Some(Err(e)) => Err(e),
                None => Ok(None),
            }
        })
    }
}

/// Where a writer's bytes go: the file, or a gzip stream into it.
enum Sink {
    Plain(std::io::BufWriter<std::fs::File>),
    Gzip(flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>),
}

impl Sink {
    fn out(&mut self) -> &mut dyn Write {
        match self {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w,
        }
    }

    fn finish(self) -> std::io::Result<std::fs::File> {
        let w = match self {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w.finish()?,
        };
        w.into_inner().map_err(|e| e.into_error())
    }
}

struct WriterState {
    target: AtomicTarget,
    sink: Option<Sink>,
}

/// Serializes records in Rust and writes them on a blocking thread.
/// Internal: see `fastio.write_jsonl`.
#[pyclass(frozen, module = "fastio._fastio")]
struct _JsonlWriter {
    state: Arc<Mutex<Option<WriterState>>>,
    path: String,
    append: bool,
    atomic: bool,
    ensure_ascii: bool,
    born: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl _JsonlWriter {
    /// Opens the file on first use (on the blocking thread).
    fn ensure_open(
        state: &mut Option<WriterState>,
        path: &str,
        append: bool,
        atomic: bool,
    ) -> Result<()> {
        if state.is_none() {
            let target = AtomicTarget::new(path, atomic);
            let file = target.open(append)?;
            let w = std::io::BufWriter::with_capacity(1 << 20, file);
            let sink = if is_gzip(path) {
                Sink::Gzip(flate2::write::GzEncoder::new(
                    w,
                    flate2::Compression::default(),
                ))
            } else {
                Sink::Plain(w)
            };
            *state = Some(WriterState {
                target,
                sink: Some(sink),
            });
        }
        Ok(())
    }
}

#[pymethods]
impl _JsonlWriter {
    #[new]
    #[pyo3(signature = (path, append = false, atomic = false, ensure_ascii = true))]
    fn new(
        path: &Bound<'_, PyAny>,
        append: bool,
        atomic: bool,
        ensure_ascii: bool,
    ) -> PyResult<Self> {
        let path = path_arg("write_jsonl", path)?;
        if append && atomic {
            return Err(Error::InvalidArgument(
                "write_jsonl(): append and atomic cannot both be set".into(),
            )
            .into());
        }
        Ok(_JsonlWriter {
            state: Arc::new(Mutex::new(None)),
            path,
            append,
            atomic,
            ensure_ascii,
            born: generation(),
        })
    }

    /// Serializes `records` (a list or tuple) now, one JSON document per
    /// line, and returns an awaitable that writes them.
    fn write<'py>(
        &self,
        py: Python<'py>,
        records: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        check_fork(self.born, "this JSON-lines writer")?;
        let mut dumper = Dumper::new(self.ensure_ascii);
        let seq = records.try_iter()?;
        for rec in seq {
            dumper.dump(&rec?)?;
            dumper.out.push(b'\n');
        }
        let data = dumper.out;
        let state = Arc::clone(&self.state);
        let (path, append, atomic) = (self.path.clone(), self.append, self.atomic);
        future_into_py(py, async move {
            tokio::task::spawn_blocking(move || -> Result<ReturnNone> {
                let mut st = lock(&state);
                Self::ensure_open(&mut st, &path, append, atomic)?;
                let sink = st.as_mut().and_then(|s| s.sink.as_mut()).ok_or_else(|| {
                    Error::Interface("write_jsonl(): the writer is closed".into())
                })?;
                sink.out()
                    .write_all(&data)
                    .map_err(|e| super::io_err(e, &path))?;
                Ok(ReturnNone)
            })
            .await
            .map_err(|e| Error::Panic(e.to_string()))?
        })
    }

    /// Finishes the file (gzip trailer, flush; atomic: fsync and rename into
    /// place). With `commit=False`, discards it (atomic: removes the temp file).
    #[pyo3(signature = (commit = true))]
    fn close<'py>(&self, py: Python<'py>, commit: bool) -> PyResult<Bound<'py, Awaitable>> {
        check_fork(self.born, "this JSON-lines writer")?;
        let state = Arc::clone(&self.state);
        let (path, append, atomic) = (self.path.clone(), self.append, self.atomic);
        future_into_py(py, async move {
            tokio::task::spawn_blocking(move || -> Result<ReturnNone> {
                let mut st = lock(&state);
                if commit {
                    Self::ensure_open(&mut st, &path, append, atomic)?;
                }
                let Some(mut ws) = st.take() else {
                    return Ok(ReturnNone);
                };
                let finished = ws.sink.take().map(Sink::finish).transpose();
                match (commit, finished) {
                    (true, Ok(Some(file))) => ws.target.commit(file)?,
                    (true, Ok(None)) => {}
                    (true, Err(e)) => {
                        ws.target.discard();
                        return Err(super::io_err(e, &path));
                    }
                    (false, _) => ws.target.discard(),
                }
                Ok(ReturnNone)
            })
            .await
            .map_err(|e| Error::Panic(e.to_string()))?
        })
    }
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<_JsonlReader>()?;
    m.add_class::<_JsonlWriter>()?;
    Ok(())
}
