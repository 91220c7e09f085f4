"""Type stubs for the Rust extension module `fastio._fastio`."""

import builtins
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
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

# ----------------------------------------------------------------- databases

class Record:
    """A result row: a sequence and a mapping at once, like asyncpg's Record.

    ``r[0]``, ``r["name"]``, ``r.get(name, default)``, ``keys()/values()/items()``,
    ``len(r)``, iteration yields values, ``dict(r)``, ``tuple(r)``, equal to the
    tuple of its values, ``"name" in r`` tests column names.
    """

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
        self, query: str, *args: Any, timeout: float | None = None
    ) -> Awaitable[list[Record]]:
        """All rows as Records."""
    def fetchrow(
        self, query: str, *args: Any, timeout: float | None = None
    ) -> Awaitable[Record | None]:
        """The first row, or None."""
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
    def prepare(self, query: str, *, timeout: float | None = None) -> Awaitable[Any]:
        """Prepares ``query`` on the server now (errors raised here); resolves to a
        PreparedStatement with fetch/fetchrow/fetchval/executemany/cursor."""
    def cursor(
        self,
        query: str,
        *args: Any,
        prefetch: int | None = None,
        timeout: float | None = None,
        batch_size: int | None = None,
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

class PoolAcquireContext:
    """``await pool.acquire()`` or ``async with pool.acquire() as conn:``."""

    def __await__(self) -> Generator[Any, None, Connection]: ...
    async def __aenter__(self) -> Connection: ...
    async def __aexit__(self, *exc: object) -> bool: ...

class Pool:
    """A pool of database connections (``await fastio.create_pool(dsn)``).

    Query methods acquire a connection, run, and release it."""

    def fetch(
        self, query: str, *args: Any, timeout: float | None = None
    ) -> Awaitable[list[Record]]: ...
    def fetchrow(
        self, query: str, *args: Any, timeout: float | None = None
    ) -> Awaitable[Record | None]: ...
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
        """Returns an acquired connection (rolled back if left inside a transaction)."""
    def close(self) -> Awaitable[None]:
        """Closes the pool, waiting until acquired connections are released."""
    def terminate(self) -> None:
        """Closes the pool without waiting."""
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
) -> Awaitable[Pool]:
    """Opens a connection pool. ``dsn``: ``postgresql://user:pass@host:port/db``
    (or ``postgres://``; MySQL and SQLite are not implemented yet).
    ``min_size`` connections are opened at once. ``command_timeout``: default
    per-query deadline (the query is cancelled on the server). ``timeout``:
    connect deadline. ``json_as_text``: json/jsonb come back as str (asyncpg's
    default) instead of Python objects."""

def connect(
    dsn: str,
    *,
    timeout: float | None = 60.0,
    command_timeout: float | None = None,
    statement_cache_size: int = 100,
    json_as_text: bool = False,
) -> Awaitable[Connection]:
    """Opens one (unpooled) connection; see ``create_pool`` for the arguments."""
