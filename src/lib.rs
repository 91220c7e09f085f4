//! fastio: asyncio I/O driven by a tokio runtime. This file only declares the
//! modules and assembles the Python extension module `fastio._fastio`.

mod db;
pub mod errors;
mod logging;
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
    db::init_pymodule(m)?;
    testing::init_pymodule(m)?;
    Ok(())
}
