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
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteError, SqliteJournalMode,
};
use sqlx::{
    Arguments, AssertSqlSafe, Column, ConnectOptions, Decode, Either, Executor, Row, SqlSafeStr,
    TypeInfo, ValueRef,
};

use super::codec::from_python::uuid_text;
use super::codec::from_python::Param;
use super::connection::Session;
use super::mysql::{clock_text, date_text, datetime_text};
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
        let p = p.plain();
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
            | Param::Unsupported { .. }
            | Param::Custom { .. } => {
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

/// One SQLite value, by storage class.
pub(crate) enum LiteValue {
    Null,
    Int(i64),
    Real(f64),
    Text(Box<str>),
    Blob(Box<[u8]>),
}

/// A result's column names, shared by its rows.
type Names = Arc<[Box<str>]>;

/// A result row: its values and the result's column names.
pub(crate) struct LiteRow {
    names: Arc<[Box<str>]>,
    values: Box<[LiteValue]>,
}

fn lite_value(v: sqlx::sqlite::SqliteValueRef<'_>) -> Result<LiteValue> {
    if v.is_null() {
        return Ok(LiteValue::Null);
    }
    let fail = |e: sqlx::error::BoxDynError| {
        Error::Interface(format!("could not read an SQLite value: {e}"))
    };
    let kind = v.type_info().name().to_owned();
    Ok(match kind.as_str() {
        "INTEGER" => LiteValue::Int(<i64 as Decode<Sqlite>>::decode(v).map_err(fail)?),
        "REAL" => LiteValue::Real(<f64 as Decode<Sqlite>>::decode(v).map_err(fail)?),
        "BLOB" => LiteValue::Blob(<&[u8] as Decode<Sqlite>>::decode(v).map_err(fail)?.into()),
        _ => LiteValue::Text(<&str as Decode<Sqlite>>::decode(v).map_err(fail)?.into()),
    })
}

/// Reads a read-only statement straight through the C API on this thread
/// (no per-row hop through sqlx's worker channel). `None` when the statement
/// is not a single read-only one, or the database was busy: then sqlx runs it.
fn read_direct(
    db: *mut libsqlite3_sys::sqlite3,
    sql: &str,
    params: &[Param],
) -> Result<Option<(Names, Vec<LiteRow>)>> {
    use libsqlite3_sys as ffi;
    use std::ffi::{c_char, c_int, CStr};
    struct Stmt(*mut ffi::sqlite3_stmt);
    impl Drop for Stmt {
        fn drop(&mut self) {
            // SAFETY: a statement from sqlite3_prepare_v2, finalized once.
            unsafe { ffi::sqlite3_finalize(self.0) };
        }
    }
    let err = |db: *mut ffi::sqlite3| -> Error {
        // SAFETY: db is a live connection handle.
        let (code, msg) = unsafe {
            (
                ffi::sqlite3_extended_errcode(db),
                CStr::from_ptr(ffi::sqlite3_errmsg(db))
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        Error::Sqlite(Box::new(SqliteErrorInfo {
            code: Some(code.to_string()),
            message: msg,
        }))
    };
    let Ok(len) = c_int::try_from(sql.len()) else {
        return Ok(None);
    };
    let mut raw = std::ptr::null_mut();
    let mut tail: *const c_char = std::ptr::null();
    // SAFETY: sql outlives the call; raw and tail are out-parameters.
    let rc = unsafe { ffi::sqlite3_prepare_v2(db, sql.as_ptr().cast(), len, &mut raw, &mut tail) };
    if rc != ffi::SQLITE_OK {
        return Err(err(db));
    }
    if raw.is_null() {
        return Ok(None);
    }
    let stmt = Stmt(raw);
    // SAFETY: tail points into sql (or at its end).
    let rest = unsafe { tail.offset_from(sql.as_ptr().cast()) } as usize;
    let single = sql
        .get(rest..)
        .is_none_or(|r| r.trim().trim_matches(';').trim().is_empty());
    // SAFETY: a valid statement.
    if !single || unsafe { ffi::sqlite3_stmt_readonly(stmt.0) } == 0 {
        return Ok(None);
    }
    // SAFETY: a valid statement.
    let expected = unsafe { ffi::sqlite3_bind_parameter_count(stmt.0) } as usize;
    if expected != params.len() {
        return Ok(None);
    }
    for (i, p) in params.iter().enumerate() {
        let at = (i + 1) as c_int;
        let text = |t: &str| -> c_int {
            // SAFETY: SQLITE_TRANSIENT makes SQLite copy the bytes.
            unsafe {
                ffi::sqlite3_bind_text64(
                    stmt.0,
                    at,
                    t.as_ptr().cast(),
                    t.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                    ffi::SQLITE_UTF8 as u8,
                )
            }
        };
        // SAFETY (all binds): a valid statement and index; SQLITE_TRANSIENT copies.
        let rc = match p {
            Param::Null => unsafe { ffi::sqlite3_bind_null(stmt.0, at) },
            Param::Bool(b) => unsafe { ffi::sqlite3_bind_int64(stmt.0, at, i64::from(*b)) },
            Param::Int(v) => unsafe { ffi::sqlite3_bind_int64(stmt.0, at, *v) },
            Param::Float(f) => unsafe { ffi::sqlite3_bind_double(stmt.0, at, *f) },
            Param::Str(t) | Param::Json(t) | Param::Decimal(t) => text(t),
            Param::Bytes(b) => unsafe {
                ffi::sqlite3_bind_blob64(
                    stmt.0,
                    at,
                    b.as_ptr().cast(),
                    b.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                )
            },
            Param::Date(days) => text(&date_text(*days)),
            Param::Time(us) => text(&clock_text(*us)),
            Param::DateTime { micros } => text(&datetime_text(*micros)),
            Param::Uuid(b) => text(&uuid_text(b)),
            // Not bindable: sqlx's path reports it.
            _ => return Ok(None),
        };
        if rc != ffi::SQLITE_OK {
            return Err(err(db));
        }
    }
    // SAFETY: a valid statement.
    let width = unsafe { ffi::sqlite3_column_count(stmt.0) };
    let names: Names = (0..width)
        .map(|i| {
            // SAFETY: i < width; the name is copied before the next call.
            let p = unsafe { ffi::sqlite3_column_name(stmt.0, i) };
            if p.is_null() {
                Box::from("")
            } else {
                // SAFETY: a NUL-terminated UTF-8 name owned by the statement.
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into()
            }
        })
        .collect();
    let mut rows = Vec::new();
    loop {
        // SAFETY: a valid statement.
        match unsafe { ffi::sqlite3_step(stmt.0) } {
            ffi::SQLITE_ROW => {
                let values = (0..width)
                    .map(|i| {
                        // SAFETY: i < width while the statement is on a row;
                        // text/blob pointers are copied before the next call.
                        unsafe {
                            match ffi::sqlite3_column_type(stmt.0, i) {
                                ffi::SQLITE_INTEGER => {
                                    LiteValue::Int(ffi::sqlite3_column_int64(stmt.0, i))
                                }
                                ffi::SQLITE_FLOAT => {
                                    LiteValue::Real(ffi::sqlite3_column_double(stmt.0, i))
                                }
                                ffi::SQLITE_TEXT => {
                                    let p = ffi::sqlite3_column_text(stmt.0, i);
                                    let n = ffi::sqlite3_column_bytes(stmt.0, i) as usize;
                                    let b = if p.is_null() {
                                        &[][..]
                                    } else {
                                        std::slice::from_raw_parts(p, n)
                                    };
                                    LiteValue::Text(String::from_utf8_lossy(b).into())
                                }
                                ffi::SQLITE_BLOB => {
                                    let p = ffi::sqlite3_column_blob(stmt.0, i).cast::<u8>();
                                    let n = ffi::sqlite3_column_bytes(stmt.0, i) as usize;
                                    let b = if p.is_null() {
                                        &[][..]
                                    } else {
                                        std::slice::from_raw_parts(p, n)
                                    };
                                    LiteValue::Blob(b.into())
                                }
                                _ => LiteValue::Null,
                            }
                        }
                    })
                    .collect();
                rows.push(LiteRow {
                    names: Arc::clone(&names),
                    values,
                });
            }
            ffi::SQLITE_DONE => return Ok(Some((names, rows))),
            rc if matches!(rc & 0xff, ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED) && rows.is_empty() => {
                return Ok(None)
            }
            _ => return Err(err(db)),
        }
    }
}

async fn collect(
    conn: &mut SqliteConnection,
    sql: &str,
    params: &[Param],
    shape: Shape,
) -> Result<SqlOutput<Sqlite>> {
    let mut out = SqlOutput::new(shape);
    if !matches!(shape, Shape::Status) {
        let mut h = conn.lock_handle().await.map_err(map_err)?;
        let db = h.as_raw_handle().as_ptr();
        // Reading runs on this tokio worker, so let the runtime move its
        // other tasks elsewhere meanwhile.
        let read = tokio::task::block_in_place(|| read_direct(db, sql, params))?;
        drop(h);
        if let Some((names, rows)) = read {
            out.rows = rows;
            if out.wants_columns(sql) {
                out.columns = Some(names);
            }
            return Ok(out);
        }
    }
    // sqlite3 sets lastrowid after INSERT / REPLACE only.
    let inserts = matches!(status_of(sql, 0, 0).as_str(), "INSERT 0 0");
    let mut names: Option<Names> = None;
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
                Either::Right(row) => {
                    let names = names.get_or_insert_with(|| {
                        row.columns().iter().map(|c| Box::from(c.name())).collect()
                    });
                    let values = (0..row.columns().len())
                        .map(|i| lite_value(row.try_get_raw(i).map_err(map_err)?))
                        .collect::<Result<Box<[_]>>>()?;
                    out.rows.push(LiteRow {
                        names: Arc::clone(names),
                        values,
                    });
                }
            }
        }
    }
    if matches!(shape, Shape::Status) {
        out.status = status_of(sql, out.affected, out.rows.len());
    }
    if out.wants_columns(sql) {
        if let Ok(stmt) = conn
            .prepare(AssertSqlSafe(sql.to_owned()).into_sql_str())
            .await
        {
            let cols = sqlx::Statement::columns(&stmt);
            out.columns = Some(cols.iter().map(|c| Box::from(c.name())).collect());
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

    async fn in_transaction(conn: &mut SqliteConnection) -> bool {
        match conn.lock_handle().await {
            // SAFETY: the handle is locked for us; sqlite3_get_autocommit
            // only reads the connection's flag.
            Ok(mut h) => unsafe {
                libsqlite3_sys::sqlite3_get_autocommit(h.as_raw_handle().as_ptr()) == 0
            },
            Err(_) => false,
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

    type OutRow = LiteRow;
    type Header = Arc<[Box<str>]>;

    fn names(row: &LiteRow) -> Vec<&str> {
        row.names.iter().map(|n| &**n).collect()
    }

    fn width(row: &LiteRow) -> usize {
        row.values.len()
    }

    fn header(row: &LiteRow) -> Arc<[Box<str>]> {
        Arc::clone(&row.names)
    }

    fn value<'py>(py: Python<'py>, row: &LiteRow, i: usize) -> PyResult<Bound<'py, PyAny>> {
        Ok(match &row.values[i] {
            LiteValue::Null => py.None().into_bound(py),
            LiteValue::Int(v) => v.into_bound_py_any(py)?,
            LiteValue::Real(v) => v.into_bound_py_any(py)?,
            LiteValue::Text(t) => PyString::new(py, t).into_any(),
            LiteValue::Blob(b) => PyBytes::new(py, b).into_any(),
        })
    }

    /// sqlite3's description: the names, the other six fields None.
    fn describe<'py>(py: Python<'py>, header: &Arc<[Box<str>]>) -> PyResult<Bound<'py, PyTuple>> {
        let items = header
            .iter()
            .map(|name| {
                let none = || py.None();
                (&**name, none(), none(), none(), none(), none(), none()).into_bound_py_any(py)
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(py, items)
    }

    fn map_err(e: sqlx::Error) -> Error {
        map_err(e)
    }
}
