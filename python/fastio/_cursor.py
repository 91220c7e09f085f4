"""Server-side cursors: ``async for record in conn.cursor(query, *args, prefetch=N)``,
or ``cur = await conn.cursor(query, *args)`` (inside a transaction, as in asyncpg)
then ``await cur.fetch(n)`` / ``fetchrow()`` / ``forward(n)``.

Rows come ``prefetch`` at a time (``DECLARE ... CURSOR`` then ``FETCH N``), so a
large result never sits in memory whole. Outside a transaction the cursor runs
in one of its own, committed when the iteration ends (asyncpg requires an
explicit transaction instead).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Generator
from typing import Any

from fastio._fastio import InterfaceError

_ids = itertools.count(1)


class Cursor:
    """The async iterable ``Connection.cursor()`` returns."""

    __slots__ = ("_conn", "_query", "_args", "_prefetch", "_timeout", "_record_class")

    def __init__(
        self,
        conn: Any,
        query: str,
        args: tuple[Any, ...],
        prefetch: int,
        timeout: float | None,
        record_class: type | None = None,
    ) -> None:
        self._conn = conn
        self._query = query
        self._args = args
        self._prefetch = prefetch
        self._timeout = timeout
        self._record_class = record_class

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._rows()

    def __await__(self) -> Generator[Any, None, OpenCursor]:
        return self._open().__await__()

    async def _open(self) -> OpenCursor:
        if self._conn.backend != "postgresql":
            raise InterfaceError(
                "await conn.cursor() (a scrollable server-side cursor) is PostgreSQL only; "
                "use `async for row in conn.cursor(...)`"
            )
        if not self._conn.is_in_transaction():
            raise InterfaceError("cursor cannot be created outside of a transaction")
        name = f"fastio_cursor_{next(_ids)}"
        await self._conn.execute(
            f"DECLARE {name} CURSOR FOR {self._query}", *self._args, timeout=self._timeout
        )
        return OpenCursor(self._conn, name, self._record_class)

    async def _rows(self) -> AsyncIterator[Any]:
        conn = self._conn
        if conn.backend != "postgresql":
            # MySQL and SQLite have no DECLARE/FETCH: the result is read at once.
            for row in await conn.fetch(self._query, *self._args, timeout=self._timeout):
                yield row
            return
        own = not conn.is_in_transaction()
        name = f"fastio_cursor_{next(_ids)}"
        if own:
            await conn.execute("BEGIN")
        ok = False
        try:
            await conn.execute(
                f"DECLARE {name} NO SCROLL CURSOR FOR {self._query}",
                *self._args,
                timeout=self._timeout,
            )
            fetch = f"FETCH {self._prefetch} FROM {name}"
            while True:
                rows = await conn.fetch(
                    fetch, timeout=self._timeout, record_class=self._record_class
                )
                for row in rows:
                    yield row
                if len(rows) < self._prefetch:
                    break
            await conn.execute(f"CLOSE {name}")
            ok = True
        finally:
            if own and not conn.is_closed():
                await conn.execute("COMMIT" if ok else "ROLLBACK")


class OpenCursor:
    """An open server-side cursor (``await conn.cursor(...)``), valid until the
    transaction ends."""

    __slots__ = ("_conn", "_name", "_record_class")

    def __init__(self, conn: Any, name: str, record_class: type | None = None) -> None:
        self._conn = conn
        self._name = name
        self._record_class = record_class

    async def fetch(self, n: int, *, timeout: float | None = None) -> list[Any]:
        """The next ``n`` rows (fewer at the end)."""
        return await self._conn.fetch(
            f"FETCH {int(n)} FROM {self._name}", timeout=timeout, record_class=self._record_class
        )

    async def fetchrow(self, *, timeout: float | None = None) -> Any:
        """The next row, or None at the end."""
        rows = await self._conn.fetch(
            f"FETCH 1 FROM {self._name}", timeout=timeout, record_class=self._record_class
        )
        return rows[0] if rows else None

    async def forward(self, n: int, *, timeout: float | None = None) -> int:
        """Skips ``n`` rows; returns how many were skipped."""
        status = await self._conn.execute(
            f"MOVE FORWARD {int(n)} FROM {self._name}", timeout=timeout
        )
        return int(status.split()[-1])

    def __repr__(self) -> str:
        return f"<fastio.Cursor {self._name}>"
