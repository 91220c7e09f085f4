//! MySQL / MariaDB on sqlx: arguments bound by their Python type, values
//! decoded straight from the wire bytes into aiomysql's Python types on the
//! loop thread, server errors as PyMySQL's classes by errno, and a cancelled
//! query stopped with `KILL CONNECTION`.

use std::str::FromStr;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDate, PyDateTime, PyDelta, PyString, PyTuple};
use pyo3::IntoPyObjectExt;
use sqlx::mysql::{
    MySql, MySqlArguments, MySqlColumn, MySqlConnectOptions, MySqlConnection, MySqlDatabaseError,
    RawResult,
};
use sqlx::{Arguments, AssertSqlSafe, Column, ConnectOptions, Connection, Executor};

use super::ahead::{Ahead, Made, AHEAD_ROWS};
use super::codec::from_python::{decimal_type, uuid_text, Param};
use super::codec::to_python::civil;
use super::codec::{PG_EPOCH_ORDINAL, USECS_PER_DAY};
use super::connection::Session;
use super::postgres::Shape;
use super::record::RecordDesc;
use super::sql::{desc_of, record, status_of, Dialect, SqlOutput};
use crate::errors::{Error, Result};

/// MySQL's limit on placeholders in one prepared statement.
const MAX_PARAMS: usize = 65_535;

/// Parses a `mysql://` / `mariadb://` DSN. The session keeps the server's
/// defaults (sql_mode, time zone), as aiomysql does.
pub(crate) fn options(func: &str, dsn: &str) -> Result<MySqlConnectOptions> {
    let url = match dsn.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => dsn.to_owned(),
    };
    let opts = MySqlConnectOptions::from_str(&url).map_err(|e| {
        let mut msg = e.to_string();
        if let Some(pw) = super::pool::password_of(dsn) {
            msg = msg.replace(&pw, "***");
        }
        Error::InvalidArgument(format!(
            "{func}(): invalid dsn {:?}: {msg}",
            super::pool::redact_dsn(dsn)
        ))
    })?;
    Ok(opts
        .pipes_as_concat(false)
        .no_engine_substitution(false)
        .timezone(None)
        .log_statements(log::LevelFilter::Off))
}

// ----------------------------------------------------------------- errors --

/// A server error: PyMySQL's class for its errno, args `(errno, message)`.
#[derive(Debug)]
pub struct MySqlErrorInfo {
    pub errno: u16,
    pub sqlstate: Option<String>,
    pub message: String,
}

fn dbapi(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static M: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    M.get_or_try_init(py, || Ok(py.import("fastio.dbapi")?.unbind()))
        .map(|m| m.bind(py))
}

pub(crate) fn server_error_to_py(py: Python<'_>, info: MySqlErrorInfo) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let exc = dbapi(py)?.call_method1(
            "_mysql_error",
            (info.errno, info.sqlstate.as_deref(), &info.message),
        )?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// A value that cannot be bound: PyMySQL's ProgrammingError for a MySQL
/// session, sqlite3's for SQLite.
pub(crate) fn bind_error_to_py(py: Python<'_>, msg: String) -> PyErr {
    match dbapi(py).and_then(|m| m.getattr("ProgrammingError")) {
        Ok(cls) => match cls.call1((msg,)) {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

pub(crate) fn map_err(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<MySqlDatabaseError>() {
            Some(my) => Error::MySql(Box::new(MySqlErrorInfo {
                errno: my.number(),
                sqlstate: my.code().map(str::to_owned),
                message: my.message().to_owned(),
            })),
            None => Error::Interface(db.to_string()),
        },
        other => super::postgres::map_err(other, None),
    }
}

// ------------------------------------------------------------- parameters --

/// A native MySQL query written with aiomysql's `%s` / `%(name)s`
/// placeholders (with arguments): rewritten to bound `?` parameters by
/// fastio.mysql's converter (`%%` is `%`; a list expands to `(?, ?, ?)`;
/// named ones take a single dict argument). Other queries pass unchanged.
pub(crate) fn pyformat(query: String, args: &Bound<'_, PyTuple>) -> PyResult<(String, Vec<Param>)> {
    let py = args.py();
    if args.is_empty() || !(query.contains("%s") || query.contains("%(")) {
        return Ok((query, super::connection::params_of(args)?));
    }
    let arg = match args.get_item(0) {
        Ok(first) if args.len() == 1 && first.is_instance_of::<pyo3::types::PyDict>() => first,
        _ => args.clone().into_any(),
    };
    let out = py
        .import("fastio._mysql_params")?
        .getattr("convert")?
        .call1((query, arg))?;
    let (sql, params): (String, Bound<'_, PyTuple>) = out.extract()?;
    Ok((sql, super::connection::params_of(&params)?))
}

/// Binds `params` by their Python type (MySQL converts on the server, as it
/// does for aiomysql's literals).
fn bind(params: &[Param]) -> Result<MySqlArguments> {
    let mut args = MySqlArguments::default();
    for (i, p) in params.iter().enumerate() {
        let p = p.plain();
        let added = match p {
            Param::Null => args.add(None::<i64>),
            Param::Bool(b) => args.add(i64::from(*b)),
            Param::Int(v) => args.add(*v),
            Param::Float(f) => args.add(*f),
            Param::Str(s) | Param::Json(s) | Param::BigInt(s) | Param::Decimal(s) => {
                args.add(s.as_str())
            }
            Param::Bytes(b) => args.add(b.as_slice()),
            Param::Date(days) => args.add(date_text(*days)),
            Param::Time(us) => args.add(clock_text(*us)),
            Param::DateTime { micros } => args.add(datetime_text(*micros)),
            Param::Interval { days, micros } => args.add(interval_text(*days, *micros)),
            Param::Uuid(b) => args.add(uuid_text(b)),
            Param::List(_)
            | Param::Range { .. }
            | Param::Unsupported { .. }
            | Param::Custom { .. } => {
                let what = match p {
                    Param::List(_) => "list".to_owned(),
                    Param::Range { .. } => "range".to_owned(),
                    Param::Unsupported { type_name, .. } => type_name.clone(),
                    _ => "value kept for a codec".to_owned(),
                };
                return Err(Error::Bind(format!(
                    "query argument {} ({}) cannot be bound: a {what} is not a SQL value",
                    i + 1,
                    p.repr()
                )));
            }
        };
        added.map_err(|e| Error::Interface(e.to_string()))?;
    }
    Ok(args)
}

pub(crate) fn date_text(days: i32) -> String {
    let (y, m, d) = civil(i64::from(days) + PG_EPOCH_ORDINAL);
    format!("{y:04}-{m:02}-{d:02}")
}

pub(crate) fn clock_text(us: i64) -> String {
    let (s, frac) = (us / 1_000_000, us % 1_000_000);
    let base = format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
    if frac == 0 {
        base
    } else {
        format!("{base}.{frac:06}")
    }
}

pub(crate) fn datetime_text(micros: i64) -> String {
    let days = micros.div_euclid(USECS_PER_DAY);
    let us = micros.rem_euclid(USECS_PER_DAY);
    format!("{} {}", date_text(days as i32), clock_text(us))
}

fn interval_text(days: i64, micros: i64) -> String {
    let total = days * USECS_PER_DAY + micros;
    let sign = if total < 0 { "-" } else { "" };
    let t = total.unsigned_abs();
    let (s, frac) = (t / 1_000_000, t % 1_000_000);
    format!(
        "{sign}{:02}:{:02}:{:02}.{frac:06}",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

// ---------------------------------------------------------------- queries --

impl Session for MySqlConnection {
    type Key = (Arc<MySqlConnectOptions>, u32);

    fn is_idle(&self) -> bool {
        self.is_ready()
    }

    /// sqlx-mysql reads some replies (COM_STMT_PREPARE's) outside its
    /// pending-reply queue, so a session cut off mid-command is never
    /// trusted again.
    fn clean_after_drop(&self) -> bool {
        false
    }

    async fn drain(&mut self) -> bool {
        matches!(
            tokio::time::timeout(super::postgres::DRAIN_TIMEOUT, self.drain_pending()).await,
            Ok(Ok(()))
        )
    }

    /// `KILL CONNECTION` from a second session so the server stops working
    /// for nobody; the session is closed anyway (see `clean_after_drop`).
    /// Not `KILL QUERY`: the server forgets that one when it reaches the
    /// session before the statement started, and the statement then runs on.
    async fn recover(&mut self, key: Option<Self::Key>) -> bool {
        if let Some((opts, id)) = key {
            let kill = async {
                let opts = (*opts)
                    .clone()
                    .log_slow_statements(log::LevelFilter::Off, std::time::Duration::ZERO);
                let mut c = opts.connect().await?;
                c.execute(AssertSqlSafe(format!("KILL CONNECTION {id}")))
                    .await?;
                c.close().await
            };
            if let Err(e) = tokio::time::timeout(super::postgres::DRAIN_TIMEOUT, kill)
                .await
                .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut))
            {
                log::debug!("KILL CONNECTION {id} failed: {e}");
            }
        }
        false
    }
}

/// A single SELECT with no placeholder: it may run as a prepared statement
/// without arguments (no `;`, which could start a second statement).
fn lone_select(sql: &str) -> bool {
    let head = sql.trim_start().as_bytes();
    head.len() > 6
        && head[..6].eq_ignore_ascii_case(b"SELECT")
        && head[6].is_ascii_whitespace()
        && !sql.contains([';', '?'])
}

/// The position of `VALUES (?, ..., ?)` in a single-row INSERT/REPLACE, as
/// (prefix end, group end), for the multi-row rewrite of executemany.
fn values_group(sql: &str) -> Option<(usize, usize)> {
    let head = sql.trim_start();
    let verb: String = head
        .chars()
        .take(7)
        .collect::<String>()
        .to_ascii_uppercase();
    if !(verb.starts_with("INSERT") || verb.starts_with("REPLACE")) {
        return None;
    }
    let upper = sql.to_ascii_uppercase();
    // The VALUES of the row, not a VALUES() call in ON DUPLICATE KEY UPDATE.
    let head_end = upper.find("ON DUPLICATE").unwrap_or(upper.len());
    let head = &upper[..head_end];
    let at = head.rfind("VALUES").or_else(|| head.rfind("VALUE"))?;
    let open = at + sql[at..].find('(')?;
    if !sql[at..open]
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .trim()
        .is_empty()
    {
        return None;
    }
    let close = open + sql[open..].find(')')?;
    let inner = &sql[open + 1..close];
    if inner.split(',').any(|p| p.trim() != "?") {
        return None;
    }
    let rest = sql[close + 1..].trim().trim_end_matches(';').trim();
    if !(rest.is_empty() || rest.to_ascii_uppercase().starts_with("ON DUPLICATE")) {
        return None;
    }
    Some((open, close + 1))
}

/// A result set as read off the wire (`fetch_raw`), with what decoding
/// each column needs; rows are decoded on the loop thread.
pub(crate) struct RawSet {
    raw: RawResult,
    /// (type code, flags, collation, decimals) per column.
    kinds: Vec<(u8, u16, u16, u8)>,
}

/// One row of a [`RawSet`].
pub(crate) struct MyRow {
    set: Arc<RawSet>,
    index: usize,
}

impl MyRow {
    fn columns(&self) -> &[MySqlColumn] {
        &self.set.raw.columns
    }

    /// Calls `f(column, bytes)` for each value of the row in order (None
    /// for NULL).
    fn each<'a>(
        &'a self,
        mut f: impl FnMut(usize, Option<&'a [u8]>) -> PyResult<()>,
    ) -> PyResult<()> {
        let set = &*self.set;
        let b = set.raw.row(self.index);
        let n = set.kinds.len();
        if !set.raw.binary {
            let mut pos = 0;
            for i in 0..n {
                if *b.get(pos).ok_or_else(|| bad("row"))? == 0xfb {
                    pos += 1;
                    f(i, None)?;
                    continue;
                }
                let len = lenenc(b, &mut pos).ok_or_else(|| bad("row"))?;
                let v = b.get(pos..pos + len).ok_or_else(|| bad("row"))?;
                pos += len;
                f(i, Some(v))?;
            }
            return Ok(());
        }
        // 0x00, the NULL bitmap (offset by 2 bits), then the non-NULL values.
        let nulls = b.get(1..1 + (n + 9) / 8).ok_or_else(|| bad("row"))?;
        let mut pos = 1 + nulls.len();
        for (i, &(code, ..)) in set.kinds.iter().enumerate() {
            if nulls[(i + 2) / 8] & (1 << ((i + 2) % 8)) != 0 {
                f(i, None)?;
                continue;
            }
            let len = match code {
                t::LONGLONG | t::DOUBLE => 8,
                t::LONG | t::INT24 | t::FLOAT => 4,
                t::SHORT | t::YEAR => 2,
                t::TINY => 1,
                t::TIME | t::TIMESTAMP | t::DATE | t::DATETIME => {
                    usize::from(*b.get(pos).ok_or_else(|| bad("row"))?) + 1
                }
                _ => lenenc(b, &mut pos).ok_or_else(|| bad("row"))?,
            };
            let v = b.get(pos..pos + len).ok_or_else(|| bad("row"))?;
            pos += len;
            f(i, Some(v))?;
        }
        Ok(())
    }

    fn decode<'py>(
        &self,
        py: Python<'py>,
        i: usize,
        v: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match v {
            None => Ok(py.None().into_bound(py)),
            Some(bytes) => {
                let (code, flags, collation, decimals) = self.set.kinds[i];
                let column = Kind {
                    code,
                    flags,
                    collation,
                    decimals,
                };
                decode(py, column, bytes, self.set.raw.binary)
            }
        }
    }
}

fn kinds_of(columns: &[MySqlColumn]) -> Vec<(u8, u16, u16, u8)> {
    columns
        .iter()
        .map(|c| {
            let ti = c.type_info();
            (
                ti.type_code(),
                ti.flag_bits(),
                ti.collation_id(),
                ti.decimals(),
            )
        })
        .collect()
}

/// On the loop thread: the rows of `set` as Records (or tuples), after
/// those already made.
fn decode_ahead(
    py: Python<'_>,
    set: &Arc<RawSet>,
    made: &mut Made<Arc<RecordDesc>>,
    tuples: bool,
) -> PyResult<()> {
    if set.raw.is_empty() {
        return Ok(());
    }
    let rows = (0..set.raw.len()).map(|index| MyRow {
        set: Arc::clone(set),
        index,
    });
    made.items.reserve(set.raw.len());
    if tuples {
        for row in rows {
            let values = <MySql as Dialect>::values(py, &row)?;
            made.items
                .push(PyTuple::new(py, values)?.into_any().unbind());
        }
        return Ok(());
    }
    let desc = match &made.state {
        Some(d) => Arc::clone(d),
        None => {
            let first = MyRow {
                set: Arc::clone(set),
                index: 0,
            };
            Arc::clone(made.state.insert(desc_of::<MySql>(py, &first)?))
        }
    };
    for row in rows {
        made.items.push(record::<MySql>(py, &desc, &row)?);
    }
    Ok(())
}

/// A length-encoded integer at `pos` (advanced past it).
fn lenenc(b: &[u8], pos: &mut usize) -> Option<usize> {
    let first = *b.get(*pos)?;
    let width = match first {
        0..=0xfa => {
            *pos += 1;
            return Some(usize::from(first));
        }
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let bytes = b.get(*pos + 1..*pos + 1 + width)?;
    let mut buf = [0u8; 8];
    buf[..width].copy_from_slice(bytes);
    *pos += 1 + width;
    usize::try_from(u64::from_le_bytes(buf)).ok()
}

async fn collect(
    conn: &mut MySqlConnection,
    sql: &str,
    params: &[Param],
    shape: Shape,
) -> Result<SqlOutput<MySql>> {
    let mut out = SqlOutput::new(shape);
    // The text protocol (COM_QUERY) without arguments, as aiomysql: any
    // statement, several in one string. With them, a prepared statement; a
    // lone SELECT without them too once it repeats (the server makes binary
    // rows with a third less work than text: M2 of issue #5).
    let args = if params.is_empty() {
        (lone_select(sql) && conn.prepare_repeated(sql)).then(MySqlArguments::default)
    } else {
        Some(bind(params)?)
    };
    let binary = args.is_some();
    let ahead = if matches!(shape, Shape::All | Shape::Exec) {
        Ahead::new()
    } else {
        None
    };
    let raw = if let Some(ahead) = ahead {
        // A large result is turned into Records (tuples for the DB-API) on
        // the loop thread in pieces while the rest is still being received.
        let tuples = matches!(shape, Shape::Exec);
        let mut on_rows =
            |cols: &Arc<Vec<MySqlColumn>>, data: &mut Vec<u8>, ends: &mut Vec<usize>| {
                if ends.len() < AHEAD_ROWS {
                    return;
                }
                let raw = RawResult {
                    columns: Arc::clone(cols),
                    has_result_set: true,
                    binary,
                    data: std::mem::take(data),
                    ends: std::mem::take(ends),
                    ..RawResult::default()
                };
                let set = Arc::new(RawSet {
                    kinds: kinds_of(&raw.columns),
                    raw,
                });
                ahead.post(move |py, made| decode_ahead(py, &set, made, tuples));
            };
        let raw = conn
            .fetch_raw_with(sql, args, &mut on_rows)
            .await
            .map_err(map_err)?;
        out.ahead = Some(ahead);
        raw
    } else {
        conn.fetch_raw(sql, args).await.map_err(map_err)?
    };
    out.affected = raw.rows_affected;
    out.last_id = raw.last_insert_id;
    if raw.has_result_set && raw.is_empty() {
        // `description` of a result set without rows.
        out.columns = Some(raw.columns.to_vec());
    }
    let kinds = kinds_of(&raw.columns);
    let n = raw.len();
    let set = Arc::new(RawSet { raw, kinds });
    out.rows = (0..n)
        .map(|index| MyRow {
            set: Arc::clone(&set),
            index,
        })
        .collect();
    if matches!(shape, Shape::Status) {
        out.status = status_of(sql, out.affected, out.rows.len());
    }
    Ok(out)
}

impl Dialect for MySql {
    const NAME: &'static str = "mysql";
    const EAGER: bool = true;

    fn key(
        opts: &Arc<MySqlConnectOptions>,
        conn: &MySqlConnection,
    ) -> <MySqlConnection as Session>::Key {
        (Arc::clone(opts), conn.connection_id())
    }

    fn run<'c>(
        conn: &'c mut MySqlConnection,
        sql: &'c str,
        params: &'c [Param],
        shape: Shape,
    ) -> impl std::future::Future<Output = Result<SqlOutput<MySql>>> + Send + 'c {
        collect(conn, sql, params, shape)
    }

    /// INSERT/REPLACE ... VALUES (?, ...) becomes multi-row statements of
    /// up to 65,535 placeholders (aiomysql's rewrite, but bound); anything
    /// else runs once per argument set.
    async fn run_many(conn: &mut MySqlConnection, sql: &str, batch: &[Vec<Param>]) -> Result<()> {
        let width = batch.first().map_or(0, Vec::len);
        match values_group(sql) {
            Some((open, close)) if width > 0 && batch.iter().all(|r| r.len() == width) => {
                let group = &sql[open..close];
                let per = (MAX_PARAMS / width).max(1);
                for chunk in batch.chunks(per) {
                    let mut text = String::with_capacity(sql.len() + chunk.len() * group.len());
                    text.push_str(&sql[..open]);
                    for i in 0..chunk.len() {
                        if i > 0 {
                            text.push(',');
                        }
                        text.push_str(group);
                    }
                    text.push_str(&sql[close..]);
                    let params: Vec<Param> = chunk.iter().flatten().cloned().collect();
                    collect(conn, &text, &params, Shape::Status).await?;
                }
            }
            _ => {
                for params in batch {
                    collect(conn, sql, params, Shape::Status).await?;
                }
            }
        }
        Ok(())
    }

    fn in_transaction(
        conn: &mut MySqlConnection,
    ) -> impl std::future::Future<Output = bool> + Send + '_ {
        std::future::ready(conn.in_transaction_block())
    }

    fn releasable_now(conn: &MySqlConnection) -> bool {
        conn.is_ready() && !conn.in_transaction_block()
    }

    fn server_pid(conn: &MySqlConnection) -> u32 {
        conn.connection_id()
    }

    fn server_info(conn: &MySqlConnection) -> String {
        conn.server_version_text().to_owned()
    }

    fn after_connect(conn: &mut MySqlConnection) {
        conn.set_skip_idle_ping(true);
    }

    type OutRow = MyRow;
    type Header = Vec<MySqlColumn>;

    fn names(row: &MyRow) -> Vec<&str> {
        row.columns().iter().map(|c| c.name()).collect()
    }

    fn width(row: &MyRow) -> usize {
        row.set.kinds.len()
    }

    fn header(row: &MyRow) -> Vec<MySqlColumn> {
        row.columns().to_vec()
    }

    fn value<'py>(py: Python<'py>, row: &MyRow, i: usize) -> PyResult<Bound<'py, PyAny>> {
        let mut found = None;
        row.each(|j, v| {
            if j == i {
                found = Some(v);
            }
            Ok(())
        })?;
        let v = found.ok_or_else(|| bad("row"))?;
        row.decode(py, i, v)
    }

    fn values(py: Python<'_>, row: &MyRow) -> PyResult<Vec<Py<PyAny>>> {
        let mut out = Vec::with_capacity(row.set.kinds.len());
        row.each(|i, v| {
            out.push(row.decode(py, i, v)?.unbind());
            Ok(())
        })?;
        Ok(out)
    }

    fn describe<'py>(py: Python<'py>, columns: &Vec<MySqlColumn>) -> PyResult<Bound<'py, PyTuple>> {
        let items = columns
            .iter()
            .map(|c| {
                let ti = c.type_info();
                let len = ti.max_size_hint().unwrap_or(0);
                let len = match ti.type_code() {
                    t::VAR_STRING | t::VARCHAR | t::STRING => len / mblen(ti.collation_id()),
                    _ => len,
                };
                (
                    c.name(),
                    ti.type_code(),
                    py.None(),
                    len,
                    len,
                    0,
                    ti.flag_bits() & 1 == 0,
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

/// Bytes per character of a collation's charset (for `description` lengths).
fn mblen(collation: u16) -> u32 {
    match collation {
        33 | 83 | 192..=215 | 76 | 223 => 3,
        45 | 46 | 224..=247 | 255..=323 => 4,
        _ => 1,
    }
}

// ----------------------------------------------------------------- values --

/// MySQL wire type codes (pymysql's FIELD_TYPE).
mod t {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
}

const UNSIGNED: u16 = 32;
const BINARY_COLLATION: u16 = 63;

fn bad(what: &str) -> PyErr {
    Error::Interface(format!("malformed {what} value from the server")).into()
}

/// A decimal integer of up to 18 digits (fits any i64), else None.
fn ascii_int(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(if neg { -v } else { v })
}

/// A str from UTF-8 bytes (one validation, CPython's).
fn py_str<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let len = pyo3::ffi::Py_ssize_t::try_from(b.len()).map_err(|_| bad("text"))?;
    // SAFETY: `b` is valid for `len` bytes; the result is a new reference or NULL.
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyUnicode_DecodeUTF8(b.as_ptr().cast(), len, c"strict".as_ptr()),
        )
    }
    .map_err(|_| bad("text"))
}

fn text_str(b: &[u8]) -> PyResult<&str> {
    std::str::from_utf8(b).map_err(|_| bad("text"))
}

fn int_value<'py>(
    py: Python<'py>,
    code: u8,
    unsigned: bool,
    b: &[u8],
    binary: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if !binary {
        if let Some(v) = ascii_int(b) {
            return v.into_bound_py_any(py);
        }
        let s = text_str(b)?;
        return if unsigned {
            s.parse::<u64>()
                .map_err(|_| bad("integer"))?
                .into_bound_py_any(py)
        } else {
            s.parse::<i64>()
                .map_err(|_| bad("integer"))?
                .into_bound_py_any(py)
        };
    }
    let width = match code {
        t::TINY => 1,
        t::SHORT | t::YEAR => 2,
        t::LONG | t::INT24 => 4,
        _ => 8,
    };
    let mut buf = [0u8; 8];
    let src = b.get(..width).ok_or_else(|| bad("integer"))?;
    buf[..width].copy_from_slice(src);
    let raw = u64::from_le_bytes(buf);
    if unsigned || code == t::YEAR {
        return raw.into_bound_py_any(py);
    }
    let shift = 64 - 8 * width as u32;
    (((raw << shift) as i64) >> shift).into_bound_py_any(py)
}

/// The fields of a DATE / DATETIME / TIMESTAMP.
struct Stamp {
    y: i32,
    mo: u8,
    d: u8,
    h: u8,
    mi: u8,
    s: u8,
    us: u32,
}

fn stamp_binary(b: &[u8]) -> PyResult<Stamp> {
    let n = *b.first().ok_or_else(|| bad("date"))? as usize;
    let f = b.get(1..1 + n).ok_or_else(|| bad("date"))?;
    let mut st = Stamp {
        y: 0,
        mo: 0,
        d: 0,
        h: 0,
        mi: 0,
        s: 0,
        us: 0,
    };
    if n >= 4 {
        st.y = i32::from(u16::from_le_bytes([f[0], f[1]]));
        st.mo = f[2];
        st.d = f[3];
    }
    if n >= 7 {
        (st.h, st.mi, st.s) = (f[4], f[5], f[6]);
    }
    if n >= 11 {
        st.us = u32::from_le_bytes([f[7], f[8], f[9], f[10]]);
    }
    Ok(st)
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]` as the server writes it, without
/// splitting strings.
fn stamp_fixed(b: &[u8]) -> Option<Stamp> {
    fn num(d: &[u8]) -> Option<u32> {
        d.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    }
    let date_ok = b.len() >= 10 && b[4] == b'-' && b[7] == b'-';
    if !date_ok {
        return None;
    }
    let mut st = Stamp {
        y: num(&b[0..4])? as i32,
        mo: num(&b[5..7])? as u8,
        d: num(&b[8..10])? as u8,
        h: 0,
        mi: 0,
        s: 0,
        us: 0,
    };
    match b.len() {
        10 => {}
        19.. if b[10] == b' ' && b[13] == b':' && b[16] == b':' => {
            st.h = num(&b[11..13])? as u8;
            st.mi = num(&b[14..16])? as u8;
            st.s = num(&b[17..19])? as u8;
            match b.get(19) {
                None => {}
                Some(b'.') if (21..=26).contains(&b.len()) => {
                    let frac = &b[20..];
                    st.us = num(frac)? * 10u32.pow(6 - frac.len() as u32);
                }
                Some(_) => return None,
            }
        }
        _ => return None,
    }
    Some(st)
}

fn stamp_text(s: &str) -> Option<Stamp> {
    stamp_fixed(s.as_bytes()).or_else(|| stamp_split(s))
}

fn stamp_split(s: &str) -> Option<Stamp> {
    let (date, time) = s.split_once(' ').unwrap_or((s, ""));
    let mut dp = date.splitn(3, '-');
    let y = dp.next()?.parse().ok()?;
    let mo = dp.next()?.parse().ok()?;
    let d = dp.next()?.parse().ok()?;
    let mut st = Stamp {
        y,
        mo,
        d,
        h: 0,
        mi: 0,
        s: 0,
        us: 0,
    };
    if !time.is_empty() {
        let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
        let mut tp = hms.splitn(3, ':');
        st.h = tp.next()?.parse().ok()?;
        st.mi = tp.next()?.parse().ok()?;
        st.s = tp.next()?.parse().ok()?;
        st.us = micros_of(frac)?;
    }
    Some(st)
}

fn micros_of(frac: &str) -> Option<u32> {
    if frac.is_empty() {
        return Some(0);
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    digits.parse().ok()
}

/// DATE / DATETIME as datetime.date / datetime.datetime; a zero or invalid
/// date comes back as its text, as PyMySQL does.
fn stamp_value<'py>(
    py: Python<'py>,
    code: u8,
    b: &[u8],
    binary: bool,
    decimals: u8,
) -> PyResult<Bound<'py, PyAny>> {
    let st = if binary {
        Some(stamp_binary(b)?)
    } else {
        stamp_text(text_str(b)?)
    };
    let made = st.as_ref().and_then(|st| {
        if code == t::DATE {
            PyDate::new(py, st.y, st.mo, st.d).ok().map(Bound::into_any)
        } else {
            PyDateTime::new(py, st.y, st.mo, st.d, st.h, st.mi, st.s, st.us, None)
                .ok()
                .map(Bound::into_any)
        }
    });
    match made {
        Some(v) => Ok(v),
        None if binary => {
            // As the text protocol spells it ('0000-00-00 00:00:00.000000').
            let st = st.ok_or_else(|| bad("date"))?;
            let mut text = format!("{:04}-{:02}-{:02}", st.y, st.mo, st.d);
            if code != t::DATE {
                text.push_str(&format!(" {:02}:{:02}:{:02}", st.h, st.mi, st.s));
                if (1..=6).contains(&decimals) {
                    text.push('.');
                    text.push_str(&format!("{:06}", st.us)[..usize::from(decimals)]);
                }
            }
            Ok(PyString::new(py, &text).into_any())
        }
        None => Ok(PyString::new(py, text_str(b)?).into_any()),
    }
}

/// A binary FLOAT as the text protocol gives it: FLOAT(M,D) with D
/// decimals, otherwise 6 significant digits of its exact value (FLOAT 1.1
/// reads back as 1.1).
fn float_as_text(f: f32, decimals: u8) -> f64 {
    let text = if decimals < 31 {
        format!("{:.*}", usize::from(decimals), f64::from(f))
    } else {
        format!("{:.5e}", f64::from(f))
    };
    text.parse().unwrap_or(f64::from(f))
}

/// TIME as datetime.timedelta (it may be negative or beyond 24 h).
fn time_value<'py>(py: Python<'py>, b: &[u8], binary: bool) -> PyResult<Bound<'py, PyAny>> {
    let (neg, secs, us) = if binary {
        let n = *b.first().ok_or_else(|| bad("time"))? as usize;
        let f = b.get(1..1 + n).ok_or_else(|| bad("time"))?;
        if n == 0 {
            (false, 0i64, 0i64)
        } else {
            let days = i64::from(u32::from_le_bytes([f[1], f[2], f[3], f[4]]));
            let secs =
                days * 86_400 + i64::from(f[5]) * 3600 + i64::from(f[6]) * 60 + i64::from(f[7]);
            let us = if n >= 12 {
                i64::from(u32::from_le_bytes([f[8], f[9], f[10], f[11]]))
            } else {
                0
            };
            (f[0] == 1, secs, us)
        }
    } else {
        let s = text_str(b)?;
        let (neg, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
        let mut p = hms.splitn(3, ':');
        let mut next = || -> PyResult<i64> {
            p.next()
                .and_then(|x| x.parse::<i64>().ok())
                .ok_or_else(|| bad("time"))
        };
        let secs = next()? * 3600 + next()? * 60 + next()?;
        (
            neg,
            secs,
            i64::from(micros_of(frac).ok_or_else(|| bad("time"))?),
        )
    };
    let total = secs * 1_000_000 + us;
    let total = if neg { -total } else { total };
    let days = total.div_euclid(USECS_PER_DAY);
    let rest = total.rem_euclid(USECS_PER_DAY);
    PyDelta::new(
        py,
        days as i32,
        (rest / 1_000_000) as i32,
        (rest % 1_000_000) as i32,
        false,
    )
    .map(Bound::into_any)
}

/// What decoding a column's values needs from its definition.
#[derive(Clone, Copy)]
struct Kind {
    code: u8,
    flags: u16,
    collation: u16,
    /// Fractional-second digits, D of FLOAT(M,D); 31 when not fixed.
    decimals: u8,
}

fn decode<'py>(py: Python<'py>, kind: Kind, b: &[u8], binary: bool) -> PyResult<Bound<'py, PyAny>> {
    let Kind {
        code,
        flags,
        collation,
        decimals,
    } = kind;
    match code {
        t::TINY | t::SHORT | t::LONG | t::INT24 | t::LONGLONG | t::YEAR => {
            int_value(py, code, flags & UNSIGNED != 0, b, binary)
        }
        t::DOUBLE => {
            let v = if binary {
                f64::from_le_bytes(
                    b.get(..8)
                        .and_then(|s| s.try_into().ok())
                        .ok_or_else(|| bad("double"))?,
                )
            } else {
                text_str(b)?.parse().map_err(|_| bad("double"))?
            };
            v.into_bound_py_any(py)
        }
        t::FLOAT => {
            // As the text protocol gives it: FLOAT 1.1 reads back as 1.1.
            let v: f64 = if binary {
                let f = f32::from_le_bytes(
                    b.get(..4)
                        .and_then(|s| s.try_into().ok())
                        .ok_or_else(|| bad("float"))?,
                );
                float_as_text(f, decimals)
            } else {
                text_str(b)?.parse().map_err(|_| bad("float"))?
            };
            v.into_bound_py_any(py)
        }
        t::DECIMAL | t::NEWDECIMAL => decimal_type(py)?.call1((text_str(b)?,)),
        t::NULL => Ok(py.None().into_bound(py)),
        t::DATE | t::DATETIME | t::TIMESTAMP => stamp_value(py, code, b, binary, decimals),
        t::TIME => time_value(py, b, binary),
        t::BIT => Ok(PyBytes::new(py, b).into_any()),
        t::JSON => py_str(py, b),
        _ if collation == BINARY_COLLATION => Ok(PyBytes::new(py, b).into_any()),
        _ => py_str(py, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executemany_rewrite_finds_the_values_group() {
        let sql = "INSERT INTO t (a, b) VALUES (?, ?)";
        let (o, c) = values_group(sql).unwrap();
        assert_eq!(&sql[o..c], "(?, ?)");
        let sql = "insert into t values(?,?) on duplicate key update a=values(a)";
        assert!(values_group(sql).is_some());
        assert!(values_group("UPDATE t SET a = ?").is_none());
        assert!(values_group("INSERT INTO t SELECT * FROM u WHERE a = ?").is_none());
        assert!(values_group("INSERT INTO t VALUES (?, NOW())").is_none());
    }

    #[test]
    fn fixed_stamps_parse_as_split_ones() {
        let key = |st: Stamp| (st.y, st.mo, st.d, st.h, st.mi, st.s, st.us);
        for text in [
            "2024-01-02",
            "2024-01-02 03:04:05",
            "2024-01-02 03:04:05.5",
            "2024-01-02 23:59:59.123456",
            "0000-00-00 00:00:00",
        ] {
            let fast = stamp_fixed(text.as_bytes()).map(key);
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, stamp_split(text).map(key), "{text}");
        }
        for text in [
            "2024-1-2",
            "2024-01-02T03:04:05",
            "2024-01-02 03:04:05.",
            "x",
        ] {
            assert!(stamp_fixed(text.as_bytes()).is_none(), "{text}");
        }
    }

    #[test]
    fn text_forms() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(clock_text(3_723_000_001), "01:02:03.000001");
        assert_eq!(datetime_text(-1), "1999-12-31 23:59:59.999999");
        assert_eq!(interval_text(-1, 0), "-24:00:00.000000");
        assert_eq!(status_of("insert into t values (1)", 1, 0), "INSERT 0 1");
        assert_eq!(status_of("CREATE TABLE x (a int)", 0, 0), "CREATE TABLE");
        assert_eq!(status_of("select 1", 0, 1), "SELECT 1");
    }
}
