//! The exception tree under `fastio.FastIOError`, and the one conversion from
//! Rust errors to Python exceptions.
//!
//! Classes are built at import with `type(name, bases, ns)` rather than
//! `create_exception!`, because several of them need two bases (ours and a
//! builtin, e.g. `fastio.TimeoutError(FastIOError, builtins.TimeoutError)`) so
//! that `except TimeoutError` in existing code keeps working.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// Every error fastio's Rust code produces. Converted to a Python exception
/// only on a thread attached to Python (the event-loop thread for awaitables).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Already a Python exception: passes through unchanged.
    #[error(transparent)]
    Python(#[from] PyErr),
    /// A Rust panic caught at the boundary.
    #[error("{0}")]
    Panic(String),
    /// An object created before `os.fork()` was used in the child.
    #[error(
        "{0} was created in the parent process before os.fork(); create a new one in the child"
    )]
    UsedAfterFork(&'static str),
    /// Use of a closed or otherwise unusable object.
    #[error("{0}")]
    Interface(String),
    /// A circuit breaker refused the call.
    #[error("circuit breaker {breaker:?} is open; retry in {:.3}s", .retry_after.as_secs_f64())]
    CircuitOpen {
        breaker: String,
        retry_after: std::time::Duration,
    },
    /// A deadline passed.
    #[error("{0}")]
    Timeout(String),
    /// A bad argument value; the message names the argument.
    #[error("{0}")]
    InvalidArgument(String),
    /// A connection could not be made or was lost.
    #[error("{0}")]
    Connection(String),
    /// An error reported by the PostgreSQL server, raised as the asyncpg
    /// class of its SQLSTATE.
    #[error("{}", .0.message)]
    Postgres(Box<crate::db::postgres::PgErrorInfo>),
    /// A query argument that does not fit the server's parameter type
    /// (asyncpg's `DataError`, "invalid input for query argument $N").
    #[error("{0}")]
    Data(String),
    /// A MySQL server error: PyMySQL's class for its errno.
    #[error("({}) {}", .0.errno, .0.message)]
    MySql(Box<crate::db::mysql::MySqlErrorInfo>),
    /// An SQLite error: sqlite3's class for its result code.
    #[error("{}", .0.message)]
    Sqlite(Box<crate::db::sqlite::SqliteErrorInfo>),
    /// A MySQL / SQLite query argument that cannot be bound (DB-API
    /// `ProgrammingError`).
    #[error("{0}")]
    Bind(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An I/O error on a named file: raised as Python's `open()` raises it,
    /// `OSError(errno, strerror, filename)` (so FileNotFoundError & co.).
    #[error("{source}: {path}")]
    IoPath {
        source: std::io::Error,
        path: String,
    },
    /// An invalid line of a JSON-lines file (`line` counts from 1).
    #[error("{msg}: line {line} column {} of {path}", .pos + 1)]
    JsonLine {
        path: String,
        line: u64,
        pos: usize,
        msg: String,
        doc: String,
    },
    /// A line of a JSON-lines file that is not valid UTF-8.
    #[error("'utf-8' codec can't decode line {line} of {path}: {reason}")]
    Utf8Line {
        path: String,
        line: u64,
        bytes: Vec<u8>,
        start: usize,
        end: usize,
        reason: &'static str,
    },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// An HTTP failure; the message never holds credentials (URLs are redacted).
    #[error("{msg}")]
    Http { kind: HttpErrorKind, msg: String },
    /// `raise_for_status()` on a 4xx/5xx response.
    #[error("{msg}")]
    HttpStatus {
        status: u16,
        url: String,
        msg: String,
    },
}

/// Which HTTP exception class an [`Error::Http`] becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// Any other transport failure.
    Request,
    Connect,
    Tls,
    /// The whole request (or a fetch_all batch) ran out of time.
    Timeout,
    ConnectTimeout,
    ReadTimeout,
    /// The connection broke while the response was read.
    Read,
    TooManyRedirects,
    BodyTooLarge,
    Decoding,
    InvalidUrl,
}

impl HttpErrorKind {
    /// Whether the failure is the remote side's (or the network's), as
    /// opposed to our request or the size limit: what a circuit breaker counts.
    pub fn is_transport(self) -> bool {
        matches!(
            self,
            HttpErrorKind::Request
                | HttpErrorKind::Connect
                | HttpErrorKind::Tls
                | HttpErrorKind::Timeout
                | HttpErrorKind::ConnectTimeout
                | HttpErrorKind::ReadTimeout
                | HttpErrorKind::Read
        )
    }

    /// The exception class this kind maps to.
    pub fn exc(self) -> Exc {
        match self {
            HttpErrorKind::Request => Exc::RequestError,
            HttpErrorKind::Connect => Exc::ConnectError,
            HttpErrorKind::Tls => Exc::TLSError,
            HttpErrorKind::Timeout => Exc::HTTPTimeoutError,
            HttpErrorKind::ConnectTimeout => Exc::ConnectTimeout,
            HttpErrorKind::ReadTimeout => Exc::ReadTimeout,
            HttpErrorKind::Read => Exc::ReadError,
            HttpErrorKind::TooManyRedirects => Exc::TooManyRedirects,
            HttpErrorKind::BodyTooLarge => Exc::BodyTooLarge,
            HttpErrorKind::Decoding => Exc::DecodingError,
            HttpErrorKind::InvalidUrl => Exc::InvalidURL,
        }
    }

    /// Every kind, for precomputing which ones a retry policy covers.
    pub const ALL: [HttpErrorKind; 11] = [
        HttpErrorKind::Request,
        HttpErrorKind::Connect,
        HttpErrorKind::Tls,
        HttpErrorKind::Timeout,
        HttpErrorKind::ConnectTimeout,
        HttpErrorKind::ReadTimeout,
        HttpErrorKind::Read,
        HttpErrorKind::TooManyRedirects,
        HttpErrorKind::BodyTooLarge,
        HttpErrorKind::Decoding,
        HttpErrorKind::InvalidUrl,
    ];
}

impl Error {
    pub fn http(kind: HttpErrorKind, msg: impl Into<String>) -> Self {
        Error::Http {
            kind,
            msg: msg.into(),
        }
    }
}

/// Credentials in a URL replaced by `***`, for messages and reprs.
pub fn redact_url(url: &url::Url) -> String {
    if url.password().is_none() && url.username().is_empty() {
        return url.as_str().to_owned();
    }
    let mut u = url.clone();
    let _ = u.set_username(if url.username().is_empty() { "" } else { "***" });
    let _ = u.set_password(url.password().map(|_| "***"));
    u.as_str().to_owned()
}

/// The one mapping from reqwest errors to ours. `url` is the (redacted)
/// request URL; reqwest's own message is used without its URL so that
/// credentials cannot leak through it.
pub fn from_reqwest(err: reqwest::Error, url: &str) -> Error {
    let kind = if err.is_timeout() {
        if err.is_connect() {
            HttpErrorKind::ConnectTimeout
        } else {
            HttpErrorKind::ReadTimeout
        }
    } else if err.is_redirect() {
        HttpErrorKind::TooManyRedirects
    } else if err.is_connect() {
        if source_is_tls(&err) {
            HttpErrorKind::Tls
        } else {
            HttpErrorKind::Connect
        }
    } else if err.is_decode() {
        HttpErrorKind::Decoding
    } else if err.is_body() || err.is_request() {
        HttpErrorKind::Read
    } else if err.is_builder() {
        HttpErrorKind::InvalidUrl
    } else {
        HttpErrorKind::Request
    };
    let mut msg = String::new();
    let bare = err.without_url();
    let mut cur: Option<&dyn std::error::Error> = Some(&bare);
    while let Some(e) = cur {
        let text = e.to_string();
        if !text.is_empty() && !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
        cur = e.source();
    }
    let what = match kind {
        HttpErrorKind::ConnectTimeout => "connect timed out",
        HttpErrorKind::ReadTimeout => "timed out",
        HttpErrorKind::TooManyRedirects => "too many redirects",
        HttpErrorKind::Connect => "connection failed",
        HttpErrorKind::Tls => "TLS handshake failed",
        HttpErrorKind::Decoding => "could not decode the response body",
        HttpErrorKind::Read => "connection broken",
        _ => "request failed",
    };
    Error::http(kind, format!("{what} for {url}: {msg}"))
}

fn source_is_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if inner.downcast_ref::<rustls::Error>().is_some() {
                    return true;
                }
            }
        }
        // hyper-util boxes the connector's error, which can hide the type.
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("certificate")
            || text.contains("tls handshake")
            || text.contains("peer sent")
        {
            return true;
        }
        cur = e.source();
    }
    false
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Message of a caught panic payload (`&str` or `String`; anything else is opaque).
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let msg = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "Rust panic with a non-string payload".to_owned()
        };
        Error::Panic(msg)
    }

    pub fn into_pyerr(self, py: Python<'_>) -> PyErr {
        match self {
            Error::Python(e) => e,
            Error::Panic(msg) => new_err(py, Exc::PanicError, format!("Rust panic: {msg}")),
            e @ Error::UsedAfterFork(_) => new_err(py, Exc::UsedAfterForkError, e.to_string()),
            Error::Interface(msg) => new_err(py, Exc::InterfaceError, msg),
            Error::CircuitOpen {
                breaker,
                retry_after,
            } => crate::breaker::open_error(py, &breaker, retry_after),
            Error::Timeout(msg) => new_err(py, Exc::TimeoutError, msg),
            Error::InvalidArgument(msg) => new_err(py, Exc::InvalidArgumentError, msg),
            Error::Connection(msg) => new_err(py, Exc::ConnectionError, msg),
            Error::Postgres(info) => crate::db::postgres::server_error_to_py(py, *info),
            Error::Data(msg) => crate::db::postgres::data_error_to_py(py, msg),
            Error::MySql(info) => crate::db::mysql::server_error_to_py(py, *info),
            Error::Sqlite(info) => crate::db::sqlite::server_error_to_py(py, *info),
            Error::Bind(msg) => crate::db::mysql::bind_error_to_py(py, msg),
            // pyo3 maps io::ErrorKind to the builtin OSError subclasses
            // (FileNotFoundError, PermissionError, ...), as Python's open() raises.
            Error::Io(e) => e.into(),
            Error::IoPath { source, path } => os_error(py, source, &path),
            e @ Error::JsonLine { .. } => json_line_error(py, e),
            Error::Utf8Line {
                path,
                line,
                bytes,
                start,
                end,
                reason,
            } => utf8_line_error(py, &path, line, bytes, start, end, reason),
            Error::Json(e) => PyValueError::new_err(format!("invalid JSON: {e}")),
            Error::Http { kind, msg } => new_err(py, kind.exc(), msg),
            Error::HttpStatus { status, url, msg } => {
                let err = new_err(py, Exc::HTTPStatusError, msg);
                let value = err.value(py);
                // Attributes for `except HTTPStatusError as e: e.status`.
                let _ = value.setattr("status", status);
                let _ = value.setattr("url", url);
                err
            }
        }
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Python(e) => e,
            other => Python::attach(|py| other.into_pyerr(py)),
        }
    }
}

/// `OSError(errno, strerror, filename)`: Python picks the subclass from the
/// errno (FileNotFoundError, PermissionError, IsADirectoryError, ...) and the
/// message reads like `open()`'s.
fn os_error(py: Python<'_>, e: std::io::Error, path: &str) -> PyErr {
    let Some(errno) = e.raw_os_error() else {
        return e.into();
    };
    let build = || -> PyResult<PyErr> {
        let strerror = py.import("os")?.call_method1("strerror", (errno,))?;
        let exc = py
            .import("builtins")?
            .getattr("OSError")?
            .call1((errno, strerror, path))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|err| err)
}

/// `fastio.JSONDecodeError`: a `json.JSONDecodeError` whose `lineno` is the
/// line of the file, `doc` that line's text and `pos` the offset in it.
fn json_line_error(py: Python<'_>, e: Error) -> PyErr {
    let message = e.to_string();
    let Error::JsonLine {
        path,
        line,
        pos,
        msg,
        doc,
    } = e
    else {
        unreachable!("called with a JsonLine error");
    };
    let build = || -> PyResult<PyErr> {
        let exc = exc_type(py, Exc::JSONDecodeError)?.call1((msg, doc, pos))?;
        exc.setattr("lineno", line)?;
        exc.setattr("colno", pos + 1)?;
        exc.setattr("path", path)?;
        exc.setattr("args", (message,))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|err| err)
}

/// A real `UnicodeDecodeError` for one line, with `lineno` and `path` set.
fn utf8_line_error(
    py: Python<'_>,
    path: &str,
    line: u64,
    bytes: Vec<u8>,
    start: usize,
    end: usize,
    reason: &str,
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let exc = py
            .import("builtins")?
            .getattr("UnicodeDecodeError")?
            .call1((
                "utf-8",
                pyo3::types::PyBytes::new(py, &bytes),
                start,
                end,
                reason,
            ))?;
        exc.setattr("lineno", line)?;
        exc.setattr("path", path)?;
        if exc.hasattr("add_note")? {
            exc.call_method1("add_note", (format!("in line {line} of {path}"),))?;
        }
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|err| err)
}

/// Where a base class of one of our exceptions comes from.
#[derive(Clone, Copy)]
enum Base {
    Builtin(&'static str),
    /// A class of the standard library: (module, name).
    Module(&'static str, &'static str),
    Ours(Exc),
}

macro_rules! exception_tree {
    ($( $name:ident ( $($base:expr),+ ) = $doc:literal; )*) => {
        /// The fastio exception classes, in definition order (bases first).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[allow(clippy::enum_variant_names)]
        pub enum Exc { $($name),* }

        impl Exc {
            const ALL: &'static [Exc] = &[$(Exc::$name),*];

            fn name(self) -> &'static str {
                match self { $(Exc::$name => stringify!($name)),* }
            }

            fn bases(self) -> &'static [Base] {
                match self { $(Exc::$name => &[$($base),+]),* }
            }

            fn doc(self) -> &'static str {
                match self { $(Exc::$name => $doc),* }
            }
        }
    };
}

use Base::{Builtin, Module, Ours};

exception_tree! {
    FastIOError(Builtin("Exception")) = "Base class of every exception fastio raises.";
    InterfaceError(Ours(Exc::FastIOError)) =
        "An object was used in a way it does not support (closed, or used after fork).";
    UsedAfterForkError(Ours(Exc::InterfaceError)) =
        "An object created before os.fork() was used in the child process.";
    PanicError(Ours(Exc::FastIOError)) =
        "A bug inside fastio's Rust code (a panic) was caught; the process keeps running.";
    TimeoutError(Ours(Exc::FastIOError), Builtin("TimeoutError")) =
        "A fastio deadline passed. Also a builtin TimeoutError (and asyncio.TimeoutError).";
    ConnectionError(Ours(Exc::FastIOError), Builtin("ConnectionError")) =
        "A connection could not be made or was lost. Also a builtin ConnectionError.";
    InvalidArgumentError(Ours(Exc::FastIOError), Builtin("ValueError")) =
        "An argument had a bad value; the message names the argument. Also a ValueError.";
    CircuitOpenError(Ours(Exc::FastIOError)) =
        "A circuit breaker is open, so the call was not made; `retry_after` says when to retry.";
    JSONDecodeError(Ours(Exc::FastIOError), Module("json", "JSONDecodeError")) =
        "An invalid line in a JSON-lines file. Also a json.JSONDecodeError (so a ValueError): \
         lineno is the line of the file, doc its text, pos the offset in it, path the file.";
    HTTPError(Ours(Exc::FastIOError)) = "Base class of the HTTP client's errors.";
    RequestError(Ours(Exc::HTTPError)) =
        "An HTTP request failed before a complete response arrived.";
    ConnectError(Ours(Exc::RequestError), Ours(Exc::ConnectionError)) =
        "Could not connect (refused, DNS, unreachable). Also a builtin ConnectionError.";
    TLSError(Ours(Exc::ConnectError)) =
        "The TLS handshake failed (e.g. an untrusted certificate).";
    ReadError(Ours(Exc::RequestError), Ours(Exc::ConnectionError)) =
        "The connection broke while the response was read. Also a builtin ConnectionError.";
    HTTPTimeoutError(Ours(Exc::RequestError), Ours(Exc::TimeoutError)) =
        "An HTTP timeout passed. Also a builtin TimeoutError.";
    ConnectTimeout(Ours(Exc::HTTPTimeoutError)) = "Connecting took longer than connect_timeout.";
    ReadTimeout(Ours(Exc::HTTPTimeoutError)) =
        "The response did not arrive (or finish) within the request timeout.";
    TooManyRedirects(Ours(Exc::RequestError)) = "More redirects than max_redirects.";
    BodyTooLarge(Ours(Exc::RequestError)) = "The response body exceeded max_body_size.";
    DecodingError(Ours(Exc::RequestError), Builtin("ValueError")) =
        "The response body could not be decoded (content encoding, charset or JSON).";
    InvalidURL(Ours(Exc::HTTPError), Ours(Exc::InvalidArgumentError)) =
        "A malformed URL or an unsupported scheme. Also a ValueError.";
    HTTPStatusError(Ours(Exc::HTTPError)) =
        "raise_for_status() on a 4xx/5xx response; has .status and .url.";
}

static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn build_classes(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let builtins = py.import("builtins")?;
    let type_ = py.get_type::<PyType>();
    let mut made: Vec<Py<PyType>> = Vec::with_capacity(Exc::ALL.len());
    for exc in Exc::ALL {
        let bases = exc
            .bases()
            .iter()
            .map(|b| match *b {
                Builtin(name) => builtins.getattr(name),
                Module(module, name) => py.import(module)?.getattr(name),
                Ours(parent) => Ok(made[parent as usize].bind(py).clone().into_any()),
            })
            .collect::<PyResult<Vec<_>>>()?;
        let ns = PyDict::new(py);
        ns.set_item("__module__", "fastio")?;
        ns.set_item("__doc__", exc.doc())?;
        let cls = type_.call1((exc.name(), PyTuple::new(py, bases)?, ns))?;
        made.push(cls.cast_into::<PyType>()?.unbind());
    }
    Ok(made)
}

/// The class object of one of our exceptions.
pub fn exc_type(py: Python<'_>, exc: Exc) -> PyResult<&Bound<'_, PyType>> {
    let classes = CLASSES.get_or_try_init(py, || build_classes(py))?;
    Ok(classes[exc as usize].bind(py))
}

/// A new exception of one of our classes with a message.
pub fn new_err(py: Python<'_>, exc: Exc, msg: impl Into<String>) -> PyErr {
    match exc_type(py, exc) {
        Ok(ty) => PyErr::from_type(ty.clone(), msg.into()),
        Err(e) => e,
    }
}

/// A `TypeError` naming the argument and what it expected.
pub fn arg_type_error(func: &str, arg: &str, expected: &str, got: &Bound<'_, PyAny>) -> PyErr {
    let got = got
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned());
    PyTypeError::new_err(format!("{func}(): {arg} must be {expected}, not {got}"))
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for exc in Exc::ALL {
        m.add(exc.name(), exc_type(py, *exc)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn panic_payload_messages() {
        let from_str = Error::from_panic(Box::new("static message"));
        assert_eq!(from_str.to_string(), "static message");
        let from_string = Error::from_panic(Box::new(String::from("formatted 42")));
        assert_eq!(from_string.to_string(), "formatted 42");
        let opaque = Error::from_panic(Box::new(42_u8));
        assert!(opaque.to_string().contains("non-string payload"));
    }

    #[test]
    fn fork_message_tells_what_to_do() {
        let msg = Error::UsedAfterFork("this pool").to_string();
        assert!(msg.starts_with("this pool was created in the parent process"));
        assert!(msg.contains("create a new one in the child"));
    }
}
