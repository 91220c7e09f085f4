//! SQLite on sqlx, the embedded default: files in WAL mode with a busy
//! timeout (concurrent writers from one pool wait instead of failing),
//! in-memory databases shared by the pool's connections, values as
//! Python's sqlite3 returns them (by storage class).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use pyo3::IntoPyObjectExt;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteColumn, SqliteConnectOptions, SqliteConnection, SqliteError,
    SqliteJournalMode, SqliteRow,
};
use sqlx::{
    Arguments, AssertSqlSafe, Column, ConnectOptions, Decode, Either, Executor, Row, SqlSafeStr,
    TypeInfo, ValueRef,
};

use super::codec::from_python::Param;
use super::connection::Session;
use super::mysql::{clock_text, date_text, datetime_text, uuid_text};
use super::postgres::Shape;
use super::sql::{status_of, Dialect, SqlOutput};
use crate::errors::{Error, Result};

/// Parses `sqlite://path`, `sqlite:path`, `sqlite::memory:` (and sqlx's
/// query options); files are created if missing and use WAL.
pub(crate) fn options(
    func: &str,
    dsn: &str,
    busy_timeout: Duration,
) -> Result<SqliteConnectOptions> {
    let opts = SqliteConnectOptions::from_str(dsn)
        .map_err(|e| Error::InvalidArgument(format!("{func}(): invalid dsn {dsn:?}: {e}")))?;
    let memory = dsn.contains(":memory:") || dsn.contains("mode=memory");
    let opts = if memory {
        opts
    } else {
        opts.create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
    };
    Ok(opts
        .busy_timeout(busy_timeout)
        .log_statements(log::LevelFilter::Off))
}

// ----------------------------------------------------------------- errors --

#[derive(Debug)]
pub struct SqliteErrorInfo {
    pub code: Option<String>,
    pub message: String,
}

pub(crate) fn server_error_to_py(py: Python<'_>, info: SqliteErrorInfo) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let exc = py
            .import("fastio.dbapi")?
            .call_method1("_sqlite_error", (info.code.as_deref(), &info.message))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

pub(crate) fn map_err(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned());
            let message = match db.try_downcast_ref::<SqliteError>() {
                Some(s) => sqlx::error::DatabaseError::message(s).to_owned(),
                None => db.to_string(),
            };
            Error::Sqlite(Box::new(SqliteErrorInfo { code, message }))
        }
        other => super::postgres::map_err(other, None),
    }
}

// ------------------------------------------------------------- parameters --

/// Binds `params` as sqlite3 adapts them by default (dates as ISO text).
fn bind(params: &[Param]) -> Result<SqliteArguments> {
    let mut args = SqliteArguments::default();
    for (i, p) in params.iter().enumerate() {
        let added = match p {
            Param::Null => args.add(None::<i64>),
            Param::Bool(b) => args.add(i64::from(*b)),
            Param::Int(v) => args.add(*v),
            Param::Float(f) => args.add(*f),
            Param::Str(s) | Param::Json(s) | Param::Decimal(s) => args.add(s.clone()),
            Param::Bytes(b) => args.add(b.clone()),
            Param::Date(days) => args.add(date_text(*days)),
            Param::Time(us) => args.add(clock_text(*us)),
            Param::DateTime { micros } => args.add(datetime_text(*micros)),
            Param::Uuid(b) => args.add(uuid_text(b)),
            Param::BigInt(_)
            | Param::Interval { .. }
            | Param::List(_)
            | Param::Range { .. }
            | Param::Unsupported { .. } => {
                let why = match p {
                    Param::BigInt(_) => "too large for SQLite's 64-bit integers".to_owned(),
                    Param::Unsupported { type_name, .. } => {
                        format!("type '{type_name}' is not supported")
                    }
                    Param::List(_) => "a list is not a SQL value".to_owned(),
                    Param::Range { .. } => "ranges are PostgreSQL only".to_owned(),
                    _ => "a timedelta has no SQLite form".to_owned(),
                };
                return Err(Error::Bind(format!(
                    "query argument {} ({}) cannot be bound: {why}",
                    i + 1,
                    p.repr()
                )));
            }
        };
        added.map_err(|e| Error::Interface(e.to_string()))?;
    }
    Ok(args)
}

// ---------------------------------------------------------------- queries --

/// sqlx runs each SQLite connection on a worker thread that finishes every
/// command it was sent, so a dropped query leaves nothing to clean up.
impl Session for SqliteConnection {
    type Key = ();

    fn is_idle(&self) -> bool {
        true
    }

    async fn drain(&mut self) -> bool {
        true
    }

    async fn recover(&mut self, _key: Option<()>) -> bool {
        true
    }
}

async fn collect(
    conn: &mut SqliteConnection,
    sql: &str,
    params: &[Param],
    shape: Shape,
) -> Result<SqlOutput<Sqlite>> {
    let mut out = SqlOutput::new(shape);
    // sqlite3 sets lastrowid after INSERT / REPLACE only.
    let inserts = matches!(status_of(sql, 0, 0).as_str(), "INSERT 0 0");
    {
        let mut stream = if params.is_empty() && matches!(shape, Shape::Status) {
            // Several statements in one string, as sqlite3's executescript.
            conn.fetch_many(sqlx::raw_sql(AssertSqlSafe(sql.to_owned())))
        } else {
            let args = bind(params)?;
            conn.fetch_many(sqlx::query_with(AssertSqlSafe(sql.to_owned()), args))
        };
        while let Some(item) = stream.try_next().await.map_err(map_err)? {
            match item {
                Either::Left(done) => {
                    out.affected += done.rows_affected();
                    if done.rows_affected() > 0 && inserts {
                        out.last_id = done.last_insert_rowid() as u64;
                    }
                }
                Either::Right(row) => out.rows.push(row),
            }
        }
    }
    if matches!(shape, Shape::Status) {
        out.status = status_of(sql, out.affected, out.rows.len());
    }
    if out.wants_columns(sql) {
        // The statement's columns from the server (cached when prepared already).
        if let Ok(stmt) = conn
            .prepare(AssertSqlSafe(sql.to_owned()).into_sql_str())
            .await
        {
            out.columns = sqlx::Statement::columns(&stmt).to_vec();
        }
    }
    Ok(out)
}

impl Dialect for Sqlite {
    const NAME: &'static str = "sqlite";

    fn key(_opts: &Arc<SqliteConnectOptions>, _conn: &SqliteConnection) {}

    fn run<'c>(
        conn: &'c mut SqliteConnection,
        sql: &'c str,
        params: &'c [Param],
        shape: Shape,
    ) -> impl std::future::Future<Output = Result<SqlOutput<Sqlite>>> + Send + 'c {
        collect(conn, sql, params, shape)
    }

    /// Every argument set through one prepared statement, inside one
    /// transaction when none is open (atomic, and one commit instead of N).
    async fn run_many(conn: &mut SqliteConnection, sql: &str, batch: &[Vec<Param>]) -> Result<()> {
        {
            let own = !Self::in_transaction(conn).await;
            if own {
                conn.execute("BEGIN IMMEDIATE").await.map_err(map_err)?;
            }
            let mut result = Ok(());
            for params in batch {
                let args = match bind(params) {
                    Ok(a) => a,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                };
                let q = sqlx::query_with(AssertSqlSafe(sql.to_owned()), args);
                if let Err(e) = conn.execute(q).await {
                    result = Err(map_err(e));
                    break;
                }
            }
            if own {
                let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
                let ended = conn.execute(end).await.map_err(map_err);
                result = result.and(ended.map(|_| ()));
            }
            result
        }
    }

    async fn in_transaction(conn: &mut SqliteConnection) -> bool {
        {
            match conn.lock_handle().await {
                // SAFETY: the handle is locked for us; sqlite3_get_autocommit
                // only reads the connection's flag.
                Ok(mut h) => unsafe {
                    libsqlite3_sys::sqlite3_get_autocommit(h.as_raw_handle().as_ptr()) == 0
                },
                Err(_) => false,
            }
        }
    }

    fn server_pid(_conn: &SqliteConnection) -> u32 {
        std::process::id()
    }

    fn server_info(_conn: &SqliteConnection) -> String {
        // SAFETY: sqlite3_libversion returns a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(libsqlite3_sys::sqlite3_libversion()) }
            .to_string_lossy()
            .into_owned()
    }

    fn after_connect(_conn: &mut SqliteConnection) {}

    fn value<'py>(py: Python<'py>, row: &SqliteRow, i: usize) -> PyResult<Bound<'py, PyAny>> {
        let v = row.try_get_raw(i).map_err(|e| PyErr::from(map_err(e)))?;
        if v.is_null() {
            return Ok(py.None().into_bound(py));
        }
        let fail = |e: sqlx::error::BoxDynError| -> PyErr {
            Error::Interface(format!("could not read an SQLite value: {e}")).into()
        };
        let kind = v.type_info().name().to_owned();
        match kind.as_str() {
            "INTEGER" => <i64 as Decode<Sqlite>>::decode(v)
                .map_err(fail)?
                .into_bound_py_any(py),
            "REAL" => <f64 as Decode<Sqlite>>::decode(v)
                .map_err(fail)?
                .into_bound_py_any(py),
            "BLOB" => Ok(
                PyBytes::new(py, <&[u8] as Decode<Sqlite>>::decode(v).map_err(fail)?).into_any(),
            ),
            _ => Ok(
                PyString::new(py, <&str as Decode<Sqlite>>::decode(v).map_err(fail)?).into_any(),
            ),
        }
    }

    /// sqlite3's description: the names, the other six fields None.
    fn describe<'py>(py: Python<'py>, columns: &[SqliteColumn]) -> PyResult<Bound<'py, PyTuple>> {
        let items = columns
            .iter()
            .map(|c| {
                let none = py.None();
                (
                    c.name(),
                    none.clone_ref(py),
                    none.clone_ref(py),
                    none.clone_ref(py),
                    none.clone_ref(py),
                    none.clone_ref(py),
                    none,
                )
                    .into_bound_py_any(py)
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(py, items)
    }

    fn map_err(e: sqlx::Error) -> Error {
        map_err(e)
    }
}
