//! The one tokio runtime, fork safety, and the asyncio bridge.
//!
//! # The bridge
//! Every fastio coroutine is an [`Awaitable`]: a Rust object that asyncio sees
//! both as a coroutine (`send`/`throw`/`close`/`__await__`, so `create_task`
//! and `TaskGroup` accept it) and as a future (`_asyncio_future_blocking`,
//! `add_done_callback`, `cancel`, ... so a Task can wait on it and `gather` /
//! `wait_for` use it without wrapping it in a Task).
//!
//! The Rust future is spawned on tokio when first awaited (like a coroutine,
//! nothing runs before that). When it finishes, the tokio thread does NOT take
//! the GIL: it pushes `(awaitable, completion)` onto its event loop's queue and,
//! only if the queue was empty, writes to an eventfd the loop watches with
//! `add_reader`. The loop thread then drains the whole batch: converts each
//! result to Python objects and wakes the waiting tasks directly. One loop
//! wake-up per batch, no GIL hand-off per completion (the trap that makes a
//! plain `call_soon_threadsafe` bridge cost 10-20 us per await).
//!
//! Cancelling the awaitable (Task cancellation, `wait_for` timeout, TaskGroup
//! abort) aborts the tokio task, which drops the Rust future.

use std::cell::RefCell;
use std::future::Future;
use std::os::fd::RawFd;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::Duration;

use futures::FutureExt;
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};
use pyo3::{intern, IntoPyObjectExt, PyTraverseError, PyVisit};
use tokio::runtime::{Handle, Runtime};
use tokio::task::AbortHandle;

use crate::errors::{arg_type_error, new_err, Error, Exc, Result};

// ---------------------------------------------------------------- runtime --

/// Bumped in the child after `fork()`: everything tagged with an older value
/// belongs to the parent (its tokio threads do not exist in the child).
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
/// `configure(worker_threads=N)`; 0 means "not configured".
static CONFIGURED_WORKERS: AtomicUsize = AtomicUsize::new(0);
/// Two tokio workers (one on a 1-core machine). Measured on 2 cores with
/// `make bench`: a second worker costs trivial futures (bench_bridge.py's
/// 100k gather: 263k/s against 368k/s) but overlaps the I/O of real work:
/// fetch_all 0.84x of wrk against 0.55x, the pool point select of
/// bench_pg.py ~3.2x asyncpg against ~2.4x, MySQL's within noise.
const MAX_DEFAULT_WORKERS: usize = 2;

struct RuntimeSlot {
    generation: u64,
    runtime: Runtime,
    workers: usize,
}

/// Only locked by threads attached to Python, so it is never held by another
/// thread while `os.fork()` (which holds the GIL) runs.
static RUNTIME: Mutex<Option<RuntimeSlot>> = Mutex::new(None);

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
}

fn install_fork_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registering a plain function with no captured state; the
        // handler only touches an atomic, which is async-signal-safe.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// The current fork generation; objects record it when created.
pub fn generation() -> u64 {
    FORK_GENERATION.load(Ordering::Acquire)
}

/// Fails with `UsedAfterForkError` when an object from generation `born`
/// is used in a forked child.
pub fn check_fork(born: u64, what: &'static str) -> Result<()> {
    if born == generation() {
        Ok(())
    } else {
        Err(Error::UsedAfterFork(what))
    }
}

fn lock_runtime() -> MutexGuard<'static, Option<RuntimeSlot>> {
    RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn worker_count() -> Result<usize> {
    let configured = CONFIGURED_WORKERS.load(Ordering::Acquire);
    if configured > 0 {
        return Ok(configured);
    }
    match std::env::var("FASTIO_WORKER_THREADS") {
        Ok(s) => match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::InvalidArgument(format!(
                "FASTIO_WORKER_THREADS must be a positive integer, got {s:?}"
            ))),
        },
        Err(_) => Ok(std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(MAX_DEFAULT_WORKERS)),
    }
}

fn build_runtime(workers: usize) -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("fastio-worker")
        .enable_all()
        .build()?)
}

/// A handle to this process's runtime, created on first use (and anew in a
/// forked child).
pub fn handle() -> Result<Handle> {
    let now = generation();
    let mut slot = lock_runtime();
    if let Some(rt) = slot.as_ref() {
        if rt.generation == now {
            return Ok(rt.runtime.handle().clone());
        }
    }
    if let Some(parent) = slot.take() {
        // The parent's worker threads do not exist here; dropping the runtime
        // would wait for them forever.
        std::mem::forget(parent);
        log::debug!("fork detected: starting a fresh tokio runtime in the child");
    }
    let workers = worker_count()?;
    let runtime = build_runtime(workers)?;
    let h = runtime.handle().clone();
    *slot = Some(RuntimeSlot {
        generation: now,
        runtime,
        workers,
    });
    log::debug!("tokio runtime started with {workers} worker thread(s)");
    Ok(h)
}

/// Sets process-wide options. Must be called before fastio's runtime starts
/// (the first fastio awaitable), or with the values already in effect.
#[pyfunction]
#[pyo3(signature = (*, worker_threads = None))]
fn configure(worker_threads: Option<usize>) -> PyResult<()> {
    let Some(n) = worker_threads else {
        return Ok(());
    };
    if n == 0 {
        return Err(Error::InvalidArgument(
            "configure(): worker_threads must be a positive integer, got 0".into(),
        )
        .into());
    }
    let slot = lock_runtime();
    match slot.as_ref() {
        Some(rt) if rt.generation == generation() && rt.workers != n => {
            Err(Error::Interface(format!(
                "configure(worker_threads={n}) must be called before fastio's runtime starts; \
                 it is already running with {} worker thread(s)",
                rt.workers
            ))
            .into())
        }
        _ => {
            CONFIGURED_WORKERS.store(n, Ordering::Release);
            Ok(())
        }
    }
}

/// Worker threads of the running runtime (starting it if needed).
#[pyfunction]
fn runtime_worker_threads() -> PyResult<usize> {
    Ok(handle()?.metrics().num_workers())
}

// --------------------------------------------------------------- counting --

static LIVE_TASKS: AtomicUsize = AtomicUsize::new(0);

/// Counts a bridged Rust future from spawn until it is dropped (finished or
/// aborted); the tests use it to prove cancellation drops the Rust side.
struct LiveTask;

impl LiveTask {
    fn new() -> Self {
        LIVE_TASKS.fetch_add(1, Ordering::Relaxed);
        LiveTask
    }
}

impl Drop for LiveTask {
    fn drop(&mut self) {
        LIVE_TASKS.fetch_sub(1, Ordering::Relaxed);
    }
}

pub fn live_tasks() -> usize {
    LIVE_TASKS.load(Ordering::Relaxed)
}

// ----------------------------------------------------------------- bridge --

/// Turns a finished Rust future's output into a Python object; runs on the
/// event-loop thread, attached to Python.
type Completion = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;
/// Work a running future hands to its event loop's thread ahead of its
/// result (see [`post_to_loop`]).
pub type LoopJob = Box<dyn FnOnce(Python<'_>) + Send>;

tokio::task_local! {
    /// The completion queue of the loop that awaits the running future.
    static LOOP: Arc<LoopWaker>;
}

/// Whether the running task is a bridged future ([`post_to_loop`] works).
pub fn can_post_to_loop() -> bool {
    LOOP.try_with(|_| ()).is_ok()
}

/// From a bridged future on tokio: runs `job` on its event loop's thread,
/// in order with completions (before the future's own result is converted).
/// Lets a large result be turned into Python objects in pieces while the
/// rest is still being received. Returns the job back when there is no loop
/// to run it on (the caller is not a bridged future).
pub fn post_to_loop(job: LoopJob) -> std::result::Result<(), LoopJob> {
    let mut job = Some(job);
    let posted = LOOP.try_with(|w| {
        if let Some(j) = job.take() {
            w.push_entry(
                None,
                Box::new(move |py| {
                    j(py);
                    Ok(py.None())
                }),
            );
        }
    });
    match (posted, job) {
        (Ok(()), None) => Ok(()),
        (_, Some(j)) => Err(j),
        (Err(_), None) => unreachable!("the job is only taken inside try_with"),
    }
}
type BoxFuture = Pin<Box<dyn Future<Output = Completion> + Send>>;

/// The bridge: wraps a Rust future as a Python awaitable. The future runs on
/// tokio once awaited; its output is converted on the event-loop thread.
pub fn future_into_py<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, Awaitable>>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    bridged(py, fut, false)
}

/// [`future_into_py`] for a short request/reply on a resource nobody else
/// is likely to hold (a query on one `Connection`): its first poll runs on
/// the event-loop thread when it is awaited, so the request is written
/// from there, and it moves to tokio only when woken (its reply arrived).
/// That saves the hand-off to a tokio worker before the request goes out:
/// one thread wake-up of the four a query otherwise costs.
pub fn future_into_py_eager<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, Awaitable>>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    bridged(py, fut, true)
}

fn bridged<'py, F, T>(py: Python<'py>, fut: F, eager: bool) -> PyResult<Bound<'py, Awaitable>>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    // Combinators rather than an `async` block, which would hold `fut`
    // twice (captured, and as the awaited future).
    let fut = AssertUnwindSafe(fut)
        .catch_unwind()
        .map(|out| -> Completion {
            Box::new(move |py| match out {
                Ok(Ok(value)) => value.into_py_any(py),
                Ok(Err(e)) => Err(e.into_pyerr(py)),
                Err(panic) => Err(Error::from_panic(panic).into_pyerr(py)),
            })
        });
    Bound::new(
        py,
        Awaitable {
            inner: Mutex::new(Inner {
                state: State::Idle {
                    fut: Box::pin(fut),
                    generation: generation(),
                    eager,
                },
                blocking: false,
                event_loop: None,
                callbacks: Vec::new(),
            }),
        },
    )
}

type UnitFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A running future and how to stop it.
enum Task {
    /// Spawned on tokio.
    Spawned(AbortHandle),
    /// Started on the event-loop thread (see [`future_into_py_eager`]).
    Parked(Arc<Parked>),
}

impl Task {
    fn abort(&self) {
        match self {
            Task::Spawned(a) => a.abort(),
            Task::Parked(p) => p.abort(),
        }
    }
}

/// How many times a parked future is polled on the loop thread before it
/// moves to tokio: enough for a short query's round trips, while a large
/// result is read on a tokio worker beside the loop that converts it.
const LOOP_POLLS: u32 = 8;

/// A future polled on the event-loop thread (see [`future_into_py_eager`]).
/// While it waits to read its socket, the loop itself watches the socket
/// (`add_reader`) and polls it again there, so a reply is read by the
/// thread that wakes for it, as asyncpg's protocol does: no tokio worker in
/// between. Woken by anything else (a timer, a lock, a full send buffer),
/// or after [`LOOP_POLLS`] polls, it moves to tokio. It is its own waker.
struct Parked {
    slot: Mutex<Slot>,
    rt: Handle,
    event_loop: Py<PyAny>,
    queue: Arc<LoopWaker>,
}

enum Slot {
    /// Being polled on the loop thread; `woken` if a wake-up came meanwhile.
    Polling {
        woken: bool,
    },
    /// Polled, waiting for a tokio wake-up.
    Waiting(UnitFuture),
    /// Polled, the loop watching `fd`; `queued` once a tokio wake-up has
    /// asked the loop to resume it anyway.
    Reading {
        fut: UnitFuture,
        fd: RawFd,
        polls: u32,
        queued: bool,
    },
    Spawned(AbortHandle),
    /// Finished, or aborted.
    Gone,
}

/// What a parked future asked for while it was polled on this thread.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LoopRead {
    /// Not polling a parked future.
    Off,
    /// Polling one; it has not waited to read.
    On,
    /// It waits for `fd` to be readable.
    Want(RawFd),
    /// It waited for two sockets, or read [`LOOP_READ_BYTES`]: left to tokio.
    Tokio,
}

/// How much one poll on the loop thread reads before the future moves to
/// tokio: a long result is then read and parsed on a worker while the loop
/// turns the rows it has into Records.
const LOOP_READ_BYTES: usize = 64 * 1024;

/// Futures finished on a loop thread, futures moved from there to tokio,
/// and sockets a loop watches now (for the tests, see `_loop_reads`).
static LOOP_DONE: AtomicU64 = AtomicU64::new(0);
static LOOP_MOVES: AtomicU64 = AtomicU64::new(0);
static LOOP_WATCHING: AtomicUsize = AtomicUsize::new(0);

pub fn loop_read_counts() -> (u64, u64, usize) {
    (
        LOOP_DONE.load(Ordering::Relaxed),
        LOOP_MOVES.load(Ordering::Relaxed),
        LOOP_WATCHING.load(Ordering::Relaxed),
    )
}

thread_local! {
    static LOOP_READ: std::cell::Cell<LoopRead> = const { std::cell::Cell::new(LoopRead::Off) };
    /// Bytes read in the current poll on this loop thread.
    static LOOP_READ_SO_FAR: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// `sqlx_core::net::loop_driven` hooks: the sockets of a future polled on
/// a loop thread read directly and leave the waiting to [`Parked`].
fn install_loop_read_hooks() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        sqlx_core::net::loop_driven::install(sqlx_core::net::loop_driven::Hooks {
            active: || LOOP_READ.get() != LoopRead::Off,
            read: read_fd,
            wait_readable: |fd, _cx| {
                LOOP_READ.set(match LOOP_READ.get() {
                    LoopRead::On => LoopRead::Want(fd),
                    LoopRead::Want(f) if f == fd => LoopRead::Want(fd),
                    _ => LoopRead::Tokio,
                });
                std::task::Poll::Pending
            },
        });
    });
}

/// One `read(2)` of `fd` into `buf`'s spare capacity; "would block" once
/// the poll has read [`LOOP_READ_BYTES`] (its wait then moves it to tokio).
fn read_fd(fd: RawFd, buf: &mut dyn bytes::BufMut) -> std::io::Result<usize> {
    let so_far = LOOP_READ_SO_FAR.get();
    if so_far >= LOOP_READ_BYTES {
        LOOP_READ.set(LoopRead::Tokio);
        return Err(std::io::ErrorKind::WouldBlock.into());
    }
    let chunk = buf.chunk_mut();
    loop {
        // SAFETY: reads at most `chunk.len()` bytes into memory `chunk`
        // owns.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if let Ok(n) = usize::try_from(n) {
            // SAFETY: the kernel initialised the first `n` bytes.
            unsafe { buf.advance_mut(n) };
            LOOP_READ_SO_FAR.set(so_far + n);
            return Ok(n);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

impl Parked {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new(rt: Handle, event_loop: Py<PyAny>, queue: Arc<LoopWaker>) -> Arc<Parked> {
        install_loop_read_hooks();
        Arc::new(Parked {
            slot: Mutex::new(Slot::Polling { woken: false }),
            rt,
            event_loop,
            queue,
        })
    }

    /// Polls `fut` on this (the loop's) thread, inside the runtime's
    /// context, then leaves it where its wake-up will find it.
    fn poll_on_loop(self: &Arc<Self>, py: Python<'_>, mut fut: UnitFuture, polls: u32) {
        let waker = std::task::Waker::from(Arc::clone(self));
        let outer = LOOP_READ.replace(LoopRead::On);
        let outer_read = LOOP_READ_SO_FAR.replace(0);
        let ready = {
            let _in_runtime = self.rt.enter();
            let mut cx = std::task::Context::from_waker(&waker);
            fut.as_mut().poll(&mut cx).is_ready()
        };
        let asked = LOOP_READ.replace(outer);
        LOOP_READ_SO_FAR.set(outer_read);
        let mut slot = self.lock();
        let mut watch = None;
        let dropped = match (std::mem::replace(&mut *slot, Slot::Gone), asked) {
            (Slot::Polling { .. }, _) if ready => {
                LOOP_DONE.fetch_add(1, Ordering::Relaxed);
                None
            }
            (Slot::Polling { woken: false, .. }, LoopRead::On) => {
                *slot = Slot::Waiting(fut);
                None
            }
            (Slot::Polling { woken: false, .. }, LoopRead::Want(fd)) => {
                *slot = Slot::Reading {
                    fut,
                    fd,
                    polls,
                    queued: false,
                };
                watch = Some(fd);
                None
            }
            // Woken meanwhile, or left to tokio (see LoopRead::Tokio).
            (Slot::Polling { .. }, _) => {
                *slot = self.spawn(fut);
                None
            }
            // Aborted while it was polled.
            _ => Some(fut),
        };
        drop(slot);
        drop(dropped);
        if let Some(fd) = watch {
            let callback = LoopReadable {
                parked: Arc::clone(self),
            };
            let watched = self
                .event_loop
                .bind(py)
                .call_method1(intern!(py, "add_reader"), (fd, callback));
            if watched.is_ok() {
                LOOP_WATCHING.fetch_add(1, Ordering::Relaxed);
            } else {
                // E.g. the loop is closing: tokio's reactor waits instead.
                let mut slot = self.lock();
                match std::mem::replace(&mut *slot, Slot::Gone) {
                    Slot::Reading { fut, fd: f, .. } if f == fd => *slot = self.spawn(fut),
                    other => *slot = other,
                }
            }
        }
    }

    /// On the loop thread: its socket is readable, or a wake-up asked for
    /// it. Stops watching and polls it again (on tokio once it has had its
    /// [`LOOP_POLLS`] polls on the loop).
    fn resume(self: &Arc<Self>, py: Python<'_>) {
        let (fut, fd, polls) = {
            let mut slot = self.lock();
            match std::mem::replace(&mut *slot, Slot::Gone) {
                Slot::Reading { fut, fd, polls, .. } => {
                    *slot = Slot::Polling { woken: false };
                    (fut, fd, polls + 1)
                }
                other => {
                    *slot = other;
                    return;
                }
            }
        };
        // Before the future can run (and close the socket) anywhere.
        self.unwatch(py, fd);
        if polls < LOOP_POLLS {
            self.poll_on_loop(py, fut, polls);
            return;
        }
        let mut slot = self.lock();
        let dropped = match std::mem::replace(&mut *slot, Slot::Gone) {
            Slot::Polling { .. } => {
                *slot = self.spawn(fut);
                None
            }
            _ => Some(fut),
        };
        drop(slot);
        drop(dropped);
    }

    /// Moves the future to tokio.
    fn spawn(&self, fut: UnitFuture) -> Slot {
        LOOP_MOVES.fetch_add(1, Ordering::Relaxed);
        Slot::Spawned(self.rt.spawn(fut).abort_handle())
    }

    fn unwatch(&self, py: Python<'_>, fd: RawFd) {
        LOOP_WATCHING.fetch_sub(1, Ordering::Relaxed);
        if let Err(e) = self
            .event_loop
            .bind(py)
            .call_method1(intern!(py, "remove_reader"), (fd,))
        {
            // Only when the loop is closed, and its watch with it.
            log::debug!("remove_reader({fd}) failed: {e}");
        }
    }

    /// On the loop thread (Task cancellation): drops the future, or aborts
    /// its tokio task.
    fn abort(&self) {
        let mut slot = self.lock();
        let (dropped, watched) = match std::mem::replace(&mut *slot, Slot::Gone) {
            Slot::Waiting(fut) => (Some(fut), None),
            Slot::Reading { fut, fd, .. } => (Some(fut), Some(fd)),
            Slot::Spawned(a) => {
                a.abort();
                (None, None)
            }
            Slot::Polling { .. } | Slot::Gone => (None, None),
        };
        drop(slot);
        if let Some(fd) = watched {
            Python::attach(|py| self.unwatch(py, fd));
        }
        // Dropped outside the lock: dropping may wake other tasks.
        drop(dropped);
    }
}

impl std::task::Wake for Parked {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut slot = self.lock();
        match &mut *slot {
            Slot::Polling { woken, .. } => *woken = true,
            Slot::Reading { queued, .. } if !*queued => {
                *queued = true;
                drop(slot);
                // The loop stops watching before the future moves on.
                let me = Arc::clone(self);
                self.queue.push_entry(
                    None,
                    Box::new(move |py| {
                        me.resume(py);
                        Ok(py.None())
                    }),
                );
            }
            Slot::Waiting(_) => {
                if let Slot::Waiting(fut) = std::mem::replace(&mut *slot, Slot::Gone) {
                    *slot = self.spawn(fut);
                }
            }
            _ => {}
        }
    }
}

/// The loop's reader callback for a [`Parked`] future's socket.
#[pyclass(frozen, module = "fastio._fastio")]
struct LoopReadable {
    parked: Arc<Parked>,
}

#[pymethods]
impl LoopReadable {
    fn __call__(&self, py: Python<'_>) {
        self.parked.resume(py);
        // A finished future queued its completion: hand it over now rather
        // than on the loop's next turn.
        if self.parked.queue.has_queued() {
            self.parked.queue.drain(py);
        }
    }
}

/// An awaitable that is already finished with `result`: awaiting it returns
/// (or raises) at once, with no trip through tokio or the event loop. Used
/// where the answer was computed on the calling thread (a short SQLite read).
pub fn done_into_py<'py>(
    py: Python<'py>,
    result: PyResult<Py<PyAny>>,
) -> PyResult<Bound<'py, Awaitable>> {
    Bound::new(
        py,
        Awaitable {
            inner: Mutex::new(Inner {
                state: State::Done(result),
                blocking: false,
                event_loop: None,
                callbacks: Vec::new(),
            }),
        },
    )
}

/// Output of awaitables that resolve to `None` (`()` would become `()`, an
/// empty tuple, in Python).
pub struct ReturnNone;

impl<'py> IntoPyObject<'py> for ReturnNone {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(py.None().into_bound(py))
    }
}

enum State {
    /// Created, not yet awaited: nothing runs.
    Idle {
        fut: BoxFuture,
        generation: u64,
        /// First polled on the loop thread (see [`future_into_py_eager`]).
        eager: bool,
    },
    /// Started (spawned on tokio, or parked after a first poll).
    Running(Task),
    Done(PyResult<Py<PyAny>>),
    /// Cancelled, with the optional message for `CancelledError`.
    Cancelled(Option<Py<PyAny>>),
}

struct Inner {
    state: State,
    blocking: bool,
    event_loop: Option<Py<PyAny>>,
    callbacks: Vec<(Py<PyAny>, Option<Py<PyAny>>)>,
}

/// A fastio coroutine: a Rust future awaitable from asyncio. It is also a
/// future (asyncio's duck-typed protocol), so tasks, `gather`, `wait_for` and
/// `TaskGroup` all work with it.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct Awaitable {
    inner: Mutex<Inner>,
}

fn cancelled_error(py: Python<'_>, msg: Option<&Py<PyAny>>) -> PyErr {
    static CANCELLED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    match CANCELLED.import(py, "asyncio", "CancelledError") {
        Ok(ty) => match msg {
            Some(m) => PyErr::from_type(ty.clone(), (m.clone_ref(py),)),
            None => PyErr::from_type(ty.clone(), ()),
        },
        Err(e) => e,
    }
}

fn get_running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    GET_RUNNING_LOOP
        .import(py, "asyncio", "get_running_loop")?
        .call0()
}

impl Awaitable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Spawns the Rust future if it is still idle. Never leaves it idle: a
    /// failure to start becomes the awaitable's exception.
    fn start(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        if !matches!(slf.get().lock().state, State::Idle { .. }) {
            return Ok(());
        }
        let event_loop = get_running_loop(py)?;
        let waker = loop_waker(py, &event_loop)?;
        let this = slf.get();
        let mut inner = this.lock();
        let State::Idle {
            fut,
            generation,
            eager,
        } = std::mem::replace(
            &mut inner.state,
            State::Cancelled(None), // placeholder, overwritten below
        )
        else {
            unreachable!("checked idle above and the GIL is held");
        };
        let event_loop = event_loop.unbind();
        inner.event_loop = Some(event_loop.clone_ref(py));
        let rt = match check_fork(generation, "this awaitable").and_then(|()| handle()) {
            Ok(rt) => rt,
            Err(e) => {
                inner.state = State::Done(Err(e.into_pyerr(py)));
                return Ok(());
            }
        };
        let me: Py<Awaitable> = slf.clone().unbind();
        let live = LiveTask::new();
        let queue = eager.then(|| Arc::clone(&waker));
        let task = LOOP.scope(Arc::clone(&waker), async move {
            let _live = live;
            let completion = fut.await;
            waker.push(me, completion);
        });
        let Some(queue) = queue else {
            // Spawned as is: boxing it again would cost an allocation per await.
            inner.state = State::Running(Task::Spawned(rt.spawn(task).abort_handle()));
            return Ok(());
        };
        // Polled without the awaitable's lock: it may finish at once (its
        // completion is then drained by the loop like any other).
        let parked = Parked::new(rt, event_loop, queue);
        inner.state = State::Running(Task::Parked(Arc::clone(&parked)));
        drop(inner);
        parked.poll_on_loop(py, Box::pin(task), 0);
        Ok(())
    }

    /// Stores the result of a finished future and wakes its waiters. Called
    /// while draining the loop's completion queue.
    fn complete(slf: &Bound<'_, Self>, completion: Completion) {
        let py = slf.py();
        let this = slf.get();
        if !matches!(this.lock().state, State::Running(_)) {
            return; // cancelled while the result was in flight
        }
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| completion(py)))
            .unwrap_or_else(|panic| Err(Error::from_panic(panic).into_pyerr(py)));
        let (callbacks, event_loop) = {
            let mut inner = this.lock();
            inner.state = State::Done(result);
            (
                std::mem::take(&mut inner.callbacks),
                inner.event_loop.as_ref().map(|l| l.clone_ref(py)),
            )
        };
        // Called directly (not via call_soon): we already are a loop callback,
        // and this saves a Handle and a loop iteration per await.
        for (cb, ctx) in callbacks {
            let called = match &ctx {
                Some(ctx) => ctx.bind(py).call_method1(intern!(py, "run"), (&cb, slf)),
                None => cb.bind(py).call1((slf,)),
            };
            if let Err(err) = called {
                report_callback_error(py, event_loop.as_ref(), slf, &cb, err);
            }
        }
    }

    /// Schedules callbacks the way asyncio.Future does: `loop.call_soon(cb, fut, context=ctx)`.
    fn schedule_callbacks(
        slf: &Bound<'_, Self>,
        callbacks: Vec<(Py<PyAny>, Option<Py<PyAny>>)>,
    ) -> PyResult<()> {
        if callbacks.is_empty() {
            return Ok(());
        }
        let py = slf.py();
        let event_loop = match slf.get().lock().event_loop.as_ref() {
            Some(l) => l.clone_ref(py).into_bound(py),
            None => get_running_loop(py)?,
        };
        let call_soon = event_loop.getattr(intern!(py, "call_soon"))?;
        for (cb, ctx) in callbacks {
            let kwargs = PyDict::new(py);
            kwargs.set_item(intern!(py, "context"), ctx)?;
            call_soon.call((cb, slf), Some(&kwargs))?;
        }
        Ok(())
    }

    /// The outcome of a finished awaitable, as `result()` reports it.
    fn outcome(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.lock().state {
            State::Done(Ok(v)) => Ok(v.clone_ref(py)),
            State::Done(Err(e)) => Err(e.clone_ref(py)),
            State::Cancelled(msg) => Err(cancelled_error(py, msg.as_ref())),
            State::Idle { .. } | State::Running(_) => Err(invalid_state("Result is not ready.")),
        }
    }

    /// One step of the coroutine protocol: yield ourselves to the task while
    /// the future runs, return (StopIteration) or raise once it is done.
    fn step(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::start(slf)?;
        let py = slf.py();
        {
            let mut inner = slf.get().lock();
            if matches!(inner.state, State::Running(_)) {
                inner.blocking = true;
                return Ok(slf.clone().into_any().unbind());
            }
        }
        let value = slf.get().outcome(py)?;
        Err(PyStopIteration::new_err((value,)))
    }

    /// Aborts the Rust work if any; returns whether the state changed.
    fn cancel_inner(slf: &Bound<'_, Self>, msg: Option<Py<PyAny>>) -> PyResult<bool> {
        let (old, callbacks) = {
            let mut inner = slf.get().lock();
            if matches!(inner.state, State::Done(_) | State::Cancelled(_)) {
                return Ok(false);
            }
            let old = std::mem::replace(&mut inner.state, State::Cancelled(msg));
            if let State::Running(task) = &old {
                task.abort();
            }
            (old, std::mem::take(&mut inner.callbacks))
        };
        // The idle future (and what it owns) is dropped outside the lock.
        drop(old);
        Self::schedule_callbacks(slf, callbacks)?;
        Ok(true)
    }
}

fn invalid_state(msg: &str) -> PyErr {
    Python::attach(|py| {
        static INVALID: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        match INVALID.import(py, "asyncio", "InvalidStateError") {
            Ok(ty) => PyErr::from_type(ty.clone(), msg.to_owned()),
            Err(e) => e,
        }
    })
}

fn report_callback_error(
    py: Python<'_>,
    event_loop: Option<&Py<PyAny>>,
    fut: &Bound<'_, Awaitable>,
    cb: &Py<PyAny>,
    err: PyErr,
) {
    let report = || -> PyResult<()> {
        let ctx = PyDict::new(py);
        ctx.set_item(
            "message",
            format!("Exception in callback {}", cb.bind(py).repr()?),
        )?;
        ctx.set_item("exception", err.value(py))?;
        ctx.set_item("future", fut)?;
        match event_loop {
            Some(l) => l.bind(py).call_method1("call_exception_handler", (ctx,))?,
            None => return Err(err.clone_ref(py)),
        };
        Ok(())
    };
    if let Err(e) = report() {
        e.write_unraisable(py, Some(fut.as_any()));
    }
}

#[pymethods]
impl Awaitable {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::step(slf)
    }

    /// Coroutine protocol: resume (the value is ignored, as for a future).
    fn send(slf: &Bound<'_, Self>, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Self::step(slf)
    }

    /// Coroutine protocol: an exception thrown in (e.g. CancelledError from a
    /// cancelled task) stops the Rust work and propagates.
    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        slf: &Bound<'_, Self>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        Self::cancel_inner(slf, None)?;
        let err = match val {
            Some(v) if !v.is_none() && v.is_instance_of::<pyo3::exceptions::PyBaseException>() => {
                PyErr::from_value(v.clone())
            }
            Some(v) if !v.is_none() && typ.is_instance_of::<PyType>() => {
                PyErr::from_value(typ.call1((v,))?)
            }
            _ if typ.is_instance_of::<PyType>() => PyErr::from_value(typ.call0()?),
            _ => PyErr::from_value(typ.clone()),
        };
        if let Some(tb) = tb.filter(|t| !t.is_none()) {
            err.set_traceback(py, Some(tb.cast::<pyo3::types::PyTraceback>()?.clone()));
        }
        Err(err)
    }

    /// Coroutine protocol: stops the Rust work.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::cancel_inner(slf, None).map(|_| ())
    }

    #[getter(_asyncio_future_blocking)]
    fn asyncio_future_blocking(&self) -> bool {
        self.lock().blocking
    }

    #[setter(_asyncio_future_blocking)]
    fn set_asyncio_future_blocking(&self, value: bool) {
        self.lock().blocking = value;
    }

    /// The event loop this awaitable runs on (the running loop until started).
    fn get_loop(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(l) = self.lock().event_loop.as_ref() {
            return Ok(l.clone_ref(py));
        }
        Ok(get_running_loop(py)?.unbind())
    }

    #[getter(_loop)]
    fn loop_attr(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.get_loop(py)
    }

    fn done(&self) -> bool {
        matches!(self.lock().state, State::Done(_) | State::Cancelled(_))
    }

    fn cancelled(&self) -> bool {
        matches!(self.lock().state, State::Cancelled(_))
    }

    /// asyncio.Future's: the message `cancel()` was given (`gather` reads
    /// it for a cancelled child).
    #[getter(_cancel_message)]
    fn cancel_message(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        match &self.lock().state {
            State::Cancelled(msg) => msg.as_ref().map(|m| m.clone_ref(py)),
            _ => None,
        }
    }

    /// asyncio.Future's: the CancelledError to raise for this awaitable
    /// (`gather` and `wait_for` call it on a cancelled child).
    fn _make_cancelled_error(&self, py: Python<'_>) -> Py<PyAny> {
        let msg = match &self.lock().state {
            State::Cancelled(msg) => msg.as_ref().map(|m| m.clone_ref(py)),
            _ => None,
        };
        cancelled_error(py, msg.as_ref()).into_value(py).into_any()
    }

    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.outcome(py)
    }

    fn exception(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.outcome(py) {
            Ok(_) => Ok(None),
            Err(e) if e.is_instance_of::<pyo3::exceptions::asyncio::CancelledError>(py) => Err(e),
            Err(e) if matches!(self.lock().state, State::Done(_)) => {
                Ok(Some(e.into_value(py).into_any()))
            }
            Err(e) => Err(e),
        }
    }

    /// Starts the Rust work if needed (a future handed to `gather` runs).
    #[pyo3(signature = (callback, *, context = None))]
    fn add_done_callback(
        slf: &Bound<'_, Self>,
        callback: Py<PyAny>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        Self::start(slf)?;
        let entry = (callback, context);
        {
            let mut inner = slf.get().lock();
            if matches!(inner.state, State::Idle { .. } | State::Running(_)) {
                inner.callbacks.push(entry);
                return Ok(());
            }
        }
        Self::schedule_callbacks(slf, vec![entry])
    }

    fn remove_done_callback(&self, py: Python<'_>, callback: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut inner = self.lock();
        let before = inner.callbacks.len();
        let mut keep = Vec::with_capacity(before);
        for (cb, ctx) in inner.callbacks.drain(..) {
            if !cb.bind(py).eq(callback)? {
                keep.push((cb, ctx));
            }
        }
        inner.callbacks = keep;
        Ok(before - inner.callbacks.len())
    }

    /// Cancels the awaitable and drops the Rust future (aborting its I/O).
    #[pyo3(signature = (msg = None))]
    fn cancel(slf: &Bound<'_, Self>, msg: Option<Py<PyAny>>) -> PyResult<bool> {
        Self::cancel_inner(slf, msg)
    }

    fn __repr__(&self) -> &'static str {
        match self.lock().state {
            State::Idle { .. } => "<fastio.Awaitable idle>",
            State::Running(_) => "<fastio.Awaitable pending>",
            State::Done(Ok(_)) => "<fastio.Awaitable finished>",
            State::Done(Err(_)) => "<fastio.Awaitable finished with an exception>",
            State::Cancelled(_) => "<fastio.Awaitable cancelled>",
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // try_lock: the collector must never block; a held lock means an
        // active call, which keeps the objects alive anyway.
        if let Ok(inner) = self.inner.try_lock() {
            for (cb, ctx) in &inner.callbacks {
                visit.call(cb)?;
                if let Some(ctx) = ctx {
                    visit.call(ctx)?;
                }
            }
            if let Some(l) = &inner.event_loop {
                visit.call(l)?;
            }
            if let State::Done(Ok(v)) = &inner.state {
                visit.call(v)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let mut inner = self.lock();
        inner.callbacks.clear();
        inner.event_loop = None;
    }
}

// ------------------------------------------------------- loop completions --

/// Wakes an event loop from any thread without the GIL: an eventfd the loop
/// watches with `add_reader`.
struct Notifier {
    fd: std::os::fd::OwnedFd,
}

impl Notifier {
    fn new() -> std::io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; the returned descriptor is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Ok(Self {
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
        })
    }

    fn raw(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64. It can only fail with
        // EAGAIN when the counter is saturated, i.e. a wake-up is pending.
        unsafe { libc::write(self.raw(), (&one as *const u64).cast(), 8) };
    }

    fn clear(&self) {
        let mut buf: u64 = 0;
        // SAFETY: reads at most 8 bytes into a valid u64; EAGAIN (nothing
        // pending) is fine.
        unsafe { libc::read(self.raw(), (&mut buf as *mut u64).cast(), 8) };
    }
}

/// The completion queue of one event loop.
struct LoopWaker {
    notifier: Notifier,
    /// Completions of awaitables, and jobs (`None`) posted by running ones.
    queue: Mutex<Vec<(Option<Py<Awaitable>>, Completion)>>,
}

impl LoopWaker {
    /// Called on a tokio thread: queue the completion and wake the loop if it
    /// is not already due to drain.
    fn push(&self, fut: Py<Awaitable>, completion: Completion) {
        self.push_entry(Some(fut), completion);
    }

    fn push_entry(&self, fut: Option<Py<Awaitable>>, completion: Completion) {
        let was_empty = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let empty = q.is_empty();
            q.push((fut, completion));
            empty
        };
        if was_empty {
            self.notifier.wake();
        }
    }
}

/// The loop's reader callback: completes every queued awaitable.
#[pyclass(frozen, module = "fastio._fastio")]
struct LoopDrain {
    waker: Arc<LoopWaker>,
}

#[pymethods]
impl LoopDrain {
    fn __call__(&self, py: Python<'_>) {
        self.waker.drain(py);
    }
}

impl LoopWaker {
    fn has_queued(&self) -> bool {
        !self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// On the loop thread: completes every queued awaitable, runs every
    /// queued job.
    fn drain(&self, py: Python<'_>) {
        self.notifier.clear();
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        for (fut, completion) in batch {
            match fut {
                Some(fut) => Awaitable::complete(fut.bind(py), completion),
                None => {
                    // A posted job: it reports its own errors to its future.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| completion(py)));
                }
            }
        }
    }
}

type LoopWakers = (u64, Vec<(Py<PyAny>, Arc<LoopWaker>)>);

thread_local! {
    /// The loops this thread has run fastio awaitables on.
    static WAKERS: RefCell<LoopWakers> = const { RefCell::new((0, Vec::new())) };
}

fn loop_waker(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<LoopWaker>> {
    WAKERS.with_borrow_mut(|(born, wakers)| {
        let now = generation();
        if *born != now {
            // Inherited from the parent: its eventfds and loops are shared
            // with it, so they are left untouched, never closed or unregistered.
            for inherited in wakers.drain(..) {
                std::mem::forget(inherited);
            }
            *born = now;
        }
        if let Some((_, w)) = wakers.iter().find(|(l, _)| l.bind(py).is(event_loop)) {
            return Ok(Arc::clone(w));
        }
        // A new loop (e.g. one asyncio.run after another): forget closed ones.
        wakers.retain(|(l, _)| {
            !l.bind(py)
                .call_method0(intern!(py, "is_closed"))
                .and_then(|c| c.is_truthy())
                .unwrap_or(true)
        });
        let waker = Arc::new(LoopWaker {
            notifier: Notifier::new().map_err(Error::from)?,
            queue: Mutex::new(Vec::new()),
        });
        event_loop.call_method1(
            intern!(py, "add_reader"),
            (
                waker.notifier.raw(),
                LoopDrain {
                    waker: Arc::clone(&waker),
                },
            ),
        )?;
        wakers.push((event_loop.clone().unbind(), Arc::clone(&waker)));
        Ok(waker)
    })
}

// ------------------------------------------------------------------ ready --

/// An awaitable whose value is already known: awaiting it returns at once,
/// without a trip through tokio or the event loop. Used where Rust can answer
/// from a buffer (e.g. the next line of a file) and a full [`Awaitable`]
/// would cost a thread hop per call. Like a coroutine, it can also be given
/// to `create_task`/`gather`.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct Ready {
    value: Py<PyAny>,
}

/// Wraps an already computed value as an awaitable.
pub fn ready<'py>(py: Python<'py>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, Ready>> {
    Bound::new(
        py,
        Ready {
            value: value.unbind(),
        },
    )
}

#[pymethods]
impl Ready {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<()> {
        Err(PyStopIteration::new_err((self.value.clone_ref(py),)))
    }

    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.__next__(py)
    }

    #[pyo3(signature = (typ, val = None, _tb = None))]
    fn throw(
        &self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        Err(match val {
            Some(v) if v.is_instance_of::<pyo3::exceptions::PyBaseException>() => {
                PyErr::from_value(v.clone())
            }
            _ if typ.is_instance_of::<PyType>() => PyErr::from_value(typ.call0()?),
            _ => PyErr::from_value(typ.clone()),
        })
    }

    fn close(&self) {}

    fn __repr__(&self) -> &'static str {
        "<fastio.Ready finished>"
    }
}

// ------------------------------------------------------------------ sleep --

/// `await fastio.sleep(seconds, result=None)`: a tokio timer, with
/// asyncio.sleep's semantics (negative means 0, `inf` means forever).
#[pyfunction]
#[pyo3(signature = (seconds, result = None))]
fn sleep<'py>(
    py: Python<'py>,
    seconds: &Bound<'py, PyAny>,
    result: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, Awaitable>> {
    let secs: f64 = seconds
        .extract()
        .map_err(|_| arg_type_error("sleep", "seconds", "a number", seconds))?;
    if secs.is_nan() {
        return Err(new_err(
            py,
            Exc::InvalidArgumentError,
            "sleep(): seconds must not be NaN",
        ));
    }
    // Beyond Duration's range is as good as forever.
    let delay = Duration::try_from_secs_f64(secs.max(0.0)).ok();
    future_into_py(py, async move {
        match delay {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
        Ok(result)
    })
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    install_fork_hook();
    m.add_class::<Awaitable>()?;
    m.add_class::<Ready>()?;
    m.add_function(wrap_pyfunction!(configure, m)?)?;
    m.add_function(wrap_pyfunction!(runtime_worker_threads, m)?)?;
    m.add_function(wrap_pyfunction!(sleep, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: &Notifier) -> u64 {
        let mut buf: u64 = 0;
        // SAFETY: reads at most 8 bytes into a valid u64.
        let got = unsafe { libc::read(n.raw(), (&mut buf as *mut u64).cast(), 8) };
        if got == 8 {
            buf
        } else {
            0
        }
    }

    #[test]
    fn notifier_wakes_and_clears() {
        let n = Notifier::new().unwrap();
        assert_eq!(pending(&n), 0);
        n.wake();
        n.wake();
        assert_eq!(pending(&n), 2);
        n.wake();
        n.clear();
        assert_eq!(pending(&n), 0);
    }

    #[test]
    fn live_task_counts_until_dropped() {
        let before = live_tasks();
        let a = LiveTask::new();
        let b = LiveTask::new();
        assert_eq!(live_tasks(), before + 2);
        drop(a);
        assert_eq!(live_tasks(), before + 1);
        drop(b);
        assert_eq!(live_tasks(), before);
    }

    #[test]
    fn fork_check_compares_generations() {
        let now = generation();
        assert!(check_fork(now, "x").is_ok());
        let err = check_fork(now + 1, "this client").unwrap_err();
        assert!(matches!(err, Error::UsedAfterFork("this client")));
    }
}
