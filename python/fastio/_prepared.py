"""``await conn.prepare(query)``: a statement prepared once on the server.

The statement lives in the connection's statement cache (sqlx's, sized by
``statement_cache_size``), so running it again costs no Parse round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any


class PreparedStatement:
    """asyncpg's PreparedStatement: ``fetch/fetchrow/fetchval/executemany`` on
    the connection that prepared it."""

    __slots__ = ("_conn", "_query", "_types")

    def __init__(self, conn: Any, query: str, types: list[int]) -> None:
        self._conn = conn
        self._query = query
        self._types = types

    def get_query(self) -> str:
        """The statement's SQL text."""
        return self._query

    def get_parameter_type_oids(self) -> list[int]:
        """The type OIDs the server inferred for ``$1, $2, ...``."""
        return list(self._types)

    async def fetch(self, *args: Any, timeout: float | None = None) -> list[Any]:
        return await self._conn.fetch(self._query, *args, timeout=timeout)

    async def fetchrow(self, *args: Any, timeout: float | None = None) -> Any:
        return await self._conn.fetchrow(self._query, *args, timeout=timeout)

    async def fetchval(self, *args: Any, column: int = 0, timeout: float | None = None) -> Any:
        return await self._conn.fetchval(self._query, *args, column=column, timeout=timeout)

    async def executemany(
        self, args: Iterable[Sequence[Any]], *, timeout: float | None = None
    ) -> None:
        await self._conn.executemany(self._query, args, timeout=timeout)

    def cursor(self, *args: Any, prefetch: int | None = None) -> AsyncIterator[Any]:
        return self._conn.cursor(self._query, *args, prefetch=prefetch).__aiter__()

    def __repr__(self) -> str:
        return f"<fastio.PreparedStatement {self._query!r}>"
