"""Type stubs for the Rust extension module `fastio._fastio`."""

import builtins
import datetime
import os
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping, Sequence
from contextvars import Context
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")

__version__: str

class Awaitable(Generic[_T]):
    """A fastio coroutine: Rust work that asyncio can await, cancel and gather.

    It is both a coroutine (so ``asyncio.create_task`` and ``TaskGroup``
    accept it) and an asyncio future (so ``gather``/``wait_for`` use it
    directly). Nothing runs until it is first awaited; cancelling it drops the
    Rust future and stops its I/O.
    """

    _asyncio_future_blocking: bool
    def __await__(self) -> Generator[Any, None, _T]: ...
    def __iter__(self) -> Generator[Any, None, _T]: ...
    def __next__(self) -> Any: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any: ...
    def close(self) -> None: ...
    def get_loop(self) -> Any: ...
    def done(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def result(self) -> _T: ...
    def exception(self) -> BaseException | None: ...
    def add_done_callback(
        self, callback: Callable[[Awaitable[_T]], object], /, *, context: Context | None = None
    ) -> None: ...
    def remove_done_callback(self, callback: Callable[[Awaitable[_T]], object], /) -> int: ...
    def cancel(self, msg: Any | None = None) -> bool: ...

class FastIOError(Exception):
    """Base class of every exception fastio raises."""

class InterfaceError(FastIOError):
    """An object was used in a way it does not support (closed, or used after fork)."""

class UsedAfterForkError(InterfaceError):
    """An object created before os.fork() was used in the child process."""

class PanicError(FastIOError):
    """A bug inside fastio's Rust code (a panic) was caught; the process keeps running."""

class TimeoutError(FastIOError, builtins.TimeoutError):
    """A fastio deadline passed. Also a builtin TimeoutError (and asyncio.TimeoutError)."""

class ConnectionError(FastIOError, builtins.ConnectionError):
    """A connection could not be made or was lost. Also a builtin ConnectionError."""

class InvalidArgumentError(FastIOError, ValueError):
    """An argument had a bad value; the message names the argument. Also a ValueError."""

class HTTPError(FastIOError):
    """Base class of the HTTP client's errors."""

class RequestError(HTTPError):
    """An HTTP request failed before a complete response arrived."""

class ConnectError(RequestError, ConnectionError):
    """Could not connect (refused, DNS, unreachable). Also a builtin ConnectionError."""

class TLSError(ConnectError):
    """The TLS handshake failed (e.g. an untrusted certificate)."""

class ReadError(RequestError, ConnectionError):
    """The connection broke while the response was read. Also a builtin ConnectionError."""

class HTTPTimeoutError(RequestError, TimeoutError):
    """An HTTP timeout passed. Also a builtin TimeoutError."""

class ConnectTimeout(HTTPTimeoutError):
    """Connecting took longer than connect_timeout."""

class ReadTimeout(HTTPTimeoutError):
    """The response did not arrive (or finish) within the request timeout."""

class TooManyRedirects(RequestError):
    """More redirects than max_redirects."""

class BodyTooLarge(RequestError):
    """The response body exceeded max_body_size."""

class DecodingError(RequestError, ValueError):
    """The response body could not be decoded (content encoding, charset or JSON)."""

class InvalidURL(HTTPError, InvalidArgumentError):
    """A malformed URL or an unsupported scheme. Also a ValueError."""

class HTTPStatusError(HTTPError):
    """raise_for_status() on a 4xx/5xx response; has .status, .url and .response."""

    status: int
    url: str
    response: Response

# ------------------------------------------------------------------ HTTP

_Timeout = float | None
_Pairs = Mapping[str, Any] | Sequence[tuple[str, Any]]

class Retry:
    """A retry policy for Client, fetch_all and fetch_iter.

    ``attempts`` counts the first try. The wait before retry n is a uniform
    random value in ``[0, min(max_backoff, backoff * factor**(n-1))]`` (full
    jitter; exactly that cap with ``jitter=False``). Responses whose status is
    in ``on_status`` (default 408, 429, 500, 502, 503, 504) and errors that are
    instances of ``on_errors`` (default fastio.ConnectionError and
    fastio.TimeoutError) are retried, for the ``methods`` given (default the
    idempotent ones: GET HEAD OPTIONS PUT DELETE TRACE). On 429/503 a
    ``Retry-After`` header (seconds or HTTP-date) sets the wait when
    ``respect_retry_after``. ``deadline`` bounds the total time in seconds.
    """

    attempts: int
    backoff: float
    factor: float
    max_backoff: float
    jitter: bool
    on_status: list[int]
    on_errors: tuple[type[BaseException], ...]
    respect_retry_after: bool
    methods: list[str]
    deadline: float | None
    def __init__(
        self,
        attempts: int = 3,
        backoff: float = 0.1,
        factor: float = 2.0,
        max_backoff: float = 10.0,
        jitter: bool = True,
        on_status: Iterable[int] | None = None,
        on_errors: type[BaseException] | Iterable[type[BaseException]] | None = None,
        respect_retry_after: bool = True,
        methods: Iterable[str] | None = None,
        deadline: float | None = None,
    ) -> None: ...
    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""

class Request:
    """A request for fetch_all / fetch_iter (a URL string means GET)."""

    method: str
    url: str
    headers: Any
    params: Any
    json: Any
    data: Any
    content: Any
    timeout: Any
    def __init__(
        self,
        method: str,
        url: str,
        *,
        headers: _Pairs | None = None,
        params: _Pairs | None = None,
        json: Any = None,
        data: _Pairs | bytes | str | None = None,
        content: bytes | str | None = None,
        timeout: _Timeout = None,
    ) -> None: ...

class Headers:
    """Response headers: case-insensitive; ``h[name]`` is the first value,
    ``get_all(name)`` every value of a repeated header."""

    def __getitem__(self, key: str) -> str: ...
    def get(self, key: str, default: Any = None) -> Any: ...
    def get_all(self, key: str) -> list[str]: ...
    def getall(self, key: str, default: Any = ...) -> Any: ...
    def keys(self) -> list[str]: ...
    def values(self) -> list[str]: ...
    def items(self) -> list[tuple[str, str]]: ...
    def __contains__(self, key: object) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Any: ...

class Response:
    """An HTTP response. The body stays in Rust until ``content``, ``text``
    or ``json()`` asks for it; ``json()`` parses in Rust."""

    status: int
    status_code: int
    reason: str
    ok: bool
    url: str
    headers: Headers
    content: bytes
    text: str
    encoding: str
    elapsed: datetime.timedelta
    http_version: str
    from_cache: bool
    def json(self) -> Any: ...
    def raise_for_status(self) -> Response:
        """Raise HTTPStatusError for 4xx/5xx; return the response otherwise."""

class StreamResponse:
    """A response from ``Client.stream()``: status and headers, body on demand."""

    status: int
    status_code: int
    reason: str
    ok: bool
    url: str
    headers: Headers
    http_version: str
    def aiter_bytes(self) -> AsyncIterator[bytes]: ...
    def aread(self) -> Awaitable[bytes]: ...
    def aclose(self) -> Awaitable[None]: ...
    def raise_for_status(self) -> StreamResponse: ...

class StreamContext:
    async def __aenter__(self) -> StreamResponse: ...
    async def __aexit__(self, *exc: object) -> None: ...

class FetchIter:
    """``async for index, result in fetch_iter(...)``; ``aclose()`` cancels the rest."""

    def __aiter__(self) -> FetchIter: ...
    def __anext__(self) -> Awaitable[tuple[int, Response | BaseException]]: ...
    def aclose(self) -> Awaitable[None]: ...

_RequestItem = str | Request | Mapping[str, Any]

class Client:
    """A connection pool with defaults for its requests.

    ``timeout`` (seconds for a whole request, default 30, None = none),
    ``connect_timeout``, ``max_connections`` (requests in flight in total) and
    ``max_connections_per_host``, ``http2`` (negotiate HTTP/2 over TLS; off:
    HTTP/1.1 only), ``verify`` / ``ca_file`` (a PEM bundle that replaces the
    system roots), ``proxy`` (URL), ``follow_redirects`` / ``max_redirects``,
    ``retry`` (a Retry), ``cache_ttl`` (seconds: GET responses with a 2xx
    status are cached per URL), ``max_body_size`` (bytes; BodyTooLarge).
    ``breaker=`` is reserved for fastio.CircuitBreaker and must be None.
    """

    base_url: str | None
    is_closed: bool
    def __init__(
        self,
        base_url: str | None = None,
        *,
        headers: _Pairs | None = None,
        timeout: _Timeout = 30.0,
        connect_timeout: _Timeout = None,
        max_connections: int | None = None,
        max_connections_per_host: int | None = None,
        http2: bool = False,
        verify: bool = True,
        ca_file: str | os.PathLike[str] | None = None,
        proxy: str | None = None,
        follow_redirects: bool = True,
        max_redirects: int = 10,
        retry: Retry | None = None,
        breaker: None = None,
        cache_ttl: float | None = None,
        max_body_size: int | None = None,
    ) -> None: ...
    def request(self, method: str, url: str, **kw: Any) -> Awaitable[Response]:
        """Send a request: ``headers=``, ``params=``, ``json=``, ``data=``,
        ``content=``, ``timeout=``."""
    def get(self, url: str, **kw: Any) -> Awaitable[Response]: ...
    def post(self, url: str, **kw: Any) -> Awaitable[Response]: ...
    def put(self, url: str, **kw: Any) -> Awaitable[Response]: ...
    def patch(self, url: str, **kw: Any) -> Awaitable[Response]: ...
    def delete(self, url: str, **kw: Any) -> Awaitable[Response]: ...
    def head(self, url: str, **kw: Any) -> Awaitable[Response]: ...
    def options(self, url: str, **kw: Any) -> Awaitable[Response]: ...
    def stream(self, method: str, url: str, **kw: Any) -> StreamContext:
        """``async with client.stream("GET", url) as r: async for chunk in r.aiter_bytes()``."""
    def download(self, url: str, path: str | os.PathLike[str], **kw: Any) -> Awaitable[int]:
        """Stream the body into ``path``; returns the bytes written."""
    def fetch_all(
        self,
        requests: Iterable[_RequestItem],
        *,
        concurrency: int = 100,
        timeout: _Timeout = ...,
        total_timeout: float | None = None,
        retry: Retry | None = None,
        return_exceptions: bool = True,
        progress: Callable[[int, int], object] | bool | None = None,
        headers: _Pairs | None = None,
        params: _Pairs | None = None,
    ) -> Awaitable[list[Response | BaseException]]:
        """fetch_all through this client (an omitted timeout means the client's)."""
    def fetch_iter(
        self,
        requests: Iterable[_RequestItem],
        *,
        concurrency: int = 100,
        timeout: _Timeout = ...,
        total_timeout: float | None = None,
        retry: Retry | None = None,
        return_exceptions: bool = True,
        headers: _Pairs | None = None,
        params: _Pairs | None = None,
    ) -> FetchIter: ...
    def close(self) -> Awaitable[None]:
        """Close the pool; later requests raise InterfaceError."""
    async def __aenter__(self) -> Client: ...
    async def __aexit__(self, *exc: object) -> None: ...

def fetch_all(
    requests: Iterable[_RequestItem],
    *,
    concurrency: int = 100,
    timeout: _Timeout = 30.0,
    total_timeout: float | None = None,
    retry: Retry | None = None,
    return_exceptions: bool = True,
    client: Client | None = None,
    progress: Callable[[int, int], object] | bool | None = None,
    headers: _Pairs | None = None,
    params: _Pairs | None = None,
) -> Awaitable[list[Response | BaseException]]:
    """Send every request (at most ``concurrency`` in flight) inside Rust and
    return one result per input, in input order: a Response, or the exception
    object (``return_exceptions=True``, the default). With
    ``return_exceptions=False`` the first error is raised and the rest are
    cancelled. Bad items (malformed URL, unserialisable json=) are per-item
    errors. ``timeout`` is per request, ``total_timeout`` for the whole batch
    (unfinished items become HTTPTimeoutError). ``progress``: a callable
    ``(done, total)`` called on the event loop (at most every 100 ms and at
    the end) or True for a bar on stderr. ``headers``/``params`` apply to
    every request. Uses a process-wide default client unless ``client=``.
    """

def fetch_iter(
    requests: Iterable[_RequestItem],
    *,
    concurrency: int = 100,
    timeout: _Timeout = 30.0,
    total_timeout: float | None = None,
    retry: Retry | None = None,
    return_exceptions: bool = True,
    client: Client | None = None,
    headers: _Pairs | None = None,
    params: _Pairs | None = None,
) -> FetchIter:
    """Like fetch_all, as an async iterator of ``(index, Response | exception)``
    in completion order. Memory stays bounded: results wait in a channel of
    ``concurrency`` slots and the requests pause while the consumer is behind."""

def configure(*, worker_threads: int | None = None) -> None:
    """Set process-wide options before fastio's runtime starts.

    ``worker_threads``: tokio worker threads (default 1, or the
    ``FASTIO_WORKER_THREADS`` environment variable). Raises InterfaceError if
    the runtime already runs with a different count.
    """

def runtime_worker_threads() -> int:
    """Worker threads of fastio's tokio runtime (starting it if needed)."""

def refresh_logging() -> None:
    """Re-read the levels of the ``fastio.*`` loggers after changing them."""

def sleep(seconds: float, result: _T = ...) -> Awaitable[_T]:
    """Sleep on a tokio timer; like ``asyncio.sleep`` (negative = 0, inf = forever)."""

def _live_tasks() -> int: ...
def _panic(message: str, in_task: bool = True) -> Awaitable[None]: ...
def _fail(kind: str, message: str, delay: float = 0.0) -> Awaitable[None]: ...
def _noop(value: int) -> Awaitable[int]: ...
def _noop_plain(value: int) -> Any: ...
def _log(
    level: str, message: str, target: str = "fastio::testing", on_tokio: bool = False
) -> Awaitable[None] | None: ...
