//! PostgreSQL on sqlx: prepare-then-encode queries, raw rows decoded on the
//! event-loop thread, server errors as asyncpg's SQLSTATE classes, and
//! cancellation that reaches the server.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyType};
use pyo3::PyTypeInfo;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgConnection, PgDatabaseError, PgRow,
    PgSeverity, PgTypeInfo, PgTypeKind, PipelinePart,
};
use sqlx::{Arguments, AssertSqlSafe, Column, Either, Executor, Postgres, Row};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ahead::{taken, Ahead, Made, AHEAD_ROWS};
use super::codec::custom::{TypeCodec, TypeCodecs};
use super::codec::from_python::{encode_wire, Param, Wire};
use super::codec::oid;
use super::codec::py_wire::{put_row, PyRows, RowFailure};
use super::codec::to_python::{decode, decode_with, Dec, JsonMode};
use super::multirow::{self, MultiRow};
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

fn wrong_count(expected: usize, passed: usize) -> Error {
    Error::Interface(format!(
        "the server expects {expected} argument{} for this query, {passed} {} passed",
        plural(expected),
        if passed == 1 { "was" } else { "were" },
    ))
}

/// Encodes `params` as the types the server inferred for the statement
/// (a type with a `set_type_codec` codec: its encoder's text, sent as text).
fn bind(
    types: &[(u32, Wire)],
    params: &[Param],
    codecs: Option<&TypeCodecs>,
) -> Result<PgArguments> {
    if types.len() != params.len() {
        return Err(wrong_count(types.len(), params.len()));
    }
    let mut args = PgArguments::default();
    for (i, (p, (ty, wire))) in params.iter().zip(types).enumerate() {
        let ty = *ty;
        let custom = codecs.and_then(|c| c.get(ty));
        let bytes = match (p, custom) {
            (p, _) if matches!(p.plain(), Param::Null) => None,
            (Param::Custom { obj, .. }, Some(codec)) => Some(codec.encode(obj).map_err(|why| {
                Error::Data(format!(
                    "invalid input for query argument ${}: {} ({why})",
                    i + 1,
                    p.repr()
                ))
            })?),
            (_, Some(_)) => {
                // Read before the codec was set (on another connection of
                // the pool, or by a query already on its way).
                return Err(Error::Interface(format!(
                    "query argument ${} has a type whose codec was set by set_type_codec() \
                     after the query was issued; run it again",
                    i + 1
                )));
            }
            (p, None) => {
                let mut buf = Vec::new();
                encode_wire(p, wire, &mut buf).map_err(|why| {
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

/// Prepares `sql` (cached per connection by sqlx) and returns its parameter
/// type OIDs.
pub(crate) async fn param_types(conn: &mut PgConnection, sql: &str) -> Result<Vec<u32>> {
    Ok(param_wires(conn, sql)
        .await?
        .into_iter()
        .map(|(o, _)| o)
        .collect())
}

/// Each parameter's type OID and how a value of it is sent.
async fn param_wires(conn: &mut PgConnection, sql: &str) -> Result<Vec<(u32, Wire)>> {
    let types = conn
        .parameter_types(sql)
        .await
        .map_err(|e| map_err(e, Some(sql)))?;
    Ok(types
        .iter()
        .map(|t| (t.oid().map(|o| o.0).unwrap_or(oid::TEXT), wire_of(t)))
        .collect())
}

/// How a value of type `t` is sent: a domain as its base type, an array of
/// a user-defined type element by element.
pub(crate) fn wire_of(t: &PgTypeInfo) -> Wire {
    let ty = t.oid().map(|o| o.0).unwrap_or(oid::TEXT);
    if oid::is_native(ty) {
        return Wire::As(ty);
    }
    match t.kind() {
        PgTypeKind::Array(elem) => match wire_of(elem) {
            Wire::As(e) => Wire::ArrayOf {
                header: elem.oid().map(|o| o.0).unwrap_or(e),
                elem: e,
            },
            // Arrays of composites are not encoded (the element has no OID wire).
            Wire::Composite(_) => {
                let e = elem.oid().map(|o| o.0).unwrap_or(oid::TEXT);
                Wire::ArrayOf { header: e, elem: e }
            }
            nested => nested,
        },
        PgTypeKind::Composite(fields) => Wire::Composite(
            fields
                .iter()
                .map(|(_, f)| (f.oid().map(|o| o.0).unwrap_or(oid::TEXT), wire_of(f)))
                .collect(),
        ),
        _ => Wire::As(wire_oid(t)),
    }
}

/// The type whose binary format a value of `t` has on the wire: a domain's
/// base type (the server checks the domain's constraints), else `t` itself.
pub(crate) fn wire_oid(t: &PgTypeInfo) -> u32 {
    let ty = t.oid().map(|o| o.0).unwrap_or(oid::TEXT);
    if oid::is_native(ty) {
        return ty;
    }
    match t.kind() {
        PgTypeKind::Domain(base) => wire_oid(base),
        _ => ty,
    }
}

/// asyncpg's InvalidCachedStatementError: a cached statement whose result
/// type changed under it (ALTER TABLE, a column type change).
fn is_stale_statement(e: &Error) -> bool {
    match e {
        Error::Postgres(info) => {
            info.sqlstate() == "0A000" && info.message == "cached plan must not change result type"
        }
        _ => false,
    }
}

/// After a stale cached statement failed: forget every cached statement
/// (others may be stale too), as asyncpg does, and say whether the query
/// may simply run again: outside a transaction block it is, inside one the
/// transaction is already aborted and the error goes to the caller.
async fn forget_stale_statements(conn: &mut PgConnection, e: &Error) -> bool {
    if !is_stale_statement(e) {
        return false;
    }
    if sqlx::Connection::clear_cached_statements(conn)
        .await
        .is_err()
    {
        return false;
    }
    !conn.in_transaction_block()
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

/// A `record_class=` (a Record subclass to build the rows as), shared by
/// the attempts of a query and the pieces of its result.
pub(crate) type RecordCls = Option<Arc<Py<PyType>>>;

/// Rows still in wire form; turned into Python objects on the loop thread.
pub(crate) struct QueryOutput {
    rows: Vec<PgRow>,
    status: String,
    shape: Shape,
    /// How the rows are decoded.
    rows_as: RowsAs,
    /// Records of the leading rows of a `fetch`, made on the loop thread
    /// while the rest was received.
    ahead: Option<Ahead<PgDesc>>,
}

/// Runs one query on `conn`: prepare (cached), encode, execute, collect.
pub(crate) async fn run_query(
    conn: &mut PgConnection,
    sql: &str,
    params: &[Param],
    shape: Shape,
    json: JsonMode,
    persistent: bool,
    cls: &RecordCls,
) -> Result<QueryOutput> {
    let mut rows = Vec::new();
    let mut status = String::new();
    let rows_as = RowsAs {
        json,
        codecs: TypeCodecs::of(conn),
        cls: cls.clone(),
    };
    let mut ahead = None;
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
        let mut retried = false;
        loop {
            // A fresh one per attempt: the pieces of a failed one are dropped.
            ahead = match shape {
                Shape::All => Ahead::new(),
                _ => None,
            };
            let sink = RowSink {
                rows: &mut rows,
                ahead: ahead.as_ref(),
                rows_as: &rows_as,
                spent: Arc::default(),
            };
            match run_prepared(conn, sql, params, persistent, sink).await {
                Ok(tag) => {
                    status = tag;
                    break;
                }
                Err(e) if !retried && forget_stale_statements(conn, &e).await => {
                    retried = true;
                    rows.clear();
                }
                Err(e) => return Err(e),
            }
        }
    }
    conn.count_query();
    Ok(QueryOutput {
        rows,
        status,
        shape,
        rows_as,
        ahead,
    })
}

/// Where `run_prepared` puts the rows: kept in wire form, and when made
/// ahead, handed to the loop thread every `AHEAD_ROWS` rows.
struct RowSink<'a> {
    rows: &'a mut Vec<PgRow>,
    ahead: Option<&'a Ahead<PgDesc>>,
    rows_as: &'a RowsAs,
    /// Pieces the loop thread has made Records of, handed back to be freed
    /// here: the rows were allocated on this thread, and freeing them on the
    /// loop thread cost it time and contended with this one in malloc.
    spent: Arc<std::sync::Mutex<Vec<Vec<PgRow>>>>,
}

impl RowSink<'_> {
    fn push(&mut self, row: PgRow) {
        self.rows.push(row);
        let Some(ahead) = self.ahead else {
            return;
        };
        if self.rows.len() >= AHEAD_ROWS {
            let next = self.spent.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let next = next.map_or_else(
                || Vec::with_capacity(AHEAD_ROWS),
                |mut v| {
                    v.clear();
                    v
                },
            );
            let piece = std::mem::replace(self.rows, next);
            let rows_as = self.rows_as.clone();
            let spent = Arc::clone(&self.spent);
            ahead.post(move |py, made| {
                let made = rows_as.records(py, &piece, made);
                spent.lock().unwrap_or_else(|p| p.into_inner()).push(piece);
                made
            });
        }
    }
}

/// Prepare (cached), bind, execute; rows into `sink`; returns the status.
async fn run_prepared(
    conn: &mut PgConnection,
    sql: &str,
    params: &[Param],
    persistent: bool,
    mut sink: RowSink<'_>,
) -> Result<String> {
    let types = param_wires(conn, sql).await?;
    let args = bind(&types, params, sink.rows_as.codecs.as_deref())?;
    let query = sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(sql.to_owned()));
    let done = conn
        .fetch_rows(query, args, persistent, &mut |row| sink.push(row))
        .await
        .map_err(|e| map_err(e, Some(sql)))?;
    Ok(done.map(|d| d.command_tag().to_owned()).unwrap_or_default())
}

/// `executemany`: one prepare, then every argument set pipelined before a
/// single Sync (one round trip; atomic like asyncpg's). Every row is encoded
/// before anything is sent, so a value that does not fit changes nothing.
pub(crate) async fn run_many(conn: &mut PgConnection, sql: &str, rows: &PyRows) -> Result<()> {
    if Python::attach(|py| rows.len(py)) == 0 {
        return Ok(());
    }
    let codecs = TypeCodecs::of(conn);
    let mut retried = false;
    loop {
        let types = param_wires(conn, sql).await?;
        // Arguments a set_type_codec codec encodes go as text, which only
        // fetch_pipelined sends; the rest go straight from Python to binary.
        let text = codecs
            .as_ref()
            .is_some_and(|c| types.iter().any(|(ty, _)| c.get(*ty).is_some()));
        let sent = if text {
            let args = Python::attach(|py| {
                (0..rows.len(py))
                    .map(|i| {
                        let row = rows.get(py, i)?;
                        let params = row
                            .try_iter()?
                            .map(|v| Param::kept(&v?))
                            .collect::<PyResult<Vec<_>>>()?;
                        bind(&types, &params, codecs.as_deref())
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            conn.fetch_pipelined(sql, args).await.map(drop)
        } else {
            let (data, ends) = Python::attach(|py| encode_rows(py, rows, &types))?;
            let infos: Vec<PgTypeInfo> = types
                .iter()
                .map(|(ty, _)| PgTypeInfo::with_oid(sqlx::postgres::types::Oid(*ty)))
                .collect();
            let multi = MultiRow::of(sql, types.len()).filter(|_| {
                ends.len() >= multirow::MIN_GROUP
                    && conn.statement_cache_capacity() >= MULTIROW_CACHE
            });
            match multi {
                Some(m) => {
                    let parts = multirow_parts(&m, sql, &infos, &data, &ends);
                    let parts: Vec<PipelinePart<'_>> = parts
                        .iter()
                        .map(|(sql, types, rows)| PipelinePart { sql, types, rows })
                        .collect();
                    conn.execute_pipelined_parts(&parts).await.map(drop)
                }
                None => {
                    let blocks = row_blocks(&data, &ends, 1);
                    conn.execute_pipelined(sql, &infos, &blocks).await.map(drop)
                }
            }
        };
        match sent {
            Ok(_) => break,
            Err(e) => {
                let e = map_err(e, Some(sql));
                if retried || !forget_stale_statements(conn, &e).await {
                    return Err(e);
                }
                retried = true;
            }
        }
    }
    conn.count_query();
    Ok(())
}

/// A statement cache smaller than this (PgBouncer setups turn it off) keeps
/// executemany to one statement: the multi-row plan prepares up to nine.
const MULTIROW_CACHE: usize = 16;

/// `data`'s rows (ending at `ends`) as Bind parameter blocks of `group`
/// rows each (the rows of a group are contiguous).
fn row_blocks<'d>(data: &'d [u8], ends: &[usize], group: usize) -> Vec<&'d [u8]> {
    let mut blocks = Vec::with_capacity(ends.len() / group);
    let mut start = 0;
    for end in ends.chunks_exact(group).map(|c| c[group - 1]) {
        blocks.push(&data[start..end]);
        start = end;
    }
    blocks
}

/// A statement's text, its parameter types and its Bind parameter blocks.
type OwnedPart<'d> = (String, Vec<PgTypeInfo>, Vec<&'d [u8]>);

/// The statements of a multi-row executemany ([`multirow::plan`]), each
/// with its parameter types and its groups of rows, in the rows' order.
fn multirow_parts<'d>(
    m: &MultiRow<'_>,
    sql: &str,
    infos: &[PgTypeInfo],
    data: &'d [u8],
    ends: &[usize],
) -> Vec<OwnedPart<'d>> {
    let mut parts = Vec::new();
    let mut done = 0;
    for (group, times) in multirow::plan(ends.len(), infos.len()) {
        let rows = group * times;
        let start = if done == 0 { 0 } else { ends[done - 1] };
        let blocks = row_blocks(
            &data[start..],
            &rebased(&ends[done..done + rows], start),
            group,
        );
        let (text, types) = if group == 1 {
            (sql.to_owned(), infos.to_vec())
        } else {
            (
                m.statement(group),
                infos
                    .iter()
                    .cycle()
                    .take(infos.len() * group)
                    .cloned()
                    .collect(),
            )
        };
        parts.push((text, types, blocks));
        done += rows;
    }
    parts
}

fn rebased(ends: &[usize], start: usize) -> Vec<usize> {
    ends.iter().map(|e| e - start).collect()
}

/// Each row's Bind parameter block, back to back in one buffer, and where
/// each ends.
fn encode_rows(
    py: Python<'_>,
    rows: &PyRows,
    types: &[(u32, Wire)],
) -> Result<(Vec<u8>, Vec<usize>)> {
    let wires: Vec<Wire> = types.iter().map(|(_, w)| w.clone()).collect();
    let n = rows.len(py);
    let mut data = Vec::with_capacity(n * (types.len() * 12));
    let mut ends = Vec::with_capacity(n);
    let mut i = 0;
    while i < rows.len(py) {
        put_row(&rows.get(py, i)?, &wires, &mut data).map_err(|f| match f {
            RowFailure::Py(e) => Error::from(e),
            RowFailure::Len(n) => wrong_count(types.len(), n),
            RowFailure::Value { index, repr, why } => Error::Data(format!(
                "invalid input for query argument ${}: {repr} ({why})",
                index + 1
            )),
        })?;
        ends.push(data.len());
        i += 1;
    }
    Ok((data, ends))
}

/// `fetchmany`: `run_many` that keeps the rows of every execution.
pub(crate) async fn fetch_many(
    conn: &mut PgConnection,
    sql: &str,
    batch: &[Vec<Param>],
    json: JsonMode,
    cls: &RecordCls,
) -> Result<QueryOutput> {
    let codecs = TypeCodecs::of(conn);
    let mut rows = Vec::new();
    let mut retried = false;
    while !batch.is_empty() {
        let types = param_wires(conn, sql).await?;
        let args = batch
            .iter()
            .map(|params| bind(&types, params, codecs.as_deref()))
            .collect::<Result<Vec<_>>>()?;
        match conn.fetch_pipelined(sql, args).await {
            Ok(got) => {
                rows = got;
                break;
            }
            Err(e) => {
                let e = map_err(e, Some(sql));
                if retried || !forget_stale_statements(conn, &e).await {
                    return Err(e);
                }
                retried = true;
            }
        }
    }
    conn.count_query();
    Ok(QueryOutput {
        rows,
        status: String::new(),
        shape: Shape::All,
        rows_as: RowsAs {
            json,
            codecs,
            cls: cls.clone(),
        },
        ahead: None,
    })
}

/// How one result column is turned into a Python object.
enum ColDec {
    Native(Dec),
    /// A type with a `set_type_codec` codec (its value arrives as text).
    Custom(Arc<TypeCodec>),
}

impl ColDec {
    fn of(py: Python<'_>, ti: &PgTypeInfo, codecs: Option<&TypeCodecs>) -> PyResult<ColDec> {
        let ty = ti.oid().map(|o| o.0).unwrap_or(oid::TEXT);
        if let Some(c) = codecs.and_then(|c| c.get(ty)) {
            return Ok(ColDec::Custom(Arc::clone(c)));
        }
        Dec::of(py, ti).map(ColDec::Native)
    }
}

/// What every Record of a result shares: its RecordDesc and how each
/// column is decoded.
type PgDesc = (Arc<RecordDesc>, Vec<ColDec>);

fn record_desc(py: Python<'_>, row: &PgRow, codecs: Option<&TypeCodecs>) -> PyResult<PgDesc> {
    let cols = row.columns();
    let names: Vec<&str> = cols.iter().map(|c| c.name()).collect();
    let decs = cols
        .iter()
        .map(|c| ColDec::of(py, c.type_info(), codecs))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((RecordDesc::new(py, &names)?, decs))
}

fn decode_value<'py>(
    py: Python<'py>,
    row: &PgRow,
    i: usize,
    dec: &ColDec,
    json: JsonMode,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(bytes) = row
        .raw_value(i)
        .ok_or_else(|| PyErr::from(Error::Interface(format!("row has no column {i}"))))?
    else {
        return Ok(py.None().into_bound(py));
    };
    match dec {
        ColDec::Native(Dec::Oid(ty)) => decode(py, *ty, bytes, json),
        ColDec::Native(dec) => decode_with(py, dec, bytes, json),
        ColDec::Custom(codec) => codec.decode(py, bytes),
    }
}

/// How a query's rows become Python objects: json as objects or text, the
/// session's `set_type_codec` codecs, and the Record class.
#[derive(Clone)]
struct RowsAs {
    json: JsonMode,
    codecs: Option<Arc<TypeCodecs>>,
    cls: RecordCls,
}

impl RowsAs {
    /// Appends `rows` as Records to `made` (its state made from the first
    /// row the first time).
    fn records(&self, py: Python<'_>, rows: &[PgRow], made: &mut Made<PgDesc>) -> PyResult<()> {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let (desc, decs) = match &made.state {
            Some(d) => d,
            None => made
                .state
                .insert(record_desc(py, first, self.codecs.as_deref())?),
        };
        let rc = RecordClass::of(py, self.cls.as_deref())?;
        made.items.reserve(rows.len());
        for row in rows {
            made.items
                .push(make_record(py, desc, decs, row, self.json, rc.as_ref())?);
        }
        Ok(())
    }

    /// The first row's Record.
    fn record(&self, py: Python<'_>, row: &PgRow) -> PyResult<Py<PyAny>> {
        let (desc, decs) = record_desc(py, row, self.codecs.as_deref())?;
        let rc = RecordClass::of(py, self.cls.as_deref())?;
        make_record(py, &desc, &decs, row, self.json, rc.as_ref())
    }
}

/// How rows become instances of a Record subclass (`record_class=`):
/// `Record.__new__(cls, record)`, which copies a Record into an instance of
/// `cls` (its `__init__` is not called, as in asyncpg).
struct RecordClass<'py> {
    cls: Bound<'py, PyType>,
    new: Bound<'py, PyAny>,
}

impl<'py> RecordClass<'py> {
    fn of(py: Python<'py>, cls: Option<&Py<PyType>>) -> PyResult<Option<Self>> {
        let Some(cls) = cls else {
            return Ok(None);
        };
        let new = Record::type_object(py).getattr(pyo3::intern!(py, "__new__"))?;
        Ok(Some(RecordClass {
            cls: cls.bind(py).clone(),
            new,
        }))
    }
}

fn make_record(
    py: Python<'_>,
    desc: &Arc<RecordDesc>,
    decs: &[ColDec],
    row: &PgRow,
    json: JsonMode,
    cls: Option<&RecordClass<'_>>,
) -> PyResult<Py<PyAny>> {
    // Sized up front: collecting through `?` would grow it and shrink it
    // again for the boxed slice.
    let mut values = Vec::with_capacity(decs.len());
    for (i, dec) in decs.iter().enumerate() {
        values.push(decode_value(py, row, i, dec, json)?.unbind());
    }
    match cls {
        None => Record::new_py(py, Arc::clone(desc), values.into_boxed_slice()),
        Some(rc) => {
            let record = Record {
                desc: Arc::clone(desc),
                values: values.into_boxed_slice(),
            };
            Ok(rc.new.call1((&rc.cls, Bound::new(py, record)?))?.unbind())
        }
    }
}

impl<'py> IntoPyObject<'py> for QueryOutput {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rows_as = &self.rows_as;
        match self.shape {
            Shape::Status | Shape::Exec => {
                Ok(pyo3::types::PyString::new(py, &self.status).into_any())
            }
            Shape::All => {
                let mut made = taken(self.ahead.as_ref())?;
                rows_as.records(py, &self.rows, &mut made)?;
                Ok(PyList::new(py, made.items)?.into_any())
            }
            Shape::Row => match self.rows.first() {
                None => Ok(py.None().into_bound(py)),
                Some(row) => Ok(rows_as.record(py, row)?.into_bound(py)),
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
                    let dec = ColDec::of(
                        py,
                        row.columns()[col].type_info(),
                        rows_as.codecs.as_deref(),
                    )?;
                    decode_value(py, row, col, &dec, rows_as.json)
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

/// How often the CancelRequest is repeated while a cancelled query has not
/// come back.
const CANCEL_REPEAT: Duration = Duration::from_millis(250);

/// After a query future was dropped mid-flight: cancel on the server, then
/// read the connection back to ReadyForQuery. `false` means it must be closed.
pub(crate) async fn recover(conn: &mut PgConnection, key: Option<CancelKey>) -> bool {
    if conn.is_ready_for_query() {
        return true;
    }
    if let Some(key) = &key {
        if let Err(e) = key.send().await {
            log::debug!("CancelRequest failed: {e}");
        }
    }
    // The server ignores a CancelRequest that reaches the backend before it
    // began the query (it was still reading it), so the cancel is repeated
    // while the drain waits. Each send completes before the drain is polled
    // again: no cancel is still on its way once the connection is handed out.
    let mut drain = std::pin::pin!(tokio::time::timeout(DRAIN_TIMEOUT, conn.drain_pending()));
    let outcome = loop {
        match tokio::time::timeout(CANCEL_REPEAT, &mut drain).await {
            Ok(done) => break done,
            Err(_) => {
                if let Some(key) = &key {
                    if let Err(e) = key.send().await {
                        log::debug!("CancelRequest failed: {e}");
                    }
                }
            }
        }
    };
    match outcome {
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
    records: &PyRows,
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
    let columns = conn
        .result_columns(&probe)
        .await
        .map_err(|e| map_err(e, Some(&probe)))?;
    let types: Vec<Wire> = columns.iter().map(|(_, t)| wire_of(t)).collect();
    let names: Vec<String> = columns.iter().map(|(n, _)| quote_ident(n)).collect();
    let copy_sql = format!(
        "COPY {target} ({}) FROM STDIN (FORMAT binary)",
        names.join(", ")
    );
    let mut data = CopyData::new(records, types, names);
    if conn.in_transaction_block() {
        // Encoded in full before the COPY starts: a value that does not fit
        // leaves the caller's transaction as it was.
        Python::attach(|py| data.encode(py, usize::MAX))?;
        return copy_in(conn, &copy_sql, &[&data.buf]).await;
    }
    // Outside a transaction block a failed COPY changes nothing, so the data
    // is encoded while the server reads what was sent before. The first
    // piece goes out with the COPY statement; the pieces then grow, so that
    // the server has data to read while the next one is encoded.
    let err = |e| map_err(e, Some(&copy_sql));
    Python::attach(|py| data.encode(py, COPY_FIRST_CHUNK))?;
    conn.copy_in_start(&copy_sql, &data.buf)
        .await
        .map_err(err)?;
    let mut limit = COPY_FIRST_CHUNK;
    while !data.done {
        data.buf.clear();
        limit = (limit * 2).min(COPY_CHUNK);
        // The socket rarely makes the task wait: yield so that a timeout or
        // a cancellation stops the COPY here (its data phase then ends with
        // CopyFail), not after all the data went out.
        tokio::task::yield_now().await;
        if let Err(e) = Python::attach(|py| data.encode(py, limit)) {
            let _ = conn.copy_in_abort("invalid input").await;
            let _ = conn.drain_pending().await;
            return Err(e);
        }
        conn.copy_in_send(&data.buf).await.map_err(err)?;
    }
    let tag = conn.copy_in_finish().await.map_err(err)?;
    conn.count_query();
    Ok(tag)
}

/// How much COPY data is encoded (attached to Python) before it is sent: a
/// small first piece, sent with the COPY statement so that the server starts
/// early, then pieces twice as large up to `COPY_CHUNK` (fewer hand-offs;
/// with 64 KiB pieces throughout, a 100,000-row COPY took ~15% longer in
/// about half of the processes measured).
const COPY_FIRST_CHUNK: usize = 32 * 1024;
const COPY_CHUNK: usize = 256 * 1024;

/// The binary COPY data of some records, encoded a chunk at a time: header,
/// each row as its field count and fields, trailer.
struct CopyData<'a> {
    records: &'a PyRows,
    types: Vec<Wire>,
    names: Vec<String>,
    buf: Vec<u8>,
    next: usize,
    done: bool,
}

impl<'a> CopyData<'a> {
    fn new(records: &'a PyRows, types: Vec<Wire>, names: Vec<String>) -> Self {
        let mut buf = Vec::with_capacity(COPY_CHUNK + (1 << 16));
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        CopyData {
            records,
            types,
            names,
            buf,
            next: 0,
            done: false,
        }
    }

    /// Appends rows to `buf` until it holds `limit` bytes or the rows run
    /// out (then the trailer too).
    fn encode(&mut self, py: Python<'_>, limit: usize) -> Result<()> {
        let rows = self.records;
        let count = (self.types.len() as i16).to_be_bytes();
        while self.next < rows.len(py) && self.buf.len() < limit {
            let row_no = self.next;
            let row = rows.get(py, row_no)?;
            self.buf.extend_from_slice(&count);
            put_row(&row, &self.types, &mut self.buf).map_err(|f| match f {
                RowFailure::Py(e) => Error::from(e),
                RowFailure::Len(n) => Error::Data(format!(
                    "copy_records_to_table(): record {row_no} has {n} values, the table has {} columns",
                    self.types.len()
                )),
                RowFailure::Value { index, repr, why } => Error::Data(format!(
                    "invalid input for column {} of record {row_no}: {repr} ({why})",
                    self.names[index]
                )),
            })?;
            self.next += 1;
        }
        if self.next >= rows.len(py) && !self.done {
            self.buf.extend_from_slice(&(-1i16).to_be_bytes());
            self.done = true;
        }
        Ok(())
    }
}

/// `COPY ... FROM STDIN` with `chunks` as the data; returns the status
/// string ('COPY 3').
pub(crate) async fn copy_in(
    conn: &mut PgConnection,
    copy_sql: &str,
    chunks: &[&[u8]],
) -> Result<String> {
    let err = |e| map_err(e, Some(copy_sql));
    // Sent in pieces: each becomes CopyData messages. The first goes out
    // with the COPY statement.
    let mut pieces = chunks.iter().flat_map(|c| c.chunks(COPY_CHUNK));
    conn.copy_in_start(copy_sql, pieces.next().unwrap_or_default())
        .await
        .map_err(err)?;
    for piece in pieces {
        // As in `copy_records`: a cancellation stops the data here.
        tokio::task::yield_now().await;
        conn.copy_in_send(piece).await.map_err(err)?;
    }
    let tag = conn.copy_in_finish().await.map_err(err)?;
    conn.count_query();
    Ok(tag)
}

/// Where `COPY ... TO STDOUT` data goes.
pub(crate) enum CopySink {
    /// A file, written from tokio.
    Path(String),
    /// Collected and handed to Python.
    Memory(Vec<u8>),
}

/// `COPY ... TO STDOUT` into `sink`; returns the status string ('COPY 3').
pub(crate) async fn copy_out(
    conn: &mut PgConnection,
    copy_sql: &str,
    sink: &mut CopySink,
) -> Result<String> {
    let err = |e| map_err(e, Some(copy_sql));
    let mut file = match sink {
        CopySink::Path(p) => Some(tokio::io::BufWriter::new(
            tokio::fs::File::create(p.as_str()).await?,
        )),
        CopySink::Memory(_) => None,
    };
    conn.copy_out_start(copy_sql).await.map_err(err)?;
    let tag = loop {
        match conn.copy_out_next().await.map_err(err)? {
            Ok(data) => match (&mut file, &mut *sink) {
                (Some(f), _) => f.write_all(&data).await?,
                (None, CopySink::Memory(buf)) => buf.extend_from_slice(&data),
                (None, CopySink::Path(_)) => {}
            },
            Err(tag) => break tag,
        }
    };
    if let Some(mut f) = file {
        f.flush().await?;
    }
    conn.count_query();
    Ok(tag)
}

/// `query` with `$n` replaced by the arguments as SQL literals, for
/// statements that take no parameters (COPY), as asyncpg does: the server
/// infers the argument types, then quotes each value as a literal of its type.
pub(crate) async fn mogrify(
    conn: &mut PgConnection,
    query: &str,
    params: &[Param],
) -> Result<String> {
    if params.is_empty() {
        return Ok(query.to_owned());
    }
    let types = param_wires(conn, query).await?;
    let args = bind(&types, params, None)?;
    let select = format!(
        "SELECT {}",
        (1..=types.len())
            .map(|i| format!("quote_nullable(${i}::text)"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let row = sqlx::query_with(AssertSqlSafe(select.clone()), args)
        .persistent(false)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| map_err(e, Some(&select)))?;
    let literals = (0..types.len())
        .map(|i| row.try_get::<String, _>(i))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| map_err(e, None))?;
    Ok(substitute_params(query, &literals))
}

/// Replaces `$n` outside quoted strings and identifiers with `values[n-1]`.
fn substitute_params(query: &str, values: &[String]) -> String {
    let bytes = query.as_bytes();
    let mut out =
        String::with_capacity(query.len() + values.iter().map(String::len).sum::<usize>());
    let mut i = 0;
    let mut quote: Option<u8> = None;
    let mut last = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'$'
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')) =>
            {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let n: Option<usize> = query[i + 1..i + 1 + digits].parse().ok();
                if let Some(v) = n.and_then(|n| n.checked_sub(1)).and_then(|n| values.get(n)) {
                    out.push_str(&query[last..i]);
                    out.push_str(v);
                    i += 1 + digits;
                    last = i;
                    continue;
                }
            }
            None => {}
        }
        i += 1;
    }
    out.push_str(&query[last..]);
    out
}

/// asyncpg's reset query, run when a connection handed out by
/// `Pool.acquire()` goes back: roll back an open transaction, release
/// advisory locks, close cursors, stop listening, and reset every `SET` to
/// the connection's defaults (the server settings it was opened with stay).
/// `false` means the connection is unusable and must be closed.
pub(crate) async fn reset_session(conn: &mut PgConnection) -> bool {
    const RESET: &str = "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;";
    let sql = if conn.in_transaction_block() {
        "ROLLBACK;\nSELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;"
    } else {
        RESET
    };
    let run = async {
        let mut stream = conn.fetch_many(sqlx::raw_sql(AssertSqlSafe(sql)));
        while stream.try_next().await?.is_some() {}
        Ok::<_, sqlx::Error>(())
    };
    matches!(tokio::time::timeout(DRAIN_TIMEOUT, run).await, Ok(Ok(())))
        && conn.is_ready_for_query()
}

#[cfg(test)]
mod tests {
    use super::substitute_params;

    #[test]
    fn params_are_replaced_outside_quotes() {
        let v = vec!["'a''b'".to_owned(), "42".to_owned()];
        assert_eq!(
            substitute_params("SELECT $1, '$2', \"$1\", x$1, $2, $12, $3", &v),
            "SELECT 'a''b', '$2', \"$1\", x$1, 42, $12, $3"
        );
    }
}
