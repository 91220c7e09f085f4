use std::collections::BTreeMap;
use std::fmt::{self, Debug, Formatter};
use std::future::Future;
use std::sync::Arc;

use crate::HashMap;

use crate::common::StatementCache;
use crate::error::Error;
use crate::ext::ustr::UStr;
use crate::io::StatementId;
use crate::message::{
    BackendMessageFormat, Close, Query, ReadyForQuery, ReceivedMessage, Terminate,
    TransactionStatus,
};
use crate::statement::PgStatementMetadata;
use crate::transaction::Transaction;
use crate::types::Oid;
use crate::{PgConnectOptions, PgTypeInfo, Postgres};

pub(crate) use sqlx_core::connection::*;
use sqlx_core::sql_str::SqlSafeStr;

pub use self::stream::PgStream;

#[cfg(feature = "offline")]
mod describe;
mod establish;
mod executor;
pub use self::executor::PipelinePart;
mod fastio_ext;
mod resolve;
mod sasl;
mod stream;
mod tls;

/// A connection to a PostgreSQL database.
///
/// See [`PgConnectOptions`] for connection URL reference.
pub struct PgConnection {
    pub(crate) inner: Box<PgConnectionInner>,
}

pub struct PgConnectionInner {
    // underlying TCP or UDS stream,
    // wrapped in a potentially TLS stream,
    // wrapped in a buffered stream
    pub(crate) stream: PgStream,

    // process id of this backend
    // used to send cancel requests
    #[allow(dead_code)]
    process_id: u32,

    // secret key of this backend
    // used to send cancel requests
    #[allow(dead_code)]
    secret_key: u32,

    // fastio patch: see `set_skip_idle_ping`.
    pub(crate) skip_idle_ping: bool,

    // fastio patch: see `take_fresh` and `count_query`.
    pub(crate) fastio_fresh: bool,
    pub(crate) fastio_queries: u64,
    // fastio patch: a COPY FROM STDIN was started and neither finished nor
    // aborted (see `drain_pending`).
    pub(crate) fastio_copy_in: bool,

    // fastio patch: see `set_fastio_codecs` (fastio_ext.rs).
    pub(crate) fastio_codecs: Option<Arc<dyn std::any::Any + Send + Sync>>,
    pub(crate) fastio_text_oids: Vec<u32>,

    // sequence of statement IDs for use in preparing statements
    // in PostgreSQL, the statement is prepared to a user-supplied identifier
    next_statement_id: StatementId,

    // cache statement by query string to the id and columns
    cache_statement: StatementCache<(StatementId, Arc<PgStatementMetadata>)>,

    // cache user-defined types by id <-> info
    cache_type_info: HashMap<Oid, PgTypeInfo>,
    cache_type_oid: HashMap<UStr, Oid>,
    cache_elem_type_to_array: HashMap<Oid, Oid>,
    cache_table_data: HashMap<Oid, TableData>,

    // number of ReadyForQuery messages that we are currently expecting
    pub(crate) pending_ready_for_query_count: usize,

    // current transaction status
    transaction_status: TransactionStatus,
    pub(crate) transaction_depth: usize,

    log_settings: LogSettings,
}

pub(crate) struct TableData {
    table_name: Arc<str>,
    /// Attribute number -> name.
    columns: BTreeMap<i16, Arc<str>>,
}

impl PgConnection {
    /// fastio patch: `(process_id, secret_key)` of this backend, for a
    /// CancelRequest sent from another socket.
    pub fn backend_key_data(&self) -> (u32, u32) {
        (self.inner.process_id, self.inner.secret_key)
    }

    /// fastio patch: make `ping()` answer at once, without a round trip, while
    /// the connection is at ReadyForQuery (sqlx's pool pings on every release).
    pub fn set_skip_idle_ping(&mut self, skip: bool) {
        self.inner.skip_idle_ping = skip;
    }

    /// fastio patch: `true` the first time it is called on this connection
    /// (a pool runs its `init` hook on connections it has not seen yet).
    pub fn take_fresh(&mut self) -> bool {
        std::mem::replace(&mut self.inner.fastio_fresh, false)
    }

    /// fastio patch: counts one query run on this connection and returns the
    /// count so far (a pool's `max_queries` replaces it after that many).
    pub fn count_query(&mut self) -> u64 {
        self.inner.fastio_queries += 1;
        self.inner.fastio_queries
    }

    /// fastio patch: how many queries `count_query` has counted.
    pub fn query_count(&self) -> u64 {
        self.inner.fastio_queries
    }

    /// fastio patch: whether the connection is between queries, with nothing
    /// pending on the wire.
    pub fn is_ready_for_query(&self) -> bool {
        self.inner.pending_ready_for_query_count == 0
    }

    /// the version number of the server in `libpq` format
    pub fn server_version_num(&self) -> Option<u32> {
        self.inner.stream.server_version_num
    }

    // will return when the connection is ready for another query
    /// fastio patch: reads and discards everything still owed by the server
    /// (rows, errors) up to the last pending ReadyForQuery, so a connection
    /// whose query future was dropped mid-flight can be used again.
    /// A COPY FROM STDIN left in its data phase is ended with CopyFail (the
    /// server waits for more data otherwise, and a CancelRequest does not
    /// reach a backend waiting for it).
    pub async fn drain_pending(&mut self) -> Result<(), Error> {
        if std::mem::take(&mut self.inner.fastio_copy_in) {
            self.inner
                .stream
                .write_msg(crate::message::CopyFail::new("the COPY was cancelled"))?;
        }
        if !self.inner.stream.write_buffer_mut().is_empty() {
            self.inner.stream.flush().await?;
        }
        while self.inner.pending_ready_for_query_count > 0 {
            match self.inner.stream.recv().await {
                Ok(message) => {
                    if let BackendMessageFormat::ReadyForQuery = message.format {
                        self.handle_ready_for_query(message)?;
                    }
                }
                Err(Error::Database(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// fastio patch: whether the last ReadyForQuery reported an open
    /// (or failed) transaction block.
    pub fn in_transaction_block(&self) -> bool {
        !matches!(
            self.inner.transaction_status,
            crate::message::TransactionStatus::Idle
        )
    }

    pub(crate) async fn wait_until_ready(&mut self) -> Result<(), Error> {
        if !self.inner.stream.write_buffer_mut().is_empty() {
            self.inner.stream.flush().await?;
        }

        while self.inner.pending_ready_for_query_count > 0 {
            let message = self.inner.stream.recv().await?;

            if let BackendMessageFormat::ReadyForQuery = message.format {
                self.handle_ready_for_query(message)?;
            }
        }

        Ok(())
    }

    async fn recv_ready_for_query(&mut self) -> Result<(), Error> {
        let r: ReadyForQuery = self.inner.stream.recv_expect().await?;

        self.inner.pending_ready_for_query_count -= 1;
        self.inner.transaction_status = r.transaction_status;

        Ok(())
    }

    #[inline(always)]
    pub(crate) fn handle_ready_for_query(&mut self, message: ReceivedMessage) -> Result<(), Error> {
        self.inner.pending_ready_for_query_count = self
            .inner
            .pending_ready_for_query_count
            .checked_sub(1)
            .ok_or_else(|| err_protocol!("received more ReadyForQuery messages than expected"))?;

        self.inner.transaction_status = message.decode::<ReadyForQuery>()?.transaction_status;

        Ok(())
    }

    /// Queue a simple query (not prepared) to execute the next time this connection is used.
    ///
    /// Used for rolling back transactions and releasing advisory locks.
    #[inline(always)]
    pub(crate) fn queue_simple_query(&mut self, query: &str) -> Result<(), Error> {
        self.inner.stream.write_msg(Query(query))?;
        self.inner.pending_ready_for_query_count += 1;

        Ok(())
    }

    pub(crate) fn in_transaction(&self) -> bool {
        match self.inner.transaction_status {
            TransactionStatus::Transaction => true,
            TransactionStatus::Error | TransactionStatus::Idle => false,
        }
    }
}

impl Debug for PgConnection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection").finish()
    }
}

impl Connection for PgConnection {
    type Database = Postgres;

    type Options = PgConnectOptions;

    async fn close(mut self) -> Result<(), Error> {
        // The normal, graceful termination procedure is that the frontend sends a Terminate
        // message and immediately closes the connection.

        // On receipt of this message, the backend closes the
        // connection and terminates.
        self.inner.stream.send(Terminate).await?;
        self.inner.stream.shutdown().await?;

        Ok(())
    }

    async fn close_hard(mut self) -> Result<(), Error> {
        self.inner.stream.shutdown().await?;

        Ok(())
    }

    async fn ping(&mut self) -> Result<(), Error> {
        // Users were complaining about this showing up in query statistics on the server.
        // By sending a comment we avoid an error if the connection was in the middle of a rowset
        // self.execute("/* SQLx ping */").map_ok(|_| ()).boxed()

        // fastio patch: the pool pings every connection it gets back; fastio
        // only releases connections at ReadyForQuery, so skip the round trip.
        if self.inner.skip_idle_ping && self.inner.pending_ready_for_query_count == 0 {
            return Ok(());
        }

        // The simplest call-and-response that's possible.
        self.write_sync();
        self.wait_until_ready().await
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

    fn cached_statements_size(&self) -> usize {
        self.inner.cache_statement.len()
    }

    async fn clear_cached_statements(&mut self) -> Result<(), Error> {
        self.inner.cache_type_oid.clear();

        let mut cleared = 0_usize;

        self.wait_until_ready().await?;

        while let Some((id, _)) = self.inner.cache_statement.remove_lru() {
            self.inner.stream.write_msg(Close::Statement(id))?;
            cleared += 1;
        }

        if cleared > 0 {
            self.write_sync();
            self.inner.stream.flush().await?;

            self.wait_for_close_complete(cleared).await?;
            self.recv_ready_for_query().await?;
        }

        Ok(())
    }

    fn shrink_buffers(&mut self) {
        self.inner.stream.shrink_buffers();
    }

    #[doc(hidden)]
    fn flush(&mut self) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        self.wait_until_ready()
    }

    #[doc(hidden)]
    fn should_flush(&self) -> bool {
        !self.inner.stream.write_buffer().is_empty()
    }
}

// Implement `AsMut<Self>` so that `PgConnection` can be wrapped in
// a `PgAdvisoryLockGuard`.
//
// See: https://github.com/launchbadge/sqlx/issues/2520
impl AsMut<PgConnection> for PgConnection {
    fn as_mut(&mut self) -> &mut PgConnection {
        self
    }
}
