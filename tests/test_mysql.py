"""MySQL / MariaDB through fastio's native API, against the harness's real
MariaDB: values as aiomysql returns them, statuses, executemany batching,
errors by errno, transactions, dirty release, cancellation and restarts."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import itertools
import random
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastio
from fastio import dbapi

_names = itertools.count()


def table() -> str:
    return f"t_{next(_names)}_{uuid.uuid4().hex[:8]}"


async def pool_for(server: Any, **kw: Any) -> fastio.Pool:
    kw.setdefault("min_size", 1)
    kw.setdefault("max_size", 4)
    return await fastio.create_pool(server.dsn, **kw)


async def test_values_come_back_as_aiomysql_returns_them(mysql_server: Any) -> None:
    pool = await pool_for(mysql_server)
    t = table()
    try:
        assert pool.backend == "mysql"
        assert (
            await pool.execute(
                f"CREATE TABLE {t} (id INT AUTO_INCREMENT PRIMARY KEY, ti TINYINT, si SMALLINT,"
                " bi BIGINT, ub BIGINT UNSIGNED, f FLOAT, d DOUBLE, n DECIMAL(30,10),"
                " s VARCHAR(20),"
                " tx TEXT, b BLOB, vb VARBINARY(8), dt DATE, ts DATETIME(6), tm TIME(6), y YEAR,"
                " j JSON, e ENUM('a','b'), bit1 BIT(8))"
            )
            == "CREATE TABLE"
        )
        row = (
            -128,
            -32768,
            -(2**63),
            2**64 - 1,
            1.1,
            2.5e300,
            decimal.Decimal("12345678901234567890.0123456789"),
            "héllo \u2603",
            "x" * 1000,
            b"\x00\xff\x10",
            b"ab",
            datetime.date(2024, 2, 29),
            datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
            datetime.timedelta(days=-1, hours=2, microseconds=5),
            2024,
            '{"a": [1, 2]}',
            "b",
        )
        status = await pool.execute(
            f"INSERT INTO {t} (ti, si, bi, ub, f, d, n, s, tx, b, vb, dt, ts, tm, y, j, e, bit1)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, b'00000101')",
            *row,
        )
        assert status == "INSERT 0 1"
        # Binary protocol (arguments) and text protocol (none) decode alike.
        by_arg = await pool.fetchrow(f"SELECT * FROM {t} WHERE id = ?", 1)
        by_text = await pool.fetchrow(f"SELECT * FROM {t} WHERE id = 1")
        assert tuple(by_arg) == tuple(by_text)
        assert tuple(by_arg)[1:-1] == row
        assert by_arg["bit1"] == b"\x05"
        assert await pool.fetchval("SELECT NULL") is None
        assert await pool.fetchval("SELECT CAST('0000-00-00' AS DATE)") in (None, "0000-00-00")
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {t}")
        await pool.close()


@settings(max_examples=40, deadline=None)
@given(
    i=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    f=st.floats(allow_nan=False, allow_infinity=False),
    s=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=50),
    b=st.binary(max_size=50),
    d=st.dates(min_value=datetime.date(1000, 1, 1)),
)
def test_round_trips(
    mysql_server: Any, i: int, f: float, s: str, b: bytes, d: datetime.date
) -> None:
    async def go() -> tuple[Any, ...]:
        conn = await fastio.connect(mysql_server.dsn)
        try:
            row = await conn.fetchrow(
                "SELECT CAST(? AS SIGNED), CAST(? AS DOUBLE),"
                " CAST(? AS CHAR CHARACTER SET utf8mb4),"
                " CAST(? AS BINARY), CAST(? AS DATE)",
                i,
                f,
                s,
                b,
                d,
            )
            return tuple(row)
        finally:
            await conn.close()

    got = asyncio.run(go())
    assert got == (i, f, s, b, d)


async def test_executemany_batches_inserts_into_multi_row_statements(mysql_server: Any) -> None:
    pool = await pool_for(mysql_server)
    t = table()
    try:
        await pool.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(20))")
        before = await pool.fetchval("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'", column=1)
        await pool.executemany(
            f"INSERT INTO {t} (id, name) VALUES (?, ?)", [(i, f"n{i}") for i in range(40_000)]
        )
        after = await pool.fetchval("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'", column=1)
        assert await pool.fetchval(f"SELECT count(*) FROM {t}") == 40_000
        # 80,000 placeholders: two statements of at most 65,535, not 40,000.
        assert int(after) - int(before) <= 4
        # Anything else runs per argument set.
        await pool.executemany(f"UPDATE {t} SET name = ? WHERE id = ?", [("a", 1), ("b", 2)])
        assert await pool.fetch(f"SELECT name FROM {t} WHERE id IN (1, 2) ORDER BY id") == [
            ("a",),
            ("b",),
        ]
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {t}")
        await pool.close()


async def test_statuses_and_exec_result(mysql_server: Any) -> None:
    pool = await pool_for(mysql_server)
    t = table()
    try:
        await pool.execute(
            f"CREATE TABLE {t} (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20))"
        )
        assert await pool.execute(f"INSERT INTO {t} (name) VALUES ('a'), ('b')") == "INSERT 0 2"
        assert await pool.execute(f"UPDATE {t} SET name = ?", "z") == "UPDATE 2"
        assert await pool.execute(f"SELECT * FROM {t}") == "SELECT 2"
        async with pool.acquire() as conn:
            desc, rows, count, last = await conn._exec(f"INSERT INTO {t} (name) VALUES (?)", ("c",))
            assert (desc, rows, count, last) == (None, [], 1, 3)
            desc, rows, count, last = await conn._exec(
                f"SELECT id, name FROM {t} WHERE id > ?", (1,)
            )
            assert rows == [(2, "z"), (3, "c")] and count == 2
            assert [d[:2] for d in desc] == [("id", 3), ("name", 253)]
            assert desc[0][6] is False and desc[1][6] is True
            assert conn.get_server_pid() > 0 and "MariaDB" in conn._server_info()
        assert await pool.execute(f"DELETE FROM {t}") == "DELETE 3"
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {t}")
        await pool.close()


async def test_errors_are_pymysql_classes_with_errno(mysql_server: Any) -> None:
    pool = await pool_for(mysql_server)
    t = table()
    try:
        await pool.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY)")
        await pool.execute(f"INSERT INTO {t} VALUES (1)")
        with pytest.raises(dbapi.IntegrityError) as e:
            await pool.execute(f"INSERT INTO {t} VALUES (?)", 1)
        assert e.value.args[0] == 1062 and "Duplicate entry" in e.value.args[1]
        with pytest.raises(dbapi.ProgrammingError) as e:
            await pool.fetch("SELEC 1")
        assert e.value.args[0] == 1064
        with pytest.raises(dbapi.ProgrammingError) as e:
            await pool.fetch("SELECT * FROM no_such_table_here")
        assert e.value.args[0] == 1146
        with pytest.raises(dbapi.ProgrammingError, match="cannot be bound"):
            await pool.fetch("SELECT ?", {1, 2})
        # The pool is still healthy.
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {t}")
        await pool.close()
    user = mysql_server.dsn.split("//")[1].split(":")[0]
    bad = mysql_server.dsn.replace(f"//{user}:", f"//{user}:wrong", 1)
    if "@" in bad and ":wrong" in bad:
        with pytest.raises(dbapi.OperationalError) as e:
            await fastio.connect(bad)
        assert e.value.args[0] == 1045
        assert "wrong" not in str(e.value)


async def test_transactions_and_dirty_release(mysql_server: Any) -> None:
    pool = await pool_for(mysql_server, max_size=1)
    t = table()
    try:
        await pool.execute(f"CREATE TABLE {t} (x INT) ENGINE=InnoDB")
        async with pool.acquire() as conn:
            async with conn.transaction(isolation="serializable"):
                await conn.execute(f"INSERT INTO {t} VALUES (1)")
                assert conn.is_in_transaction()
                with pytest.raises(RuntimeError):
                    async with conn.transaction():
                        await conn.execute(f"INSERT INTO {t} VALUES (2)")
                        raise RuntimeError("savepoint rolled back")
            assert not conn.is_in_transaction()
        assert await pool.fetch(f"SELECT x FROM {t}") == [(1,)]
        conn = await pool.acquire()
        await conn.execute("START TRANSACTION")
        await conn.execute(f"INSERT INTO {t} VALUES (3)")
        pid = conn.get_server_pid()
        await pool.release(conn)
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid  # the same session, rolled back
            assert not conn.is_in_transaction()
            assert await conn.fetchval(f"SELECT count(*) FROM {t}") == 1
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {t}")
        await pool.close()


async def test_idle_connections_are_lent_and_given_back_without_waiting(
    mysql_server: Any,
) -> None:
    """As in asyncpg's and aiomysql's pools: an idle connection is handed out
    at once, and an idle session outside a transaction is back in the pool
    when release() returns, before anything is awaited."""
    pool = await pool_for(mysql_server, min_size=2, max_size=2)
    try:
        for _ in range(100):
            if pool.get_idle_size() == 2:
                break
            await asyncio.sleep(0.02)
        first = pool.acquire().__await__()
        assert first.done()
        a = await first
        assert pool.get_idle_size() == 1
        b = await pool.acquire()
        # Both out: the next acquire waits for a release.
        third = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.05)
        assert not third.done()
        assert await a.fetchval("SELECT 1") == 1
        back = pool.release(a)
        assert back.done()
        await back
        c = await asyncio.wait_for(third, 5)
        assert await c.fetchval("SELECT 2") == 2
        # Inside a transaction the release has a ROLLBACK to send first.
        await c.execute("START TRANSACTION")
        await pool.release(c)
        await pool.release(b)
        assert pool.get_idle_size() == 2
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
        assert pool.get_idle_size() == 2
        stats = pool.get_stats()
        assert stats["acquired"] >= 4 and stats["in_use"] == 0
    finally:
        await pool.close()


async def test_repeated_statements_skip_unchanged_column_definitions(
    mysql_server: Any,
) -> None:
    """MariaDB leaves out a prepared statement's column definitions when
    they have not changed (MARIADB_CLIENT_CACHE_METADATA); when the table
    changes, the new ones are sent and used."""
    conn = await fastio.connect(mysql_server.dsn)
    t = table()
    try:
        await conn.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(20), age INT)")
        await conn.execute(f"INSERT INTO {t} VALUES (1, 'ann', 30)")
        one = f"SELECT id, name, age FROM {t} WHERE id = ?"
        every = f"SELECT * FROM {t} WHERE id = ?"
        for _ in range(3):
            assert tuple(await conn.fetchrow(one, 1)) == (1, "ann", 30)

        async def sent() -> int:
            return int((await conn.fetchrow("SHOW SESSION STATUS LIKE 'Bytes_sent'"))[1])

        before = await sent()
        for _ in range(50):
            await conn.fetchrow(one, 1)
        per_query = (await sent() - before) / 50
        # The row and the OK (~40 bytes); with the three column definitions
        # (~60 bytes each) every time it was ~200.
        assert per_query < 100, per_query

        assert list((await conn.fetchrow(every, 1)).keys()) == ["id", "name", "age"]
        await conn.execute(f"ALTER TABLE {t} ADD COLUMN city VARCHAR(10) DEFAULT 'rome'")
        row = await conn.fetchrow(every, 1)
        assert list(row.keys()) == ["id", "name", "age", "city"]
        assert tuple(row) == (1, "ann", 30, "rome")
        await conn.execute(f"ALTER TABLE {t} MODIFY COLUMN age VARCHAR(10)")
        assert tuple(await conn.fetchrow(one, 1)) == (1, "ann", "30")
        assert tuple(await conn.fetchrow(one, 1)) == (1, "ann", "30")
        rows = await conn.fetch(f"SELECT name, age FROM {t} WHERE id > ?", 0)
        assert [tuple(r) for r in rows] == [("ann", "30")]
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {t}")
        await conn.close()


async def test_timeout_kills_the_query_and_the_pool_stays_in_sync(mysql_server: Any) -> None:
    pool = await pool_for(mysql_server, max_size=4)
    try:
        start = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.fetchval("SELECT SLEEP(10)"), 0.2)
        assert asyncio.get_running_loop().time() - start < 2
        with pytest.raises(fastio.TimeoutError):
            await pool.fetchval("SELECT SLEEP(10)", timeout=0.2)

        async def sleeping() -> int:
            return await pool.fetchval(
                "SELECT count(*) FROM information_schema.processlist"
                " WHERE info LIKE 'SELECT SLEEP(10)%'"
            )

        for _ in range(50):
            if await sleeping() == 0:
                break
            await asyncio.sleep(0.1)
        assert await sleeping() == 0

        # Many random cancels under load; afterwards every answer is right.
        async def one(i: int) -> None:
            try:
                await asyncio.wait_for(
                    pool.fetchval("SELECT ? + SLEEP(?)", i, random.choice([0, 0.01, 0.05])),
                    random.uniform(0.001, 0.04),
                )
            except TimeoutError:
                pass

        await asyncio.gather(*(one(i) for i in range(300)))
        for i in range(40):
            assert await pool.fetchval("SELECT ?", i) == i
        # Cut-off sessions are killed and closed on tokio; then nothing is held.
        for _ in range(200):
            if pool.get_stats()["in_use"] == 0:
                break
            await asyncio.sleep(0.05)
        assert pool.get_stats()["in_use"] == 0
    finally:
        await pool.close()


async def test_connection_replies_are_read_on_the_event_loop_thread(mysql_server: Any) -> None:
    # As for PostgreSQL (test_pg.py): a query on one Connection is written
    # and its reply read by the loop's thread; a long result, a timeout and
    # a cancellation leave no socket watched and the connection in sync.
    from fastio import _fastio

    conn = await fastio.connect(mysql_server.dsn)
    watched = _fastio._loop_reads()[2]
    try:
        assert await conn.fetchval("SELECT 1") == 1
        done, moves, _ = _fastio._loop_reads()
        for i in range(50):
            assert await conn.fetchrow("SELECT ? AS i, REPEAT('x', ?) AS s", i, i) == (i, "x" * i)
        assert _fastio._loop_reads()[0] - done == 50
        assert _fastio._loop_reads()[2] == watched
        rows = await conn.fetch("SELECT seq, REPEAT('y', 100) AS s FROM seq_1_to_50000")
        assert [r[0] for r in rows] == list(range(1, 50001))
        assert _fastio._loop_reads()[1] > moves
        # A query stopped midway costs a MySQL connection (KILL CONNECTION,
        # as aiomysql closes it): later queries fail cleanly, never hang.
        with pytest.raises(fastio.TimeoutError):
            await conn.fetchval("SELECT SLEEP(10)", timeout=0.2)
        assert _fastio._loop_reads()[2] == watched
        with pytest.raises(fastio.InterfaceError):
            await conn.fetchval("SELECT 'after timeout'")
        await conn.close()
        conn = await fastio.connect(mysql_server.dsn)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.fetchval("SELECT SLEEP(10)"), 0.2)
        assert _fastio._loop_reads()[2] == watched
        with pytest.raises(fastio.InterfaceError):
            await conn.fetchval("SELECT 'after cancel'")
    finally:
        await conn.close()


async def test_acquire_timeout_and_sizes(mysql_server: Any) -> None:
    pool = await pool_for(mysql_server, min_size=1, max_size=2)
    try:
        a = await pool.acquire()
        b = await pool.acquire()
        with pytest.raises(TimeoutError):
            await pool.acquire(timeout=0.2)
        assert pool.get_stats()["timeouts"] == 1
        await pool.release(a)
        await pool.release(b)
        assert pool.get_size() == 2 and pool.get_idle_size() == 2
        other = await pool_for(mysql_server)
        async with other.acquire() as c:
            with pytest.raises(fastio.InterfaceError, match="does not belong"):
                await pool.release(c)
        await other.close()
    finally:
        await pool.close()


async def test_pool_keeps_min_size_through_load_and_a_killed_session(
    mysql_server: Any,
) -> None:
    pool = await pool_for(mysql_server, min_size=3, max_size=3)
    try:
        # Many concurrent queries: every connection goes back, none is lost
        # or duplicated, and the pool stays at min_size.
        got = await asyncio.gather(*(pool.fetchval("SELECT ?", i) for i in range(600)))
        assert got == list(range(600))
        assert (pool.get_size(), pool.get_idle_size()) == (3, 3)
        assert pool.get_stats()["in_use"] == 0
        # A session killed on the server is dropped, and the pool opens a
        # replacement on its own to get back to min_size.
        victim = await pool.fetchval("SELECT CONNECTION_ID()")
        killer = await fastio.connect(mysql_server.dsn)
        await killer.execute(f"KILL {int(victim)}")
        await killer.close()
        for _ in range(6):
            try:
                await pool.fetchval("SELECT 1")
            except (fastio.ConnectionError, fastio.InterfaceError, dbapi.OperationalError):
                pass
        for _ in range(200):
            if pool.get_size() == 3 and pool.get_idle_size() == 3:
                break
            await asyncio.sleep(0.05)
        assert (pool.get_size(), pool.get_idle_size()) == (3, 3)
        ids = {await pool.fetchval("SELECT CONNECTION_ID()") for _ in range(30)}
        assert victim not in ids
    finally:
        await pool.close()


async def test_init_sql_runs_on_every_connection(mysql_server: Any) -> None:
    pool = await pool_for(mysql_server, min_size=2, max_size=2, init_sql=["SET @fastio_init = 42"])
    try:
        async with pool.acquire() as a, pool.acquire() as b:
            assert await a.fetchval("SELECT @fastio_init") == 42
            assert await b.fetchval("SELECT @fastio_init") == 42
    finally:
        await pool.close()


async def test_pool_recovers_after_a_server_restart(mysql_server: Any) -> None:
    if not getattr(mysql_server, "can_restart", True):
        pytest.skip("FASTIO_MYSQL_DSN points at a server this suite cannot restart")
    pool = await pool_for(mysql_server, min_size=2, max_size=2)
    try:
        assert await pool.fetchval("SELECT 1") == 1
        await asyncio.to_thread(mysql_server.restart)
        # The old sessions are dead: queries fail cleanly, then the pool reconnects.
        results = []
        for _ in range(6):
            try:
                results.append(await pool.fetchval("SELECT 2"))
            except (fastio.ConnectionError, fastio.InterfaceError, dbapi.OperationalError):
                results.append("failed")
        # Without retry= the dead sessions surface once each, then it recovers.
        assert results[0] == "failed" and results[-1] == 2
    finally:
        await pool.close()


async def test_retry_hides_a_server_restart(mysql_server: Any) -> None:
    if not getattr(mysql_server, "can_restart", True):
        pytest.skip("FASTIO_MYSQL_DSN points at a server this suite cannot restart")
    retry = fastio.Retry(attempts=8, backoff=0.1, max_backoff=1.0)
    pool = await pool_for(mysql_server, min_size=2, max_size=2, retry=retry)
    t = table()
    try:
        await pool.execute(f"CREATE TABLE {t} (x INT)")
        await asyncio.to_thread(mysql_server.restart)
        # Every statement succeeds: dead sessions are replaced and retried.
        for i in range(5):
            assert await pool.fetchval("SELECT ?", i) == i
        await pool.executemany(f"INSERT INTO {t} VALUES (?)", [(1,), (2,)])
        assert await pool.fetchval(f"SELECT count(*) FROM {t}") == 2
        # Errors that are not about the connection are not retried.
        calls = pool.get_stats()["acquired"]
        with pytest.raises(dbapi.ProgrammingError):
            await pool.fetch("SELEC 1")
        assert pool.get_stats()["acquired"] == calls + 1
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {t}")
        await pool.close()


async def test_native_mysql_takes_pyformat_placeholders_too(mysql_server: Any) -> None:
    pool = await pool_for(mysql_server)
    t = table()
    try:
        await pool.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(20))")
        await pool.execute(f"INSERT INTO {t} VALUES (%s, %s), (%s, %s)", 1, "a%", 2, "b")
        assert await pool.fetchval(f"SELECT name FROM {t} WHERE id = %(id)s", {"id": 1}) == "a%"
        # %% is a literal %; a list expands to an IN list of bound values.
        rows = await pool.fetch(
            f"SELECT id FROM {t} WHERE name LIKE 'a%%' OR id IN %s ORDER BY id", [2, 3]
        )
        assert [r["id"] for r in rows] == [1, 2]
        # Values are bound, never spliced.
        evil = "x'); DROP TABLE " + t + "; --"
        assert await pool.fetchval(f"SELECT count(*) FROM {t} WHERE name = %s", evil) == 0
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT %s + %s", 2, 3) == 5
        # `?` queries are untouched.
        assert await pool.fetchval(f"SELECT name FROM {t} WHERE id = ?", 2) == "b"
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {t}")
        await pool.close()
