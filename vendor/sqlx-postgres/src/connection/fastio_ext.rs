//! fastio patch: per-connection text-format codecs (asyncpg's
//! `set_type_codec`) and pipelined fetches (asyncpg's `fetchmany`).

use std::any::Any;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::error::Error;
use crate::io::PortalId;
use crate::message::{self, BackendMessageFormat, Bind, DataRow};
use crate::statement::PgStatementMetadata;
use crate::{PgArguments, PgConnection, PgRow, PgTypeInfo, PgValueFormat};
use sqlx_core::arguments::Arguments;

const BINARY: &[PgValueFormat] = &[PgValueFormat::Binary];

impl PgConnection {
    /// fastio patch: attaches `codecs` (opaque to sqlx, kept for the caller)
    /// to this connection; from now on, parameters and result columns of the
    /// types in `text_oids` are exchanged in text format.
    pub fn set_fastio_codecs(
        &mut self,
        codecs: Option<Arc<dyn Any + Send + Sync>>,
        text_oids: Vec<u32>,
    ) {
        self.inner.fastio_codecs = codecs;
        self.inner.fastio_text_oids = text_oids;
    }

    /// fastio patch: how many prepared statements the cache holds (0 when
    /// it is off).
    pub fn statement_cache_capacity(&self) -> usize {
        self.inner.cache_statement.capacity()
    }

    /// fastio patch: what `set_fastio_codecs` attached.
    pub fn fastio_codecs(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.inner.fastio_codecs.as_ref()
    }

    /// fastio patch: the Bind message's parameter and result format codes:
    /// binary, except text for the types with a text codec.
    pub(crate) fn fastio_formats(
        &self,
        metadata: &PgStatementMetadata,
    ) -> (
        Cow<'static, [PgValueFormat]>,
        Cow<'static, [PgValueFormat]>,
    ) {
        let text = &self.inner.fastio_text_oids;
        if text.is_empty() {
            return (Cow::Borrowed(BINARY), Cow::Borrowed(BINARY));
        }
        let is_text = |t: &PgTypeInfo| t.oid().is_some_and(|o| text.contains(&o.0));
        let pick = |t: &PgTypeInfo| {
            if is_text(t) {
                PgValueFormat::Text
            } else {
                PgValueFormat::Binary
            }
        };
        let params = if metadata.parameters.iter().any(is_text) {
            Cow::Owned(metadata.parameters.iter().map(pick).collect())
        } else {
            Cow::Borrowed(BINARY)
        };
        let results = if metadata.columns.iter().any(|c| is_text(&c.type_info)) {
            Cow::Owned(metadata.columns.iter().map(|c| pick(&c.type_info)).collect())
        } else {
            Cow::Borrowed(BINARY)
        };
        (params, results)
    }

    /// fastio patch: runs one prepared statement once per argument set, as
    /// `execute_pipelined` does (one implicit transaction, chunks ended by a
    /// Flush, replies read while the next chunk is on its way), and returns
    /// the rows of every execution in order.
    pub async fn fetch_pipelined(
        &mut self,
        sql: &str,
        batch: Vec<PgArguments>,
    ) -> Result<Vec<PgRow>, Error> {
        const CHUNK: usize = 1000;
        const CHUNK_BYTES: usize = 64 * 1024;
        self.wait_until_ready().await?;
        let Some(first) = batch.first() else {
            return Ok(Vec::new());
        };
        let types = first.types.clone();
        let persistent = self.inner.cache_statement.is_enabled();
        let (statement, metadata) = self
            .get_or_prepare(sql, &types, persistent, None, false)
            .await?;
        self.wait_until_ready().await?;
        let (formats, result_formats) = self.fastio_formats(&metadata);
        let count = batch.len();
        for arguments in &batch {
            u16::try_from(arguments.len()).map_err(|_| {
                err_protocol!("fetch_pipelined(): too many arguments: {}", arguments.len())
            })?;
        }
        let mut out = Vec::new();
        let mut unread: VecDeque<usize> = VecDeque::new();
        let mut rows = batch.into_iter();
        let mut sent = 0;
        let outcome: Result<(), Error> = async {
            while sent < count {
                let mut n = 0;
                for mut arguments in rows.by_ref() {
                    let num_params = u16::try_from(arguments.len()).unwrap_or(u16::MAX);
                    arguments.apply_patches(self, &metadata.parameters).await?;
                    self.inner.stream.write_msg(Bind {
                        portal: PortalId::UNNAMED,
                        statement,
                        formats: &formats,
                        num_params,
                        params: &arguments.buffer,
                        result_formats: &result_formats,
                    })?;
                    self.inner.stream.write_msg(message::Execute {
                        portal: PortalId::UNNAMED,
                        limit: 0,
                    })?;
                    n += 1;
                    if n == CHUNK || self.inner.stream.write_buffer_mut().get().len() >= CHUNK_BYTES
                    {
                        break;
                    }
                }
                sent += n;
                if sent == count {
                    self.write_sync();
                } else {
                    self.inner.stream.write_msg(message::Flush)?;
                }
                self.inner.stream.flush().await?;
                unread.push_back(n);
                if unread.len() > 1 {
                    let n = unread.pop_front().unwrap_or(0);
                    self.read_rows(n, &metadata, &mut out).await?;
                }
            }
            while let Some(n) = unread.pop_front() {
                self.read_rows(n, &metadata, &mut out).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            if sent < count {
                self.write_sync();
            }
            let _ = self.drain_pending().await;
            return Err(e);
        }
        loop {
            let message = self.inner.stream.recv().await?;
            if message.format == BackendMessageFormat::ReadyForQuery {
                self.handle_ready_for_query(message)?;
                break;
            }
        }
        Ok(out)
    }

    /// Reads the rows of `n` pipelined Bind/Execute pairs.
    async fn read_rows(
        &mut self,
        mut n: usize,
        metadata: &Arc<PgStatementMetadata>,
        out: &mut Vec<PgRow>,
    ) -> Result<(), Error> {
        while n > 0 {
            let message = self.inner.stream.recv().await?;
            match message.format {
                BackendMessageFormat::CommandComplete
                | BackendMessageFormat::EmptyQueryResponse => n -= 1,
                BackendMessageFormat::DataRow => {
                    let data: DataRow = message.decode()?;
                    out.push(PgRow {
                        data,
                        format: PgValueFormat::Binary,
                        metadata: Arc::clone(metadata),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}
