//! COPY to and from files, file objects and callables (asyncpg's
//! `copy_from_query`, `copy_from_table`, `copy_to_table`): the Rust half.
//! The SQL and the Python-side sources and sinks are in `fastio._copy`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::time::Duration;

use super::codec::from_python::Param;
use super::connection::ConnInner;
use super::postgres::{self, CopySink};
use crate::errors::Result;

/// What `_copy_out` hands back: the status, and the data when it was not
/// written to a file.
pub(crate) struct CopyOut {
    status: String,
    data: Option<Vec<u8>>,
}

impl<'py> IntoPyObject<'py> for CopyOut {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let data = self.data.map(|d| PyBytes::new(py, &d));
        (self.status, data).into_pyobject(py).map(Bound::into_any)
    }
}

/// Where `_copy_in` reads from.
pub(crate) enum CopySource {
    Path(String),
    Chunks(Vec<Vec<u8>>),
}

impl ConnInner {
    /// `COPY ... TO STDOUT` into the file at `path`, or into memory.
    pub(crate) async fn copy_out(
        &self,
        sql: String,
        path: Option<String>,
        timeout: Option<Duration>,
    ) -> Result<CopyOut> {
        let mut sink = match path {
            Some(p) => CopySink::Path(p),
            None => CopySink::Memory(Vec::new()),
        };
        let status = self
            .locked(timeout, async |pg| {
                postgres::copy_out(pg, &sql, &mut sink).await
            })
            .await?;
        Ok(CopyOut {
            status,
            data: match sink {
                CopySink::Memory(d) => Some(d),
                CopySink::Path(_) => None,
            },
        })
    }

    /// `COPY ... FROM STDIN` from a file or from chunks of bytes.
    pub(crate) async fn copy_in(
        &self,
        sql: String,
        source: CopySource,
        timeout: Option<Duration>,
    ) -> Result<String> {
        let chunks = match source {
            CopySource::Path(p) => vec![tokio::fs::read(&p).await?],
            CopySource::Chunks(c) => c,
        };
        let slices: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        self.locked(timeout, async |pg| {
            postgres::copy_in(pg, &sql, &slices).await
        })
        .await
    }

    /// `query` with its `$n` arguments inlined as literals.
    pub(crate) async fn mogrify(
        &self,
        query: String,
        params: Vec<Param>,
        timeout: Option<Duration>,
    ) -> Result<String> {
        self.locked(timeout, async |pg| {
            postgres::mogrify(pg, &query, &params).await
        })
        .await
    }
}
