//! PostgreSQL on sqlx: prepare-then-encode queries, raw rows decoded on the
//! event-loop thread, server errors as asyncpg's SQLSTATE classes, and
//! cancellation that reaches the server.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList};
use pyo3::IntoPyObjectExt;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgConnection, PgDatabaseError, PgRow,
    PgSeverity, PgTypeInfo,
};
use sqlx::{Arguments, AssertSqlSafe, Column, Either, Executor, Postgres, Row, TypeInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::codec::from_python::{encode, Param};
use super::codec::oid;
use super::codec::to_python::{decode, JsonMode};
use super::record::{Record, RecordDesc};
use crate::errors::{Error, Result};

// ----------------------------------------------------------------- errors --

/// The fields of a server ErrorResponse, as asyncpg names them.
#[derive(Debug)]
pub struct PgErrorInfo {
    pub message: String,
    fields: Vec<(&'static str, String)>,
    query: Option<String>,
}

fn severity_name(s: PgSeverity) -> &'static str {
    match s {
        PgSeverity::Panic => "PANIC",
        PgSeverity::Fatal => "FATAL",
        PgSeverity::Error => "ERROR",
        PgSeverity::Warning => "WARNING",
        PgSeverity::Notice => "NOTICE",
        PgSeverity::Debug => "DEBUG",
        PgSeverity::Info => "INFO",
        PgSeverity::Log => "LOG",
    }
}

impl PgErrorInfo {
    fn from_db(e: &PgDatabaseError, query: Option<&str>) -> Self {
        let mut fields: Vec<(&'static str, String)> = vec![
            ("severity", severity_name(e.severity()).to_owned()),
            ("severity_en", severity_name(e.severity()).to_owned()),
            ("sqlstate", e.code().to_owned()),
            ("message", e.message().to_owned()),
        ];
        let mut opt = |k: &'static str, v: Option<&str>| {
            if let Some(v) = v {
                fields.push((k, v.to_owned()));
            }
        };
        opt("detail", e.detail());
        opt("hint", e.hint());
        opt("context", e.r#where());
        opt("schema_name", e.schema());
        opt("table_name", e.table());
        opt("column_name", e.column());
        opt("data_type_name", e.data_type());
        opt("constraint_name", e.constraint());
        opt("server_source_filename", e.file());
        opt("server_source_function", e.routine());
        if let Some(line) = e.line() {
            fields.push(("server_source_line", line.to_string()));
        }
        match e.position() {
            Some(sqlx::postgres::PgErrorPosition::Original(p)) => {
                fields.push(("position", p.to_string()))
            }
            Some(sqlx::postgres::PgErrorPosition::Internal { position, query }) => {
                fields.push(("internal_position", position.to_string()));
                fields.push(("internal_query", query.to_owned()));
            }
            None => {}
        }
        PgErrorInfo {
            message: e.message().to_owned(),
            fields,
            query: query.map(str::to_owned),
        }
    }

    pub fn sqlstate(&self) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| *k == "sqlstate")
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

fn pg_exceptions(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static M: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    M.get_or_try_init(py, || Ok(py.import("fastio.pg_exceptions")?.unbind()))
        .map(|m| m.bind(py))
}

/// The asyncpg-named exception of a server error, its fields as attributes.
pub(crate) fn server_error_to_py(py: Python<'_>, info: PgErrorInfo) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let fields = PyDict::new(py);
        for (k, v) in &info.fields {
            fields.set_item(*k, v)?;
        }
        let exc = pg_exceptions(py)?.call_method1("_new", (fields, info.query.as_deref()))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// asyncpg's `DataError` for a query argument that does not fit its type.
pub(crate) fn data_error_to_py(py: Python<'_>, msg: String) -> PyErr {
    match pg_exceptions(py).and_then(|m| m.getattr("DataError")) {
        Ok(cls) => match cls.call1((msg,)) {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// Maps a sqlx error; never includes the DSN (sqlx errors do not carry it).
pub(crate) fn map_err(e: sqlx::Error, query: Option<&str>) -> Error {
    match e {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<PgDatabaseError>() {
            Some(pg) => Error::Postgres(Box::new(PgErrorInfo::from_db(pg, query))),
            None => Error::Interface(db.to_string()),
        },
        sqlx::Error::PoolTimedOut => {
            Error::Timeout("timed out waiting for a connection from the pool".into())
        }
        sqlx::Error::PoolClosed => Error::Interface("the pool is closed".into()),
        sqlx::Error::Io(e) => Error::Connection(format!("connection error: {e}")),
        sqlx::Error::Tls(e) => Error::Connection(format!("TLS error: {e}")),
        sqlx::Error::Configuration(e) => Error::InvalidArgument(format!("bad configuration: {e}")),
        sqlx::Error::Protocol(e) => Error::Interface(format!("protocol error: {e}")),
        other => Error::Interface(other.to_string()),
    }
}

// ------------------------------------------------------------- parameters --

/// A parameter already in its binary wire form, typed by the server's OID.
struct RawParam {
    oid: u32,
    bytes: Option<Vec<u8>>,
}

impl sqlx::Type<Postgres> for RawParam {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(oid::TEXT))
    }
}

impl sqlx::Encode<'_, Postgres> for RawParam {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> std::result::Result<IsNull, BoxDynError> {
        match &self.bytes {
            Some(b) => {
                buf.extend_from_slice(b);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(PgTypeInfo::with_oid(sqlx::postgres::types::Oid(self.oid)))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Encodes `params` as the types the server inferred for the statement.
fn bind(types: &[u32], params: &[Param]) -> Result<PgArguments> {
    if types.len() != params.len() {
        return Err(Error::Interface(format!(
            "the server expects {} argument{} for this query, {} {} passed",
            types.len(),
            plural(types.len()),
            params.len(),
            if params.len() == 1 { "was" } else { "were" },
        )));
    }
    let mut args = PgArguments::default();
    for (i, (p, &ty)) in params.iter().zip(types).enumerate() {
        let bytes = match p {
            Param::Null => None,
            p => {
                let mut buf = Vec::new();
                encode(p, ty, &mut buf).map_err(|why| {
                    Error::Data(format!(
                        "invalid input for query argument ${}: {} ({why})",
                        i + 1,
                        p.repr()
                    ))
                })?;
                Some(buf)
            }
        };
        args.add(RawParam { oid: ty, bytes })
            .map_err(|e| Error::Interface(e.to_string()))?;
    }
    Ok(args)
}

/// Prepares `sql` (cached per connection by sqlx) and returns its parameter types.
pub(crate) async fn param_types(conn: &mut PgConnection, sql: &str) -> Result<Vec<u32>> {
    let types = conn
        .parameter_types(sql)
        .await
        .map_err(|e| map_err(e, Some(sql)))?;
    Ok(types
        .iter()
        .map(|t| t.oid().map(|o| o.0).unwrap_or(oid::TEXT))
        .collect())
}

// ---------------------------------------------------------------- queries --

/// What a query call returns to Python.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Shape {
    /// `fetch`: a list of Records.
    All,
    /// `fetchrow`: the first Record or None.
    Row,
    /// `fetchval`: one column of the first row, or None.
    Value(usize),
    /// `execute`: the status string.
    Status,
    /// The DB-API compat layers' `(description, rows, rowcount, lastrowid)`
    /// (MySQL and SQLite; never asked of PostgreSQL).
    Exec,
}

/// Rows still in wire form; turned into Python objects on the loop thread.
pub(crate) struct QueryOutput {
    rows: Vec<PgRow>,
    status: String,
    shape: Shape,
    json: JsonMode,
}

/// Runs one query on `conn`: prepare (cached), encode, execute, collect.
pub(crate) async fn run_query(
    conn: &mut PgConnection,
    sql: &str,
    params: &[Param],
    shape: Shape,
    json: JsonMode,
    persistent: bool,
) -> Result<QueryOutput> {
    let mut rows = Vec::new();
    let mut status = String::new();
    if params.is_empty() && matches!(shape, Shape::Status) {
        // asyncpg runs argument-less execute() with the simple query
        // protocol: several statements allowed, the last status returned.
        let mut stream = conn.fetch_many(sqlx::raw_sql(AssertSqlSafe(sql.to_owned())));
        while let Some(item) = stream.try_next().await.map_err(|e| map_err(e, Some(sql)))? {
            if let Either::Left(done) = item {
                status = done.command_tag().to_owned();
            }
        }
    } else {
        let types = param_types(conn, sql).await?;
        let args = bind(&types, params)?;
        let query = sqlx::query_with(AssertSqlSafe(sql.to_owned()), args).persistent(persistent);
        let mut stream = conn.fetch_many(query);
        while let Some(item) = stream.try_next().await.map_err(|e| map_err(e, Some(sql)))? {
            match item {
                Either::Left(done) => status = done.command_tag().to_owned(),
                Either::Right(row) => rows.push(row),
            }
        }
    }
    Ok(QueryOutput {
        rows,
        status,
        shape,
        json,
    })
}

/// `executemany`: one prepare, then every argument set pipelined before a
/// single Sync (one round trip; atomic like asyncpg's).
pub(crate) async fn run_many(
    conn: &mut PgConnection,
    sql: &str,
    batch: &[Vec<Param>],
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let types = param_types(conn, sql).await?;
    let args = batch
        .iter()
        .map(|params| bind(&types, params))
        .collect::<Result<Vec<_>>>()?;
    conn.execute_pipelined(sql, args)
        .await
        .map_err(|e| map_err(e, Some(sql)))?;
    Ok(())
}

fn record_desc(py: Python<'_>, row: &PgRow) -> PyResult<(Arc<RecordDesc>, Vec<u32>)> {
    let cols = row.columns();
    let names: Vec<&str> = cols.iter().map(|c| c.name()).collect();
    let types = cols
        .iter()
        .map(|c| {
            c.type_info().oid().map(|o| o.0).unwrap_or_else(|| {
                // Named-only type infos only come from our own parameters.
                let _ = c.type_info().name();
                oid::TEXT
            })
        })
        .collect();
    Ok((RecordDesc::new(py, &names)?, types))
}

fn decode_value<'py>(
    py: Python<'py>,
    row: &PgRow,
    i: usize,
    ty: u32,
    json: JsonMode,
) -> PyResult<Bound<'py, PyAny>> {
    use sqlx::ValueRef;
    let raw = row
        .try_get_raw(i)
        .map_err(|e| PyErr::from(map_err(e, None)))?;
    if raw.is_null() {
        return Ok(py.None().into_bound(py));
    }
    let bytes = raw
        .as_bytes()
        .map_err(|e| PyErr::from(Error::Interface(e.to_string())))?;
    decode(py, ty, bytes, json)
}

fn make_record(
    py: Python<'_>,
    desc: &Arc<RecordDesc>,
    types: &[u32],
    row: &PgRow,
    json: JsonMode,
) -> PyResult<Py<PyAny>> {
    let values = types
        .iter()
        .enumerate()
        .map(|(i, &ty)| decode_value(py, row, i, ty, json).map(Bound::unbind))
        .collect::<PyResult<Vec<_>>>()?;
    Record {
        desc: Arc::clone(desc),
        values: values.into_boxed_slice(),
    }
    .into_py_any(py)
}

impl<'py> IntoPyObject<'py> for QueryOutput {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = self.json;
        match self.shape {
            Shape::Status | Shape::Exec => {
                Ok(pyo3::types::PyString::new(py, &self.status).into_any())
            }
            Shape::All => {
                let Some(first) = self.rows.first() else {
                    return Ok(PyList::empty(py).into_any());
                };
                let (desc, types) = record_desc(py, first)?;
                let items = self
                    .rows
                    .iter()
                    .map(|row| make_record(py, &desc, &types, row, json))
                    .collect::<PyResult<Vec<_>>>()?;
                Ok(PyList::new(py, items)?.into_any())
            }
            Shape::Row => match self.rows.first() {
                None => Ok(py.None().into_bound(py)),
                Some(row) => {
                    let (desc, types) = record_desc(py, row)?;
                    Ok(make_record(py, &desc, &types, row, json)?.into_bound(py))
                }
            },
            Shape::Value(col) => match self.rows.first() {
                None => Ok(py.None().into_bound(py)),
                Some(row) => {
                    let n = row.columns().len();
                    if col >= n {
                        return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                            "fetchval(): column index {col} out of range (the result has {n} column{})",
                            plural(n)
                        )));
                    }
                    let ty = row.columns()[col]
                        .type_info()
                        .oid()
                        .map(|o| o.0)
                        .unwrap_or(oid::TEXT);
                    decode_value(py, row, col, ty, json)
                }
            },
        }
    }
}

// ----------------------------------------------------------- cancellation --

/// Where to send a CancelRequest for one backend.
#[derive(Clone)]
pub(crate) struct CancelKey {
    pub(crate) opts: Arc<PgConnectOptions>,
    pub(crate) pid: u32,
    pub(crate) secret: u32,
}

impl CancelKey {
    pub(crate) fn of(opts: &Arc<PgConnectOptions>, conn: &PgConnection) -> Self {
        let (pid, secret) = conn.backend_key_data();
        CancelKey {
            opts: Arc::clone(opts),
            pid,
            secret,
        }
    }

    /// Sends a CancelRequest on a new socket (the protocol's out-of-band
    /// cancel, what asyncpg does) and waits for the server to close it.
    pub(crate) async fn send(&self) -> std::io::Result<()> {
        let mut msg = [0u8; 16];
        msg[0..4].copy_from_slice(&16i32.to_be_bytes());
        msg[4..8].copy_from_slice(&80_877_102i32.to_be_bytes());
        msg[8..12].copy_from_slice(&self.pid.to_be_bytes());
        msg[12..16].copy_from_slice(&self.secret.to_be_bytes());
        let port = self.opts.get_port();
        let host = self.opts.get_host();
        let socket = match self.opts.get_socket() {
            Some(p) => Some(p.join(format!(".s.PGSQL.{port}"))),
            None if host.starts_with('/') => {
                Some(std::path::Path::new(host).join(format!(".s.PGSQL.{port}")))
            }
            None => None,
        };
        let mut sink = [0u8; 64];
        match socket {
            Some(path) => {
                let mut s = tokio::net::UnixStream::connect(path).await?;
                s.write_all(&msg).await?;
                let _ = s.read(&mut sink).await;
            }
            None => {
                let mut s = tokio::net::TcpStream::connect((host, port)).await?;
                s.write_all(&msg).await?;
                let _ = s.read(&mut sink).await;
            }
        }
        Ok(())
    }
}

/// How long a connection whose query was cancelled may take to come back
/// to ReadyForQuery before it is closed instead.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// After a query future was dropped mid-flight: cancel on the server, then
/// read the connection back to ReadyForQuery. `false` means it must be closed.
pub(crate) async fn recover(conn: &mut PgConnection, key: Option<CancelKey>) -> bool {
    if conn.is_ready_for_query() {
        return true;
    }
    if let Some(key) = key {
        if let Err(e) = key.send().await {
            log::debug!("CancelRequest failed: {e}");
        }
    }
    match tokio::time::timeout(DRAIN_TIMEOUT, conn.drain_pending()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            log::debug!("closing a connection that failed to recover after cancellation: {e}");
            false
        }
        Err(_) => {
            log::debug!("closing a connection that did not recover after cancellation");
            false
        }
    }
}

// ------------------------------------------------------------------- COPY --

/// `"name"` with embedded quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `copy_records_to_table`: binary COPY of `records` into `table`, each value
/// encoded as its column's type. Returns asyncpg's status string ('COPY n').
pub(crate) async fn copy_records(
    conn: &mut PgConnection,
    table: &str,
    schema: Option<&str>,
    columns: Option<&[String]>,
    records: &[Vec<Param>],
) -> Result<String> {
    let target = match schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(table)),
        None => quote_ident(table),
    };
    let cols = match columns {
        Some(c) if !c.is_empty() => c
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "*".to_owned(),
    };
    // The column types (and, without `columns`, the names) from a statement
    // that reads nothing.
    let probe = format!("SELECT {cols} FROM {target} LIMIT 0");
    let stmt = conn
        .prepare(sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(probe.clone())))
        .await
        .map_err(|e| map_err(e, Some(&probe)))?;
    let types: Vec<u32> = sqlx::Statement::columns(&stmt)
        .iter()
        .map(|c| c.type_info().oid().map(|o| o.0).unwrap_or(oid::TEXT))
        .collect();
    let names: Vec<String> = sqlx::Statement::columns(&stmt)
        .iter()
        .map(|c| quote_ident(c.name()))
        .collect();
    let mut data = Vec::with_capacity(19 + records.len() * (2 + types.len() * 12));
    data.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    data.extend_from_slice(&0i32.to_be_bytes());
    data.extend_from_slice(&0i32.to_be_bytes());
    for (row_no, row) in records.iter().enumerate() {
        if row.len() != types.len() {
            return Err(Error::Data(format!(
                "copy_records_to_table(): record {row_no} has {} values, the table has {} columns",
                row.len(),
                types.len()
            )));
        }
        data.extend_from_slice(&(types.len() as i16).to_be_bytes());
        for (i, (p, &ty)) in row.iter().zip(&types).enumerate() {
            if let Param::Null = p {
                data.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            let at = data.len();
            data.extend_from_slice(&0i32.to_be_bytes());
            encode(p, ty, &mut data).map_err(|why| {
                Error::Data(format!(
                    "invalid input for column {} of record {row_no}: {} ({why})",
                    names[i],
                    p.repr()
                ))
            })?;
            let len = (data.len() - at - 4) as i32;
            data[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
    data.extend_from_slice(&(-1i16).to_be_bytes());
    let copy_sql = format!(
        "COPY {target} ({}) FROM STDIN (FORMAT binary)",
        names.join(", ")
    );
    let mut copy = conn
        .copy_in_raw(&copy_sql)
        .await
        .map_err(|e| map_err(e, Some(&copy_sql)))?;
    // Sent in chunks: sqlx frames each send as one CopyData message.
    for chunk in data.chunks(1 << 20) {
        copy.send(chunk)
            .await
            .map_err(|e| map_err(e, Some(&copy_sql)))?;
    }
    let n = copy
        .finish()
        .await
        .map_err(|e| map_err(e, Some(&copy_sql)))?;
    Ok(format!("COPY {n}"))
}
