"""SQLite, the embedded default, through fastio's native API: files and
in-memory databases, values as sqlite3 gives them, transactions, dirty release,
executemany, and many tasks writing through one pool at once."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import fastio


async def file_pool(tmp_path: Path, **kw: Any) -> fastio.Pool:
    kw.setdefault("min_size", 1)
    kw.setdefault("max_size", 4)
    return await fastio.create_pool(f"sqlite://{tmp_path / 'app.db'}", **kw)


async def test_file_database_is_created_in_wal_mode(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        assert pool.backend == "sqlite"
        assert await pool.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)") == (
            "CREATE TABLE"
        )
        assert await pool.execute("INSERT INTO t (name) VALUES (?)", "a") == "INSERT 0 1"
        assert await pool.fetchval("PRAGMA journal_mode") == "wal"
    finally:
        await pool.close()
    # The data is in the file, readable by Python's own sqlite3.
    with sqlite3.connect(tmp_path / "app.db") as db:
        assert db.execute("SELECT id, name FROM t").fetchall() == [(1, "a")]


async def test_memory_database_is_shared_by_the_pool() -> None:
    pool = await fastio.create_pool("sqlite::memory:", min_size=2, max_size=2)
    try:
        await pool.execute("CREATE TABLE t (x INTEGER)")
        async with pool.acquire() as a, pool.acquire() as b:
            await a.execute("INSERT INTO t VALUES (1)")
            assert await b.fetchval("SELECT count(*) FROM t") == 1
    finally:
        await pool.close()


async def test_values_come_back_as_sqlite3_returns_them(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        await pool.execute("CREATE TABLE v (i INTEGER, r REAL, t TEXT, b BLOB, n NUMERIC)")
        row = (-(2**63), 1.5, "héllo \u2603", b"\x00\xff", None)
        await pool.execute("INSERT INTO v VALUES (?, ?, ?, ?, ?)", *row)
        got = await pool.fetchrow("SELECT * FROM v")
        assert tuple(got) == row
        assert [type(x) for x in got] == [int, float, str, bytes, type(None)]
        with sqlite3.connect(tmp_path / "app.db") as db:
            assert db.execute("SELECT * FROM v").fetchone() == tuple(got)
        # Python values sqlite3 stores as text: dates, datetimes, Decimal, UUID.
        u = uuid.uuid4()
        vals = (datetime.date(2024, 2, 29), datetime.datetime(2024, 1, 2, 3, 4, 5, 6))
        got = await pool.fetchrow("SELECT ?, ?, ?, ?, ?", *vals, decimal.Decimal("1.10"), u, True)
        assert tuple(got) == ("2024-02-29", "2024-01-02 03:04:05.000006", "1.10", str(u), 1)
    finally:
        await pool.close()


async def test_unbindable_argument_is_a_programming_error(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        with pytest.raises(fastio.dbapi.ProgrammingError, match="argument 1"):
            await pool.fetchval("SELECT ?", [1, 2])
        with pytest.raises(fastio.dbapi.ProgrammingError, match="too large"):
            await pool.fetchval("SELECT ?", 2**70)
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_errors_are_dbapi_classes(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        await pool.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
        await pool.execute("INSERT INTO u (name) VALUES ('a')")
        with pytest.raises(fastio.dbapi.IntegrityError, match="UNIQUE"):
            await pool.execute("INSERT INTO u (name) VALUES ('a')")
        with pytest.raises(fastio.dbapi.OperationalError, match="no such table"):
            await pool.fetch("SELECT * FROM missing")
        assert issubclass(fastio.dbapi.IntegrityError, fastio.FastIOError)
    finally:
        await pool.close()


async def test_exec_gives_the_dbapi_result(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
            desc, rows, count, last = await conn._exec("INSERT INTO t (name) VALUES (?)", ("a",))
            assert (desc, rows, count, last) == (None, [], 1, 1)
            await conn._exec("INSERT INTO t (name) VALUES (?)", ["b"])
            desc, rows, count, _ = await conn._exec("SELECT id, name FROM t ORDER BY id")
            assert [d[0] for d in desc] == ["id", "name"]
            assert rows == [(1, "a"), (2, "b")] and count == 2
            _, _, count, last = await conn._exec("UPDATE t SET name = ?", ("z",))
            assert (count, last) == (2, 0)
    finally:
        await pool.close()


async def test_transactions_savepoints_and_dirty_release(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path, max_size=1)
    try:
        await pool.execute("CREATE TABLE t (x INTEGER)")
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("INSERT INTO t VALUES (1)")
                assert conn.is_in_transaction()
                with pytest.raises(RuntimeError):
                    async with conn.transaction():
                        await conn.execute("INSERT INTO t VALUES (2)")
                        raise RuntimeError("inner")
            assert not conn.is_in_transaction()
        assert await pool.fetch("SELECT x FROM t") == [(1,)]
        # Released inside a transaction: rolled back, not handed out dirty.
        conn = await pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO t VALUES (3)")
        await pool.release(conn)
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM t") == 1
    finally:
        await pool.close()


async def test_executemany_is_atomic(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        await pool.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        await pool.executemany("INSERT INTO t (name) VALUES (?)", [(f"n{i}",) for i in range(5000)])
        assert await pool.fetchval("SELECT count(*) FROM t") == 5000
        with pytest.raises(fastio.dbapi.IntegrityError):
            await pool.executemany("INSERT INTO t (name) VALUES (?)", [("x",), (None,)])
        assert await pool.fetchval("SELECT count(*) FROM t") == 5000
    finally:
        await pool.close()


async def test_concurrent_writers_through_one_pool_do_not_fail(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path, max_size=8)
    try:
        await pool.execute("CREATE TABLE t (task INTEGER, n INTEGER)")

        async def writer(task: int) -> None:
            for n in range(20):
                if n % 5 == 0:
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.execute("INSERT INTO t VALUES (?, ?)", task, n)
                        await conn.fetchval("SELECT count(*) FROM t")
                else:
                    await pool.execute("INSERT INTO t VALUES (?, ?)", task, n)

        await asyncio.gather(*(writer(t) for t in range(50)))
        assert await pool.fetchval("SELECT count(*) FROM t") == 1000
        assert await pool.fetchval("SELECT count(DISTINCT task) FROM t") == 50
    finally:
        await pool.close()


async def test_cursor_iterates_all_rows(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        await pool.execute("CREATE TABLE t (x INTEGER)")
        await pool.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(250)])
        async with pool.acquire() as conn:
            got = [
                r["x"] async for r in conn.cursor("SELECT x FROM t WHERE x >= ?", 50, prefetch=7)
            ]
        assert got == list(range(50, 250))
    finally:
        await pool.close()


async def test_fetch_shapes_and_stats(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        await pool.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        await pool.executemany("INSERT INTO t VALUES (?, ?)", [(1, "x"), (2, "y")])
        rows = await pool.fetch("SELECT a, b FROM t ORDER BY a")
        assert rows == [(1, "x"), (2, "y")] and rows[1]["b"] == "y"
        assert await pool.fetchrow("SELECT a FROM t WHERE a = ?", 9) is None
        assert await pool.fetchval("SELECT b FROM t WHERE a = ?", 2) == "y"
        assert await pool.fetchval("SELECT a, b FROM t WHERE a = 1", column=1) == "x"
        with pytest.raises(IndexError):
            await pool.fetchval("SELECT a FROM t", column=3)
        with pytest.raises(fastio.dbapi.OperationalError, match="syntax"):
            await pool.fetch("SELEC 1")
        stats = pool.get_stats()
        assert stats["acquired"] == 8 and stats["errors"] == 1
        assert stats["size"] >= 1 and stats["in_use"] == 0
        assert pool.get_min_size() == 1 and pool.get_max_size() == 4
    finally:
        await pool.close()
    with pytest.raises(fastio.InterfaceError, match="closed"):
        await pool.fetch("SELECT 1")


async def test_standalone_connection(tmp_path: Path) -> None:
    conn = await fastio.connect(
        f"sqlite://{tmp_path / 'c.db'}", init_sql=["PRAGMA user_version = 7"]
    )
    try:
        assert conn.backend == "sqlite"
        assert await conn.fetchval("PRAGMA user_version") == 7
        assert conn._server_info() == sqlite3.sqlite_version or conn._server_info()[0].isdigit()
    finally:
        await conn.close()
    assert conn.is_closed()
    with pytest.raises(fastio.InterfaceError):
        await conn.fetch("SELECT 1")


async def test_postgres_only_methods_say_so(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        with pytest.raises(fastio.InterfaceError, match="only available for PostgreSQL"):
            await pool.copy_records_to_table("t", records=[(1,)])
        async with pool.acquire() as conn:
            with pytest.raises(fastio.InterfaceError, match="only available for PostgreSQL"):
                await conn.prepare("SELECT 1")
    finally:
        await pool.close()


async def test_bad_dsn_is_a_clear_error() -> None:
    with pytest.raises(fastio.InvalidArgumentError, match="dsn must start with"):
        await fastio.create_pool("oracle://x")


async def test_statements_and_pool_gauges_are_in_metrics(tmp_path: Path) -> None:
    fastio.metrics.reset()
    pool = await file_pool(tmp_path, name="sqlite-metrics")
    try:
        await pool.execute("CREATE TABLE t (x INTEGER)")
        await pool.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        for _ in range(5):
            await pool.fetch("SELECT x FROM t")
        with pytest.raises(fastio.dbapi.OperationalError):
            await pool.fetch("SELECT nope FROM t")
        async with pool.acquire() as conn:
            await conn.execute("UPDATE t SET x = ?", 3)
            snap = fastio.metrics.snapshot()
            pools = [p for p in snap["pools"] if p.get("name") == "sqlite-metrics"]
            assert pools and pools[0]["in_use"] == 1 and pools[0]["backend"] == "sqlite"
        series = {
            s["labels"]["statement"]: s
            for s in fastio.metrics.snapshot()["db"]
            if s["labels"]["pool"] == "sqlite-metrics"
        }
        assert series["select"]["count"] == 6 and series["select"]["errors"] == 1
        assert series["insert"]["count"] == 1
        assert series["update"]["count"] == 1 and series["ddl"]["count"] == 1
        assert "delete" not in series  # never used: not reported
        assert "sqlite-metrics sqlite select" in fastio.metrics.report("db")
        text = fastio.metrics.render_prometheus()
        # Valid exposition text: prometheus_client parses it back.
        families = {f.name: f for f in text_string_to_metric_families(text)}
        in_use = [
            smp.value
            for smp in families["fastio_pool_in_use"].samples
            if smp.labels == {"pool": "sqlite-metrics", "backend": "sqlite"}
        ]
        assert in_use == [0.0]
        assert families["fastio_pool_in_use"].type == "gauge"
        assert families["fastio_pool_acquire_timeouts"].type == "counter"
        assert families["fastio_db_duration_seconds"].type == "histogram"
        assert 'fastio_pool_size{pool="sqlite-metrics",backend="sqlite"}' in text
        assert (
            'fastio_db_calls_total{pool="sqlite-metrics",backend="sqlite",statement="select"} 6'
            in (text)
        )
    finally:
        await pool.close()
