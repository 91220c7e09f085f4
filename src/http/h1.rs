//! A lean HTTP/1.1 path for the common request: a GET without a body to a
//! plain `http://` URL (no credentials, no fragment) on a client without
//! HTTP/2 or a proxy. It writes the request itself and parses the response
//! with httparse over a pooled tokio `TcpStream`, which costs a fraction of
//! reqwest's per-request work (request building, the tower stack, hyper's
//! dispatcher task, its pool, moves of large futures): benches/bench_http.py
//! H1.
//!
//! Everything observable stays as on the reqwest path: the same request
//! headers (reqwest's default headers, tower-http's Accept-Encoding,
//! hyper's Host), the same decoding of gzip/deflate/br/zstd bodies (the same
//! async-compression decoders, Content-Encoding and Content-Length removed),
//! the same errors for the failures it reports itself (hyper's and reqwest's
//! messages), and the response (status, version, headers with repeats, url,
//! body). Whatever it does not handle goes to reqwest, which then sends the
//! request as it always did: a connection that cannot be made (reqwest
//! reports it), a redirect to follow, a 1xx response, a response head or
//! framing out of the ordinary, a body that does not decode. A GET is
//! idempotent, so a request the server already answered that way may be sent
//! again.
//!
//! `FASTIO_HTTP_LEAN=0` (read when a client is built) turns it off.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, ACCEPT_ENCODING, CONNECTION, CONTENT_ENCODING,
    CONTENT_LENGTH, HOST, LOCATION, TRANSFER_ENCODING, USER_AGENT,
};
use reqwest::{Method, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use url::{Host, Position};

use crate::errors::{Error, HttpErrorKind, Result};
use crate::http::client::{BodySource, ClientConfig, ClientInner};
use crate::http::request::RequestSpec;
use crate::http::response::ResponseData;

/// tower-http's Accept-Encoding with gzip, deflate, br and zstd enabled
/// (`compression_utils::AcceptEncoding::to_header_value`).
const ACCEPT_ENCODING_VALUE: &str = "zstd,gzip,deflate,br";

/// reqwest's pool keeps idle connections this long (`pool_idle_timeout`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// hyper's default limit on response header fields.
const MAX_HEADERS: usize = 100;

/// A response head larger than this goes to reqwest (hyper's own limit is
/// ~400 KB; such heads are rare enough not to matter here).
const MAX_HEAD: usize = 64 * 1024;

/// Read buffer of a connection.
const READ_BUF: usize = 16 * 1024;

/// Bodies up to this size are copied out of the read buffer, which is then
/// reused; larger pieces are split off without a copy.
const COPY_MAX: usize = 4096;

/// Requests that took the lean path, and those of them handed to reqwest
/// (for the tests: `_fastio._http_lean_stats()`).
static TAKEN: AtomicU64 = AtomicU64::new(0);
static HANDED_OVER: AtomicU64 = AtomicU64::new(0);

pub fn stats() -> (u64, u64) {
    (
        TAKEN.load(Ordering::Relaxed),
        HANDED_OVER.load(Ordering::Relaxed),
    )
}

/// The lean path of one client: its request headers and idle connections.
pub struct Lean {
    /// The headers reqwest adds to every request, in its order: `accept`,
    /// the client's default headers (one value per name, as reqwest's
    /// `ClientBuilder::default_headers` inserts them), `user-agent`.
    defaults: HeaderMap,
    /// `defaults` plus `accept-encoding`, written out: the header block of
    /// a request without headers of its own (before `host`).
    default_block: Vec<u8>,
    connect_timeout: Option<Duration>,
    follow_redirects: bool,
    /// Idle connections by `host:port`, most recently used last.
    idle: Mutex<HashMap<Box<str>, Vec<Idle>>>,
    max_idle_per_host: usize,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// One connection and what it has read beyond the last response.
struct Conn {
    io: TcpStream,
    buf: BytesMut,
}

/// Why the lean path gave up on a request.
enum Stop {
    /// reqwest takes the request from the start.
    Fallback,
    /// The request failed; this is the error reqwest would report.
    Fail(Error),
    /// The connection closed in the middle of the response head.
    Incomplete,
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Fail(e)
    }
}

/// Where a request was when its timeout passed (reqwest words the two
/// differently).
const PHASE_HEAD: u8 = 0;
const PHASE_BODY: u8 = 1;

/// How the body of a response is delimited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked(Chunked),
    /// Until the server closes the connection.
    Eof,
    Done,
}

/// hyper's chunked decoder states (`proto::h1::decode::ChunkedState`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Start,
    Size,
    SizeLws,
    Extension,
    SizeLf,
    Body,
    BodyCr,
    BodyLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
}

/// Where a chunked body is, with hyper's counters and limits.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Chunked {
    state: Chunk,
    size: u64,
    extensions: u64,
    trailers: usize,
}

/// hyper's limits on chunk extensions and trailers.
const CHUNKED_EXTENSIONS_LIMIT: u64 = 16 * 1024;
const TRAILER_LIMIT: usize = 16 * 1024;

/// A parsed response head.
struct Head {
    status: u16,
    version: Version,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

fn write_header(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Whether hyper would send this path and query as they are (reqwest turns
/// the `Url` into an `http::Uri`, which refuses a few characters `url`
/// lets through): anything else goes to reqwest.
fn plain_target(target: &str) -> bool {
    !target.is_empty()
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b))
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

impl Lean {
    /// The lean path of a client with this configuration, or None when its
    /// requests need reqwest (HTTP/2, a proxy) or `FASTIO_HTTP_LEAN=0`.
    pub fn new(cfg: &ClientConfig, user_agent: &'static str) -> Option<Self> {
        if cfg.http2 || cfg.proxy.is_some() {
            return None;
        }
        if std::env::var("FASTIO_HTTP_LEAN").is_ok_and(|v| v.trim() == "0") {
            return None;
        }
        let mut defaults = HeaderMap::new();
        defaults.insert(ACCEPT, HeaderValue::from_static("*/*"));
        for (k, v) in &cfg.headers {
            defaults.insert(k, v.clone());
        }
        defaults.insert(USER_AGENT, HeaderValue::from_static(user_agent));
        let mut default_block = Vec::with_capacity(128);
        for (k, v) in &defaults {
            write_header(&mut default_block, k, v);
        }
        if !defaults.contains_key(ACCEPT_ENCODING) {
            write_header(
                &mut default_block,
                &ACCEPT_ENCODING,
                &HeaderValue::from_static(ACCEPT_ENCODING_VALUE),
            );
        }
        Some(Lean {
            defaults,
            default_block,
            connect_timeout: cfg.connect_timeout,
            follow_redirects: cfg.follow_redirects,
            idle: Mutex::new(HashMap::new()),
            max_idle_per_host: cfg.max_connections_per_host.unwrap_or(usize::MAX),
        })
    }

    /// Drops the idle connections (the client was closed).
    pub fn clear(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Whether `spec` can take the lean path at all.
    pub fn eligible(spec: &RequestSpec) -> bool {
        let url = &spec.url;
        spec.method == Method::GET
            && spec.body.is_none()
            && url.scheme() == "http"
            && url.username().is_empty()
            && url.password().is_none()
            && url.fragment().is_none()
            && plain_target(&url[Position::BeforePath..Position::AfterQuery])
    }

    /// One attempt (no retries): the response with its whole body, or None
    /// when reqwest must take the request.
    pub async fn attempt(
        &self,
        client: &ClientInner,
        spec: &RequestSpec,
        timeout: Option<Duration>,
        start: Instant,
    ) -> Option<Result<ResponseData>> {
        TAKEN.fetch_add(1, Ordering::Relaxed);
        let phase = AtomicU8::new(PHASE_HEAD);
        let run = self.run(client, spec, &phase, start);
        let out = match timeout {
            Some(t) => match tokio::time::timeout(t, run).await {
                Ok(out) => out,
                Err(_) => {
                    return Some(Err(timed_out(spec, phase.load(Ordering::Relaxed))));
                }
            },
            None => run.await,
        };
        match out {
            Ok(data) => Some(Ok(data)),
            Err(Stop::Fallback) => {
                HANDED_OVER.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(Stop::Fail(e)) => Some(Err(e)),
            Err(Stop::Incomplete) => Some(Err(closed_before_response(spec))),
        }
    }

    async fn run(
        &self,
        client: &ClientInner,
        spec: &RequestSpec,
        phase: &AtomicU8,
        start: Instant,
    ) -> std::result::Result<ResponseData, Stop> {
        let url = &spec.url;
        let port = url.port_or_known_default().ok_or(Stop::Fallback)?;
        // `host[:port]` (no credentials here): the pool's key, and the Host
        // header hyper writes (the port only when it is not the default).
        let authority = url.authority();
        let request = self.request_bytes(spec, authority)?;
        let (mut conn, head) = loop {
            let (mut conn, reused) = match self.checkout(authority) {
                Some(c) => (c, true),
                None => (self.connect(spec, port).await?, false),
            };
            match conn.exchange(&request).await {
                Ok(Some(head)) => break (conn, head),
                // The server closed a kept-alive connection before it saw
                // this request (or before answering it): a fresh one, as
                // hyper does for a request that was not answered.
                Ok(None) | Err(Stop::Fail(_)) if reused => continue,
                Ok(None) | Err(Stop::Incomplete) => {
                    return Err(Stop::Fail(closed_before_response(spec)))
                }
                Err(Stop::Fail(_) | Stop::Fallback) => return Err(Stop::Fallback),
            }
        };
        if (100..200).contains(&head.status)
            || (self.follow_redirects
                && matches!(head.status, 301 | 302 | 303 | 307 | 308)
                && head.headers.contains_key(LOCATION))
        {
            return Err(Stop::Fallback);
        }
        phase.store(PHASE_BODY, Ordering::Relaxed);
        let Head {
            status,
            version,
            mut headers,
            framing,
            keep_alive,
        } = head;
        let decoder = match headers.get(CONTENT_ENCODING).map(HeaderValue::as_bytes) {
            Some(b"gzip") => Some(Coding::Gzip),
            Some(b"deflate") => Some(Coding::Deflate),
            Some(b"br") => Some(Coding::Brotli),
            Some(b"zstd") => Some(Coding::Zstd),
            _ => None,
        };
        let mut body = LeanBody {
            conn: &mut conn,
            framing,
            spec,
            trailers: None,
        };
        let (body, py_body) = match decoder {
            None => client.read_body(&mut body, spec).await?,
            Some(coding) => {
                let raw = body.read_all().await?;
                let decoded = coding
                    .decode(raw, client.max_body_size())
                    .await
                    .map_err(|()| Stop::Fallback)?;
                headers.remove(CONTENT_ENCODING);
                headers.remove(CONTENT_LENGTH);
                client.read_body(&mut Whole(Some(decoded)), spec).await?
            }
        };
        if keep_alive && client.is_open() {
            self.checkin(authority, conn);
        }
        Ok(ResponseData {
            status,
            version,
            url: std::sync::Arc::from(url.as_str()),
            headers: std::sync::Arc::new(headers),
            body,
            py_body,
            elapsed: start.elapsed(),
            from_cache: false,
        })
    }

    /// The request as hyper would write it after reqwest and tower-http
    /// added their headers.
    fn request_bytes(
        &self,
        spec: &RequestSpec,
        authority: &str,
    ) -> std::result::Result<Vec<u8>, Stop> {
        let url = &spec.url;
        let target = &url[Position::BeforePath..Position::AfterQuery];
        let mut out =
            Vec::with_capacity(32 + target.len() + self.default_block.len() + authority.len());
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if spec.headers.is_empty() {
            out.extend_from_slice(&self.default_block);
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(authority.as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            let mut headers = spec.headers.clone();
            for (k, v) in &self.defaults {
                if let reqwest::header::Entry::Vacant(e) = headers.entry(k) {
                    e.insert(v.clone());
                }
            }
            if !headers.contains_key(ACCEPT_ENCODING) {
                headers.insert(
                    ACCEPT_ENCODING,
                    HeaderValue::from_static(ACCEPT_ENCODING_VALUE),
                );
            }
            if !headers.contains_key(HOST) {
                let host = HeaderValue::from_str(authority).map_err(|_| Stop::Fallback)?;
                headers.insert(HOST, host);
            }
            for (k, v) in &headers {
                write_header(&mut out, k, v);
            }
        }
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }

    fn checkout(&self, key: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(key)?;
        while let Some(i) = list.pop() {
            if i.since.elapsed() < IDLE_TIMEOUT {
                return Some(i.conn);
            }
        }
        None
    }

    fn checkin(&self, key: &str, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let entry = Idle {
            conn,
            since: Instant::now(),
        };
        match idle.get_mut(key) {
            Some(list) if list.len() < self.max_idle_per_host => list.push(entry),
            Some(_) => {}
            None => {
                idle.insert(key.into(), vec![entry]);
            }
        }
    }

    /// A new connection; a failure goes to reqwest, which reports it (or
    /// gets through where this simple connector did not), except a connect
    /// timeout, which would only pass a second time.
    async fn connect(&self, spec: &RequestSpec, port: u16) -> std::result::Result<Conn, Stop> {
        let url = &spec.url;
        let connect = async {
            let addrs: Vec<std::net::SocketAddr> = match url.host() {
                Some(Host::Ipv4(ip)) => vec![(ip, port).into()],
                Some(Host::Ipv6(ip)) => vec![(ip, port).into()],
                Some(Host::Domain(d)) => tokio::net::lookup_host((d, port))
                    .await
                    .map_err(|_| Stop::Fallback)?
                    .collect(),
                None => return Err(Stop::Fallback),
            };
            for addr in addrs {
                if let Ok(io) = TcpStream::connect(addr).await {
                    io.set_nodelay(true).map_err(|_| Stop::Fallback)?;
                    return Ok(Conn {
                        io,
                        buf: BytesMut::with_capacity(READ_BUF),
                    });
                }
            }
            Err(Stop::Fallback)
        };
        match self.connect_timeout {
            Some(t) => tokio::time::timeout(t, connect)
                .await
                .map_err(|_| Stop::Fail(connect_timed_out(spec)))?,
            None => connect.await,
        }
    }
}

impl Conn {
    /// Sends the request and reads the response head. `Ok(None)`: the
    /// connection was closed before any byte of a response arrived.
    async fn exchange(&mut self, request: &[u8]) -> std::result::Result<Option<Head>, Stop> {
        self.buf.clear();
        self.io
            .write_all(request)
            .await
            .map_err(|e| Stop::Fail(e.into()))?;
        loop {
            if !self.buf.is_empty() {
                if let Some(head) = self.parse_head()? {
                    return Ok(Some(head));
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(Stop::Fallback);
                }
            }
            self.buf.reserve(READ_BUF / 2);
            let n = self
                .io
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| Stop::Fail(e.into()))?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Stop::Incomplete)
                };
            }
        }
    }

    /// The head at the start of the buffer (consumed), None if incomplete.
    fn parse_head(&mut self) -> std::result::Result<Option<Head>, Stop> {
        let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut raw);
        let len = match resp.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(Stop::Fallback),
        };
        let status = resp.code.ok_or(Stop::Fallback)?;
        let version = match resp.version {
            Some(1) => Version::HTTP_11,
            Some(0) => Version::HTTP_10,
            _ => return Err(Stop::Fallback),
        };
        let mut headers = HeaderMap::with_capacity(resp.headers.len());
        for h in resp.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| Stop::Fallback)?;
            let value = HeaderValue::from_bytes(h.value).map_err(|_| Stop::Fallback)?;
            headers.append(name, value);
        }
        let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
            Framing::Done
        } else if headers.contains_key(TRANSFER_ENCODING) {
            let mut te = headers.get_all(TRANSFER_ENCODING).iter();
            match (te.next(), te.next()) {
                (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"chunked") => {
                    Framing::Chunked(Chunked {
                        state: Chunk::Start,
                        size: 0,
                        extensions: 0,
                        trailers: 0,
                    })
                }
                _ => return Err(Stop::Fallback),
            }
        } else if headers.contains_key(CONTENT_LENGTH) {
            let mut cl = headers.get_all(CONTENT_LENGTH).iter();
            match (cl.next(), cl.next()) {
                (Some(v), None) => {
                    let text = v.to_str().map_err(|_| Stop::Fallback)?;
                    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(Stop::Fallback);
                    }
                    match text.parse::<u64>().map_err(|_| Stop::Fallback)? {
                        0 => Framing::Done,
                        n => Framing::Length(n),
                    }
                }
                _ => return Err(Stop::Fallback),
            }
        } else {
            Framing::Eof
        };
        let keep_alive = version == Version::HTTP_11
            && framing != Framing::Eof
            && !has_token(&headers, &CONNECTION, "close");
        self.buf.advance(len);
        Ok(Some(Head {
            status,
            version,
            headers,
            framing,
            keep_alive,
        }))
    }

    /// Reads more into the buffer; false at end of stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        self.buf.reserve(READ_BUF);
        Ok(self.io.read_buf(&mut self.buf).await? > 0)
    }

    /// Up to `max` buffered bytes.
    fn take(&mut self, max: usize) -> Bytes {
        let n = max.min(self.buf.len());
        if n <= COPY_MAX {
            let out = Bytes::copy_from_slice(&self.buf[..n]);
            self.buf.advance(n);
            out
        } else {
            self.buf.split_to(n).freeze()
        }
    }
}

/// The body of a lean response, piece by piece.
struct LeanBody<'a> {
    conn: &'a mut Conn,
    framing: Framing,
    spec: &'a RequestSpec,
    /// The trailers of a chunked body, once they start.
    trailers: Option<Vec<u8>>,
}

impl LeanBody<'_> {
    /// The whole (raw) body.
    async fn read_all(&mut self) -> Result<Bytes> {
        let mut out = BytesMut::new();
        while let Some(c) = self.chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out.freeze())
    }

    /// More bytes from the connection; an error at end of stream, since the
    /// body was not complete.
    async fn fill(&mut self) -> Result<()> {
        match self.conn.fill().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(body_error(
                self.spec,
                "end of file before message length reached",
            )),
            Err(e) => Err(body_error(self.spec, &e.to_string())),
        }
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::Length(left) => {
                    if self.conn.buf.is_empty() {
                        self.fill().await?;
                    }
                    let piece = self.conn.take(usize::try_from(left).unwrap_or(usize::MAX));
                    let left = left - piece.len() as u64;
                    self.framing = if left == 0 {
                        Framing::Done
                    } else {
                        Framing::Length(left)
                    };
                    return Ok(Some(piece));
                }
                Framing::Eof => {
                    if self.conn.buf.is_empty() {
                        match self.conn.fill().await {
                            Ok(true) => {}
                            Ok(false) => {
                                self.framing = Framing::Done;
                                return Ok(None);
                            }
                            Err(e) => return Err(body_error(self.spec, &e.to_string())),
                        }
                    }
                    return Ok(Some(self.conn.take(usize::MAX)));
                }
                Framing::Chunked(mut c) => {
                    let out = self.step_chunked(&mut c).await;
                    self.framing = Framing::Chunked(c);
                    match out? {
                        ChunkStep::Data(piece) => return Ok(Some(piece)),
                        ChunkStep::More => {}
                        ChunkStep::End => self.framing = Framing::Done,
                    }
                }
            }
        }
    }

    /// One byte of a chunk's framing (hyper's `byte!`).
    async fn byte(&mut self) -> Result<u8> {
        if self.conn.buf.is_empty() {
            match self.conn.fill().await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(body_error(
                        self.spec,
                        "unexpected EOF during chunk size line",
                    ))
                }
                Err(e) => return Err(body_error(self.spec, &e.to_string())),
            }
        }
        let b = self.conn.buf[0];
        self.conn.buf.advance(1);
        Ok(b)
    }

    /// One step of hyper's chunked decoder, its error messages included.
    async fn step_chunked(&mut self, c: &mut Chunked) -> Result<ChunkStep> {
        let spec = self.spec;
        let bad = |msg: &str| Err(body_error(spec, msg));
        fn hex(b: u8) -> Option<u64> {
            (b as char).to_digit(16).map(u64::from)
        }
        let push = |c: &mut Chunked, digit: u64| -> Option<()> {
            c.size = c.size.checked_mul(16)?.checked_add(digit)?;
            Some(())
        };
        match c.state {
            Chunk::Start => {
                let b = self.byte().await?;
                let Some(d) = hex(b) else {
                    return bad("Invalid chunk size line: missing size digit");
                };
                if push(c, d).is_none() {
                    return bad("invalid chunk size: overflow");
                }
                c.state = Chunk::Size;
            }
            Chunk::Size => match self.byte().await? {
                b'\t' | b' ' => c.state = Chunk::SizeLws,
                b';' => c.state = Chunk::Extension,
                b'\r' => c.state = Chunk::SizeLf,
                b => {
                    let Some(d) = hex(b) else {
                        return bad("Invalid chunk size line: Invalid Size");
                    };
                    if push(c, d).is_none() {
                        return bad("invalid chunk size: overflow");
                    }
                }
            },
            Chunk::SizeLws => match self.byte().await? {
                b'\t' | b' ' => {}
                b';' => c.state = Chunk::Extension,
                b'\r' => c.state = Chunk::SizeLf,
                _ => return bad("Invalid chunk size linear white space"),
            },
            Chunk::Extension => match self.byte().await? {
                b'\r' => c.state = Chunk::SizeLf,
                b'\n' => return bad("invalid chunk extension contains newline"),
                _ => {
                    c.extensions += 1;
                    if c.extensions >= CHUNKED_EXTENSIONS_LIMIT {
                        return bad("chunk extensions over limit");
                    }
                }
            },
            Chunk::SizeLf => match self.byte().await? {
                b'\n' if c.size == 0 => c.state = Chunk::EndCr,
                b'\n' => c.state = Chunk::Body,
                _ => return bad("Invalid chunk size LF"),
            },
            Chunk::Body => {
                if self.conn.buf.is_empty() {
                    self.fill().await?;
                }
                let piece = self
                    .conn
                    .take(usize::try_from(c.size).unwrap_or(usize::MAX));
                c.size -= piece.len() as u64;
                if c.size == 0 {
                    c.state = Chunk::BodyCr;
                }
                return Ok(ChunkStep::Data(piece));
            }
            Chunk::BodyCr => match self.byte().await? {
                b'\r' => c.state = Chunk::BodyLf,
                _ => return bad("Invalid chunk body CR"),
            },
            Chunk::BodyLf => match self.byte().await? {
                b'\n' => c.state = Chunk::Start,
                _ => return bad("Invalid chunk body LF"),
            },
            // Trailers are checked as hyper checks them, then dropped (reqwest
            // reads none).
            Chunk::EndCr => {
                let b = self.byte().await?;
                self.trailer_byte(c, b)?;
                c.state = if b == b'\r' {
                    Chunk::EndLf
                } else {
                    Chunk::Trailer
                };
            }
            Chunk::Trailer => {
                let b = self.byte().await?;
                self.trailer_byte(c, b)?;
                if b == b'\r' {
                    c.state = Chunk::TrailerLf;
                }
            }
            Chunk::TrailerLf => match self.byte().await? {
                b'\n' => {
                    if c.trailers >= MAX_HEADERS {
                        return bad("chunk trailers count overflow");
                    }
                    c.trailers += 1;
                    self.trailer_byte(c, b'\n')?;
                    c.state = Chunk::EndCr;
                }
                _ => return bad("Invalid trailer end LF"),
            },
            Chunk::EndLf => match self.byte().await? {
                b'\n' => {
                    self.trailer_byte(c, b'\n')?;
                    return match self.trailers.take() {
                        Some(buf) => check_trailers(&buf, c.trailers)
                            .map(|()| ChunkStep::End)
                            .map_err(|msg| body_error(self.spec, &msg)),
                        None => Ok(ChunkStep::End),
                    };
                }
                _ => return bad("Invalid chunk end LF"),
            },
        }
        Ok(ChunkStep::More)
    }

    /// Keeps a byte of the trailers (hyper starts keeping them at the first
    /// byte after the last chunk that is not CR).
    fn trailer_byte(&mut self, c: &Chunked, b: u8) -> Result<()> {
        let buf = match (&mut self.trailers, c.state, b) {
            (Some(buf), _, _) => buf,
            (None, Chunk::EndCr, b'\r') | (None, Chunk::EndLf, _) => return Ok(()),
            (slot @ None, _, _) => slot.insert(Vec::with_capacity(64)),
        };
        buf.push(b);
        if buf.len() >= TRAILER_LIMIT {
            return Err(body_error(self.spec, "chunk trailers bytes over limit"));
        }
        Ok(())
    }
}

/// What one step of the chunked decoder gave.
enum ChunkStep {
    Data(Bytes),
    More,
    End,
}

/// hyper's check of a chunked body's trailers (`decode_trailers`).
fn check_trailers(buf: &[u8], count: usize) -> std::result::Result<(), String> {
    let mut headers = vec![httparse::EMPTY_HEADER; count];
    match httparse::parse_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete((_, headers))) => {
            for h in headers.iter() {
                if HeaderName::from_bytes(h.name.as_bytes()).is_err() {
                    return Err(format!("Invalid header name: {h:?}"));
                }
                if HeaderValue::from_bytes(h.value).is_err() {
                    return Err(format!("Invalid header value: {h:?}"));
                }
            }
            Ok(())
        }
        Ok(httparse::Status::Partial) => Err("Partial header".into()),
        Err(e) => Err(e.to_string()),
    }
}

impl BodySource for LeanBody<'_> {
    fn content_length(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            Framing::Done => Some(0),
            _ => None,
        }
    }

    async fn chunk(&mut self) -> Result<Option<Bytes>> {
        self.next_chunk().await
    }

    async fn read_into(&mut self, dst: &mut [MaybeUninit<u8>]) -> Result<Option<usize>> {
        let left = match self.framing {
            Framing::Length(left) => left,
            Framing::Done => return Ok(Some(0)),
            Framing::Eof | Framing::Chunked(_) => return Ok(None),
        };
        let want = dst.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = if self.conn.buf.is_empty() {
            let mut out = ReadBuf::uninit(&mut dst[..want]);
            let io = &mut self.conn.io;
            match std::future::poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut out)).await {
                Ok(()) if out.filled().is_empty() => {
                    return Err(body_error(
                        self.spec,
                        "end of file before message length reached",
                    ))
                }
                Ok(()) => out.filled().len(),
                Err(e) => return Err(body_error(self.spec, &e.to_string())),
            }
        } else {
            let n = want.min(self.conn.buf.len());
            for (d, s) in dst[..n].iter_mut().zip(&self.conn.buf[..n]) {
                d.write(*s);
            }
            self.conn.buf.advance(n);
            n
        };
        let left = left - n as u64;
        self.framing = if left == 0 {
            Framing::Done
        } else {
            Framing::Length(left)
        };
        Ok(Some(n))
    }
}

/// A body already in memory (decoded).
struct Whole(Option<Bytes>);

impl BodySource for Whole {
    fn content_length(&self) -> Option<u64> {
        // A decoded body's length is not known ahead (tower-http).
        None
    }

    async fn chunk(&mut self) -> Result<Option<Bytes>> {
        Ok(self.0.take().filter(|b| !b.is_empty()))
    }
}

#[derive(Clone, Copy)]
enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    /// The decoded body, as tower-http's decoders make it; Err when it does
    /// not decode (reqwest then reports it). Stops early past `max` bytes:
    /// read_body then reports the limit.
    async fn decode(self, raw: Bytes, max: Option<u64>) -> std::result::Result<Bytes, ()> {
        use async_compression::tokio::bufread::{
            BrotliDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder,
        };
        let input = std::io::Cursor::new(raw);
        let mut reader: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> = match self {
            Coding::Gzip => Box::pin(GzipDecoder::new(input)),
            Coding::Deflate => Box::pin(ZlibDecoder::new(input)),
            Coding::Brotli => Box::pin(BrotliDecoder::new(input)),
            Coding::Zstd => {
                let mut d = ZstdDecoder::new(input);
                d.multiple_members(true);
                Box::pin(d)
            }
        };
        let cap = max.map_or(u64::MAX, |m| m.saturating_add(1));
        let mut out = BytesMut::new();
        loop {
            if out.len() as u64 >= cap {
                break;
            }
            out.reserve(16 * 1024);
            match reader.read_buf(&mut out).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return Err(()),
            }
        }
        Ok(out.freeze())
    }
}

/// reqwest's error when a request's total timeout passes.
fn timed_out(spec: &RequestSpec, phase: u8) -> Error {
    let what = if phase == PHASE_HEAD {
        "error sending request"
    } else {
        "error decoding response body: request or response body error"
    };
    Error::http(
        HttpErrorKind::ReadTimeout,
        format!(
            "timed out for {}: {what}: operation timed out",
            spec.redacted_url()
        ),
    )
}

/// reqwest's error when the connect timeout passes.
fn connect_timed_out(spec: &RequestSpec) -> Error {
    Error::http(
        HttpErrorKind::ConnectTimeout,
        format!(
            "connect timed out for {}: error sending request: client error (Connect): tcp connect error: deadline has elapsed",
            spec.redacted_url()
        ),
    )
}

/// hyper's error when a new connection closes before a whole response head.
fn closed_before_response(spec: &RequestSpec) -> Error {
    Error::http(
        HttpErrorKind::Read,
        format!(
            "connection broken for {}: error sending request: client error (SendRequest): connection closed before message completed",
            spec.redacted_url()
        ),
    )
}

/// reqwest's error when the body breaks off (it words it as a decoding
/// error).
fn body_error(spec: &RequestSpec, cause: &str) -> Error {
    Error::http(
        HttpErrorKind::Decoding,
        format!(
            "could not decode the response body for {}: error decoding response body: request or response body error: error reading a body from connection: {cause}",
            spec.redacted_url()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_hyper_sends_as_they_are() {
        assert!(plain_target("/a/b?x=1&y=%20"));
        assert!(!plain_target("/a b"));
        assert!(!plain_target("/{x}"));
    }
}
