//! Codecs set by `Connection.set_type_codec()` (asyncpg's API): a Python
//! encoder/decoder pair per type OID, exchanging the value's text form.
//!
//! The table belongs to the server session, so it lives on the sqlx
//! connection itself (a pool's `init` callback sets it once per session);
//! the connection is told which OIDs to send and receive in text format.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyString;
use sqlx::postgres::PgConnection;

/// One `set_type_codec` pair.
pub(crate) struct TypeCodec {
    pub(crate) encoder: Py<PyAny>,
    pub(crate) decoder: Py<PyAny>,
}

impl TypeCodec {
    /// `encoder(value)`, which must return the value's text form.
    pub(crate) fn encode(&self, value: &Py<PyAny>) -> Result<Vec<u8>, String> {
        Python::attach(|py| {
            let out = self
                .encoder
                .bind(py)
                .call1((value.bind(py),))
                .map_err(|e| format!("the type codec's encoder raised {e}"))?;
            let s = out.cast::<PyString>().map_err(|_| {
                format!(
                    "the type codec's encoder must return str (format='text'), not {}",
                    out.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                )
            })?;
            s.to_str()
                .map(|s| s.as_bytes().to_vec())
                .map_err(|e| e.to_string())
        })
    }

    /// `decoder(text)` of one non-NULL value the server sent as text.
    pub(crate) fn decode<'py>(&self, py: Python<'py>, text: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let s = std::str::from_utf8(text).map_err(|e| {
            PyErr::from(crate::errors::Error::Interface(format!(
                "invalid UTF-8 in a text value from the server: {e}"
            )))
        })?;
        self.decoder.bind(py).call1((s,))
    }
}

/// Every codec set on one session, by type OID.
#[derive(Default)]
pub(crate) struct TypeCodecs {
    by_oid: HashMap<u32, Arc<TypeCodec>>,
}

impl TypeCodecs {
    /// The codecs set on `conn`, if any.
    pub(crate) fn of(conn: &PgConnection) -> Option<Arc<TypeCodecs>> {
        let any = Arc::clone(conn.fastio_codecs()?);
        any.downcast::<TypeCodecs>().ok()
    }

    pub(crate) fn get(&self, oid: u32) -> Option<&Arc<TypeCodec>> {
        self.by_oid.get(&oid)
    }

    /// Sets (or, with `None`, removes) the codec of `oid` on `conn`.
    pub(crate) fn install(conn: &mut PgConnection, oid: u32, codec: Option<TypeCodec>) {
        let mut by_oid = TypeCodecs::of(conn)
            .map(|c| c.by_oid.clone())
            .unwrap_or_default();
        match codec {
            Some(c) => {
                by_oid.insert(oid, Arc::new(c));
            }
            None => {
                by_oid.remove(&oid);
            }
        }
        if by_oid.is_empty() {
            conn.set_fastio_codecs(None, Vec::new());
            return;
        }
        let oids = by_oid.keys().copied().collect();
        conn.set_fastio_codecs(Some(Arc::new(TypeCodecs { by_oid })), oids);
    }
}
