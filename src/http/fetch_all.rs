//! `fastio.fetch_all` and `fastio.fetch_iter`: many requests driven entirely
//! inside tokio. fetch_all crosses into Python once, with the whole result
//! list; fetch_iter hands results over as they complete, in batches, through
//! a bounded channel (so memory stays bounded when the consumer keeps up).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, Stream, StreamExt};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::errors::{arg_type_error, Error, HttpErrorKind, Result};
use crate::http::client::{default_client, Client, ClientInner};
use crate::http::request::{spec_from_item, RequestArgs, RequestSpec, TimeoutArg};
use crate::http::response::{outcome_to_py, stop_async_iteration, ResponseData};
use crate::retry::{Retry, RetryPolicy};
use crate::runtime::{future_into_py, Awaitable};

type Outcome = Result<ResponseData>;

/// fetch_all's per-request timeout when none is given: 30 s. With a
/// `client=`, an omitted timeout means the client's own.
pub const DEFAULT_TIMEOUT: TimeoutArg = TimeoutArg::Set(Some(Duration::from_secs(30)));

/// How progress is reported.
enum Progress {
    None,
    /// `progress=callable`: called `(done, total)` on the event loop thread,
    /// at most every 100 ms and once at the end.
    Callback {
        cb: Py<PyAny>,
        event_loop: Option<Py<PyAny>>,
        tick: Py<ProgressTick>,
        finished: Arc<AtomicBool>,
    },
    /// `progress=True`: a bar on stderr.
    Bar,
}

const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// An intermediate progress call scheduled on the loop; dropped if it runs
/// after the final `(total, total)` call, so the callback never goes backwards.
#[pyclass(frozen, module = "fastio._fastio")]
struct ProgressTick {
    cb: Py<PyAny>,
    finished: Arc<AtomicBool>,
}

#[pymethods]
impl ProgressTick {
    fn __call__(&self, py: Python<'_>, done: usize, total: usize) -> PyResult<()> {
        if self.finished.load(Ordering::Acquire) {
            return Ok(());
        }
        self.cb.bind(py).call1((done, total)).map(|_| ())
    }
}

impl Progress {
    fn parse(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(obj) = obj.filter(|o| !o.is_none()) else {
            return Ok(Progress::None);
        };
        if obj.is_instance_of::<pyo3::types::PyBool>() {
            return Ok(if obj.is_truthy()? {
                Progress::Bar
            } else {
                Progress::None
            });
        }
        if !obj.is_callable() {
            return Err(arg_type_error(
                "fetch_all",
                "progress",
                "a callable, True or None",
                obj,
            ));
        }
        let event_loop = py
            .import("asyncio")?
            .call_method0("get_running_loop")
            .ok()
            .map(Bound::unbind);
        let finished = Arc::new(AtomicBool::new(false));
        let tick = Py::new(
            py,
            ProgressTick {
                cb: obj.clone().unbind(),
                finished: Arc::clone(&finished),
            },
        )?;
        Ok(Progress::Callback {
            cb: obj.clone().unbind(),
            event_loop,
            tick,
            finished,
        })
    }

    /// Intermediate report, from a tokio thread.
    fn tick(&self, done: usize, total: usize) {
        match self {
            Progress::None => {}
            Progress::Bar => eprint!("\r{}", bar(done, total)),
            Progress::Callback {
                cb,
                event_loop,
                tick,
                ..
            } => Python::attach(|py| {
                let res = match event_loop {
                    Some(l) => l
                        .bind(py)
                        .call_method1(intern!(py, "call_soon_threadsafe"), (tick, done, total))
                        .map(|_| ()),
                    None => cb.bind(py).call1((done, total)).map(|_| ()),
                };
                if let Err(e) = res {
                    e.write_unraisable(py, Some(cb.bind(py)));
                }
            }),
        }
    }

    /// The final report, on the event loop thread.
    fn finish(&self, py: Python<'_>, done: usize, total: usize) -> PyResult<()> {
        match self {
            Progress::None => Ok(()),
            Progress::Bar => {
                eprintln!("\r{}", bar(done, total));
                Ok(())
            }
            Progress::Callback { cb, finished, .. } => {
                finished.store(true, Ordering::Release);
                cb.bind(py).call1((done, total)).map(|_| ())
            }
        }
    }
}

fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!(
        "fetch_all [{}{}] {done}/{total}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    )
}

/// Everything one batch needs, owned by Rust.
struct Batch {
    client: Arc<ClientInner>,
    items: Vec<Result<RequestSpec>>,
    concurrency: usize,
    retry: Option<Arc<RetryPolicy>>,
    total_timeout: Option<Duration>,
}

impl Batch {
    /// The results as they complete: `(index, outcome)`, at most
    /// `concurrency` requests in flight.
    fn run(self) -> impl Stream<Item = (usize, Outcome)> + Send {
        let deadline = self.total_timeout.map(|t| tokio::time::Instant::now() + t);
        let total_timeout = self.total_timeout;
        let client = self.client;
        let retry = self.retry;
        stream::iter(self.items.into_iter().enumerate())
            .map(move |(i, item)| {
                let client = Arc::clone(&client);
                let retry = retry.clone();
                async move {
                    let spec = match item {
                        Ok(spec) => spec,
                        Err(e) => return (i, Err(e)),
                    };
                    // Each request is its own tokio task, so several worker
                    // threads share a batch; aborted when the batch is dropped.
                    let fut = SpawnedRequest(tokio::spawn(async move {
                        client.execute(spec, retry.as_deref()).await
                    }));
                    let out = match deadline {
                        Some(d) => match tokio::time::timeout_at(d, fut).await {
                            Ok(r) => r,
                            Err(_) => Err(Error::http(
                                HttpErrorKind::Timeout,
                                format!(
                                    "fetch_all total_timeout ({:?}) passed before this request finished",
                                    total_timeout.unwrap_or_default()
                                ),
                            )),
                        },
                        None => fut.await,
                    };
                    (i, out)
                }
            })
            .buffer_unordered(self.concurrency)
    }
}

/// A spawned request: its task is aborted if this handle is dropped first
/// (cancelling a batch cancels every request in it).
struct SpawnedRequest(tokio::task::JoinHandle<Outcome>);

impl std::future::Future for SpawnedRequest {
    type Output = Outcome;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Outcome> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| match joined {
                Ok(out) => out,
                Err(e) if e.is_panic() => Err(Error::from_panic(e.into_panic())),
                Err(_) => Err(Error::Interface("the request was cancelled".into())),
            })
    }
}

impl Drop for SpawnedRequest {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Parses the arguments shared by fetch_all and fetch_iter.
#[allow(clippy::too_many_arguments)]
fn make_batch(
    py: Python<'_>,
    func: &str,
    requests: &Bound<'_, PyAny>,
    concurrency: usize,
    timeout: TimeoutArg,
    total_timeout: Option<&Bound<'_, PyAny>>,
    retry: Option<&Bound<'_, Retry>>,
    client: Option<Arc<ClientInner>>,
    headers: Option<&Bound<'_, PyAny>>,
    params: Option<&Bound<'_, PyAny>>,
) -> PyResult<Batch> {
    if concurrency == 0 {
        return Err(
            Error::InvalidArgument(format!("{func}(): concurrency must be >= 1, got 0")).into(),
        );
    }
    let client = match client {
        Some(c) => c,
        None => default_client()?,
    };
    client.check_usable()?;
    let total_timeout = match total_timeout {
        Some(t) => crate::http::request::parse_seconds(func, "total_timeout", t)?,
        None => None,
    };
    let defaults = RequestArgs {
        headers,
        params,
        timeout,
        ..RequestArgs::default()
    };
    let iter = requests.try_iter().map_err(|_| {
        arg_type_error(
            func,
            "requests",
            "an iterable of URLs or requests",
            requests,
        )
    })?;
    let mut items = Vec::with_capacity(requests.len().unwrap_or(0));
    // A URL repeated back to back (polling one endpoint, `[url] * n`) is
    // parsed once: url::Url::parse is ~6,000 instructions per item, all on
    // the event-loop thread before the first request leaves.
    let mut last: Option<(Bound<'_, PyString>, RequestSpec)> = None;
    for item in iter {
        let item = item?;
        if let (Ok(text), Some((prev, spec))) = (item.cast_exact::<PyString>(), &last) {
            let same =
                text.is(prev) || matches!((text.to_str(), prev.to_str()), (Ok(a), Ok(b)) if a == b);
            if same {
                items.push(Ok(spec.clone()));
                continue;
            }
        }
        let spec = spec_from_item(py, client.base_url.as_ref(), &item, &defaults);
        if let (Ok(text), Ok(spec)) = (item.cast_exact::<PyString>(), &spec) {
            last = Some((text.clone(), spec.clone()));
        }
        items.push(spec.map_err(Error::from));
    }
    Ok(Batch {
        client,
        items,
        concurrency,
        retry: retry.map(|r| Arc::new(r.get().policy.clone())),
        total_timeout,
    })
}

/// The result list of fetch_all, built on the event-loop thread in one pass.
struct FetchAllOut {
    results: Vec<Option<Outcome>>,
    progress: Progress,
}

impl<'py> IntoPyObject<'py> for FetchAllOut {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let total = self.results.len();
        let items = self
            .results
            .into_iter()
            .map(|r| match r {
                Some(r) => outcome_to_py(py, r),
                None => Ok(py.None()),
            })
            .collect::<PyResult<Vec<_>>>()?;
        let list = PyList::new(py, items)?;
        self.progress.finish(py, total, total)?;
        Ok(list)
    }
}

fn fetch_all_impl<'py>(
    py: Python<'py>,
    mut batch: Batch,
    return_exceptions: bool,
    progress: Progress,
) -> PyResult<Bound<'py, Awaitable>> {
    if !return_exceptions {
        if let Some(pos) = batch.items.iter().position(|r| r.is_err()) {
            if let Err(e) = batch.items.swap_remove(pos) {
                return Err(e.into());
            }
        }
    }
    future_into_py(py, async move {
        let total = batch.items.len();
        let mut results: Vec<Option<Outcome>> = Vec::with_capacity(total);
        results.resize_with(total, || None);
        let mut done = 0usize;
        let mut last = Instant::now();
        let mut s = std::pin::pin!(batch.run());
        while let Some((i, r)) = s.next().await {
            if !return_exceptions {
                if let Err(e) = r {
                    return Err(e); // dropping the stream cancels the rest
                }
            }
            results[i] = Some(r);
            done += 1;
            if !matches!(progress, Progress::None)
                && last.elapsed() >= PROGRESS_EVERY
                && done < total
            {
                last = Instant::now();
                progress.tick(done, total);
            }
        }
        Ok(FetchAllOut { results, progress })
    })
}

/// `await fastio.fetch_all(requests, ...)`: see the stub for the contract.
#[pyfunction]
#[pyo3(signature = (
    requests, *, concurrency = 100, timeout = DEFAULT_TIMEOUT, total_timeout = None, retry = None,
    return_exceptions = true, client = None, progress = None, headers = None, params = None
))]
#[allow(clippy::too_many_arguments)]
pub fn fetch_all<'py>(
    py: Python<'py>,
    requests: &Bound<'py, PyAny>,
    concurrency: usize,
    timeout: TimeoutArg,
    total_timeout: Option<&Bound<'py, PyAny>>,
    retry: Option<&Bound<'py, Retry>>,
    return_exceptions: bool,
    client: Option<&Bound<'py, Client>>,
    progress: Option<&Bound<'py, PyAny>>,
    headers: Option<&Bound<'py, PyAny>>,
    params: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, Awaitable>> {
    let batch = make_batch(
        py,
        "fetch_all",
        requests,
        concurrency,
        timeout,
        total_timeout,
        retry,
        client.map(|c| Arc::clone(&c.get().inner)),
        headers,
        params,
    )?;
    let progress = Progress::parse(py, progress)?;
    fetch_all_impl(py, batch, return_exceptions, progress)
}

/// `fastio.fetch_iter(requests, ...)`: an async iterator of
/// `(index, Response | exception)` in completion order.
#[pyfunction]
#[pyo3(signature = (
    requests, *, concurrency = 100, timeout = DEFAULT_TIMEOUT, total_timeout = None, retry = None,
    return_exceptions = true, client = None, headers = None, params = None
))]
#[allow(clippy::too_many_arguments)]
pub fn fetch_iter(
    py: Python<'_>,
    requests: &Bound<'_, PyAny>,
    concurrency: usize,
    timeout: TimeoutArg,
    total_timeout: Option<&Bound<'_, PyAny>>,
    retry: Option<&Bound<'_, Retry>>,
    return_exceptions: bool,
    client: Option<&Bound<'_, Client>>,
    headers: Option<&Bound<'_, PyAny>>,
    params: Option<&Bound<'_, PyAny>>,
) -> PyResult<FetchIter> {
    let batch = make_batch(
        py,
        "fetch_iter",
        requests,
        concurrency,
        timeout,
        total_timeout,
        retry,
        client.map(|c| Arc::clone(&c.get().inner)),
        headers,
        params,
    )?;
    Ok(FetchIter::new(batch, return_exceptions))
}

type Item = (usize, Outcome);
type Driver = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The async iterator fetch_iter returns. The requests start on the first
/// `__anext__`; dropping or closing it cancels what is still running.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct FetchIter {
    driver: Mutex<Option<Driver>>,
    abort: Arc<Mutex<Option<AbortHandle>>>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Item>>>,
    buffer: Arc<Mutex<VecDeque<Item>>>,
    return_exceptions: bool,
    /// Set once an error was raised (`return_exceptions=False`): the
    /// iteration is over and the remaining requests are cancelled.
    failed: Arc<AtomicBool>,
}

fn abort_driver(abort: &Mutex<Option<AbortHandle>>) {
    if let Some(a) = abort.lock().unwrap_or_else(|p| p.into_inner()).take() {
        a.abort();
    }
}

const BATCH_MAX: usize = 1024;

impl FetchIter {
    fn new(batch: Batch, return_exceptions: bool) -> Self {
        let (tx, rx) = mpsc::channel(batch.concurrency.clamp(1, 4096));
        let driver: Driver = Box::pin(async move {
            let mut s = std::pin::pin!(batch.run());
            while let Some(item) = s.next().await {
                if tx.send(item).await.is_err() {
                    break; // the iterator is gone
                }
            }
        });
        FetchIter {
            driver: Mutex::new(Some(driver)),
            abort: Arc::new(Mutex::new(None)),
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            buffer: Arc::new(Mutex::new(VecDeque::new())),
            return_exceptions,
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn stop(&self) {
        self.driver.lock().unwrap_or_else(|p| p.into_inner()).take();
        abort_driver(&self.abort);
    }
}

impl Drop for FetchIter {
    fn drop(&mut self) {
        self.stop();
    }
}

struct ItemOut {
    item: Item,
    return_exceptions: bool,
}

impl<'py> IntoPyObject<'py> for ItemOut {
    type Target = PyTuple;
    type Output = Bound<'py, PyTuple>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let (i, r) = self.item;
        if !self.return_exceptions {
            if let Err(e) = r {
                return Err(e.into_pyerr(py));
            }
        }
        PyTuple::new(py, [i.into_py_any(py)?, outcome_to_py(py, r)?])
    }
}

/// An awaitable that is already done: `__anext__` returns it when results
/// are waiting in the buffer, saving a trip through tokio.
#[pyclass(module = "fastio._fastio")]
struct Ready {
    value: Option<PyResult<Py<PyAny>>>,
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self) -> PyResult<Py<PyAny>> {
        match self.value.take() {
            Some(Ok(v)) => Err(PyStopIteration::new_err((v,))),
            Some(Err(e)) => Err(e),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    #[pyo3(signature = (_value = None))]
    fn send(&mut self, _value: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        self.__next__()
    }

    fn close(&mut self) {
        self.value = None;
    }
}

#[pymethods]
impl FetchIter {
    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __anext__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.failed.load(Ordering::Acquire) {
            self.stop();
            self.buffer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            let end = Err(stop_async_iteration().into_pyerr(py));
            return Ok(Py::new(py, Ready { value: Some(end) })?.into_any());
        }
        if let Some(fut) = self.driver.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let handle = crate::runtime::handle()?;
            let task = handle.spawn(fut);
            *self.abort.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        }
        let buffered = self
            .buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        if let Some(item) = buffered {
            if !self.return_exceptions && item.1.is_err() {
                self.failed.store(true, Ordering::Release);
                self.stop();
            }
            let value = ItemOut {
                item,
                return_exceptions: self.return_exceptions,
            }
            .into_pyobject(py)
            .map(|t| t.into_any().unbind());
            return Ok(Py::new(py, Ready { value: Some(value) })?.into_any());
        }
        let rx = Arc::clone(&self.rx);
        let buffer = Arc::clone(&self.buffer);
        let return_exceptions = self.return_exceptions;
        let (failed, abort) = (Arc::clone(&self.failed), Arc::clone(&self.abort));
        let fut = future_into_py(py, async move {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return Err(stop_async_iteration());
            };
            if !return_exceptions && first.1.is_err() {
                failed.store(true, Ordering::Release);
                abort_driver(&abort);
            }
            let mut buf = buffer.lock().unwrap_or_else(|p| p.into_inner());
            while buf.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(item) => buf.push_back(item),
                    Err(_) => break,
                }
            }
            Ok(ItemOut {
                item: first,
                return_exceptions,
            })
        })?;
        Ok(fut.into_any().unbind())
    }

    /// Cancels the requests still running.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        self.stop();
        future_into_py(py, async move { Ok(crate::runtime::ReturnNone) })
    }
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fetch_all, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_iter, m)?)?;
    m.add_class::<FetchIter>()?;
    m.add_class::<Ready>()?;
    m.add_class::<ProgressTick>()?;
    Ok(())
}
