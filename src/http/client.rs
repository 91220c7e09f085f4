//! `fastio.Client`: one reqwest client (connection pool, TLS, HTTP/2) plus
//! fastio's own policies around each request: connection limits per host and
//! in total, a retry policy, a TTL response cache for GET, and a body size cap.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::breaker::{self, CircuitBreaker};
use crate::errors::{arg_type_error, from_reqwest, Error, HttpErrorKind, Result};
use crate::http::h1::Lean;
use crate::http::request::{
    build_spec, parse_headers, parse_seconds, RequestArgs, RequestSpec, TimeoutArg,
};
use crate::http::response::{PyBody, PyBodyWriter, ResponseData, ResponseOut};
use crate::metrics;
use crate::retry::{parse_retry_after, Retry, RetryPolicy};
use crate::runtime::{check_fork, future_into_py, generation, Awaitable, ReturnNone};

/// Installs rustls' ring provider as the process default, once, before the
/// first client is built (reqwest is built without a provider of its own).
fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Everything `Client(...)` accepts, owned.
#[derive(Default)]
pub struct ClientConfig {
    pub base_url: Option<Url>,
    pub headers: HeaderMap,
    pub timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
    pub max_connections_per_host: Option<usize>,
    pub http2: bool,
    pub verify: bool,
    pub ca_pem: Option<Vec<u8>>,
    pub proxy: Option<String>,
    pub follow_redirects: bool,
    pub max_redirects: usize,
    pub retry: Option<RetryPolicy>,
    pub cache_ttl: Option<Duration>,
    pub max_body_size: Option<u64>,
    /// Template of the per-host circuit breakers (`Client(breaker=...)`).
    pub breaker: Option<Arc<breaker::Core>>,
}

struct CacheEntry {
    stored: Instant,
    data: ResponseData,
}

/// The shared state behind a `Client` (and the module-level default client).
pub struct ClientInner {
    /// None once closed: dropping it closes the idle pooled connections.
    http: std::sync::RwLock<Option<reqwest::Client>>,
    /// The lean HTTP/1.1 path (see `h1`), unless this client's requests
    /// always need reqwest.
    lean: Option<Lean>,
    pub base_url: Option<Url>,
    timeout: Option<Duration>,
    total_limit: Option<Arc<Semaphore>>,
    per_host: Option<usize>,
    host_limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    pub retry: Option<RetryPolicy>,
    cache_ttl: Option<Duration>,
    cache: Mutex<HashMap<String, CacheEntry>>,
    max_body_size: Option<u64>,
    breaker: Option<Arc<breaker::Core>>,
    host_breakers: Mutex<HashMap<String, Arc<breaker::Core>>>,
    attempt_series: Mutex<HashMap<Box<str>, Arc<AttemptSeries>>>,
    generation: u64,
    closed: AtomicBool,
}

/// Permits held while a request runs.
struct Permits {
    _total: Option<OwnedSemaphorePermit>,
    _host: Option<OwnedSemaphorePermit>,
}

/// The metric series of one (method, host) pair, found once per client
/// rather than per request: `metrics::series` builds its key strings and
/// walks the registry on every call.
struct AttemptSeries {
    /// `host[:port]`, the label of the metrics and of the breaker.
    host: String,
    method: String,
    running: Arc<metrics::Series>,
    /// By status class: 1xx..5xx, then "error".
    done: [OnceLock<Arc<metrics::Series>>; 6],
}

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

impl AttemptSeries {
    fn done(&self, class: usize) -> &metrics::Series {
        self.done[class].get_or_init(|| {
            metrics::series(
                &metrics::HTTP_CLIENT,
                &[&self.host, &self.method, CLASSES[class]],
            )
        })
    }
}

/// Distinct (method, host) pairs a client remembers series for; past this
/// (a crawl over many hosts) they are looked up per request, as before.
const MAX_CACHED_SERIES: usize = 10_000;

/// Large bodies of known length are read straight into a Python `bytes`
/// (see [`PyBody`]); below this the copy costs less than attaching to Python.
const PY_BODY_MIN: u64 = 128 * 1024;

/// The User-Agent of every request.
const USER_AGENT: &str = concat!("fastio/", env!("CARGO_PKG_VERSION"));

/// A response body read piece by piece: reqwest's, or the lean path's.
pub(crate) trait BodySource {
    /// The length announced by the server, when the body is not decoded.
    fn content_length(&self) -> Option<u64>;
    /// The next piece, None at the end.
    async fn chunk(&mut self) -> Result<Option<Bytes>>;
    /// Reads the next piece straight into `dst` (not empty) and returns how
    /// many bytes it initialised there, 0 at the end; None when this source
    /// only hands out pieces (then `chunk` reads on).
    async fn read_into(&mut self, dst: &mut [std::mem::MaybeUninit<u8>]) -> Result<Option<usize>> {
        let _ = dst;
        Ok(None)
    }
}

/// A reqwest response's body, its errors in fastio's words.
struct ReqwestBody<'a> {
    resp: reqwest::Response,
    spec: &'a RequestSpec,
}

impl BodySource for ReqwestBody<'_> {
    fn content_length(&self) -> Option<u64> {
        self.resp.content_length()
    }

    async fn chunk(&mut self) -> Result<Option<Bytes>> {
        self.resp
            .chunk()
            .await
            .map_err(|e| from_reqwest(e, &self.spec.redacted_url()))
    }
}

impl ClientInner {
    pub fn build(cfg: ClientConfig) -> Result<Arc<Self>> {
        install_tls_provider();
        let lean = Lean::new(&cfg, USER_AGENT);
        let mut b = reqwest::Client::builder()
            .default_headers(cfg.headers)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(if cfg.follow_redirects {
                reqwest::redirect::Policy::limited(cfg.max_redirects)
            } else {
                reqwest::redirect::Policy::none()
            })
            .no_proxy()
            .gzip(true)
            .brotli(true)
            .deflate(true)
            .zstd(true)
            .user_agent(USER_AGENT);
        if !cfg.http2 {
            b = b.http1_only();
        }
        if let Some(d) = cfg.connect_timeout {
            b = b.connect_timeout(d);
        }
        if let Some(n) = cfg.max_connections_per_host {
            b = b.pool_max_idle_per_host(n);
        }
        if !cfg.verify {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        if let Some(pem) = cfg.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::InvalidArgument(format!("Client(): ca_file is not a PEM bundle: {e}"))
            })?;
            b = b.tls_certs_only(certs);
        }
        if let Some(p) = cfg.proxy {
            let proxy = reqwest::Proxy::all(&p).map_err(|_| {
                Error::InvalidArgument("Client(): proxy is not a valid proxy URL".into())
            })?;
            b = b.proxy(proxy);
        }
        let http = b
            .build()
            .map_err(|e| Error::InvalidArgument(format!("Client(): {}", e.without_url())))?;
        Ok(Arc::new(ClientInner {
            http: std::sync::RwLock::new(Some(http)),
            lean,
            base_url: cfg.base_url,
            timeout: cfg.timeout,
            total_limit: cfg.max_connections.map(|n| Arc::new(Semaphore::new(n))),
            per_host: cfg.max_connections_per_host,
            host_limits: Mutex::new(HashMap::new()),
            retry: cfg.retry,
            cache_ttl: cfg.cache_ttl,
            cache: Mutex::new(HashMap::new()),
            max_body_size: cfg.max_body_size,
            breaker: cfg.breaker,
            host_breakers: Mutex::new(HashMap::new()),
            attempt_series: Mutex::new(HashMap::new()),
            generation: generation(),
            closed: AtomicBool::new(false),
        }))
    }

    /// Fails when the client was closed or comes from the parent of a fork.
    pub fn check_usable(&self) -> Result<()> {
        check_fork(self.generation, "this HTTP client")?;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Interface("the HTTP client is closed".into()));
        }
        Ok(())
    }

    async fn permits(&self, url: &Url) -> Permits {
        let total = match &self.total_limit {
            Some(s) => Arc::clone(s).acquire_owned().await.ok(),
            None => None,
        };
        let host = match self.per_host {
            Some(n) => {
                let key = format!(
                    "{}://{}:{}",
                    url.scheme(),
                    url.host_str().unwrap_or(""),
                    url.port_or_known_default().unwrap_or(0)
                );
                let sem = {
                    let mut map = self.host_limits.lock().unwrap_or_else(|p| p.into_inner());
                    Arc::clone(
                        map.entry(key)
                            .or_insert_with(|| Arc::new(Semaphore::new(n))),
                    )
                };
                sem.acquire_owned().await.ok()
            }
            None => None,
        };
        Permits {
            _total: total,
            _host: host,
        }
    }

    fn cache_get(&self, key: &str) -> Option<ResponseData> {
        let ttl = self.cache_ttl?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(key) {
            Some(e) if e.stored.elapsed() < ttl => {
                let mut data = e.data.clone();
                data.from_cache = true;
                Some(data)
            }
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }

    fn cache_put(&self, key: String, data: &ResponseData) {
        let Some(ttl) = self.cache_ttl else { return };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 10_000 {
            cache.retain(|_, e| e.stored.elapsed() < ttl);
        }
        cache.insert(
            key,
            CacheEntry {
                stored: Instant::now(),
                data: data.clone(),
            },
        );
    }

    /// Sends one request (no retries) and returns the response with its
    /// headers read but the body not yet.
    fn http(&self) -> Result<reqwest::Client> {
        self.http
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| Error::Interface("the HTTP client is closed".into()))
    }

    async fn send(&self, spec: &RequestSpec) -> Result<reqwest::Response> {
        let mut rb = self.http()?.request(spec.method.clone(), spec.url.clone());
        if !spec.headers.is_empty() {
            rb = rb.headers(spec.headers.clone());
        }
        if let Some(body) = &spec.body {
            rb = rb.body(body.clone());
        }
        if let Some(t) = spec.timeout.or(self.timeout) {
            rb = rb.timeout(t);
        }
        rb.send()
            .await
            .map_err(|e| from_reqwest(e, &spec.redacted_url()))
    }

    /// Whether the client is still open (its connections may be kept).
    pub(crate) fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn max_body_size(&self) -> Option<u64> {
        self.max_body_size
    }

    fn check_length(&self, content_length: Option<u64>, spec: &RequestSpec) -> Result<()> {
        if let (Some(max), Some(len)) = (self.max_body_size, content_length) {
            if len > max {
                return Err(body_too_large(max, spec));
            }
        }
        Ok(())
    }

    /// Reads a whole body, within `max_body_size`.
    pub(crate) async fn read_body<S: BodySource>(
        &self,
        src: &mut S,
        spec: &RequestSpec,
    ) -> Result<(Bytes, Option<Arc<PyBody>>)> {
        let length = src.content_length();
        self.check_length(length, spec)?;
        // Known length (no content decoding) and large: into a `bytes` object.
        let writer = length
            .filter(|&n| n >= PY_BODY_MIN)
            .and_then(|n| PyBodyWriter::new(usize::try_from(n).ok()?));
        if let Some(mut w) = writer {
            // Straight from the socket into the object where the source can
            // (the lean path): no copy, and reads as large as the kernel has.
            while !w.spare().is_empty() {
                match src.read_into(w.spare()).await? {
                    None | Some(0) => break,
                    // SAFETY: read_into initialised the first n bytes of spare.
                    Some(n) => unsafe { w.advance(n) },
                }
            }
            let mut spill: Option<BytesMut> = None;
            while let Some(chunk) = src.chunk().await? {
                match spill.as_mut() {
                    None if w.push(&chunk) => {}
                    None => {
                        // Longer than announced: carry on in a Rust buffer.
                        let mut buf = BytesMut::from(w.filled());
                        buf.extend_from_slice(&chunk);
                        spill = Some(buf);
                    }
                    Some(buf) => buf.extend_from_slice(&chunk),
                }
                let got = spill.as_ref().map_or(w.filled().len(), BytesMut::len);
                if self.max_body_size.is_some_and(|max| got as u64 > max) {
                    return Err(body_too_large(self.max_body_size.unwrap_or(0), spec));
                }
            }
            return Ok(match (spill, w.finish()) {
                (None, Ok((bytes, py))) => (bytes, Some(py)),
                (Some(buf), _) => (buf.freeze(), None),
                (None, Err(w)) => (Bytes::copy_from_slice(w.filled()), None),
            });
        }
        let max = self.max_body_size.unwrap_or(u64::MAX);
        // One piece (a small body) is kept as it is; more are joined.
        let Some(first) = src.chunk().await? else {
            return Ok((Bytes::new(), None));
        };
        if first.len() as u64 > max {
            return Err(body_too_large(max, spec));
        }
        let Some(second) = src.chunk().await? else {
            return Ok((first, None));
        };
        let hint = length.unwrap_or(0).min(max) as usize;
        let mut buf = BytesMut::with_capacity(hint.max(first.len() + second.len()));
        buf.extend_from_slice(&first);
        let mut next = Some(second);
        while let Some(chunk) = next {
            if (buf.len() + chunk.len()) as u64 > max {
                return Err(body_too_large(max, spec));
            }
            buf.extend_from_slice(&chunk);
            next = src.chunk().await?;
        }
        Ok((buf.freeze(), None))
    }

    /// The metric series of this request's (method, host), from the client's
    /// cache: no allocation once the pair has been seen.
    fn attempt_series(&self, url: &Url, method: &str) -> Arc<AttemptSeries> {
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with_borrow_mut(|key| {
            key.clear();
            key.push_str(method);
            key.push(' ');
            key.push_str(url.host_str().unwrap_or(""));
            if let (Some(_), Some(port)) = (url.host_str(), url.port()) {
                key.push(':');
                key.push_str(itoa::Buffer::new().format(port));
            }
            let mut map = self
                .attempt_series
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(s) = map.get(key.as_str()) {
                return Arc::clone(s);
            }
            let host = host_label(url);
            let series = Arc::new(AttemptSeries {
                running: metrics::series(&metrics::HTTP_CLIENT, &[&host, method, ""]),
                host,
                method: method.to_owned(),
                done: Default::default(),
            });
            if map.len() < MAX_CACHED_SERIES {
                map.insert(key.as_str().into(), Arc::clone(&series));
            }
            series
        })
    }

    /// The circuit breaker of `host`, if the client has breakers.
    fn host_breaker(&self, host: &str) -> Option<Arc<breaker::Core>> {
        let template = self.breaker.as_ref()?;
        let mut map = self.host_breakers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(core) = map.get(host) {
            return Some(Arc::clone(core));
        }
        let core = template.like(format!("{}:{host}", template.name()));
        map.insert(host.to_owned(), Arc::clone(&core));
        Some(core)
    }

    /// One attempt through the host's breaker, counted in the metrics.
    async fn attempt(&self, spec: &RequestSpec, start: Instant) -> Result<ResponseData> {
        let series = self.attempt_series(&spec.url, spec.method.as_str());
        let trial = match self.host_breaker(&series.host) {
            Some(core) => Some(breaker::Trial::begin(&core)?),
            None => None,
        };
        let token = series.running.begin();
        let outcome = self.attempt_inner(spec, start).await;
        let class = match &outcome {
            Ok(r) => status_class(r.status),
            Err(_) => CLASSES.len() - 1,
        };
        series
            .running
            .finish_into(token, series.done(class), outcome_of(&outcome));
        if let Some(trial) = trial {
            trial.finish(match &outcome {
                Ok(r) if r.status >= 500 => breaker::CallResult::Failure,
                Ok(_) => breaker::CallResult::Success,
                // Bad input or a body over the limit says nothing of the host's health.
                Err(Error::Http { kind, .. }) if kind.is_transport() => {
                    breaker::CallResult::Failure
                }
                Err(_) => breaker::CallResult::Ignored,
            });
        }
        outcome
    }

    /// One attempt: send and read the whole body.
    async fn attempt_inner(&self, spec: &RequestSpec, start: Instant) -> Result<ResponseData> {
        if let Some(lean) = self.lean.as_ref().filter(|_| Lean::eligible(spec)) {
            let timeout = spec.timeout.or(self.timeout);
            if let Some(out) = lean.attempt(self, spec, timeout, start).await {
                return out;
            }
        }
        let mut resp = self.send(spec).await?;
        let status = resp.status().as_u16();
        let version = resp.version();
        let url: Arc<str> = Arc::from(crate::errors::redact_url(resp.url()));
        let headers = Arc::new(std::mem::take(resp.headers_mut()));
        let (body, py_body) = self
            .read_body(&mut ReqwestBody { resp, spec }, spec)
            .await?;
        Ok(ResponseData {
            status,
            version,
            url,
            headers,
            body,
            py_body,
            elapsed: start.elapsed(),
            from_cache: false,
        })
    }

    /// A full request: cache, connection limits, retries.
    pub async fn execute(
        self: &Arc<Self>,
        spec: RequestSpec,
        retry: Option<&RetryPolicy>,
    ) -> Result<ResponseData> {
        self.check_usable()?;
        let cache_key = (self.cache_ttl.is_some() && spec.method == reqwest::Method::GET)
            .then(|| spec.url.as_str().to_owned());
        if let Some(hit) = cache_key.as_deref().and_then(|k| self.cache_get(k)) {
            return Ok(hit);
        }
        let retry = retry.or(self.retry.as_ref());
        let start = Instant::now();
        let mut attempt: u32 = 0;
        let result = loop {
            attempt += 1;
            let outcome = {
                let _permits = self.permits(&spec.url).await;
                self.attempt(&spec, start).await
            };
            let Some(policy) =
                retry.filter(|p| attempt < p.attempts && p.allows_method(spec.method.as_str()))
            else {
                break outcome;
            };
            let wait = match &outcome {
                Ok(r) if policy.retries_status(r.status) => {
                    let ra = policy
                        .uses_retry_after(r.status)
                        .then(|| r.headers.get(RETRY_AFTER))
                        .flatten()
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    policy.delay(attempt, ra)
                }
                Err(e) if policy.retries_error(e) => policy.delay(attempt, None),
                _ => break outcome,
            };
            if let Some(deadline) = policy.deadline {
                if start.elapsed() + wait > deadline {
                    break outcome;
                }
            }
            log::debug!(
                "retrying {} {} in {:?} (attempt {} of {})",
                spec.method,
                spec.redacted_url(),
                wait,
                attempt + 1,
                policy.attempts
            );
            tokio::time::sleep(wait).await;
        };
        if let (Some(key), Ok(data)) = (cache_key, &result) {
            if (200..300).contains(&data.status) {
                self.cache_put(key, data);
            }
        }
        result
    }

    /// Streams a response body into a file; returns the bytes written.
    pub async fn download(self: &Arc<Self>, spec: RequestSpec, path: PathBuf) -> Result<u64> {
        self.check_usable()?;
        let _permits = self.permits(&spec.url).await;
        let mut resp = self.send(&spec).await?;
        if resp.status().as_u16() >= 400 {
            let status = resp.status().as_u16();
            let url = crate::errors::redact_url(resp.url());
            return Err(Error::HttpStatus {
                status,
                msg: format!(
                    "download failed: '{status} {}' for url '{url}'",
                    crate::http::response::reason_of(status)
                ),
                url,
            });
        }
        self.check_length(resp.content_length(), &spec)?;
        let file = tokio::fs::File::create(&path).await?;
        let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut written: u64 = 0;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| from_reqwest(e, &spec.redacted_url()))?
        {
            written += chunk.len() as u64;
            if self.max_body_size.is_some_and(|m| written > m) {
                drop(out);
                let _ = tokio::fs::remove_file(&path).await;
                return Err(body_too_large(self.max_body_size.unwrap_or(0), &spec));
            }
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        Ok(written)
    }
}

/// `host[:port]` of a URL, the label of its metrics and breaker.
fn host_label(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => String::new(),
    }
}

/// Index into [`CLASSES`] of a status code.
fn status_class(status: u16) -> usize {
    match status / 100 {
        1 => 0,
        2 => 1,
        3 => 2,
        4 => 3,
        _ => 4,
    }
}

fn outcome_of(outcome: &Result<ResponseData>) -> metrics::Outcome {
    match outcome {
        Ok(r) if r.status < 500 => metrics::Outcome::Ok,
        _ => metrics::Outcome::Error,
    }
}

fn body_too_large(max: u64, spec: &RequestSpec) -> Error {
    Error::http(
        HttpErrorKind::BodyTooLarge,
        format!(
            "the response body from {} is larger than max_body_size ({max} bytes)",
            spec.redacted_url()
        ),
    )
}

/// The process's default client (module-level fetch_all and friends),
/// created on first use and anew after a fork.
pub fn default_client() -> Result<Arc<ClientInner>> {
    static DEFAULT: Mutex<Option<Arc<ClientInner>>> = Mutex::new(None);
    let mut slot = DEFAULT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = slot.as_ref() {
        if c.generation == generation() {
            return Ok(Arc::clone(c));
        }
        // The parent's pool holds sockets shared with the parent: never touch them.
        std::mem::forget(slot.take());
    }
    let c = ClientInner::build(ClientConfig {
        verify: true,
        follow_redirects: true,
        max_redirects: 10,
        ..ClientConfig::default()
    })?;
    *slot = Some(Arc::clone(&c));
    Ok(c)
}

/// A response whose body is read piece by piece (`Client.stream`).
pub struct StreamState {
    pub resp: Option<reqwest::Response>,
    pub url: String,
    _permits: Permits,
}

/// `fastio.Client(...)`: a connection pool with defaults for its requests.
#[pyclass(frozen, module = "fastio._fastio")]
pub struct Client {
    pub inner: Arc<ClientInner>,
}

fn read_ca_file(path: &str) -> PyResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::InvalidArgument(format!("Client(): cannot read ca_file {path:?}: {e}")).into()
    })
}

impl Client {
    fn spec(
        &self,
        py: Python<'_>,
        func: &str,
        method: &str,
        url: &Bound<'_, PyAny>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<RequestSpec> {
        let mut args = RequestArgs::default();
        let (mut headers, mut params, mut json, mut data, mut content, mut timeout) =
            (None, None, None, None, None, None);
        if let Some(kw) = kwargs {
            for (k, v) in kw.iter() {
                let key: String = k.extract()?;
                match key.as_str() {
                    "headers" => headers = Some(v),
                    "params" => params = Some(v),
                    "json" => json = Some(v),
                    "data" => data = Some(v),
                    "content" => content = Some(v),
                    "timeout" => timeout = Some(v),
                    other => {
                        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                            "{func}() got an unexpected keyword argument {other:?}"
                        )))
                    }
                }
            }
        }
        args.headers = headers.as_ref();
        args.params = params.as_ref();
        args.json = json.as_ref();
        args.data = data.as_ref();
        args.content = content.as_ref();
        args.timeout = TimeoutArg::parse(func, "timeout", timeout.as_ref())?;
        build_spec(py, func, self.inner.base_url.as_ref(), method, url, &args)
    }

    fn send<'py>(&self, py: Python<'py>, spec: RequestSpec) -> PyResult<Bound<'py, Awaitable>> {
        let inner = Arc::clone(&self.inner);
        future_into_py(py, async move {
            inner.execute(spec, None).await.map(ResponseOut)
        })
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (
        base_url = None, *, headers = None, timeout = crate::http::fetch_all::DEFAULT_TIMEOUT,
        connect_timeout = None,
        max_connections = None, max_connections_per_host = None, http2 = false, verify = true,
        ca_file = None, proxy = None, follow_redirects = true, max_redirects = 10, retry = None,
        breaker = None, cache_ttl = None, max_body_size = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        base_url: Option<String>,
        headers: Option<&Bound<'_, PyAny>>,
        timeout: TimeoutArg,
        connect_timeout: Option<&Bound<'_, PyAny>>,
        max_connections: Option<usize>,
        max_connections_per_host: Option<usize>,
        http2: bool,
        verify: bool,
        ca_file: Option<String>,
        proxy: Option<String>,
        follow_redirects: bool,
        max_redirects: usize,
        retry: Option<&Bound<'_, Retry>>,
        breaker: Option<&Bound<'_, PyAny>>,
        cache_ttl: Option<&Bound<'_, PyAny>>,
        max_body_size: Option<u64>,
    ) -> PyResult<Self> {
        const F: &str = "Client";
        let breaker = match breaker.filter(|b| !b.is_none()) {
            None => None,
            Some(b) => Some(Arc::clone(
                b.cast::<CircuitBreaker>()
                    .map_err(|_| {
                        arg_type_error(F, "breaker", "a fastio.CircuitBreaker or None", b)
                    })?
                    .get()
                    .core(),
            )),
        };
        if max_connections == Some(0) || max_connections_per_host == Some(0) {
            return Err(Error::InvalidArgument(
                "Client(): max_connections and max_connections_per_host must be >= 1".into(),
            )
            .into());
        }
        let base_url = base_url
            .map(|b| crate::http::request::resolve_url(None, &b))
            .transpose()
            .map_err(|e| Error::InvalidArgument(format!("Client(): base_url: {e}")))?;
        let mut hm = HeaderMap::new();
        if let Some(h) = headers {
            parse_headers(F, h, &mut hm)?;
        }
        let secs = |name: &str, o: Option<&Bound<'_, PyAny>>| -> PyResult<Option<Duration>> {
            o.map(|o| parse_seconds(F, name, o))
                .transpose()
                .map(Option::flatten)
        };
        let cfg = ClientConfig {
            base_url,
            headers: hm,
            timeout: timeout.or(None),
            connect_timeout: secs("connect_timeout", connect_timeout)?,
            max_connections,
            max_connections_per_host,
            http2,
            verify,
            ca_pem: ca_file.as_deref().map(read_ca_file).transpose()?,
            proxy,
            follow_redirects,
            max_redirects,
            retry: retry.map(|r| r.get().policy.clone()),
            cache_ttl: secs("cache_ttl", cache_ttl)?,
            max_body_size,
            breaker,
        };
        Ok(Client {
            inner: ClientInner::build(cfg)?,
        })
    }

    /// `await client.request(method, url, **kw)` -> Response.
    #[pyo3(signature = (method, url, **kwargs))]
    fn request<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        url: &Bound<'py, PyAny>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let spec = self.spec(py, "request", method, url, kwargs)?;
        self.send(py, spec)
    }

    #[pyo3(signature = (url, **kwargs))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        url: &Bound<'py, PyAny>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let spec = self.spec(py, "get", "GET", url, kwargs)?;
        self.send(py, spec)
    }

    #[pyo3(signature = (url, **kwargs))]
    fn post<'py>(
        &self,
        py: Python<'py>,
        url: &Bound<'py, PyAny>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let spec = self.spec(py, "post", "POST", url, kwargs)?;
        self.send(py, spec)
    }

    #[pyo3(signature = (url, **kwargs))]
    fn put<'py>(
        &self,
        py: Python<'py>,
        url: &Bound<'py, PyAny>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let spec = self.spec(py, "put", "PUT", url, kwargs)?;
        self.send(py, spec)
    }

    #[pyo3(signature = (url, **kwargs))]
    fn patch<'py>(
        &self,
        py: Python<'py>,
        url: &Bound<'py, PyAny>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let spec = self.spec(py, "patch", "PATCH", url, kwargs)?;
        self.send(py, spec)
    }

    #[pyo3(signature = (url, **kwargs))]
    fn delete<'py>(
        &self,
        py: Python<'py>,
        url: &Bound<'py, PyAny>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let spec = self.spec(py, "delete", "DELETE", url, kwargs)?;
        self.send(py, spec)
    }

    #[pyo3(signature = (url, **kwargs))]
    fn head<'py>(
        &self,
        py: Python<'py>,
        url: &Bound<'py, PyAny>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let spec = self.spec(py, "head", "HEAD", url, kwargs)?;
        self.send(py, spec)
    }

    #[pyo3(signature = (url, **kwargs))]
    fn options<'py>(
        &self,
        py: Python<'py>,
        url: &Bound<'py, PyAny>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let spec = self.spec(py, "options", "OPTIONS", url, kwargs)?;
        self.send(py, spec)
    }

    /// `async with client.stream(method, url, **kw) as r: async for chunk in r.aiter_bytes()`.
    #[pyo3(signature = (method, url, **kwargs))]
    fn stream(
        &self,
        py: Python<'_>,
        method: &str,
        url: &Bound<'_, PyAny>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<crate::http::stream::StreamContext> {
        let spec = self.spec(py, "stream", method, url, kwargs)?;
        Ok(crate::http::stream::StreamContext::new(
            Arc::clone(&self.inner),
            spec,
        ))
    }

    /// `await client.download(url, path)`: streams the body into a file;
    /// returns the number of bytes written.
    #[pyo3(signature = (url, path, **kwargs))]
    fn download<'py>(
        &self,
        py: Python<'py>,
        url: &Bound<'py, PyAny>,
        path: PathBuf,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        let spec = self.spec(py, "download", "GET", url, kwargs)?;
        let inner = Arc::clone(&self.inner);
        future_into_py(py, async move { inner.download(spec, path).await })
    }

    /// `await client.fetch_all(requests, ...)`: fetch_all through this client
    /// (an omitted timeout means the client's).
    #[pyo3(signature = (
        requests, *, concurrency = 100, timeout = TimeoutArg::Unset, total_timeout = None,
        retry = None, return_exceptions = true, progress = None, headers = None, params = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn fetch_all<'py>(
        slf: &Bound<'py, Self>,
        requests: &Bound<'py, PyAny>,
        concurrency: usize,
        timeout: TimeoutArg,
        total_timeout: Option<&Bound<'py, PyAny>>,
        retry: Option<&Bound<'py, Retry>>,
        return_exceptions: bool,
        progress: Option<&Bound<'py, PyAny>>,
        headers: Option<&Bound<'py, PyAny>>,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        crate::http::fetch_all::fetch_all(
            slf.py(),
            requests,
            concurrency,
            timeout,
            total_timeout,
            retry,
            return_exceptions,
            Some(slf),
            progress,
            headers,
            params,
        )
    }

    /// `async for i, r in client.fetch_iter(requests, ...)`.
    #[pyo3(signature = (
        requests, *, concurrency = 100, timeout = TimeoutArg::Unset, total_timeout = None,
        retry = None, return_exceptions = true, headers = None, params = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn fetch_iter(
        slf: &Bound<'_, Self>,
        requests: &Bound<'_, PyAny>,
        concurrency: usize,
        timeout: TimeoutArg,
        total_timeout: Option<&Bound<'_, PyAny>>,
        retry: Option<&Bound<'_, Retry>>,
        return_exceptions: bool,
        headers: Option<&Bound<'_, PyAny>>,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<crate::http::fetch_all::FetchIter> {
        crate::http::fetch_all::fetch_iter(
            slf.py(),
            requests,
            concurrency,
            timeout,
            total_timeout,
            retry,
            return_exceptions,
            Some(slf),
            headers,
            params,
        )
    }

    /// Closes the client: later requests raise InterfaceError; idle
    /// connections are dropped with the last reference to the pool.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, Awaitable>> {
        self.inner.closed.store(true, Ordering::Release);
        self.inner
            .http
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(lean) = &self.inner.lean {
            lean.clear();
        }
        self.inner
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        future_into_py(py, async move { Ok(ReturnNone) })
    }

    #[getter]
    fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    #[getter]
    fn base_url(&self) -> Option<String> {
        self.inner.base_url.as_ref().map(crate::errors::redact_url)
    }

    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, Awaitable>> {
        let py = slf.py();
        let me = slf.unbind();
        future_into_py(py, async move { Ok(me) })
    }

    #[pyo3(signature = (*_args))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _args: &Bound<'py, pyo3::types::PyTuple>,
    ) -> PyResult<Bound<'py, Awaitable>> {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        match &self.inner.base_url {
            Some(b) => format!("<fastio.Client base_url={}>", crate::errors::redact_url(b)),
            None => "<fastio.Client>".to_owned(),
        }
    }
}

impl StreamState {
    pub async fn open(
        inner: &Arc<ClientInner>,
        spec: &RequestSpec,
    ) -> Result<(Self, ResponseData)> {
        inner.check_usable()?;
        let permits = inner.permits(&spec.url).await;
        let start = Instant::now();
        let mut resp = inner.send(spec).await?;
        inner.check_length(resp.content_length(), spec)?;
        let meta = ResponseData {
            status: resp.status().as_u16(),
            version: resp.version(),
            url: Arc::from(crate::errors::redact_url(resp.url())),
            headers: Arc::new(std::mem::take(resp.headers_mut())),
            body: Bytes::new(),
            py_body: None,
            elapsed: start.elapsed(),
            from_cache: false,
        };
        Ok((
            StreamState {
                resp: Some(resp),
                url: spec.redacted_url(),
                _permits: permits,
            },
            meta,
        ))
    }

    pub fn max_body_size(inner: &ClientInner) -> Option<u64> {
        inner.max_body_size
    }
}

pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    Ok(())
}
