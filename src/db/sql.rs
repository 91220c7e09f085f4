//! MySQL / MariaDB and SQLite: the pool and connection behaviour both share
//! (acquire and release, the query guard, timeouts, stats), generic over a
//! [`Dialect`]; each backend's wire and type code is in `mysql.rs` /
//! `sqlite.rs`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;
use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::{ConnectOptions, Connection as _, Database};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::ahead::{taken, Ahead, Made};
use super::codec::from_python::Param;
use super::connection::{close_pooled, Busy, Conn, ConnState, Reset, Session};
use super::pool::Stats;
use super::postgres::Shape;
use super::reconnect::retried;
use super::record::{Record, RecordDesc};
use super::stats::{self, PoolMetrics, PoolView};
use crate::errors::{Error, Result};
use crate::metrics::GaugeSource;
use crate::retry::RetryPolicy;
use crate::runtime::check_fork;

/// What a backend provides to the shared pool and connection code.
pub(crate) trait Dialect: Database + Reset + Sized
where
    Self::Connection: Session,
{
    /// The DSN scheme family, for messages and metrics labels.
    const NAME: &'static str;

    /// Whether a query on one connection is polled on the event loop's
    /// thread, which then reads its reply (`future_into_py_eager`): true
    /// for a network session, false where a worker thread does the I/O.
    const EAGER: bool;

    /// The cancel key of a connection (see [`Session::recover`]).
    fn key(
        opts: &Arc<<Self::Connection as sqlx::Connection>::Options>,
        conn: &Self::Connection,
    ) -> <Self::Connection as Session>::Key;

    /// Runs one statement and collects what `shape` needs.
    fn run<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        params: &'c [Param],
        shape: Shape,
    ) -> impl Future<Output = Result<SqlOutput<Self>>> + Send + 'c;

    /// Runs a statement once per argument set.
    fn run_many<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        batch: &'c [Vec<Param>],
    ) -> impl Future<Output = Result<()>> + Send + 'c;

    /// Whether the session is inside a transaction block.
    fn in_transaction(conn: &mut Self::Connection) -> impl Future<Output = bool> + Send + '_;

    /// Whether a lent connection can go back to the pool as it is, decided
    /// without waiting: nothing pending on the wire, no transaction open.
    /// `false` (the default) sends it through the full `release()`.
    fn releasable_now(conn: &Self::Connection) -> bool {
        let _ = conn;
        false
    }

    /// The server's id for this session (MySQL's connection id; 0 for SQLite).
    fn server_pid(conn: &Self::Connection) -> u32;

    /// The server's version string.
    fn server_info(conn: &Self::Connection) -> String;

    /// Per-connection setup after connecting.
    fn after_connect(conn: &mut Self::Connection);

    /// A result row as the query collected it.
    type OutRow: Send + 'static;
    /// What `description` is built from.
    type Header: Send + 'static;

    /// The column names of a row.
    fn names(row: &Self::OutRow) -> Vec<&str>;

    /// The number of values in a row.
    fn width(row: &Self::OutRow) -> usize;

    /// The header of a row's result.
    fn header(row: &Self::OutRow) -> Self::Header;

    /// One value of a row as a Python object.
    fn value<'py>(py: Python<'py>, row: &Self::OutRow, i: usize) -> PyResult<Bound<'py, PyAny>>;

    /// Every value of a row, in column order (a backend may decode the row
    /// in one pass).
    fn values(py: Python<'_>, row: &Self::OutRow) -> PyResult<Vec<Py<PyAny>>> {
        (0..Self::width(row))
            .map(|i| Self::value(py, row, i).map(Bound::unbind))
            .collect()
    }

    /// The DB-API `description` of a result's columns (7-tuples).
    fn describe<'py>(py: Python<'py>, header: &Self::Header) -> PyResult<Bound<'py, PyTuple>>;

    /// Maps a sqlx error of this backend.
    fn map_err(e: sqlx::Error) -> Error;
}

/// Rows still in wire form, plus what the statement reported; turned into
/// Python objects on the loop thread.
pub(crate) struct SqlOutput<D: Dialect>
where
    D::Connection: Session,
{
    pub(crate) rows: Vec<D::OutRow>,
    pub(crate) affected: u64,
    pub(crate) last_id: u64,
    pub(crate) status: String,
    pub(crate) shape: Shape,
    /// The columns of a result set that had no rows (for `description`).
    pub(crate) columns: Option<D::Header>,
    /// Records (`fetch`) or tuples (DB-API cursors) of the leading rows,
    /// made on the loop thread while the rest was received.
    pub(crate) ahead: Option<Ahead<Arc<RecordDesc>>>,
}

impl<D: Dialect> SqlOutput<D>
where
    D::Connection: Session,
{
    pub(crate) fn new(shape: Shape) -> Self {
        SqlOutput {
            rows: Vec::new(),
            affected: 0,
            last_id: 0,
            status: String::new(),
            shape,
            columns: None,
            ahead: None,
        }
    }

    /// Whether `description` must come from preparing the statement: a
    /// DB-API result of a query that returned no rows.
    pub(crate) fn wants_columns(&self, sql: &str) -> bool {
        matches!(self.shape, Shape::Exec)
            && self.rows.is_empty()
            && status_of(sql, 0, 0).starts_with("SELECT")
    }
}

/// asyncpg-style status of a statement that reports no command tag:
/// 'INSERT 0 3', 'UPDATE 2', 'DELETE 1', 'SELECT 5', else its leading
/// keywords ('CREATE TABLE', 'BEGIN').
pub(crate) fn status_of(sql: &str, affected: u64, rows: usize) -> String {
    let mut words = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty());
    let first = words.next().unwrap_or("").to_ascii_uppercase();
    match first.as_str() {
        "INSERT" | "REPLACE" => format!("INSERT 0 {affected}"),
        "UPDATE" | "DELETE" => format!("{first} {affected}"),
        "SELECT" | "WITH" | "VALUES" | "SHOW" | "PRAGMA" | "EXPLAIN" | "DESCRIBE" => {
            format!("SELECT {rows}")
        }
        "CREATE" | "DROP" | "ALTER" | "TRUNCATE" => {
            let mut tag = first.clone();
            for w in words {
                let w = w.to_ascii_uppercase();
                let last = !matches!(
                    w.as_str(),
                    "TEMPORARY" | "TEMP" | "UNIQUE" | "OR" | "REPLACE" | "VIRTUAL"
                );
                tag.push(' ');
                tag.push_str(&w);
                if last {
                    break;
                }
            }
            tag
        }
        _ => first,
    }
}

impl<'py, D: Dialect> IntoPyObject<'py> for SqlOutput<D>
where
    D::Connection: Session,
{
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.shape {
            Shape::Status => Ok(PyString::new(py, &self.status).into_any()),
            Shape::All => {
                let Made {
                    mut items,
                    state: desc,
                } = taken(self.ahead.as_ref())?;
                let desc = match (desc, self.rows.first()) {
                    (Some(d), _) => d,
                    (None, Some(first)) => desc_of::<D>(py, first)?,
                    (None, None) => return Ok(PyList::new(py, items)?.into_any()),
                };
                items.reserve(self.rows.len());
                for row in &self.rows {
                    items.push(record::<D>(py, &desc, row)?);
                }
                Ok(PyList::new(py, items)?.into_any())
            }
            Shape::Row => match self.rows.first() {
                None => Ok(py.None().into_bound(py)),
                Some(row) => Ok(record::<D>(py, &desc_of::<D>(py, row)?, row)?.into_bound(py)),
            },
            Shape::Value(col) => match self.rows.first() {
                None => Ok(py.None().into_bound(py)),
                Some(row) => {
                    let n = D::width(row);
                    if col >= n {
                        return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                            "fetchval(): column index {col} out of range (the result has {n} column{})",
                            if n == 1 { "" } else { "s" }
                        )));
                    }
                    D::value(py, row, col)
                }
            },
            Shape::Exec => {
                let description = match self.rows.first() {
                    Some(row) => D::describe(py, &D::header(row))?.into_any(),
                    None => match &self.columns {
                        Some(h) => D::describe(py, h)?.into_any(),
                        None => py.None().into_bound(py),
                    },
                };
                let mut rows = taken(self.ahead.as_ref())?.items;
                rows.reserve(self.rows.len());
                for row in &self.rows {
                    rows.push(PyTuple::new(py, D::values(py, row)?)?.into_any().unbind());
                }
                let rowcount = if description.is_none() {
                    self.affected
                } else {
                    rows.len() as u64
                };
                (description, PyList::new(py, rows)?, rowcount, self.last_id).into_bound_py_any(py)
            }
        }
    }
}

pub(crate) fn desc_of<D: Dialect>(py: Python<'_>, row: &D::OutRow) -> PyResult<Arc<RecordDesc>>
where
    D::Connection: Session,
{
    RecordDesc::new(py, &D::names(row))
}

pub(crate) fn record<D: Dialect>(
    py: Python<'_>,
    desc: &Arc<RecordDesc>,
    row: &D::OutRow,
) -> PyResult<Py<PyAny>>
where
    D::Connection: Session,
{
    let values = D::values(py, row)?;
    Record::new_py(py, Arc::clone(desc), values.into_boxed_slice())
}

/// Per-pool / per-connection settings of a MySQL or SQLite session.
pub(crate) struct SqlSettings<D: Database> {
    pub(crate) opts: Arc<<D::Connection as sqlx::Connection>::Options>,
    pub(crate) command_timeout: Option<Duration>,
    pub(crate) generation: u64,
}

pub(crate) struct SqlPool<D: Dialect>
where
    D::Connection: Session,
{
    pub(crate) pool: sqlx::Pool<D>,
    pub(crate) settings: Arc<SqlSettings<D>>,
    pub(crate) min_size: u32,
    pub(crate) max_size: u32,
    pub(crate) acquire_timeout: Option<Duration>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) closed: AtomicBool,
    pub(crate) label: String,
    pub(crate) metrics: PoolMetrics,
    gauges: OnceLock<Arc<dyn GaugeSource>>,
    retry: Option<RetryPolicy>,
    /// Connections handed out by `acquire()`, for `terminate()`.
    lent: std::sync::Mutex<Vec<std::sync::Weak<SqlConn<D>>>>,
    /// SQLite file databases: the connections that answer pool-level reads.
    pub(crate) lite: OnceLock<Arc<super::sqlite::Readers>>,
}

impl<D: Dialect> PoolView for SqlPool<D>
where
    D::Connection: Session,
{
    fn size(&self) -> u32 {
        self.pool.size()
    }

    fn idle(&self) -> usize {
        self.pool.num_idle()
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

/// The statements `init_sql` runs on every new connection.
pub(crate) type InitSql = Arc<Vec<String>>;

async fn run_init<D: Dialect>(conn: &mut D::Connection, init: &[String]) -> Result<()>
where
    D::Connection: Session,
{
    for sql in init {
        D::run(conn, sql, &[], Shape::Status).await?;
    }
    Ok(())
}

/// Opens a pool (connections made by sqlx, set up by `init_sql`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn open_pool<D: Dialect>(
    opts: <D::Connection as sqlx::Connection>::Options,
    settings: Arc<SqlSettings<D>>,
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
) -> Result<Arc<SqlPool<D>>>
where
    D::Connection: Session,
{
    let stats = Arc::new(Stats::default());
    let counter = Arc::clone(&stats);
    let pool = PoolOptions::<D>::new()
        .min_connections(min_size)
        .max_connections(max_size)
        .acquire_timeout(connect_timeout.unwrap_or(Duration::from_secs(86_400 * 365)))
        .idle_timeout(idle)
        .max_lifetime(lifetime)
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            D::after_connect(conn);
            let c = Arc::clone(&counter);
            let init = Arc::clone(&init);
            Box::pin(async move {
                run_init::<D>(conn, &init)
                    .await
                    .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
                c.created.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .map_err(D::map_err)?;
    warm_up(&pool, min_size).await.map_err(D::map_err)?;
    let pool = Arc::new(SqlPool {
        pool,
        settings,
        min_size,
        max_size,
        acquire_timeout,
        stats,
        closed: AtomicBool::new(false),
        label,
        metrics: PoolMetrics::new(name, <D as Dialect>::NAME),
        gauges: OnceLock::new(),
        retry,
        lent: std::sync::Mutex::new(Vec::new()),
        lite: OnceLock::new(),
    });
    let _ = pool.gauges.set(stats::register(&pool));
    Ok(pool)
}

/// Waits (up to 30 s) until the pool has `min_size` connections open before
/// it is handed out, as asyncpg and aiomysql do: sqlx opens one and fills
/// the rest in the background.
pub(crate) async fn warm_up<DB: Database>(
    pool: &sqlx::Pool<DB>,
    min_size: u32,
) -> sqlx::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pool.size() < min_size && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Opens one standalone connection.
pub(crate) async fn open_conn<D: Dialect>(
    settings: Arc<SqlSettings<D>>,
    timeout: Option<Duration>,
    init: InitSql,
) -> Result<SqlConn<D>>
where
    D::Connection: Session,
{
    let fut = async {
        let mut conn = settings.opts.connect().await.map_err(D::map_err)?;
        D::after_connect(&mut conn);
        run_init::<D>(&mut conn, &init).await?;
        Ok::<_, Error>(conn)
    };
    let conn = match timeout {
        Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
            Error::Timeout(format!(
                "connect(): timed out after {:.3} s",
                t.as_secs_f64()
            ))
        })??,
        None => fut.await?,
    };
    Ok(SqlConn::new(Conn::Direct(Box::new(conn)), settings, None))
}

impl<D: Dialect> SqlPool<D>
where
    D::Connection: Session,
{
    pub(crate) fn check(&self) -> Result<()> {
        check_fork(self.settings.generation, "this pool")?;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Interface("the pool is closed".into()));
        }
        Ok(())
    }

    /// Hands out a connection as a `Connection` of this pool.
    pub(crate) async fn lend(
        self: Arc<Self>,
        timeout: Option<Duration>,
    ) -> Result<Arc<SqlConn<D>>> {
        self.check()?;
        let c = self.acquire_raw(timeout).await?;
        Ok(self.lent_as(c))
    }

    /// `lend()` without waiting, on the calling thread: an idle connection
    /// if one is free now (and no task is queued for one: the pool's
    /// semaphore is fair), else `None`.
    pub(crate) fn try_lend(self: &Arc<Self>) -> Result<Option<Arc<SqlConn<D>>>> {
        self.check()?;
        Ok(self.pool.try_acquire().map(|c| {
            self.stats.acquired.fetch_add(1, Ordering::Relaxed);
            self.lent_as(c)
        }))
    }

    fn lent_as(self: &Arc<Self>, c: PoolConnection<D>) -> Arc<SqlConn<D>> {
        let settings = Arc::clone(&self.settings);
        let conn = Arc::new(SqlConn::new(
            Conn::Pooled(c),
            settings,
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
    pub(crate) fn terminate(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        if let Some(readers) = self.lite.get() {
            readers.close();
        }
        let lent = std::mem::take(&mut *self.lent.lock().unwrap_or_else(|p| p.into_inner()));
        for conn in lent.iter().filter_map(std::sync::Weak::upgrade) {
            conn.terminate();
        }
        let pool = self.pool.clone();
        crate::runtime::handle()?.spawn(async move { pool.close().await });
        Ok(())
    }

    pub(crate) async fn acquire_raw(&self, timeout: Option<Duration>) -> Result<PoolConnection<D>> {
        struct Waiting<'a>(&'a AtomicI64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.stats.waiting.fetch_add(1, Ordering::Relaxed);
        let _w = Waiting(&self.stats.waiting);
        // No `acquire` local: it would be kept in this future beside the
        // Timeout that owns it (sqlx's acquire future is kilobytes).
        let got = match timeout.or(self.acquire_timeout) {
            Some(t) => tokio::time::timeout(t, self.pool.acquire())
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut)),
            None => self.pool.acquire().await,
        };
        self.stats.count_acquire(&got);
        got.map_err(D::map_err)
    }

    /// Runs `work` on a pooled connection under the timeout, then returns
    /// it to the pool clean (rolled back if a statement left a transaction open).
    async fn pooled<T>(
        &self,
        timeout: Option<Duration>,
        work: impl AsyncFnOnce(&mut D::Connection) -> Result<T>,
    ) -> Result<T> {
        let conn = self.acquire_raw(None).await?;
        let limit = timeout.or(self.settings.command_timeout);
        let opts = &self.settings.opts;
        let (out, conn) = Busy::new(conn, |c| D::key(opts, c)).run(limit, work).await;
        if let Some(conn) = conn {
            give_back::<D>(conn).await;
        }
        if out.is_err() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    pub(crate) async fn query(
        &self,
        sql: String,
        params: Vec<Param>,
        shape: Shape,
        timeout: Option<Duration>,
    ) -> Result<SqlOutput<D>> {
        let run = retried(self.retry.as_ref(), || {
            self.pooled(timeout, async |c| D::run(c, &sql, &params, shape).await)
        });
        self.metrics.timed(&sql, run).await
    }

    pub(crate) async fn query_many(
        &self,
        sql: String,
        batch: Vec<Vec<Param>>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let run = retried(self.retry.as_ref(), || {
            self.pooled(timeout, async |c| D::run_many(c, &sql, &batch).await)
        });
        self.metrics.timed(&sql, run).await
    }
}

impl Reset for sqlx::mysql::MySql {
    async fn give_back_dropped(c: PoolConnection<Self>) {
        if c.is_ready() {
            give_back::<Self>(c).await;
        } else {
            let mut c = c;
            c.close_on_drop();
        }
    }
}

impl Reset for sqlx::sqlite::Sqlite {
    async fn give_back_dropped(c: PoolConnection<Self>) {
        give_back::<Self>(c).await;
    }
}

/// Returns a pooled connection, rolled back first if it is inside a
/// transaction (closed if that fails): never handed out dirty.
async fn give_back<D: Dialect>(mut conn: PoolConnection<D>)
where
    D::Connection: Session,
{
    // The rollback is boxed: inline, it would make every release's future
    // (copied on each query) larger for a path few releases take.
    if D::in_transaction(&mut conn).await
        && Box::pin(D::run(&mut conn, "ROLLBACK", &[], Shape::Status))
            .await
            .is_err()
    {
        conn.close_on_drop();
        return;
    }
    conn.return_to_pool().await;
}

/// One MySQL or SQLite session behind a `Connection`.
pub(crate) struct SqlConn<D: Dialect>
where
    D::Connection: Session,
{
    pub(crate) state: Arc<AsyncMutex<ConnState<D>>>,
    pub(crate) settings: Arc<SqlSettings<D>>,
    pub(crate) pool: Option<Arc<SqlPool<D>>>,
    pub(crate) pid: u32,
    pub(crate) server_info: String,
    pub(crate) closed: AtomicBool,
}

impl<D: Dialect> SqlConn<D>
where
    D::Connection: Session,
{
    pub(crate) fn new(
        mut conn: Conn<D>,
        settings: Arc<SqlSettings<D>>,
        pool: Option<Arc<SqlPool<D>>>,
    ) -> Self {
        let pid = D::server_pid(conn.raw());
        let server_info = D::server_info(conn.raw());
        SqlConn {
            state: Arc::new(AsyncMutex::new(ConnState {
                conn: Some(conn),
                gone: "the connection is closed",
            })),
            settings,
            pool,
            pid,
            server_info,
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        check_fork(self.settings.generation, "this connection")
    }

    async fn lock(&self) -> Result<OwnedMutexGuard<ConnState<D>>> {
        let guard = Arc::clone(&self.state).lock_owned().await;
        if guard.conn.is_none() {
            return Err(Error::Interface(guard.gone.to_owned()));
        }
        Ok(guard)
    }

    async fn locked<T>(
        &self,
        timeout: Option<Duration>,
        work: impl AsyncFnOnce(&mut D::Connection) -> Result<T>,
    ) -> Result<T> {
        let guard = self.lock().await?;
        let limit = timeout.or(self.settings.command_timeout);
        let opts = &self.settings.opts;
        Busy::new(guard, |c| D::key(opts, c))
            .run(limit, work)
            .await
            .0
    }

    pub(crate) async fn query(
        &self,
        sql: String,
        params: Vec<Param>,
        shape: Shape,
        timeout: Option<Duration>,
    ) -> Result<SqlOutput<D>> {
        let run = self.locked(timeout, async |c| D::run(c, &sql, &params, shape).await);
        match &self.pool {
            Some(pool) => pool.metrics.timed(&sql, run).await,
            None => run.await,
        }
    }

    pub(crate) async fn query_many(
        &self,
        sql: String,
        batch: Vec<Vec<Param>>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let run = self.locked(timeout, async |c| D::run_many(c, &sql, &batch).await);
        match &self.pool {
            Some(pool) => pool.metrics.timed(&sql, run).await,
            None => run.await,
        }
    }

    /// Whether the session is in a transaction (false while a query runs).
    pub(crate) fn in_transaction(&self) -> bool {
        match Arc::clone(&self.state).try_lock_owned() {
            Ok(mut g) => match g.conn.as_mut() {
                Some(c) => futures::executor::block_on(D::in_transaction(c.raw())),
                None => false,
            },
            Err(_) => false,
        }
    }

    /// Gives a pooled connection back (rolled back if left in a transaction).
    pub(crate) async fn release(&self) -> Result<()> {
        let conn = self
            .take("the connection has been released back to the pool")
            .await;
        match conn {
            Some(Conn::Pooled(c)) => give_back::<D>(c).await,
            Some(Conn::Direct(c)) => {
                let _ = c.close().await;
            }
            None => {}
        }
        Ok(())
    }

    /// `release()` on the calling thread when there is nothing to wait
    /// for: the connection is lent by a pool, idle and outside a
    /// transaction ([`Dialect::releasable_now`]). It is back in the pool's
    /// idle set when this returns `true`; `false` means nothing was done.
    pub(crate) fn release_now(&self) -> bool {
        let Ok(rt) = crate::runtime::handle() else {
            return false;
        };
        let Ok(mut guard) = Arc::clone(&self.state).try_lock_owned() else {
            return false;
        };
        let mut c = match guard.conn.take() {
            Some(Conn::Pooled(c)) if D::releasable_now(&c) => c,
            other => {
                guard.conn = other;
                return false;
            }
        };
        guard.gone = "the connection has been released back to the pool";
        self.closed.store(true, Ordering::Release);
        drop(guard);
        // sqlx's hand-back is a future; with nothing to check (no ping, no
        // hook) its first poll puts the connection back. One that has to
        // close the connection (pool closed, past max_lifetime) finishes on
        // tokio.
        let _in_runtime = rt.enter();
        let mut back = Box::pin(c.return_to_pool());
        drop(c);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        if back.as_mut().poll(&mut cx).is_pending() {
            drop(rt.spawn(back));
        }
        true
    }

    pub(crate) async fn close(&self) -> Result<()> {
        match self.take("the connection is closed").await {
            Some(Conn::Pooled(c)) => {
                let _ = c.close().await;
            }
            Some(Conn::Direct(c)) => {
                let _ = c.close().await;
            }
            None => {}
        }
        Ok(())
    }

    async fn take(&self, why: &'static str) -> Option<Conn<D>> {
        let mut guard = Arc::clone(&self.state).lock_owned().await;
        let conn = guard.conn.take();
        guard.gone = why;
        self.closed.store(true, Ordering::Release);
        conn
    }

    pub(crate) fn terminate(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut guard) = Arc::clone(&self.state).try_lock_owned() {
            if let Some(Conn::Pooled(c)) = guard.conn.take() {
                close_pooled(c);
            }
            guard.gone = "the connection is closed";
        }
    }
}
