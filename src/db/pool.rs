//! `Pool` and `connect`: the one pool type for every backend (the DSN's
//! scheme picks it; PostgreSQL is implemented, MySQL and SQLite slot in as
//! further `Backend` variants).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, Postgres};

use super::codec::to_python::JsonMode;
use super::connection::{
    batch_of, params_of, timeout_arg, Busy, Conn, ConnInner, Connection, Settings,
};
use super::postgres::{self, map_err, Shape};
use crate::errors::{Error, Result};
use crate::runtime::{check_fork, future_into_py, generation, Awaitable, ReturnNone};

/// Which database a pool talks to.
pub(crate) enum Backend {
    Postgres(PgPool),
}

/// Pool counters for `get_stats()`.
#[derive(Default)]
pub(crate) struct Stats {
    acquired: AtomicU64,
    timeouts: AtomicU64,
    created: AtomicU64,
    errors: AtomicU64,
    waiting: AtomicI64,
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

fn password_of(dsn: &str) -> Option<String> {
    let start = dsn.find("://")? + 3;
    let rest = &dsn[start..];
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let at = rest[..auth_end].rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some(rest[colon + 1..at].to_owned()).filter(|p| !p.is_empty())
}

/// Parses a PostgreSQL DSN; errors name the argument and never echo the password.
fn pg_options(func: &str, dsn: &str, statement_cache_size: usize) -> Result<PgConnectOptions> {
    let scheme = dsn.split("://").next().unwrap_or("");
    let scheme = if dsn.starts_with("sqlite:") {
        "sqlite"
    } else {
        scheme
    };
    match scheme {
        "postgresql" | "postgres" => {}
        "mysql" | "mariadb" | "sqlite" => {
            return Err(Error::InvalidArgument(format!(
                "{func}(): dsn scheme '{scheme}' is not supported yet (only postgresql:// and postgres://)"
            )))
        }
        _ => {
            return Err(Error::InvalidArgument(format!(
                "{func}(): dsn must start with postgresql:// or postgres://, got {:?}",
                redact_dsn(dsn)
            )))
        }
    }
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
        match got {
            Ok(c) => {
                self.stats.acquired.fetch_add(1, Ordering::Relaxed);
                match &self.hooks {
                    Some(hooks) => hooks.run(c, &self.settings).await,
                    None => Ok(c),
                }
            }
            Err(e) => {
                match e {
                    sqlx::Error::PoolTimedOut => {
                        self.stats.timeouts.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => self.stats.errors.fetch_add(1, Ordering::Relaxed),
                };
                Err(map_err(e, None))
            }
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
        let (out, conn) = Busy::new(conn, &self.settings.opts).run(limit, work).await;
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
    ) -> Result<postgres::QueryOutput> {
        let (json, persistent) = (self.settings.json, self.settings.persistent);
        self.pooled(timeout, async |pg| {
            postgres::run_query(pg, &sql, &params, shape, json, persistent).await
        })
        .await
    }

    async fn query_many(
        &self,
        sql: String,
        batch: Vec<Vec<Param>>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.pooled(timeout, async |pg| {
            postgres::run_many(pg, &sql, &batch).await
        })
        .await
    }
}

use super::codec::from_python::Param;

/// A pool of database connections. Create with `await fastio.create_pool(dsn)`.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct Pool {
    inner: Arc<PoolInner>,
}

impl Pool {
    fn run<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: &Bound<'py, PyTuple>,
        shape: Shape,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        self.inner.check()?;
        let params = params_of(args)?;
        let timeout = timeout_arg("timeout", timeout)?;
        let inner = Arc::clone(&self.inner);
        future_into_py(py, async move {
            inner.query(query, params, shape, timeout).await
        })
    }
}

#[pymethods]
impl Pool {
    /// Runs a query on a pooled connection; returns all rows as Records.
    #[pyo3(signature = (query, *args, timeout = None))]
    fn fetch<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: &Bound<'py, PyTuple>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        self.run(py, query, args, Shape::All, timeout)
    }

    /// Runs a query on a pooled connection; returns the first row or None.
    #[pyo3(signature = (query, *args, timeout = None))]
    fn fetchrow<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: &Bound<'py, PyTuple>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        self.run(py, query, args, Shape::Row, timeout)
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
        self.run(py, query, args, Shape::Value(column), timeout)
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
        self.run(py, query, args, Shape::Status, timeout)
    }

    /// Runs a command once per argument sequence, in one round trip.
    #[pyo3(signature = (command, args, *, timeout = None))]
    fn executemany<'py>(
        &self,
        py: Python<'py>,
        command: String,
        args: &Bound<'py, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        self.inner.check()?;
        let batch = batch_of(args)?;
        let timeout = timeout_arg("timeout", timeout)?;
        let inner = Arc::clone(&self.inner);
        future_into_py(py, async move {
            inner.query_many(command, batch, timeout).await?;
            Ok(ReturnNone)
        })
    }

    /// Copies `records` into `table_name` with binary COPY on a pooled
    /// connection; returns the status string ('COPY 3').
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
        self.inner.check()?;
        let rows = batch_of(records)?;
        let timeout = timeout_arg("timeout", timeout)?;
        let pool = Arc::clone(&self.inner);
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
    fn acquire(&self, timeout: Option<f64>) -> PyResult<PoolAcquireContext> {
        self.inner.check()?;
        Ok(PoolAcquireContext {
            pool: Arc::clone(&self.inner),
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
        let conn = Arc::clone(&connection.get().inner);
        if !conn
            .pool
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, &self.inner))
        {
            return Err(Error::Interface(
                "Pool.release(): the connection does not belong to this pool".into(),
            )
            .into());
        }
        future_into_py(py, async move {
            conn.release().await?;
            Ok(ReturnNone)
        })
    }

    /// Closes the pool, waiting for acquired connections to be released.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        self.inner.closed.store(true, Ordering::Release);
        let inner = Arc::clone(&self.inner);
        future_into_py(py, async move {
            inner.pg().close().await;
            Ok(ReturnNone)
        })
    }

    /// Closes the pool at once, without waiting.
    fn terminate(&self) -> PyResult<()> {
        self.inner.closed.store(true, Ordering::Release);
        let pool = self.inner.pg().clone();
        crate::runtime::handle()?.spawn(async move { pool.close().await });
        Ok(())
    }

    fn is_closing(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Open connections (idle and in use).
    fn get_size(&self) -> u32 {
        self.inner.pg().size()
    }

    fn get_idle_size(&self) -> usize {
        self.inner.pg().num_idle()
    }

    fn get_min_size(&self) -> u32 {
        self.inner.min_size
    }

    fn get_max_size(&self) -> u32 {
        self.inner.max_size
    }

    /// Counters: size, idle, in_use, waiting, acquired, timeouts, created, closed, errors.
    fn get_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.inner.stats;
        let size = self.inner.pg().size() as u64;
        let idle = self.inner.pg().num_idle() as u64;
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
        format!(
            "<fastio.Pool {} size={} min={} max={}{}>",
            self.inner.label,
            self.get_size(),
            self.inner.min_size,
            self.inner.max_size,
            if self.is_closing() { " closed" } else { "" }
        )
    }
}

/// What `Pool.acquire()` returns: awaitable, and an async context manager
/// that releases the connection on exit.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct PoolAcquireContext {
    pool: Arc<PoolInner>,
    timeout: Option<Duration>,
    conn: Arc<Mutex<Option<Arc<ConnInner>>>>,
}

impl PoolAcquireContext {
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        let pool = Arc::clone(&self.pool);
        let timeout = self.timeout;
        let slot = Arc::clone(&self.conn);
        future_into_py(py, async move {
            pool.check()?;
            let c = pool.acquire_raw(timeout).await?;
            let inner = Arc::new(ConnInner::new(
                Conn::Pooled(c),
                Arc::clone(&pool.settings),
                Some(Arc::clone(&pool)),
            ));
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&inner));
            Ok(Connection { inner })
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
        future_into_py(py, async move {
            if let Some(c) = conn {
                c.release().await?;
            }
            Ok(false)
        })
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
) -> Result<ConnectArgs> {
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
    });
    Ok(ConnectArgs { opts, settings })
}

/// `await fastio.create_pool(dsn, ...)`.
#[pyfunction]
#[pyo3(signature = (
    dsn, *, min_size = 10, max_size = 10, command_timeout = None, acquire_timeout = None,
    max_inactive_connection_lifetime = 300.0, max_lifetime = None, statement_cache_size = 100,
    timeout = 60.0, json_as_text = false, init = None, setup = None, server_settings = None,
    ssl = None, max_queries = None
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
    let ConnectArgs { opts, settings } = settings_of(
        "create_pool",
        dsn,
        command_timeout,
        statement_cache_size,
        json_as_text,
        server_settings.as_ref(),
        ssl.as_ref(),
    )?;
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
                Box::pin(async move {
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
        Ok(Pool {
            inner: Arc::new(PoolInner {
                backend: Backend::Postgres(pool),
                settings,
                min_size,
                max_size,
                acquire_timeout,
                stats,
                closed: AtomicBool::new(false),
                label,
                hooks,
            }),
        })
    })
}

/// `await fastio.connect(dsn, ...)`: one connection, not pooled.
#[pyfunction]
#[pyo3(signature = (
    dsn, *, timeout = 60.0, command_timeout = None, statement_cache_size = 100,
    json_as_text = false, server_settings = None, ssl = None
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
) -> PyResult<Bound<'py, Awaitable>> {
    let ConnectArgs { opts, settings } = settings_of(
        "connect",
        dsn,
        command_timeout,
        statement_cache_size,
        json_as_text,
        server_settings.as_ref(),
        ssl.as_ref(),
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
        Ok(Connection {
            inner: Arc::new(ConnInner::new(Conn::Direct(Box::new(conn)), settings, None)),
        })
    })
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
