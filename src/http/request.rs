//! `fastio.Request` and the owned, GIL-free description of one request
//! ([`RequestSpec`]) that every HTTP entry point turns its arguments into.

use std::time::Duration;

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyString};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use url::Url;

use crate::errors::{arg_type_error, redact_url, Error, HttpErrorKind, Result};

/// A timeout argument: not given (use the default), `None` (no timeout), or seconds.
#[derive(Debug, Clone, Copy, Default)]
pub enum TimeoutArg {
    #[default]
    Unset,
    Set(Option<Duration>),
}

impl TimeoutArg {
    /// Parses `timeout=` (None or a number of seconds >= 0).
    pub fn parse(func: &str, name: &str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(obj) = obj else {
            return Ok(TimeoutArg::Unset);
        };
        Ok(TimeoutArg::Set(parse_seconds(func, name, obj)?))
    }

    pub fn or(self, default: Option<Duration>) -> Option<Duration> {
        match self {
            TimeoutArg::Unset => default,
            TimeoutArg::Set(v) => v,
        }
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for TimeoutArg {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(TimeoutArg::Set(parse_seconds("request", "timeout", &obj)?))
    }
}

/// `None` or a finite number of seconds >= 0.
pub fn parse_seconds(func: &str, name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Option<Duration>> {
    if obj.is_none() {
        return Ok(None);
    }
    let secs: f64 = obj
        .extract()
        .map_err(|_| arg_type_error(func, name, "a number of seconds or None", obj))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "{func}(): {name} must be a finite number of seconds >= 0, got {secs}"
        ))
        .into());
    }
    Ok(Some(Duration::from_secs_f64(secs)))
}

/// One request, owned by Rust: built while attached to Python, then moved
/// into the tokio future.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    pub timeout: TimeoutArg,
}

impl RequestSpec {
    /// The URL with any credentials masked, for messages.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// Resolves `url` against `base` (httpx style: the path is appended) and
/// checks the scheme.
pub fn resolve_url(base: Option<&Url>, url: &str) -> Result<Url> {
    let parsed = match Url::parse(url) {
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) if base.is_some() => {
            let base = base.expect("checked above");
            let joined = format!(
                "{}/{}",
                base.as_str().trim_end_matches('/'),
                url.trim_start_matches('/')
            );
            Url::parse(&joined).map_err(|e| invalid_url(url, e))?
        }
        Err(e) => return Err(invalid_url(url, e)),
    };
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(Error::http(
                HttpErrorKind::InvalidUrl,
                format!(
                    "unsupported URL scheme {other:?} in {}: only http and https are supported",
                    redact_url(&parsed)
                ),
            ))
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::http(
            HttpErrorKind::InvalidUrl,
            format!("URL has no host: {}", redact_url(&parsed)),
        ));
    }
    Ok(parsed)
}

fn invalid_url(url: &str, e: url::ParseError) -> Error {
    // The raw text may hold a password; show it only when it has no '@'.
    let shown = if url.contains('@') {
        "<url with credentials>".to_owned()
    } else {
        format!("{url:?}")
    };
    Error::http(
        HttpErrorKind::InvalidUrl,
        format!("invalid URL {shown}: {e}"),
    )
}

fn parse_method(func: &str, method: &str) -> PyResult<Method> {
    Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
        Error::InvalidArgument(format!("{func}(): invalid HTTP method {method:?}")).into()
    })
}

/// (name, value) pairs from a mapping or an iterable of pairs.
fn pairs<'py>(
    func: &str,
    arg: &str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    if let Ok(d) = obj.cast::<PyDict>() {
        return Ok(d.iter().collect());
    }
    let items = if obj.hasattr("items")? {
        obj.call_method0("items")?
    } else {
        obj.clone()
    };
    let mut out = Vec::new();
    for item in items
        .try_iter()
        .map_err(|_| arg_type_error(func, arg, "a mapping or a list of pairs", obj))?
    {
        let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item?
            .extract()
            .map_err(|_| arg_type_error(func, arg, "a mapping or a list of pairs", obj))?;
        out.push((k, v));
    }
    Ok(out)
}

fn text_of(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_str()?.to_owned());
    }
    if obj.is_instance_of::<pyo3::types::PyBool>() {
        return Ok(if obj.is_truthy()? { "true" } else { "false" }.to_owned());
    }
    Ok(obj.str()?.to_str()?.to_owned())
}

/// Header pairs into a map (repeated names become repeated headers).
pub fn parse_headers(func: &str, obj: &Bound<'_, PyAny>, into: &mut HeaderMap) -> PyResult<()> {
    if obj.is_none() {
        return Ok(());
    }
    for (k, v) in pairs(func, "headers", obj)? {
        let name = text_of(&k)?;
        let value = text_of(&v)?;
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Error::InvalidArgument(format!("{func}(): invalid header name {name:?}"))
        })?;
        // The value is not echoed: it may be a credential.
        let value = HeaderValue::from_str(&value).map_err(|_| {
            Error::InvalidArgument(format!("{func}(): invalid value for header {name}"))
        })?;
        into.append(name, value);
    }
    Ok(())
}

fn append_params(func: &str, url: &mut Url, obj: &Bound<'_, PyAny>) -> PyResult<()> {
    if obj.is_none() {
        return Ok(());
    }
    let pairs = pairs(func, "params", obj)?;
    let mut q = url.query_pairs_mut();
    for (k, v) in pairs {
        let key = text_of(&k)?;
        if !v.is_instance_of::<PyString>() && !v.is_instance_of::<PyBytes>() {
            if let Ok(it) = v.try_iter() {
                for one in it {
                    q.append_pair(&key, &text_of(&one?)?);
                }
                continue;
            }
        }
        q.append_pair(&key, &text_of(&v)?);
    }
    drop(q);
    Ok(())
}

fn json_dumps(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let dumps = DUMPS.import(py, "json", "dumps")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("separators", (",", ":"))?;
    kwargs.set_item("ensure_ascii", false)?;
    let text = dumps.call((obj,), Some(&kwargs)).map_err(|e| {
        if e.is_instance_of::<PyTypeError>(py) {
            PyTypeError::new_err(format!("json= is not JSON serialisable: {}", e.value(py)))
        } else {
            e
        }
    })?;
    Ok(Bytes::from(
        text.cast::<PyString>()?.to_str()?.as_bytes().to_vec(),
    ))
}

fn bytes_of(func: &str, arg: &str, obj: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Bytes::copy_from_slice(b.as_bytes()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Bytes::copy_from_slice(s.to_str()?.as_bytes()));
    }
    if let Ok(v) = obj.extract::<Vec<u8>>() {
        return Ok(Bytes::from(v));
    }
    Err(arg_type_error(func, arg, "bytes or str", obj))
}

/// The keyword arguments every request-making call accepts.
#[derive(Default)]
pub struct RequestArgs<'a, 'py> {
    pub headers: Option<&'a Bound<'py, PyAny>>,
    pub params: Option<&'a Bound<'py, PyAny>>,
    pub json: Option<&'a Bound<'py, PyAny>>,
    pub data: Option<&'a Bound<'py, PyAny>>,
    pub content: Option<&'a Bound<'py, PyAny>>,
    pub timeout: TimeoutArg,
}

/// Builds a [`RequestSpec`] from Python arguments.
pub fn build_spec(
    py: Python<'_>,
    func: &str,
    base: Option<&Url>,
    method: &str,
    url: &Bound<'_, PyAny>,
    args: &RequestArgs<'_, '_>,
) -> PyResult<RequestSpec> {
    let method = parse_method(func, method)?;
    let url_text = url
        .cast::<PyString>()
        .map_err(|_| arg_type_error(func, "url", "a str", url))?;
    let mut url = resolve_url(base, url_text.to_str()?)?;
    let mut headers = HeaderMap::new();
    if let Some(h) = args.headers {
        parse_headers(func, h, &mut headers)?;
    }
    if let Some(p) = args.params {
        append_params(func, &mut url, p)?;
    }
    let given = [args.json, args.data, args.content]
        .iter()
        .filter(|a| a.is_some_and(|o| !o.is_none()))
        .count();
    if given > 1 {
        return Err(Error::InvalidArgument(format!(
            "{func}(): give at most one of json=, data= and content="
        ))
        .into());
    }
    let mut body = None;
    if let Some(j) = args.json.filter(|o| !o.is_none()) {
        body = Some(json_dumps(py, j)?);
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
    } else if let Some(d) = args.data.filter(|o| !o.is_none()) {
        if d.is_instance_of::<PyBytes>() || d.is_instance_of::<PyString>() {
            body = Some(bytes_of(func, "data", d)?);
        } else {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs(func, "data", d)? {
                ser.append_pair(&text_of(&k)?, &text_of(&v)?);
            }
            body = Some(Bytes::from(ser.finish()));
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
            }
        }
    } else if let Some(c) = args.content.filter(|o| !o.is_none()) {
        body = Some(bytes_of(func, "content", c)?);
    }
    Ok(RequestSpec {
        method,
        url,
        headers,
        body,
        timeout: args.timeout,
    })
}

/// `fastio.Request(method, url, headers=, params=, json=, data=, content=,
/// timeout=)`: a request description for `fetch_all`/`fetch_iter`.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct Request {
    #[pyo3(get)]
    method: String,
    #[pyo3(get)]
    url: Py<PyAny>,
    #[pyo3(get)]
    headers: Option<Py<PyAny>>,
    #[pyo3(get)]
    params: Option<Py<PyAny>>,
    #[pyo3(get)]
    json: Option<Py<PyAny>>,
    #[pyo3(get)]
    data: Option<Py<PyAny>>,
    #[pyo3(get)]
    content: Option<Py<PyAny>>,
    #[pyo3(get)]
    timeout: Option<Py<PyAny>>,
}

#[pymethods]
impl Request {
    #[new]
    #[pyo3(signature = (method, url, *, headers = None, params = None, json = None, data = None, content = None, timeout = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        method: String,
        url: Py<PyAny>,
        headers: Option<Py<PyAny>>,
        params: Option<Py<PyAny>>,
        json: Option<Py<PyAny>>,
        data: Option<Py<PyAny>>,
        content: Option<Py<PyAny>>,
        timeout: Option<Py<PyAny>>,
    ) -> Self {
        Request {
            method,
            url,
            headers,
            params,
            json,
            data,
            content,
            timeout,
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let url = self
            .url
            .bind(py)
            .extract::<String>()
            .ok()
            .and_then(|u| Url::parse(&u).ok().map(|u| redact_url(&u)))
            .unwrap_or_else(|| "?".to_owned());
        format!("<Request {} {}>", self.method.to_ascii_uppercase(), url)
    }
}

/// One item of `fetch_all(requests)`: a URL string, a `Request` or a dict
/// with the same keys. `defaults` are the call's keyword arguments.
pub fn spec_from_item(
    py: Python<'_>,
    base: Option<&Url>,
    item: &Bound<'_, PyAny>,
    defaults: &RequestArgs<'_, '_>,
) -> PyResult<RequestSpec> {
    const FUNC: &str = "fetch_all";
    if item.is_instance_of::<PyString>() {
        return build_spec(py, FUNC, base, "GET", item, defaults);
    }
    if let Ok(r) = item.cast::<Request>() {
        let r = r.get();
        let timeout = match &r.timeout {
            Some(t) => TimeoutArg::parse(FUNC, "timeout", Some(t.bind(py)))?,
            None => defaults.timeout,
        };
        let b = |o: &Option<Py<PyAny>>| o.as_ref().map(|o| o.bind(py).clone());
        let (headers, params, json, data, content) = (
            b(&r.headers),
            b(&r.params),
            b(&r.json),
            b(&r.data),
            b(&r.content),
        );
        let args = RequestArgs {
            headers: headers.as_ref().or(defaults.headers),
            params: params.as_ref().or(defaults.params),
            json: json.as_ref(),
            data: data.as_ref(),
            content: content.as_ref(),
            timeout,
        };
        return build_spec(py, FUNC, base, &r.method, r.url.bind(py), &args);
    }
    if let Ok(d) = item.cast::<PyDict>() {
        let get = |k: &str| d.get_item(k);
        let url = get("url")?.ok_or_else(|| {
            PyErr::from(Error::InvalidArgument(
                "fetch_all(): a request dict needs a \"url\" key".into(),
            ))
        })?;
        let method: String = match get("method")? {
            Some(m) => m.extract()?,
            None => "GET".to_owned(),
        };
        let timeout = match get("timeout")? {
            Some(t) => TimeoutArg::parse(FUNC, "timeout", Some(&t))?,
            None => defaults.timeout,
        };
        let (headers, params, json, data, content) = (
            get("headers")?,
            get("params")?,
            get("json")?,
            get("data")?,
            get("content")?,
        );
        for key in d.keys() {
            let k: String = key.extract()?;
            if !matches!(
                k.as_str(),
                "url" | "method" | "headers" | "params" | "json" | "data" | "content" | "timeout"
            ) {
                return Err(Error::InvalidArgument(format!(
                    "fetch_all(): unknown key {k:?} in a request dict"
                ))
                .into());
            }
        }
        let args = RequestArgs {
            headers: headers.as_ref().or(defaults.headers),
            params: params.as_ref().or(defaults.params),
            json: json.as_ref(),
            data: data.as_ref(),
            content: content.as_ref(),
            timeout,
        };
        return build_spec(py, FUNC, base, &method, &url, &args);
    }
    Err(arg_type_error(
        FUNC,
        "each request",
        "a URL str, a fastio.Request or a dict",
        item,
    ))
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Request>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_against_base() {
        let base = Url::parse("http://h:1/api/").unwrap();
        assert_eq!(
            resolve_url(Some(&base), "/users/1").unwrap().as_str(),
            "http://h:1/api/users/1"
        );
        assert_eq!(
            resolve_url(Some(&base), "http://o/x").unwrap().as_str(),
            "http://o/x"
        );
    }

    #[test]
    fn rejects_bad_urls_without_leaking() {
        let e = resolve_url(None, "ftp://u:secret@h/x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unsupported URL scheme") && !e.contains("secret"),
            "{e}"
        );
        let e = resolve_url(None, "http://u:secret@/x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
        assert!(resolve_url(None, "not a url").is_err());
    }
}
