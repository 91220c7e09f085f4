"""Transaction blocks for fastio connections (asyncpg's Transaction semantics).

The outermost block is ``BEGIN ...``/``COMMIT``/``ROLLBACK``; a block opened
while the connection is already in a transaction is a ``SAVEPOINT``.
Leaving ``async with conn.transaction():`` through an exception rolls back.
"""

from __future__ import annotations

import itertools
from typing import Any

from fastio._fastio import InterfaceError

_ISOLATION = {
    "serializable": "SERIALIZABLE",
    "repeatable_read": "REPEATABLE READ",
    "read_committed": "READ COMMITTED",
    "read_uncommitted": "READ UNCOMMITTED",
}
_savepoint_ids = itertools.count(1)


class TransactionError(InterfaceError):
    """A Transaction was used in the wrong state (started twice, finished twice, ...)."""


class Transaction:
    """``async with conn.transaction(isolation=, readonly=, deferrable=):``.

    Or manually: ``tr = conn.transaction(); await tr.start(); ... await
    tr.commit()`` / ``await tr.rollback()``.
    """

    __slots__ = ("_conn", "_isolation", "_readonly", "_deferrable", "_state", "_savepoint")

    def __init__(
        self,
        connection: Any,
        *,
        isolation: str | None = None,
        readonly: bool = False,
        deferrable: bool = False,
    ) -> None:
        if isolation is not None and isolation not in _ISOLATION:
            raise ValueError(
                f"isolation must be one of {sorted(_ISOLATION)} or None, not {isolation!r}"
            )
        self._conn = connection
        self._isolation = isolation
        self._readonly = readonly
        self._deferrable = deferrable
        self._state = "new"
        self._savepoint: str | None = None

    def _begin_sql(self) -> str:
        backend = getattr(self._conn, "backend", "postgresql")
        if backend == "mysql":
            if self._deferrable:
                raise ValueError("deferrable transactions are PostgreSQL only")
            begin = "START TRANSACTION READ ONLY" if self._readonly else "START TRANSACTION"
            if self._isolation is None:
                return begin
            return f"SET TRANSACTION ISOLATION LEVEL {_ISOLATION[self._isolation]}; {begin}"
        if backend == "sqlite":
            if self._isolation not in (None, "serializable") or self._deferrable:
                raise ValueError(
                    "SQLite transactions are serializable; isolation and deferrable cannot be set"
                )
            # IMMEDIATE takes the write lock up front, so two writers wait for
            # each other (busy timeout) instead of failing with SQLITE_BUSY.
            return "BEGIN DEFERRED" if self._readonly else "BEGIN IMMEDIATE"
        parts = ["BEGIN"]
        if self._isolation is not None:
            parts.append(f"ISOLATION LEVEL {_ISOLATION[self._isolation]}")
        if self._readonly:
            parts.append("READ ONLY")
        if self._deferrable:
            parts.append("DEFERRABLE")
        return " ".join(parts)

    async def start(self) -> None:
        """Enters the transaction block (or a savepoint when nested)."""
        if self._state != "new":
            raise TransactionError(f"cannot start a transaction that is {self._state}")
        if self._conn.is_in_transaction():
            if self._isolation is not None or self._readonly or self._deferrable:
                raise TransactionError(
                    "nested transactions (savepoints) cannot set isolation, readonly or deferrable"
                )
            self._savepoint = f"fastio_sp_{next(_savepoint_ids)}"
            await self._conn.execute(f"SAVEPOINT {self._savepoint}")
        else:
            await self._conn.execute(self._begin_sql())
        self._state = "started"

    async def commit(self) -> None:
        """Commits (or releases the savepoint)."""
        self._check_started("commit")
        if self._savepoint is not None:
            await self._conn.execute(f"RELEASE SAVEPOINT {self._savepoint}")
        else:
            await self._conn.execute("COMMIT")
        self._state = "committed"

    async def rollback(self) -> None:
        """Rolls back (to the savepoint when nested)."""
        self._check_started("rollback")
        if self._savepoint is not None:
            await self._conn.execute(f"ROLLBACK TO SAVEPOINT {self._savepoint}")
            await self._conn.execute(f"RELEASE SAVEPOINT {self._savepoint}")
        else:
            await self._conn.execute("ROLLBACK")
        self._state = "rolled back"

    def _check_started(self, what: str) -> None:
        if self._state != "started":
            raise TransactionError(f"cannot {what}; the transaction is {self._state}")

    async def __aenter__(self) -> Transaction:
        await self.start()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._state != "started":
            return
        if exc_type is None:
            await self.commit()
        else:
            await self.rollback()

    def __repr__(self) -> str:
        kind = "savepoint" if self._savepoint else "transaction"
        return f"<fastio.Transaction {kind} {self._state}>"
