//! `Pool` and `connect`: the one pool type for every backend (the DSN's
//! scheme picks it; PostgreSQL is implemented, MySQL and SQLite slot in as
//! further `Backend` variants).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, Postgres};

use super::codec::py_wire::PyRows;
use super::codec::to_python::JsonMode;
use super::connection::{
    batch_of, check_record_class, in_python, no_record_class, params_of, timeout_arg, Busy, Conn,
    ConnInner, ConnKind, Connection, Session, Settings,
};
use super::mysql;
use super::postgres::{self, map_err, Shape};
use super::reconnect::retried;
use super::sql::{open_conn, open_pool, warm_up, Dialect, InitSql, SqlConn, SqlPool, SqlSettings};
use super::sqlite;
use super::stats::{self, PoolMetrics, PoolView};
use crate::errors::{Error, Result};
use crate::metrics::GaugeSource;
use crate::retry::{Retry, RetryPolicy};
use crate::runtime::{check_fork, done_into_py, future_into_py, generation, Awaitable, ReturnNone};
use futures::future::BoxFuture;
use sqlx::mysql::MySql;
use sqlx::sqlite::Sqlite;

/// Which database a pool talks to.
pub(crate) enum Backend {
    Postgres(PgPool),
}

/// Pool counters for `get_stats()`.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) acquired: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) created: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) waiting: AtomicI64,
}

impl Stats {
    /// Counts the outcome of one acquire.
    pub(crate) fn count_acquire<T>(&self, got: &std::result::Result<T, sqlx::Error>) {
        let counter = match got {
            Ok(_) => &self.acquired,
            Err(sqlx::Error::PoolTimedOut) => &self.timeouts,
            Err(_) => &self.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) struct PoolInner {
    backend: Backend,
    settings: Arc<Settings>,
    min_size: u32,
    max_size: u32,
    acquire_timeout: Option<Duration>,
    stats: Arc<Stats>,
    closed: AtomicBool,
    label: String,
    /// `init` / `setup` callbacks (asyncpg's create_pool keywords).
    hooks: Option<Arc<super::hooks::Hooks>>,
    pub(crate) metrics: PoolMetrics,
    gauges: OnceLock<Arc<dyn GaugeSource>>,
    retry: Option<RetryPolicy>,
    /// Connections handed out by `acquire()`, for `terminate()`.
    lent: Mutex<Vec<std::sync::Weak<ConnInner>>>,
}

impl PoolView for PoolInner {
    fn size(&self) -> u32 {
        self.pg().size()
    }

    fn idle(&self) -> usize {
        self.pg().num_idle()
    }

    fn max_size(&self) -> u32 {
        self.max_size
    }

    fn counters(&self) -> &Stats {
        &self.stats
    }

    fn metrics(&self) -> &PoolMetrics {
        &self.metrics
    }
}

/// The DSN with its password replaced by `***`, for reprs and messages.
pub(crate) fn redact_dsn(dsn: &str) -> String {
    let Some(start) = dsn.find("://").map(|i| i + 3) else {
        return dsn.to_owned();
    };
    let rest = &dsn[start..];
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..auth_end].rfind('@') else {
        return dsn.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:***{}", &dsn[..start], &rest[..colon], &rest[at..]),
        None => dsn.to_owned(),
    }
}

pub(crate) fn password_of(dsn: &str) -> Option<String> {
    let start = dsn.find("://")? + 3;
    let rest = &dsn[start..];
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let at = rest[..auth_end].rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some(rest[colon + 1..at].to_owned()).filter(|p| !p.is_empty())
}

/// Parses a PostgreSQL DSN; errors name the argument and never echo the password.
fn pg_options(func: &str, dsn: &str, statement_cache_size: usize) -> Result<PgConnectOptions> {
    let opts = PgConnectOptions::from_str(dsn).map_err(|e| {
        let mut msg = e.to_string();
        if let Some(pw) = password_of(dsn) {
            msg = msg.replace(&pw, "***");
        }
        Error::InvalidArgument(format!(
            "{func}(): invalid dsn {:?}: {msg}",
            redact_dsn(dsn)
        ))
    })?;
    // Statement logging off: asyncpg logs no queries, and the per-query log
    // check is measurable at these latencies. Slow-statement warnings stay.
    Ok(opts
        .statement_cache_capacity(statement_cache_size)
        .log_statements(log::LevelFilter::Off))
}

fn secs(what: &str, v: Option<f64>) -> Result<Option<Duration>> {
    timeout_arg(what, v)
}

impl PoolInner {
    fn pg(&self) -> &PgPool {
        match &self.backend {
            Backend::Postgres(p) => p,
        }
    }

    fn check(&self) -> Result<()> {
        check_fork(self.settings.generation, "this pool")?;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Interface("the pool is closed".into()));
        }
        Ok(())
    }

    async fn acquire_raw(&self, timeout: Option<Duration>) -> Result<PoolConnection<Postgres>> {
        struct Waiting<'a>(&'a AtomicI64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.stats.waiting.fetch_add(1, Ordering::Relaxed);
        let _w = Waiting(&self.stats.waiting);
        let acquire = self.pg().acquire();
        let got = match timeout.or(self.acquire_timeout) {
            Some(t) => tokio::time::timeout(t, acquire)
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut)),
            None => acquire.await,
        };
        self.stats.count_acquire(&got);
        let c = got.map_err(|e| map_err(e, None))?;
        match &self.hooks {
            Some(hooks) => hooks.run(c, &self.settings).await,
            None => Ok(c),
        }
    }

    /// Runs `work` on a pooled connection under the timeout
    /// (`command_timeout` when none is given), then returns it to the pool
    /// clean (or, after a timeout, once the cancelled query is cleaned up).
    async fn pooled<T>(
        &self,
        timeout: Option<Duration>,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        let conn = self.acquire_raw(None).await?;
        let limit = timeout.or(self.settings.command_timeout);
        let opts = &self.settings.opts;
        let (out, conn) = Busy::new(conn, |c| postgres::CancelKey::of(opts, c))
            .run(limit, work)
            .await;
        if let Some(mut conn) = conn {
            conn.return_to_pool().await;
        }
        if out.is_err() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    async fn query(
        &self,
        sql: String,
        params: Vec<Param>,
        shape: Shape,
        timeout: Option<Duration>,
        cls: postgres::RecordCls,
    ) -> Result<postgres::QueryOutput> {
        let (json, persistent) = (self.settings.json, self.settings.persistent);
        let run = retried(self.retry.as_ref(), || {
            self.pooled(timeout, async |pg| {
                postgres::run_query(pg, &sql, &params, shape, json, persistent, &cls).await
            })
        });
        self.metrics.timed(&sql, run).await
    }

    async fn query_many(&self, sql: String, rows: PyRows, timeout: Option<Duration>) -> Result<()> {
        let run = retried(self.retry.as_ref(), || {
            self.pooled(timeout, async |pg| {
                postgres::run_many(pg, &sql, &rows).await
            })
        });
        self.metrics.timed(&sql, run).await
    }

    async fn fetch_many(
        &self,
        sql: String,
        batch: Vec<Vec<Param>>,
        timeout: Option<Duration>,
        cls: postgres::RecordCls,
    ) -> Result<postgres::QueryOutput> {
        let json = self.settings.json;
        let run = retried(self.retry.as_ref(), || {
            self.pooled(timeout, async |pg| {
                postgres::fetch_many(pg, &sql, &batch, json, &cls).await
            })
        });
        self.metrics.timed(&sql, run).await
    }

    /// Hands out a connection as a `Connection` of this pool, remembered
    /// for `terminate()`.
    async fn lend(self: Arc<Self>, timeout: Option<Duration>) -> Result<Arc<ConnInner>> {
        self.check()?;
        let c = self.acquire_raw(timeout).await?;
        Ok(self.lent_as(c))
    }

    /// `lend()` without waiting, on the calling thread: an idle connection
    /// if one is free now (and no task is queued for one: the pool's
    /// semaphore is fair) and no init/setup callback has to run first.
    fn try_lend(self: &Arc<Self>) -> Result<Option<Arc<ConnInner>>> {
        self.check()?;
        if self.hooks.is_some() {
            return Ok(None);
        }
        Ok(self.pg().try_acquire().map(|c| {
            self.stats.acquired.fetch_add(1, Ordering::Relaxed);
            self.lent_as(c)
        }))
    }

    fn lent_as(self: &Arc<Self>, c: PoolConnection<Postgres>) -> Arc<ConnInner> {
        let conn = Arc::new(ConnInner::new(
            Conn::Pooled(c),
            Arc::clone(&self.settings),
            Some(Arc::clone(self)),
        ));
        let mut lent = self.lent.lock().unwrap_or_else(|p| p.into_inner());
        lent.retain(|w| {
            w.upgrade()
                .is_some_and(|c| !c.closed.load(Ordering::Acquire))
        });
        lent.push(Arc::downgrade(&conn));
        conn
    }

    /// Closes the pool and every connection it has handed out, at once.
    fn terminate(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        let lent = std::mem::take(&mut *self.lent.lock().unwrap_or_else(|p| p.into_inner()));
        for conn in lent.iter().filter_map(std::sync::Weak::upgrade) {
            conn.terminate();
        }
        let pool = self.pg().clone();
        crate::runtime::handle()?.spawn(async move { pool.close().await });
        Ok(())
    }
}

use super::codec::from_python::Param;

/// Which backend a pool talks to.
pub(crate) enum PoolKind {
    Pg(Arc<PoolInner>),
    MySql(Arc<SqlPool<MySql>>),
    Sqlite(Arc<SqlPool<Sqlite>>),
}

/// Runs `$sql` with `$p` bound to the MySQL or SQLite pool, `$pg` for PostgreSQL.
macro_rules! by_backend {
    ($kind:expr, $p:ident => pg: $pg:expr, sql: $sql:expr) => {
        match $kind {
            PoolKind::Pg($p) => $pg,
            PoolKind::MySql($p) => $sql,
            PoolKind::Sqlite($p) => $sql,
        }
    };
}

/// A pool of database connections. Create with `await fastio.create_pool(dsn)`.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct Pool {
    kind: PoolKind,
}

fn sql_query<'py, D: Dialect>(
    py: Python<'py>,
    pool: &Arc<SqlPool<D>>,
    query: String,
    params: Vec<Param>,
    shape: Shape,
    timeout: Option<Duration>,
) -> PyResult<Bound<'py, Awaitable>>
where
    D::Connection: Session,
{
    pool.check()?;
    let pool = Arc::clone(pool);
    // Boxed on tokio: the query's future is kilobytes, and moving it
    // around on the event-loop thread was a large share of a point select.
    future_into_py(py, async move {
        Box::pin(pool.query(query, params, shape, timeout)).await
    })
}

/// A pool-level SQLite read answered by the pool's readers: on this (the
/// event loop's) thread when it is short, as an already finished awaitable;
/// else continued on a blocking thread. `Ok(Err(..))` gives the arguments
/// back when a pooled connection must run it instead.
#[allow(clippy::type_complexity)]
fn lite_read<'py>(
    py: Python<'py>,
    pool: &Arc<SqlPool<Sqlite>>,
    query: String,
    params: Vec<Param>,
    shape: Shape,
    timeout: Option<Duration>,
) -> PyResult<std::result::Result<Bound<'py, Awaitable>, (String, Vec<Param>)>> {
    let Some(readers) = pool.lite.get() else {
        return Ok(Err((query, params)));
    };
    pool.check()?;
    let started = std::time::Instant::now();
    match py.detach(|| sqlite::read_now(readers, &query, &params, shape)) {
        sqlite::Quick::Pass => Ok(Err((query, params))),
        sqlite::Quick::Done(out) => {
            pool.stats.acquired.fetch_add(1, Ordering::Relaxed);
            if out.is_err() {
                pool.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            let ns = started.elapsed().as_nanos() as u64;
            pool.metrics.record(&query, ns, out.is_ok());
            if readers.due_to_yield() {
                // Now and then the answer goes through the loop, so a task
                // reading in a loop still lets the others run.
                return Ok(Ok(future_into_py(py, async move { out })?));
            }
            let value = match out {
                Ok(out) => out.into_pyobject(py).map(Bound::unbind),
                Err(e) => Err(e.into_pyerr(py)),
            };
            Ok(Ok(done_into_py(py, value)?))
        }
        sqlite::Quick::Later(later) => {
            pool.stats.acquired.fetch_add(1, Ordering::Relaxed);
            let pool = Arc::clone(pool);
            let readers = Arc::clone(readers);
            let limit = timeout.or(pool.settings.command_timeout);
            Ok(Ok(future_into_py(py, async move {
                let out = pool.metrics.timed(&query, later.run(readers, limit)).await;
                if out.is_err() {
                    pool.stats.errors.fetch_add(1, Ordering::Relaxed);
                }
                out
            })?))
        }
    }
}

fn sql_acquire<D: Dialect>(
    pool: Arc<SqlPool<D>>,
    timeout: Option<Duration>,
    wrap: fn(Arc<SqlConn<D>>) -> ConnKind,
) -> BoxFuture<'static, Result<Connection>>
where
    D::Connection: Session,
{
    Box::pin(async move {
        let inner = pool.lend(timeout).await?;
        Ok(Connection { kind: wrap(inner) })
    })
}

impl Pool {
    fn run<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: &Bound<'py, PyTuple>,
        shape: Shape,
        timeout: Option<f64>,
        record_class: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let (query, params) = match &self.kind {
            PoolKind::MySql(_) => super::mysql::pyformat(query, args)?,
            PoolKind::Pg(p) => (query, p.settings.params(args)?),
            _ => (query, params_of(args)?),
        };
        let timeout = timeout_arg("timeout", timeout)?;
        let (query, params) = match &self.kind {
            PoolKind::Sqlite(p) => match lite_read(py, p, query, params, shape, timeout)? {
                Ok(done) => return Ok(done),
                Err(back) => back,
            },
            _ => (query, params),
        };
        by_backend!(&self.kind, p => pg: {
            p.check()?;
            let cls = p.settings.record_class(py, record_class)?.map(Arc::new);
            let inner = Arc::clone(p);
            future_into_py(py, async move {
                inner.query(query, params, shape, timeout, cls).await
            })
        }, sql: {
            no_record_class(record_class)?;
            sql_query(py, p, query, params, shape, timeout)
        })
    }

    fn pg(&self, what: &str) -> PyResult<&Arc<PoolInner>> {
        match &self.kind {
            PoolKind::Pg(p) => Ok(p),
            _ => Err(
                Error::Interface(format!("Pool.{what}() is only available for PostgreSQL")).into(),
            ),
        }
    }

    fn stats(&self) -> &Stats {
        by_backend!(&self.kind, p => pg: &p.stats, sql: &p.stats)
    }

    fn min_max(&self) -> (u32, u32) {
        by_backend!(&self.kind, p => pg: (p.min_size, p.max_size), sql: (p.min_size, p.max_size))
    }
}

#[pymethods]
impl Pool {
    /// Runs a query on a pooled connection; returns all rows as Records
    /// (of `record_class`, a Record subclass, when given; PostgreSQL).
    #[pyo3(signature = (query, *args, timeout = None, record_class = None))]
    fn fetch<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: &Bound<'py, PyTuple>,
        timeout: Option<f64>,
        record_class: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        self.run(py, query, args, Shape::All, timeout, record_class)
    }

    /// Runs a query on a pooled connection; returns the first row or None.
    #[pyo3(signature = (query, *args, timeout = None, record_class = None))]
    fn fetchrow<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: &Bound<'py, PyTuple>,
        timeout: Option<f64>,
        record_class: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        self.run(py, query, args, Shape::Row, timeout, record_class)
    }

    /// Runs a query once per argument sequence on a pooled connection,
    /// pipelined and atomic; returns the rows of all runs. PostgreSQL only.
    #[pyo3(signature = (query, args, *, timeout = None, record_class = None))]
    fn fetchmany<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: &Bound<'py, PyAny>,
        timeout: Option<f64>,
        record_class: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let pool = Arc::clone(self.pg("fetchmany")?);
        pool.check()?;
        let batch = pool.settings.batch(args)?;
        let timeout = timeout_arg("timeout", timeout)?;
        let cls = pool.settings.record_class(py, record_class)?.map(Arc::new);
        future_into_py(py, async move {
            pool.fetch_many(query, batch, timeout, cls).await
        })
    }

    /// Copies a table to `output` on a pooled connection (Connection.copy_from_table).
    #[pyo3(signature = (table_name, **kwargs))]
    fn copy_from_table<'py>(
        slf: &Bound<'py, Self>,
        table_name: String,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        pool_copy(
            slf,
            "copy_from_table",
            (table_name,).into_pyobject(slf.py())?,
            kwargs,
        )
    }

    /// Copies a query's result to `output` on a pooled connection
    /// (Connection.copy_from_query).
    #[pyo3(signature = (query, *args, **kwargs))]
    fn copy_from_query<'py>(
        slf: &Bound<'py, Self>,
        query: String,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut all = vec![query.into_pyobject(slf.py())?.into_any()];
        all.extend(args.iter());
        pool_copy(slf, "copy_from_query", PyTuple::new(slf.py(), all)?, kwargs)
    }

    /// Copies `source` into a table on a pooled connection (Connection.copy_to_table).
    #[pyo3(signature = (table_name, **kwargs))]
    fn copy_to_table<'py>(
        slf: &Bound<'py, Self>,
        table_name: String,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        pool_copy(
            slf,
            "copy_to_table",
            (table_name,).into_pyobject(slf.py())?,
            kwargs,
        )
    }

    /// Runs a query on a pooled connection; returns one value of the first row.
    #[pyo3(signature = (query, *args, column = 0, timeout = None))]
    fn fetchval<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: &Bound<'py, PyTuple>,
        column: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        self.run(py, query, args, Shape::Value(column), timeout, None)
    }

    /// Runs a command on a pooled connection; returns its status string.
    #[pyo3(signature = (query, *args, timeout = None))]
    fn execute<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: &Bound<'py, PyTuple>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        self.run(py, query, args, Shape::Status, timeout, None)
    }

    /// Runs a command once per argument sequence (PostgreSQL: one round
    /// trip; MySQL: INSERT ... VALUES batched into multi-row statements;
    /// SQLite: one transaction).
    #[pyo3(signature = (command, args, *, timeout = None))]
    fn executemany<'py>(
        &self,
        py: Python<'py>,
        command: String,
        args: &Bound<'py, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        by_backend!(&self.kind, p => pg: {
            let rows = PyRows::of(args)?;
            let timeout = timeout_arg("timeout", timeout)?;
            p.check()?;
            let inner = Arc::clone(p);
            future_into_py(py, async move {
                inner.query_many(command, rows, timeout).await?;
                Ok(ReturnNone)
            })
        }, sql: {
            let batch = batch_of(args)?;
            let timeout = timeout_arg("timeout", timeout)?;
            p.check()?;
            let inner = Arc::clone(p);
            future_into_py(py, async move {
                inner.query_many(command, batch, timeout).await?;
                Ok(ReturnNone)
            })
        })
    }

    /// Copies `records` into `table_name` with binary COPY on a pooled
    /// connection; returns the status string ('COPY 3'). PostgreSQL only.
    #[pyo3(signature = (table_name, *, records, columns = None, schema_name = None, timeout = None))]
    fn copy_records_to_table<'py>(
        &self,
        py: Python<'py>,
        table_name: String,
        records: &Bound<'py, PyAny>,
        columns: Option<Vec<String>>,
        schema_name: Option<String>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let pool = Arc::clone(self.pg("copy_records_to_table")?);
        pool.check()?;
        let rows = PyRows::of(records)?;
        let timeout = timeout_arg("timeout", timeout)?;
        future_into_py(py, async move {
            let c = pool.acquire_raw(None).await?;
            let conn = ConnInner::new(Conn::Pooled(c), Arc::clone(&pool.settings), None);
            let out = conn
                .copy_records(table_name, schema_name, columns, rows, timeout)
                .await;
            conn.release().await?;
            out
        })
    }

    /// A connection from the pool: `await pool.acquire()` (then
    /// `await pool.release(conn)`) or `async with pool.acquire() as conn:`.
    #[pyo3(signature = (*, timeout = None))]
    fn acquire(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<PoolAcquireContext> {
        let this = slf.get();
        by_backend!(&this.kind, p => pg: p.check()?, sql: p.check()?);
        Ok(PoolAcquireContext {
            pool: slf.clone().unbind(),
            timeout: timeout_arg("timeout", timeout)?,
            conn: Arc::new(Mutex::new(None)),
        })
    }

    /// Returns an acquired connection to the pool.
    #[pyo3(signature = (connection, *, timeout = None))]
    fn release<'py>(
        &self,
        py: Python<'py>,
        connection: &Bound<'py, Connection>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let _ = timeout;
        let mine = match (&self.kind, &connection.get().kind) {
            (PoolKind::Pg(p), ConnKind::Pg(c)) => {
                c.pool.as_ref().is_some_and(|x| Arc::ptr_eq(x, p))
            }
            (PoolKind::MySql(p), ConnKind::MySql(c)) => {
                c.pool.as_ref().is_some_and(|x| Arc::ptr_eq(x, p))
            }
            (PoolKind::Sqlite(p), ConnKind::Sqlite(c)) => {
                c.pool.as_ref().is_some_and(|x| Arc::ptr_eq(x, p))
            }
            _ => false,
        };
        if !mine {
            return Err(Error::Interface(
                "Pool.release(): the connection does not belong to this pool".into(),
            )
            .into());
        }
        let conn = &connection.get().kind;
        if conn.release_now() {
            return done_into_py(py, Ok(py.None()));
        }
        let conn = conn.clone();
        future_into_py(py, async move {
            conn.release().await?;
            Ok(ReturnNone)
        })
    }

    /// Closes the pool, waiting for acquired connections to be released.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        by_backend!(&self.kind, p => pg: {
            p.closed.store(true, Ordering::Release);
            let pool = p.pg().clone();
            future_into_py(py, async move {
                pool.close().await;
                Ok(ReturnNone)
            })
        }, sql: {
            p.closed.store(true, Ordering::Release);
            if let Some(readers) = p.lite.get() {
                readers.close();
            }
            let pool = p.pool.clone();
            future_into_py(py, async move {
                pool.close().await;
                Ok(ReturnNone)
            })
        })
    }

    /// Closes the pool at once, without waiting. Acquired connections are
    /// closed too: using one afterwards raises InterfaceError, as in asyncpg.
    fn terminate(&self) -> PyResult<()> {
        by_backend!(&self.kind, p => pg: p.terminate()?, sql: p.terminate()?);
        Ok(())
    }

    fn is_closing(&self) -> bool {
        by_backend!(&self.kind, p => pg: p.closed.load(Ordering::Acquire), sql: p.closed.load(Ordering::Acquire))
    }

    /// Open connections (idle and in use).
    fn get_size(&self) -> u32 {
        by_backend!(&self.kind, p => pg: p.pg().size(), sql: p.pool.size())
    }

    fn get_idle_size(&self) -> usize {
        by_backend!(&self.kind, p => pg: p.pg().num_idle(), sql: p.pool.num_idle())
    }

    fn get_min_size(&self) -> u32 {
        self.min_max().0
    }

    fn get_max_size(&self) -> u32 {
        self.min_max().1
    }

    /// The backend: 'postgresql', 'mysql' or 'sqlite'.
    #[getter]
    fn backend(&self) -> &'static str {
        match self.kind {
            PoolKind::Pg(_) => "postgresql",
            PoolKind::MySql(_) => <MySql as Dialect>::NAME,
            PoolKind::Sqlite(_) => <Sqlite as Dialect>::NAME,
        }
    }

    /// Counters: size, idle, in_use, waiting, acquired, timeouts, created, closed, errors.
    fn get_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.stats();
        let size = u64::from(self.get_size());
        let idle = self.get_idle_size() as u64;
        let created = s.created.load(Ordering::Relaxed);
        let d = PyDict::new(py);
        d.set_item("size", size)?;
        d.set_item("idle", idle)?;
        d.set_item("in_use", size.saturating_sub(idle))?;
        d.set_item("waiting", s.waiting.load(Ordering::Relaxed).max(0))?;
        d.set_item("acquired", s.acquired.load(Ordering::Relaxed))?;
        d.set_item("timeouts", s.timeouts.load(Ordering::Relaxed))?;
        d.set_item("created", created)?;
        d.set_item("closed", created.saturating_sub(size))?;
        d.set_item("errors", s.errors.load(Ordering::Relaxed))?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let label = by_backend!(&self.kind, p => pg: &p.label, sql: &p.label);
        let (min, max) = self.min_max();
        format!(
            "<fastio.Pool {} size={} min={min} max={max}{}>",
            label,
            self.get_size(),
            if self.is_closing() { " closed" } else { "" }
        )
    }
}

/// What `Pool.acquire()` returns: awaitable, and an async context manager
/// that releases the connection on exit.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct PoolAcquireContext {
    pool: Py<Pool>,
    timeout: Option<Duration>,
    conn: Arc<Mutex<Option<ConnKind>>>,
}

impl PoolAcquireContext {
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        let timeout = self.timeout;
        let slot = Arc::clone(&self.conn);
        // An idle connection free now is handed over at once, as asyncpg's
        // and aiomysql's pools do, without a trip through tokio.
        let now = match &self.pool.get().kind {
            PoolKind::Pg(p) => p.try_lend()?.map(ConnKind::Pg),
            PoolKind::MySql(p) => p.try_lend()?.map(ConnKind::MySql),
            PoolKind::Sqlite(p) => p.try_lend()?.map(ConnKind::Sqlite),
        };
        if let Some(kind) = now {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(kind.clone());
            let conn = Bound::new(py, Connection { kind })?.into_any().unbind();
            return done_into_py(py, Ok(conn));
        }
        let acquiring: BoxFuture<'static, Result<Connection>> = match &self.pool.get().kind {
            PoolKind::Pg(p) => {
                let pool = Arc::clone(p);
                Box::pin(async move {
                    let inner = pool.lend(timeout).await?;
                    Ok(Connection {
                        kind: ConnKind::Pg(inner),
                    })
                })
            }
            PoolKind::MySql(p) => sql_acquire(Arc::clone(p), timeout, ConnKind::MySql),
            PoolKind::Sqlite(p) => sql_acquire(Arc::clone(p), timeout, ConnKind::Sqlite),
        };
        future_into_py(py, async move {
            let conn = acquiring.await?;
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.kind.clone());
            Ok(conn)
        })
    }
}

#[pymethods]
impl PoolAcquireContext {
    fn __await__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        self.start(py)
    }

    fn __aenter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        self.start(py)
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner()).take();
        if conn.as_ref().is_some_and(ConnKind::release_now) {
            return done_into_py(
                py,
                Ok(false.into_pyobject(py)?.to_owned().into_any().unbind()),
            );
        }
        future_into_py(py, async move {
            if let Some(c) = conn {
                c.release().await?;
            }
            Ok(false)
        })
    }
}

/// The backend a DSN names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Postgres,
    MySql,
    Sqlite,
}

fn scheme_of(func: &str, dsn: &str) -> Result<Scheme> {
    if dsn.starts_with("sqlite:") {
        return Ok(Scheme::Sqlite);
    }
    match dsn.split("://").next().unwrap_or("") {
        "postgresql" | "postgres" => Ok(Scheme::Postgres),
        "mysql" | "mariadb" => Ok(Scheme::MySql),
        _ => Err(Error::InvalidArgument(format!(
            "{func}(): dsn must start with postgresql://, postgres://, mysql://, mariadb:// or sqlite:, got {:?}",
            redact_dsn(dsn)
        ))),
    }
}

/// How long an SQLite statement waits for another connection's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

fn sql_settings<D: Dialect>(
    opts: <D::Connection as sqlx::Connection>::Options,
    command_timeout: Option<f64>,
) -> Result<Arc<SqlSettings<D>>>
where
    D::Connection: Session,
{
    Ok(Arc::new(SqlSettings {
        opts: Arc::new(opts),
        command_timeout: secs("command_timeout", command_timeout)?,
        generation: generation(),
    }))
}

/// What create_pool passes on to a MySQL or SQLite pool.
struct SqlPoolArgs {
    min_size: u32,
    max_size: u32,
    acquire_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    idle: Option<Duration>,
    lifetime: Option<Duration>,
    init: InitSql,
    label: String,
    name: String,
    retry: Option<RetryPolicy>,
}

/// What an SQLite pool's readers are opened with (see `sqlite::Readers`).
struct LiteSetup {
    opts: sqlx::sqlite::SqliteConnectOptions,
    memory: bool,
    readers: usize,
    cache: usize,
}

fn sql_pool<'py, D: Dialect>(
    py: Python<'py>,
    opts: <D::Connection as sqlx::Connection>::Options,
    command_timeout: Option<f64>,
    a: SqlPoolArgs,
    wrap: fn(Arc<SqlPool<D>>) -> PoolKind,
    lite: Option<LiteSetup>,
) -> PyResult<Bound<'py, Awaitable>>
where
    D::Connection: Session,
{
    let settings = sql_settings::<D>(opts.clone(), command_timeout)?;
    let init = Arc::clone(&a.init);
    future_into_py(py, async move {
        let pool = open_pool::<D>(
            opts,
            settings,
            a.min_size,
            a.max_size,
            a.acquire_timeout,
            a.connect_timeout,
            a.idle,
            a.lifetime,
            a.init,
            a.label,
            a.name,
            a.retry,
        )
        .await?;
        if let Some(l) = lite {
            let opened = sqlite::Readers::open(&l.opts, l.memory, &init, l.readers, l.cache).await;
            match opened {
                Ok(Some(readers)) => {
                    let _ = pool.lite.set(readers);
                }
                Ok(None) => {}
                Err(e) => {
                    pool.pool.close().await;
                    return Err(e);
                }
            }
        }
        Ok(Pool { kind: wrap(pool) })
    })
}

fn sql_connect<'py, D: Dialect>(
    py: Python<'py>,
    opts: <D::Connection as sqlx::Connection>::Options,
    command_timeout: Option<f64>,
    timeout: Option<Duration>,
    init: InitSql,
    wrap: fn(Arc<SqlConn<D>>) -> ConnKind,
) -> PyResult<Bound<'py, Awaitable>>
where
    D::Connection: Session,
{
    let settings = sql_settings::<D>(opts, command_timeout)?;
    future_into_py(py, async move {
        let conn = open_conn::<D>(settings, timeout, init).await?;
        Ok(Connection {
            kind: wrap(Arc::new(conn)),
        })
    })
}

/// Refuses PostgreSQL-only keywords given for another backend.
fn pg_only(func: &str, given: &[(&str, bool)]) -> Result<()> {
    match given.iter().find(|(_, set)| *set) {
        Some((name, _)) => Err(Error::InvalidArgument(format!(
            "{func}(): {name}= is only supported for PostgreSQL (use init_sql= for per-connection setup)"
        ))),
        None => Ok(()),
    }
}

struct ConnectArgs {
    opts: PgConnectOptions,
    settings: Arc<Settings>,
}

#[allow(clippy::too_many_arguments)]
fn settings_of(
    func: &str,
    dsn: &str,
    command_timeout: Option<f64>,
    statement_cache_size: usize,
    json_as_text: bool,
    server_settings: Option<&Bound<'_, PyDict>>,
    ssl: Option<&Bound<'_, PyAny>>,
    record_class: Option<&Bound<'_, PyAny>>,
) -> PyResult<ConnectArgs> {
    let record_class = match record_class {
        Some(c) if !c.is_none() => Some(check_record_class(c)?),
        _ => None,
    };
    let opts = pg_options(func, dsn, statement_cache_size)?;
    let opts = super::hooks::session_options(func, opts, server_settings, ssl)?;
    let settings = Arc::new(Settings {
        opts: Arc::new(opts.clone()),
        json: if json_as_text {
            JsonMode::Text
        } else {
            JsonMode::Decode
        },
        command_timeout: secs("command_timeout", command_timeout)?,
        persistent: statement_cache_size > 0,
        generation: generation(),
        record_class,
        codecs_seen: AtomicBool::new(false),
    });
    Ok(ConnectArgs { opts, settings })
}

/// `await fastio.create_pool(dsn, ...)`.
#[pyfunction]
#[pyo3(signature = (
    dsn, *, min_size = 10, max_size = 10, command_timeout = None, acquire_timeout = None,
    max_inactive_connection_lifetime = 300.0, max_lifetime = None, statement_cache_size = 100,
    timeout = 60.0, json_as_text = false, init = None, setup = None, server_settings = None,
    ssl = None, max_queries = None, init_sql = None, name = None, retry = None,
    record_class = None
))]
#[allow(clippy::too_many_arguments)]
fn create_pool<'py>(
    py: Python<'py>,
    dsn: &str,
    min_size: u32,
    max_size: u32,
    command_timeout: Option<f64>,
    acquire_timeout: Option<f64>,
    max_inactive_connection_lifetime: Option<f64>,
    max_lifetime: Option<f64>,
    statement_cache_size: usize,
    timeout: Option<f64>,
    json_as_text: bool,
    init: Option<Bound<'py, PyAny>>,
    setup: Option<Bound<'py, PyAny>>,
    server_settings: Option<Bound<'py, PyDict>>,
    ssl: Option<Bound<'py, PyAny>>,
    max_queries: Option<u64>,
    init_sql: Option<Vec<String>>,
    name: Option<String>,
    retry: Option<&Bound<'py, Retry>>,
    record_class: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, Awaitable>> {
    if max_size == 0 {
        return Err(
            Error::InvalidArgument("create_pool(): max_size must be at least 1".into()).into(),
        );
    }
    if min_size > max_size {
        return Err(Error::InvalidArgument(format!(
            "create_pool(): min_size ({min_size}) must not exceed max_size ({max_size})"
        ))
        .into());
    }
    let init_sql: InitSql = Arc::new(init_sql.unwrap_or_default());
    let scheme = scheme_of("create_pool", dsn)?;
    if scheme != Scheme::Postgres {
        pg_only(
            "create_pool",
            &[
                ("init", init.is_some()),
                ("setup", setup.is_some()),
                ("server_settings", server_settings.is_some()),
                ("ssl", ssl.is_some()),
                ("max_queries", max_queries.is_some()),
                ("record_class", record_class.is_some()),
            ],
        )?;
        let a = SqlPoolArgs {
            min_size,
            max_size,
            acquire_timeout: secs("acquire_timeout", acquire_timeout)?,
            connect_timeout: secs("timeout", timeout)?,
            idle: match max_inactive_connection_lifetime {
                Some(0.0) => None,
                v => secs("max_inactive_connection_lifetime", v)?,
            },
            lifetime: secs("max_lifetime", max_lifetime)?,
            init: init_sql,
            label: redact_dsn(dsn),
            name: name.clone().unwrap_or_else(|| redact_dsn(dsn)),
            retry: retry.map(|r| r.get().policy.clone()),
        };
        return match scheme {
            Scheme::MySql => {
                let opts = mysql::options("create_pool", dsn)?
                    .statement_cache_capacity(statement_cache_size);
                sql_pool::<MySql>(py, opts, command_timeout, a, PoolKind::MySql, None)
            }
            _ => {
                let opts = sqlite::options("create_pool", dsn, SQLITE_BUSY_TIMEOUT)?
                    .statement_cache_capacity(statement_cache_size.max(1));
                let lite = LiteSetup {
                    opts: opts.clone(),
                    memory: sqlite::is_memory(dsn),
                    readers: max_size.min(4) as usize,
                    cache: statement_cache_size,
                };
                sql_pool::<Sqlite>(py, opts, command_timeout, a, PoolKind::Sqlite, Some(lite))
            }
        };
    }
    let ConnectArgs { opts, settings } = settings_of(
        "create_pool",
        dsn,
        command_timeout,
        statement_cache_size,
        json_as_text,
        server_settings.as_ref(),
        ssl.as_ref(),
        record_class.as_ref(),
    )?;
    // `init` is where set_type_codec() usually runs, and it runs on each
    // connection's first acquire, after the first queries' arguments were
    // read: keep their objects for encoders from the start.
    settings
        .codecs_seen
        .store(init.is_some(), Ordering::Release);
    let hooks = super::hooks::Hooks::new(py, init, setup)?;
    let max_queries = max_queries.filter(|&n| n > 0);
    let acquire_timeout = secs("acquire_timeout", acquire_timeout)?;
    let idle = match max_inactive_connection_lifetime {
        Some(0.0) => None,
        v => secs("max_inactive_connection_lifetime", v)?,
    };
    let lifetime = secs("max_lifetime", max_lifetime)?;
    let connect_timeout = secs("timeout", timeout)?;
    let label = redact_dsn(dsn);
    let name = name.unwrap_or_else(|| label.clone());
    let retry = retry.map(|r| r.get().policy.clone());
    let stats = Arc::new(Stats::default());
    future_into_py(py, async move {
        let counter = Arc::clone(&stats);
        let mut options = PgPoolOptions::new()
            .min_connections(min_size)
            .max_connections(max_size)
            // Acquire deadlines are ours (per call); sqlx's covers connecting.
            .acquire_timeout(connect_timeout.unwrap_or(Duration::from_secs(86_400 * 365)))
            .idle_timeout(idle)
            .max_lifetime(lifetime)
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                conn.set_skip_idle_ping(true);
                let c = Arc::clone(&counter);
                let init = Arc::clone(&init_sql);
                Box::pin(async move {
                    for sql in init.iter() {
                        sqlx::Executor::execute(
                            &mut *conn,
                            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())),
                        )
                        .await?;
                    }
                    c.created.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                })
            });
        if let Some(limit) = max_queries {
            // asyncpg's max_queries: a connection that has run that many
            // queries is closed when released, and replaced.
            options = options.after_release(move |conn, _meta| {
                let keep = conn.query_count() < limit;
                Box::pin(async move { Ok(keep) })
            });
        }
        let pool = options
            .connect_with(opts)
            .await
            .map_err(|e| map_err(e, None))?;
        warm_up(&pool, min_size)
            .await
            .map_err(|e| map_err(e, None))?;
        let inner = Arc::new(PoolInner {
            backend: Backend::Postgres(pool),
            settings,
            min_size,
            max_size,
            acquire_timeout,
            stats,
            closed: AtomicBool::new(false),
            label,
            hooks,
            metrics: PoolMetrics::new(name, "postgresql"),
            gauges: OnceLock::new(),
            retry,
            lent: Mutex::new(Vec::new()),
        });
        let _ = inner.gauges.set(stats::register(&inner));
        Ok(Pool {
            kind: PoolKind::Pg(inner),
        })
    })
}

/// `await fastio.connect(dsn, ...)`: one connection, not pooled.
#[pyfunction]
#[pyo3(signature = (
    dsn, *, timeout = 60.0, command_timeout = None, statement_cache_size = 100,
    json_as_text = false, server_settings = None, ssl = None, init_sql = None,
    record_class = None
))]
#[allow(clippy::too_many_arguments)]
fn connect<'py>(
    py: Python<'py>,
    dsn: &str,
    timeout: Option<f64>,
    command_timeout: Option<f64>,
    statement_cache_size: usize,
    json_as_text: bool,
    server_settings: Option<Bound<'py, PyDict>>,
    ssl: Option<Bound<'py, PyAny>>,
    init_sql: Option<Vec<String>>,
    record_class: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, Awaitable>> {
    let init: InitSql = Arc::new(init_sql.unwrap_or_default());
    let scheme = scheme_of("connect", dsn)?;
    if scheme != Scheme::Postgres {
        pg_only(
            "connect",
            &[
                ("server_settings", server_settings.is_some()),
                ("ssl", ssl.is_some()),
                ("record_class", record_class.is_some()),
            ],
        )?;
    }
    match scheme {
        Scheme::MySql => {
            let opts =
                mysql::options("connect", dsn)?.statement_cache_capacity(statement_cache_size);
            let t = secs("timeout", timeout)?;
            return sql_connect::<MySql>(py, opts, command_timeout, t, init, ConnKind::MySql);
        }
        Scheme::Sqlite => {
            let opts = sqlite::options("connect", dsn, SQLITE_BUSY_TIMEOUT)?
                .statement_cache_capacity(statement_cache_size.max(1));
            let t = secs("timeout", timeout)?;
            return sql_connect::<Sqlite>(py, opts, command_timeout, t, init, ConnKind::Sqlite);
        }
        Scheme::Postgres => {}
    }
    let ConnectArgs { opts, settings } = settings_of(
        "connect",
        dsn,
        command_timeout,
        statement_cache_size,
        json_as_text,
        server_settings.as_ref(),
        ssl.as_ref(),
        record_class.as_ref(),
    )?;
    let timeout = secs("timeout", timeout)?;
    future_into_py(py, async move {
        let fut = PgConnection::connect_with(&opts);
        let conn = match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
                Error::Timeout(format!(
                    "connect(): timed out after {:.3} s",
                    t.as_secs_f64()
                ))
            })?,
            None => fut.await,
        }
        .map_err(|e| map_err(e, None))?;
        let mut conn = conn;
        for sql in init.iter() {
            sqlx::Executor::execute(&mut conn, sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())))
                .await
                .map_err(|e| map_err(e, Some(sql)))?;
        }
        Ok(Connection {
            kind: ConnKind::Pg(Arc::new(ConnInner::new(
                Conn::Direct(Box::new(conn)),
                settings,
                None,
            ))),
        })
    })
}

/// A Connection method run on a connection acquired for the call
/// (`fastio._copy.on_pool`), as asyncpg's pool-level COPY methods do.
fn pool_copy<'py>(
    pool: &Bound<'py, Pool>,
    method: &str,
    args: Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    pool.get().pg(method)?.check()?;
    in_python(
        pool.py(),
        "fastio._copy",
        "on_pool",
        (pool, method, args),
        kwargs,
    )
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Pool>()?;
    m.add_class::<PoolAcquireContext>()?;
    m.add_function(wrap_pyfunction!(create_pool, m)?)?;
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_password_is_redacted() {
        assert_eq!(
            redact_dsn("postgresql://u:s3cret@h:5432/db"),
            "postgresql://u:***@h:5432/db"
        );
        assert_eq!(redact_dsn("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(redact_dsn("postgresql://h/db"), "postgresql://h/db");
        assert_eq!(
            password_of("postgres://u:p%40ss@h/db").as_deref(),
            Some("p%40ss")
        );
    }
}
