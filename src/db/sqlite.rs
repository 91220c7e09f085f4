//! SQLite on sqlx, the embedded default: files in WAL mode with a busy
//! timeout (concurrent writers from one pool wait instead of failing),
//! in-memory databases shared by the pool's connections, values as
//! Python's sqlite3 returns them (by storage class).
//!
//! Reads go through the C API: on a connection's own handle (locked from
//! sqlx's worker), or, for a file pool's own `fetch*`, on its [`Readers`]
//! with cached statements, on the calling (event-loop) thread while short
//! and on a blocking thread past [`LOOP_BUDGET`]. Rows land in one
//! [`Block`] per result (no allocation per value).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libsqlite3_sys as ffi;

use futures::TryStreamExt;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyTuple};
use pyo3::IntoPyObjectExt;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteError, SqliteJournalMode,
};
use sqlx::{
    Arguments, AssertSqlSafe, Column, ConnectOptions, Connection as _, Decode, Either, Executor,
    Row, SqlSafeStr, TypeInfo, ValueRef,
};

use super::codec::from_python::uuid_text;
use super::codec::from_python::Param;
use super::connection::Session;
use super::mysql::{clock_text, date_text, datetime_text};
use super::postgres::Shape;
use super::record::{Record, RecordDesc};
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
    let memory = is_memory(dsn);
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

/// Whether `dsn` names an in-memory database.
pub(crate) fn is_memory(dsn: &str) -> bool {
    dsn.contains(":memory:") || dsn.contains("mode=memory")
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

/// One value of a result, by storage class; text and blobs are ranges of
/// their block's bytes.
#[derive(Clone, Copy)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(usize, usize),
    Blob(usize, usize),
}

/// A result's column names, shared by its rows.
type Names = Arc<[Box<str>]>;

/// The rows of one result in two buffers (cells and bytes): reading
/// allocates nothing per value.
pub(crate) struct Block {
    names: Names,
    width: usize,
    rows: usize,
    cells: Vec<Cell>,
    bytes: Vec<u8>,
}

impl Block {
    fn new(names: Names) -> Self {
        Block {
            width: names.len(),
            names,
            rows: 0,
            cells: Vec::new(),
            bytes: Vec::new(),
        }
    }

    fn push_bytes(&mut self, b: &[u8], text: bool) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(b);
        self.cells.push(if text {
            Cell::Text(at, b.len())
        } else {
            Cell::Blob(at, b.len())
        });
    }

    /// Hands the rows out, sharing the block.
    fn into_rows(self) -> Vec<LiteRow> {
        let (n, width) = (self.rows, self.width);
        let block = Arc::new(self);
        (0..n)
            .map(|r| LiteRow {
                block: Arc::clone(&block),
                at: r * width,
            })
            .collect()
    }

    /// Appends the row `stmt` is on.
    ///
    /// # Safety
    /// `stmt` is a valid statement that has just returned SQLITE_ROW with
    /// `self.width` columns.
    unsafe fn take_row(&mut self, stmt: *mut ffi::sqlite3_stmt) {
        for i in 0..self.width as c_int {
            // SAFETY: i < width while the statement is on a row; text and
            // blob pointers are copied before the next call on the statement.
            unsafe {
                match ffi::sqlite3_column_type(stmt, i) {
                    ffi::SQLITE_INTEGER => self
                        .cells
                        .push(Cell::Int(ffi::sqlite3_column_int64(stmt, i))),
                    ffi::SQLITE_FLOAT => self
                        .cells
                        .push(Cell::Real(ffi::sqlite3_column_double(stmt, i))),
                    kind @ (ffi::SQLITE_TEXT | ffi::SQLITE_BLOB) => {
                        let text = kind == ffi::SQLITE_TEXT;
                        let p: *const u8 = if text {
                            ffi::sqlite3_column_text(stmt, i)
                        } else {
                            ffi::sqlite3_column_blob(stmt, i).cast()
                        };
                        let n = ffi::sqlite3_column_bytes(stmt, i) as usize;
                        let b = if p.is_null() {
                            &[][..]
                        } else {
                            std::slice::from_raw_parts(p, n)
                        };
                        self.push_bytes(b, text);
                    }
                    _ => self.cells.push(Cell::Null),
                }
            }
        }
        self.rows += 1;
    }

    /// The Python object of one cell.
    fn value<'py>(&self, py: Python<'py>, at: usize) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.cells[at] {
            Cell::Null => py.None().into_bound(py),
            Cell::Int(v) => v.into_bound_py_any(py)?,
            Cell::Real(v) => PyFloat::new(py, v).into_any(),
            Cell::Text(at, n) => {
                let b = &self.bytes[at..at + n];
                // SAFETY: a valid buffer; invalid UTF-8 becomes U+FFFD (as
                // sqlite3 with text_factory=str would fail, we stay lenient).
                unsafe {
                    let p = pyo3::ffi::PyUnicode_DecodeUTF8(
                        b.as_ptr().cast(),
                        n as pyo3::ffi::Py_ssize_t,
                        c"replace".as_ptr(),
                    );
                    Bound::from_owned_ptr_or_err(py, p)?
                }
            }
            Cell::Blob(at, n) => PyBytes::new(py, &self.bytes[at..at + n]).into_any(),
        })
    }
}

/// A result row: its place in the result's block.
pub(crate) struct LiteRow {
    block: Arc<Block>,
    at: usize,
}

/// The column names of a statement (as of its last step: a statement
/// re-prepared after a schema change may have other columns).
///
/// # Safety
/// `stmt` is a valid statement.
unsafe fn names_of(stmt: *mut ffi::sqlite3_stmt) -> Names {
    // SAFETY: a valid statement.
    let width = unsafe { ffi::sqlite3_column_count(stmt) };
    (0..width)
        .map(|i| {
            // SAFETY: i < width; the name is copied before the next call.
            let p = unsafe { ffi::sqlite3_column_name(stmt, i) };
            if p.is_null() {
                Box::from("")
            } else {
                // SAFETY: a NUL-terminated UTF-8 name owned by the statement.
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into()
            }
        })
        .collect()
}

/// The connection's current error as an [`Error`].
fn db_error(db: *mut ffi::sqlite3) -> Error {
    // SAFETY: db is a live connection handle used by this thread only.
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
}

/// Prepares `sql` if it is exactly one read-only statement (`Ok(None)`
/// otherwise, the statement finalized).
///
/// # Safety
/// `db` is a live handle that this thread alone uses.
unsafe fn prepare_read(db: *mut ffi::sqlite3, sql: &str) -> Result<Option<*mut ffi::sqlite3_stmt>> {
    let Ok(len) = c_int::try_from(sql.len()) else {
        return Ok(None);
    };
    let mut raw = std::ptr::null_mut();
    let mut tail: *const c_char = std::ptr::null();
    // SAFETY: sql outlives the call; raw and tail are out-parameters.
    let rc = unsafe { ffi::sqlite3_prepare_v2(db, sql.as_ptr().cast(), len, &mut raw, &mut tail) };
    if rc != ffi::SQLITE_OK {
        return Err(db_error(db));
    }
    if raw.is_null() {
        return Ok(None);
    }
    // SAFETY: tail points into sql (or at its end).
    let rest = unsafe { tail.offset_from(sql.as_ptr().cast()) } as usize;
    let single = sql
        .get(rest..)
        .is_none_or(|r| r.trim().trim_matches(';').trim().is_empty());
    // SAFETY: a valid statement.
    if !single || unsafe { ffi::sqlite3_stmt_readonly(raw) } == 0 {
        // SAFETY: finalized once, not used after.
        unsafe { ffi::sqlite3_finalize(raw) };
        return Ok(None);
    }
    Ok(Some(raw))
}

/// Binds `params` to `stmt`; `Ok(false)` when one is not bindable here (or
/// the count is wrong): sqlx's path then reports it.
///
/// # Safety
/// `stmt` is a valid, reset statement of `db`, used by this thread alone.
unsafe fn bind_direct(
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    params: &[Param],
) -> Result<bool> {
    // SAFETY: a valid statement.
    let expected = unsafe { ffi::sqlite3_bind_parameter_count(stmt) } as usize;
    if expected != params.len() {
        return Ok(false);
    }
    for (i, p) in params.iter().enumerate() {
        let at = (i + 1) as c_int;
        let text = |t: &str| -> c_int {
            // SAFETY: SQLITE_TRANSIENT makes SQLite copy the bytes.
            unsafe {
                ffi::sqlite3_bind_text64(
                    stmt,
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
            Param::Null => unsafe { ffi::sqlite3_bind_null(stmt, at) },
            Param::Bool(b) => unsafe { ffi::sqlite3_bind_int64(stmt, at, i64::from(*b)) },
            Param::Int(v) => unsafe { ffi::sqlite3_bind_int64(stmt, at, *v) },
            Param::Float(f) => unsafe { ffi::sqlite3_bind_double(stmt, at, *f) },
            Param::Str(t) | Param::Json(t) | Param::Decimal(t) => text(t),
            Param::Bytes(b) => unsafe {
                ffi::sqlite3_bind_blob64(
                    stmt,
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
            _ => return Ok(false),
        };
        if rc != ffi::SQLITE_OK {
            return Err(db_error(db));
        }
    }
    Ok(true)
}

/// How far stepping a statement got.
enum Stepped {
    /// All rows read (or, for a first-row shape, the first one).
    Done,
    /// Stopped between rows: the deadline passed (or the caller gave up).
    Paused,
    /// Busy or locked before the first row: nothing read.
    Busy,
    /// Interrupted by the progress handler inside a step: start over elsewhere.
    Interrupted,
}

/// Steps `stmt` into `block` (created at the first step, when the
/// statement's columns are final). With `first_only`, stops after one row.
/// Every 64 rows it checks `deadline` and `stop`.
///
/// # Safety
/// `stmt` is a valid, bound statement of `db`, used by this thread alone.
unsafe fn step_into(
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    block: &mut Option<Block>,
    first_only: bool,
    deadline: Option<Instant>,
    stop: Option<&AtomicBool>,
    chunk: usize,
) -> Result<Stepped> {
    let mut n: u32 = 0;
    loop {
        n = n.wrapping_add(1);
        if block.as_ref().is_some_and(|b| b.rows >= chunk) {
            return Ok(Stepped::Paused);
        }
        if n.is_multiple_of(64) {
            let late = deadline.is_some_and(|d| Instant::now() >= d);
            if late || stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Ok(Stepped::Paused);
            }
        }
        // SAFETY: a valid statement.
        let rc = unsafe { ffi::sqlite3_step(stmt) };
        let b = block.get_or_insert_with(|| {
            // SAFETY: a valid statement, just stepped.
            Block::new(unsafe { names_of(stmt) })
        });
        match rc {
            ffi::SQLITE_ROW => {
                // SAFETY: the statement is on a row of b.width columns
                // (the names were read after its first step).
                unsafe { b.take_row(stmt) };
                if first_only {
                    return Ok(Stepped::Done);
                }
            }
            ffi::SQLITE_DONE => return Ok(Stepped::Done),
            rc if matches!(rc & 0xff, ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED) && b.rows == 0 => {
                return Ok(Stepped::Busy)
            }
            ffi::SQLITE_INTERRUPT if deadline.is_some() => return Ok(Stepped::Interrupted),
            _ => return Err(db_error(db)),
        }
    }
}

/// Reads a read-only statement straight through the C API on this thread
/// (no per-row hop through sqlx's worker channel). `None` when the statement
/// is not a single read-only one, or the database was busy: then sqlx runs it.
fn read_direct(
    db: *mut ffi::sqlite3,
    sql: &str,
    params: &[Param],
    first_only: bool,
) -> Result<Option<Block>> {
    struct Stmt(*mut ffi::sqlite3_stmt);
    impl Drop for Stmt {
        fn drop(&mut self) {
            // SAFETY: a statement from sqlite3_prepare_v2, finalized once.
            unsafe { ffi::sqlite3_finalize(self.0) };
        }
    }
    // SAFETY: the caller holds the connection's handle lock.
    let Some(stmt) = (unsafe { prepare_read(db, sql)? }) else {
        return Ok(None);
    };
    let stmt = Stmt(stmt);
    // SAFETY: a fresh statement of db.
    if !unsafe { bind_direct(db, stmt.0, params)? } {
        return Ok(None);
    }
    let mut block = None;
    // SAFETY: a bound statement of db.
    match unsafe { step_into(db, stmt.0, &mut block, first_only, None, None, usize::MAX)? } {
        Stepped::Done => Ok(block),
        _ => Ok(None),
    }
}

/// Puts the rows of `block` into `out` (and the columns, for a result
/// without rows that needs a description).
fn fill(out: &mut SqlOutput<Sqlite>, sql: &str, block: Block) {
    if out.wants_columns(sql) {
        out.columns = Some(Arc::clone(&block.names));
    }
    out.rows = block.into_rows();
}

// ----------------------------------------------------------------- readers --

/// A connection handle that one thread at a time uses.
#[derive(Clone, Copy)]
struct RawDb(*mut ffi::sqlite3);

// SAFETY: SQLite handles may move between threads (SQLite is built
// thread-safe); every use is serialized by the owner (a Reader is used by
// one caller at a time).
unsafe impl Send for RawDb {}

/// A cached prepared statement and when it was last used.
struct Cached {
    stmt: *mut ffi::sqlite3_stmt,
    used: u64,
}

/// A connection of a file database's pool that only answers pool-level
/// reads, through the C API with cached prepared statements. sqlx opened it
/// (same options and `init_sql` as the pool's connections); a task holds its
/// handle lock for as long as the reader lives, so sqlx's worker never
/// touches it meanwhile. Its busy timeout is 0: a read that finds the
/// database locked goes to the pool's connections (which wait off the loop).
pub(crate) struct Reader {
    db: RawDb,
    cache: HashMap<Box<str>, Cached>,
    cap: usize,
    tick: u64,
    /// What the progress handler checks (boxed: the handler holds its address).
    progress: Box<Progress>,
    /// Dropping it lets the holding task release the handle and close.
    _hold: tokio::sync::oneshot::Sender<()>,
}

// SAFETY: the statements and handle belong to this reader alone, and the
// reader is used by one thread at a time (it is moved, never shared).
unsafe impl Send for Reader {}

/// When a reader's running step should be interrupted.
#[derive(Default)]
struct Progress {
    /// The end of a read's time on the loop thread.
    deadline: std::cell::Cell<Option<Instant>>,
    /// Set (through this pointer, while a blocking read runs) when its caller
    /// gave up.
    stop: std::cell::Cell<*const AtomicBool>,
}

/// SQLite's progress callback: interrupts a step that runs past the loop
/// thread's deadline, or whose caller gave up.
extern "C" fn interrupt_if_due(ctx: *mut std::ffi::c_void) -> c_int {
    // SAFETY: ctx is the address of the Reader's boxed Progress, which
    // outlives the handler (removed before the box is freed).
    let p = unsafe { &*(ctx as *const Progress) };
    let late = p.deadline.get().is_some_and(|d| Instant::now() >= d);
    let stop = p.stop.get();
    // SAFETY: a non-null stop points at a flag that lives while it is set.
    let gave_up = !stop.is_null() && unsafe { (*stop).load(Ordering::Relaxed) };
    c_int::from(late || gave_up)
}

impl Reader {
    async fn open(opts: &SqliteConnectOptions, init: &[String], cap: usize) -> Result<Self> {
        let mut conn = opts.connect().await.map_err(map_err)?;
        for sql in init {
            collect(&mut conn, sql, &[], Shape::Status).await?;
        }
        let (give, got) = tokio::sync::oneshot::channel();
        let (hold, held) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            match conn.lock_handle().await {
                Ok(mut h) => {
                    let _ = give.send(Some(RawDb(h.as_raw_handle().as_ptr())));
                    let _ = held.await;
                    drop(h);
                }
                Err(_) => {
                    let _ = give.send(None);
                }
            }
            let _ = conn.close().await;
        });
        let db =
            got.await.ok().flatten().ok_or_else(|| {
                Error::Interface("could not open an SQLite read connection".into())
            })?;
        let reader = Reader {
            db,
            cache: HashMap::new(),
            cap: cap.max(1),
            tick: 0,
            progress: Box::default(),
            _hold: hold,
        };
        // SAFETY: the handle is ours (its lock is held); the context is the
        // boxed cell, which lives as long as the reader (Drop removes the
        // handler first).
        unsafe {
            ffi::sqlite3_busy_timeout(db.0, 0);
            ffi::sqlite3_progress_handler(
                db.0,
                1000,
                Some(interrupt_if_due),
                (&*reader.progress as *const Progress).cast_mut().cast(),
            );
        }
        Ok(reader)
    }

    /// The cached statement for `sql`, prepared if new; `None` when `sql`
    /// is not one read-only SELECT / WITH / VALUES statement.
    fn statement(&mut self, sql: &str) -> Result<Option<*mut ffi::sqlite3_stmt>> {
        self.tick += 1;
        if let Some(c) = self.cache.get_mut(sql) {
            c.used = self.tick;
            return Ok(Some(c.stmt));
        }
        let word = sql
            .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
            .split(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap_or("");
        if !["select", "with", "values"]
            .iter()
            .any(|w| word.eq_ignore_ascii_case(w))
        {
            return Ok(None);
        }
        // SAFETY: the reader's handle, used by this thread alone.
        let Some(stmt) = (unsafe { prepare_read(self.db.0, sql)? }) else {
            return Ok(None);
        };
        if self.cache.len() >= self.cap {
            if let Some(old) = self
                .cache
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone())
            {
                if let Some(c) = self.cache.remove(&old) {
                    // SAFETY: evicted from the cache, never used again.
                    unsafe { ffi::sqlite3_finalize(c.stmt) };
                }
            }
        }
        self.cache.insert(
            sql.into(),
            Cached {
                stmt,
                used: self.tick,
            },
        );
        Ok(Some(stmt))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // SAFETY: the handle is still ours (the holding task waits for
        // `_hold`, dropped after this); every cached statement is finalized
        // once, and the progress handler removed before its context is freed.
        unsafe {
            ffi::sqlite3_progress_handler(self.db.0, 0, None, std::ptr::null_mut());
            for (_, c) in self.cache.drain() {
                ffi::sqlite3_finalize(c.stmt);
            }
        }
    }
}

/// The readers of one file-database pool (at most a few: a read on the
/// loop thread uses one at a time; a long read handed to a blocking thread
/// keeps its own until done).
pub(crate) struct Readers {
    free: std::sync::Mutex<Vec<Reader>>,
    closed: AtomicBool,
    /// Reads answered on the calling thread, for [`Readers::due_to_yield`].
    answered: AtomicU32,
}

/// One read in this many answered on the calling thread is still delivered
/// through the event loop (a yield).
const YIELD_EVERY: u32 = 256;

/// How long a read may run on the event-loop thread before it moves to a
/// blocking thread.
const LOOP_BUDGET: Duration = Duration::from_micros(500);

impl Readers {
    /// Opens `n` readers for a file database (none for an in-memory one:
    /// its connections share a cache, where reads take table locks).
    pub(crate) async fn open(
        opts: &SqliteConnectOptions,
        memory: bool,
        init: &[String],
        n: usize,
        cap: usize,
    ) -> Result<Option<Arc<Self>>> {
        if memory || n == 0 {
            return Ok(None);
        }
        let mut free = Vec::with_capacity(n);
        for _ in 0..n {
            free.push(Reader::open(opts, init, cap).await?);
        }
        Ok(Some(Arc::new(Readers {
            free: std::sync::Mutex::new(free),
            closed: AtomicBool::new(false),
            answered: AtomicU32::new(0),
        })))
    }

    /// Whether this answered read should yield to the event loop.
    pub(crate) fn due_to_yield(&self) -> bool {
        self.answered.fetch_add(1, Ordering::Relaxed) % YIELD_EVERY == YIELD_EVERY - 1
    }

    fn take(&self) -> Option<Reader> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        self.free.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Gives a reader back (closes it if the pool closed meanwhile).
    fn put(&self, r: Reader) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if !self.closed.load(Ordering::Acquire) {
            free.push(r);
            return;
        }
        drop(free);
        drop(r);
    }

    /// Closes the idle readers now, the busy ones when they finish.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let idle = std::mem::take(&mut *self.free.lock().unwrap_or_else(|p| p.into_inner()));
        drop(idle);
    }
}

/// What a pool-level read tried on the calling thread came to.
pub(crate) enum Quick {
    /// Answered.
    Done(Result<SqlOutput<Sqlite>>),
    /// Too long for the loop thread: [`Later::finish`] completes it.
    Later(Later),
    /// Not for a reader (not a plain read, not bindable here, the database
    /// locked, no reader free, ...): a pooled connection runs it.
    Pass,
}

/// A read to continue off the loop thread.
pub(crate) struct Later {
    reader: Reader,
    stmt: *mut ffi::sqlite3_stmt,
    block: Option<Block>,
    /// Set when the read must run again from the start (interrupted inside a step).
    restart: bool,
    first_only: bool,
    shape: Shape,
    sql: String,
    params: Vec<Param>,
}

// SAFETY: the statement belongs to the reader, which moves with it.
unsafe impl Send for Later {}

/// Resets a statement so it holds no read snapshot (and no parameters).
///
/// # Safety
/// `stmt` is a valid statement used by this thread alone.
unsafe fn release(stmt: *mut ffi::sqlite3_stmt) {
    // SAFETY: as the caller promises.
    unsafe {
        ffi::sqlite3_reset(stmt);
        ffi::sqlite3_clear_bindings(stmt);
    }
}

fn output(sql: &str, shape: Shape, block: Option<Block>) -> SqlOutput<Sqlite> {
    let mut out = SqlOutput::new(shape);
    if let Some(b) = block {
        fill(&mut out, sql, b);
    }
    out
}

/// Tries a pool-level read on this thread (the event loop's; call it
/// detached from Python), for at most [`LOOP_BUDGET`].
pub(crate) fn read_now(readers: &Readers, sql: &str, params: &[Param], shape: Shape) -> Quick {
    if matches!(shape, Shape::Status) {
        return Quick::Pass;
    }
    let Some(mut reader) = readers.take() else {
        return Quick::Pass;
    };
    let stmt = match reader.statement(sql) {
        Ok(Some(s)) => s,
        // Not a plain read, or it does not prepare here (a TEMP table of
        // a pool connection, a syntax error): the pool's path reports it.
        Ok(None) | Err(_) => {
            readers.put(reader);
            return Quick::Pass;
        }
    };
    let db = reader.db.0;
    // SAFETY: a reset statement of the reader's handle, on this thread only.
    match unsafe { bind_direct(db, stmt, params) } {
        Ok(true) => {}
        Ok(false) => {
            // SAFETY: as above.
            unsafe { release(stmt) };
            readers.put(reader);
            return Quick::Pass;
        }
        Err(e) => {
            // SAFETY: as above.
            unsafe { release(stmt) };
            readers.put(reader);
            return Quick::Done(Err(e));
        }
    }
    let first_only = matches!(shape, Shape::Row | Shape::Value(_));
    let deadline = Instant::now() + LOOP_BUDGET;
    reader.progress.deadline.set(Some(deadline));
    let mut block = None;
    // SAFETY: a bound statement of the reader's handle.
    let stepped = unsafe {
        step_into(
            db,
            stmt,
            &mut block,
            first_only,
            Some(deadline),
            None,
            usize::MAX,
        )
    };
    reader.progress.deadline.set(None);
    let quick = match stepped {
        Ok(Stepped::Done) => Quick::Done(Ok(output(sql, shape, block))),
        Ok(Stepped::Busy) => Quick::Pass,
        Ok(later @ (Stepped::Paused | Stepped::Interrupted)) => {
            // Paused: go on from here off the loop thread. Interrupted in
            // the middle of a step: start over there.
            let restart = matches!(later, Stepped::Interrupted);
            if restart {
                // SAFETY: as above.
                unsafe { release(stmt) };
                block = None;
            }
            return Quick::Later(Later {
                reader,
                stmt,
                block,
                restart,
                first_only,
                shape,
                sql: sql.to_owned(),
                params: params.to_vec(),
            });
        }
        Err(e) => Quick::Done(Err(e)),
    };
    // SAFETY: as above.
    unsafe { release(stmt) };
    readers.put(reader);
    quick
}

/// Rows per chunk a long `fetch` hands from the reading thread to the one
/// turning rows into Records (the two overlap).
const CHUNK_ROWS: usize = 1024;

/// The answer of a read finished off the loop thread.
pub(crate) enum LiteOut {
    /// Rows still to convert (first-row shapes).
    Output(SqlOutput<Sqlite>),
    /// `fetch`'s list of Records, converted chunk by chunk as rows came in.
    Records(Vec<Py<PyAny>>),
}

impl<'py> IntoPyObject<'py> for LiteOut {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            LiteOut::Output(out) => out.into_pyobject(py),
            LiteOut::Records(items) => Ok(pyo3::types::PyList::new(py, items)?.into_any()),
        }
    }
}

/// Appends the rows of `block` to `records` as Records.
fn records_of(
    py: Python<'_>,
    block: &Block,
    desc: &mut Option<Arc<RecordDesc>>,
    records: &mut Vec<Py<PyAny>>,
) -> PyResult<()> {
    let desc = match desc {
        Some(d) => Arc::clone(d),
        None => {
            let names: Vec<&str> = block.names.iter().map(|n| &**n).collect();
            Arc::clone(desc.insert(RecordDesc::new(py, &names)?))
        }
    };
    let width = block.width;
    // The last text of each column: a row repeating it shares the object.
    let mut last: Vec<Option<Bound<'_, PyAny>>> = vec![None; width];
    records.reserve(block.rows);
    for r in 0..block.rows {
        let at = r * width;
        let mut values = Vec::with_capacity(width);
        for (i, seen) in last.iter_mut().enumerate() {
            let v = match (block.cells[at + i], seen.as_ref()) {
                (Cell::Text(o, n), Some(prev))
                    if r > 0
                        && matches!(block.cells[at - width + i], Cell::Text(po, pn)
                            if pn == n && block.bytes[po..po + n] == block.bytes[o..o + n]) =>
                {
                    prev.clone()
                }
                (Cell::Text(..), _) => {
                    let v = block.value(py, at + i)?;
                    *seen = Some(v.clone());
                    v
                }
                _ => block.value(py, at + i)?,
            };
            values.push(v.unbind());
        }
        records.push(Record::new_py(
            py,
            Arc::clone(&desc),
            values.into_boxed_slice(),
        )?);
    }
    Ok(())
}

impl Later {
    /// Finishes the read on a blocking thread; `stop` set (the awaiting
    /// call was cancelled or timed out) ends it early. For `fetch`, full
    /// chunks go to `chunks` as they fill. The reader goes back to
    /// `readers` either way.
    fn finish(
        mut self,
        readers: &Readers,
        stop: &AtomicBool,
        chunks: Option<tokio::sync::mpsc::Sender<Block>>,
    ) -> Result<Option<Block>> {
        let db = self.reader.db.0;
        let stmt = self.stmt;
        let chunk = if chunks.is_some() {
            CHUNK_ROWS
        } else {
            usize::MAX
        };
        let mut run = || -> Result<Option<Block>> {
            if self.restart {
                // SAFETY: the reader's statement, reset, on this thread only.
                if !unsafe { bind_direct(db, stmt, &self.params)? } {
                    return Err(Error::Interface("could not bind the query again".into()));
                }
            }
            loop {
                // SAFETY: a bound statement of the reader's handle.
                let stepped = unsafe {
                    step_into(
                        db,
                        stmt,
                        &mut self.block,
                        self.first_only,
                        None,
                        Some(stop),
                        chunk,
                    )?
                };
                match stepped {
                    Stepped::Done => return Ok(self.block.take()),
                    Stepped::Paused if stop.load(Ordering::Relaxed) => return Ok(None),
                    Stepped::Paused => {
                        let (Some(full), Some(tx)) = (self.block.take(), chunks.as_ref()) else {
                            return Ok(None);
                        };
                        let mut next = Block::new(Arc::clone(&full.names));
                        next.cells.reserve(full.cells.len());
                        next.bytes.reserve(full.bytes.len());
                        self.block = Some(next);
                        if tx.blocking_send(full).is_err() {
                            return Ok(None);
                        }
                    }
                    Stepped::Busy | Stepped::Interrupted => return Err(db_error(db)),
                }
            }
        };
        self.reader.progress.stop.set(stop);
        let out = run();
        self.reader.progress.stop.set(std::ptr::null());
        // SAFETY: as above.
        unsafe { release(stmt) };
        readers.put(self.reader);
        out
    }

    /// Runs [`Later::finish`] on tokio's blocking pool, within `limit`;
    /// a `fetch` converts each chunk of rows while the next one is read.
    pub(crate) async fn run(
        self,
        readers: Arc<Readers>,
        limit: Option<Duration>,
    ) -> Result<LiteOut> {
        /// Stops the blocking read when the awaiting future is dropped.
        struct StopOnDrop(Arc<AtomicBool>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let guard = StopOnDrop(Arc::clone(&stop));
        let (shape, sql) = (self.shape, self.sql.clone());
        let stream = matches!(shape, Shape::All);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Block>(4);
        let tx = stream.then_some(tx);
        let work = tokio::task::spawn_blocking(move || self.finish(&readers, &stop, tx));
        let joined = async {
            let mut records = Vec::new();
            let mut desc = None;
            let convert = |b: &Block, desc: &mut _, records: &mut _| -> Result<()> {
                tokio::task::block_in_place(|| {
                    Python::attach(|py| records_of(py, b, desc, records)).map_err(Error::from)
                })
            };
            while let Some(b) = rx.recv().await {
                convert(&b, &mut desc, &mut records)?;
            }
            let tail = work
                .await
                .map_err(|e| Error::Interface(format!("the SQLite read failed: {e}")))??;
            if !stream {
                return Ok(LiteOut::Output(output(&sql, shape, tail)));
            }
            if let Some(b) = tail {
                convert(&b, &mut desc, &mut records)?;
            }
            Ok(LiteOut::Records(records))
        };
        let out = match limit {
            None => joined.await,
            Some(d) => match tokio::time::timeout(d, joined).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout(format!(
                    "the query did not complete within {:.3} s (cancelled)",
                    d.as_secs_f64()
                ))),
            },
        };
        drop(guard);
        out
    }
}

/// Appends one value that sqlx read (a statement that writes and returns rows).
fn push_value(b: &mut Block, v: sqlx::sqlite::SqliteValueRef<'_>) -> Result<()> {
    if v.is_null() {
        b.cells.push(Cell::Null);
        return Ok(());
    }
    let fail = |e: sqlx::error::BoxDynError| {
        Error::Interface(format!("could not read an SQLite value: {e}"))
    };
    let kind = v.type_info().name().to_owned();
    match kind.as_str() {
        "INTEGER" => b
            .cells
            .push(Cell::Int(<i64 as Decode<Sqlite>>::decode(v).map_err(fail)?)),
        "REAL" => b.cells.push(Cell::Real(
            <f64 as Decode<Sqlite>>::decode(v).map_err(fail)?,
        )),
        "BLOB" => b.push_bytes(<&[u8] as Decode<Sqlite>>::decode(v).map_err(fail)?, false),
        _ => b.push_bytes(
            <&str as Decode<Sqlite>>::decode(v)
                .map_err(fail)?
                .as_bytes(),
            true,
        ),
    }
    Ok(())
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
        let first_only = matches!(shape, Shape::Row | Shape::Value(_));
        // Reading runs on this tokio worker, so let the runtime move its
        // other tasks elsewhere meanwhile.
        let read = tokio::task::block_in_place(|| read_direct(db, sql, params, first_only))?;
        drop(h);
        if let Some(block) = read {
            fill(&mut out, sql, block);
            return Ok(out);
        }
    }
    // sqlite3 sets lastrowid after INSERT / REPLACE only.
    let inserts = matches!(status_of(sql, 0, 0).as_str(), "INSERT 0 0");
    let mut block: Option<Block> = None;
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
                    let b = block.get_or_insert_with(|| {
                        Block::new(row.columns().iter().map(|c| Box::from(c.name())).collect())
                    });
                    for i in 0..b.width {
                        push_value(b, row.try_get_raw(i).map_err(map_err)?)?;
                    }
                    b.rows += 1;
                }
            }
        }
    }
    if let Some(b) = block {
        out.rows = b.into_rows();
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
    const EAGER: bool = false;

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
        row.block.names.iter().map(|n| &**n).collect()
    }

    fn width(row: &LiteRow) -> usize {
        row.block.width
    }

    fn header(row: &LiteRow) -> Arc<[Box<str>]> {
        Arc::clone(&row.block.names)
    }

    fn value<'py>(py: Python<'py>, row: &LiteRow, i: usize) -> PyResult<Bound<'py, PyAny>> {
        row.block.value(py, row.at + i)
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
