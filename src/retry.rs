//! `fastio.Retry`: a retry policy (exponential backoff with full jitter,
//! capped; idempotent methods only by default; `Retry-After` honoured on
//! 429/503; an optional total deadline). The policy itself is plain Rust
//! ([`RetryPolicy`]) so the HTTP client and fetch_all apply it without the GIL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

use crate::errors::{exc_type, Error, Exc, HttpErrorKind, Result};

const DEFAULT_STATUS: [u16; 6] = [408, 429, 500, 502, 503, 504];
const DEFAULT_METHODS: [&str; 6] = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"];

/// What a retry policy decides, in plain Rust.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts, the first one included (>= 1).
    pub attempts: u32,
    pub backoff: Duration,
    pub factor: f64,
    pub max_backoff: Duration,
    pub jitter: bool,
    pub on_status: Vec<u16>,
    /// Which HTTP error kinds are retried (from `on_errors`).
    pub on_error_kinds: Vec<HttpErrorKind>,
    pub respect_retry_after: bool,
    /// Upper-case method names that may be retried.
    pub methods: Vec<String>,
    /// Total time budget across attempts and waits.
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_millis(100),
            factor: 2.0,
            max_backoff: Duration::from_secs(10),
            jitter: true,
            on_status: DEFAULT_STATUS.to_vec(),
            on_error_kinds: vec![
                HttpErrorKind::Connect,
                HttpErrorKind::ConnectTimeout,
                HttpErrorKind::ReadTimeout,
                HttpErrorKind::Timeout,
                HttpErrorKind::Read,
            ],
            respect_retry_after: true,
            methods: DEFAULT_METHODS.iter().map(|m| (*m).to_owned()).collect(),
            deadline: None,
        }
    }
}

/// A process-wide splitmix64 stream: jitter needs spread, not cryptography.
fn next_random() -> u64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    static STATE: AtomicU64 = AtomicU64::new(0);
    if STATE.load(Ordering::Relaxed) == 0 {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(GAMMA)
            | 1;
        let _ = STATE.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = STATE
        .fetch_add(GAMMA, Ordering::Relaxed)
        .wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random_unit() -> f64 {
    (next_random() >> 11) as f64 / (1u64 << 53) as f64
}

impl RetryPolicy {
    /// The capped exponential delay before attempt `attempt + 1` (attempt is
    /// 1 after the first failure), without jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exp = self.factor.powi(attempt.saturating_sub(1).min(1000) as i32);
        let secs = self.backoff.as_secs_f64() * exp;
        let capped = secs.min(self.max_backoff.as_secs_f64());
        Duration::try_from_secs_f64(capped.max(0.0)).unwrap_or(self.max_backoff)
    }

    /// The wait before the next attempt: full jitter (uniform in
    /// `[0, base]`), or the server's `Retry-After` when honoured.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let (true, Some(ra)) = (self.respect_retry_after, retry_after) {
            return ra;
        }
        let base = self.base_delay(attempt);
        if self.jitter {
            base.mul_f64(random_unit())
        } else {
            base
        }
    }

    /// Whether `method` may be retried at all.
    pub fn allows_method(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }

    pub fn retries_status(&self, status: u16) -> bool {
        self.on_status.contains(&status)
    }

    pub fn retries_error(&self, err: &Error) -> bool {
        match err {
            Error::Http { kind, .. } => self.on_error_kinds.contains(kind),
            _ => false,
        }
    }

    /// Whether `Retry-After` applies to this status (429 and 503 only).
    pub fn uses_retry_after(&self, status: u16) -> bool {
        self.respect_retry_after && (status == 429 || status == 503)
    }
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date (IMF-fixdate).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = parse_http_date(value)?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` to a SystemTime.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split_whitespace().collect();
    if parts.len() != 5 || parts[4] != "GMT" {
        return None;
    }
    let day: u32 = parts[0].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[1])? as u32
        + 1;
    let year: i64 = parts[2].parse().ok()?;
    let hms: Vec<u64> = parts[3]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

fn seconds(name: &str, v: f64) -> Result<Duration> {
    if !v.is_finite() || v < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "Retry(): {name} must be a finite number >= 0, got {v}"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

/// `fastio.Retry(...)`: when and how often a failed request is tried again.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct Retry {
    pub policy: RetryPolicy,
    on_errors: Py<PyTuple>,
}

#[pymethods]
impl Retry {
    #[new]
    #[pyo3(signature = (
        attempts = 3, backoff = 0.1, factor = 2.0, max_backoff = 10.0, jitter = true,
        on_status = None, on_errors = None, respect_retry_after = true, methods = None,
        deadline = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        attempts: u32,
        backoff: f64,
        factor: f64,
        max_backoff: f64,
        jitter: bool,
        on_status: Option<Vec<u16>>,
        on_errors: Option<Bound<'_, PyAny>>,
        respect_retry_after: bool,
        methods: Option<Vec<String>>,
        deadline: Option<f64>,
    ) -> PyResult<Self> {
        if attempts == 0 {
            return Err(
                Error::InvalidArgument("Retry(): attempts must be >= 1, got 0".into()).into(),
            );
        }
        if !factor.is_finite() || factor < 1.0 {
            return Err(Error::InvalidArgument(format!(
                "Retry(): factor must be a finite number >= 1, got {factor}"
            ))
            .into());
        }
        let on_errors: Bound<'_, PyTuple> = match on_errors {
            None => PyTuple::new(
                py,
                [
                    exc_type(py, Exc::ConnectionError)?.clone(),
                    exc_type(py, Exc::TimeoutError)?.clone(),
                ],
            )?,
            Some(obj) if obj.is_instance_of::<PyType>() => PyTuple::new(py, [obj])?,
            Some(obj) => PyTuple::new(py, obj.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
        };
        for item in on_errors.iter() {
            if !item.is_instance_of::<PyType>() {
                return Err(Error::InvalidArgument(
                    "Retry(): on_errors must be exception classes".into(),
                )
                .into());
            }
        }
        // Which of our HTTP errors `except on_errors` would catch, decided now
        // so the tokio side never needs the GIL.
        let mut kinds = Vec::new();
        for kind in HttpErrorKind::ALL {
            let cls = exc_type(py, kind.exc())?;
            if cls.is_subclass(&on_errors)? {
                kinds.push(kind);
            }
        }
        let policy = RetryPolicy {
            attempts,
            backoff: seconds("backoff", backoff)?,
            factor,
            max_backoff: seconds("max_backoff", max_backoff)?,
            jitter,
            on_status: on_status.unwrap_or_else(|| DEFAULT_STATUS.to_vec()),
            on_error_kinds: kinds,
            respect_retry_after,
            methods: methods
                .map(|ms| ms.into_iter().map(|m| m.to_ascii_uppercase()).collect())
                .unwrap_or_else(|| DEFAULT_METHODS.iter().map(|m| (*m).to_owned()).collect()),
            deadline: deadline.map(|d| seconds("deadline", d)).transpose()?,
        };
        Ok(Retry {
            policy,
            on_errors: on_errors.unbind(),
        })
    }

    #[getter]
    fn attempts(&self) -> u32 {
        self.policy.attempts
    }
    #[getter]
    fn backoff(&self) -> f64 {
        self.policy.backoff.as_secs_f64()
    }
    #[getter]
    fn factor(&self) -> f64 {
        self.policy.factor
    }
    #[getter]
    fn max_backoff(&self) -> f64 {
        self.policy.max_backoff.as_secs_f64()
    }
    #[getter]
    fn jitter(&self) -> bool {
        self.policy.jitter
    }
    #[getter]
    fn on_status(&self) -> Vec<u16> {
        self.policy.on_status.clone()
    }
    #[getter]
    fn on_errors(&self, py: Python<'_>) -> Py<PyTuple> {
        self.on_errors.clone_ref(py)
    }
    #[getter]
    fn respect_retry_after(&self) -> bool {
        self.policy.respect_retry_after
    }
    #[getter]
    fn methods(&self) -> Vec<String> {
        self.policy.methods.clone()
    }
    #[getter]
    fn deadline(&self) -> Option<f64> {
        self.policy.deadline.map(|d| d.as_secs_f64())
    }

    /// Seconds to wait before attempt `attempt + 1`, given the server's
    /// Retry-After seconds if any.
    #[pyo3(signature = (attempt, retry_after = None))]
    fn delay(&self, attempt: u32, retry_after: Option<f64>) -> PyResult<f64> {
        let ra = retry_after.map(|s| seconds("retry_after", s)).transpose()?;
        Ok(self.policy.delay(attempt, ra).as_secs_f64())
    }

    fn __repr__(&self) -> String {
        let p = &self.policy;
        format!(
            "Retry(attempts={}, backoff={}, factor={}, max_backoff={}, jitter={}, on_status={:?}, methods={:?})",
            p.attempts,
            p.backoff.as_secs_f64(),
            p.factor,
            p.max_backoff.as_secs_f64(),
            if p.jitter { "True" } else { "False" },
            p.on_status,
            p.methods
        )
    }
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Retry>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            jitter: false,
            backoff: Duration::from_millis(100),
            factor: 2.0,
            max_backoff: Duration::from_millis(500),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn exponential_and_capped() {
        let p = policy();
        assert_eq!(p.delay(1, None), Duration::from_millis(100));
        assert_eq!(p.delay(2, None), Duration::from_millis(200));
        assert_eq!(p.delay(3, None), Duration::from_millis(400));
        assert_eq!(p.delay(4, None), Duration::from_millis(500));
        assert_eq!(p.delay(60, None), Duration::from_millis(500));
    }

    #[test]
    fn full_jitter_stays_within_base() {
        let p = RetryPolicy {
            jitter: true,
            ..policy()
        };
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = p.delay(3, None);
            assert!(d <= Duration::from_millis(400));
            distinct.insert(d);
        }
        assert!(distinct.len() > 50, "jitter should spread the delays");
    }

    #[test]
    fn retry_after_wins_when_respected() {
        let p = policy();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        let q = RetryPolicy {
            respect_retry_after: false,
            ..policy()
        };
        assert_eq!(
            q.delay(1, Some(Duration::from_secs(3))),
            Duration::from_millis(100)
        );
        assert!(p.uses_retry_after(429) && p.uses_retry_after(503));
        assert!(!p.uses_retry_after(500));
    }

    #[test]
    fn idempotent_methods_only_by_default() {
        let p = RetryPolicy::default();
        assert!(p.allows_method("GET") && p.allows_method("put"));
        assert!(!p.allows_method("POST") && !p.allows_method("PATCH"));
    }

    #[test]
    fn retry_after_formats() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn errors_by_kind() {
        let p = RetryPolicy::default();
        assert!(p.retries_error(&Error::http(HttpErrorKind::Connect, "x")));
        assert!(!p.retries_error(&Error::http(HttpErrorKind::InvalidUrl, "x")));
        assert!(!p.retries_error(&Error::Interface("x".into())));
        assert!(p.retries_status(503) && !p.retries_status(404));
    }
}
