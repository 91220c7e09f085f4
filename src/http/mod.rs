//! The HTTP client: `fetch_all`/`fetch_iter`, `Client`, `Request`,
//! `Response`, streaming and downloads, on reqwest (rustls, HTTP/2, gzip,
//! brotli, deflate, zstd, connection pooling).

pub mod client;
pub mod fetch_all;
pub mod h1;
pub mod request;
pub mod response;
pub mod stream;

use pyo3::prelude::*;

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    request::init_pymodule(m)?;
    response::init_pymodule(m)?;
    client::init_pymodule(m)?;
    stream::init_pymodule(m)?;
    fetch_all::init_pymodule(m)?;
    Ok(())
}
