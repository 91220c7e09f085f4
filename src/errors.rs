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
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
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
            Error::Timeout(msg) => new_err(py, Exc::TimeoutError, msg),
            Error::InvalidArgument(msg) => new_err(py, Exc::InvalidArgumentError, msg),
            Error::Connection(msg) => new_err(py, Exc::ConnectionError, msg),
            Error::Postgres(info) => crate::db::postgres::server_error_to_py(py, *info),
            Error::Data(msg) => crate::db::postgres::data_error_to_py(py, msg),
            // pyo3 maps io::ErrorKind to the builtin OSError subclasses
            // (FileNotFoundError, PermissionError, ...), as Python's open() raises.
            Error::Io(e) => e.into(),
            Error::Json(e) => PyValueError::new_err(format!("invalid JSON: {e}")),
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

/// Where a base class of one of our exceptions comes from.
#[derive(Clone, Copy)]
enum Base {
    Builtin(&'static str),
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

use Base::{Builtin, Ours};

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
