"""MySQL result sets as fastio reads them: a whole result set's row packets
into one buffer, decoded on the loop thread. Every type (NULLs included) in
the text protocol (no arguments) and the binary one (prepared statements),
compared with aiomysql's answers; results spanning many packets; rows over
the 16 MB packet limit; cancellation in the middle of a result."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import random
import uuid
from typing import Any

import aiomysql
import pytest

import fastio
import fastio.mysql

BIG = 60_000  # rows: many socket reads and read-buffer refills


def table() -> str:
    return f"rows_{uuid.uuid4().hex[:10]}"


def conn_kwargs(server: Any) -> dict[str, Any]:
    return dict(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        db=server.database,
    )


async def aiomysql_rows(server: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    conn = await aiomysql.connect(**conn_kwargs(server))
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql, args)
            return list(await cur.fetchall())
    finally:
        conn.close()


ALL_TYPES = (
    "id INT PRIMARY KEY, ti TINYINT, ut TINYINT UNSIGNED, si SMALLINT, us SMALLINT UNSIGNED,"
    " mi MEDIUMINT, um MEDIUMINT UNSIGNED, i INT, ui INT UNSIGNED, bi BIGINT,"
    " ub BIGINT UNSIGNED, f FLOAT, d DOUBLE, n DECIMAL(30,10), n0 DECIMAL(5,0),"
    " s VARCHAR(20), c CHAR(3), tx TEXT, lt LONGTEXT, b BLOB, vb VARBINARY(8), bn BINARY(3),"
    " dt DATE, ts DATETIME(6), ts0 DATETIME, tsp TIMESTAMP(3) NULL, tm TIME(6), tm0 TIME,"
    " y YEAR, j JSON, e ENUM('a','b'), st SET('x','y'), bit1 BIT(8), bit12 BIT(12)"
)
FULL = (
    -128,
    255,
    -32768,
    65535,
    -8388608,
    16777215,
    -(2**31),
    2**32 - 1,
    -(2**63),
    2**64 - 1,
    1.5,
    -2.5e-300,
    decimal.Decimal("-12345678901234567890.0123456789"),
    decimal.Decimal("99999"),
    "héllo \u2603 \U0001f600",
    "ab",
    "x" * 1000,
    "y" * 70_000,
    bytes(range(256)),
    b"\x00\xff",
    b"a\x00\x00",
    datetime.date(2024, 2, 29),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
    datetime.datetime(1999, 12, 31, 23, 59, 59),
    datetime.datetime(2030, 6, 7, 8, 9, 10, 500000),
    datetime.timedelta(days=-1, hours=2, microseconds=5),
    datetime.timedelta(hours=838, minutes=59, seconds=59),
    2024,
    '{"a": [1, 2], "b": null}',
    "b",
    "x,y",
    b"\x05",
    b"\x0f\xff",
)
# A row of the other extremes, and a row of NULLs.
OTHER = (
    127,
    0,
    32767,
    0,
    8388607,
    0,
    2**31 - 1,
    0,
    2**63 - 1,
    0,
    -0.25,
    0.0,
    decimal.Decimal("0E-10"),
    decimal.Decimal("-1"),
    "",
    "",
    "",
    "",
    b"",
    b"",
    b"\x00\x00\x00",
    datetime.date(1000, 1, 1),
    datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime.datetime(2000, 1, 1),
    datetime.datetime(1970, 1, 2, 0, 0, 0, 1000),
    datetime.timedelta(hours=-838, minutes=-59, seconds=-59),
    datetime.timedelta(0),
    1901,
    "[]",
    "a",
    "",
    b"\x00",
    b"\x00\x00",
)


async def test_every_type_and_null_decodes_as_aiomysql_in_both_protocols(
    mysql_server: Any,
) -> None:
    pool = await fastio.create_pool(mysql_server.dsn, min_size=1, max_size=2)
    t = table()
    width = len(FULL)
    try:
        await pool.execute(f"CREATE TABLE {t} ({ALL_TYPES})")
        marks = ", ".join("?" * (width + 1))
        await pool.execute(f"INSERT INTO {t} VALUES ({marks})", 1, *FULL)
        await pool.execute(f"INSERT INTO {t} VALUES ({marks})", 2, *OTHER)
        await pool.execute(f"INSERT INTO {t} (id) VALUES (3)")
        expected = [(1, *FULL), (2, *OTHER), (3, *[None] * width)]

        text = await pool.fetch(f"SELECT * FROM {t} ORDER BY id")
        binary = await pool.fetch(f"SELECT * FROM {t} WHERE id > ? ORDER BY id", 0)
        peer = await aiomysql_rows(mysql_server, f"SELECT * FROM {t} ORDER BY id")
        assert [tuple(r) for r in text] == expected
        assert [tuple(r) for r in binary] == expected
        assert peer == expected
        # Each type comes back as its Python type, not merely an equal value.
        for got, want in zip(text[0], expected[0]):
            assert type(got) is type(want)
        for got, want in zip(binary[1], expected[1]):
            assert type(got) is type(want)
        assert text[0]["lt"] == "y" * 70_000 and binary[0]["j"] == FULL[28]

        # One value of a row (fetchval), any column, either protocol.
        for col in (0, 5, 14, 18, 22, 25, width):
            by_text = await pool.fetchval(f"SELECT * FROM {t} WHERE id = 1", column=col)
            by_arg = await pool.fetchval(f"SELECT * FROM {t} WHERE id = ?", 3, column=col)
            assert by_text == expected[0][col] and by_arg == expected[2][col]

        # The DB-API cursors (fastio.mysql) give the same tuples.
        conn = await fastio.mysql.connect(**conn_kwargs(mysql_server))
        try:
            async with conn.cursor() as cur:
                await cur.execute(f"SELECT * FROM {t} ORDER BY id")
                assert list(await cur.fetchall()) == expected
                await cur.execute(f"SELECT * FROM {t} WHERE id >= %s ORDER BY id", (1,))
                assert list(await cur.fetchall()) == expected
                assert [d[0] for d in cur.description][:3] == ["id", "ti", "ut"]
                # A result set without rows still has its description.
                await cur.execute(f"SELECT id, s FROM {t} WHERE id < 0")
                assert [d[0] for d in cur.description] == ["id", "s"]
                assert list(await cur.fetchall()) == []
        finally:
            conn.close()
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {t}")
        await pool.close()


async def prepares(conn: Any) -> int:
    row = await conn.fetchrow("SHOW SESSION STATUS LIKE 'Com_stmt_prepare'")
    return int(row[1])


async def test_a_repeated_select_without_arguments_runs_prepared_and_reads_the_same(
    mysql_server: Any,
) -> None:
    t, z = table(), table()
    conn = await fastio.connect(mysql_server.dsn)
    try:
        await conn.execute(f"CREATE TABLE {t} ({ALL_TYPES})")
        marks = ", ".join("?" * (len(FULL) + 1))
        await conn.execute(f"INSERT INTO {t} VALUES ({marks})", 1, *FULL)
        await conn.execute(f"INSERT INTO {t} VALUES ({marks})", 2, *OTHER)
        await conn.execute(f"INSERT INTO {t} (id) VALUES (3)")
        # FLOAT as the text protocol prints it (6 significant digits of the
        # exact value; D decimals for FLOAT(M,D)), zero dates with their
        # fractional digits, and a date with a zero month.
        await conn.execute("SET SESSION sql_mode = ''")
        await conn.execute(
            f"CREATE TABLE {z} (id INT PRIMARY KEY, f FLOAT, fd FLOAT(10,4),"
            " dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL, dt0 DATETIME, d DATE)"
        )
        rnd = random.Random(5)
        floats = [rnd.random() * 10 ** rnd.randint(-30, 30) for _ in range(500)]
        await conn.executemany(
            f"INSERT INTO {z} VALUES (?, ?, ?, '0000-00-00', '0000-00-00', '2020-00-15 01:02:03',"
            " '2021-04-00')",
            [(i, v, rnd.random() * 10**5) for i, v in enumerate(floats)],
        )
        for sql in (f"SELECT * FROM {t} ORDER BY id", f"SELECT * FROM {z} ORDER BY id"):
            before = await prepares(conn)
            first = [tuple(r) for r in await conn.fetch(sql)]  # text protocol
            assert await prepares(conn) == before
            again = [tuple(r) for r in await conn.fetch(sql)]  # prepared
            third = [tuple(r) for r in await conn.fetch(sql)]  # cached
            assert await prepares(conn) == before + 1  # once, then cached
            assert again == first and third == first
            assert first == await aiomysql_rows(mysql_server, sql)
        zrow = (await conn.fetch(f"SELECT * FROM {z} ORDER BY id"))[0]
        assert zrow["dt6"] == "0000-00-00 00:00:00.000000"
        assert zrow["ts3"] == "0000-00-00 00:00:00.000"
        assert zrow["dt0"] == "2020-00-15 01:02:03" and zrow["d"] == "2021-04-00"
        # Several statements in one string, and statements that are not a
        # lone SELECT, stay on the text protocol however often they run.
        before = await prepares(conn)
        for _ in range(3):
            assert await conn.fetchval("SELECT 1; SELECT 2") in (1, 2)
            await conn.execute(f"UPDATE {t} SET ti = ti WHERE id = 1")
        assert await prepares(conn) == before
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {t}, {z}")
        await conn.close()


async def test_large_results_span_many_packets_in_both_protocols(mysql_server: Any) -> None:
    pool = await fastio.create_pool(mysql_server.dsn, min_size=1, max_size=2)
    try:
        # Rows of uneven widths (lengths 1..300) with NULLs every 7th row.
        q = (
            "SELECT seq,"
            " IF(seq % 7 = 0, NULL, REPEAT(CHAR(97 + seq % 26 USING utf8mb4), 1 + seq % 300)),"
            " seq * 0.5, CAST('2024-01-01' AS DATETIME) + INTERVAL seq MINUTE"
            f" FROM seq_1_to_{BIG}"
        )

        def want(i: int) -> tuple[Any, ...]:
            s = None if i % 7 == 0 else chr(97 + i % 26) * (1 + i % 300)
            return (
                i,
                s,
                decimal.Decimal(i) * decimal.Decimal("0.5"),
                datetime.datetime(2024, 1, 1) + datetime.timedelta(minutes=i),
            )

        expected = [want(i) for i in range(1, BIG + 1)]
        text = await pool.fetch(q)
        assert [tuple(r) for r in text] == expected
        assert await aiomysql_rows(mysql_server, q) == expected
        binary = await pool.fetch(q + " WHERE seq >= ?", 1)
        assert [tuple(r) for r in binary] == expected
        # The DB-API cursors: tuples, description and rowcount alike.
        conn = await fastio.mysql.connect(**conn_kwargs(mysql_server))
        try:
            async with conn.cursor() as cur:
                assert await cur.execute(q) == BIG
                assert [d[0] for d in cur.description][0] == "seq"
                assert list(await cur.fetchall()) == expected
                with_args = q.replace("% ", "%% ") + " WHERE seq > %s"
                await cur.execute(with_args, (BIG - 4096,))
                assert cur.rowcount == 4096
                assert list(await cur.fetchall()) == expected[-4096:]
        finally:
            conn.close()
        # The same connection goes on to the next statement in step.
        assert await pool.fetchval("SELECT ?", 42) == 42
        # Several result sets in one string: the first one's rows.
        rows = await pool.fetch("SELECT 1 UNION SELECT 2; SELECT 3; SELECT 4")
        assert [tuple(r) for r in rows] == [(1,), (2,)]
        assert await pool.fetchval("SELECT 5") == 5
    finally:
        await pool.close()


@pytest.mark.parametrize(
    "size",
    [
        0xFF_FF_FF - 4,  # text row payload exactly 16 MB - 1: an empty packet follows
        0xFF_FF_FF - 3,
        2**24,  # length 2^24: the row starts with 0xFE (an 8-byte length)
        17_000_000,
    ],
)
async def test_rows_over_the_16_mb_packet_limit(mysql_server: Any, size: int) -> None:
    conn = await fastio.connect(mysql_server.dsn)
    try:
        # Small rows around the big one: the rows after it are read in step.
        q = f"SELECT 1, 'a' UNION ALL SELECT 2, REPEAT('x', {size}) UNION ALL SELECT 3, 'c'"
        rows = await conn.fetch(q)
        assert [r[0] for r in rows] == [1, 2, 3]
        assert rows[0][1] == "a" and rows[2][1] == "c"
        big = rows[1][1]
        assert len(big) == size and big == "x" * size
        rows = await conn.fetch("SELECT ?, REPEAT('y', ?), ?", 7, size, "z")
        assert len(rows) == 1
        assert rows[0][0] == 7 and rows[0][2] == "z"
        assert len(rows[0][1]) == size and rows[0][1] == "y" * size
        assert await conn.fetchval("SELECT 8") == 8
    finally:
        await conn.close()


async def test_cancelled_in_the_middle_of_a_result_the_pool_stays_in_step(
    mysql_server: Any,
) -> None:
    pool = await fastio.create_pool(mysql_server.dsn, min_size=1, max_size=2)
    rng = random.Random(5)
    try:
        big = "SELECT seq, REPEAT('x', 200) FROM seq_1_to_3000000"
        for i in range(12):
            args: tuple[Any, ...] = (0,) if i % 2 else ()
            sql = big + (" WHERE seq > ?" if args else "")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pool.fetch(sql, *args), rng.uniform(0.02, 0.15))
            # The next answers on the pool's connections are this query's own.
            for k in range(3):
                assert await pool.fetchval("SELECT ?", i * 10 + k) == i * 10 + k
            rows = await pool.fetch("SELECT seq FROM seq_1_to_1000 WHERE seq > ?", 990)
            assert [r[0] for r in rows] == list(range(991, 1001))

        # The server stops the cut-off queries (KILL CONNECTION), and nothing stays lent.
        async def running() -> int:
            return await pool.fetchval(
                "SELECT count(*) FROM information_schema.processlist"
                " WHERE info LIKE 'SELECT seq, REPEAT%'"
            )

        for _ in range(100):
            if await running() == 0 and pool.get_stats()["in_use"] == 0:
                break
            await asyncio.sleep(0.05)
        assert await running() == 0
        assert pool.get_stats()["in_use"] == 0
    finally:
        await pool.close()


async def test_an_error_after_some_rows_raises_and_the_pool_goes_on(mysql_server: Any) -> None:
    pool = await fastio.create_pool(mysql_server.dsn, min_size=1, max_size=1)
    try:
        # Row 30,000 fails ("Subquery returns more than 1 row", errno 1242)
        # after many rows were sent (and decoded ahead).
        q = "SELECT seq, IF(seq < {n}, seq, (SELECT 1 UNION SELECT 2)) FROM seq_1_to_40000"
        for sql, args in ((q.format(n=30_000), ()), (q.format(n="?"), (30_000,))):
            with pytest.raises(fastio.mysql.Error) as info:
                await pool.fetch(sql, *args)
            assert info.value.args[0] == 1242
            assert await pool.fetchval("SELECT ?", 9) == 9
            rows = await pool.fetch(q.format(n=50_000))
            assert [tuple(r) for r in rows] == [(i, i) for i in range(1, 40_001)]
    finally:
        await pool.close()
