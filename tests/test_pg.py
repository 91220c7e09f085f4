"""PostgreSQL through fastio's native API: pools, connections, records, types,
errors, transactions and cancellation, against a real server (and side by side
with asyncpg where behaviour must match)."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import itertools
import random
import uuid
from typing import Any

import asyncpg
import pytest

import fastio
from fastio import pg_exceptions as exc

_names = itertools.count()


def table() -> str:
    """A table name no other test uses."""
    return f"t_{next(_names)}_{uuid.uuid4().hex[:8]}"


async def pool_for(pg_server: Any, **kw: Any) -> fastio.Pool:
    kw.setdefault("min_size", 1)
    kw.setdefault("max_size", 4)
    return await fastio.create_pool(pg_server.dsn, **kw)


async def run(awaitable: Any) -> Any:
    return await awaitable


async def wait_until(cond: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------ basics


async def test_fetch_fetchrow_fetchval_on_pool_and_connection(pg_server: Any) -> None:
    pool = await pool_for(pg_server)
    conn = await fastio.connect(pg_server.dsn)
    try:
        for target in (pool, conn):
            rows = await target.fetch("SELECT g AS n, g * 2 AS d FROM generate_series(1, 3) g")
            assert [tuple(r) for r in rows] == [(1, 2), (2, 4), (3, 6)]
            row = await target.fetchrow("SELECT 1 AS a, 'x' AS b")
            assert row is not None and row["b"] == "x"
            assert await target.fetchrow("SELECT 1 WHERE false") is None
            assert await target.fetch("SELECT 1 WHERE false") == []
            assert await target.fetchval("SELECT 1, 2, 3", column=2) == 3
            assert await target.fetchval("SELECT 1 WHERE false") is None
            with pytest.raises(IndexError):
                await target.fetchval("SELECT 1", column=5)
    finally:
        await conn.close()
        await pool.close()


async def test_execute_returns_asyncpg_status_strings(pg_server: Any) -> None:
    t = table()
    statements = [
        (f"CREATE TABLE {t} (id int PRIMARY KEY, v text)", ()),
        (f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b')", ()),
        (f"INSERT INTO {t} VALUES ($1, $2)", (3, "c")),
        (f"UPDATE {t} SET v = 'z' WHERE id > $1", (1,)),
        (f"DELETE FROM {t} WHERE id = $1", (3,)),
        (f"SELECT * FROM {t}", ()),
        ("SELECT 1; SELECT 2 UNION SELECT 3", ()),
        (f"DROP TABLE {t}", ()),
    ]
    pool = await pool_for(pg_server)
    ours = [await pool.execute(q, *a) for q, a in statements]
    await pool.close()
    peer = await asyncpg.connect(pg_server.dsn)
    theirs = [await peer.execute(q.replace(t, t + "_p"), *a) for q, a in statements]
    await peer.close()
    assert ours == theirs
    assert ours[1:5] == ["INSERT 0 2", "INSERT 0 1", "UPDATE 2", "DELETE 1"]


async def test_executemany_inserts_every_row_and_is_atomic(pg_server: Any) -> None:
    t = table()
    pool = await pool_for(pg_server)
    try:
        await pool.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
        await pool.executemany(
            f"INSERT INTO {t} VALUES ($1, $2)", [(i, str(i)) for i in range(500)]
        )
        assert await pool.fetchval(f"SELECT count(*) FROM {t}") == 500
        # A duplicate in the middle: nothing of the batch is applied.
        with pytest.raises(exc.UniqueViolationError):
            await pool.executemany(f"INSERT INTO {t} VALUES ($1, $2)", [(1000, "a"), (5, "dup")])
        assert await pool.fetchval(f"SELECT count(*) FROM {t} WHERE id = 1000") == 0
        # The connection that saw the error is clean for the next query.
        async with pool.acquire() as conn:
            await conn.executemany(f"INSERT INTO {t} VALUES ($1, $2)", [(2000, "x")])
            assert await conn.fetchval(f"SELECT v FROM {t} WHERE id = 2000") == "x"
        await pool.executemany(f"INSERT INTO {t} VALUES ($1, $2)", [])
    finally:
        await pool.close()


async def test_executemany_of_a_plain_insert_runs_multi_row_statements(pg_server: Any) -> None:
    t, log = table(), table()
    conn = await fastio.connect(pg_server.dsn)
    plain = await fastio.connect(pg_server.dsn, statement_cache_size=0)
    peer = await asyncpg.connect(pg_server.dsn)
    try:
        await conn.execute(
            f"CREATE TABLE {log} (n int);"
            f"CREATE TABLE {t} (seq bigserial, id int UNIQUE, name text, score float8);"
            f"CREATE FUNCTION {t}_stmt() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$BEGIN INSERT INTO {log} VALUES (1); RETURN NULL; END$$;"
            f"CREATE TRIGGER {t}_s AFTER INSERT ON {t} FOR EACH STATEMENT"
            f" EXECUTE FUNCTION {t}_stmt()"
        )
        ids = list(range(10_000))
        random.Random(4).shuffle(ids)
        rows = [(i, None if i % 7 == 0 else f"naïve {i}", i / 3) for i in ids]
        insert = f"INSERT INTO {t} (id, name, score) VALUES ($1::int, $2, $3)"
        await conn.executemany(insert, rows)
        # 9 statements of 1,024 rows, then 512, 256 and 16: not 10,000.
        assert await conn.fetchval(f"SELECT count(*) FROM {log}") == 12
        got = await conn.fetch(f"SELECT id, name, score FROM {t} ORDER BY seq")
        assert [tuple(r) for r in got] == rows  # every value, in the batch's order
        # The same rows through asyncpg's executemany give the same table.
        await peer.execute(f"TRUNCATE {t}, {log}")
        await peer.executemany(insert, rows)
        theirs = await peer.fetch(f"SELECT id, name, score FROM {t} ORDER BY seq")
        assert [tuple(r) for r in theirs] == rows
        # ON CONFLICT DO NOTHING with duplicates inside the batch: the first wins.
        await conn.execute(f"TRUNCATE {t}, {log}")
        await conn.executemany(
            f"INSERT INTO {t} (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            [(i % 50, str(i)) for i in range(100)],
        )
        assert await conn.fetchval(f"SELECT count(*) FROM {t}") == 50
        assert await conn.fetchval(f"SELECT name FROM {t} WHERE id = 49") == "49"
        # A duplicate in the last group: nothing of the batch is kept.
        await conn.execute(f"TRUNCATE {t}, {log}")
        with pytest.raises(exc.UniqueViolationError):
            await conn.executemany(insert, rows + [(ids[0], "dup", 0.0)])
        assert await conn.fetchval(f"SELECT count(*) FROM {t}") == 0
        # A value that does not fit, far into the batch: DataError, nothing sent.
        with pytest.raises(exc.DataError, match=r"\$1"):
            await conn.executemany(insert, rows[:5000] + [("x", "y", 1.0)])
        assert await conn.fetchval(f"SELECT count(*) FROM {log}") == 0
        # Without a statement cache (PgBouncer), one statement per row as before.
        await plain.executemany(insert, rows[:100])
        assert await plain.fetchval(f"SELECT count(*) FROM {log}") == 100
        assert await plain.fetchval(f"SELECT count(*) FROM {t}") == 100
        # A statement that is not a plain INSERT is left as it is.
        await conn.execute(f"TRUNCATE {t}, {log}")
        await conn.executemany(
            f"INSERT INTO {t} (id, name) VALUES ($1, 'x' || $2)", [(i, str(i)) for i in range(20)]
        )
        assert await conn.fetchval(f"SELECT count(*) FROM {log}") == 20
        assert await conn.fetchval(f"SELECT name FROM {t} WHERE id = 3") == "x3"
    finally:
        await peer.execute(f"DROP TABLE IF EXISTS {t}; DROP TABLE IF EXISTS {log}")
        await peer.execute(f"DROP FUNCTION IF EXISTS {t}_stmt()")
        await peer.close()
        await plain.close()
        await conn.close()


async def test_pool_sizes_and_stats(pg_server: Any) -> None:
    pool = await fastio.create_pool(pg_server.dsn, min_size=2, max_size=3)
    try:
        assert (pool.get_min_size(), pool.get_max_size()) == (2, 3)
        await wait_until(lambda: asyncio.sleep(0, pool.get_size() == 2))
        conns = [await pool.acquire() for _ in range(3)]
        assert pool.get_size() == 3 and pool.get_idle_size() == 0
        stats = pool.get_stats()
        assert stats["in_use"] == 3 and stats["acquired"] >= 3 and stats["created"] >= 3
        # A fourth acquire waits, then times out.
        with pytest.raises(TimeoutError):
            await pool.acquire(timeout=0.2)
        assert pool.get_stats()["timeouts"] == 1
        for c in conns:
            await pool.release(c)
        assert pool.get_idle_size() == 3
        assert set(pool.get_stats()) == {
            "size", "idle", "in_use", "waiting", "acquired", "timeouts", "created", "closed",
            "errors",
        }  # fmt: skip
    finally:
        await pool.close()


async def test_acquire_is_awaitable_and_a_context_manager(pg_server: Any) -> None:
    pool = await pool_for(pg_server, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid
        assert conn.is_closed()
        with pytest.raises(fastio.InterfaceError, match="released"):
            await conn.fetchval("SELECT 1")
        # An idle connection is handed over at once, as asyncpg's pool does.
        acquiring = pool.acquire().__await__()
        assert acquiring.done()
        conn2 = await acquiring
        assert conn2.get_server_pid() == pid  # the same session went back to the pool
        # With none idle, acquire waits for the release.
        waiting = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await pool.release(conn2)
        conn3 = await asyncio.wait_for(waiting, 5)
        assert conn3.get_server_pid() == pid
        await pool.release(conn3)
    finally:
        await pool.close()
    with pytest.raises(fastio.InterfaceError, match="closed"):
        await pool.fetchval("SELECT 1")


async def test_release_rolls_back_an_open_transaction(pg_server: Any) -> None:
    t = table()
    pool = await pool_for(pg_server, max_size=1)
    try:
        await pool.execute(f"CREATE TABLE {t} (id int)")
        conn = await pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute(f"INSERT INTO {t} VALUES (1)")
        assert conn.is_in_transaction()
        await pool.release(conn)
        assert await pool.fetchval(f"SELECT count(*) FROM {t}") == 0
    finally:
        await pool.close()


# ------------------------------------------------------------------ records


async def test_record_is_a_sequence_and_a_mapping(pg_server: Any) -> None:
    conn = await fastio.connect(pg_server.dsn)
    try:
        r = await conn.fetchrow("SELECT 1 AS id, 'a' AS name, NULL::int AS z")
    finally:
        await conn.close()
    assert r[0] == 1 and r[-1] is None and r["name"] == "a"
    assert r.get("name") == "a" and r.get("missing", 7) == 7 and r.get("missing") is None
    assert list(r.keys()) == ["id", "name", "z"]
    assert list(r.values()) == [1, "a", None]
    assert list(r.items()) == [("id", 1), ("name", "a"), ("z", None)]
    assert len(r) == 3 and list(r) == [1, "a", None]
    assert dict(r) == {"id": 1, "name": "a", "z": None}
    assert tuple(r) == (1, "a", None) and r == (1, "a", None) and r != (1, "a")
    assert r[0:2] == (1, "a")
    assert "name" in r and "nope" not in r
    assert repr(r) == "<Record id=1 name='a' z=None>"
    assert hash(r) == hash((1, "a", None))
    with pytest.raises(KeyError):
        r["nope"]
    with pytest.raises(IndexError):
        r[3]


# -------------------------------------------------------------------- types

TYPE_QUERIES = [
    "SELECT 1::int2, 2::int4, 3::int8, 1.5::float4, 2.25::float8, true, false",
    "SELECT 12345.6780::numeric, (-0.000001)::numeric, 'NaN'::numeric, 1e30::numeric, 0::numeric",
    "SELECT 'text'::text, 'v'::varchar(5), 'c'::char(3), 'nm'::name, 'é'::text",
    "SELECT '\\x00ff10'::bytea, ''::bytea",
    "SELECT '2024-02-29'::date, '12:34:56.789'::time, '2024-02-29 01:02:03.456789'::timestamp",
    "SELECT '2024-02-29 01:02:03+05'::timestamptz, 'infinity'::timestamp, '0001-01-01'::date",
    "SELECT '1 day 02:03:04.5'::interval, '-3 hours'::interval, '2 months 3 days'::interval",
    "SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
    "SELECT ARRAY[1, NULL, 3], ARRAY['a', NULL], ARRAY[[1, 2], [3, 4]], '{}'::int[]",
    "SELECT ARRAY[1.5]::numeric[], ARRAY['2024-01-01'::date], ARRAY[true, false]",
    "SELECT NULL::int, NULL::text, NULL::uuid, NULL::int[]",
]


@pytest.mark.parametrize("query", TYPE_QUERIES)
async def test_decoding_matches_asyncpg(pg_server: Any, query: str) -> None:
    conn = await fastio.connect(pg_server.dsn)
    peer = await asyncpg.connect(pg_server.dsn)
    try:
        ours = tuple(await conn.fetchrow(query))
        theirs = tuple(await peer.fetchrow(query))
    finally:
        await conn.close()
        await peer.close()

    def norm(v: Any) -> Any:
        if isinstance(v, decimal.Decimal) and v.is_nan():
            return "NaN"
        if isinstance(v, uuid.UUID):
            return uuid.UUID(str(v))  # asyncpg returns its own UUID subclass
        return v

    assert [norm(v) for v in ours] == [norm(v) for v in theirs]
    assert [type(norm(v)) for v in ours] == [type(norm(v)) for v in theirs]


async def test_json_is_decoded_natively_and_text_on_request(pg_server: Any) -> None:
    q = """SELECT '{"a": [1, 2]}'::jsonb, '[true, null]'::json"""
    conn = await fastio.connect(pg_server.dsn)
    text_conn = await fastio.connect(pg_server.dsn, json_as_text=True)
    try:
        assert tuple(await conn.fetchrow(q)) == ({"a": [1, 2]}, [True, None])
        assert tuple(await text_conn.fetchrow(q)) == ('{"a": [1, 2]}', "[true, null]")
        assert await conn.fetchval("SELECT $1::jsonb", {"k": "v"}) == {"k": "v"}
        assert await conn.fetchval("SELECT $1::json", '{"s": 1}') == {"s": 1}
        assert await conn.fetchval("SELECT $1::jsonb -> 1", [1, "two"]) == "two"
    finally:
        await conn.close()
        await text_conn.close()


async def test_parameters_are_encoded_as_the_server_inferred_type(pg_server: Any) -> None:
    t = table()
    pool = await pool_for(pg_server)
    u = uuid.uuid4()
    try:
        await pool.execute(
            f"CREATE TABLE {t} (id int8, small int2, n numeric, u uuid, d date, "
            "ts timestamptz, j jsonb, tags text[])"
        )
        await pool.execute(
            f"INSERT INTO {t} VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            1,
            2,
            7,  # int into numeric
            str(u),  # str into uuid
            "2024-03-01",  # str into date
            datetime.datetime(
                2024, 3, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
            ),
            '{"a": 1}',  # str into jsonb
            ["x", None],
        )
        row = await pool.fetchrow(f"SELECT * FROM {t}")
        assert row["n"] == decimal.Decimal(7) and row["u"] == u
        assert row["d"] == datetime.date(2024, 3, 1)
        assert row["ts"] == datetime.datetime(2024, 3, 1, 10, tzinfo=datetime.timezone.utc)
        assert row["j"] == {"a": 1} and row["tags"] == ["x", None]
        # A list binds an array for = ANY($1).
        assert await pool.fetch(f"SELECT id FROM {t} WHERE id = ANY($1)", [1, 5]) == [(1,)]
        assert await pool.fetchval("SELECT $1::int8[]", [[1, 2], [3, 4]]) == [[1, 2], [3, 4]]
        big = decimal.Decimal("-98765432109876543210.0123456789")
        assert await pool.fetchval("SELECT $1::numeric", big) == big
        assert await pool.fetchval("SELECT $1::numeric", 2**70) == decimal.Decimal(2**70)
        assert await pool.fetchval(
            "SELECT $1::interval", datetime.timedelta(days=-1, seconds=5)
        ) == (datetime.timedelta(days=-1, seconds=5))
        assert await pool.fetchval("SELECT $1::bytea", b"\x00\x01") == b"\x00\x01"
        assert await pool.fetchval("SELECT $1::float8", 3) == 3.0
        assert await pool.fetchval("SELECT $1", "untyped is text") == "untyped is text"
        assert await pool.fetchval("SELECT $1::text IS NULL", None) is True
    finally:
        await pool.close()


ARG = "invalid input for query argument $1: "


@pytest.mark.parametrize(
    ("query", "arg", "message"),
    [
        ("SELECT $1::int2", 100000, ARG + "100000 (value out of int16 range)"),
        ("SELECT $1::int", "x", ARG + "'x' ('str' object cannot be interpreted as an integer)"),
        ("SELECT $1::uuid", "abc", ARG + "'abc' (invalid UUID"),
        ("SELECT $1::int4", 2**40, "value out of int32 range"),
        ("SELECT $1::bool", 1, "expected a bool"),
    ],
)
async def test_a_value_that_does_not_fit_raises_data_error(
    pg_server: Any, query: str, arg: Any, message: str
) -> None:
    conn = await fastio.connect(pg_server.dsn)
    try:
        with pytest.raises(exc.DataError) as info:
            await conn.fetchval(query, arg)
        assert str(info.value).startswith(message) or message in str(info.value)
        assert isinstance(info.value, exc.PostgresError)
        assert await conn.fetchval("SELECT 41 + 1") == 42  # nothing was sent
    finally:
        await conn.close()


async def test_wrong_argument_count_is_an_interface_error(pg_server: Any) -> None:
    pool = await pool_for(pg_server)
    try:
        with pytest.raises(
            fastio.InterfaceError, match="expects 1 argument for this query, 2 were"
        ):
            await pool.fetchval("SELECT $1::int", 1, 2)
        assert await pool.fetchval("SELECT $1::int", 5) == 5
    finally:
        await pool.close()


# ------------------------------------------------------------------- errors


async def test_server_errors_raise_the_sqlstate_class_with_fields(pg_server: Any) -> None:
    t = table()
    pool = await pool_for(pg_server)
    try:
        await pool.execute(f"CREATE TABLE {t} (id int CONSTRAINT {t}_pk PRIMARY KEY)")
        await pool.execute(f"INSERT INTO {t} VALUES (1)")
        with pytest.raises(exc.UniqueViolationError) as info:
            await pool.execute(f"INSERT INTO {t} VALUES ($1)", 1)
        e = info.value
        assert e.sqlstate == "23505" and e.constraint_name == f"{t}_pk"
        assert e.table_name == t and e.detail == "Key (id)=(1) already exists."
        assert "DETAIL:  Key (id)=(1) already exists." in str(e)
        assert isinstance(e, exc.IntegrityConstraintViolationError)
        assert isinstance(e, exc.PostgresError) and isinstance(e, fastio.FastIOError)
        assert e.as_dict()["sqlstate"] == "23505"
        with pytest.raises(exc.PostgresSyntaxError) as syntax:
            await pool.fetch("SELEC 1")
        assert syntax.value.position == "1" and syntax.value.query == "SELEC 1"
        with pytest.raises(exc.UndefinedTableError):
            await pool.fetch("SELECT * FROM no_such_table_here")
        with pytest.raises(exc.DivisionByZeroError):
            await pool.fetchval("SELECT 1 / $1::int", 0)
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_every_asyncpg_sqlstate_class_exists_with_the_same_code() -> None:
    import asyncpg.exceptions as ax

    for name in dir(ax):
        cls = getattr(ax, name)
        code = getattr(cls, "__dict__", {}).get("sqlstate")
        if isinstance(cls, type) and code:
            ours = getattr(exc, name)
            assert ours.sqlstate == code
            assert [b.__name__ for b in ours.__mro__ if "sqlstate" in b.__dict__] == [
                b.__name__ for b in cls.__mro__ if "sqlstate" in b.__dict__
            ]


async def test_bad_dsn_and_bad_password_never_show_the_password(pg_server: Any) -> None:
    with pytest.raises(ValueError, match="dsn"):
        await fastio.create_pool("http://u:hunter2@h/db")
    with pytest.raises(fastio.ConnectionError) as failed:
        await fastio.create_pool("mysql://u:hunter2@no-such-host.invalid/db", timeout=5)
    assert "hunter2" not in str(failed.value)
    wrong = pg_server.dsn.replace(f":{pg_server.password}@", ":hunter2-wrong@")
    with pytest.raises(exc.InvalidPasswordError) as info:
        await fastio.connect(wrong)
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(info.value)
    pool = await pool_for(pg_server)
    try:
        assert f":{pg_server.password}@" not in repr(pool)
        assert f"{pg_server.user}:***@" in repr(pool)
    finally:
        await pool.close()


# ------------------------------------------------------------- transactions


async def test_transactions_commit_roll_back_and_nest(pg_server: Any) -> None:
    t = table()
    pool = await pool_for(pg_server)
    try:
        await pool.execute(f"CREATE TABLE {t} (id int)")
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {t} VALUES (1)")
                assert conn.is_in_transaction()
            assert not conn.is_in_transaction()
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    await conn.execute(f"INSERT INTO {t} VALUES (2)")
                    raise RuntimeError("boom")
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {t} VALUES (3)")
                with pytest.raises(exc.DivisionByZeroError):
                    async with conn.transaction():  # a savepoint
                        await conn.execute(f"INSERT INTO {t} VALUES (4)")
                        await conn.execute("SELECT 1 / 0")
                await conn.execute(f"INSERT INTO {t} VALUES (5)")
            tr = conn.transaction()
            await tr.start()
            await conn.execute(f"INSERT INTO {t} VALUES (6)")
            await tr.rollback()
        assert [r[0] for r in await pool.fetch(f"SELECT id FROM {t} ORDER BY id")] == [1, 3, 5]
    finally:
        await pool.close()


async def test_transaction_isolation_and_readonly(pg_server: Any) -> None:
    conn = await fastio.connect(pg_server.dsn)
    try:
        async with conn.transaction(isolation="serializable", readonly=True, deferrable=True):
            assert await conn.fetchval("SHOW transaction_isolation") == "serializable"
            assert await conn.fetchval("SHOW transaction_read_only") == "on"
            with pytest.raises(exc.ReadOnlySQLTransactionError):
                await conn.execute("CREATE TEMP TABLE x (id int)")
        async with conn.transaction(isolation="repeatable_read"):
            assert await conn.fetchval("SHOW transaction_isolation") == "repeatable read"
        with pytest.raises(ValueError):
            conn.transaction(isolation="bogus")
    finally:
        await conn.close()


# ------------------------------------------------------------- cancellation


async def sleeping_backends(pool: fastio.Pool) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE query LIKE 'SELECT pg_sleep(%' AND state = 'active'"
    )


async def test_cancelled_query_is_cancelled_on_the_server(pg_server: Any) -> None:
    pool = await pool_for(pg_server, min_size=2, max_size=2)
    try:
        task = asyncio.create_task(run(pool.fetchval("SELECT pg_sleep(60)")))
        await wait_until(lambda: _positive(pool))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until(lambda: _zero(pool))
        # Both connections give correct answers afterwards (none is handed out dirty).
        results = await asyncio.gather(*(pool.fetchval("SELECT $1::int", i) for i in range(20)))
        assert results == list(range(20))
    finally:
        await pool.close()


async def test_cancels_right_after_sending_leave_nothing_running(pg_server: Any) -> None:
    # Timeouts of a few milliseconds cut queries off on every step (before
    # the write, while the server reads it, as it starts): none of the
    # pg_sleep(30)s runs on and no slot stays held. (A CancelRequest the
    # backend sees while still reading the query is ignored by the server;
    # recovery repeats it until the query comes back.)
    pool = await pool_for(pg_server, min_size=2, max_size=2)
    rng = random.Random(11)
    try:
        for _ in range(150):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pool.fetchval("SELECT pg_sleep(30)"), rng.uniform(0, 0.004))
        await wait_until(lambda: _zero(pool), timeout=3.0)
        assert await asyncio.gather(
            *(pool.fetchval("SELECT $1::int", i) for i in range(8))
        ) == list(range(8))
    finally:
        await pool.close()


async def _positive(pool: fastio.Pool) -> bool:
    return await sleeping_backends(pool) > 0


async def _zero(pool: fastio.Pool) -> bool:
    return await sleeping_backends(pool) == 0


async def test_wait_for_on_a_connection_cancels_and_keeps_it_usable(pg_server: Any) -> None:
    conn = await fastio.connect(pg_server.dsn)
    watcher = await fastio.connect(pg_server.dsn)
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(conn.fetchval("SELECT pg_sleep(60)"), 0.3)
        # The next query waits for the cleanup and gets its own answer.
        assert await conn.fetchval("SELECT 'after'") == "after"
        pid = conn.get_server_pid()
        assert (
            await watcher.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", pid)
            == "idle"
        )
    finally:
        await conn.close()
        await watcher.close()


async def test_command_timeout_cancels_on_the_server(pg_server: Any) -> None:
    pool = await pool_for(pg_server, min_size=1, max_size=1, command_timeout=0.3)
    try:
        with pytest.raises(asyncio.TimeoutError):
            await pool.fetchval("SELECT pg_sleep(60)")
        with pytest.raises(fastio.TimeoutError):
            await pool.fetchval("SELECT pg_sleep(60)", timeout=0.2)
        # The only connection is reused: clean, and not running the sleep.
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE query LIKE 'SELECT pg_sleep(%' AND state = 'active'"
            )
            == 0
        )
        assert await pool.fetchval("SELECT 7", timeout=5) == 7
    finally:
        await pool.close()


async def test_statement_cache_size_zero_leaves_no_named_statements(pg_server: Any) -> None:
    # What PgBouncer's transaction mode needs: every statement unnamed.
    t = table()
    conn = await fastio.connect(pg_server.dsn, statement_cache_size=0)
    cached = await fastio.connect(pg_server.dsn)
    try:
        await conn.execute(f"CREATE TEMP TABLE {t} (id int)")
        await conn.executemany(f"INSERT INTO {t} VALUES ($1)", [(1,), (2,)])
        assert await conn.fetch(f"SELECT id FROM {t} WHERE id > $1", 0) == [(1,), (2,)]
        assert await conn.copy_records_to_table(t, records=[(3,)]) == "COPY 1"
        assert await conn.fetchval("SELECT count(*) FROM pg_prepared_statements") == 0
        await cached.fetchval("SELECT $1::int", 1)
        assert await cached.fetchval("SELECT count(*) FROM pg_prepared_statements") >= 1
    finally:
        await conn.close()
        await cached.close()


async def test_random_cancellations_under_load_leave_every_connection_healthy(
    pg_server: Any,
) -> None:
    import random

    rng = random.Random(4)
    pool = await pool_for(pg_server, min_size=4, max_size=4)
    try:

        async def one(i: int) -> None:
            sleep = rng.choice([0, 0, 0.001, 0.01, 0.05])
            query = pool.fetchval("SELECT $1::int FROM pg_sleep($2)", i, sleep)
            try:
                value = await asyncio.wait_for(query, rng.choice([0.001, 0.005, 0.02, 1.0]))
            except asyncio.TimeoutError:
                return
            assert value == i  # a reused connection never answers someone else's query

        await asyncio.gather(*(one(i) for i in range(300)))
        # Every connection of the pool answers its own queries afterwards.
        checks = asyncio.gather(*(pool.fetchval("SELECT $1::int", i) for i in range(200)))
        got = await asyncio.wait_for(checks, 30)
        assert got == list(range(200))
        await wait_until(lambda: _zero(pool))
    finally:
        await pool.close()


async def test_pool_recovers_after_a_server_restart(pg_server: Any) -> None:
    if not getattr(pg_server, "can_restart", True):
        pytest.skip("external server")
    pool = await pool_for(pg_server, min_size=2, max_size=2)
    try:
        assert await pool.fetchval("SELECT 1") == 1
        await asyncio.get_running_loop().run_in_executor(None, pg_server.restart)
        # Connections from before the restart are dead: queries on them fail
        # cleanly (an error, never a hang or a wrong answer) ...
        outcomes = []
        for i in range(6):
            try:
                outcomes.append(await asyncio.wait_for(pool.fetchval("SELECT $1::int", i), 10))
            except (fastio.FastIOError, ConnectionError) as e:
                outcomes.append(type(e).__name__)
        assert all(o == i or isinstance(o, str) for i, o in enumerate(outcomes)), outcomes
        # ... and the pool replaces them.
        assert await pool.fetchval("SELECT 42") == 42
        assert await pool.fetchval("SELECT 43") == 43
    finally:
        await pool.close()


async def test_retry_hides_a_server_restart(pg_server: Any) -> None:
    if not getattr(pg_server, "can_restart", True):
        pytest.skip("external server")
    retry = fastio.Retry(attempts=8, backoff=0.1, max_backoff=1.0)
    pool = await pool_for(pg_server, min_size=2, max_size=2, retry=retry)
    t = table()
    try:
        await pool.execute(f"CREATE TABLE {t} (x int)")
        await asyncio.get_running_loop().run_in_executor(None, pg_server.restart)
        # No statement fails: dead connections are replaced and the statement retried.
        for i in range(5):
            assert await pool.fetchval("SELECT $1::int", i) == i
        await pool.executemany(f"INSERT INTO {t} VALUES ($1)", [(1,), (2,)])
        assert await pool.fetchval(f"SELECT count(*) FROM {t}") == 2
        # Other errors are raised at once.
        acquired = pool.get_stats()["acquired"]
        with pytest.raises(exc.PostgresSyntaxError):
            await pool.fetch("SELEC 1")
        assert pool.get_stats()["acquired"] == acquired + 1
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {t}")
        await pool.close()


async def test_serialization_failures_are_retried_with_retry(pg_server: Any) -> None:
    # Two pools update the same row under SERIALIZABLE default isolation: the
    # loser gets 40001, which retry= turns into a second, successful attempt.
    t = table()
    setup = await pool_for(pg_server)
    await setup.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, n int)")
    await setup.execute(f"INSERT INTO {t} VALUES (1, 0)")
    settings = {"default_transaction_isolation": "serializable"}
    retry = fastio.Retry(attempts=10, backoff=0.01, max_backoff=0.1)
    pool = await pool_for(pg_server, max_size=8, retry=retry, server_settings=settings)
    try:
        stmt = (
            f"WITH c AS (SELECT n FROM {t} WHERE id = 1) UPDATE {t} SET n = (SELECT n FROM c) + 1"
        )
        await asyncio.gather(*(pool.execute(stmt) for _ in range(40)))
        assert await setup.fetchval(f"SELECT n FROM {t}") == 40
    finally:
        await pool.close()
        await setup.execute(f"DROP TABLE {t}")
        await setup.close()


async def test_retry_wrapped_transactions_survive_serialization_failures(pg_server: Any) -> None:
    # Read-modify-write transactions under SERIALIZABLE: concurrent ones fail
    # with SerializationError; @fastio.retry(on=...) re-runs the whole
    # transaction, so every increment lands exactly once.
    t = table()
    pool = await pool_for(pg_server, max_size=8)
    await pool.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, n int)")
    await pool.execute(f"INSERT INTO {t} VALUES (1, 0)")
    failures = []

    @fastio.retry(
        attempts=30,
        backoff=0.005,
        max_backoff=0.05,
        on=(exc.SerializationError, exc.DeadlockDetectedError),
        before_sleep=lambda state: failures.append(type(state.exception).__name__),
    )
    async def increment() -> None:
        async with pool.acquire() as conn, conn.transaction(isolation="serializable"):
            n = await conn.fetchval(f"SELECT n FROM {t} WHERE id = 1")
            await asyncio.sleep(0.001)
            await conn.execute(f"UPDATE {t} SET n = $1 WHERE id = 1", n + 1)

    try:
        await asyncio.gather(*(increment() for _ in range(25)))
        assert await pool.fetchval(f"SELECT n FROM {t}") == 25
        assert failures and set(failures) <= {"SerializationError", "DeadlockDetectedError"}
    finally:
        await pool.execute(f"DROP TABLE {t}")
        await pool.close()


async def test_statements_and_pool_gauges_are_in_metrics(pg_server: Any) -> None:
    fastio.metrics.reset()
    pool = await pool_for(pg_server, name="pg-metrics")
    try:
        for i in range(7):
            await pool.fetchval("SELECT $1::int", i)
        with pytest.raises(exc.DivisionByZeroError):
            await pool.fetch("SELECT 1 / 0")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.fetchval("SELECT pg_sleep(5)"), 0.1)

        async def recovered() -> bool:
            # The cancelled statement's connection is back once drained.
            return pool.get_stats()["in_use"] == 0

        await wait_until(recovered)
        async with pool.acquire() as conn:
            await conn.execute("CREATE TEMP TABLE m (x int)")
            await conn.execute("INSERT INTO m VALUES (1)")
            pools = [p for p in fastio.metrics.snapshot()["pools"] if p["name"] == "pg-metrics"]
            assert pools[0]["in_use"] == 1 and pools[0]["backend"] == "postgresql"

        def by_kind() -> dict[str, Any]:
            return {
                s["labels"]["statement"]: s
                for s in fastio.metrics.snapshot()["db"]
                if s["labels"]["pool"] == "pg-metrics"
            }

        async def all_recorded() -> bool:
            # The cancelled statement is recorded when tokio drops its task.
            return by_kind()["select"]["count"] == 9

        await wait_until(all_recorded)
        series = by_kind()
        assert series["select"]["errors"] == 1 and series["select"]["cancelled"] == 1
        assert series["ddl"]["count"] == 1 and series["insert"]["count"] == 1
        assert series["select"]["p50"] > 0
        text = fastio.metrics.render_prometheus()
        assert 'fastio_pool_max_size{pool="pg-metrics",backend="postgresql"} 4' in text
        assert (
            'fastio_db_calls_total{pool="pg-metrics",backend="postgresql",statement="select"} 9'
            in text
        )
    finally:
        await pool.close()


async def test_prepare_checks_now_and_runs_many_times(pg_server: Any) -> None:
    t = table()
    conn = await fastio.connect(pg_server.dsn)
    try:
        await conn.execute(f"CREATE TEMP TABLE {t} (id int, v text)")
        insert = await conn.prepare(f"INSERT INTO {t} VALUES ($1, $2)")
        assert insert.get_parameter_type_oids() == [23, 25]
        await insert.executemany([(1, "a"), (2, "b")])
        select = await conn.prepare(f"SELECT v FROM {t} WHERE id = $1")
        assert await select.fetchval(1) == "a"
        assert await select.fetchrow(2) == ("b",)
        assert await select.fetch(3) == []
        assert select.get_query().startswith("SELECT v")
        assert [r[0] async for r in select.cursor(2)] == ["b"]
        with pytest.raises(exc.UndefinedTableError):
            await conn.prepare("SELECT * FROM no_such_table_at_all")
        with pytest.raises(exc.DataError):
            await select.fetchval("not an int")
    finally:
        await conn.close()


async def test_copy_records_to_table(pg_server: Any) -> None:
    t = table()
    pool = await pool_for(pg_server)
    peer = await asyncpg.connect(pg_server.dsn)
    try:
        await pool.execute(
            f"CREATE TABLE {t} (id int, name text, score numeric, at timestamptz, tags text[])"
        )
        at = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        records = [(i, f"n{i}", decimal.Decimal(i) / 4, at, ["a", None]) for i in range(1000)]
        records.append((1000, None, None, None, None))
        async with pool.acquire() as conn:
            assert await conn.copy_records_to_table(t, records=records) == "COPY 1001"
        assert (
            await pool.copy_records_to_table(
                t, records=[("x", 2000)], columns=["name", "id"], schema_name="public"
            )
            == "COPY 1"
        )
        rows = await pool.fetch(f"SELECT * FROM {t} ORDER BY id")
        assert [tuple(r) for r in rows[:1000]] == records[:1000]
        assert tuple(rows[1000]) == (1000, None, None, None, None)
        assert rows[-1]["name"] == "x"
        # asyncpg returns the same status string.
        assert await peer.copy_records_to_table(t, records=[(1, "p", None, None, None)]) == "COPY 1"
        with pytest.raises(exc.DataError, match="record 0"):
            await pool.copy_records_to_table(t, records=[("not an int", "a", 1, at, [])])
        with pytest.raises(exc.UndefinedTableError):
            await pool.copy_records_to_table("no_such_table_x", records=[(1,)])
        assert await pool.fetchval(f"SELECT count(*) FROM {t}") == 1003
    finally:
        await peer.close()
        await pool.close()


async def test_batch_errors_late_in_large_batches_change_nothing(pg_server: Any) -> None:
    t = table()
    conn = await fastio.connect(pg_server.dsn)
    insert = f"INSERT INTO {t} VALUES ($1, $2, $3)"
    try:
        await conn.execute(f"CREATE TABLE {t} (id int, name text NOT NULL, score float8)")
        rows: list[Any] = [(i, f"name {i}", i * 0.5) for i in range(100_000)]
        rows[90_000] = (90_000, "x", "not a float")
        reason = "'not a float' (expected a float, got 'str')"
        # COPY streams the data while it encodes it: most of it is sent when
        # the bad value is reached, and the COPY fails as a whole.
        with pytest.raises(exc.DataError) as info:
            await conn.copy_records_to_table(t, records=rows)
        assert str(info.value) == f'invalid input for column "score" of record 90000: {reason}'
        with pytest.raises(exc.DataError) as info:
            await conn.executemany(insert, rows)
        assert str(info.value) == f"invalid input for query argument $3: {reason}"
        assert await conn.fetchval(f"SELECT count(*) FROM {t}") == 0
        # The server's own error late in the data.
        rows[90_000] = (90_000, None, 1.0)
        with pytest.raises(exc.NotNullViolationError):
            await conn.copy_records_to_table(t, records=rows)
        with pytest.raises(exc.NotNullViolationError):
            await conn.executemany(insert, rows)
        assert await conn.fetchval(f"SELECT count(*) FROM {t}") == 0
        # In a transaction, a value that does not fit fails before anything
        # is sent: the transaction goes on.
        rows[90_000] = (90_000, "x", "not a float")
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {t} VALUES (-1, 'kept', 0)")
            with pytest.raises(exc.DataError, match="record 90000"):
                await conn.copy_records_to_table(t, records=rows)
            with pytest.raises(exc.DataError, match=r"argument \$3"):
                await conn.executemany(insert, rows)
            await conn.execute(f"INSERT INTO {t} VALUES (-2, 'kept', 0)")
            rows[90_000] = (90_000, "x", 2.5)
            assert await conn.copy_records_to_table(t, records=rows) == "COPY 100000"
        assert await conn.fetchval(f"SELECT count(*) FROM {t}") == 100_002
        assert await conn.fetchval(f"SELECT sum(score) FROM {t}") == sum(r[2] for r in rows)
    finally:
        await conn.close()


async def test_batch_rows_of_any_sequence_and_of_the_wrong_length(pg_server: Any) -> None:
    import collections

    class Seq:
        def __init__(self, *v: Any) -> None:
            self.v = v

        def __iter__(self) -> Any:
            return iter(self.v)

    Row = collections.namedtuple("Row", "id name score")
    t = table()
    pool = await pool_for(pg_server)
    insert = f"INSERT INTO {t} VALUES ($1, $2, $3)"
    try:
        await pool.execute(f"CREATE TABLE {t} (id int, name text, score float8)")
        rows = [(1, "a", 1.0), [2, "b", None], Row(3, "c", 3), Seq(4, None, 4.5)]
        await pool.executemany(insert, rows)
        await pool.executemany(insert, (r for r in rows))
        assert await pool.copy_records_to_table(t, records=rows) == "COPY 4"
        assert await pool.copy_records_to_table(t, records=tuple(rows)) == "COPY 4"
        async with pool.acquire() as conn:
            assert await conn.copy_records_to_table(t, records=iter(rows)) == "COPY 4"
        got = await pool.fetch(f"SELECT * FROM {t} ORDER BY id, name")
        assert [tuple(r) for r in got[::5]] == [
            (1, "a", 1.0),
            (2, "b", None),
            (3, "c", 3.0),
            (4, None, 4.5),
        ]
        assert len(got) == 20
        with pytest.raises(
            fastio.InterfaceError,
            match=r"^the server expects 3 arguments for this query, 2 were passed$",
        ):
            await pool.executemany(insert, [(5, "e", 5.0), (6, "f")])
        with pytest.raises(fastio.InterfaceError, match="4 were passed"):
            await pool.executemany(insert, [(7, "g", 7.0, 8)])
        with pytest.raises(
            exc.DataError,
            match=r"^copy_records_to_table\(\): record 1 has 2 values, the table has 3 columns$",
        ):
            await pool.copy_records_to_table(t, records=[(5, "e", 5.0), (6, "f")])
        with pytest.raises(exc.DataError, match="record 0 has 4 values"):
            await pool.copy_records_to_table(t, records=[Seq(7, "g", 7.0, 8)])
        with pytest.raises(TypeError, match="iterable of argument sequences"):
            await pool.executemany(insert, ["abc"])
        with pytest.raises(TypeError, match="not iterable"):
            await pool.copy_records_to_table(t, records=[5])
        with pytest.raises(TypeError):
            await pool.executemany(insert, 5)
        # Ints out of their column's range, NULLs in every column.
        with pytest.raises(exc.DataError) as info:
            await pool.executemany(insert, [(2**31, "x", 1.0)])
        assert str(info.value) == (
            "invalid input for query argument $1: 2147483648 (value out of int32 range)"
        )
        with pytest.raises(exc.DataError) as info:
            await pool.copy_records_to_table(t, records=[(None, None, None), (-(2**70), "x", 1)])
        assert str(info.value) == (
            'invalid input for column "id" of record 1: -1180591620717411303424'
            " (value out of int32 range)"
        )
        assert await pool.fetchval(f"SELECT count(*) FROM {t}") == 20
    finally:
        await pool.close()


async def test_network_mac_and_timetz_types_match_asyncpg(pg_server: Any) -> None:
    import ipaddress

    q = (
        "SELECT '192.168.0.1'::inet, '10.1.0.0/16'::inet, '10.0.0.0/8'::cidr, '::1'::inet,"
        " '2001:db8::/32'::cidr, '08:00:2b:01:02:03'::macaddr, '12:34:56+02'::timetz,"
        " ARRAY['1.2.3.4'::inet]"
    )
    conn = await fastio.connect(pg_server.dsn)
    peer = await asyncpg.connect(pg_server.dsn)
    try:
        ours = tuple(await conn.fetchrow(q))
        theirs = tuple(await peer.fetchrow(q))
        assert ours == theirs
        assert [type(v) for v in ours] == [type(v) for v in theirs]
        net = ipaddress.ip_network("192.168.0.0/24")
        assert await conn.fetchval("SELECT $1::cidr", net) == net
        assert await conn.fetchval("SELECT $1::inet", "10.0.0.5") == ipaddress.ip_address(
            "10.0.0.5"
        )
        assert await conn.fetchval("SELECT $1::inet[]", ["::1", None]) == [
            ipaddress.ip_address("::1"),
            None,
        ]
        with pytest.raises(exc.DataError, match="invalid IP address"):
            await conn.fetchval("SELECT $1::inet", "not-an-ip")
    finally:
        await conn.close()
        await peer.close()


async def test_listen_notify_calls_listeners(pg_server: Any) -> None:
    conn = await fastio.connect(pg_server.dsn)
    sender = await asyncpg.connect(pg_server.dsn)
    got: list[tuple[Any, int, str, str]] = []
    arrived = asyncio.Event()
    done_async: list[str] = []

    def on_note(c: Any, pid: int, channel: str, payload: str) -> None:
        got.append((c, pid, channel, payload))
        arrived.set()

    async def on_note_async(c: Any, pid: int, channel: str, payload: str) -> None:
        done_async.append(payload)

    try:
        await conn.add_listener("chan_a", on_note)
        await conn.add_listener("chan_a", on_note_async)
        await sender.execute("NOTIFY chan_a, 'hello'")
        await asyncio.wait_for(arrived.wait(), 10)
        assert got == [(conn, sender.get_server_pid(), "chan_a", "hello")]
        await asyncio.sleep(0.05)
        assert done_async == ["hello"]
        # Queries on the connection keep working while it listens.
        assert await conn.fetchval("SELECT 5") == 5
        await conn.remove_listener("chan_a", on_note_async)
        await conn.remove_listener("chan_a", on_note)
        arrived.clear()
        await sender.execute("NOTIFY chan_a, 'ignored'")
        await asyncio.sleep(0.2)
        assert len(got) == 1 and done_async == ["hello"]
    finally:
        await sender.close()
        await conn.close()


def test_a_pool_from_before_fork_fails_clearly_in_the_child(pg_server: Any) -> None:
    import os
    import warnings

    from conftest import run

    pool = run(pool_for(pg_server, min_size=1, max_size=2))

    def child() -> int:
        try:
            pool.fetchval("SELECT 1")
        except fastio.UsedAfterForkError:
            pass
        else:
            return 3

        async def fresh() -> int:
            p = await pool_for(pg_server, min_size=1, max_size=1)
            try:
                return await p.fetchval("SELECT 7")
            finally:
                await p.close()

        return 0 if run(fresh()) == 7 else 4

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            code = child()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's pool is untouched by the child.
    assert run(pool.fetchval("SELECT 8")) == 8
    run(pool.close())


# ------------------------------------------------------------------- COPY out/in


async def test_copy_from_query_to_path_file_and_callable(pg_server: Any, tmp_path: Any) -> None:
    import io

    t = table()
    conn = await fastio.connect(pg_server.dsn)
    peer = await asyncpg.connect(pg_server.dsn)
    try:
        await conn.execute(f"CREATE TABLE {t} (id int, name text, score float8)")
        await conn.executemany(
            f"INSERT INTO {t} VALUES ($1, $2, $3)",
            [(i, f"n,{i}" if i % 2 else None, i / 4) for i in range(1, 6)],
        )
        query = f"SELECT * FROM {t} WHERE id > $1 ORDER BY id"
        for fmt, opts in (
            ("csv", {"header": True}),
            ("text", {}),
            ("binary", {}),
            ("csv", {"delimiter": ";", "null": "NULL", "force_quote": True}),
        ):
            theirs = io.BytesIO()
            status = await peer.copy_from_query(query, 1, output=theirs, format=fmt, **opts)
            assert status == "COPY 4"
            path = tmp_path / f"out.{fmt}"
            assert await conn.copy_from_query(query, 1, output=path, format=fmt, **opts) == "COPY 4"
            assert path.read_bytes() == theirs.getvalue()
            buf = io.BytesIO()
            assert await conn.copy_from_query(query, 1, output=buf, format=fmt, **opts) == "COPY 4"
            assert buf.getvalue() == theirs.getvalue()
            chunks: list[bytes] = []

            async def sink(data: bytes, chunks: list[bytes] = chunks) -> None:
                chunks.append(data)

            assert await conn.copy_from_query(query, 1, output=sink, format=fmt, **opts) == "COPY 4"
            assert b"".join(chunks) == theirs.getvalue()
        # copy_from_table, with columns and schema.
        theirs = io.BytesIO()
        await peer.copy_from_table(
            t, output=theirs, columns=["name", "id"], schema_name="public", format="csv"
        )
        ours = io.BytesIO()
        status = await conn.copy_from_table(
            t, output=ours, columns=["name", "id"], schema_name="public", format="csv"
        )
        assert status == "COPY 5" and ours.getvalue() == theirs.getvalue()
        # A failing COPY raises the server's error and leaves the connection usable.
        with pytest.raises(exc.UndefinedTableError):
            await conn.copy_from_table("no_such_table", output=io.BytesIO())
        with pytest.raises(exc.PostgresSyntaxError):
            await conn.copy_from_query("SELEC 1", output=io.BytesIO())
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {t}")
        await conn.close()
        await peer.close()


async def test_copy_to_table_from_path_file_bytes_and_async_iterable(
    pg_server: Any, tmp_path: Any
) -> None:
    import io

    t = table()
    conn = await fastio.connect(pg_server.dsn)
    try:
        await conn.execute(f"CREATE TABLE {t} (id int, name text)")
        csv_path = tmp_path / "in.csv"
        csv_path.write_text("id,name\n1,a\n2,\n")
        assert await conn.copy_to_table(t, source=csv_path, format="csv", header=True) == "COPY 2"
        assert (
            await conn.copy_to_table(t, source=io.BytesIO(b"3\tc\n4\t\\N\n"), format="text")
            == "COPY 2"
        )
        assert await conn.copy_to_table(t, source=b"5|e\n", delimiter="|") == "COPY 1"

        async def rows() -> Any:
            for i in range(6, 106):
                yield f"{i},name {i}\n".encode()

        assert (
            await conn.copy_to_table(t, source=rows(), columns=["id", "name"], format="csv")
            == "COPY 100"
        )
        got = await conn.fetch(f"SELECT id, name FROM {t} WHERE id <= 5 ORDER BY id")
        assert [tuple(r) for r in got] == [(1, "a"), (2, None), (3, "c"), (4, None), (5, "e")]
        assert await conn.fetchval(f"SELECT count(*) FROM {t}") == 105
        # Bad data: the server's error, nothing copied, the connection still usable.
        with pytest.raises(exc.InvalidTextRepresentationError):
            await conn.copy_to_table(t, source=b"1,a\nx,b\n", format="csv")
        assert await conn.fetchval(f"SELECT count(*) FROM {t}") == 105
        # Round trip through binary COPY.
        out = io.BytesIO()
        await conn.copy_from_table(t, output=out, format="binary")
        await conn.execute(f"TRUNCATE {t}")
        assert await conn.copy_to_table(t, source=out.getvalue(), format="binary") == "COPY 105"
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {t}")
        await conn.close()


class _PgWireTap:
    """A TCP proxy in front of PostgreSQL logging, in order, the frontend's
    messages (type, payload length) and each CopyInResponse it passes on
    ("G>"). It holds a CopyInResponse until the client has sent COPY data
    for the current query, or for 2 s: data sent only after the response
    is logged after it."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.log: list[tuple[str, int]] = []
        self.data_sent = asyncio.Event()
        self.served: list[asyncio.Future[Any]] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(*self.upstream)
        both = asyncio.gather(self._frontend(reader, up_w), self._backend(up_r, writer))
        self.served.append(both)
        await both

    async def close(self) -> None:
        """Stops, once the connections through it have ended."""
        self.server.close()
        await asyncio.wait_for(asyncio.gather(*self.served), 10)

    async def _frontend(self, reader: asyncio.StreamReader, up_w: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readexactly(4)  # the startup message: no type byte
            up_w.write(head + await reader.readexactly(int.from_bytes(head, "big") - 4))
        except (asyncio.IncompleteReadError, ConnectionError):
            up_w.close()
            return
        await self._pump(reader, up_w, self._from_client)

    async def _backend(self, up_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._pump(up_r, writer, self._from_server)

    async def _from_client(self, kind: str, size: int) -> None:
        if kind == "Q":
            self.data_sent.clear()
        elif kind == "d":
            self.data_sent.set()
        self.log.append((kind, size))

    async def _from_server(self, kind: str, size: int) -> None:
        if kind == "G":
            try:
                await asyncio.wait_for(self.data_sent.wait(), 2)
            except asyncio.TimeoutError:
                pass
            self.log.append(("G>", 0))

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, seen: Any) -> None:
        """Passes typed messages on, each after `seen(type, payload length)`."""
        try:
            while True:
                head = await src.readexactly(5)
                body = await src.readexactly(int.from_bytes(head[1:], "big") - 4)
                await seen(chr(head[0]), len(body))
                dst.write(head + body)
                await dst.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            dst.close()


async def test_copy_data_goes_out_with_the_copy_statement_in_messages_under_64_kib(
    pg_server: Any,
) -> None:
    t = table()
    tap = _PgWireTap(pg_server.host, pg_server.port)
    port = await tap.start()
    dsn = (
        f"postgresql://{pg_server.user}:{pg_server.password}@127.0.0.1:{port}"
        f"/{pg_server.database}?sslmode=disable"
    )
    conn = await fastio.connect(dsn)
    try:
        await conn.execute(f"CREATE TABLE {t} (id int, name text, score float8)")
        rows = [(i, f"name {i}", i * 0.25) for i in range(50_000)]
        csv = "".join(f"{i},name {i},{i * 0.25}\n" for i in range(50_000)).encode()

        async def in_a_transaction() -> str:
            async with conn.transaction():  # encoded in full, then sent
                return await conn.copy_records_to_table(t, records=rows)

        for copy in (
            lambda: conn.copy_records_to_table(t, records=rows),  # sent while encoded
            in_a_transaction,
            lambda: conn.copy_to_table(t, source=csv, format="csv"),
        ):
            tap.log.clear()
            assert await copy() == "COPY 50000"
            kinds = [k for k, _ in tap.log]
            # The first data went out before the server's CopyInResponse
            # came back: the server had it as soon as the COPY began.
            assert kinds.index("Q") < kinds.index("d") < kinds.index("G>")
            sizes = [n for k, n in tap.log if k == "d"]
            # Messages the backend buffers below glibc's mmap threshold.
            assert len(sizes) > 10 and max(sizes) <= 65535
            last = len(kinds) - 1 - kinds[::-1].index("d")
            assert sum(sizes) > 1_000_000 and kinds[last + 1] == "c"  # CopyDone
        assert await conn.fetchval(f"SELECT count(*) FROM {t}") == 150_000
        # COPYs the server refuses before they begin: the data sent with the
        # statement is dropped by the server, and the connection goes on.
        await conn.execute("SET default_transaction_read_only = on")
        for refused, error in (
            (lambda: conn.copy_records_to_table(t, records=rows), exc.ReadOnlySQLTransactionError),
            (lambda: conn.copy_to_table(f"{t}_no", source=csv), exc.UndefinedTableError),
        ):
            tap.log.clear()
            with pytest.raises(error):
                await refused()
            kinds = [k for k, _ in tap.log]
            assert "d" in kinds and "G>" not in kinds
            assert await conn.fetchval("SELECT 'clean'") == "clean"
        await conn.execute("RESET default_transaction_read_only")
        assert await conn.fetchval(f"SELECT count(*) FROM {t}") == 150_000
        assert await conn.fetchval("SELECT 'clean'") == "clean"
    finally:
        await conn.close()
        await tap.close()


async def test_cancelled_copy_leaves_the_connection_clean(pg_server: Any) -> None:
    import io

    conn = await fastio.connect(pg_server.dsn)
    try:
        big = "SELECT g, repeat('x', 200) FROM generate_series(1, 2000000) g"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(conn.copy_from_query(big, output=io.BytesIO()), 0.2)
        assert await conn.fetchval("SELECT 'clean'") == "clean"
    finally:
        await conn.close()


async def test_timed_out_copy_records_changes_nothing_and_keeps_the_connection(
    pg_server: Any,
) -> None:
    t = table()
    conn = await fastio.connect(pg_server.dsn)
    try:
        await conn.execute(f"CREATE TABLE {t} (id int, pad text, score float8)")
        pad = "p" * 100
        rows = [(i, pad, 0.5) for i in range(500_000)]
        pid = conn.get_server_pid()
        for limit in (0.02, 0.1):
            # The COPY is cut off while its data is being sent: it ends with
            # CopyFail (a backend waiting for COPY data does not see a
            # CancelRequest), so the connection is back at once, unchanged.
            with pytest.raises(asyncio.TimeoutError):
                await conn.copy_records_to_table(t, records=rows, timeout=limit)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(conn.copy_records_to_table(t, records=rows), limit)
            assert await conn.fetchval(f"SELECT count(*) FROM {t}") == 0
        assert not conn.is_closed() and conn.get_server_pid() == pid
        assert await conn.copy_records_to_table(t, records=rows[:10]) == "COPY 10"
    finally:
        await conn.close()


# --------------------------------------------------- stale cached statements


async def test_cached_statement_is_re_prepared_after_a_schema_change(pg_server: Any) -> None:
    t = table()
    conn = await fastio.connect(pg_server.dsn)
    pool = await pool_for(pg_server, min_size=1, max_size=1)
    try:
        await conn.execute(f"CREATE TABLE {t} (id int, v text)")
        await conn.execute(f"INSERT INTO {t} VALUES (1, 'a')")
        query = f"SELECT * FROM {t} WHERE id = $1"
        for target in (conn, pool):
            assert tuple(await target.fetchrow(query, 1)) == (1, "a")
        await conn.execute(f"ALTER TABLE {t} ADD COLUMN extra int DEFAULT 7")
        # asyncpg re-prepares transparently outside a transaction; so do we.
        for target in (conn, pool):
            row = await target.fetchrow(query, 1)
            assert tuple(row) == (1, "a", 7) and row["extra"] == 7
        await conn.execute(f"ALTER TABLE {t} DROP COLUMN v")
        assert tuple(await conn.fetchrow(query, 1)) == (1, 7)
        await conn.execute(f"ALTER TABLE {t} ALTER COLUMN extra TYPE text")
        assert tuple(await conn.fetchrow(query, 1)) == (1, "7")
        await conn.executemany(f"INSERT INTO {t} SELECT $1, $2", [(2, "x")])
        await conn.execute(f"ALTER TABLE {t} ADD COLUMN more int")
        await conn.executemany(f"INSERT INTO {t} SELECT $1, $2", [(3, "y")])
        # Inside a transaction the error reaches the caller, as
        # InvalidCachedStatementError; the cache is cleared so the next try works.
        await conn.execute(f"ALTER TABLE {t} DROP COLUMN more")
        assert tuple(await conn.fetchrow(query, 1)) == (1, "7")
        await conn.execute(f"ALTER TABLE {t} ADD COLUMN last int")
        async with conn.transaction():
            with pytest.raises(exc.InvalidCachedStatementError):
                await conn.fetchrow(query, 1)
        assert tuple(await conn.fetchrow(query, 1)) == (1, "7", None)
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {t}")
        await conn.close()
        await pool.close()


# ------------------------------------------------ load, reaping, big batches


async def test_a_thousand_random_cancellations_leave_the_pool_healthy(pg_server: Any) -> None:
    import random

    rng = random.Random(1000)
    t = table()
    size = 6
    pool = await pool_for(pg_server, min_size=size, max_size=size)
    try:
        await pool.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
        await pool.executemany(
            f"INSERT INTO {t} VALUES ($1, $2)", [(i, str(i)) for i in range(500)]
        )
        outcomes = {"ok": 0, "timeout": 0}

        async def sleepy(i: int) -> None:
            value = await pool.fetchval(
                "SELECT $1::int FROM pg_sleep($2)", i, rng.choice([0, 0.001, 0.005, 0.02])
            )
            assert value == i  # never someone else's answer

        async def real(i: int) -> None:
            rows = await pool.fetch(f"SELECT id, v FROM {t} WHERE id % 7 = $1 ORDER BY id", i % 7)
            assert rows and all(r["id"] % 7 == i % 7 and r["v"] == str(r["id"]) for r in rows)

        async def acquired(i: int) -> None:
            async with pool.acquire() as conn:
                async with conn.transaction():
                    await conn.execute("SET LOCAL statement_timeout = 5000")
                    got = await conn.fetchval(f"SELECT v FROM {t} WHERE id = $1", i % 500)
                    assert got == str(i % 500)
                    await conn.fetchval("SELECT pg_sleep($1)", rng.choice([0, 0.002, 0.01]))

        async def many(i: int) -> None:
            await pool.executemany(
                f"UPDATE {t} SET v = v WHERE id = $1", [(j,) for j in range(i % 50, 500, 50)]
            )

        kinds = [sleepy, sleepy, real, acquired, many]

        async def one(i: int) -> None:
            job = rng.choice(kinds)(i)
            try:
                await asyncio.wait_for(job, rng.choice([0.0005, 0.002, 0.005, 0.01, 0.03, 2.0]))
                outcomes["ok"] += 1
            except asyncio.TimeoutError:
                outcomes["timeout"] += 1

        for start in range(0, 1000, 100):
            await asyncio.gather(*(one(i) for i in range(start, start + 100)))
        assert outcomes["ok"] + outcomes["timeout"] == 1000
        assert outcomes["ok"] > 50 and outcomes["timeout"] > 50, outcomes

        # Every connection: healthy, answering its own query, idle on the server.
        async with asyncio.timeout(30):
            conns = [await pool.acquire() for _ in range(size)]
            try:
                pids = {c.get_server_pid() for c in conns}
                assert len(pids) == size
                answers = await asyncio.gather(
                    *(c.fetchval("SELECT $1::int", i) for i, c in enumerate(conns))
                )
                assert answers == list(range(size))
                assert not any(c.is_in_transaction() for c in conns)
                watcher = conns[0]

                async def none_busy() -> bool:
                    busy = await watcher.fetchval(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE pid = ANY($1::int[]) AND pid <> pg_backend_pid() "
                        "AND state <> 'idle'",
                        list(pids),
                    )
                    return busy == 0

                await wait_until(none_busy)
            finally:
                for c in conns:
                    await pool.release(c)
        assert pool.get_size() == size
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {t}")
        await pool.close()


async def test_idle_connections_are_reaped_back_to_min_size(pg_server: Any) -> None:
    pool = await pool_for(pg_server, min_size=1, max_size=5, max_inactive_connection_lifetime=0.3)
    try:
        held = await asyncio.gather(*(run(pool.acquire()) for _ in range(5)))
        assert pool.get_size() == 5
        for conn in held:
            await pool.release(conn)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while pool.get_size() > 1:
            assert loop.time() < deadline, f"still {pool.get_size()} connections"
            await asyncio.sleep(0.05)
        assert pool.get_size() == pool.get_min_size() == 1
        await asyncio.sleep(0.8)  # never below min_size
        assert pool.get_size() == 1
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_executemany_with_a_huge_batch_is_complete_and_atomic(pg_server: Any) -> None:
    n = 200_000
    t = table()
    pool = await pool_for(pg_server, min_size=1, max_size=1)
    try:
        await pool.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, name text, score float8)")
        rows = [(i, f"name {i}", i * 0.5) for i in range(n)]
        await asyncio.wait_for(pool.executemany(f"INSERT INTO {t} VALUES ($1, $2, $3)", rows), 120)
        assert await pool.fetchval(f"SELECT count(*) FROM {t}") == n
        assert await pool.fetchval(f"SELECT sum(id)::int8 FROM {t}") == n * (n - 1) // 2
        # Requests and replies both far larger than the socket buffers (20 MB
        # each way; the returned rows are discarded, as asyncpg discards them):
        # the replies are read while the batch is still being sent. Written
        # all at once, this deadlocks.
        pad = "p" * 1000
        await asyncio.wait_for(
            pool.executemany(
                f"UPDATE {t} SET score = $2 WHERE id = $1 AND length($3) > 0 RETURNING $3",
                [(i, -7.0, pad) for i in range(0, n, 10)],
            ),
            60,
        )
        assert await pool.fetchval(f"SELECT count(*) FROM {t} WHERE score = -7.0") == n // 10
        # The last row of the next batch collides: nothing of it is kept.
        bad = [(n + i, "x", 0.0) for i in range(n - 1)] + [(0, "dup", 0.0)]
        with pytest.raises(exc.UniqueViolationError):
            await asyncio.wait_for(
                pool.executemany(f"INSERT INTO {t} VALUES ($1, $2, $3)", bad), 120
            )
        assert await pool.fetchval(f"SELECT count(*) FROM {t}") == n
        # An early failure too (in the first chunk), on a connection.
        async with pool.acquire() as conn:
            bad = [(n, "y", 0.0), (n, "y", 0.0)] + [(n + 1 + i, "y", 0.0) for i in range(5000)]
            with pytest.raises(exc.UniqueViolationError):
                await conn.executemany(f"INSERT INTO {t} VALUES ($1, $2, $3)", bad)
            assert await conn.fetchval(f"SELECT count(*) FROM {t}") == n
            # Inside a transaction, the batch is part of it.
            async with conn.transaction():
                await conn.executemany(
                    f"UPDATE {t} SET score = $2 WHERE id = $1", [(i, -1.0) for i in range(20_000)]
                )
                assert await conn.fetchval(f"SELECT count(*) FROM {t} WHERE score = -1") == 20_000
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {t}")
        await pool.close()


async def test_terminating_an_acquired_connection_frees_its_slot(pg_server: Any) -> None:
    pool = await pool_for(pg_server, min_size=1, max_size=1)
    try:
        conn = await pool.acquire()
        pid = conn.get_server_pid()
        conn.terminate()
        assert conn.is_closed()
        # The pool replaces it (its only slot is free again).
        assert await asyncio.wait_for(pool.fetchval("SELECT pg_backend_pid()"), 10) != pid
    finally:
        await pool.close()


# ---------------------------------------- replies read on the loop thread
# A query on one Connection is polled on the event-loop thread, and the loop
# itself watches the socket for the reply (no tokio worker in between, as
# asyncpg reads on the loop). A long result moves to tokio; anything else
# that wakes the query (its timeout, a cancellation) stops the watch first.


async def test_connection_replies_are_read_on_the_event_loop_thread(pg_server: Any) -> None:
    from fastio import _fastio

    conn = await fastio.connect(pg_server.dsn)
    others = [await fastio.connect(pg_server.dsn) for _ in range(4)]
    try:
        assert await conn.fetchval("SELECT 1") == 1
        done, _, watched = _fastio._loop_reads()
        for i in range(50):
            row = await conn.fetchrow("SELECT $1::int AS i, repeat('x', $1::int) AS s", i)
            assert row == (i, "x" * i)
        after, _, watching = _fastio._loop_reads()
        # Each query was written, waited for and read by the loop's thread.
        assert after - done == 50
        assert watching == watched

        # Several connections on one loop, each reading its own replies.
        async def worker(c: Any, k: int) -> list[int]:
            return [await c.fetchval("SELECT $1::int * 10", k * 100 + j) for j in range(30)]

        got = await asyncio.gather(*(worker(c, k) for k, c in enumerate(others)))
        assert got == [[(k * 100 + j) * 10 for j in range(30)] for k in range(4)]
        assert _fastio._loop_reads()[2] == watched
    finally:
        await conn.close()
        for c in others:
            await c.close()


async def test_long_results_timeouts_and_cancels_leave_the_loop_read(pg_server: Any) -> None:
    from fastio import _fastio

    conn = await fastio.connect(pg_server.dsn)
    # Sockets some loop watches now (one left by a loop closed mid-query
    # stays counted).
    watched = _fastio._loop_reads()[2]
    try:
        _, moves, _ = _fastio._loop_reads()
        rows = await conn.fetch("SELECT g, repeat('y', 100) AS s FROM generate_series(1, 50000) g")
        assert [r[0] for r in rows] == list(range(1, 50001))
        assert rows[-1]["s"] == "y" * 100
        assert _fastio._loop_reads()[1] > moves
        # Woken by its timer while the loop watches for the reply.
        with pytest.raises(fastio.TimeoutError):
            await conn.fetchval("SELECT pg_sleep(60)", timeout=0.2)
        assert _fastio._loop_reads()[2] == watched
        assert await conn.fetchval("SELECT 'after timeout'") == "after timeout"
        # Cancelled while the loop watches for the reply.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(conn.fetchval("SELECT pg_sleep(60)"), 0.2)
        assert _fastio._loop_reads()[2] == watched
        assert await conn.fetchval("SELECT 'after cancel'") == "after cancel"
    finally:
        await conn.close()
    # Sockets closed and their descriptors reused, some mid-query.
    for i in range(20):
        c = await fastio.connect(pg_server.dsn)
        if i % 3 == 0:
            task = asyncio.ensure_future(c.fetchval("SELECT pg_sleep(60)"))
            await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await c.fetchval("SELECT $1::int", i) == i
        await c.close()
    assert _fastio._loop_reads()[2] == watched


async def test_replies_over_tls_are_read_on_the_event_loop_thread() -> None:
    # The loop reads the TCP socket under rustls: records split across
    # reads, a long result, a timeout and a cancellation.
    from fastio import _fastio
    from harness import TlsPostgresServer

    server = TlsPostgresServer()
    server.start()
    try:
        conn = await fastio.connect(server.dsn + "?sslmode=require")
        watched = _fastio._loop_reads()[2]
        try:
            assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            done, moves, _ = _fastio._loop_reads()
            for i in range(0, 50_000, 1_000):
                assert await conn.fetchval("SELECT repeat('z', $1::int)", i) == "z" * i
            assert _fastio._loop_reads()[0] - done == 50
            rows = await conn.fetch("SELECT g, md5(g::text) AS h FROM generate_series(1, 30000) g")
            assert [r[0] for r in rows] == list(range(1, 30001))
            assert _fastio._loop_reads()[1] > moves
            with pytest.raises(fastio.TimeoutError):
                await conn.fetchval("SELECT pg_sleep(60)", timeout=0.2)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(conn.fetchval("SELECT pg_sleep(60)"), 0.2)
            assert _fastio._loop_reads()[2] == watched
            assert await conn.fetchval("SELECT 'after'") == "after"
        finally:
            await conn.close()
    finally:
        server.close()


# ------------------------------------------- large results, made in pieces
# A large `fetch` is turned into Records on the event-loop thread a few
# thousand rows at a time while the rest is still arriving; these check the
# result is the same as when it is made at once, whatever happens midway.

BIG = 60_000
BIG_QUERY = (
    "SELECT g AS id, 'user ' || g AS name, CASE WHEN g % 7 = 0 THEN NULL ELSE g * 0.5 END"
    " AS score, timestamptz '2020-01-01 00:00+00' + g * interval '1 minute' AS at,"
    " json_build_object('g', g) AS doc FROM generate_series(1, $1::int) g"
)


async def test_large_results_equal_asyncpg_row_by_row(pg_server: Any) -> None:
    import json

    import fastio.pg

    reference = await asyncpg.connect(pg_server.dsn)
    pool = await pool_for(pg_server, min_size=1, max_size=2)
    conn = await fastio.connect(pg_server.dsn)
    compat = await fastio.pg.connect(pg_server.dsn)
    try:
        expected = [tuple(r) for r in await reference.fetch(BIG_QUERY, BIG)]
        assert len(expected) == BIG
        # asyncpg and fastio.pg return json as text; the native API decodes it.
        native = [(*r[:4], json.loads(r[4])) for r in expected]
        for target, want in ((pool, native), (conn, native), (compat, expected)):
            rows = await target.fetch(BIG_QUERY, BIG)
            assert len(rows) == BIG
            assert [tuple(r) for r in rows] == want
            assert (
                list(rows[0].keys())
                == list(rows[-1].keys())
                == ["id", "name", "score", "at", "doc"]
            )
        # Sizes around the piece boundaries.
        for n in (4095, 4096, 4097, 8192, 8193):
            rows = await pool.fetch("SELECT g FROM generate_series(1, $1::int) g", n)
            assert [r[0] for r in rows] == list(range(1, n + 1))
    finally:
        await reference.close()
        await conn.close()
        await compat.close()
        await pool.close()


async def test_an_error_after_many_rows_raises_and_returns_nothing(pg_server: Any) -> None:
    pool = await pool_for(pg_server, min_size=1, max_size=1)
    conn = await fastio.connect(pg_server.dsn)
    query = "SELECT g, 1 / (50000 - g) AS x FROM generate_series(1, $1::int) g"
    try:
        for target in (pool, conn):
            with pytest.raises(exc.DivisionByZeroError):
                await target.fetch(query, BIG)
            # The same connection answers the next query with its own rows only.
            rows = await target.fetch("SELECT g FROM generate_series(1, $1::int) g", BIG)
            assert [r[0] for r in rows] == list(range(1, BIG + 1))
    finally:
        await conn.close()
        await pool.close()


async def test_a_decoder_error_in_a_late_row_raises_and_returns_nothing(pg_server: Any) -> None:
    import fastio.pg

    class Boom(Exception):
        pass

    def decoder(text: str) -> str:
        if text == "50000":
            raise Boom(text)
        return "N" + text

    conn = await fastio.pg.connect(pg_server.dsn)
    try:
        await conn.set_type_codec("numeric", schema="pg_catalog", encoder=str, decoder=decoder)
        with pytest.raises(Boom):
            await conn.fetch("SELECT g::numeric FROM generate_series(1, $1::int) g", BIG)
        rows = await conn.fetch("SELECT g::numeric FROM generate_series(1, 20000) g")
        assert [r[0] for r in rows] == [f"N{g}" for g in range(1, 20001)]
    finally:
        await conn.close()


async def test_record_class_and_type_codecs_apply_to_every_row_of_a_large_result(
    pg_server: Any,
) -> None:
    import fastio.pg

    class Row(fastio.Record):  # type: ignore[misc]
        def twice(self) -> int:
            return int(self["id"]) * 2

    query = "SELECT g AS id, (g * 1.5)::numeric AS n FROM generate_series(1, $1::int) g"
    conn = await fastio.pg.connect(pg_server.dsn)
    pool = await pool_for(pg_server, min_size=1, max_size=1)
    try:
        await conn.set_type_codec(
            "numeric", schema="pg_catalog", encoder=str, decoder=lambda s: "N" + s
        )
        rows = await conn.fetch(query, BIG, record_class=Row)
        assert all(type(r) is Row for r in rows)
        assert [(r.twice(), r["n"]) for r in rows] == [
            (2 * g, "N" + str(decimal.Decimal(g) * decimal.Decimal("1.5")))
            for g in range(1, BIG + 1)
        ]
        rows = await pool.fetch(query, BIG, record_class=Row)
        assert all(type(r) is Row for r in rows)
        assert [r["n"] for r in rows] == [
            decimal.Decimal(g) * decimal.Decimal("1.5") for g in range(1, BIG + 1)
        ]
    finally:
        await conn.close()
        await pool.close()


async def test_timeouts_and_cancellations_midway_through_a_large_result(pg_server: Any) -> None:
    # Rows 1..49,999 arrive, then the server sleeps: the query is stopped
    # halfway through its result.
    stalls = (
        "SELECT g, 'row ' || g AS s FROM generate_series(1, $1::int) g"
        " WHERE g <> 50000 OR pg_sleep(60) IS NOT NULL"
    )
    pool = await pool_for(pg_server, min_size=3, max_size=3)
    try:
        with pytest.raises(fastio.TimeoutError):
            await pool.fetch(stalls, BIG, timeout=0.5)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.fetch(stalls, BIG), 0.5)
        task = asyncio.create_task(run(pool.fetch(stalls, BIG)))
        await wait_until(lambda: _stalled(pool))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with pool.acquire() as conn:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(conn.fetch(stalls, BIG), 0.5)
            assert await conn.fetchval("SELECT 'after'") == "after"
        await wait_until(lambda: _no_stall(pool))
        # Every connection of the pool is clean: each answers its own query.
        checks = [
            pool.fetch("SELECT g FROM generate_series(1, $1::int) g", 9000 + i) for i in range(9)
        ]
        for i, rows in enumerate(await asyncio.gather(*checks)):
            assert [r[0] for r in rows] == list(range(1, 9001 + i))
    finally:
        await pool.close()


async def _stalled(pool: fastio.Pool) -> bool:
    return await _stall_count(pool) > 0


async def _no_stall(pool: fastio.Pool) -> bool:
    return await _stall_count(pool) == 0


async def _stall_count(pool: fastio.Pool) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
            " AND pid <> pg_backend_pid() AND query LIKE '%OR pg_sleep(60) IS NOT NULL'"
        )
    )


async def test_retry_after_a_connection_killed_midway_does_not_duplicate_rows(
    pg_server: Any,
) -> None:
    t = table()
    setup = await fastio.connect(pg_server.dsn)
    await setup.execute(
        f"CREATE SEQUENCE {t}_once;"
        f"CREATE FUNCTION {t}_kill(g int) RETURNS int LANGUAGE plpgsql AS $$"
        f" BEGIN IF g = 50000 AND nextval('{t}_once') = 1 THEN"
        "   PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(10);"
        " END IF; RETURN g; END $$"
    )
    retry = fastio.Retry(attempts=5, backoff=0.01)
    pool = await pool_for(pg_server, min_size=1, max_size=1, retry=retry)
    try:
        # The first attempt's backend dies after sending 49,999 rows; the
        # retry's rows are the whole result, each once.
        rows = await pool.fetch(
            f"SELECT g, {t}_kill(g) AS k FROM generate_series(1, $1::int) g", BIG
        )
        assert [tuple(r) for r in rows] == [(g, g) for g in range(1, BIG + 1)]
        assert await setup.fetchval(f"SELECT last_value FROM {t}_once") == 2
    finally:
        await pool.close()
        await setup.execute(f"DROP FUNCTION {t}_kill(int); DROP SEQUENCE {t}_once")
        await setup.close()
