//! Pool metrics: statement series labelled (pool, backend, statement kind),
//! looked up once per pool, and the pool gauges (size, idle, in use,
//! waiting) reported through `fastio.metrics`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::pool::Stats;
use crate::metrics::{self, GaugeSource, Outcome, Series, DB};

/// Statement kinds, by leading keyword (the `statement` label).
const KINDS: [&str; 8] = [
    "select",
    "insert",
    "update",
    "delete",
    "ddl",
    "transaction",
    "copy",
    "other",
];

/// The kind of `sql`, as an index into [`KINDS`].
fn kind_of(sql: &str) -> usize {
    let word = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    let is = |w: &str| word.eq_ignore_ascii_case(w);
    if is("select") || is("with") || is("values") || is("show") || is("table") || is("fetch") {
        0
    } else if is("insert") || is("replace") {
        1
    } else if is("update") {
        2
    } else if is("delete") {
        3
    } else if is("create") || is("drop") || is("alter") || is("truncate") {
        4
    } else if is("begin")
        || is("start")
        || is("commit")
        || is("rollback")
        || is("savepoint")
        || is("release")
    {
        5
    } else if is("copy") {
        6
    } else {
        7
    }
}

/// A pool's statement series and the labels of its gauges.
pub(crate) struct PoolMetrics {
    pub(crate) name: String,
    pub(crate) backend: &'static str,
    by_kind: Vec<Arc<Series>>,
}

impl PoolMetrics {
    pub(crate) fn new(name: String, backend: &'static str) -> Self {
        let by_kind = KINDS
            .iter()
            .map(|k| metrics::series(&DB, &[&name, backend, k]))
            .collect();
        PoolMetrics {
            name,
            backend,
            by_kind,
        }
    }

    /// Starts timing one statement; recorded when the timer is finished, or
    /// as cancelled if it is dropped first.
    pub(crate) fn start(&self, sql: &str) -> Timer<'_> {
        let series = &self.by_kind[kind_of(sql)];
        Timer {
            started: series.begin(),
            series,
            done: false,
        }
    }

    /// Records one statement of `sql`'s kind that took `ns` (run outside
    /// any timer: a read answered on the calling thread).
    pub(crate) fn record(&self, sql: &str, ns: u64, ok: bool) {
        let outcome = if ok { Outcome::Ok } else { Outcome::Error };
        self.by_kind[kind_of(sql)].record(ns, outcome);
    }

    /// Times `fut` as one statement of `sql`'s kind. A combinator, not an
    /// `async fn`: that would keep `fut` twice in its state (as the argument
    /// and as the awaited future), and a query's future is kilobytes.
    pub(crate) fn timed<'a, T, E>(
        &'a self,
        sql: &str,
        fut: impl std::future::Future<Output = Result<T, E>> + 'a,
    ) -> impl std::future::Future<Output = Result<T, E>> + 'a {
        use futures::FutureExt;
        let timer = self.start(sql);
        fut.map(move |out| {
            timer.finish(out.is_ok());
            out
        })
    }
}

pub(crate) struct Timer<'a> {
    series: &'a Series,
    started: u64,
    done: bool,
}

impl Timer<'_> {
    pub(crate) fn finish(mut self, ok: bool) {
        self.done = true;
        let outcome = if ok { Outcome::Ok } else { Outcome::Error };
        self.series.finish(self.started, outcome);
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.series.finish(self.started, Outcome::Cancelled);
        }
    }
}

/// What the pool gauges read from a pool of any backend.
pub(crate) trait PoolView: Send + Sync {
    fn size(&self) -> u32;
    fn idle(&self) -> usize;
    fn max_size(&self) -> u32;
    fn counters(&self) -> &Stats;
    fn metrics(&self) -> &PoolMetrics;
}

/// Reports a pool's gauges while it is alive.
pub(crate) struct PoolGauges<P: PoolView>(pub(crate) std::sync::Weak<P>);

fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

impl<P: PoolView + 'static> GaugeSource for PoolGauges<P> {
    fn section(&self) -> &'static str {
        "pools"
    }

    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let Some(p) = self.0.upgrade() else {
            return Ok(d);
        };
        let (size, idle) = (p.size(), p.idle() as u32);
        let s = p.counters();
        d.set_item("name", &p.metrics().name)?;
        d.set_item("backend", p.metrics().backend)?;
        d.set_item("size", size)?;
        d.set_item("idle", idle)?;
        d.set_item("in_use", size.saturating_sub(idle))?;
        d.set_item("waiting", s.waiting.load(Ordering::Relaxed).max(0))?;
        d.set_item("max_size", p.max_size())?;
        d.set_item("acquired", s.acquired.load(Ordering::Relaxed))?;
        d.set_item("timeouts", s.timeouts.load(Ordering::Relaxed))?;
        Ok(d)
    }

    fn samples(&self, out: &mut Vec<(&'static str, String, f64)>) {
        let Some(p) = self.0.upgrade() else {
            return;
        };
        let m = p.metrics();
        let labels = format!("{{pool=\"{}\",backend=\"{}\"}}", escape(&m.name), m.backend);
        let (size, idle) = (p.size(), p.idle() as u32);
        let s = p.counters();
        let gauges = [
            ("fastio_pool_size", f64::from(size)),
            ("fastio_pool_idle", f64::from(idle)),
            ("fastio_pool_in_use", f64::from(size.saturating_sub(idle))),
            (
                "fastio_pool_waiting",
                s.waiting.load(Ordering::Relaxed).max(0) as f64,
            ),
            ("fastio_pool_max_size", f64::from(p.max_size())),
            (
                "fastio_pool_acquire_timeouts_total",
                s.timeouts.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, v) in gauges {
            out.push((name, labels.clone(), v));
        }
    }

    fn families(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        &[
            (
                "fastio_pool_size",
                "gauge",
                "open connections (idle and in use)",
            ),
            ("fastio_pool_idle", "gauge", "idle connections"),
            ("fastio_pool_in_use", "gauge", "connections handed out"),
            ("fastio_pool_waiting", "gauge", "tasks waiting to acquire"),
            ("fastio_pool_max_size", "gauge", "the pool's max_size"),
            (
                "fastio_pool_acquire_timeouts_total",
                "counter",
                "acquires that timed out",
            ),
        ]
    }
}

/// Registers `pool`'s gauges with `fastio.metrics`; they are reported for
/// as long as the returned handle is kept (the pool keeps it).
pub(crate) fn register<P: PoolView + 'static>(pool: &Arc<P>) -> Arc<dyn GaugeSource> {
    let source: Arc<dyn GaugeSource> = Arc::new(PoolGauges(Arc::downgrade(pool)));
    metrics::register_source(Arc::downgrade(&source));
    source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_kinds() {
        assert_eq!(KINDS[kind_of("  SELECT 1")], "select");
        assert_eq!(KINDS[kind_of("(select 1) union (select 2)")], "select");
        assert_eq!(
            KINDS[kind_of("with x as (select 1) select * from x")],
            "select"
        );
        assert_eq!(KINDS[kind_of("INSERT INTO t VALUES ($1)")], "insert");
        assert_eq!(KINDS[kind_of("update t set a = 1")], "update");
        assert_eq!(KINDS[kind_of("DELETE FROM t")], "delete");
        assert_eq!(KINDS[kind_of("CREATE TABLE t (a int)")], "ddl");
        assert_eq!(
            KINDS[kind_of("BEGIN ISOLATION LEVEL SERIALIZABLE")],
            "transaction"
        );
        assert_eq!(KINDS[kind_of("COPY t FROM STDIN")], "copy");
        assert_eq!(KINDS[kind_of("LISTEN x")], "other");
    }
}
