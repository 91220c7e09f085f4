"""fastio.dbapi: PEP 249 exceptions with PyMySQL's names; MySQL errnos mapped
as PyMySQL maps them and SQLite result codes as the stdlib sqlite3 maps them,
checked against both libraries and through the native SQLite backend."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

import fastio
import fastio.mysql
from fastio import dbapi


async def test_error_hierarchy_is_fastio_and_pep249() -> None:
    assert issubclass(fastio.mysql.Error, fastio.FastIOError)
    assert issubclass(fastio.mysql.InterfaceError, fastio.InterfaceError)
    assert issubclass(fastio.mysql.IntegrityError, fastio.mysql.DatabaseError)
    assert issubclass(fastio.mysql.Warning, Warning)
    assert fastio.mysql.IntegrityError is dbapi.IntegrityError
    assert fastio.mysql.Cursor.IntegrityError is dbapi.IntegrityError
    e = dbapi._mysql_error(1062, "23000", "Duplicate entry '1' for key 'PRIMARY'")
    assert type(e) is dbapi.IntegrityError
    assert e.args == (1062, "Duplicate entry '1' for key 'PRIMARY'") and e.sqlstate == "23000"
    # PyMySQL's fallbacks: unknown errnos below 1000 are internal, others operational
    assert type(dbapi._mysql_error(999, None, "x")) is dbapi.InternalError
    assert type(dbapi._mysql_error(1205, "HY000", "lock wait")) is dbapi.OperationalError
    for errno, cls in (
        (1213, "OperationalError"),
        (1406, "DataError"),
        (1235, "NotSupportedError"),
    ):
        assert type(dbapi._mysql_error(errno, None, "m")).__name__ == cls
    await asyncio.sleep(0)


def test_error_table_matches_pymysql() -> None:
    import pymysql.err

    for errno in range(0, 5000):
        ours = dbapi.mysql_error_class(errno).__name__
        theirs = pymysql.err.error_map.get(
            errno, pymysql.err.InternalError if errno < 1000 else pymysql.err.OperationalError
        ).__name__
        assert ours == theirs, errno


def test_sqlite_error_mapping_like_sqlite3() -> None:
    import sqlite3

    cases = {
        "2067": ("IntegrityError", "SQLITE_CONSTRAINT_UNIQUE"),
        "1555": ("IntegrityError", "SQLITE_CONSTRAINT_PRIMARYKEY"),
        "1299": ("IntegrityError", "SQLITE_CONSTRAINT_NOTNULL"),
        "787": ("IntegrityError", "SQLITE_CONSTRAINT_FOREIGNKEY"),
        "1": ("OperationalError", "SQLITE_ERROR"),
        "5": ("OperationalError", "SQLITE_BUSY"),
        "517": ("OperationalError", "SQLITE_BUSY_SNAPSHOT"),
        "6": ("OperationalError", "SQLITE_LOCKED"),
        "14": ("OperationalError", "SQLITE_CANTOPEN"),
        "8": ("OperationalError", "SQLITE_READONLY"),
        "11": ("DatabaseError", "SQLITE_CORRUPT"),
        "18": ("DataError", "SQLITE_TOOBIG"),
        "20": ("IntegrityError", "SQLITE_MISMATCH"),
        "21": ("InterfaceError", "SQLITE_MISUSE"),
        "25": ("InterfaceError", "SQLITE_RANGE"),
        "2": ("InternalError", "SQLITE_INTERNAL"),
    }
    for code, (cls, errname) in cases.items():
        e = dbapi._sqlite_error(code, "msg")
        assert (type(e).__name__, e.sqlite_errorname, e.sqlite_errorcode) == (
            cls,
            errname,
            int(code),
        )
        assert e.args == ("msg",)
        # the stdlib agrees on the name and on the class
        if hasattr(sqlite3, errname):
            assert getattr(sqlite3, errname) == int(code)
    e = dbapi._sqlite_error(None, "no code")
    assert type(e) is dbapi.DatabaseError and e.sqlite_errorcode is None
    # stdlib sqlite3 raises the same classes for the same failures
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (id int primary key)")
    db.execute("INSERT INTO t VALUES (1)")
    with contextlib.suppress(sqlite3.Error):
        db.execute("INSERT INTO t VALUES (1)")
    for sql in ("INSERT INTO t VALUES (1)", "SELEC 1", "SELECT * FROM missing"):
        with pytest.raises(sqlite3.Error) as info:
            db.execute(sql)
        ours = dbapi._sqlite_error(str(info.value.sqlite_errorcode), str(info.value))
        assert type(ours).__name__ == type(info.value).__name__
        assert ours.sqlite_errorname == info.value.sqlite_errorname
    db.close()


async def test_sqlite_unique_violation_is_integrity_error() -> None:
    pool = await fastio.create_pool("sqlite::memory:", min_size=1, max_size=1)
    try:
        await pool.execute("CREATE TABLE t (id integer primary key, email text unique)")
        await pool.execute("INSERT INTO t (email) VALUES (?)", "a@x")
        with pytest.raises(dbapi.IntegrityError) as info:
            await pool.execute("INSERT INTO t (email) VALUES (?)", "a@x")
        assert info.value.sqlite_errorcode == 2067
        assert info.value.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
        with pytest.raises(dbapi.OperationalError) as info:
            await pool.execute("SELECT * FROM missing")
        assert "missing" in str(info.value)
    finally:
        await pool.close()


async def test_sqlite_constraint_and_syntax_errors_match_sqlite3(tmp_path: Path) -> None:
    schema = (
        "CREATE TABLE a (id integer primary key);"
        "CREATE TABLE b (id integer primary key, a_id integer not null references a(id))"
    )
    cases = [
        ("INSERT INTO b (a_id) VALUES (?)", (None,)),
        ("INSERT INTO b (a_id) VALUES (?)", (5,)),
        ("SELEC 1", ()),
        ("INSERT INTO a VALUES (1), (1)", ()),
    ]
    expected = []
    ref = sqlite3.connect(":memory:")
    ref.execute("PRAGMA foreign_keys = ON")  # fastio's SQLite connections enforce them
    ref.executescript(schema)
    for sql, args in cases:
        with pytest.raises(sqlite3.Error) as info:
            ref.execute(sql, args)
        e = info.value
        expected.append((type(e).__name__, e.sqlite_errorcode, e.sqlite_errorname, str(e)))
    ref.close()
    pool = await fastio.create_pool("sqlite::memory:", min_size=1, max_size=1)
    try:
        for stmt in schema.split(";"):
            await pool.execute(stmt)
        got = []
        for sql, args in cases:
            with pytest.raises(dbapi.Error) as caught:
                await pool.execute(sql, *args)
            e = caught.value
            got.append((type(e).__name__, e.sqlite_errorcode, e.sqlite_errorname, str(e)))
    finally:
        await pool.close()
    assert got == expected
    assert [g[0] for g in got] == [
        "IntegrityError",
        "IntegrityError",
        "OperationalError",
        "IntegrityError",
    ]
    with pytest.raises(dbapi.OperationalError) as info:
        await fastio.create_pool(f"sqlite://{tmp_path}/missing/dir/x.db", min_size=1)
    assert info.value.sqlite_errorcode == 14  # SQLITE_CANTOPEN
