//! fastio patch: a whole result set read into one buffer.
//!
//! `MySqlConnection::fetch_raw` runs a statement (text protocol without
//! arguments, a prepared statement with them) and copies the row packets of
//! its first result set back to back into one `Vec<u8>` plus their end
//! offsets: no stream item, `MySqlRow`, `Vec` or `Arc` per row. The caller
//! decodes the rows itself (`RawResult::row`).

use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use sqlx_core::sql_str::{AssertSqlSafe, SqlSafeStr};

use super::executor::recv_next_result_column;
use super::{MySqlConnection, MySqlStream, Waiting};
use crate::error::Error;
use crate::io::MySqlBufExt;
use crate::logger::QueryLogger;
use crate::protocol::response::Status;
use crate::protocol::statement::{Execute as StatementExecute, StmtClose};
use crate::protocol::text::{ColumnDefinition, Query};
use crate::{MySqlArguments, MySqlColumn};

/// The largest payload of one packet; a longer one continues in the next.
const MAX_PAYLOAD: usize = 0xFF_FF_FF;

/// The first result set of a statement, its rows still in wire form.
#[derive(Debug, Default)]
pub struct RawResult {
    /// The first result set's columns (empty for a statement with none).
    pub columns: Arc<Vec<MySqlColumn>>,
    /// Whether the first result was a result set (even with no rows).
    pub has_result_set: bool,
    /// Rows in the binary protocol (prepared statement), else text.
    pub binary: bool,
    /// The row payloads, back to back (multi-packet rows joined).
    pub data: Vec<u8>,
    /// Where each row ends in `data`.
    pub ends: Vec<usize>,
    /// From the first result's OK / EOF packet.
    pub rows_affected: u64,
    pub last_insert_id: u64,
}

impl RawResult {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The payload of row `i`: a text row (a length-encoded string or 0xFB
    /// per column) or a binary row (0x00, NULL bitmap, values).
    pub fn row(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }
}

/// Rows read so far, and whether the last one continues in the next packet.
struct Rows<'a> {
    data: &'a mut Vec<u8>,
    ends: &'a mut Vec<usize>,
    continued: bool,
}

enum Step {
    /// Took every complete row packet in the buffer; read more.
    More,
    /// The next packet ends the result set (OK/EOF) or is an error: left unread.
    End,
}

/// Copies row packets from the read buffer into `rows` until the packet that
/// ends the result set, which is left for `recv_packet`. Cancel-safe: the
/// buffer is only consumed together with the copy.
/// Rows read so far in the first result set, offered after each socket read
/// (a whole row at the end): the callback may take them (leaving the vectors
/// empty) to decode them while the rest is received.
pub type OnRows<'a> =
    dyn FnMut(&Arc<Vec<MySqlColumn>>, &mut Vec<u8>, &mut Vec<usize>) + Send + 'a;

async fn read_rows(
    stream: &mut MySqlStream,
    rows: &mut Rows<'_>,
    on_rows: &mut (dyn FnMut(&mut Vec<u8>, &mut Vec<usize>) + Send),
) -> Result<u64, Error> {
    let mut count = 0u64;
    let mut seq = None;
    loop {
        let step = stream
            .socket
            .try_read(|buf: &mut BytesMut| {
                let mut at = 0;
                let mut step = None;
                while step.is_none() {
                    let rest = &buf[at..];
                    if rest.len() < 4 {
                        step = Some(if at == 0 {
                            ControlFlow::Continue(4)
                        } else {
                            ControlFlow::Break(Step::More)
                        });
                        break;
                    }
                    let len = usize::from(rest[0])
                        | usize::from(rest[1]) << 8
                        | usize::from(rest[2]) << 16;
                    // A row never starts with 0xFE (text: a length of 2^24 or
                    // more needs a full-size first packet; binary: 0x00) nor
                    // 0xFF (an error).
                    if !rows.continued
                        && (1..MAX_PAYLOAD).contains(&len)
                        && matches!(rest.get(4), Some(0xfe | 0xff))
                    {
                        step = Some(if at == 0 {
                            ControlFlow::Break(Step::End)
                        } else {
                            ControlFlow::Break(Step::More)
                        });
                        break;
                    }
                    if rest.len() < 4 + len {
                        step = Some(if at == 0 {
                            ControlFlow::Continue(4 + len)
                        } else {
                            ControlFlow::Break(Step::More)
                        });
                        break;
                    }
                    if !rows.continued && len == 0 {
                        return Err(err_protocol!("empty row packet in a result set"));
                    }
                    seq = Some(rest[3]);
                    rows.data.extend_from_slice(&rest[4..4 + len]);
                    rows.continued = len == MAX_PAYLOAD;
                    if !rows.continued {
                        rows.ends.push(rows.data.len());
                        count += 1;
                    }
                    at += 4 + len;
                }
                if at > 0 {
                    buf.advance(at);
                }
                Ok(step.unwrap_or(ControlFlow::Break(Step::More)))
            })
            .await?;
        if let Some(s) = seq.take() {
            stream.sequence_id = s.wrapping_add(1);
        }
        if let Step::End = step {
            return Ok(count);
        }
        if !rows.continued {
            on_rows(rows.data, rows.ends);
        }
    }
}

async fn read_columns(
    stream: &mut MySqlStream,
    num_columns: usize,
) -> Result<Vec<MySqlColumn>, Error> {
    let mut columns = Vec::with_capacity(num_columns);
    for ordinal in 0..num_columns {
        let def: ColumnDefinition = stream.recv().await?;
        columns.push(recv_next_result_column(&def, ordinal)?);
    }
    stream.maybe_recv_eof().await?;
    Ok(columns)
}

impl MySqlConnection {
    /// fastio patch: runs `sql` (text protocol without `arguments`, else a
    /// prepared statement, cached as `fetch_many` caches it) and returns its
    /// first result set with the rows in one buffer. Later results of a
    /// multi-statement string are read and dropped.
    /// fastio patch: whether a statement without arguments had better run
    /// prepared (binary results, which the server makes with less work than
    /// text): when it is in the statement cache, or it was asked for before
    /// among the last few such statements. A statement run once pays no
    /// prepare round trip.
    pub fn prepare_repeated(&mut self, sql: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let inner = &mut *self.inner;
        if !inner.cache_statement.is_enabled() {
            return false;
        }
        if inner.cache_statement.contains_key(sql) {
            return true;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        sql.hash(&mut h);
        let h = h.finish() | 1;
        if inner.asked.contains(&h) {
            return true;
        }
        inner.asked[inner.asked_next % super::ASKED] = h;
        inner.asked_next = inner.asked_next.wrapping_add(1);
        false
    }

    pub async fn fetch_raw(
        &mut self,
        sql: &str,
        arguments: Option<MySqlArguments>,
    ) -> Result<RawResult, Error> {
        self.fetch_raw_with(sql, arguments, &mut |_, _, _| {}).await
    }

    /// fastio patch: `fetch_raw`, offering the first result set's rows to
    /// `on_rows` as they arrive (see [`OnRows`]); what it leaves is returned.
    pub async fn fetch_raw_with(
        &mut self,
        sql: &str,
        arguments: Option<MySqlArguments>,
        on_rows: &mut OnRows<'_>,
    ) -> Result<RawResult, Error> {
        let mut logger = QueryLogger::new(
            AssertSqlSafe(sql.to_owned()).into_sql_str(),
            self.inner.log_settings.clone(),
        );

        self.inner.stream.wait_until_ready().await?;
        self.inner.stream.waiting.push_back(Waiting::Result);

        // The prepared statement's metadata, for a result set whose column
        // definitions the server left out as unchanged.
        let mut stmt_meta = None;
        let binary = if let Some(arguments) = arguments {
            let cached = self.inner.cache_statement.is_enabled();
            let (id, metadata) = if cached {
                self.get_or_prepare_statement(sql).await?
            } else {
                self.prepare_statement(sql).await?
            };
            if arguments.types.len() != metadata.parameters {
                return Err(err_protocol!(
                    "prepared statement expected {} parameters but {} parameters were provided",
                    metadata.parameters,
                    arguments.types.len()
                ));
            }
            self.inner
                .stream
                .send_packet(StatementExecute {
                    statement: id,
                    arguments: &arguments,
                })
                .await?;
            if !cached {
                self.inner
                    .stream
                    .send_packet(StmtClose { statement: id })
                    .await?;
            }
            stmt_meta = Some(metadata);
            true
        } else {
            self.inner.stream.send_packet(Query(sql)).await?;
            false
        };

        let mut out = RawResult {
            binary,
            ..RawResult::default()
        };
        let mut first = true;
        let (mut spare_data, mut spare_ends) = (Vec::new(), Vec::new());
        loop {
            let mut packet = self.inner.stream.recv_packet().await?;

            if packet[0] == 0x00 || packet[0] == 0xff {
                // OK (ERR was turned into an error by recv_packet): no result set.
                let ok = packet.ok()?;
                self.inner.status_flags = ok.status;
                logger.increase_rows_affected(ok.affected_rows);
                if first {
                    out.rows_affected = ok.affected_rows;
                    out.last_insert_id = ok.last_insert_id;
                    first = false;
                }
                if ok.status.contains(Status::SERVER_MORE_RESULTS_EXISTS) {
                    continue;
                }
                self.inner.stream.waiting.pop_front();
                return Ok(out);
            }

            *self.inner.stream.waiting.front_mut().unwrap() = Waiting::Row;

            let num_columns = packet.get_uint_lenenc()?;
            let num_columns = usize::try_from(num_columns)
                .map_err(|_| err_protocol!("column count overflows usize: {num_columns}"))?;
            let prepared = stmt_meta.is_some();
            let shared = match self.skipped_metadata(&mut packet, &mut stmt_meta).await? {
                Some(meta) => meta.columns,
                None => {
                    let columns = Arc::new(read_columns(&mut self.inner.stream, num_columns).await?);
                    if prepared {
                        self.remember_metadata(sql, &columns, None);
                    }
                    columns
                }
            };

            let mut offer = |_: &mut Vec<u8>, _: &mut Vec<usize>| {};
            let mut offer_first = {
                let shared = Arc::clone(&shared);
                let on_rows = &mut *on_rows;
                move |data: &mut Vec<u8>, ends: &mut Vec<usize>| on_rows(&shared, data, ends)
            };
            let offer: &mut (dyn FnMut(&mut Vec<u8>, &mut Vec<usize>) + Send) = if first {
                &mut offer_first
            } else {
                &mut offer
            };
            let mut rows = if first {
                out.columns = shared;
                out.has_result_set = true;
                Rows {
                    data: &mut out.data,
                    ends: &mut out.ends,
                    continued: false,
                }
            } else {
                spare_data.clear();
                spare_ends.clear();
                Rows {
                    data: &mut spare_data,
                    ends: &mut spare_ends,
                    continued: false,
                }
            };
            let n = read_rows(&mut self.inner.stream, &mut rows, offer).await?;
            for _ in 0..n {
                logger.increment_rows_returned();
            }

            let packet = self.inner.stream.recv_packet().await?;
            let (rows_affected, last_insert_id, status) = if packet.len() < 9 {
                let eof = packet.eof(self.inner.stream.capabilities)?;
                (0, 0, eof.status)
            } else {
                let ok = packet.ok()?;
                (ok.affected_rows, ok.last_insert_id, ok.status)
            };
            self.inner.status_flags = status;
            if first {
                out.rows_affected = rows_affected;
                out.last_insert_id = last_insert_id;
                first = false;
            }
            if status.contains(Status::SERVER_MORE_RESULTS_EXISTS) {
                *self.inner.stream.waiting.front_mut().unwrap() = Waiting::Result;
                continue;
            }
            self.inner.stream.waiting.pop_front();
            return Ok(out);
        }
    }
}
