"""DB-API (PEP 249) exceptions for the MySQL and SQLite backends.

The names and the MySQL errno mapping are PyMySQL's (what aiomysql raises):
``IntegrityError(1062, "Duplicate entry ...")`` with ``args == (errno, msg)``.
SQLite errors map by result code as Python's sqlite3 does. Every class is a
``fastio.FastIOError``; ``InterfaceError`` is also ``fastio.InterfaceError``.
"""

from __future__ import annotations

from fastio._fastio import FastIOError
from fastio._fastio import InterfaceError as _FastIOInterfaceError


class Warning(Exception):  # noqa: A001  (PEP 249's name)
    """Important warnings, like data truncations while inserting."""


class Error(FastIOError):
    """Base class of the DB-API errors."""


class InterfaceError(Error, _FastIOInterfaceError):
    """An error of the database interface rather than the database."""


class DatabaseError(Error):
    """An error of the database."""


class DataError(DatabaseError):
    """A problem with the processed data (division by zero, value out of range)."""


class OperationalError(DatabaseError):
    """An error of the database's operation (lost connection, lock wait timeout, ...)."""


class IntegrityError(DatabaseError):
    """A violated constraint (duplicate key, foreign key, NOT NULL)."""


class InternalError(DatabaseError):
    """An internal error of the database (cursor not valid, transaction out of sync)."""


class ProgrammingError(DatabaseError):
    """A programming error (syntax error, table not found, wrong number of parameters)."""


class NotSupportedError(DatabaseError):
    """A method or API the database does not support."""


# PyMySQL's pymysql.err table (from MySQL's ER_* codes).
_MYSQL: dict[int, type[Error]] = {}


def _add(cls: type[Error], *errnos: int) -> None:
    for e in errnos:
        _MYSQL[e] = cls


_add(ProgrammingError, 1007, 1149, 1064, 1146, 1102, 1103, 1110, 1111, 1112, 1113, 1179, 1166)
_add(DataError, 1265, 1263, 1264, 1230, 1171, 1406, 1441, 1366, 1367)
_add(IntegrityError, 1062, 1216, 1452, 1217, 1451, 1215, 1048)
_add(NotSupportedError, 1196, 1235, 1289, 1286)
_add(OperationalError, 1044, 1045, 1040, 1142, 1143, 4025, 1213)


def _mysql_error(errno: int, sqlstate: str | None, message: str) -> Error:
    """The exception PyMySQL raises for a MySQL server error (its errno table,
    then its fallback: errno < 1000 InternalError, else OperationalError)."""
    cls = _MYSQL.get(errno)
    if cls is None:
        cls = InternalError if errno < 1000 else OperationalError
    exc = cls(errno, message)
    exc.errno = errno  # type: ignore[attr-defined]
    exc.sqlstate = sqlstate  # type: ignore[attr-defined]
    exc.msg = message  # type: ignore[attr-defined]
    return exc


# SQLite primary result codes -> sqlite3's classes.
_SQLITE: dict[int, type[Error]] = {
    1: OperationalError,  # SQLITE_ERROR (no such table, syntax error: as sqlite3)
    2: InternalError,  # SQLITE_INTERNAL
    3: OperationalError,  # SQLITE_PERM
    4: OperationalError,  # SQLITE_ABORT
    5: OperationalError,  # SQLITE_BUSY
    6: OperationalError,  # SQLITE_LOCKED
    7: OperationalError,  # SQLITE_NOMEM (sqlite3: MemoryError)
    8: OperationalError,  # SQLITE_READONLY
    9: OperationalError,  # SQLITE_INTERRUPT
    10: OperationalError,  # SQLITE_IOERR
    11: DatabaseError,  # SQLITE_CORRUPT
    12: OperationalError,  # SQLITE_NOTFOUND
    13: OperationalError,  # SQLITE_FULL
    14: OperationalError,  # SQLITE_CANTOPEN
    15: OperationalError,  # SQLITE_PROTOCOL
    16: OperationalError,  # SQLITE_EMPTY
    17: OperationalError,  # SQLITE_SCHEMA
    18: DataError,  # SQLITE_TOOBIG
    19: IntegrityError,  # SQLITE_CONSTRAINT
    20: IntegrityError,  # SQLITE_MISMATCH
    21: InterfaceError,  # SQLITE_MISUSE
    22: OperationalError,  # SQLITE_NOLFS
    23: OperationalError,  # SQLITE_AUTH
    24: OperationalError,  # SQLITE_FORMAT
    25: InterfaceError,  # SQLITE_RANGE
    26: DatabaseError,  # SQLITE_NOTADB
}


def _sqlite_error(code: str | None, message: str) -> Error:
    """The exception sqlite3 raises for an SQLite result code (extended codes
    map by their primary code, the low byte)."""
    try:
        extended = int(code) if code is not None else 1
    except ValueError:
        extended = 1
    cls = _SQLITE.get(extended & 0xFF, DatabaseError)
    exc = cls(message)
    exc.sqlite_errorcode = extended  # type: ignore[attr-defined]
    return exc


__all__ = [
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
]
