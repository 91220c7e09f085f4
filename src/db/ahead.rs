//! Large results turned into Python objects on the event-loop thread in
//! pieces while the rest is still arriving (PostgreSQL and MySQL `fetch`,
//! the MySQL DB-API cursors): the loop thread builds Records from the first
//! rows while the tokio worker receives the next ones, instead of both
//! running one after the other.
//!
//! Each attempt of a query makes its own [`Ahead`]: the pieces of an
//! attempt that failed (a server error after some rows, a dropped
//! connection that is retried, a cancellation) stay in its `Ahead`, which
//! is dropped with the attempt, and are never seen by the caller.

use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::prelude::*;

/// Rows per piece of a result made ahead on the loop thread: large enough
/// that the loop is woken a few dozen times for 100,000 rows, small enough
/// that it starts early.
pub(crate) const AHEAD_ROWS: usize = 4096;

/// The objects made from the pieces so far, and what the backend keeps
/// between pieces (`state`: e.g. the RecordDesc made from the first piece).
pub(crate) struct Made<S> {
    pub(crate) state: Option<S>,
    pub(crate) items: Vec<Py<PyAny>>,
}

impl<S> Default for Made<S> {
    fn default() -> Self {
        Made {
            state: None,
            items: Vec::new(),
        }
    }
}

struct Shared<S> {
    made: Made<S>,
    /// The error that stopped making pieces; later pieces are skipped.
    error: Option<PyErr>,
}

/// The pieces of one result made ahead (see `runtime::post_to_loop`).
pub(crate) struct Ahead<S> {
    shared: Arc<Mutex<Shared<S>>>,
}

impl<S: Send + 'static> Ahead<S> {
    /// `None` when the running task is not a bridged future (there is no
    /// loop to post pieces to): the whole result is then converted at the end.
    pub(crate) fn new() -> Option<Self> {
        crate::runtime::can_post_to_loop().then(|| Ahead {
            shared: Arc::new(Mutex::new(Shared {
                made: Made::default(),
                error: None,
            })),
        })
    }

    fn lock(shared: &Mutex<Shared<S>>) -> MutexGuard<'_, Shared<S>> {
        shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From the query's task: runs `make` on the loop thread, after the
    /// pieces posted before it and before the query's own result, unless
    /// an earlier piece failed. Its error is kept for [`Ahead::take`].
    pub(crate) fn post<F>(&self, make: F)
    where
        F: FnOnce(Python<'_>, &mut Made<S>) -> PyResult<()> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let posted = crate::runtime::post_to_loop(Box::new(move |py| {
            let mut s = Self::lock(&shared);
            if s.error.is_none() {
                if let Err(e) = make(py, &mut s.made) {
                    s.error = Some(e);
                }
            }
        }));
        // `new` checked there is a loop, and the task cannot leave it.
        debug_assert!(posted.is_ok(), "an Ahead is only made where posting works");
    }

    /// On the loop thread, converting the query's result (every piece
    /// posted has run by then): what the pieces made, or their error.
    pub(crate) fn take(&self) -> PyResult<Made<S>> {
        let mut s = Self::lock(&self.shared);
        match s.error.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut s.made)),
        }
    }
}

/// What a result's conversion starts from: the pieces made ahead, if any.
pub(crate) fn taken<S: Send + 'static>(ahead: Option<&Ahead<S>>) -> PyResult<Made<S>> {
    ahead.map_or_else(|| Ok(Made::default()), Ahead::take)
}
