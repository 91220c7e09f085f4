//! `fastio.CircuitBreaker`: closed -> open after N consecutive failures ->
//! half-open after the recovery timeout -> closed on a successful trial call
//! (or open again on a failed one). The state lives in Rust behind a mutex,
//! so one breaker can be shared by tasks and threads; calls are admitted and
//! recorded in O(1) without awaiting anything.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};

use crate::errors::{exc_type, Error, Exc};
use crate::metrics::{register_source, GaugeSource};
use crate::runtime::{ready, Ready};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Closed,
    Open,
    HalfOpen,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Closed => "closed",
            Phase::Open => "open",
            Phase::HalfOpen => "half_open",
        }
    }

    fn gauge(self) -> f64 {
        match self {
            Phase::Closed => 0.0,
            Phase::Open => 1.0,
            Phase::HalfOpen => 2.0,
        }
    }
}

struct State {
    phase: Phase,
    /// Consecutive failures while closed.
    failures: u32,
    /// When an open breaker lets trial calls through.
    reopen_at: Instant,
    /// Trial calls admitted and not yet finished while half-open.
    trials: u32,
    /// (from, to, unix time) of every state change, oldest first (bounded).
    transitions: Vec<(Phase, Phase, f64)>,
}

const MAX_TRANSITIONS: usize = 1000;

/// The breaker's state machine, independent of Python.
pub struct Core {
    name: String,
    failure_threshold: u32,
    recovery: Duration,
    half_open_max: u32,
    state: Mutex<State>,
    calls: AtomicU64,
    successes: AtomicU64,
    failures_total: AtomicU64,
    rejected: AtomicU64,
}

/// Why a call was not admitted, and when to try again.
pub struct Rejected {
    pub retry_after: Duration,
}

/// What a finished call means for the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallResult {
    Success,
    /// An expected exception: counts towards opening.
    Failure,
    /// Neither (e.g. cancelled): frees a trial slot, changes nothing.
    Ignored,
}

impl Core {
    pub fn new(
        name: String,
        failure_threshold: u32,
        recovery: Duration,
        half_open_max: u32,
    ) -> Self {
        Self {
            name,
            failure_threshold,
            recovery,
            half_open_max,
            state: Mutex::new(State {
                phase: Phase::Closed,
                failures: 0,
                reopen_at: Instant::now(),
                trials: 0,
                transitions: Vec::new(),
            }),
            calls: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            failures_total: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn move_to(st: &mut State, to: Phase) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        if st.transitions.len() == MAX_TRANSITIONS {
            st.transitions.remove(0);
        }
        st.transitions.push((st.phase, to, now));
        log::info!(target: "fastio::breaker", "circuit breaker: {} -> {}", st.phase.name(), to.name());
        st.phase = to;
        st.failures = 0;
        st.trials = 0;
    }

    /// The phase as of now (an open breaker whose timeout passed reads as half-open).
    pub fn phase(&self) -> Phase {
        let st = self.lock();
        if st.phase == Phase::Open && Instant::now() >= st.reopen_at {
            Phase::HalfOpen
        } else {
            st.phase
        }
    }

    /// Admits a call or says when to retry.
    pub fn try_acquire(&self) -> Result<(), Rejected> {
        let mut st = self.lock();
        let now = Instant::now();
        if st.phase == Phase::Open && now >= st.reopen_at {
            Self::move_to(&mut st, Phase::HalfOpen);
        }
        let admitted = match st.phase {
            Phase::Closed => true,
            Phase::Open => false,
            Phase::HalfOpen if st.trials < self.half_open_max => {
                st.trials += 1;
                true
            }
            Phase::HalfOpen => false,
        };
        if admitted {
            self.calls.fetch_add(1, Relaxed);
            Ok(())
        } else {
            self.rejected.fetch_add(1, Relaxed);
            Err(Rejected {
                retry_after: st.reopen_at.saturating_duration_since(now),
            })
        }
    }

    /// Records the end of an admitted call.
    pub fn release(&self, result: CallResult) {
        let mut st = self.lock();
        if st.phase == Phase::HalfOpen {
            st.trials = st.trials.saturating_sub(1);
        }
        match result {
            CallResult::Ignored => {}
            CallResult::Success => {
                self.successes.fetch_add(1, Relaxed);
                match st.phase {
                    Phase::Closed => st.failures = 0,
                    Phase::HalfOpen => Self::move_to(&mut st, Phase::Closed),
                    // A call admitted before the breaker opened: too late to count.
                    Phase::Open => {}
                }
            }
            CallResult::Failure => {
                self.failures_total.fetch_add(1, Relaxed);
                match st.phase {
                    Phase::Closed => {
                        st.failures += 1;
                        if st.failures >= self.failure_threshold {
                            self.open(&mut st);
                        }
                    }
                    Phase::HalfOpen => self.open(&mut st),
                    Phase::Open => {}
                }
            }
        }
    }

    fn open(&self, st: &mut State) {
        Self::move_to(st, Phase::Open);
        st.reopen_at = Instant::now() + self.recovery;
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A fresh breaker with these settings, named `name`, exported with the
    /// others (the HTTP client keeps one per host, made from the one given).
    pub fn like(&self, name: String) -> Arc<Core> {
        let core = Arc::new(Core::new(
            name,
            self.failure_threshold,
            self.recovery,
            self.half_open_max,
        ));
        let source: Arc<dyn GaugeSource> = core.clone();
        register_source(Arc::downgrade(&source));
        core
    }

    /// Back to closed with no failures counted.
    pub fn reset(&self) {
        let mut st = self.lock();
        if st.phase != Phase::Closed {
            Self::move_to(&mut st, Phase::Closed);
        }
        st.failures = 0;
    }
}

impl GaugeSource for Core {
    fn section(&self) -> &'static str {
        "breakers"
    }

    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("name", &self.name)?;
        d.set_item("state", self.phase().name())?;
        d.set_item("consecutive_failures", self.lock().failures)?;
        d.set_item("calls", self.calls.load(Relaxed))?;
        d.set_item("successes", self.successes.load(Relaxed))?;
        d.set_item("failures", self.failures_total.load(Relaxed))?;
        d.set_item("rejected", self.rejected.load(Relaxed))?;
        d.set_item("transitions", self.lock().transitions.len())?;
        Ok(d)
    }

    fn samples(&self, out: &mut Vec<(&'static str, String, f64)>) {
        let labels = format!(
            "{{name=\"{}\"}}",
            self.name.replace('\\', r"\\").replace('"', "\\\"")
        );
        out.push(("fastio_breaker_state", labels.clone(), self.phase().gauge()));
        out.push((
            "fastio_breaker_rejected_total",
            labels.clone(),
            self.rejected.load(Relaxed) as f64,
        ));
        out.push((
            "fastio_breaker_failures_total",
            labels.clone(),
            self.failures_total.load(Relaxed) as f64,
        ));
        out.push((
            "fastio_breaker_transitions_total",
            labels,
            self.lock().transitions.len() as f64,
        ));
    }

    fn families(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &[
            (
                "fastio_breaker_state",
                "gauge",
                "circuit breaker state: 0 closed, 1 open, 2 half-open",
            ),
            (
                "fastio_breaker_rejected_total",
                "counter",
                "calls refused while open",
            ),
            (
                "fastio_breaker_failures_total",
                "counter",
                "calls that failed with an expected exception",
            ),
            (
                "fastio_breaker_transitions_total",
                "counter",
                "state changes",
            ),
        ]
    }
}

/// `CircuitOpenError(msg)` with `retry_after` (seconds) and `breaker` (name).
pub fn open_error(py: Python<'_>, name: &str, retry_after: Duration) -> PyErr {
    let secs = retry_after.as_secs_f64();
    let msg = format!("circuit breaker {name:?} is open; retry in {secs:.3}s");
    let make = || -> PyResult<PyErr> {
        let exc = exc_type(py, Exc::CircuitOpenError)?.call1((msg.clone(),))?;
        exc.setattr("retry_after", secs)?;
        exc.setattr("breaker", name)?;
        Ok(PyErr::from_value(exc))
    };
    make().unwrap_or_else(|e| e)
}

/// An admitted call from Rust code; ends as `Ignored` if dropped unfinished
/// (a cancelled request must not hold a half-open trial slot forever).
pub struct Trial {
    core: Arc<Core>,
    done: bool,
}

impl Trial {
    /// Admits a call through `core`, or the error to raise.
    pub fn begin(core: &Arc<Core>) -> crate::errors::Result<Self> {
        core.try_acquire()
            .map_err(|r| Error::CircuitOpen {
                breaker: core.name.clone(),
                retry_after: r.retry_after,
            })
            .map(|()| Trial {
                core: Arc::clone(core),
                done: false,
            })
    }

    pub fn finish(mut self, result: CallResult) {
        self.done = true;
        self.core.release(result);
    }
}

impl Drop for Trial {
    fn drop(&mut self) {
        if !self.done {
            self.core.release(CallResult::Ignored);
        }
    }
}

/// A circuit breaker for any coroutine (decorator, `async with`, `call`).
#[pyclass(frozen, subclass, module = "fastio._fastio", name = "CircuitBreaker")]
pub struct CircuitBreaker {
    core: Arc<Core>,
    expected: Py<PyTuple>,
}

impl CircuitBreaker {
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    fn open_error(&self, py: Python<'_>, rejected: Rejected) -> PyErr {
        open_error(py, &self.core.name, rejected.retry_after)
    }
}

#[pymethods]
impl CircuitBreaker {
    #[new]
    #[pyo3(signature = (
        failure_threshold = 5,
        recovery_timeout = 30.0,
        half_open_max_calls = 1,
        expected_exceptions = None,
        name = None,
    ))]
    fn new(
        py: Python<'_>,
        failure_threshold: u32,
        recovery_timeout: f64,
        half_open_max_calls: u32,
        expected_exceptions: Option<&Bound<'_, PyAny>>,
        name: Option<String>,
    ) -> PyResult<Self> {
        let invalid =
            |m: &str| -> PyErr { Error::InvalidArgument(format!("CircuitBreaker(): {m}")).into() };
        if failure_threshold == 0 {
            return Err(invalid("failure_threshold must be >= 1"));
        }
        if half_open_max_calls == 0 {
            return Err(invalid("half_open_max_calls must be >= 1"));
        }
        let recovery = Duration::try_from_secs_f64(recovery_timeout)
            .map_err(|_| invalid("recovery_timeout must be a finite number of seconds >= 0"))?;
        let expected = match expected_exceptions {
            None => PyTuple::new(py, [py.get_type::<pyo3::exceptions::PyException>()])?,
            Some(e) if e.is_instance_of::<PyType>() => PyTuple::new(py, [e])?,
            Some(e) => e
                .cast::<PyTuple>()
                .cloned()
                .or_else(|_| PyTuple::new(py, e.try_iter()?.collect::<PyResult<Vec<_>>>()?))?,
        };
        for cls in expected.iter() {
            let ok = cls
                .cast::<PyType>()
                .map(|t| t.is_subclass_of::<PyBaseException>().unwrap_or(false))
                .unwrap_or(false);
            if !ok {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "CircuitBreaker(): expected_exceptions must be exception classes, got {}",
                    cls.repr()?
                )));
            }
        }
        let core = Arc::new(Core::new(
            name.unwrap_or_else(|| "default".to_owned()),
            failure_threshold,
            recovery,
            half_open_max_calls,
        ));
        let source: Arc<dyn GaugeSource> = core.clone();
        register_source(Arc::downgrade(&source));
        Ok(Self {
            core,
            expected: expected.unbind(),
        })
    }

    /// "closed", "open" or "half_open".
    #[getter]
    fn state(&self) -> &'static str {
        self.core.phase().name()
    }

    #[getter]
    fn name(&self) -> &str {
        &self.core.name
    }

    /// Consecutive expected failures counted while closed.
    #[getter]
    fn failure_count(&self) -> u32 {
        self.core.lock().failures
    }

    #[getter]
    fn failure_threshold(&self) -> u32 {
        self.core.failure_threshold
    }

    #[getter]
    fn recovery_timeout(&self) -> f64 {
        self.core.recovery.as_secs_f64()
    }

    #[getter]
    fn half_open_max_calls(&self) -> u32 {
        self.core.half_open_max
    }

    #[getter]
    fn expected_exceptions(&self, py: Python<'_>) -> Py<PyTuple> {
        self.expected.clone_ref(py)
    }

    /// `[(from_state, to_state, unix_time), ...]`, oldest first.
    #[getter]
    fn transitions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items: Vec<(&str, &str, f64)> = self
            .core
            .lock()
            .transitions
            .iter()
            .map(|(a, b, t)| (a.name(), b.name(), *t))
            .collect();
        PyList::new(py, items)
    }

    /// Counters: calls, successes, failures, rejected, state, ...
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.core.snapshot(py)
    }

    /// Admits a call or raises CircuitOpenError (with `retry_after` seconds).
    /// Pair every successful `acquire()` with one `release(exc)`.
    fn acquire(&self, py: Python<'_>) -> PyResult<()> {
        self.core.try_acquire().map_err(|r| self.open_error(py, r))
    }

    /// Ends an admitted call: `exc` is the exception it raised, or None.
    #[pyo3(signature = (exc = None))]
    fn release(&self, py: Python<'_>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let result = match exc.filter(|e| !e.is_none()) {
            None => CallResult::Success,
            Some(e) if e.is_instance(self.expected.bind(py))? => CallResult::Failure,
            // Not an Exception at all (CancelledError, KeyboardInterrupt): neutral.
            Some(e) if !e.is_instance_of::<pyo3::exceptions::PyException>() => CallResult::Ignored,
            // An unexpected exception says nothing about the service's health.
            Some(_) => CallResult::Success,
        };
        self.core.release(result);
        Ok(())
    }

    /// Closes the breaker and forgets counted failures.
    fn reset(&self) {
        self.core.reset()
    }

    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Ready>> {
        slf.get().acquire(slf.py())?;
        ready(slf.py(), slf.clone().into_any())
    }

    #[pyo3(signature = (_exc_type = None, exc = None, _tb = None))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, Ready>> {
        self.release(py, exc)?;
        ready(py, false.into_pyobject(py)?.to_owned().into_any())
    }

    fn __repr__(&self) -> String {
        format!(
            "<CircuitBreaker {:?} {} failures={}/{}>",
            self.core.name,
            self.core.phase().name(),
            self.core.lock().failures,
            self.core.failure_threshold
        )
    }
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CircuitBreaker>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(threshold: u32, recovery_ms: u64, trials: u32) -> Core {
        Core::new(
            "t".into(),
            threshold,
            Duration::from_millis(recovery_ms),
            trials,
        )
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = core(3, 10_000, 1);
        for _ in 0..2 {
            b.try_acquire().ok().unwrap();
            b.release(CallResult::Failure);
        }
        b.try_acquire().ok().unwrap();
        b.release(CallResult::Success); // resets the streak
        for _ in 0..2 {
            b.try_acquire().ok().unwrap();
            b.release(CallResult::Failure);
        }
        assert_eq!(b.phase(), Phase::Closed);
        b.try_acquire().ok().unwrap();
        b.release(CallResult::Failure);
        assert_eq!(b.phase(), Phase::Open);
        let rejected = b.try_acquire().err().unwrap();
        assert!(rejected.retry_after > Duration::from_secs(9));
    }

    #[test]
    fn half_open_admits_limited_trials_then_closes_on_success() {
        let b = core(1, 0, 2);
        b.try_acquire().ok().unwrap();
        b.release(CallResult::Failure);
        assert_eq!(b.phase(), Phase::HalfOpen); // recovery of 0 ms has passed
        b.try_acquire().ok().unwrap();
        b.try_acquire().ok().unwrap();
        assert!(b.try_acquire().is_err(), "only two trial calls at once");
        b.release(CallResult::Ignored);
        b.try_acquire().ok().unwrap();
        b.release(CallResult::Success);
        assert_eq!(b.phase(), Phase::Closed);
        let names: Vec<_> = b
            .lock()
            .transitions
            .iter()
            .map(|(f, t, _)| (f.name(), t.name()))
            .collect();
        assert_eq!(
            names,
            [
                ("closed", "open"),
                ("open", "half_open"),
                ("half_open", "closed")
            ]
        );
    }

    #[test]
    fn failed_trial_reopens() {
        let b = core(1, 50, 1);
        b.try_acquire().ok().unwrap();
        b.release(CallResult::Failure);
        std::thread::sleep(Duration::from_millis(60));
        b.try_acquire().ok().unwrap();
        b.release(CallResult::Failure);
        assert_eq!(b.phase(), Phase::Open);
    }
}
