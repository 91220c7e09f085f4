"""Server-side cursors: ``async for record in conn.cursor(query, *args, prefetch=N)``.

Rows come ``prefetch`` at a time (``DECLARE ... CURSOR`` then ``FETCH N``), so a
large result never sits in memory whole. Outside a transaction the cursor runs
in one of its own, committed when the iteration ends (asyncpg requires an
explicit transaction instead).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

_ids = itertools.count(1)


class Cursor:
    """The async iterable ``Connection.cursor()`` returns."""

    __slots__ = ("_conn", "_query", "_args", "_prefetch", "_timeout")

    def __init__(
        self, conn: Any, query: str, args: tuple[Any, ...], prefetch: int, timeout: float | None
    ) -> None:
        self._conn = conn
        self._query = query
        self._args = args
        self._prefetch = prefetch
        self._timeout = timeout

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[Any]:
        conn = self._conn
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
                rows = await conn.fetch(fetch, timeout=self._timeout)
                for row in rows:
                    yield row
                if len(rows) < self._prefetch:
                    break
            await conn.execute(f"CLOSE {name}")
            ok = True
        finally:
            if own and not conn.is_closed():
                await conn.execute("COMMIT" if ok else "ROLLBACK")
