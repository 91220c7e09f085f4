//! `Connection`: one database session, standalone (`connect`) or acquired
//! from a `Pool`; and the guard that never lets a connection whose query was
//! cancelled be reused before it is clean.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use sqlx::pool::PoolConnection;
use std::future::Future;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection as _, Database, Postgres};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::codec::custom::{TypeCodec, TypeCodecs};
use super::codec::from_python::Param;
use super::codec::py_wire::PyRows;
use super::codec::to_python::JsonMode;
use super::pool::PoolInner;
use super::postgres::{self, recover, CancelKey, Shape};
use super::sql::{Dialect, SqlConn};
use crate::errors::{Error, Result};
use crate::runtime::{check_fork, future_into_py, future_into_py_eager, Awaitable, ReturnNone};
use sqlx::mysql::MySql;
use sqlx::sqlite::Sqlite;

/// Per-pool / per-connection settings the queries need.
pub(crate) struct Settings {
    pub(crate) opts: Arc<PgConnectOptions>,
    pub(crate) json: JsonMode,
    pub(crate) command_timeout: Option<Duration>,
    /// Named, cached statements (statement_cache_size > 0).
    pub(crate) persistent: bool,
    pub(crate) generation: u64,
    /// `record_class=` of connect()/create_pool(): the rows' default class.
    pub(crate) record_class: Option<Py<pyo3::types::PyType>>,
    /// Set once any session of this pool/connection has a `set_type_codec`
    /// codec: from then on, arguments keep their Python objects for encoders.
    pub(crate) codecs_seen: AtomicBool,
}

impl Settings {
    /// The arguments of one query (kept for codecs when there are any).
    pub(crate) fn params(&self, args: &Bound<'_, PyTuple>) -> PyResult<Vec<Param>> {
        if self.codecs_seen.load(Ordering::Acquire) {
            args.iter().map(|a| Param::kept(&a)).collect()
        } else {
            params_of(args)
        }
    }

    /// The argument sequences of executemany/fetchmany.
    pub(crate) fn batch(&self, args: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<Param>>> {
        if !self.codecs_seen.load(Ordering::Acquire) {
            return batch_of(args);
        }
        let mut out = Vec::new();
        for row in args.try_iter()? {
            let row = row?;
            if row.is_instance_of::<PyString>() {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "args must be an iterable of argument sequences",
                ));
            }
            let params = row
                .try_iter()?
                .map(|a| Param::kept(&a?))
                .collect::<PyResult<Vec<_>>>()?;
            out.push(params);
        }
        Ok(out)
    }

    /// The class of the rows: `record_class` if given, else the default.
    pub(crate) fn record_class(
        &self,
        py: Python<'_>,
        given: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Py<pyo3::types::PyType>>> {
        match given {
            Some(cls) if !cls.is_none() => check_record_class(cls).map(Some),
            _ => Ok(self.record_class.as_ref().map(|c| c.clone_ref(py))),
        }
    }
}

/// asyncpg's check of `record_class=`: Record or a subclass of it that
/// redefines neither `__new__` nor `__init__`; `None` for Record itself.
pub(crate) fn check_record_class(cls: &Bound<'_, PyAny>) -> PyResult<Py<pyo3::types::PyType>> {
    use pyo3::PyTypeInfo;
    let py = cls.py();
    let record = super::record::Record::type_object(py);
    let Ok(ty) = cls.cast::<pyo3::types::PyType>() else {
        return Err(Error::Interface(format!(
            "record_class is expected to be a subclass of asyncpg.Record, got {}",
            cls.repr()?
        ))
        .into());
    };
    if !ty.is_subclass(&record)? {
        return Err(Error::Interface(format!(
            "record_class is expected to be a subclass of asyncpg.Record, got {}",
            cls.repr()?
        ))
        .into());
    }
    for name in ["__new__", "__init__"] {
        if !ty.getattr(name)?.is(record.getattr(name)?) {
            return Err(Error::Interface(
                "record_class must not redefine __new__ or __init__".into(),
            )
            .into());
        }
    }
    Ok(ty.clone().unbind())
}

/// The live session behind a Connection: from a pool, or standalone.
pub(crate) enum Conn<DB: Database> {
    Pooled(PoolConnection<DB>),
    Direct(Box<DB::Connection>),
}

impl<DB: Database> Conn<DB> {
    pub(crate) fn raw(&mut self) -> &mut DB::Connection {
        match self {
            Conn::Pooled(c) => c,
            Conn::Direct(c) => c,
        }
    }

    pub(crate) fn pg(&mut self) -> &mut DB::Connection {
        self.raw()
    }
}

pub(crate) struct ConnState<DB: Reset> {
    pub(crate) conn: Option<Conn<DB>>,
    /// Why `conn` is gone (for the error message).
    pub(crate) gone: &'static str,
}

/// A backend session, as the query guard needs it: whether it is between
/// queries, and how to bring it back when a query was cut short.
pub(crate) trait Session: Send + 'static {
    /// What cancelling a running query on the server takes.
    type Key: Send + 'static;
    /// Nothing is pending on the wire.
    fn is_idle(&self) -> bool;
    /// Whether a session whose query future was dropped can be reused as
    /// is (without `recover`): true only if `is_idle` tracks every reply.
    fn clean_after_drop(&self) -> bool {
        self.is_idle()
    }
    /// Reads what an error left pending; `false` means close the connection.
    fn drain(&mut self) -> impl Future<Output = bool> + Send;
    /// After a query future was dropped mid-flight: cancel it on the server
    /// and read the connection back; `false` means close it.
    fn recover(&mut self, key: Option<Self::Key>) -> impl Future<Output = bool> + Send;
}

impl Session for PgConnection {
    type Key = CancelKey;

    fn is_idle(&self) -> bool {
        self.is_ready_for_query()
    }

    async fn drain(&mut self) -> bool {
        matches!(
            tokio::time::timeout(postgres::DRAIN_TIMEOUT, self.drain_pending()).await,
            Ok(Ok(()))
        )
    }

    async fn recover(&mut self, key: Option<CancelKey>) -> bool {
        recover(self, key).await
    }
}

impl<DB: Reset> Drop for ConnState<DB> {
    /// A pooled connection nobody released (its Connection object was
    /// dropped, or an `acquire()` was cancelled after it got one) goes back
    /// reset, or closed if it is not between queries, from a tokio task:
    /// sqlx's own drop would hand it back as it is (possibly inside a
    /// transaction), and needs a runtime the dropping thread may not have.
    fn drop(&mut self) {
        let Some(Conn::Pooled(c)) = self.conn.take() else {
            return;
        };
        let Ok(rt) = crate::runtime::handle() else {
            // No runtime to close it on (dropping it would need one).
            std::mem::forget(c);
            return;
        };
        rt.spawn(DB::give_back_dropped(c));
    }
}

/// Closes a pooled connection, handing its slot back to the pool from a
/// tokio task (callers run on the event-loop thread, outside the runtime).
pub(crate) fn close_pooled<DB: Database>(mut c: PoolConnection<DB>) {
    c.close_on_drop();
    match crate::runtime::handle() {
        Ok(rt) => drop(rt.spawn(async move { drop(c) })),
        Err(_) => std::mem::forget(c),
    }
}

/// What to do with a pooled connection nobody released.
pub(crate) trait Reset: Database {
    /// Hands it back reset, or closes it (runs on tokio).
    fn give_back_dropped(c: PoolConnection<Self>) -> impl Future<Output = ()> + Send + 'static;
}

impl Reset for Postgres {
    async fn give_back_dropped(mut c: PoolConnection<Postgres>) {
        if c.is_ready_for_query() && postgres::reset_session(&mut c).await {
            c.return_to_pool().await;
        } else {
            c.close_on_drop();
        }
    }
}

/// Something that holds a connection for the length of one query.
pub(crate) trait Holder: Send + 'static {
    type Conn: Session;
    fn conn(&mut self) -> Option<&mut Self::Conn>;
    /// Closes the connection instead of reusing it.
    fn discard(self);
}

impl<DB: Database> Holder for PoolConnection<DB>
where
    DB::Connection: Session,
{
    type Conn = DB::Connection;

    fn conn(&mut self) -> Option<&mut DB::Connection> {
        Some(self)
    }

    fn discard(mut self) {
        self.close_on_drop();
    }
}

impl<DB: Reset> Holder for OwnedMutexGuard<ConnState<DB>>
where
    DB::Connection: Session,
{
    type Conn = DB::Connection;

    fn conn(&mut self) -> Option<&mut DB::Connection> {
        self.conn.as_mut().map(Conn::raw)
    }

    fn discard(mut self) {
        if let Some(Conn::Pooled(mut c)) = self.conn.take() {
            c.close_on_drop();
        }
        self.gone = "the connection was closed after a cancelled query could not be cleaned up";
    }
}

type KeyOf<H> = <<H as Holder>::Conn as Session>::Key;

/// Holds a connection while a query runs. Finished normally, the connection
/// is read back to idle if an error left replies pending. Dropped mid-query
/// (task cancelled, `wait_for`, command timeout), a task cancels the query on
/// the server, drains the connection, and closes it if it does not come
/// back; meanwhile nobody else can use it.
pub(crate) struct Busy<H: Holder> {
    held: Option<H>,
    key: Option<KeyOf<H>>,
}

impl<H: Holder> Busy<H> {
    pub(crate) fn new(mut held: H, key: impl FnOnce(&H::Conn) -> KeyOf<H>) -> Self {
        let key = held.conn().map(|c| key(c));
        Busy {
            held: Some(held),
            key,
        }
    }

    fn conn(&mut self) -> Result<&mut H::Conn> {
        self.held
            .as_mut()
            .and_then(Holder::conn)
            .ok_or_else(|| Error::Interface("the connection is closed".into()))
    }

    /// Runs `work` on the connection within `limit`. Unless it timed out
    /// (then dropping `self` cancels the query on the server and cleans up),
    /// the connection is handed back clean.
    pub(crate) async fn run<T>(
        mut self,
        limit: Option<Duration>,
        work: impl AsyncFnOnce(&mut H::Conn) -> Result<T>,
    ) -> (Result<T>, Option<H>) {
        let out = with_timeout(limit, async { work(self.conn()?).await }).await;
        if matches!(out, Err(Error::Timeout(_))) {
            return (out, None);
        }
        let held = self.finish().await;
        (out, held)
    }

    /// The query finished (successfully or with an error): hand the
    /// connection back, clean.
    pub(crate) async fn finish(mut self) -> Option<H> {
        let mut held = self.held.take()?;
        let ok = match held.conn() {
            Some(c) if !c.is_idle() => c.drain().await,
            _ => true,
        };
        if ok {
            Some(held)
        } else {
            held.discard();
            None
        }
    }
}

impl<H: Holder> Drop for Busy<H> {
    fn drop(&mut self) {
        let Some(mut held) = self.held.take() else {
            return;
        };
        if held.conn().is_none_or(|c| c.clean_after_drop()) {
            return;
        }
        let key = self.key.take();
        let cleanup = async move {
            let ok = match held.conn() {
                Some(c) => c.recover(key).await,
                None => true,
            };
            if !ok {
                held.discard();
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(cleanup);
            }
            Err(_) => {
                if let Ok(h) = crate::runtime::handle() {
                    h.spawn(cleanup);
                }
            }
        }
    }
}

/// Runs `fut` under the per-call or default command timeout. Not an `async
/// fn`: that would keep `fut` twice in its state (as the argument and inside
/// the Timeout), and query futures are kilobytes.
pub(crate) fn with_timeout<T>(
    limit: Option<Duration>,
    fut: impl std::future::Future<Output = Result<T>>,
) -> impl std::future::Future<Output = Result<T>> {
    use futures::FutureExt;
    match limit {
        None => futures::future::Either::Left(fut),
        Some(d) => futures::future::Either::Right(tokio::time::timeout(d, fut).map(move |r| {
            r.unwrap_or_else(|_| {
                Err(Error::Timeout(format!(
                    "the query did not complete within {:.3} s (cancelled on the server)",
                    d.as_secs_f64()
                )))
            })
        })),
    }
}

pub(crate) fn timeout_arg(what: &str, t: Option<f64>) -> Result<Option<Duration>> {
    match t {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(Error::InvalidArgument(format!(
            "{what} must be a positive number of seconds or None, got {s}"
        ))),
    }
}

pub(crate) fn params_of(args: &Bound<'_, PyTuple>) -> PyResult<Vec<Param>> {
    args.iter().map(|a| Param::from_py(&a)).collect()
}

pub(crate) fn batch_of(args: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<Param>>> {
    let mut out = Vec::with_capacity(args.len().unwrap_or(0));
    for row in args.try_iter()? {
        let row = row?;
        if row.is_instance_of::<PyString>() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "executemany(): args must be an iterable of argument sequences",
            ));
        }
        // Tuples and lists (the usual rows) without a Python iterator each.
        let params = if let Ok(t) = row.cast::<PyTuple>() {
            t.iter()
                .map(|a| Param::from_py(&a))
                .collect::<PyResult<Vec<_>>>()?
        } else if let Ok(l) = row.cast::<pyo3::types::PyList>() {
            l.iter()
                .map(|a| Param::from_py(&a))
                .collect::<PyResult<Vec<_>>>()?
        } else {
            let mut params = Vec::new();
            for a in row.try_iter()? {
                params.push(Param::from_py(&a?)?);
            }
            params
        };
        out.push(params);
    }
    Ok(out)
}

pub(crate) struct ConnInner {
    pub(crate) state: Arc<AsyncMutex<ConnState<Postgres>>>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) pool: Option<Arc<PoolInner>>,
    pub(crate) pid: u32,
    pub(crate) server_version: Option<u32>,
    pub(crate) closed: AtomicBool,
    /// The LISTEN session, started by the first `add_listener`.
    pub(crate) listener: AsyncMutex<Option<Arc<super::listener::Listener>>>,
}

impl ConnInner {
    pub(crate) fn new(
        conn: Conn<Postgres>,
        settings: Arc<Settings>,
        pool: Option<Arc<PoolInner>>,
    ) -> Self {
        let mut conn = conn;
        let pg = conn.pg();
        let pid = pg.backend_key_data().0;
        let server_version = pg.server_version_num();
        ConnInner {
            state: Arc::new(AsyncMutex::new(ConnState {
                conn: Some(conn),
                gone: "the connection is closed",
            })),
            settings,
            pool,
            pid,
            server_version,
            closed: AtomicBool::new(false),
            listener: AsyncMutex::new(None),
        }
    }

    async fn lock(&self) -> Result<OwnedMutexGuard<ConnState<Postgres>>> {
        let guard = Arc::clone(&self.state).lock_owned().await;
        if guard.conn.is_none() {
            return Err(Error::Interface(guard.gone.to_owned()));
        }
        Ok(guard)
    }

    /// Runs `work` on this connection, exclusively, under the timeout
    /// (`command_timeout` when none is given).
    pub(crate) async fn locked<T>(
        &self,
        timeout: Option<Duration>,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        let guard = self.lock().await?;
        let limit = timeout.or(self.settings.command_timeout);
        let opts = &self.settings.opts;
        Busy::new(guard, |c| CancelKey::of(opts, c))
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
        cls: postgres::RecordCls,
    ) -> Result<postgres::QueryOutput> {
        let (json, persistent) = (self.settings.json, self.settings.persistent);
        let run = self.locked(timeout, async |pg| {
            postgres::run_query(pg, &sql, &params, shape, json, persistent, &cls).await
        });
        match &self.pool {
            Some(pool) => pool.metrics.timed(&sql, run).await,
            None => run.await,
        }
    }

    pub(crate) async fn query_many(
        &self,
        sql: String,
        rows: PyRows,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let run = self.locked(timeout, async |pg| {
            postgres::run_many(pg, &sql, &rows).await
        });
        match &self.pool {
            Some(pool) => pool.metrics.timed(&sql, run).await,
            None => run.await,
        }
    }

    /// `fetchmany`: every argument set pipelined, all rows returned.
    pub(crate) async fn fetch_many(
        &self,
        sql: String,
        batch: Vec<Vec<Param>>,
        timeout: Option<Duration>,
        cls: postgres::RecordCls,
    ) -> Result<postgres::QueryOutput> {
        let json = self.settings.json;
        let run = self.locked(timeout, async |pg| {
            postgres::fetch_many(pg, &sql, &batch, json, &cls).await
        });
        match &self.pool {
            Some(pool) => pool.metrics.timed(&sql, run).await,
            None => run.await,
        }
    }

    /// Sets (or with `None` removes) a `set_type_codec` codec on this session.
    pub(crate) async fn set_codec(&self, oid: u32, codec: Option<TypeCodec>) -> Result<()> {
        self.settings.codecs_seen.store(true, Ordering::Release);
        self.locked(None, async |pg| {
            TypeCodecs::install(pg, oid, codec);
            Ok(())
        })
        .await
    }

    pub(crate) async fn copy_records(
        &self,
        table: String,
        schema: Option<String>,
        columns: Option<Vec<String>>,
        records: PyRows,
        timeout: Option<Duration>,
    ) -> Result<String> {
        self.locked(timeout, async |pg| {
            postgres::copy_records(pg, &table, schema.as_deref(), columns.as_deref(), &records)
                .await
        })
        .await
    }

    /// Prepares `sql` on the server (syntax and types checked now) and
    /// returns the parameter type OIDs.
    pub(crate) async fn prepare(&self, sql: &str, timeout: Option<Duration>) -> Result<Vec<u32>> {
        self.locked(timeout, async |pg| postgres::param_types(pg, sql).await)
            .await
    }

    /// Gives a pooled connection back (rolled back if left in a transaction).
    pub(crate) async fn release(&self) -> Result<()> {
        // Listeners belong to this user of the connection, as in asyncpg.
        self.listener.lock().await.take();
        let mut guard = Arc::clone(&self.state).lock_owned().await;
        let conn = guard.conn.take();
        guard.gone = "the connection has been released back to the pool";
        self.closed.store(true, Ordering::Release);
        drop(guard);
        match conn {
            Some(Conn::Pooled(mut c)) => {
                // Handed to a user by Pool.acquire(): reset the session as
                // asyncpg does, so nothing they SET reaches the next user.
                let clean = if self.pool.is_some() {
                    postgres::reset_session(&mut c).await
                } else if c.in_transaction_block() {
                    sqlx::Executor::execute(&mut *c, "ROLLBACK").await.is_ok()
                } else {
                    true
                };
                if !clean {
                    c.close_on_drop();
                    return Ok(());
                }
                // Back in the idle set before release() returns.
                c.return_to_pool().await;
            }
            Some(Conn::Direct(c)) => {
                let _ = c.close().await;
            }
            None => {}
        }
        Ok(())
    }

    pub(crate) async fn close(&self) -> Result<()> {
        self.listener.lock().await.take();
        let mut guard = Arc::clone(&self.state).lock_owned().await;
        let conn = guard.conn.take();
        guard.gone = "the connection is closed";
        self.closed.store(true, Ordering::Release);
        drop(guard);
        match conn {
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

    /// Closes the connection without waiting; one running a query is
    /// closed as soon as the query ends.
    pub(crate) fn terminate(&self) {
        self.closed.store(true, Ordering::Release);
        fn close(guard: &mut ConnState<Postgres>) {
            if let Some(Conn::Pooled(c)) = guard.conn.take() {
                close_pooled(c);
            }
            guard.gone = "the connection is closed";
        }
        match Arc::clone(&self.state).try_lock_owned() {
            Ok(mut guard) => close(&mut guard),
            Err(_) => {
                let state = Arc::clone(&self.state);
                if let Ok(rt) = crate::runtime::handle() {
                    rt.spawn(async move { close(&mut *state.lock_owned().await) });
                }
            }
        }
    }
}

/// The session behind a `Connection`, by backend.
#[derive(Clone)]
pub(crate) enum ConnKind {
    Pg(Arc<ConnInner>),
    MySql(Arc<SqlConn<MySql>>),
    Sqlite(Arc<SqlConn<Sqlite>>),
}

/// Runs `$sql` with `$c` bound to the MySQL or SQLite session, `$pg` for PostgreSQL.
macro_rules! by_session {
    ($kind:expr, $c:ident => pg: $pg:expr, sql: $sql:expr) => {
        match $kind {
            ConnKind::Pg($c) => $pg,
            ConnKind::MySql($c) => $sql,
            ConnKind::Sqlite($c) => $sql,
        }
    };
}

impl ConnKind {
    /// Gives a pooled connection back (rolled back if left in a transaction).
    pub(crate) async fn release(&self) -> Result<()> {
        by_session!(self, c => pg: c.release().await, sql: c.release().await)
    }

    /// `release()` done on the calling thread if nothing needs waiting for
    /// (MySQL: idle and outside a transaction); `false` if it was not done.
    /// PostgreSQL's release always resets the session on the server.
    pub(crate) fn release_now(&self) -> bool {
        by_session!(self, c => pg: { let _ = c; false }, sql: c.release_now())
    }
}

/// `record_class=` is PostgreSQL's (asyncpg's) only.
pub(crate) fn no_record_class(given: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    match given {
        Some(c) if !c.is_none() => {
            Err(Error::Interface("record_class= is only supported for PostgreSQL".into()).into())
        }
        _ => Ok(()),
    }
}

fn sql_run<'py, D: Dialect>(
    py: Python<'py>,
    conn: &Arc<SqlConn<D>>,
    query: String,
    params: Vec<Param>,
    shape: Shape,
    timeout: Option<Duration>,
) -> PyResult<Bound<'py, Awaitable>>
where
    D::Connection: Session,
{
    conn.check()?;
    let conn = Arc::clone(conn);
    // Boxed on tokio (see `sql_query` in pool.rs).
    let fut = async move { Box::pin(conn.query(query, params, shape, timeout)).await };
    if D::EAGER {
        // One connection's query: written and read on the loop thread (see
        // `run` below; M4 of issue #5).
        future_into_py_eager(py, fut)
    } else {
        future_into_py(py, fut)
    }
}

fn sql_many<'py, D: Dialect>(
    py: Python<'py>,
    conn: &Arc<SqlConn<D>>,
    command: String,
    batch: Vec<Vec<Param>>,
    timeout: Option<Duration>,
) -> PyResult<Bound<'py, Awaitable>>
where
    D::Connection: Session,
{
    conn.check()?;
    let conn = Arc::clone(conn);
    future_into_py(py, async move {
        conn.query_many(command, batch, timeout).await?;
        Ok(ReturnNone)
    })
}

/// A database connection. From `fastio.connect()` or `Pool.acquire()`.
#[pyclass(frozen, weakref, module = "fastio._fastio")]
pub struct Connection {
    pub(crate) kind: ConnKind,
}

impl Connection {
    /// The PostgreSQL session, or an error naming the PostgreSQL-only method.
    fn pg(&self, what: &str) -> PyResult<&Arc<ConnInner>> {
        match &self.kind {
            ConnKind::Pg(c) => {
                check_fork(c.settings.generation, "this connection")?;
                Ok(c)
            }
            _ => Err(Error::Interface(format!(
                "Connection.{what}() is only available for PostgreSQL"
            ))
            .into()),
        }
    }

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
            ConnKind::MySql(_) => super::mysql::pyformat(query, args)?,
            ConnKind::Pg(c) => (query, c.settings.params(args)?),
            _ => (query, params_of(args)?),
        };
        let timeout = timeout_arg("timeout", timeout)?;
        by_session!(&self.kind, c => pg: {
            check_fork(c.settings.generation, "this connection")?;
            let cls = c.settings.record_class(py, record_class)?.map(Arc::new);
            let inner = Arc::clone(c);
            // One connection's query: started on the loop thread (saves a
            // thread hand-off per query; P4 of issue #4).
            future_into_py_eager(py, async move {
                inner.query(query, params, shape, timeout, cls).await
            })
        }, sql: {
            no_record_class(record_class)?;
            sql_run(py, c, query, params, shape, timeout)
        })
    }
}

#[pymethods]
impl Connection {
    /// Runs a query and returns all rows as a list of Records (of
    /// `record_class`, a Record subclass, when given; PostgreSQL).
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

    /// Runs a query and returns the first row, or None.
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

    /// Runs a query once per argument sequence, pipelined in one round trip
    /// and atomic like executemany; returns the rows of all runs (asyncpg's
    /// fetchmany). PostgreSQL only.
    #[pyo3(signature = (query, args, *, timeout = None, record_class = None))]
    fn fetchmany<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: &Bound<'py, PyAny>,
        timeout: Option<f64>,
        record_class: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let c = self.pg("fetchmany")?;
        let batch = c.settings.batch(args)?;
        let timeout = timeout_arg("timeout", timeout)?;
        let cls = c.settings.record_class(py, record_class)?.map(Arc::new);
        let inner = Arc::clone(c);
        future_into_py(py, async move {
            inner.fetch_many(query, batch, timeout, cls).await
        })
    }

    /// Sets (encoder and decoder given) or removes the codec of type `oid`
    /// on this session; `set_type_codec()` (fastio._codecs) checks the type.
    #[pyo3(signature = (oid, encoder = None, decoder = None))]
    fn _set_codec<'py>(
        &self,
        py: Python<'py>,
        oid: u32,
        encoder: Option<Py<PyAny>>,
        decoder: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let codec = match (encoder, decoder) {
            (Some(encoder), Some(decoder)) => Some(TypeCodec { encoder, decoder }),
            _ => None,
        };
        let inner = Arc::clone(self.pg("set_type_codec")?);
        future_into_py(py, async move {
            inner.set_codec(oid, codec).await?;
            Ok(ReturnNone)
        })
    }

    /// asyncpg's `set_type_codec(typename, *, schema='public', encoder,
    /// decoder, format='text')`: values of the type go through
    /// `encoder(obj) -> str` and `decoder(str) -> obj`. PostgreSQL only.
    #[pyo3(signature = (typename, **kwargs))]
    fn set_type_codec<'py>(
        slf: &Bound<'py, Self>,
        typename: String,
        kwargs: Option<&Bound<'py, pyo3::types::PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        in_python(
            slf.py(),
            "fastio._codecs",
            "set_type_codec",
            (slf, typename),
            kwargs,
        )
    }

    /// Puts back the built-in handling of a type `set_type_codec` changed.
    #[pyo3(signature = (typename, **kwargs))]
    fn reset_type_codec<'py>(
        slf: &Bound<'py, Self>,
        typename: String,
        kwargs: Option<&Bound<'py, pyo3::types::PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        in_python(
            slf.py(),
            "fastio._codecs",
            "reset_type_codec",
            (slf, typename),
            kwargs,
        )
    }

    /// Runs a query and returns one column of the first row, or None.
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

    /// Runs a command and returns its status string (e.g. 'INSERT 0 1').
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

    /// Runs a command once per argument sequence, in one round trip.
    #[pyo3(signature = (command, args, *, timeout = None))]
    fn executemany<'py>(
        &self,
        py: Python<'py>,
        command: String,
        args: &Bound<'py, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        by_session!(&self.kind, c => pg: {
            let rows = PyRows::of(args)?;
            let timeout = timeout_arg("timeout", timeout)?;
            check_fork(c.settings.generation, "this connection")?;
            let inner = Arc::clone(c);
            future_into_py(py, async move {
                inner.query_many(command, rows, timeout).await?;
                Ok(ReturnNone)
            })
        }, sql: {
            let batch = batch_of(args)?;
            let timeout = timeout_arg("timeout", timeout)?;
            sql_many(py, c, command, batch, timeout)
        })
    }

    /// Closes the connection (a pooled one is closed, not returned).
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        let conn = self.kind.clone();
        future_into_py(py, async move {
            by_session!(&conn, c => pg: c.close().await, sql: c.close().await)?;
            Ok(ReturnNone)
        })
    }

    /// Closes the connection immediately, without waiting.
    fn terminate(&self) {
        by_session!(&self.kind, c => pg: c.terminate(), sql: c.terminate())
    }

    fn is_closed(&self) -> bool {
        by_session!(&self.kind, c => pg: c.closed.load(Ordering::Acquire), sql: c.closed.load(Ordering::Acquire))
    }

    /// Whether the connection is inside a transaction block.
    fn is_in_transaction(&self) -> bool {
        match &self.kind {
            ConnKind::Pg(c) => match c.state.try_lock() {
                Ok(mut g) => g
                    .conn
                    .as_mut()
                    .is_some_and(|c| c.pg().in_transaction_block()),
                // A query is running; its transaction state is not known yet.
                Err(_) => false,
            },
            ConnKind::MySql(c) => c.in_transaction(),
            ConnKind::Sqlite(c) => c.in_transaction(),
        }
    }

    /// The process id of the server backend.
    fn get_server_pid(&self) -> u32 {
        by_session!(&self.kind, c => pg: c.pid, sql: c.pid)
    }

    /// The server's version string (MySQL's handshake; SQLite's library version).
    fn _server_info(&self) -> String {
        by_session!(&self.kind, c => pg: {
            let (major, minor, micro) = version_parts(c.server_version.unwrap_or(0));
            format!("{major}.{minor}.{micro}")
        }, sql: c.server_info.clone())
    }

    /// The backend: 'postgresql', 'mysql' or 'sqlite'.
    #[getter]
    fn backend(&self) -> &'static str {
        match self.kind {
            ConnKind::Pg(_) => "postgresql",
            ConnKind::MySql(_) => <MySql as Dialect>::NAME,
            ConnKind::Sqlite(_) => <Sqlite as Dialect>::NAME,
        }
    }

    /// For the DB-API compat layers (MySQL, SQLite): runs `query` with `?`
    /// placeholders and returns `(description, rows, rowcount, lastrowid)`.
    #[pyo3(signature = (query, args = None, *, timeout = None))]
    fn _exec<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: Option<&Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let params = match args {
            Some(a) if !a.is_none() => a
                .try_iter()?
                .map(|v| Param::from_py(&v?))
                .collect::<PyResult<Vec<_>>>()?,
            _ => Vec::new(),
        };
        let timeout = timeout_arg("timeout", timeout)?;
        match &self.kind {
            ConnKind::Pg(_) => Err(Error::Interface(
                "Connection._exec() is only available for MySQL and SQLite".into(),
            )
            .into()),
            ConnKind::MySql(c) => sql_run(py, c, query, params, Shape::Exec, timeout),
            ConnKind::Sqlite(c) => sql_run(py, c, query, params, Shape::Exec, timeout),
        }
    }

    /// The server's version number, as libpq's PQserverVersion (e.g. 150004).
    fn get_server_version_num(&self) -> PyResult<Option<u32>> {
        Ok(self.pg("get_server_version_num")?.server_version)
    }

    /// The server version as asyncpg's `ServerVersion` named tuple.
    fn get_server_version<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let num = self.pg("get_server_version")?.server_version.unwrap_or(0);
        let (major, minor, micro) = version_parts(num);
        py.import("fastio._types")?
            .getattr("ServerVersion")?
            .call1((major, minor, micro, "final", 0))
    }

    /// A transaction block (`async with conn.transaction(): ...`); nested
    /// ones are savepoints.
    #[pyo3(signature = (*, isolation = None, readonly = false, deferrable = false))]
    fn transaction<'py>(
        slf: &Bound<'py, Self>,
        isolation: Option<String>,
        readonly: bool,
        deferrable: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let cls = py.import("fastio._transaction")?.getattr("Transaction")?;
        let kw = pyo3::types::PyDict::new(py);
        kw.set_item("isolation", isolation)?;
        kw.set_item("readonly", readonly)?;
        kw.set_item("deferrable", deferrable)?;
        cls.call((slf,), Some(&kw))
    }

    /// Copies `records` (sequences of values) into `table_name` with binary
    /// COPY; returns the status string ('COPY 3').
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
        let rows = PyRows::of(records)?;
        let timeout = timeout_arg("timeout", timeout)?;
        let inner = Arc::clone(self.pg("copy_records_to_table")?);
        future_into_py(py, async move {
            inner
                .copy_records(table_name, schema_name, columns, rows, timeout)
                .await
        })
    }

    /// Prepares `query` on the server; resolves to a PreparedStatement with
    /// `fetch/fetchrow/fetchval/executemany` (and `cursor`).
    /// `record_class` applies to the statement's fetch/fetchrow/cursor.
    #[pyo3(signature = (query, *, timeout = None, record_class = None))]
    fn prepare<'py>(
        &self,
        py: Python<'py>,
        query: String,
        timeout: Option<f64>,
        record_class: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let timeout = timeout_arg("timeout", timeout)?;
        let inner = Arc::clone(self.pg("prepare")?);
        let record_class = match record_class {
            Some(c) if !c.is_none() => Some(check_record_class(c)?),
            _ => None,
        };
        future_into_py(py, async move {
            let types = inner.prepare(&query, timeout).await?;
            Ok(Prepared {
                conn: Connection {
                    kind: ConnKind::Pg(inner),
                },
                query,
                types,
                record_class,
            })
        })
    }

    /// `LISTEN channel` on this connection's listening session.
    fn _listen<'py>(&self, py: Python<'py>, channel: String) -> PyResult<Bound<'py, Awaitable>> {
        let inner = Arc::clone(self.pg("listen")?);
        future_into_py(py, async move {
            let listener = {
                let mut slot = inner.listener.lock().await;
                match slot.as_ref() {
                    Some(l) => Arc::clone(l),
                    None => {
                        let l =
                            Arc::new(super::listener::Listener::start(&inner.settings.opts).await?);
                        *slot = Some(Arc::clone(&l));
                        l
                    }
                }
            };
            listener.listen(channel).await?;
            Ok(ReturnNone)
        })
    }

    /// `UNLISTEN channel`.
    fn _unlisten<'py>(&self, py: Python<'py>, channel: String) -> PyResult<Bound<'py, Awaitable>> {
        let inner = Arc::clone(self.pg("unlisten")?);
        future_into_py(py, async move {
            let listener = inner.listener.lock().await.as_ref().map(Arc::clone);
            if let Some(l) = listener {
                l.unlisten(channel).await?;
            }
            Ok(ReturnNone)
        })
    }

    /// The next notification `(pid, channel, payload)`, or None once the
    /// listening session has ended.
    fn _next_notification<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        let inner = Arc::clone(self.pg("next_notification")?);
        future_into_py(py, async move {
            // Only the queue: holding the Listener would keep its session alive.
            let queue = inner
                .listener
                .lock()
                .await
                .as_ref()
                .map(|l| Arc::clone(&l.notifications));
            let Some(queue) = queue else {
                return Ok(None);
            };
            let mut rx = queue.lock().await;
            Ok(rx.recv().await)
        })
    }

    /// Stops the listening session (called by close()).
    fn _stop_listening<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        let inner = Arc::clone(self.pg("stop_listening")?);
        future_into_py(py, async move {
            inner.listener.lock().await.take();
            Ok(ReturnNone)
        })
    }

    /// Calls `callback(connection, pid, channel, payload)` for every
    /// NOTIFY on `channel` (a coroutine function's result is scheduled as a task).
    fn add_listener<'py>(
        slf: &Bound<'py, Self>,
        channel: String,
        callback: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        py.import("fastio._listeners")?
            .getattr("add_listener")?
            .call1((slf, channel, callback))
    }

    /// Removes a callback added with `add_listener`.
    fn remove_listener<'py>(
        slf: &Bound<'py, Self>,
        channel: String,
        callback: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        py.import("fastio._listeners")?
            .getattr("remove_listener")?
            .call1((slf, channel, callback))
    }

    /// An async iterator over the rows of `query`, fetched `prefetch` at a
    /// time through a server-side cursor (inside a transaction of its own
    /// when none is open). `batch_size` is accepted as an alias of `prefetch`.
    #[pyo3(signature = (
        query, *args, prefetch = None, timeout = None, batch_size = None, record_class = None
    ))]
    fn cursor<'py>(
        slf: &Bound<'py, Self>,
        query: String,
        args: &Bound<'py, PyTuple>,
        prefetch: Option<usize>,
        timeout: Option<f64>,
        batch_size: Option<usize>,
        record_class: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let record_class = match (&slf.get().kind, record_class) {
            (_, None) => None,
            (_, Some(c)) if c.is_none() => None,
            (ConnKind::Pg(_), Some(c)) => Some(check_record_class(c)?),
            (_, given) => {
                no_record_class(given)?;
                None
            }
        };
        let n = prefetch.or(batch_size).unwrap_or(50);
        if n == 0 {
            return Err(
                Error::InvalidArgument("cursor(): prefetch must be at least 1".into()).into(),
            );
        }
        let cls = py.import("fastio._cursor")?.getattr("Cursor")?;
        cls.call1((slf, query, args, n, timeout, record_class))
    }

    /// Copies the result of `query` (COPY ... TO STDOUT) to `output`: a
    /// path, a file object, or an async callable taking bytes. Returns the
    /// status string ('COPY 3'). Keywords as asyncpg's (format, delimiter,
    /// null, header, quote, escape, force_quote, encoding, ...).
    #[pyo3(signature = (query, *args, **kwargs))]
    fn copy_from_query<'py>(
        slf: &Bound<'py, Self>,
        query: String,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, pyo3::types::PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        in_python(
            slf.py(),
            "fastio._copy",
            "copy_from_query",
            (slf, query, args),
            kwargs,
        )
    }

    /// Copies a table (or some of its columns) to `output` (COPY ... TO
    /// STDOUT); returns the status string.
    #[pyo3(signature = (table_name, **kwargs))]
    fn copy_from_table<'py>(
        slf: &Bound<'py, Self>,
        table_name: String,
        kwargs: Option<&Bound<'py, pyo3::types::PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        in_python(
            slf.py(),
            "fastio._copy",
            "copy_from_table",
            (slf, table_name),
            kwargs,
        )
    }

    /// Copies `source` (a path, a file object, bytes, or an async iterable
    /// of bytes) into a table (COPY ... FROM STDIN); returns the status string.
    #[pyo3(signature = (table_name, **kwargs))]
    fn copy_to_table<'py>(
        slf: &Bound<'py, Self>,
        table_name: String,
        kwargs: Option<&Bound<'py, pyo3::types::PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        in_python(
            slf.py(),
            "fastio._copy",
            "copy_to_table",
            (slf, table_name),
            kwargs,
        )
    }

    /// Runs a `COPY ... TO STDOUT` statement; resolves to `(status, data)`,
    /// `data` None when written to `path`.
    #[pyo3(signature = (sql, path = None, timeout = None))]
    fn _copy_out<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        path: Option<String>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let timeout = timeout_arg("timeout", timeout)?;
        let inner = Arc::clone(self.pg("copy_out")?);
        future_into_py(py, async move { inner.copy_out(sql, path, timeout).await })
    }

    /// Runs a `COPY ... FROM STDIN` statement with the file at `path` or
    /// `chunks` (bytes) as data; resolves to the status string.
    #[pyo3(signature = (sql, path = None, chunks = None, timeout = None))]
    fn _copy_in<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        path: Option<String>,
        chunks: Option<Vec<Vec<u8>>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let timeout = timeout_arg("timeout", timeout)?;
        let source = match path {
            Some(p) => super::copy::CopySource::Path(p),
            None => super::copy::CopySource::Chunks(chunks.unwrap_or_default()),
        };
        let inner = Arc::clone(self.pg("copy_in")?);
        future_into_py(py, async move { inner.copy_in(sql, source, timeout).await })
    }

    /// `query` with its `$n` arguments inlined as SQL literals (for COPY,
    /// which takes no parameters).
    #[pyo3(signature = (query, *args, timeout = None))]
    fn _mogrify<'py>(
        &self,
        py: Python<'py>,
        query: String,
        args: &Bound<'py, PyTuple>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let params = params_of(args)?;
        let timeout = timeout_arg("timeout", timeout)?;
        let inner = Arc::clone(self.pg("mogrify")?);
        future_into_py(
            py,
            async move { inner.mogrify(query, params, timeout).await },
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "<fastio.Connection pid={}{}>",
            self.get_server_pid(),
            if self.is_closed() { " closed" } else { "" }
        )
    }
}

/// The result of `Connection.prepare()`, turned into the Python-level
/// PreparedStatement on the event-loop thread.
struct Prepared {
    conn: Connection,
    query: String,
    types: Vec<u32>,
    record_class: Option<Py<pyo3::types::PyType>>,
}

impl<'py> IntoPyObject<'py> for Prepared {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let cls = py
            .import("fastio._prepared")?
            .getattr("PreparedStatement")?;
        cls.call1((
            Bound::new(py, self.conn)?,
            self.query,
            self.types,
            self.record_class,
        ))
    }
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Connection>()
}

/// (major, minor, micro) of libpq's version number.
fn version_parts(num: u32) -> (u32, u32, u32) {
    if num >= 100_000 {
        (num / 10_000, 0, num % 10_000)
    } else {
        (num / 10_000, (num / 100) % 100, num % 100)
    }
}

/// Calls `module.name(*args, **kwargs)`: the methods written in Python
/// (type codecs, COPY to and from files).
pub(crate) fn in_python<'py>(
    py: Python<'py>,
    module: &str,
    name: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
    kwargs: Option<&Bound<'py, pyo3::types::PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    py.import(module)?.getattr(name)?.call(args, kwargs)
}
