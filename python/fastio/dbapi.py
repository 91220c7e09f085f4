"""PEP 249 exceptions for the MySQL and SQLite backends, with PyMySQL's names.

``fastio.mysql`` re-exports them as aiomysql does. MySQL server errors carry
``args == (errno, message)`` and ``sqlstate`` as in PyMySQL, and the errno picks
the class by PyMySQL's table. SQLite errors carry ``args == (message,)``,
``sqlite_errorcode`` and ``sqlite_errorname`` as in the stdlib ``sqlite3``,
and the result code picks the class as ``sqlite3`` does.

The native layer builds these through ``_mysql_error`` / ``_sqlite_error``
(it raises what they return), so the mapping lives in one place, here.
"""

from __future__ import annotations

import builtins

from fastio._fastio import FastIOError
from fastio._fastio import InterfaceError as _FastIOInterfaceError

__all__ = [
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "MySQLError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
]


class MySQLError(FastIOError):
    """Base of every DB-API exception here (PyMySQL's name; SQLite's errors too)."""


class Warning(builtins.Warning, MySQLError):  # noqa: A001  (PEP 249's name)
    """Important warnings like data truncations while inserting."""


class Error(MySQLError):
    """Base of the PEP 249 error classes (not Warning).

    ``sqlstate``: the server's SQLSTATE when it sent one (MySQL), else None.
    ``sqlite_errorcode`` / ``sqlite_errorname``: SQLite's extended result code
    and its name, as the stdlib sqlite3 sets them (SQLite errors only)."""

    sqlite_errorcode: int | None = None
    sqlite_errorname: str | None = None
    errno: int | None = None  # MySQL server errors: also args[0] (MySQLdb's attribute)
    msg: str | None = None  # MySQL server errors: also args[1]

    def __init__(self, *args: object, sqlstate: str | None = None) -> None:
        super().__init__(*args)
        self.sqlstate = sqlstate


class InterfaceError(Error, _FastIOInterfaceError):
    """Errors of the database interface rather than the database itself."""


class DatabaseError(Error):
    """Errors related to the database."""


class DataError(DatabaseError):
    """Problems with the processed data: out of range, too long, truncated."""


class OperationalError(DatabaseError):
    """Errors of the database's operation: lost connection, access denied,
    deadlock, locked database, ..."""


class IntegrityError(DatabaseError):
    """The relational integrity is affected: duplicate key, foreign key, NOT NULL."""


class InternalError(DatabaseError):
    """The database hit an internal error."""


class ProgrammingError(DatabaseError):
    """Programming errors: syntax error, table not found, wrong parameter count."""


class NotSupportedError(DatabaseError):
    """A method or feature the database does not support."""


# ------------------------------------------------------------------------ MySQL

# PyMySQL's err.error_map, errno by errno (names from pymysql.constants.ER).
_MYSQL_ERRNO: dict[int, type[Error]] = {}
for _cls, _errnos in (
    (
        ProgrammingError,
        (
            1007,  # DB_CREATE_EXISTS
            1064,  # PARSE_ERROR
            1102,  # WRONG_DB_NAME
            1103,  # WRONG_TABLE_NAME
            1110,  # FIELD_SPECIFIED_TWICE
            1111,  # INVALID_GROUP_FUNC_USE
            1112,  # UNSUPPORTED_EXTENSION
            1113,  # TABLE_MUST_HAVE_COLUMNS
            1146,  # NO_SUCH_TABLE
            1149,  # SYNTAX_ERROR
            1166,  # WRONG_COLUMN_NAME
            1179,  # CANT_DO_THIS_DURING_AN_TRANSACTION
        ),
    ),
    (
        DataError,
        (
            1171,  # PRIMARY_CANT_HAVE_NULL
            1230,  # NO_DEFAULT
            1263,  # WARN_NULL_TO_NOTNULL
            1264,  # WARN_DATA_OUT_OF_RANGE
            1265,  # WARN_DATA_TRUNCATED
            1366,  # TRUNCATED_WRONG_VALUE_FOR_FIELD
            1367,  # ILLEGAL_VALUE_FOR_TYPE
            1406,  # DATA_TOO_LONG
            1441,  # DATETIME_FUNCTION_OVERFLOW
        ),
    ),
    (
        IntegrityError,
        (
            1048,  # BAD_NULL_ERROR
            1062,  # DUP_ENTRY
            1215,  # CANNOT_ADD_FOREIGN
            1216,  # NO_REFERENCED_ROW
            1217,  # ROW_IS_REFERENCED
            1451,  # ROW_IS_REFERENCED_2
            1452,  # NO_REFERENCED_ROW_2
        ),
    ),
    (
        NotSupportedError,
        (
            1196,  # WARNING_NOT_COMPLETE_ROLLBACK
            1235,  # NOT_SUPPORTED_YET
            1286,  # UNKNOWN_STORAGE_ENGINE
            1289,  # FEATURE_DISABLED
        ),
    ),
    (
        OperationalError,
        (
            1040,  # CON_COUNT_ERROR
            1044,  # DBACCESS_DENIED_ERROR
            1045,  # ACCESS_DENIED_ERROR
            1142,  # TABLEACCESS_DENIED_ERROR
            1143,  # COLUMNACCESS_DENIED_ERROR
            1213,  # LOCK_DEADLOCK
            4025,  # CONSTRAINT_FAILED
        ),
    ),
):
    for _errno in _errnos:
        _MYSQL_ERRNO[_errno] = _cls
del _cls, _errnos, _errno


def mysql_error_class(errno: int) -> type[Error]:
    """The class PyMySQL raises for a server error number: its table, else
    InternalError below 1000 and OperationalError from 1000 on."""
    cls = _MYSQL_ERRNO.get(errno)
    if cls is None:
        cls = InternalError if errno < 1000 else OperationalError
    return cls


def _mysql_error(errno: int, sqlstate: str | None, message: str) -> Error:
    """Called by the native layer for a MySQL server error; returns the exception to raise."""
    exc = mysql_error_class(errno)(errno, message, sqlstate=sqlstate)
    exc.errno = errno
    exc.msg = message
    return exc


# ----------------------------------------------------------------------- SQLite

# Primary result codes (the low byte of an extended code), mapped as the stdlib
# sqlite3 module maps them (Modules/_sqlite/util.c).
_SQLITE_PRIMARY: dict[int, type[Error]] = {
    1: OperationalError,  # SQLITE_ERROR (syntax errors, no such table, ...)
    2: InternalError,  # SQLITE_INTERNAL
    3: OperationalError,  # SQLITE_PERM
    4: OperationalError,  # SQLITE_ABORT
    5: OperationalError,  # SQLITE_BUSY
    6: OperationalError,  # SQLITE_LOCKED
    8: OperationalError,  # SQLITE_READONLY
    9: OperationalError,  # SQLITE_INTERRUPT
    10: OperationalError,  # SQLITE_IOERR
    11: DatabaseError,  # SQLITE_CORRUPT
    12: InternalError,  # SQLITE_NOTFOUND
    13: OperationalError,  # SQLITE_FULL
    14: OperationalError,  # SQLITE_CANTOPEN
    15: OperationalError,  # SQLITE_PROTOCOL
    16: OperationalError,  # SQLITE_EMPTY
    17: OperationalError,  # SQLITE_SCHEMA
    18: DataError,  # SQLITE_TOOBIG
    19: IntegrityError,  # SQLITE_CONSTRAINT
    20: IntegrityError,  # SQLITE_MISMATCH
    21: InterfaceError,  # SQLITE_MISUSE
    25: InterfaceError,  # SQLITE_RANGE
}

_SQLITE_NAMES = (
    "ERROR INTERNAL PERM ABORT BUSY LOCKED NOMEM READONLY INTERRUPT IOERR CORRUPT NOTFOUND"
    " FULL CANTOPEN PROTOCOL EMPTY SCHEMA TOOBIG CONSTRAINT MISMATCH MISUSE NOLFS AUTH FORMAT"
    " RANGE NOTADB NOTICE WARNING"
).split()

# Extended result codes (sqlite3.h): primary | (n << 8).
_SQLITE_EXTENDED: dict[int, str] = {
    (primary | (n << 8)): f"{prefix}_{name}"
    for primary, prefix, names in (
        (1, "ERROR", "MISSING_COLLSEQ RETRY SNAPSHOT"),
        (5, "BUSY", "RECOVERY SNAPSHOT TIMEOUT"),
        (6, "LOCKED", "SHAREDCACHE VTAB"),
        (8, "READONLY", "RECOVERY CANTLOCK ROLLBACK DBMOVED CANTINIT DIRECTORY"),
        (
            10,
            "IOERR",
            "READ SHORT_READ WRITE FSYNC DIR_FSYNC TRUNCATE FSTAT UNLOCK RDLOCK DELETE"
            " BLOCKED NOMEM ACCESS CHECKRESERVEDLOCK LOCK CLOSE DIR_CLOSE SHMOPEN SHMSIZE"
            " SHMLOCK SHMMAP SEEK DELETE_NOENT MMAP GETTEMPPATH CONVPATH VNODE AUTH"
            " BEGIN_ATOMIC COMMIT_ATOMIC ROLLBACK_ATOMIC DATA CORRUPTFS",
        ),
        (11, "CORRUPT", "VTAB SEQUENCE INDEX"),
        (14, "CANTOPEN", "NOTEMPDIR ISDIR FULLPATH CONVPATH DIRTYWAL SYMLINK"),
        (
            19,
            "CONSTRAINT",
            "CHECK COMMITHOOK FOREIGNKEY FUNCTION NOTNULL PRIMARYKEY TRIGGER UNIQUE VTAB"
            " ROWID PINNED DATATYPE",
        ),
    )
    for n, name in enumerate(names.split(), start=1)
}


def _sqlite_errorname(code: int) -> str:
    """'SQLITE_CONSTRAINT_UNIQUE' for 2067, as sqlite3's ``sqlite_errorname``."""
    name = _SQLITE_EXTENDED.get(code)
    if name is None:
        primary = code & 0xFF
        if not 1 <= primary <= len(_SQLITE_NAMES):
            return "SQLITE_UNKNOWN"
        name = _SQLITE_NAMES[primary - 1]
    return "SQLITE_" + name


def sqlite_error_class(code: int | None) -> type[Error]:
    """The class the stdlib sqlite3 raises for a (possibly extended) result code."""
    if code is None:
        return DatabaseError
    if code == 7:  # SQLITE_NOMEM: sqlite3 raises MemoryError; keep it a DB-API error
        return OperationalError
    return _SQLITE_PRIMARY.get(code & 0xFF, DatabaseError)


def _sqlite_error(code: str | None, message: str) -> Error:
    """Called by the native layer for a SQLite error (``code``: the extended result
    code as a decimal string, or None); returns the exception to raise."""
    number: int | None
    try:
        number = int(code) if code is not None else None
    except ValueError:
        number = None
    exc = sqlite_error_class(number)(message)
    exc.sqlite_errorcode = number
    exc.sqlite_errorname = _sqlite_errorname(number) if number is not None else None
    return exc
