//! fastio: asyncio I/O driven by a tokio runtime. This file only declares the
//! modules and assembles the Python extension module `fastio._fastio`.

pub mod breaker;
mod db;
pub mod errors;
mod files;
pub mod http;
mod logging;
pub mod metrics;
pub mod retry;
pub mod runtime;
mod testing;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_fastio")]
fn fastio_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    logging::init_pymodule(m)?;
    errors::init_pymodule(m)?;
    runtime::init_pymodule(m)?;
    metrics::init_pymodule(m)?;
    breaker::init_pymodule(m)?;
    retry::init_pymodule(m)?;
    http::init_pymodule(m)?;
    files::init_pymodule(m)?;
    db::init_pymodule(m)?;
    testing::init_pymodule(m)?;
    Ok(())
}
