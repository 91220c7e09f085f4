"""aiomysql's cursor classes over fastio's native MySQL connection.

A cursor turns ``%s`` / ``%(name)s`` into bound ``?`` parameters, runs the
statement in one native call (``_exec``: description, rows, rowcount,
lastrowid) and serves the fetch methods from the rows it got. The SS cursors
keep aiomysql's forward-only behaviour and ``rowcount``; their rows are
fetched in one go (see the README's "Differences from aiomysql").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from fastio import _mysql_params
from fastio.dbapi import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)

if TYPE_CHECKING:
    from fastio.mysql import Connection

__all__ = ["Cursor", "DictCursor", "SSCursor", "SSDictCursor"]

logger = logging.getLogger("fastio.mysql")

# What MySQLdb/PyMySQL report as rowcount for an unbuffered result (2**64 - 1).
_UNKNOWN_ROWCOUNT = 18446744073709551615


class Cursor:
    """Runs queries and holds their results (``await conn.cursor()``)."""

    #: Cap on a statement ``executemany`` generates (PyMySQL's attribute).
    max_stmt_length = _mysql_params.MAX_STMT_LENGTH
    _unbuffered = False

    Warning = Warning
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    def __init__(self, connection: Connection, echo: bool = False) -> None:
        self._connection: Connection | None = connection
        self._description: tuple[tuple[Any, ...], ...] | None = None
        self._rownumber = 0
        self._rowcount = -1
        self._arraysize = 1
        self._executed: str | None = None
        self._args: Any = None
        self._rows: Sequence[Any] | None = None
        self._lastrowid: int | None = None
        self._echo = echo

    # ------------------------------------------------------------ attributes

    @property
    def connection(self) -> Connection | None:
        """The connection this cursor was created on (None once closed)."""
        return self._connection

    @property
    def description(self) -> tuple[tuple[Any, ...], ...] | None:
        """One 7-tuple per result column ``(name, type_code, display_size,
        internal_size, precision, scale, null_ok)``, type codes as
        ``pymysql.constants.FIELD_TYPE``; None when the statement returned no rows."""
        return self._description

    @property
    def rowcount(self) -> int:
        """Rows affected (DML) or returned (SELECT) by the last execute; -1 before."""
        return self._rowcount

    @property
    def rownumber(self) -> int:
        """0-based index of the next row in the result."""
        return self._rownumber

    @property
    def arraysize(self) -> int:
        """Rows ``fetchmany()`` returns by default (1)."""
        return self._arraysize

    @arraysize.setter
    def arraysize(self, val: int) -> None:
        self._arraysize = val

    @property
    def lastrowid(self) -> int | None:
        """AUTO_INCREMENT value of the last INSERT (0 if none); None after a SELECT."""
        return self._lastrowid

    @property
    def echo(self) -> bool:
        return self._echo

    @property
    def closed(self) -> bool:
        return self._connection is None

    @property
    def _last_executed(self) -> str | None:
        """The last query as PyMySQL would have sent it (values rendered; display only)."""
        if self._executed is None:
            return None
        return _mysql_params.mogrify(self._executed, self._args)

    def setinputsizes(self, *args: Any) -> None:
        """Does nothing, required by DB API."""

    def setoutputsizes(self, *args: Any) -> None:
        """Does nothing, required by DB API."""

    # ------------------------------------------------------------- execution

    def _get_db(self) -> Connection:
        if self._connection is None:
            raise ProgrammingError("Cursor closed")
        return self._connection

    def _check_executed(self) -> None:
        if not self._executed:
            raise ProgrammingError("execute() first")

    def mogrify(self, query: str, args: Any = None) -> str:
        """The query with the values rendered as PyMySQL would splice them.

        For display and logging only: ``execute`` binds the values instead."""
        self._get_db()
        return _mysql_params.mogrify(query, args)

    async def execute(self, query: str, args: Any = None) -> int:
        """Runs one statement; ``args``: a tuple/list for ``%s``, a dict for
        ``%(name)s`` (None: the query is sent as written). Returns rowcount."""
        conn = self._get_db()
        sql, params = _mysql_params.convert(query, args)
        if self._echo:
            logger.info(query)
            logger.info("%r", args)
        await self._run(conn, sql, params)
        self._executed = query
        self._args = args
        return self._rowcount

    async def executemany(self, query: str, args: Iterable[Any]) -> int | None:
        """Runs the statement once per argument set. A simple ``INSERT ...
        VALUES (%s, ...)`` is sent as multi-row INSERTs, as aiomysql does."""
        if not args:
            return None
        conn = self._get_db()
        if self._echo:
            logger.info("CALL %s", query)
            logger.info("%r", args)
        rows = args if isinstance(args, Sequence) else list(args)
        m = _mysql_params.RE_INSERT_VALUES.match(query)
        total = 0
        if m:
            for sql, params in _mysql_params.insert_batches(m, rows):
                await self._run(conn, sql, params)
                total += self._rowcount
        else:
            for arg in rows:
                sql, params = _mysql_params.convert(query, arg)
                await self._run(conn, sql, params)
                total += self._rowcount
        self._executed = query
        self._args = rows[-1]
        self._rowcount = total
        return total

    async def callproc(self, procname: str, args: Sequence[Any] = ()) -> Sequence[Any]:
        """Calls a stored procedure; parameters go through ``@_procname_n``
        server variables as in PyMySQL (its first result set is kept)."""
        conn = self._get_db()
        for index, arg in enumerate(args):
            await self._run(conn, f"SET @_{procname}_{index}=?", (arg,))
        names = ",".join(f"@_{procname}_{i}" for i in range(len(args)))
        q = f"CALL {procname}({names})"
        await self._run(conn, q, ())
        self._executed = q
        self._args = None
        return args

    async def _run(self, conn: Connection, sql: str, params: tuple[Any, ...]) -> None:
        self._clear_result()
        description, rows, rowcount, lastrowid = await conn._exec(sql, params)
        self._description = description
        if description is None:
            self._rowcount = rowcount
            self._lastrowid = lastrowid
            conn._insert_id = lastrowid
        else:
            self._rows = self._convert_rows(description, rows)
            self._rowcount = _UNKNOWN_ROWCOUNT if self._unbuffered else rowcount
            conn._insert_id = 0

    def _convert_rows(self, description: Sequence[Sequence[Any]], rows: list[Any]) -> Sequence[Any]:
        return tuple(rows)

    def _clear_result(self) -> None:
        self._rownumber = 0
        self._rowcount = 0
        self._description = None
        self._lastrowid = None
        self._rows = None

    async def nextset(self) -> bool | None:
        """There is only ever one result set per execute here: None."""
        self._get_db()
        return None

    # -------------------------------------------------------------- fetching

    async def fetchone(self) -> Any:
        """The next row, or None."""
        self._check_executed()
        rows = self._rows
        if rows is None or self._rownumber >= len(rows):
            return None
        row = rows[self._rownumber]
        self._rownumber += 1
        return row

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        """The next ``size`` rows (default ``arraysize``)."""
        self._check_executed()
        rows = self._rows
        if rows is None:
            return []
        end = self._rownumber + (size or self._arraysize)
        result = rows[self._rownumber : end]
        self._rownumber = min(end, len(rows))
        return result

    async def fetchall(self) -> Sequence[Any]:
        """The remaining rows."""
        self._check_executed()
        rows = self._rows
        if rows is None:
            return []
        result = rows[self._rownumber :] if self._rownumber else rows
        self._rownumber = len(rows)
        return result

    async def scroll(self, value: int, mode: str = "relative") -> None:
        """Moves to another row: ``relative`` to the current one or ``absolute``."""
        self._check_executed()
        if mode == "relative":
            r = self._rownumber + value
        elif mode == "absolute":
            r = value
        else:
            raise ProgrammingError(f"unknown scroll mode {mode}")
        if not (0 <= r < len(self._rows or ())):
            raise IndexError("out of range")
        self._rownumber = r

    async def close(self) -> None:
        """Detaches the cursor from its connection."""
        self._connection = None

    def __aiter__(self) -> Cursor:
        return self

    async def __anext__(self) -> Any:
        row = await self.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _DictCursorMixin:
    """Rows as dicts keyed by column name."""

    dict_type: Any = dict

    def _convert_rows(self, description: Sequence[Sequence[Any]], rows: list[Any]) -> Sequence[Any]:
        if not rows:
            return ()  # as aiomysql: an empty result stays a tuple
        fields = [d[0] for d in description]
        make = self.dict_type
        return [make(zip(fields, row)) for row in rows]


class DictCursor(_DictCursorMixin, Cursor):
    """A cursor which returns rows as dicts."""


class SSCursor(Cursor):
    """aiomysql's unbuffered cursor: forward-only, ``rowcount`` unknown
    (2**64-1) for result sets. Rows arrive in one native call."""

    _unbuffered = True

    async def fetchall(self) -> list[Any]:
        self._check_executed()
        return list(await super().fetchall())

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        self._check_executed()
        return list(await super().fetchmany(size))

    async def scroll(self, value: int, mode: str = "relative") -> None:
        """Forward only, as aiomysql's SSCursor (moving past the end stops there)."""
        self._check_executed()
        if mode == "relative":
            if value < 0:
                raise NotSupportedError("Backwards scrolling not supported by this cursor")
            target = self._rownumber + value
        elif mode == "absolute":
            if value < self._rownumber:
                raise NotSupportedError("Backwards scrolling not supported by this cursor")
            target = value
        else:
            raise ProgrammingError(f"unknown scroll mode {mode}")
        self._rownumber = target


class SSDictCursor(_DictCursorMixin, SSCursor):
    """An unbuffered cursor which returns rows as dicts."""
