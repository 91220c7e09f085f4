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


# ------------------------------------------------- pool-level reads (readers)

LONG = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {n})"
    " SELECT x, x * 0.5, 'row ' || x, 'group ' || (x / 3), CASE WHEN x % 7 = 0 THEN NULL"
    " ELSE x * 1000000007 END, CASE WHEN x % 5 = 0 THEN x'00ff' ELSE CAST(x AS BLOB) END FROM c"
)


async def test_short_read_is_answered_at_once(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        await pool.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        await pool.execute("INSERT INTO t (name) VALUES ('a')")
        # A point read runs on the calling thread: the awaitable is already done.
        pending = pool.fetchrow("SELECT id, name FROM t WHERE id = ?", 1)
        assert pending.done()
        assert tuple(await pending) == (1, "a")
        assert (await pool.fetchrow("SELECT id, name FROM t WHERE id = ?", 1))["name"] == "a"
        assert await pool.fetchval("SELECT name FROM t WHERE id = ?", 2) is None
        assert await pool.fetch("SELECT id FROM t WHERE id > ?", 5) == []
        # Errors of such reads are the same DB-API classes.
        with pytest.raises(fastio.dbapi.OperationalError, match="no such column"):
            await pool.fetch("SELECT nope FROM t")
        with pytest.raises(fastio.dbapi.ProgrammingError, match="too large"):
            await pool.fetchval("SELECT ?", 2**70)
    finally:
        await pool.close()


async def test_a_task_reading_in_a_loop_lets_others_run(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0)
                ticks += 1

        tick = asyncio.create_task(ticker())
        try:
            for i in range(2000):
                assert await pool.fetchval("SELECT ?", i) == i
            assert ticks > 0
        finally:
            tick.cancel()
    finally:
        await pool.close()


async def test_all_types_round_trip_on_every_read_path(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        await pool.execute("CREATE TABLE v (i INTEGER, r REAL, t TEXT, b BLOB, n)")
        rows = [
            (2**63 - 1, 0.1, "héllo \u2603 \U0001f600", b"\x00\x01\xff", None),
            (-(2**63), -0.0, "", b"", 7),
            (0, 1e308, "x" * 5000, bytes(range(256)) * 20, 2.5),
            (None, float("inf"), "\x00inside", None, "text"),
        ]
        await pool.executemany("INSERT INTO v VALUES (?, ?, ?, ?, ?)", rows)
        with sqlite3.connect(tmp_path / "app.db") as db:
            expected = db.execute("SELECT * FROM v ORDER BY rowid").fetchall()
        assert [tuple(r) for r in await pool.fetch("SELECT * FROM v ORDER BY rowid")] == expected
        for i, row in enumerate(expected, 1):
            assert tuple(await pool.fetchrow("SELECT * FROM v WHERE rowid = ?", i)) == row
        async with pool.acquire() as conn:
            got = await conn.fetch("SELECT * FROM v ORDER BY rowid")
            assert [tuple(r) for r in got] == expected
        # Parameters of every kind bind on the read path too.
        assert tuple(await pool.fetchrow("SELECT ?, ?, ?, ?, ?", *rows[0])) == rows[0]
    finally:
        await pool.close()


async def test_long_read_moves_off_the_loop_and_keeps_every_row(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        query = LONG.format(n=50_000)
        with sqlite3.connect(":memory:") as db:
            cur = db.execute(query)
            expected = cur.fetchall()
            names = [d[0] for d in cur.description]
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0)
                ticks += 1

        tick = asyncio.create_task(ticker())
        try:
            pending = pool.fetch(query)
            assert not pending.done()  # far more than the loop thread's share
            got = await pending
            assert ticks > 0  # the loop ran other tasks meanwhile
            assert [tuple(r) for r in got] == expected
            assert list(got[0].keys()) == list(got[-1].keys()) == names
            # One long step (an aggregate) is moved off the loop thread too.
            ticks = 0
            count = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 2000000)"
            assert await pool.fetchval(count + " SELECT count(*) FROM c") == 2_000_000
            assert ticks > 0
            # First-row shapes of a long result.
            assert tuple(await pool.fetchrow(query)) == expected[0]
            assert await pool.fetchval(query, column=2) == "row 1"
        finally:
            tick.cancel()
    finally:
        await pool.close()


async def test_cancelled_or_timed_out_long_read_frees_its_reader(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path, max_size=1)  # one reader
    endless = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 4000000000)"
        " SELECT count(*) FROM c"
    )

    async def reader_is_free() -> bool:
        # A short read is answered at once only when a reader is free.
        for _ in range(500):
            pending = pool.fetchval("SELECT 1")
            if pending.done():
                return await pending == 1
            await pending
            await asyncio.sleep(0.01)
        return False

    try:
        with pytest.raises(fastio.TimeoutError):
            await pool.fetchval(endless, timeout=0.05)
        assert await reader_is_free()
        task = asyncio.create_task(pool.fetch(LONG.format(n=10_000_000)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await reader_is_free()
        assert await pool.fetchval("SELECT count(*) FROM (" + LONG.format(n=10) + ")") == 10
    finally:
        await pool.close()


async def test_cached_statements_follow_schema_changes(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path, statement_cache_size=2)
    try:
        await pool.execute("CREATE TABLE s (a INTEGER)")
        await pool.execute("INSERT INTO s VALUES (1)")
        q = "SELECT * FROM s"
        assert [tuple(r) for r in await pool.fetch(q)] == [(1,)]
        await pool.execute("ALTER TABLE s ADD COLUMN b TEXT DEFAULT 'x'")
        row = await pool.fetchrow(q)
        assert list(row.keys()) == ["a", "b"] and tuple(row) == (1, "x")
        await pool.execute("DROP TABLE s")
        with pytest.raises(fastio.dbapi.OperationalError, match="no such table"):
            await pool.fetch(q)
        await pool.execute("CREATE TABLE s (z TEXT)")
        await pool.execute("INSERT INTO s VALUES ('q')")
        row = await pool.fetchrow(q)
        assert list(row.keys()) == ["z"] and tuple(row) == ("q",)
        # More statements than the cache holds: evicted ones are prepared again.
        for _ in range(3):
            for k in range(6):
                assert await pool.fetchval(f"SELECT {k} + count(*) FROM s") == k + 1
    finally:
        await pool.close()


async def test_reads_see_committed_writes_and_transactions_their_own(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path, max_size=2)
    try:
        await pool.execute("CREATE TABLE t (x INTEGER)")
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("INSERT INTO t VALUES (1)")
                # Inside the transaction its connection sees its own write...
                assert await conn.fetchval("SELECT count(*) FROM t") == 1
                assert [tuple(r) for r in await conn.fetch("SELECT x FROM t")] == [(1,)]
                # ...pool-level reads see only what is committed.
                assert await pool.fetchval("SELECT count(*) FROM t") == 0
            assert await pool.fetchval("SELECT count(*) FROM t") == 1
        # A write through the pool is visible to the next pool read.
        for n in range(2, 30):
            await pool.execute("INSERT INTO t VALUES (?)", n)
            assert await pool.fetchval("SELECT max(x) FROM t") == n
    finally:
        await pool.close()


async def test_many_writers_with_readers(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path, max_size=6)
    try:
        await pool.execute("CREATE TABLE t (task INTEGER, n INTEGER)")
        done = False

        async def writer(task: int) -> None:
            for n in range(15):
                if n % 4 == 0:
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.execute("INSERT INTO t VALUES (?, ?)", task, n)
                        mine = await conn.fetchval("SELECT count(*) FROM t WHERE task = ?", task)
                        assert mine == n + 1
                else:
                    await pool.execute("INSERT INTO t VALUES (?, ?)", task, n)

        async def reader() -> int:
            seen, reads = 0, 0
            while not done:
                count = await pool.fetchval("SELECT count(*) FROM t")
                assert count >= seen  # committed rows never disappear
                seen = count
                rows = await pool.fetch("SELECT task, n FROM t WHERE n = ?", 0)
                assert all(r["n"] == 0 for r in rows)
                reads += 1
                await asyncio.sleep(0)
            return reads

        readers = [asyncio.create_task(reader()) for _ in range(10)]
        await asyncio.gather(*(writer(t) for t in range(30)))
        done = True
        assert all(n > 0 for n in await asyncio.gather(*readers))
        assert await pool.fetchval("SELECT count(*) FROM t") == 450
    finally:
        await pool.close()


async def test_write_lock_held_elsewhere_blocks_neither_reads_nor_the_loop(tmp_path: Path) -> None:
    pool = await file_pool(tmp_path)
    try:
        await pool.execute("CREATE TABLE t (x INTEGER)")
        await pool.execute("INSERT INTO t VALUES (1)")
        holder = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            holder.execute("INSERT INTO t VALUES (2)")
            # Reads go on (WAL): answered at once, without the holder's row.
            assert await pool.fetchval("SELECT count(*) FROM t") == 1
            write = asyncio.ensure_future(pool.execute("INSERT INTO t VALUES (3)"))
            ticks = 0
            while ticks < 20:  # the loop keeps running while the write waits
                await asyncio.sleep(0.005)
                ticks += 1
            assert not write.done()
            holder.execute("COMMIT")
        finally:
            holder.close()
        assert await write == "INSERT 0 1"
        assert await pool.fetchval("SELECT count(*) FROM t") == 3
    finally:
        await pool.close()


async def test_reads_of_connection_state_fall_back_to_the_pool(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE o (x INTEGER)")
        db.execute("INSERT INTO o VALUES (5)")
    pool = await file_pool(tmp_path, max_size=1, init_sql=[f"ATTACH DATABASE '{other}' AS other"])
    try:
        # init_sql runs on the read connections as well.
        pending = pool.fetchval("SELECT x FROM other.o")
        assert pending.done() and await pending == 5
        # A TEMP table exists on the pool's connection only: its reads go there.
        await pool.execute("CREATE TEMP TABLE tt (x INTEGER)")
        await pool.execute("INSERT INTO tt VALUES (9)")
        assert await pool.fetchval("SELECT x FROM tt") == 9
    finally:
        await pool.close()


async def test_memory_database_reads_need_no_readers() -> None:
    pool = await fastio.create_pool("sqlite::memory:", min_size=1, max_size=2)
    try:
        await pool.execute("CREATE TABLE t (x INTEGER)")
        await pool.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(3000)])
        assert len(await pool.fetch("SELECT x FROM t")) == 3000
        assert await pool.fetchval("SELECT sum(x) FROM t") == sum(range(3000))
    finally:
        await pool.close()
