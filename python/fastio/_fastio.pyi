"""Type stubs for the Rust extension module `fastio._fastio`."""

import builtins
import datetime
import json
import os
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
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

class Ready(Generic[_T]):
    """An awaitable whose value is already known (e.g. a line served from a
    Rust buffer): awaiting it returns at once, with no trip through tokio."""

    def __await__(self) -> Generator[Any, None, _T]: ...
    def __iter__(self) -> Generator[Any, None, _T]: ...
    def __next__(self) -> Any: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any: ...
    def close(self) -> None: ...

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

class CircuitOpenError(FastIOError):
    """A circuit breaker is open, so the call was not made.

    ``retry_after``: seconds until the breaker lets a trial call through;
    ``breaker``: the breaker's name.
    """

    retry_after: float
    breaker: str

class CircuitBreaker:
    """The Rust state machine behind ``fastio.CircuitBreaker``."""

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        expected_exceptions: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        name: str | None = None,
    ) -> None: ...
    @property
    def state(self) -> str:
        """ "closed", "open" or "half_open"."""
    @property
    def name(self) -> str: ...
    @property
    def failure_count(self) -> int:
        """Consecutive expected failures counted while closed."""
    @property
    def failure_threshold(self) -> int: ...
    @property
    def recovery_timeout(self) -> float: ...
    @property
    def half_open_max_calls(self) -> int: ...
    @property
    def expected_exceptions(self) -> tuple[type[BaseException], ...]: ...
    @property
    def transitions(self) -> list[tuple[str, str, float]]:
        """``(from_state, to_state, unix_time)`` of every state change, oldest first."""
    def stats(self) -> dict[str, Any]:
        """calls, successes, failures, rejected, state, consecutive_failures, transitions."""
    def acquire(self) -> None:
        """Admit a call or raise CircuitOpenError; pair with one ``release()``."""
    def release(self, exc: BaseException | None = None) -> None:
        """End an admitted call; ``exc`` is what it raised, or None."""
    def reset(self) -> None:
        """Close the breaker and forget counted failures."""
    def __aenter__(self) -> Ready[CircuitBreaker]: ...
    def __aexit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> Ready[bool]: ...

class MetricSeries:
    """One labelled series of a metrics family."""

    def begin(self) -> int:
        """Mark a call started; returns the token for ``finish``."""
    def finish(self, token: int, outcome: int, into: MetricSeries | None = None) -> None:
        """Record the call started at ``token`` (0 ok, 1 error, 2 cancelled)."""
    def record(self, seconds: float, outcome: int) -> None:
        """Record a call that took ``seconds``."""

def metric_series(family_key: str, labels: list[str]) -> MetricSeries:
    """The series of a family ("monitor", "http_client", "db", "http_server")."""

def render_prometheus() -> str:
    """Every metric in the Prometheus text exposition format (0.0.4)."""

def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every metric as plain data: ``{family: [{"labels": {...}, "count", "errors", ...}]}``."""

def enable(on: bool) -> None:
    """Turn metrics recording on or off process-wide (on by default)."""

def enabled() -> bool:
    """Whether metrics are being recorded."""

def reset() -> None:
    """Zero every counter and histogram (in-flight gauges keep counting)."""

class JSONDecodeError(FastIOError, json.JSONDecodeError):
    """An invalid line in a JSON-lines file. Also a json.JSONDecodeError (so a
    ValueError): ``lineno`` is the line of the file (from 1), ``doc`` that
    line's text, ``pos`` the offset in it, ``msg`` json's message, ``path``
    the file."""

    path: str

_Path = str | os.PathLike[str]

def read_text(
    path: _Path, encoding: str = "utf-8", errors: str = "strict", newline: str | None = None
) -> Awaitable[str]:
    """Read a whole text file. ``encoding``/``errors``/``newline`` as for
    ``open()`` (``newline=None``: ``\\r\\n`` and ``\\r`` read as ``\\n``)."""

def read_bytes(path: _Path) -> Awaitable[bytes]:
    """Read a whole file as bytes."""

def write_text(
    path: _Path,
    data: str,
    encoding: str = "utf-8",
    errors: str = "strict",
    newline: str | None = None,
    *,
    atomic: bool = False,
) -> Awaitable[int]:
    """Write a text file (created or truncated); returns the characters written.
    ``atomic=True`` writes a temp file beside it and renames it into place."""

def write_bytes(path: _Path, data: bytes, *, atomic: bool = False) -> Awaitable[int]:
    """Write a file from a bytes-like object; returns the bytes written."""

def append_text(
    path: _Path,
    data: str,
    encoding: str = "utf-8",
    errors: str = "strict",
    newline: str | None = None,
) -> Awaitable[int]:
    """Append to a text file (created if missing); returns the characters written."""

class _JsonlReader:
    def __init__(
        self,
        path: _Path,
        batch_size: int = 4096,
        errors: str = "raise",
        prefetch: int = 2,
        func: str = "iter_jsonl",
    ) -> None: ...
    def next_batch(self) -> Awaitable[tuple[list[Any], list[Exception]] | None]: ...

class _JsonlWriter:
    def __init__(
        self, path: _Path, append: bool = False, atomic: bool = False, ensure_ascii: bool = True
    ) -> None: ...
    def write(self, records: Iterable[Any]) -> Awaitable[None]: ...
    def close(self, commit: bool = True) -> Awaitable[None]: ...

class _AsyncFile:
    closed: bool
    _readable: bool
    @staticmethod
    def open(
        path: _Path,
        read: bool,
        write: bool,
        append: bool,
        create: bool,
        truncate: bool,
        exclusive: bool,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
        utf8: bool = True,
    ) -> Awaitable[_AsyncFile]: ...
    def read(self, size: int | None = -1) -> Any: ...
    def readline(self, size: int | None = -1) -> Any: ...
    def readlines(self, hint: int | None = -1) -> Any: ...
    def write(self, data: Any) -> Any: ...
    def writelines(self, lines: Iterable[Any]) -> Any: ...
    def seek(self, offset: int, whence: int = 0) -> Any: ...
    def tell(self) -> Any: ...
    def truncate(self, size: int | None = None) -> Any: ...
    def flush(self) -> Any: ...
    def close(self) -> Any: ...
    def readable(self) -> Any: ...
    def writable(self) -> Any: ...
    def seekable(self) -> Any: ...
    def isatty(self) -> Any: ...
    def fileno(self) -> int: ...
    def __aiter__(self) -> _AsyncFile: ...
    def __anext__(self) -> Any: ...

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
    ``breaker`` (a CircuitBreaker: the client keeps one per host with its
    settings; 5xx and transport errors count as failures).
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
        breaker: CircuitBreaker | None = None,
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
def _loop_reads() -> tuple[int, int, int]: ...
def _panic(message: str, in_task: bool = True) -> Awaitable[None]: ...
def _fail(kind: str, message: str, delay: float = 0.0) -> Awaitable[None]: ...
def _noop(value: int) -> Awaitable[int]: ...
def _noop_plain(value: int) -> Any: ...
def _log(
    level: str, message: str, target: str = "fastio::testing", on_tokio: bool = False
) -> Awaitable[None] | None: ...

# ----------------------------------------------------------------- databases

class Record:
    """A result row: a sequence and a mapping at once, like asyncpg's Record.

    ``r[0]``, ``r["name"]``, ``r.get(name, default)``, ``keys()/values()/items()``,
    ``len(r)``, iteration yields values, ``dict(r)``, ``tuple(r)``, equal to the
    tuple of its values, ``"name" in r`` tests column names. Subclass it (without
    redefining ``__new__``/``__init__``) and pass ``record_class=`` to get rows of
    your class.
    """

    def __new__(cls, record: Record) -> Record:
        """A copy of ``record`` as an instance of ``cls`` (how rows of a
        ``record_class`` are made)."""
    def __len__(self) -> int: ...
    def __getitem__(self, key: int | str | slice) -> Any: ...
    def get(self, key: str, default: Any = None) -> Any: ...
    def keys(self) -> Iterator[str]: ...
    def values(self) -> Iterator[Any]: ...
    def items(self) -> Iterator[tuple[str, Any]]: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __contains__(self, key: object) -> bool: ...
    def __hash__(self) -> int: ...

class Connection:
    """A database connection, from ``fastio.connect()`` or ``Pool.acquire()``.

    Parameters are ``$1, $2, ...`` bound server-side and encoded as the type
    the server inferred for each one (a str into a uuid/date/json parameter,
    a list into an array for ``= ANY($1)``). A cancelled or timed-out query is
    cancelled on the server and the connection is cleaned before reuse.
    """

    def fetch(
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,
        record_class: type[Record] | None = None,
    ) -> Awaitable[list[Record]]:
        """All rows as Records (of ``record_class``, a Record subclass, if given)."""
    def fetchrow(
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,
        record_class: type[Record] | None = None,
    ) -> Awaitable[Record | None]:
        """The first row, or None."""
    def fetchmany(
        self,
        query: str,
        args: Iterable[Sequence[Any]],
        *,
        timeout: float | None = None,
        record_class: type[Record] | None = None,
    ) -> Awaitable[list[Record]]:
        """Runs ``query`` once per argument sequence, pipelined in one round trip
        and atomic like executemany; returns the rows of all runs (PostgreSQL)."""
    def set_type_codec(
        self,
        typename: str,
        *,
        schema: str = "public",
        encoder: Callable[[Any], str],
        decoder: Callable[[str], Any],
        format: str = "text",
    ) -> Awaitable[None]:
        """Values of ``schema.typename`` (a scalar type: base or enum) go through
        ``encoder(obj) -> str`` as query arguments and ``decoder(str) -> obj`` as
        results, on this server session (in a pool's ``init``, on every one).
        Only ``format='text'``; arrays and composites of the type keep the
        built-in handling. PostgreSQL only."""
    def reset_type_codec(self, typename: str, *, schema: str = "public") -> Awaitable[None]:
        """Removes the codec ``set_type_codec`` set for the type."""
    def _set_codec(self, oid: int, encoder: Any = None, decoder: Any = None) -> Awaitable[None]: ...
    def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Awaitable[Any]:
        """One column of the first row, or None."""
    def execute(self, query: str, *args: Any, timeout: float | None = None) -> Awaitable[str]:
        """Runs a command; returns the server's status string, e.g. ``'INSERT 0 1'``.

        Without arguments several statements may be sent at once (the status of
        the last one is returned)."""
    def executemany(
        self, command: str, args: Iterable[Sequence[Any]], *, timeout: float | None = None
    ) -> Awaitable[None]:
        """Runs a command once per argument sequence, pipelined in one round trip
        and atomic (one implicit transaction)."""
    def transaction(
        self, *, isolation: str | None = None, readonly: bool = False, deferrable: bool = False
    ) -> Any:
        """A transaction block for ``async with``; nested ones are savepoints.
        ``isolation``: 'serializable', 'repeatable_read', 'read_committed',
        'read_uncommitted'. An exception inside the block rolls it back."""
    def copy_records_to_table(
        self,
        table_name: str,
        *,
        records: Iterable[Sequence[Any]],
        columns: Sequence[str] | None = None,
        schema_name: str | None = None,
        timeout: float | None = None,
    ) -> Awaitable[str]:
        """Copies records into a table with binary COPY (values encoded as the
        columns' types); returns the status string, e.g. ``'COPY 100'``."""
    async def add_listener(
        self, channel: str, callback: Callable[[Connection, int, str, str], Any]
    ) -> None:
        """LISTEN on ``channel``; ``callback(connection, pid, channel, payload)``
        runs on the event loop for every NOTIFY (coroutine functions are
        scheduled as tasks). Uses a second, dedicated server session."""
    async def remove_listener(
        self, channel: str, callback: Callable[[Connection, int, str, str], Any]
    ) -> None:
        """Removes a listener; the last one for a channel UNLISTENs."""
    def prepare(
        self,
        query: str,
        *,
        timeout: float | None = None,
        record_class: type[Record] | None = None,
    ) -> Awaitable[Any]:
        """Prepares ``query`` on the server now (errors raised here); resolves to a
        PreparedStatement with fetch/fetchrow/fetchval/fetchmany/executemany/cursor."""
    def cursor(
        self,
        query: str,
        *args: Any,
        prefetch: int | None = None,
        timeout: float | None = None,
        batch_size: int | None = None,
        record_class: type[Record] | None = None,
    ) -> Any:
        """``async for record in conn.cursor(query, *args, prefetch=50)``: rows
        through a server-side cursor, ``prefetch`` per round trip; outside a
        transaction it opens (and commits) its own. ``batch_size`` = ``prefetch``."""
    def close(self) -> Awaitable[None]:
        """Closes the connection (an acquired one is closed, not returned to its pool)."""
    def terminate(self) -> None:
        """Closes the connection without waiting."""
    def is_closed(self) -> bool: ...
    def is_in_transaction(self) -> bool:
        """Whether the session is inside a transaction block."""
    def get_server_pid(self) -> int:
        """The server backend's process id."""
    def get_server_version(self) -> Any:
        """The server version as asyncpg's ServerVersion named tuple
        ``(major, minor, micro, releaselevel, serial)``."""
    def get_server_version_num(self) -> int | None:
        """The server version as libpq reports it, e.g. 150004."""
    async def copy_from_query(
        self, query: str, *args: Any, output: Any, timeout: float | None = None, **options: Any
    ) -> str:
        """``COPY (query) TO STDOUT`` into ``output``: a path, a file object, or an
        async callable taking bytes. ``$n`` arguments are inlined as literals.
        Options as asyncpg's: format ('text'/'csv'/'binary'), delimiter, null,
        header, quote, escape, force_quote, encoding. Returns ``'COPY n'``."""
    async def copy_from_table(
        self,
        table_name: str,
        *,
        output: Any,
        columns: Sequence[str] | None = None,
        schema_name: str | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> str:
        """``COPY table (columns) TO STDOUT`` into ``output``; returns ``'COPY n'``."""
    async def copy_to_table(
        self,
        table_name: str,
        *,
        source: Any,
        columns: Sequence[str] | None = None,
        schema_name: str | None = None,
        timeout: float | None = None,
        where: str | None = None,
        **options: Any,
    ) -> str:
        """``COPY table (columns) FROM STDIN`` from ``source``: a path, a file
        object, bytes, or an (async) iterable of bytes; returns ``'COPY n'``."""
    def _copy_out(
        self, sql: str, path: str | None = None, timeout: float | None = None
    ) -> Awaitable[tuple[str, bytes | None]]: ...
    def _copy_in(
        self,
        sql: str,
        path: str | None = None,
        chunks: list[bytes] | None = None,
        timeout: float | None = None,
    ) -> Awaitable[str]: ...
    def _mogrify(self, query: str, *args: Any, timeout: float | None = None) -> Awaitable[str]: ...

class PoolAcquireContext:
    """``await pool.acquire()`` or ``async with pool.acquire() as conn:``."""

    def __await__(self) -> Generator[Any, None, Connection]: ...
    async def __aenter__(self) -> Connection: ...
    async def __aexit__(self, *exc: object) -> bool: ...

class Pool:
    """A pool of database connections (``await fastio.create_pool(dsn)``).

    Query methods acquire a connection, run, and release it."""

    def fetch(
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,
        record_class: type[Record] | None = None,
    ) -> Awaitable[list[Record]]: ...
    def fetchrow(
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,
        record_class: type[Record] | None = None,
    ) -> Awaitable[Record | None]: ...
    def fetchmany(
        self,
        query: str,
        args: Iterable[Sequence[Any]],
        *,
        timeout: float | None = None,
        record_class: type[Record] | None = None,
    ) -> Awaitable[list[Record]]:
        """Connection.fetchmany on a pooled connection."""
    def copy_from_table(self, table_name: str, **kwargs: Any) -> Awaitable[str]:
        """Connection.copy_from_table on a connection acquired for the call."""
    def copy_from_query(self, query: str, *args: Any, **kwargs: Any) -> Awaitable[str]:
        """Connection.copy_from_query on a connection acquired for the call."""
    def copy_to_table(self, table_name: str, **kwargs: Any) -> Awaitable[str]:
        """Connection.copy_to_table on a connection acquired for the call."""
    def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Awaitable[Any]: ...
    def execute(self, query: str, *args: Any, timeout: float | None = None) -> Awaitable[str]: ...
    def executemany(
        self, command: str, args: Iterable[Sequence[Any]], *, timeout: float | None = None
    ) -> Awaitable[None]: ...
    def copy_records_to_table(
        self,
        table_name: str,
        *,
        records: Iterable[Sequence[Any]],
        columns: Sequence[str] | None = None,
        schema_name: str | None = None,
        timeout: float | None = None,
    ) -> Awaitable[str]:
        """Copies records into a table with binary COPY (values encoded as the
        columns' types); returns the status string, e.g. ``'COPY 100'``."""
    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        """A connection from the pool; release it with ``release()`` or use ``async with``."""
    def release(self, connection: Connection, *, timeout: float | None = None) -> Awaitable[None]:
        """Returns an acquired connection, reset as asyncpg resets it (ROLLBACK
        if in a transaction, advisory locks released, CLOSE ALL, UNLISTEN *,
        RESET ALL)."""
    def close(self) -> Awaitable[None]:
        """Closes the pool, waiting until acquired connections are released."""
    def terminate(self) -> None:
        """Closes the pool and every connection it has handed out, without
        waiting: an acquired connection raises InterfaceError when used after."""
    def is_closing(self) -> bool: ...
    def get_size(self) -> int:
        """Open connections, idle and in use."""
    def get_idle_size(self) -> int: ...
    def get_min_size(self) -> int: ...
    def get_max_size(self) -> int: ...
    def get_stats(self) -> dict[str, int]:
        """size, idle, in_use, waiting, acquired, timeouts, created, closed, errors."""

def create_pool(
    dsn: str,
    *,
    min_size: int = 10,
    max_size: int = 10,
    command_timeout: float | None = None,
    acquire_timeout: float | None = None,
    max_inactive_connection_lifetime: float | None = 300.0,
    max_lifetime: float | None = None,
    statement_cache_size: int = 100,
    timeout: float | None = 60.0,
    json_as_text: bool = False,
    init: Callable[[Connection], Awaitable[Any]] | None = None,
    setup: Callable[[Connection], Awaitable[Any]] | None = None,
    server_settings: dict[str, str] | None = None,
    ssl: Any = None,
    max_queries: int | None = None,
    init_sql: list[str] | None = None,
    name: str | None = None,
    retry: Any = None,
    record_class: type[Record] | None = None,
) -> Awaitable[Pool]:
    """Opens a connection pool. ``dsn``: ``postgresql://user:pass@host:port/db``
    (or ``postgres://``; MySQL and SQLite are not implemented yet).
    ``min_size`` connections are opened at once. ``command_timeout``: default
    per-query deadline (the query is cancelled on the server). ``timeout``:
    connect deadline. ``json_as_text``: json/jsonb come back as str (asyncpg's
    default) instead of Python objects. ``init(conn)``: awaited once on each
    new connection; ``setup(conn)``: on every acquire (the pool's own query
    methods included), both on the event loop the pool was created on.
    ``server_settings``: session settings sent at connect. ``ssl``: asyncpg's
    values (False/'disable', 'prefer', 'require', 'verify-ca', 'verify-full',
    True, an ssl.SSLContext). ``max_queries``: a connection is replaced after
    that many queries. ``record_class``: the class of the rows (a Record subclass)."""

def connect(
    dsn: str,
    *,
    timeout: float | None = 60.0,
    command_timeout: float | None = None,
    statement_cache_size: int = 100,
    json_as_text: bool = False,
    server_settings: dict[str, str] | None = None,
    ssl: Any = None,
    init_sql: list[str] | None = None,
    record_class: type[Record] | None = None,
) -> Awaitable[Connection]:
    """Opens one (unpooled) connection; see ``create_pool`` for the arguments."""
