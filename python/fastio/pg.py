"""asyncpg's API on fastio: ``import fastio.pg as asyncpg``.

``connect``, ``create_pool``, ``Pool``, ``Connection``, ``Record``,
``Transaction`` and ``exceptions`` (every SQLSTATE class, also importable from
this module as asyncpg exports them). json/jsonb values come back as str, as
asyncpg returns them. See the README's "Differences from asyncpg".
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Generator
from typing import Any

from fastio import _fastio
from fastio import pg_exceptions as exceptions
from fastio._fastio import Connection, Pool, Record
from fastio._transaction import Transaction
from fastio._types import Range
from fastio.pg_exceptions import *  # noqa: F403  (asyncpg re-exports its exceptions)
from fastio.pg_exceptions import __all__ as _exception_names

__all__ = [
    "Connection",
    "Pool",
    "Range",
    "Record",
    "Transaction",
    "connect",
    "create_pool",
    "exceptions",
    *_exception_names,
]


def _dsn(
    dsn: str | None,
    host: str | None,
    port: int | None,
    user: str | None,
    password: str | None,
    database: str | None,
) -> str:
    """asyncpg accepts a DSN and/or keyword parts; fastio's native API takes one DSN."""
    if dsn is not None and not any((host, port, user, password, database)):
        return dsn
    parts = urllib.parse.urlsplit(dsn or "postgresql://")
    user = user if user is not None else (urllib.parse.unquote(parts.username or "") or None)
    password = (
        password if password is not None else (urllib.parse.unquote(parts.password or "") or None)
    )
    host = host or parts.hostname or "localhost"
    port = port or parts.port or 5432
    database = database or urllib.parse.unquote(parts.path.lstrip("/")) or None
    auth = ""
    if user:
        auth = urllib.parse.quote(user, safe="")
        if password:
            auth += ":" + urllib.parse.quote(password, safe="")
        auth += "@"
    netloc = f"{auth}[{host}]:{port}" if ":" in host else f"{auth}{host}:{port}"
    path = "/" + urllib.parse.quote(database, safe="") if database else ""
    return urllib.parse.urlunsplit(("postgresql", netloc, path, parts.query, ""))


def connect(
    dsn: str | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    user: str | None = None,
    password: str | None = None,
    database: str | None = None,
    timeout: float = 60,
    statement_cache_size: int = 100,
    command_timeout: float | None = None,
    server_settings: dict[str, str] | None = None,
    ssl: Any = None,
    record_class: type = Record,
) -> _fastio.Awaitable[Connection]:
    """Opens one connection (asyncpg.connect).

    ``server_settings``: session settings sent at connect (application_name,
    search_path, ...). ``ssl``: asyncpg's values (False/'disable', 'prefer',
    'require', 'verify-ca', 'verify-full', True, or an ssl.SSLContext).
    ``record_class``: the class of the rows (Record or a subclass of it)."""
    return _fastio.connect(
        _dsn(dsn, host, port, user, password, database),
        timeout=timeout,
        command_timeout=command_timeout,
        statement_cache_size=statement_cache_size,
        json_as_text=True,
        server_settings=server_settings,
        ssl=ssl,
        record_class=None if record_class is Record else record_class,
    )


class _PoolCreator:
    """What ``create_pool`` returns: ``await`` it, or ``async with`` it (closes on exit)."""

    __slots__ = ("_make", "_pool")

    def __init__(self, make: Any) -> None:
        self._make = make
        self._pool: Pool | None = None

    def __await__(self) -> Generator[Any, None, Pool]:
        pool = yield from self._make().__await__()
        self._pool = pool
        return pool

    async def __aenter__(self) -> Pool:
        return await self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            await self._pool.close()


def create_pool(
    dsn: str | None = None,
    *,
    min_size: int = 10,
    max_size: int = 10,
    max_queries: int = 50000,
    max_inactive_connection_lifetime: float = 300.0,
    setup: Any = None,
    init: Any = None,
    host: str | None = None,
    port: int | None = None,
    user: str | None = None,
    password: str | None = None,
    database: str | None = None,
    timeout: float = 60,
    statement_cache_size: int = 100,
    command_timeout: float | None = None,
    server_settings: dict[str, str] | None = None,
    ssl: Any = None,
    acquire_timeout: float | None = None,
    max_lifetime: float | None = None,
    record_class: type = Record,
) -> _PoolCreator:
    """Creates a pool (asyncpg.create_pool); awaitable and an async context manager.

    ``init(conn)`` is awaited once on every new connection, ``setup(conn)``
    on every acquire (also by the pool's own fetch/execute...). A connection
    is replaced after ``max_queries`` queries. A connection handed out by
    ``acquire()`` is reset when released (ROLLBACK, CLOSE ALL, UNLISTEN *,
    RESET ALL), so session settings do not leak to the next user."""
    target = _dsn(dsn, host, port, user, password, database)

    def make() -> _fastio.Awaitable[Pool]:
        return _fastio.create_pool(
            target,
            min_size=min_size,
            max_size=max_size,
            max_inactive_connection_lifetime=max_inactive_connection_lifetime,
            command_timeout=command_timeout,
            statement_cache_size=statement_cache_size,
            timeout=timeout,
            acquire_timeout=acquire_timeout,
            max_lifetime=max_lifetime,
            json_as_text=True,
            init=init,
            setup=setup,
            server_settings=server_settings,
            ssl=ssl,
            max_queries=max_queries,
            record_class=None if record_class is Record else record_class,
        )

    return _PoolCreator(make)
