"""aiomysql's API on fastio: ``import fastio.mysql as aiomysql``.

``connect``, ``create_pool``, ``Pool``, ``Connection``, ``Cursor``,
``DictCursor``, ``SSCursor``, ``SSDictCursor`` and PyMySQL's exceptions
(``fastio.dbapi``: ``IntegrityError`` for errno 1062, ...). Queries use
``%s`` / ``%(name)s`` as in aiomysql, but values are bound, never spliced
into the SQL; a list/tuple value expands to ``(?, ?, ...)`` for IN lists.
Autocommit is off by default, as in aiomysql: commit your writes. See the
README's "Differences from aiomysql".
"""

from __future__ import annotations

import asyncio
import configparser
import getpass
import os
import time
import urllib.parse
from collections.abc import Coroutine, Generator
from typing import Any

import fastio
from fastio import _fastio
from fastio import _mysql_cursors as cursors
from fastio._mysql_cursors import Cursor, DictCursor, SSCursor, SSDictCursor
from fastio._mysql_params import escape_dict, escape_item, escape_sequence, escape_string
from fastio.dbapi import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    MySQLError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)

__all__ = [
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "DictCursor",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "MySQLError",
    "NotSupportedError",
    "OperationalError",
    "Pool",
    "ProgrammingError",
    "SSCursor",
    "SSDictCursor",
    "Warning",
    "connect",
    "create_pool",
    "cursors",
    "escape_dict",
    "escape_sequence",
    "escape_string",
]

__version__ = "0.3.2"  # the aiomysql release whose API this module follows

# pymysql.constants.CR: client-side error numbers.
CR_CONN_HOST_ERROR = 2003
CR_SERVER_LOST = 2013

try:
    _DEFAULT_USER = getpass.getuser()
except Exception:  # no user name in the environment (containers)
    _DEFAULT_USER = "unknown"


def _quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class _Params:
    """How to open a connection: the DSN and the statements run on each new one."""

    __slots__ = (
        "autocommit",
        "charset",
        "cursorclass",
        "db",
        "dsn",
        "echo",
        "host",
        "init_sql",
        "port",
        "timeout",
        "unix_socket",
        "user",
    )

    def __init__(
        self,
        host: str = "localhost",
        user: str | None = None,
        password: str = "",
        db: str | None = None,
        port: int = 3306,
        unix_socket: str | None = None,
        charset: str = "",
        sql_mode: str | None = None,
        read_default_file: str | None = None,
        conv: Any = None,
        use_unicode: bool | None = None,
        client_flag: int = 0,
        cursorclass: type[Cursor] = Cursor,
        init_command: str | None = None,
        connect_timeout: float | None = None,
        read_default_group: str | None = None,
        autocommit: bool | None = False,
        echo: bool = False,
        local_infile: bool = False,
        loop: Any = None,
        ssl: Any = None,
        auth_plugin: str = "",
        program_name: str = "",
        server_public_key: Any = None,
    ) -> None:
        del client_flag, loop, auth_plugin, program_name, server_public_key  # not needed here
        if conv is not None:
            raise NotSupportedError("conv= (custom converters) is not supported by fastio.mysql")
        if use_unicode is False:
            raise NotSupportedError("use_unicode=False is not supported by fastio.mysql")
        if ssl:
            raise NotSupportedError("ssl= is not supported by fastio.mysql yet")
        if local_infile:
            raise NotSupportedError("local_infile=True is not supported by fastio.mysql")
        if not (isinstance(cursorclass, type) and issubclass(cursorclass, Cursor)):
            raise TypeError("cursorclass must be a subclass of fastio.mysql.Cursor")
        if read_default_file:
            cfg = configparser.RawConfigParser()
            cfg.read(os.path.expanduser(read_default_file))
            group = read_default_group or "client"
            user = cfg.get(group, "user", fallback=user)
            password = cfg.get(group, "password", fallback=password)
            host = cfg.get(group, "host", fallback=host)
            db = cfg.get(group, "database", fallback=db)
            unix_socket = cfg.get(group, "socket", fallback=unix_socket)
            port = int(cfg.get(group, "port", fallback=port))
            charset = cfg.get(group, "default-character-set", fallback=charset)
        self.host = host
        self.port = port
        self.user = user or _DEFAULT_USER
        self.db = db
        self.unix_socket = unix_socket
        self.charset = charset or "utf8mb4"
        self.autocommit = autocommit
        self.echo = echo
        self.cursorclass = cursorclass
        self.timeout = connect_timeout if connect_timeout is not None else 60.0

        auth = urllib.parse.quote(self.user, safe="")
        if password:
            auth += ":" + urllib.parse.quote(password, safe="")
        netloc = f"{auth}@[{host}]:{port}" if ":" in host else f"{auth}@{host}:{port}"
        path = "/" + urllib.parse.quote(db, safe="") if db else ""
        query = "socket=" + urllib.parse.quote(unix_socket, safe="/") if unix_socket else ""
        self.dsn = urllib.parse.urlunsplit(("mysql", netloc, path, query, ""))

        init: list[str] = []
        if charset:
            if not charset.replace("_", "").isalnum():
                raise ValueError(f"charset: not a character set name: {charset!r}")
            init.append(f"SET NAMES {charset}")
        if sql_mode is not None:
            init.append(f"SET sql_mode={sql_mode}")  # as aiomysql: spliced as given
        if init_command is not None:
            init.append(init_command)
            init.append("COMMIT")
        if autocommit is not None:
            init.append(f"SET autocommit={int(bool(autocommit))}")
        self.init_sql = init

    def connect_error(self, exc: BaseException) -> OperationalError:
        return OperationalError(
            CR_CONN_HOST_ERROR, f"Can't connect to MySQL server on {self.host!r}"
        )


_CONNECT_FAILURES = (fastio.ConnectionError, fastio.TimeoutError, OSError)


class Connection:
    """A MySQL connection with aiomysql's methods (from ``connect()`` or ``Pool.acquire()``)."""

    def __init__(self, native: Any, params: _Params, pool: Pool | None = None) -> None:
        self._native: Any = native
        self._params = params
        self._pool = pool
        self._host = params.host
        self._port = params.port
        self._user = params.user
        self._db = params.db
        self._echo = params.echo
        self._charset = params.charset
        self.cursorclass = params.cursorclass
        self.autocommit_mode = params.autocommit
        # None: the server default, which is on.
        self._autocommit = True if params.autocommit is None else bool(params.autocommit)
        self._insert_id: int | None = 0
        self._close_reason: str | None = None
        # A pooled connection closed by the user is only marked closed; it goes
        # back to the pool (rolled back if need be) when released.
        self._detached = False
        self._last_usage = _now()

    # ------------------------------------------------------------ attributes

    @property
    def host(self) -> str:
        """MySQL server IP address or name."""
        return self._host

    @property
    def port(self) -> int:
        """MySQL server TCP/IP port."""
        return self._port

    @property
    def unix_socket(self) -> str | None:
        return self._params.unix_socket

    @property
    def db(self) -> str | None:
        """Current database name."""
        return self._db

    @property
    def user(self) -> str:
        return self._user

    @property
    def echo(self) -> bool:
        return self._echo

    @property
    def last_usage(self) -> float:
        """``time.monotonic()`` (the default loop clock) of the last query or cursor."""
        return self._last_usage

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_event_loop()

    @property
    def closed(self) -> bool:
        """True once closed (or released to its pool)."""
        return self._native is None or self._detached or self._native.is_closed()

    @property
    def encoding(self) -> str:
        return "utf8" if self._charset.startswith("utf8") else self._charset

    @property
    def charset(self) -> str:
        return self._charset

    def character_set_name(self) -> str:
        return self._charset

    def get_host_info(self) -> str:
        if self._params.unix_socket:
            return "Localhost via UNIX socket: " + self._params.unix_socket
        return f"socket {self._host}:{self._port}"

    def get_proto_info(self) -> int:
        return 10

    def get_server_info(self) -> str:
        """The server version string, e.g. '11.4.2-MariaDB'."""
        return str(self._alive()._server_info())

    def thread_id(self) -> int:
        """The server's connection id (``CONNECTION_ID()``)."""
        return int(self._alive().get_server_pid())

    def get_transaction_status(self) -> bool:
        """Whether the session is inside a transaction (the server's status flag)."""
        return bool(self._alive().is_in_transaction())

    def get_autocommit(self) -> bool:
        return self._autocommit

    def insert_id(self) -> int | None:
        """The AUTO_INCREMENT id of the last INSERT on this connection."""
        return self._insert_id

    def escape(self, obj: Any) -> str:
        """A value as a SQL literal (PyMySQL's rendering; for display)."""
        return escape_item(obj)

    def literal(self, obj: Any) -> str:
        return escape_item(obj)

    def escape_string(self, s: str) -> str:
        return escape_string(s)

    # -------------------------------------------------------------- plumbing

    def _alive(self) -> Any:
        native = self._native
        if native is None or self._detached or native.is_closed():
            raise InterfaceError(self._close_reason or "(0, 'Not connected')")
        return native

    async def _exec(self, sql: str, params: tuple[Any, ...]) -> Any:
        native = self._alive()
        self._last_usage = _now()
        try:
            return await native._exec(sql, params)
        except Error:
            raise
        except fastio.ConnectionError as e:
            raise OperationalError(
                CR_SERVER_LOST, "Lost connection to MySQL server during query"
            ) from e
        except fastio.InterfaceError as e:
            raise InterfaceError(*e.args) from e

    # ---------------------------------------------------------------- public

    def cursor(self, *cursors: type[Cursor]) -> _CursorContext:
        """A cursor (``await conn.cursor(DictCursor)`` or ``async with``);
        by default of the connection's ``cursorclass``."""
        self._alive()
        self._last_usage = _now()
        for c in cursors:
            if not (isinstance(c, type) and issubclass(c, Cursor)):
                raise TypeError("Custom cursor must be subclass of Cursor")
        if len(cursors) == 1:
            cls = cursors[0]
        elif cursors:
            name = "".join(c.__name__ for c in cursors).replace("Cursor", "") + "Cursor"
            cls = type(name, cursors, {})
        else:
            cls = self.cursorclass
        return _CursorContext(cls(self, self._echo))

    async def begin(self) -> None:
        """Begins a transaction."""
        await self._exec("BEGIN", ())

    async def commit(self) -> None:
        """Commits the current transaction."""
        await self._exec("COMMIT", ())

    async def rollback(self) -> None:
        """Rolls the current transaction back."""
        await self._exec("ROLLBACK", ())

    async def autocommit(self, value: bool) -> None:
        """Turns autocommit on or off for this session."""
        value = bool(value)
        self.autocommit_mode = value
        if value != self._autocommit:
            await self._exec(f"SET autocommit={int(value)}", ())
            self._autocommit = value

    async def select_db(self, db: str) -> None:
        """Makes ``db`` the current database."""
        await self._exec("USE " + _quote_ident(db), ())
        self._db = db

    async def set_charset(self, charset: str) -> None:
        if not charset.replace("_", "").isalnum():
            raise ValueError(f"charset: not a character set name: {charset!r}")
        await self._exec(f"SET NAMES {charset}", ())
        self._charset = charset

    async def show_warnings(self) -> Any:
        _, rows, _, _ = await self._exec("SHOW WARNINGS", ())
        return tuple(rows)

    async def kill(self, thread_id: int) -> None:
        await self._exec(f"KILL {int(thread_id)}", ())

    async def ping(self, reconnect: bool = True) -> None:
        """Checks the server answers; with ``reconnect``, replaces a dead connection."""
        if self.closed:
            if not reconnect:
                raise Error("Already closed")
            await self._reconnect()
            return
        try:
            await self._exec("SELECT 1", ())
        except (Error, fastio.FastIOError):
            if not reconnect:
                raise
            await self._reconnect()
            await self._exec("SELECT 1", ())

    async def _reconnect(self) -> None:
        old, self._native = self._native, None
        if self._pool is not None:
            if old is None:
                raise InterfaceError(self._close_reason or "(0, 'Not connected')")
            # Hand the old one back (the pool drops it if it is dead) and take another.
            await self._pool._native.release(old)
            self._native = await self._pool._native.acquire()
            self._detached = False
        else:
            if old is not None:
                old.terminate()
            self._native = await _open_native(self._params)
        self._autocommit = (
            True if self._params.autocommit is None else bool(self._params.autocommit)
        )
        self._db = self._params.db
        self._close_reason = None

    def close(self) -> None:
        """Closes the connection at once (not a coroutine, as in aiomysql).

        A pooled connection is unusable from here on; its session goes back
        to the pool, rolled back, when it is released."""
        if self._pool is not None:
            self._detached = True
            return
        native, self._native = self._native, None
        if native is not None and not native.is_closed():
            native.terminate()

    async def ensure_closed(self) -> None:
        """Closes the connection politely (sends COM_QUIT)."""
        if self._pool is not None:
            self._detached = True
            return
        native = self._native
        if native is None or native.is_closed():
            self._native = None
            return
        await native.close()
        self._native = None

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.close()
        else:
            await self.ensure_closed()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<fastio.mysql.Connection {self._host}:{self._port} db={self._db!r} {state}>"


# The default loop clock (what aiomysql's ``last_usage`` reads), without a loop lookup.
_now = time.monotonic


class _CursorContext:
    """What ``Connection.cursor()`` returns: ``await`` it or ``async with`` it."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, Any]:
        return self._cursor
        yield  # pragma: no cover  (makes this a generator)

    async def __aenter__(self) -> Any:
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        await self._cursor.close()


async def _open_native(params: _Params) -> Any:
    try:
        return await _fastio.connect(
            params.dsn, timeout=params.timeout, init_sql=params.init_sql or None
        )
    except _CONNECT_FAILURES as e:
        raise params.connect_error(e) from e


class _ConnectContext:
    """What ``connect()`` returns: ``await`` it or ``async with`` it (closes on exit)."""

    __slots__ = ("_conn", "_coro")

    def __init__(self, coro: Coroutine[Any, Any, Connection]) -> None:
        self._coro = coro
        self._conn: Connection | None = None

    def __await__(self) -> Generator[Any, None, Connection]:
        conn = yield from self._coro.__await__()
        self._conn = conn
        return conn

    async def __aenter__(self) -> Connection:
        return await self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._conn is not None:
            await self._conn.__aexit__(exc_type, exc, tb)


def connect(
    host: str = "localhost",
    user: str | None = None,
    password: str = "",
    db: str | None = None,
    port: int = 3306,
    unix_socket: str | None = None,
    charset: str = "",
    sql_mode: str | None = None,
    read_default_file: str | None = None,
    conv: Any = None,
    use_unicode: bool | None = None,
    client_flag: int = 0,
    cursorclass: type[Cursor] = Cursor,
    init_command: str | None = None,
    connect_timeout: float | None = None,
    read_default_group: str | None = None,
    autocommit: bool | None = False,
    echo: bool = False,
    local_infile: bool = False,
    loop: Any = None,
    ssl: Any = None,
    auth_plugin: str = "",
    program_name: str = "",
    server_public_key: Any = None,
) -> _ConnectContext:
    """Opens one connection (aiomysql.connect); awaitable and an async context manager."""
    params = _Params(**{k: v for k, v in locals().items()})

    async def make() -> Connection:
        return Connection(await _open_native(params), params)

    return _ConnectContext(make())


class _AcquireContext:
    """What ``Pool.acquire()`` returns: ``await`` it or ``async with`` it (releases on exit)."""

    __slots__ = ("_conn", "_pool")

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._conn: Connection | None = None

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._pool._acquire().__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await self._pool._acquire()
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool._release(conn)


class Pool:
    """A pool of MySQL connections with aiomysql's interface (``create_pool``).

    Connections go back clean: one released inside a transaction is rolled
    back, and a session whose autocommit or database was changed is reset."""

    def __init__(self, native: Any, params: _Params, minsize: int, maxsize: int) -> None:
        self._native = native
        self._params = params
        self._minsize = minsize
        self._maxsize = maxsize
        self._closing = False
        self._closed = False
        self._close_task: asyncio.Future[None] | None = None
        self._pending: set[asyncio.Future[None]] = set()
        self._used: set[Connection] = set()
        # Tasks queue for a connection here, on the event loop, as in
        # aiomysql (its Condition): a release wakes the next waiter without
        # a trip through fastio's runtime, and with at most maxsize
        # connections out, the native pool always has one idle for it.
        self._slots = asyncio.Semaphore(maxsize)

    @property
    def echo(self) -> bool:
        return self._params.echo

    @property
    def minsize(self) -> int:
        return self._minsize

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @property
    def size(self) -> int:
        """Open connections, free and in use."""
        return int(self._native.get_size())

    @property
    def freesize(self) -> int:
        """Idle connections."""
        return int(self._native.get_idle_size())

    @property
    def closed(self) -> bool:
        return self._closed

    def get_stats(self) -> dict[str, int]:
        """fastio's pool counters (size, idle, in_use, waiting, acquired, timeouts, ...)."""
        return dict(self._native.get_stats())

    def acquire(self) -> _AcquireContext:
        """A connection (``await pool.acquire()`` or ``async with pool.acquire() as conn``)."""
        return _AcquireContext(self)

    async def _acquire(self) -> Connection:
        if self._closing:
            raise RuntimeError("Cannot acquire connection after closing pool")
        await self._slots.acquire()
        try:
            native = await self._native.acquire()
        except BaseException:
            self._slots.release()
            raise
        conn = Connection(native, self._params, self)
        self._used.add(conn)
        return conn

    def release(self, conn: Connection) -> asyncio.Future[None]:
        """Gives a connection back. Not a coroutine, as in aiomysql: it takes
        effect whether or not the returned future is awaited."""
        fut = asyncio.ensure_future(self._release(conn))
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)
        return fut

    async def _release(self, conn: Connection) -> None:
        if conn._pool is not self:
            raise ValueError(f"{conn!r} does not belong to this pool")
        native, conn._native = conn._native, None
        self._used.discard(conn)
        if native is None:
            return  # released already
        conn._close_reason = "Connection released to the pool"
        p = self._params
        try:
            if not native.is_closed():
                reset = []
                if p.autocommit is not None and conn._autocommit != bool(p.autocommit):
                    reset.append(f"SET autocommit={int(bool(p.autocommit))}")
                if conn._db != p.db and p.db:
                    reset.append("USE " + _quote_ident(p.db))
                try:
                    for sql in reset:
                        await native._exec(sql, ())
                finally:
                    # (a session that failed its reset is broken: the pool drops it)
                    await self._native.release(native)
            else:
                await self._native.release(native)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Stops handing out connections; ``await wait_closed()`` then waits
        until the acquired ones are released and closes them all."""
        if self._closed or self._closing:
            return
        self._closing = True
        try:
            self._close_task = asyncio.ensure_future(self._native.close())
        except RuntimeError:  # no running loop: wait_closed() closes
            self._close_task = None

    def terminate(self) -> None:
        """Closes the pool and every connection, acquired ones too, at once."""
        self._closing = True
        for conn in self._used:
            conn._detached = True
        self._native.terminate()

    async def wait_closed(self) -> None:
        """Waits until ``close()`` has finished."""
        if self._closed:
            return
        if not self._closing:
            raise RuntimeError(".wait_closed() should be called after .close()")
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._native.close())
        await self._close_task
        self._closed = True

    async def clear(self) -> None:
        """aiomysql closes the free connections here; fastio's pool recycles
        them itself (``pool_recycle``), so this does nothing."""

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        return (
            f"<fastio.mysql.Pool {self._params.host}:{self._params.port} "
            f"minsize={self._minsize} maxsize={self._maxsize}>"
        )


class _PoolContext:
    """What ``create_pool()`` returns: ``await`` it or ``async with`` it (closes on exit)."""

    __slots__ = ("_coro", "_pool")

    def __init__(self, coro: Coroutine[Any, Any, Pool]) -> None:
        self._coro = coro
        self._pool: Pool | None = None

    def __await__(self) -> Generator[Any, None, Pool]:
        pool = yield from self._coro.__await__()
        self._pool = pool
        return pool

    async def __aenter__(self) -> Pool:
        return await self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()


def create_pool(
    minsize: int = 1,
    maxsize: int = 10,
    echo: bool = False,
    pool_recycle: float = -1,
    loop: Any = None,
    **kwargs: Any,
) -> _PoolContext:
    """Creates a pool (aiomysql.create_pool); awaitable and an async context manager.

    ``kwargs`` are ``connect()``'s. ``pool_recycle``: seconds a connection may
    sit idle before it is replaced (-1: never)."""
    if minsize < 0:
        raise ValueError("minsize should be zero or greater")
    if maxsize < 1:
        raise ValueError("maxsize should be at least 1 (fastio pools are bounded)")
    if maxsize < minsize:
        raise ValueError("maxsize should be not less than minsize")
    params = _Params(echo=echo, loop=loop, **kwargs)
    idle = None if pool_recycle is None or pool_recycle < 0 else max(float(pool_recycle), 0.001)

    async def make() -> Pool:
        try:
            native = await _fastio.create_pool(
                params.dsn,
                min_size=minsize,
                max_size=maxsize,
                timeout=params.timeout,
                max_inactive_connection_lifetime=idle,
                init_sql=params.init_sql or None,
            )
        except _CONNECT_FAILURES as e:
            raise params.connect_error(e) from e
        return Pool(native, params, minsize, maxsize)

    return _PoolContext(make())
