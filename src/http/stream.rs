//! `Client.stream(...)`: a response whose body is read chunk by chunk.
//!
//! ```python
//! async with client.stream("GET", url) as r:
//!     async for chunk in r.aiter_bytes():
//!         ...
//! ```

use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::errors::{from_reqwest, Error, HttpErrorKind};
use crate::http::client::{ClientInner, StreamState};
use crate::http::request::RequestSpec;
use crate::http::response::{
    reason_of, stop_async_iteration, version_str, Headers, PyBytesOut, ResponseData,
};
use crate::runtime::{future_into_py, Awaitable, ReturnNone};

type Shared = Arc<tokio::sync::Mutex<Option<StreamState>>>;

/// The async context manager `Client.stream()` returns.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct StreamContext {
    inner: Arc<ClientInner>,
    spec: Mutex<Option<RequestSpec>>,
    state: Shared,
}

impl StreamContext {
    pub fn new(inner: Arc<ClientInner>, spec: RequestSpec) -> Self {
        StreamContext {
            inner,
            spec: Mutex::new(Some(spec)),
            state: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }
}

#[pymethods]
impl StreamContext {
    /// Sends the request; resolves to a StreamResponse once the headers arrived.
    fn __aenter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        let spec = self
            .spec
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                Error::Interface("a stream() context can be entered only once".into())
            })?;
        let inner = Arc::clone(&self.inner);
        let state = Arc::clone(&self.state);
        future_into_py(py, async move {
            let (st, meta) = StreamState::open(&inner, &spec).await?;
            *state.lock().await = Some(st);
            Ok(StreamResponseOut {
                meta,
                state,
                max: StreamState::max_body_size(&inner),
            })
        })
    }

    /// Closes the response (an unread body closes its connection).
    #[pyo3(signature = (*_args))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        close(py, &self.state)
    }
}

fn close<'py>(py: Python<'py>, state: &Shared) -> PyResult<Bound<'py, Awaitable>> {
    let state = Arc::clone(state);
    future_into_py(py, async move {
        state.lock().await.take();
        Ok(ReturnNone)
    })
}

struct StreamResponseOut {
    meta: ResponseData,
    state: Shared,
    max: Option<u64>,
}

impl<'py> IntoPyObject<'py> for StreamResponseOut {
    type Target = StreamResponse;
    type Output = Bound<'py, StreamResponse>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Bound::new(
            py,
            StreamResponse {
                meta: self.meta,
                state: self.state,
                max: self.max,
                read: Arc::new(Mutex::new(0)),
            },
        )
    }
}

/// A response being streamed: status and headers now, the body on demand.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct StreamResponse {
    meta: ResponseData,
    state: Shared,
    max: Option<u64>,
    read: Arc<Mutex<u64>>,
}

async fn next_chunk(
    state: &Shared,
    max: Option<u64>,
    read: &Mutex<u64>,
) -> crate::errors::Result<Option<bytes::Bytes>> {
    let mut guard = state.lock().await;
    let Some(st) = guard.as_mut() else {
        return Ok(None);
    };
    let Some(resp) = st.resp.as_mut() else {
        return Ok(None);
    };
    match resp.chunk().await {
        Ok(Some(c)) => {
            let mut n = read.lock().unwrap_or_else(|p| p.into_inner());
            *n += c.len() as u64;
            if let Some(m) = max.filter(|m| *n > *m) {
                st.resp = None;
                return Err(Error::http(
                    HttpErrorKind::BodyTooLarge,
                    format!(
                        "the response body from {} is larger than max_body_size ({m} bytes)",
                        st.url
                    ),
                ));
            }
            Ok(Some(c))
        }
        Ok(None) => {
            st.resp = None;
            Ok(None)
        }
        Err(e) => {
            let url = st.url.clone();
            st.resp = None;
            Err(from_reqwest(e, &url))
        }
    }
}

#[pymethods]
impl StreamResponse {
    #[getter]
    fn status(&self) -> u16 {
        self.meta.status
    }
    #[getter]
    fn status_code(&self) -> u16 {
        self.meta.status
    }
    #[getter]
    fn reason(&self) -> &'static str {
        reason_of(self.meta.status)
    }
    #[getter]
    fn ok(&self) -> bool {
        self.meta.status < 400
    }
    #[getter]
    fn url(&self) -> &str {
        &self.meta.url
    }
    #[getter]
    fn http_version(&self) -> &'static str {
        version_str(self.meta.version)
    }
    #[getter]
    fn headers(&self) -> Headers {
        Headers::new(Arc::clone(&self.meta.headers))
    }

    /// An async iterator over the body's chunks (as they arrive).
    fn aiter_bytes(&self) -> ByteIter {
        ByteIter {
            state: Arc::clone(&self.state),
            max: self.max,
            read: Arc::clone(&self.read),
        }
    }

    /// Reads the rest of the body.
    fn aread<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        let state = Arc::clone(&self.state);
        let (max, read) = (self.max, Arc::clone(&self.read));
        future_into_py(py, async move {
            let mut buf = BytesMut::new();
            while let Some(c) = next_chunk(&state, max, &read).await? {
                buf.extend_from_slice(&c);
            }
            Ok(PyBytesOut(buf.freeze()))
        })
    }

    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        close(py, &self.state)
    }

    fn raise_for_status(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let r = crate::http::response::Response::new(slf.get().meta.clone());
        match r.status_error() {
            None => Ok(slf),
            Some(e) => Err(e.into()),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<StreamResponse [{} {}]>",
            self.meta.status,
            reason_of(self.meta.status)
        )
    }
}

/// `async for chunk in response.aiter_bytes()`.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct ByteIter {
    state: Shared,
    max: Option<u64>,
    read: Arc<Mutex<u64>>,
}

#[pymethods]
impl ByteIter {
    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        let state = Arc::clone(&self.state);
        let (max, read) = (self.max, Arc::clone(&self.read));
        future_into_py(py, async move {
            match next_chunk(&state, max, &read).await? {
                Some(c) => Ok(PyBytesOut(c)),
                None => Err(stop_async_iteration()),
            }
        })
    }
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StreamContext>()?;
    m.add_class::<StreamResponse>()?;
    m.add_class::<ByteIter>()?;
    Ok(())
}
