//! Hooks for the test suite and benches/bench_bridge.py: live-task counting,
//! deliberate panics and errors, and the plain pyo3-async-runtimes bridge as
//! the baseline the shipped bridge is measured against. Not public API.

use std::sync::Once;
use std::time::Duration;

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;

use crate::errors::{Error, Result};
use crate::runtime::{future_into_py, live_tasks, Awaitable, ReturnNone};

/// Bridged Rust futures that exist right now (spawned and not yet dropped).
#[pyfunction]
fn _live_tasks() -> usize {
    live_tasks()
}

/// Requests the lean HTTP/1.1 path took, and how many of them it handed
/// to reqwest: `(taken, handed_over)` since the process started.
/// `(futures finished on a loop thread, futures moved from a loop thread
/// to tokio, sockets watched by a loop now)`: see `runtime::Parked`.
#[pyfunction]
fn _loop_reads() -> (u64, u64, usize) {
    crate::runtime::loop_read_counts()
}

#[pyfunction]
fn _http_lean_stats() -> (u64, u64) {
    crate::http::h1::stats()
}

/// Panics in Rust: on the calling thread (`in_task=False`) or inside a tokio
/// task behind an awaitable (`in_task=True`).
#[pyfunction]
#[pyo3(signature = (message, in_task = true))]
fn _panic(py: Python<'_>, message: String, in_task: bool) -> PyResult<Bound<'_, Awaitable>> {
    if !in_task {
        panic!("{message}");
    }
    future_into_py(py, async move {
        tokio::task::yield_now().await;
        if !message.is_empty() {
            panic!("{message}");
        }
        Ok(ReturnNone)
    })
}

/// An awaitable that fails on a tokio thread after `delay` seconds with the
/// error `kind` names, to check each arrives as its Python type.
#[pyfunction]
#[pyo3(signature = (kind, message, delay = 0.0))]
fn _fail(
    py: Python<'_>,
    kind: String,
    message: String,
    delay: f64,
) -> PyResult<Bound<'_, Awaitable>> {
    future_into_py(py, async move {
        tokio::time::sleep(Duration::from_secs_f64(delay.max(0.0))).await;
        let err = match kind.as_str() {
            "timeout" => Error::Timeout(message),
            "interface" => Error::Interface(message),
            "invalid" => Error::InvalidArgument(message),
            "not_found" => std::io::Error::new(std::io::ErrorKind::NotFound, message).into(),
            "permission" => {
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, message).into()
            }
            "json" => serde_json::from_str::<serde_json::Value>(&message)
                .unwrap_err()
                .into(),
            "key" => PyKeyError::new_err(message).into(),
            other => Error::InvalidArgument(format!("_fail(): unknown kind {other:?}")),
        };
        Result::<ReturnNone>::Err(err)
    })
}

/// The shipped bridge on a future that completes at once on a tokio thread.
#[pyfunction]
fn _noop(py: Python<'_>, value: u64) -> PyResult<Bound<'_, Awaitable>> {
    future_into_py(py, async move { Ok(value) })
}

/// The baseline: the same future through pyo3-async-runtimes' `future_into_py`,
/// used plainly, on a runtime with as many workers as ours.
#[pyfunction]
fn _noop_plain(py: Python<'_>, value: u64) -> PyResult<Bound<'_, PyAny>> {
    static INIT: Once = Once::new();
    let workers = crate::runtime::handle()?.metrics().num_workers();
    INIT.call_once(|| {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers).enable_all();
        pyo3_async_runtimes::tokio::init(builder);
    });
    pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(value) })
}

/// Logs one record from Rust, on this thread or on a tokio thread.
#[pyfunction]
#[pyo3(signature = (level, message, target = "fastio::testing".to_owned(), on_tokio = false))]
fn _log<'py>(
    py: Python<'py>,
    level: &str,
    message: String,
    target: String,
    on_tokio: bool,
) -> PyResult<Option<Bound<'py, Awaitable>>> {
    let level: log::Level = level
        .parse()
        .map_err(|_| Error::InvalidArgument(format!("_log(): unknown level {level:?}")))?;
    if !on_tokio {
        log::log!(target: &target, level, "{message}");
        return Ok(None);
    }
    future_into_py(py, async move {
        log::log!(target: &target, level, "{message}");
        Ok(ReturnNone)
    })
    .map(Some)
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_live_tasks, m)?)?;
    m.add_function(wrap_pyfunction!(_http_lean_stats, m)?)?;
    m.add_function(wrap_pyfunction!(_loop_reads, m)?)?;
    m.add_function(wrap_pyfunction!(_panic, m)?)?;
    m.add_function(wrap_pyfunction!(_fail, m)?)?;
    m.add_function(wrap_pyfunction!(_noop, m)?)?;
    m.add_function(wrap_pyfunction!(_noop_plain, m)?)?;
    m.add_function(wrap_pyfunction!(_log, m)?)?;
    Ok(())
}
