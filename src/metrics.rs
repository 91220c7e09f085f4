//! Metrics: per labelled operation, calls, errors, cancellations, in flight
//! and a latency histogram, recorded with relaxed atomics only — no lock, no
//! allocation and no GIL on the hot path, so tokio threads record freely.
//!
//! The histogram is log-linear (128 sub-buckets per power of two of
//! nanoseconds): any quantile is reported within 0.4% of a recorded value,
//! and min / max / sum are exact. Prometheus buckets are counted exactly on
//! their own fixed bounds.
//!
//! Series are found by (family, label values) in a registry; callers on hot
//! paths keep the `Arc<Series>` they get instead of looking it up per call.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

// -------------------------------------------------------------- histogram --

const SUB_BITS: u32 = 7;
const SUB_BUCKETS: usize = 1 << SUB_BITS; // 128 per power of two: <= 0.78% wide
const LINEAR: u64 = 1 << (SUB_BITS + 1); // values below 256 ns are exact
/// Largest power of two tracked (2^46 ns is about 19.5 hours); larger values
/// land in the last bucket, and `max` stays exact.
const MAX_EXP: u32 = 46;
const BUCKETS: usize = LINEAR as usize + (MAX_EXP - SUB_BITS) as usize * SUB_BUCKETS;

/// Upper bounds (seconds) of the Prometheus histogram buckets.
pub const PROM_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const PROM_BOUNDS_NS: [u64; 14] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

fn bucket_index(ns: u64) -> usize {
    if ns < LINEAR {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros(); // >= SUB_BITS + 1
    if exp > MAX_EXP {
        return BUCKETS - 1;
    }
    let mantissa = (ns >> (exp - SUB_BITS)) as usize; // in [128, 256)
    LINEAR as usize + (exp - SUB_BITS - 1) as usize * SUB_BUCKETS + (mantissa - SUB_BUCKETS)
}

/// Smallest and largest value that fall in bucket `i`.
fn bucket_range(i: usize) -> (u64, u64) {
    if i < LINEAR as usize {
        return (i as u64, i as u64);
    }
    let k = i - LINEAR as usize;
    let exp = (k / SUB_BUCKETS) as u32 + SUB_BITS + 1;
    let mantissa = (k % SUB_BUCKETS + SUB_BUCKETS) as u64;
    let shift = exp - SUB_BITS;
    let lo = mantissa << shift;
    (lo, lo + (1u64 << shift) - 1)
}

/// A latency histogram in nanoseconds.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    prom: [AtomicU64; PROM_BOUNDS_NS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
    min_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            prom: Default::default(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            min_ns: AtomicU64::new(u64::MAX),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, ns: u64) {
        self.buckets[bucket_index(ns)].fetch_add(1, Relaxed);
        if let Some(i) = PROM_BOUNDS_NS.iter().position(|&b| ns <= b) {
            self.prom[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
        self.min_ns.fetch_min(ns, Relaxed);
        self.max_ns.fetch_max(ns, Relaxed);
    }

    fn reset(&self) {
        for b in self.buckets.iter().chain(self.prom.iter()) {
            b.store(0, Relaxed);
        }
        self.count.store(0, Relaxed);
        self.sum_ns.store(0, Relaxed);
        self.min_ns.store(u64::MAX, Relaxed);
        self.max_ns.store(0, Relaxed);
    }

    /// Values at the given quantiles (0..=1), each within 0.4% of a recorded
    /// value; 0 when empty.
    pub fn quantiles<const N: usize>(&self, qs: [f64; N]) -> [u64; N] {
        let mut out = [0u64; N];
        let total: u64 = self.buckets.iter().map(|b| b.load(Relaxed)).sum();
        if total == 0 {
            return out;
        }
        let max = self.max_ns.load(Relaxed);
        let min = self.min_ns.load(Relaxed);
        let ranks = qs.map(|q| ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1));
        let mut seen = 0u64;
        let mut next = 0usize;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            while next < N && seen >= ranks[next] {
                let (lo, hi) = bucket_range(i);
                // The top rank is the maximum, which is known exactly.
                out[next] = if ranks[next] >= total {
                    max
                } else {
                    (lo + (hi - lo) / 2).clamp(min, max)
                };
                next += 1;
            }
            if next == N {
                break;
            }
        }
        out
    }
}

// ----------------------------------------------------------------- series --

/// One labelled operation.
#[derive(Default)]
pub struct Series {
    calls: AtomicU64,
    errors: AtomicU64,
    cancelled: AtomicU64,
    in_flight: AtomicI64,
    latency: Histogram,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    Cancelled,
}

impl Series {
    /// Marks an operation started; finish it with [`Series::finish`].
    pub fn begin(&self) -> u64 {
        self.in_flight.fetch_add(1, Relaxed);
        now_ns()
    }

    /// Records an operation started by [`Series::begin`] at `started_ns`.
    pub fn finish(&self, started_ns: u64, outcome: Outcome) {
        self.in_flight.fetch_sub(1, Relaxed);
        self.record(now_ns().saturating_sub(started_ns), outcome);
    }

    /// Ends an operation begun on this series (its in-flight count) but
    /// records it in `into`: for labels known only at the end (a status class).
    pub fn finish_into(&self, started_ns: u64, into: &Series, outcome: Outcome) {
        self.in_flight.fetch_sub(1, Relaxed);
        into.record(now_ns().saturating_sub(started_ns), outcome);
    }

    /// Records a finished operation that took `ns` (nothing while metrics are disabled).
    pub fn record(&self, ns: u64, outcome: Outcome) {
        if !enabled() {
            return;
        }
        self.calls.fetch_add(1, Relaxed);
        match outcome {
            Outcome::Ok => {}
            Outcome::Error => {
                self.errors.fetch_add(1, Relaxed);
            }
            Outcome::Cancelled => {
                self.cancelled.fetch_add(1, Relaxed);
            }
        }
        self.latency.record(ns);
    }

    fn reset(&self) {
        self.calls.store(0, Relaxed);
        self.errors.store(0, Relaxed);
        self.cancelled.store(0, Relaxed);
        self.latency.reset();
    }
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether finished operations are recorded (in-flight gauges always count).
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Turns recording on or off process-wide (e.g. to measure its cost).
#[pyfunction]
fn enable(on: bool) {
    ENABLED.store(on, Relaxed);
}

/// Whether metrics are being recorded.
#[pyfunction(name = "enabled")]
fn is_enabled() -> bool {
    enabled()
}

/// Nanoseconds on a monotonic clock shared by the whole process.
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

// --------------------------------------------------------------- registry --

/// A kind of operation and the names of its labels.
pub struct Family {
    /// Key in `snapshot()` and suffix of the Prometheus names (`fastio_<key>_...`).
    pub key: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

/// `@fastio.monitor("name")`-decorated functions.
pub static MONITOR: Family = Family {
    key: "monitor",
    help: "calls of @fastio.monitor functions",
    labels: &["name"],
};
/// Requests made by fastio's HTTP client.
pub static HTTP_CLIENT: Family = Family {
    key: "http_client",
    help: "HTTP requests made by fastio",
    labels: &["host", "method", "status_class"],
};
/// Queries run through fastio's pools.
pub static DB: Family = Family {
    key: "db",
    help: "database statements run by fastio",
    labels: &["pool", "backend", "statement"],
};
/// Handlers of an aiohttp app set up with fastio.integrations.aiohttp.
pub static HTTP_SERVER: Family = Family {
    key: "http_server",
    help: "requests handled by the aiohttp app",
    labels: &["route", "method", "status_class"],
};

static FAMILIES: [&Family; 4] = [&MONITOR, &HTTP_CLIENT, &DB, &HTTP_SERVER];

type Key = (&'static str, Vec<String>);

fn registry() -> &'static RwLock<BTreeMap<Key, Arc<Series>>> {
    static REGISTRY: OnceLock<RwLock<BTreeMap<Key, Arc<Series>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The series of `family` with these label values (created on first use).
pub fn series(family: &'static Family, values: &[&str]) -> Arc<Series> {
    debug_assert_eq!(values.len(), family.labels.len());
    let key: Key = (family.key, values.iter().map(|v| (*v).to_owned()).collect());
    if let Some(s) = registry()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
    {
        return Arc::clone(s);
    }
    let mut map = registry().write().unwrap_or_else(|p| p.into_inner());
    Arc::clone(map.entry(key).or_default())
}

/// Something with gauges of its own (a pool, a circuit breaker) that
/// `render_prometheus()` and `snapshot()` report while it is alive.
pub trait GaugeSource: Send + Sync {
    /// Section of `snapshot()` this source appears in (e.g. "breakers").
    fn section(&self) -> &'static str;
    /// Name/values pairs for `snapshot()`.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>>;
    /// Prometheus sample lines (`name{labels} value`), families declared by
    /// [`GaugeSource::families`].
    fn samples(&self, out: &mut Vec<(&'static str, String, f64)>);
    /// (metric name, type, help) of every metric `samples` emits.
    fn families(&self) -> &'static [(&'static str, &'static str, &'static str)];
}

fn sources() -> &'static RwLock<Vec<Weak<dyn GaugeSource>>> {
    static SOURCES: OnceLock<RwLock<Vec<Weak<dyn GaugeSource>>>> = OnceLock::new();
    SOURCES.get_or_init(Default::default)
}

/// Registers a gauge source; it is dropped from reports once it is dropped.
pub fn register_source(source: Weak<dyn GaugeSource>) {
    let mut list = sources().write().unwrap_or_else(|p| p.into_inner());
    list.retain(|s| s.strong_count() > 0);
    list.push(source);
}

fn live_sources() -> Vec<Arc<dyn GaugeSource>> {
    sources()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect()
}

fn all_series() -> Vec<(Key, Arc<Series>)> {
    registry()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), Arc::clone(v)))
        .collect()
}

fn family(key: &str) -> &'static Family {
    FAMILIES
        .iter()
        .find(|f| f.key == key)
        .expect("every series belongs to a declared family")
}

// --------------------------------------------------------------- exposure --

fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn labels_text(names: &[&str], values: &[String], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape_label(v)))
        .collect();
    if let Some((n, v)) = extra {
        parts.push(format!("{n}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn fmt_float(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

/// The Prometheus text exposition (format 0.0.4) of every metric.
#[pyfunction]
pub fn render_prometheus(py: Python<'_>) -> String {
    let series = all_series();
    let sources = live_sources();
    py.detach(move || {
        let mut out = String::new();
        for fam in FAMILIES {
            let rows: Vec<_> = series.iter().filter(|((k, _), _)| *k == fam.key).collect();
            if rows.is_empty() {
                continue;
            }
            let base = format!("fastio_{}", fam.key);
            let counters = [
                ("calls_total", "counter", "finished"),
                ("errors_total", "counter", "failed"),
                ("cancelled_total", "counter", "cancelled"),
                ("in_flight", "gauge", "in flight"),
            ];
            for (suffix, kind, what) in counters {
                let _ = writeln!(out, "# HELP {base}_{suffix} {} {what}", fam.help);
                let _ = writeln!(out, "# TYPE {base}_{suffix} {kind}");
                // A series that never finished a call (e.g. one that only
                // counts calls in flight) shows up in the gauge alone.
                let shown = rows
                    .iter()
                    .filter(|(_, s)| suffix == "in_flight" || s.calls.load(Relaxed) > 0);
                for ((_, values), s) in shown {
                    let v = match suffix {
                        "calls_total" => s.calls.load(Relaxed) as i64,
                        "errors_total" => s.errors.load(Relaxed) as i64,
                        "cancelled_total" => s.cancelled.load(Relaxed) as i64,
                        _ => s.in_flight.load(Relaxed),
                    };
                    let labels = labels_text(fam.labels, values, None);
                    let _ = writeln!(out, "{base}_{suffix}{labels} {v}");
                }
            }
            let name = format!("{base}_duration_seconds");
            let _ = writeln!(out, "# HELP {name} {} latency", fam.help);
            let _ = writeln!(out, "# TYPE {name} histogram");
            for ((_, values), s) in rows.iter().filter(|(_, s)| s.calls.load(Relaxed) > 0) {
                let h = &s.latency;
                let mut cumulative = 0u64;
                for (i, bound) in PROM_BOUNDS.iter().enumerate() {
                    cumulative += h.prom[i].load(Relaxed);
                    let le = fmt_float(*bound);
                    let labels = labels_text(fam.labels, values, Some(("le", &le)));
                    let _ = writeln!(out, "{name}_bucket{labels} {cumulative}");
                }
                let count = h.count.load(Relaxed);
                let labels = labels_text(fam.labels, values, Some(("le", "+Inf")));
                let _ = writeln!(out, "{name}_bucket{labels} {count}");
                let labels = labels_text(fam.labels, values, None);
                let sum = h.sum_ns.load(Relaxed) as f64 / 1e9;
                let _ = writeln!(out, "{name}_sum{labels} {}", fmt_float(sum));
                let _ = writeln!(out, "{name}_count{labels} {count}");
            }
        }
        let mut samples = Vec::new();
        let mut declared: Vec<(&'static str, &'static str, &'static str)> = Vec::new();
        for source in &sources {
            for &(name, kind, help) in source.families() {
                if !declared.iter().any(|(n, _, _)| *n == name) {
                    declared.push((name, kind, help));
                }
            }
            source.samples(&mut samples);
        }
        // Each metric's HELP and TYPE, then all its samples, contiguous.
        for (name, kind, help) in declared {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (n, labels, v) in &samples {
                if *n == name {
                    let _ = writeln!(out, "{n}{labels} {}", fmt_float(*v));
                }
            }
        }
        out
    })
}

fn series_dict<'py>(
    py: Python<'py>,
    fam: &Family,
    values: &[String],
    s: &Series,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let labels = PyDict::new(py);
    for (n, v) in fam.labels.iter().zip(values) {
        labels.set_item(n, v)?;
    }
    d.set_item("labels", labels)?;
    let h = &s.latency;
    let count = h.count.load(Relaxed);
    let secs = |ns: u64| ns as f64 / 1e9;
    let [p50, p90, p99] = h.quantiles([0.5, 0.9, 0.99]);
    d.set_item("count", s.calls.load(Relaxed))?;
    d.set_item("errors", s.errors.load(Relaxed))?;
    d.set_item("cancelled", s.cancelled.load(Relaxed))?;
    d.set_item("in_flight", s.in_flight.load(Relaxed))?;
    d.set_item("total", secs(h.sum_ns.load(Relaxed)))?;
    let (avg, min, max) = if count == 0 {
        (0.0, 0.0, 0.0)
    } else {
        (
            secs(h.sum_ns.load(Relaxed)) / count as f64,
            secs(h.min_ns.load(Relaxed)),
            secs(h.max_ns.load(Relaxed)),
        )
    };
    d.set_item("avg", avg)?;
    d.set_item("min", min)?;
    d.set_item("max", max)?;
    d.set_item("p50", secs(p50))?;
    d.set_item("p90", secs(p90))?;
    d.set_item("p99", secs(p99))?;
    Ok(d)
}

/// Every metric as plain Python data: `{family: [series, ...], section: [...]}`
/// where a series is `{"labels": {...}, "count", "errors", "cancelled",
/// "in_flight", "total", "avg", "min", "max", "p50", "p90", "p99"}` (seconds).
#[pyfunction]
pub fn snapshot(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    for fam in FAMILIES {
        out.set_item(fam.key, PyList::empty(py))?;
    }
    for ((key, values), s) in all_series() {
        let fam = family(key);
        // A pool creates a series per statement kind up front; the ones never
        // used are left out, as in the Prometheus text.
        if key == DB.key && s.calls.load(Relaxed) == 0 && s.in_flight.load(Relaxed) == 0 {
            continue;
        }
        let list = out.get_item(fam.key)?.expect("created above");
        list.cast::<PyList>()?
            .append(series_dict(py, fam, &values, &s)?)?;
    }
    for source in live_sources() {
        let section = source.section();
        if out.get_item(section)?.is_none() {
            out.set_item(section, PyList::empty(py))?;
        }
        let list = out.get_item(section)?.expect("created above");
        list.cast::<PyList>()?.append(source.snapshot(py)?)?;
    }
    Ok(out)
}

/// Zeroes every counter and histogram (in-flight gauges keep counting what
/// is still running).
#[pyfunction]
pub fn reset() {
    for (_, s) in all_series() {
        s.reset();
    }
}

/// A handle on one series, for Python code that records (the monitor
/// decorator, the aiohttp integration). `begin()` / `finish(token, outcome)`.
#[pyclass(frozen, module = "fastio._fastio", name = "MetricSeries")]
pub struct PySeries {
    series: Arc<Series>,
}

#[pymethods]
impl PySeries {
    /// Marks a call started; returns the token to pass to `finish`.
    fn begin(&self) -> u64 {
        self.series.begin()
    }

    /// Records the call started at `token`: outcome 0 = ok, 1 = error, 2 =
    /// cancelled. With `into`, the call is recorded in that series instead
    /// (for labels known only at the end, like a status class); this one's
    /// in-flight count still goes down.
    #[pyo3(signature = (token, outcome, into = None))]
    fn finish(&self, token: u64, outcome: u8, into: Option<&PySeries>) {
        match into {
            None => self.series.finish(token, outcome_of(outcome)),
            Some(other) => self
                .series
                .finish_into(token, &other.series, outcome_of(outcome)),
        }
    }

    /// Records a call that took `seconds` (no in-flight accounting).
    fn record(&self, seconds: f64, outcome: u8) {
        self.series
            .record((seconds.max(0.0) * 1e9) as u64, outcome_of(outcome));
    }
}

fn outcome_of(code: u8) -> Outcome {
    match code {
        0 => Outcome::Ok,
        2 => Outcome::Cancelled,
        _ => Outcome::Error,
    }
}

/// The series of `family` ("monitor", "http_server", ...) with these label values.
#[pyfunction]
fn metric_series(family_key: &str, labels: Vec<String>) -> PyResult<PySeries> {
    let fam = FAMILIES
        .iter()
        .find(|f| f.key == family_key)
        .ok_or_else(|| {
            crate::errors::Error::InvalidArgument(format!(
                "metric_series(): unknown family {family_key:?}"
            ))
        })?;
    if labels.len() != fam.labels.len() {
        return Err(crate::errors::Error::InvalidArgument(format!(
            "metric_series(): family {family_key:?} takes labels {:?}, got {} value(s)",
            fam.labels,
            labels.len()
        ))
        .into());
    }
    let values: Vec<&str> = labels.iter().map(String::as_str).collect();
    Ok(PySeries {
        series: series(fam, &values),
    })
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySeries>()?;
    m.add_function(wrap_pyfunction!(metric_series, m)?)?;
    m.add_function(wrap_pyfunction!(render_prometheus, m)?)?;
    m.add_function(wrap_pyfunction!(snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(reset, m)?)?;
    m.add_function(wrap_pyfunction!(enable, m)?)?;
    m.add_function(wrap_pyfunction!(is_enabled, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_index_and_range_agree() {
        for &v in &[
            0u64,
            1,
            255,
            256,
            257,
            1000,
            123_456,
            1_000_000_007,
            (1 << 46) - 1,
        ] {
            let (lo, hi) = bucket_range(bucket_index(v));
            assert!(lo <= v && v <= hi, "{v} not in [{lo}, {hi}]");
            assert!(
                (hi - lo) as f64 <= v as f64 / 127.0,
                "bucket of {v} too wide"
            );
        }
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_within_one_percent() {
        let h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000); // 1 us .. 10 ms, uniform
        }
        let [p50, p90, p99, p100] = h.quantiles([0.5, 0.9, 0.99, 1.0]);
        for (got, want) in [(p50, 5_000_000.0), (p90, 9_000_000.0), (p99, 9_900_000.0)] {
            assert!(((got as f64) - want).abs() / want < 0.01, "{got} vs {want}");
        }
        assert_eq!(p100, 10_000_000);
        assert_eq!(h.min_ns.load(Relaxed), 1000);
        assert_eq!(h.count.load(Relaxed), 10_000);
    }

    #[test]
    fn prometheus_buckets_are_exact() {
        let h = Histogram::default();
        h.record(500_000); // exactly on the first bound: counted in it (le)
        h.record(500_001);
        h.record(20_000_000_000); // beyond the last bound: only in +Inf
        assert_eq!(h.prom[0].load(Relaxed), 1);
        assert_eq!(h.prom[1].load(Relaxed), 1);
        assert_eq!(h.prom.iter().map(|b| b.load(Relaxed)).sum::<u64>(), 2);
    }

    #[test]
    fn label_values_are_escaped() {
        let text = labels_text(&["a"], &["x\"y\\z\nw".to_owned()], Some(("le", "1")));
        assert_eq!(text, r#"{a="x\"y\\z\nw",le="1"}"#);
    }
}
