//! Databases: one `Pool` type and `Connection` for every backend (the DSN's
//! scheme picks it), `Record` rows, and the value codecs.

pub(crate) mod ahead;
pub(crate) mod codec;
pub(crate) mod connection;
pub(crate) mod copy;
pub(crate) mod hooks;
pub(crate) mod listener;
pub(crate) mod multirow;
pub(crate) mod mysql;
pub(crate) mod pool;
pub(crate) mod postgres;
pub(crate) mod reconnect;
pub(crate) mod record;
pub(crate) mod sql;
pub(crate) mod sqlite;
pub(crate) mod stats;

use pyo3::prelude::*;

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    record::init_pymodule(m)?;
    connection::init_pymodule(m)?;
    pool::init_pymodule(m)?;
    Ok(())
}
