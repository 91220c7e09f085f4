use std::fmt::{self, Debug, Formatter};
use std::future::Future;

pub(crate) use sqlx_core::connection::*;
use sqlx_core::sql_str::SqlSafeStr;
pub(crate) use stream::{MySqlStream, Waiting};
pub use raw::{OnRows, RawResult};

use crate::collation::Collation;
use crate::common::StatementCache;
use crate::error::Error;
use crate::protocol::response::Status;
use crate::protocol::statement::StmtClose;
use crate::protocol::text::{Ping, Quit};
use crate::statement::MySqlStatementMetadata;
use crate::transaction::Transaction;
use crate::{MySql, MySqlConnectOptions};

mod auth;
mod establish;
mod executor;
// fastio patch: a whole result set read into one buffer.
mod raw;
mod stream;
mod tls;

const MAX_PACKET_SIZE: u32 = 1024;

/// The charset parameter sent in the `Protocol::HandshakeResponse41` packet.
///
/// This becomes the default if `set_names = false`,
/// and also ensures that any error messages returned before `SET NAMES` are encoded correctly.
#[allow(clippy::cast_possible_truncation)]
const INITIAL_CHARSET: u8 = Collation::UTF8MB4_GENERAL_CI.0 as u8;

/// A connection to a MySQL database.
pub struct MySqlConnection {
    pub(crate) inner: Box<MySqlConnectionInner>,
}

/// fastio patch: how many statements without arguments `prepare_repeated`
/// remembers.
pub(crate) const ASKED: usize = 32;

pub(crate) struct MySqlConnectionInner {
    // underlying TCP stream,
    // wrapped in a potentially TLS stream,
    // wrapped in a buffered stream
    pub(crate) stream: MySqlStream,

    // transaction status
    pub(crate) transaction_depth: usize,
    status_flags: Status,

    // fastio patch: see `set_skip_idle_ping`.
    pub(crate) skip_idle_ping: bool,

    // fastio patch: see `prepare_repeated`.
    pub(crate) asked: [u64; ASKED],
    pub(crate) asked_next: usize,

    // cache by query string to the statement id and metadata
    cache_statement: StatementCache<(u32, MySqlStatementMetadata)>,

    log_settings: LogSettings,
}

impl MySqlConnection {
    pub(crate) fn in_transaction(&self) -> bool {
        self.inner
            .status_flags
            .intersects(Status::SERVER_STATUS_IN_TRANS)
    }

    /// fastio patch: whether the server reported an open transaction in its
    /// last OK/EOF packet (SERVER_STATUS_IN_TRANS).
    pub fn in_transaction_block(&self) -> bool {
        self.in_transaction()
    }

    /// fastio patch: whether the connection is between commands, with
    /// nothing pending on the wire.
    pub fn is_ready(&self) -> bool {
        self.inner.stream.waiting.is_empty() && self.inner.stream.write_buffer().is_empty()
    }

    /// fastio patch: read (and drop) what a dropped command left pending.
    pub async fn drain_pending(&mut self) -> Result<(), Error> {
        self.inner.stream.wait_until_ready().await
    }

    /// fastio patch: the server's version string from the handshake.
    pub fn server_version_text(&self) -> &str {
        &self.inner.stream.server_version_text
    }

    /// fastio patch: the connection (thread) id, as `CONNECTION_ID()`.
    pub fn connection_id(&self) -> u32 {
        self.inner.stream.connection_id
    }

    /// fastio patch: make `ping()` answer at once, without a round trip,
    /// while nothing is pending (sqlx's pool pings on every release).
    pub fn set_skip_idle_ping(&mut self, skip: bool) {
        self.inner.skip_idle_ping = skip;
    }
}

impl Debug for MySqlConnection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlConnection").finish()
    }
}

impl Connection for MySqlConnection {
    type Database = MySql;

    type Options = MySqlConnectOptions;

    async fn close(mut self) -> Result<(), Error> {
        self.inner.stream.send_packet(Quit).await?;
        self.inner.stream.shutdown().await?;

        Ok(())
    }

    async fn close_hard(mut self) -> Result<(), Error> {
        self.inner.stream.shutdown().await?;
        Ok(())
    }

    async fn ping(&mut self) -> Result<(), Error> {
        // fastio patch: see `set_skip_idle_ping`.
        if self.inner.skip_idle_ping && self.is_ready() {
            return Ok(());
        }
        self.inner.stream.wait_until_ready().await?;
        self.inner.stream.send_packet(Ping).await?;
        self.inner.stream.recv_ok().await?;

        Ok(())
    }

    #[doc(hidden)]
    fn flush(&mut self) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        self.inner.stream.wait_until_ready()
    }

    fn cached_statements_size(&self) -> usize {
        self.inner.cache_statement.len()
    }

    async fn clear_cached_statements(&mut self) -> Result<(), Error> {
        while let Some((statement_id, _)) = self.inner.cache_statement.remove_lru() {
            self.inner
                .stream
                .send_packet(StmtClose {
                    statement: statement_id,
                })
                .await?;
        }

        Ok(())
    }

    #[doc(hidden)]
    fn should_flush(&self) -> bool {
        !self.inner.stream.write_buffer().is_empty()
    }

    fn begin(
        &mut self,
    ) -> impl Future<Output = Result<Transaction<'_, Self::Database>, Error>> + Send + '_ {
        Transaction::begin(self, None)
    }

    fn begin_with(
        &mut self,
        statement: impl SqlSafeStr,
    ) -> impl Future<Output = Result<Transaction<'_, Self::Database>, Error>> + Send + '_
    where
        Self: Sized,
    {
        Transaction::begin(self, Some(statement.into_sql_str()))
    }

    fn shrink_buffers(&mut self) {
        self.inner.stream.shrink_buffers();
    }
}
