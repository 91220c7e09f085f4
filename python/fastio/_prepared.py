"""``await conn.prepare(query)``: a statement prepared once on the server.

The statement lives in the connection's statement cache (sqlx's, sized by
``statement_cache_size``), so running it again costs no Parse round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any


class PreparedStatement:
    """asyncpg's PreparedStatement: ``fetch/fetchrow/fetchval/fetchmany/executemany``
    on the connection that prepared it (rows of its ``record_class``, if given)."""

    __slots__ = ("_conn", "_query", "_types", "_record_class")

    def __init__(
        self, conn: Any, query: str, types: list[int], record_class: type | None = None
    ) -> None:
        self._conn = conn
        self._query = query
        self._types = types
        self._record_class = record_class

    def get_query(self) -> str:
        """The statement's SQL text."""
        return self._query

    def get_parameter_type_oids(self) -> list[int]:
        """The type OIDs the server inferred for ``$1, $2, ...``."""
        return list(self._types)

    async def fetch(self, *args: Any, timeout: float | None = None) -> list[Any]:
        return await self._conn.fetch(  # type: ignore[no-any-return]
            self._query, *args, timeout=timeout, record_class=self._record_class
        )

    async def fetchrow(self, *args: Any, timeout: float | None = None) -> Any:
        return await self._conn.fetchrow(
            self._query, *args, timeout=timeout, record_class=self._record_class
        )

    async def fetchval(self, *args: Any, column: int = 0, timeout: float | None = None) -> Any:
        return await self._conn.fetchval(self._query, *args, column=column, timeout=timeout)

    async def fetchmany(
        self, args: Iterable[Sequence[Any]], *, timeout: float | None = None
    ) -> list[Any]:
        return await self._conn.fetchmany(  # type: ignore[no-any-return]
            self._query, args, timeout=timeout, record_class=self._record_class
        )

    async def executemany(
        self, args: Iterable[Sequence[Any]], *, timeout: float | None = None
    ) -> None:
        await self._conn.executemany(self._query, args, timeout=timeout)

    def cursor(self, *args: Any, prefetch: int | None = None) -> AsyncIterator[Any]:
        return self._conn.cursor(  # type: ignore[no-any-return]
            self._query, *args, prefetch=prefetch, record_class=self._record_class
        ).__aiter__()

    def __repr__(self) -> str:
        return f"<fastio.PreparedStatement {self._query!r}>"
