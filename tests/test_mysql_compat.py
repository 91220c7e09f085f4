# ruff: noqa: E501  (the documents' code is kept verbatim)
"""fastio.mysql as a drop-in for aiomysql, against the harness's MariaDB.

The documents' MySQL code (shared/seeds) runs with only `import aiomysql`
changed, side by side with aiomysql itself; then every cursor class and
method, the parameter styles, executemany batching, transactions and dirty
release, PyMySQL's errnos and classes, pool sizing and timeouts, and
cancellation under load."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import os
import textwrap
import types
import uuid
from collections.abc import Iterator
from typing import Any

import aiomysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastio
import fastio.mysql

# The documents' MySQL code, verbatim but for indentation (the seed text lost it).
DOC_POOL = textwrap.dedent(
    '''
    import asyncio
    import asyncpg
    import aiomysql
    from typing import List, Dict, Any

    class AsyncDatabasePool:
        def __init__(self, pool_size: int = 10):
            self.pool_size = pool_size
            self.pool = None
            self.connection_type = None

        async def init_postgres_pool(self, connection_string: str):
            """初始化PostgreSQL连接池"""
            self.connection_type = "postgres"
            self.pool = await asyncpg.create_pool(
                connection_string,
                min_size=5,
                max_size=self.pool_size,
                command_timeout=60
            )

        async def init_mysql_pool(self, host: str, user: str, password: str,
                                  database: str, port: int = 3306):
            """初始化MySQL连接池"""
            self.connection_type = "mysql"
            self.pool = await aiomysql.create_pool(
                host=host,
                port=port,
                user=user,
                password=password,
                db=database,
                minsize=5,
                maxsize=self.pool_size
            )

        async def execute_query(self, query: str, params: tuple = None) -> List[Dict[str, Any]]:
            """执行查询操作"""
            if self.connection_type == "postgres":
                async with self.pool.acquire() as connection:
                    result = await connection.fetch(query, *params) if params else await connection.fetch(query)
                    return [dict(row) for row in result]
            elif self.connection_type == "mysql":
                async with self.pool.acquire() as connection:
                    async with connection.cursor(aiomysql.DictCursor) as cursor:
                        await cursor.execute(query, params)
                        result = await cursor.fetchall()
                        return result

        async def execute_update(self, query: str, params: tuple = None) -> int:
            """执行更新操作"""
            if self.connection_type == "postgres":
                async with self.pool.acquire() as connection:
                    result = await connection.execute(query, *params) if params else await connection.execute(query)
                    return result
            elif self.connection_type == "mysql":
                async with self.pool.acquire() as connection:
                    async with connection.cursor() as cursor:
                        await cursor.execute(query, params)
                        return cursor.rowcount
    '''
)

DOC_EXAMPLE = textwrap.dedent(
    '''
    import asyncio
    import aiomysql
    import asyncpg
    import time

    # 异步MySQL操作示例
    async def async_mysql_example():
        try:
            # 建立连接池
            pool = await aiomysql.create_pool(
                host='localhost',
                port=3306,
                user='root',
                password='password',
                db='test_db',
                autocommit=True
            )

            async with pool.acquire() as conn:
                async with conn.cursor() as cursor:
                    # 创建表
                    await cursor.execute("""
                        CREATE TABLE IF NOT EXISTS users (
                            id INT AUTO_INCREMENT PRIMARY KEY,
                            name VARCHAR(100),
                            email VARCHAR(100)
                        )
                    """)

                    # 插入数据
                    await cursor.executemany(
                        "INSERT INTO users (name, email) VALUES (%s, %s)",
                        [('Alice', 'alice@example.com'),
                         ('Bob', 'bob@example.com')]
                    )

                    # 查询数据
                    await cursor.execute("SELECT * FROM users")
                    rows = await cursor.fetchall()
                    for row in rows:
                        print(row)

        except Exception as e:
            print(f"MySQL错误: {e}")
        finally:
            pool.close()
            await pool.wait_closed()
    '''
)


def load(code: str, driver: str, **subs: str) -> types.SimpleNamespace:
    """A document's module importing aiomysql or (import changed) fastio.mysql."""
    if driver == "fastio":
        code = code.replace("import aiomysql\n", "import fastio.mysql as aiomysql\n")
    for old, new in subs.items():
        code = code.replace(old, new)
    namespace: dict[str, Any] = {}
    exec(compile(code, f"<documents:{driver}>", "exec"), namespace)
    return types.SimpleNamespace(**namespace)


def kw(server: Any, **extra: Any) -> dict[str, Any]:
    """aiomysql's connection keywords for the harness server."""
    return dict(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        db=server.database,
        **extra,
    )


def table() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


DRIVERS = {"aiomysql": aiomysql, "fastio": fastio.mysql}


# ------------------------------------------------------------ the documents


async def test_document_pool_class_runs_unchanged(mysql_server: Any) -> None:
    results = {}
    for driver in ("aiomysql", "fastio"):
        t = table()
        db = load(DOC_POOL, driver).AsyncDatabasePool(pool_size=6)
        await db.init_mysql_pool(
            mysql_server.host,
            mysql_server.user,
            mysql_server.password,
            mysql_server.database,
            port=mysql_server.port,
        )
        try:
            run = [
                await db.execute_update(f"CREATE TABLE {t} (id int primary key, age int)"),
                await db.execute_update(f"INSERT INTO {t} VALUES (%s, %s)", (1, 30)),
                # autocommit is off (aiomysql's default) and the document never
                # commits: the pool drops the open transaction on release.
                await db.execute_query(f"SELECT count(*) AS n FROM {t}"),
                await db.execute_update(f"INSERT INTO {t} VALUES (2, 12)"),
                await db.execute_query("SELECT %s AS a, %s AS b", (1, "x")),
                await db.execute_query(f"SELECT count(*) AS n FROM {t} WHERE age > %s", (18,)),
            ]
            assert db.pool.size >= 5
        finally:
            db.pool.close()
            await db.pool.wait_closed()
        results[driver] = run
    assert results["fastio"] == results["aiomysql"]
    assert results["fastio"] == [0, 1, [{"n": 0}], 1, [{"a": 1, "b": "x"}], [{"n": 0}]]


async def test_document_mysql_example_runs_unchanged(
    mysql_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = {}
    for driver in ("aiomysql", "fastio"):
        t = table()
        mod = load(
            DOC_EXAMPLE,
            driver,
            **{
                "host='localhost'": f"host={mysql_server.host!r}",
                "port=3306": f"port={mysql_server.port}",
                "user='root'": f"user={mysql_server.user!r}",
                "password='password'": f"password={mysql_server.password!r}",
                "db='test_db'": f"db={mysql_server.database!r}",
                "users": t,
            },
        )
        await mod.async_mysql_example()
        printed[driver] = capsys.readouterr().out
    assert printed["fastio"] == printed["aiomysql"]
    assert printed["fastio"].splitlines() == [
        "(1, 'Alice', 'alice@example.com')",
        "(2, 'Bob', 'bob@example.com')",
    ]


# ---------------------------------------------------------- connect, basics


async def test_connect_attributes_and_server_info(mysql_server: Any) -> None:
    async with fastio.mysql.connect(**kw(mysql_server)) as conn:
        assert isinstance(conn, fastio.mysql.Connection)
        assert (conn.host, conn.port, conn.user, conn.db) == (
            mysql_server.host,
            mysql_server.port,
            mysql_server.user,
            mysql_server.database,
        )
        assert not conn.closed
        assert conn.get_autocommit() is False
        async with conn.cursor() as cur:
            await cur.execute("SELECT CONNECTION_ID(), VERSION(), DATABASE(), @@autocommit")
            pid, version, db, autocommit = await cur.fetchone()
        assert conn.thread_id() == pid
        assert (db, autocommit) == (mysql_server.database, 0)
        await conn.ping()
        async with aiomysql.connect(**kw(mysql_server)) as peer:
            # the handshake's version string (MariaDB's has a '5.5.5-' prefix)
            assert conn.get_server_info() == peer.get_server_info()
            assert version in conn.get_server_info()
    assert conn.closed
    with pytest.raises(fastio.mysql.InterfaceError):
        await conn.cursor()


async def test_connect_is_awaitable_and_close_is_sync(mysql_server: Any) -> None:
    conn = await fastio.mysql.connect(**kw(mysql_server, autocommit=True))
    assert conn.get_autocommit() is True
    cur = await conn.cursor()
    assert await cur.execute("SELECT @@autocommit") == 1
    assert await cur.fetchone() == (1,)
    conn.close()  # not a coroutine, as in aiomysql
    assert conn.closed
    with pytest.raises(fastio.mysql.InterfaceError):
        await cur.execute("SELECT 1")
    await conn.ensure_closed()  # no-op once closed
    conn2 = await fastio.mysql.connect(**kw(mysql_server))
    await conn2.ensure_closed()
    assert conn2.closed


async def test_init_command_charset_and_sql_mode(mysql_server: Any) -> None:
    async with fastio.mysql.connect(
        **kw(mysql_server),
        init_command="SET @fastio_marker = 42",
        charset="utf8mb4",
        sql_mode="'ANSI_QUOTES'",
    ) as conn:
        async with conn.cursor() as cur:
            await cur.execute("SELECT @fastio_marker, @@character_set_client, @@sql_mode")
            assert await cur.fetchone() == (42, "utf8mb4", "ANSI_QUOTES")


async def test_select_db_ping_and_reconnect(mysql_server: Any) -> None:
    conn = await fastio.mysql.connect(**kw(mysql_server, autocommit=True))
    try:
        await conn.select_db("information_schema")
        assert conn.db == "information_schema"
        cur = await conn.cursor()
        await cur.execute("SELECT DATABASE()")
        assert await cur.fetchone() == ("information_schema",)
        old = conn.thread_id()
        conn.close()
        with pytest.raises(fastio.mysql.Error):
            await conn.ping(reconnect=False)
        await conn.ping()  # reconnects
        assert not conn.closed and conn.thread_id() != old
        cur = await conn.cursor()
        await cur.execute("SELECT DATABASE()")
        assert await cur.fetchone() == (mysql_server.database,)
    finally:
        conn.close()


# ------------------------------------------------------------------- cursors

ROWS = [(i, f"name {i}", i * 1.5) for i in range(1, 8)]


async def make_rows(conn: Any, t: str) -> None:
    async with conn.cursor() as cur:
        await cur.execute(f"CREATE TABLE {t} (id int primary key, name varchar(50), score double)")
        await cur.executemany(f"INSERT INTO {t} VALUES (%s, %s, %s)", ROWS)
    await conn.commit()


async def test_cursor_fetch_methods_scroll_and_iteration(mysql_server: Any) -> None:
    t = table()
    async with fastio.mysql.connect(**kw(mysql_server)) as conn:
        await make_rows(conn, t)
        cur = await conn.cursor()
        with pytest.raises(fastio.mysql.ProgrammingError, match="execute"):
            await cur.fetchone()
        assert cur.rowcount == -1 and cur.description is None
        assert await cur.execute(f"SELECT * FROM {t} ORDER BY id") == 7
        assert cur.rowcount == 7 and cur.lastrowid is None
        assert [d[0] for d in cur.description] == ["id", "name", "score"]
        assert await cur.fetchone() == ROWS[0]
        assert cur.rownumber == 1
        assert await cur.fetchmany() == (ROWS[1],)  # arraysize 1
        cur.arraysize = 2
        assert await cur.fetchmany() == tuple(ROWS[2:4])
        assert await cur.fetchmany(10) == tuple(ROWS[4:])
        assert await cur.fetchone() is None
        assert await cur.fetchmany() == ()
        await cur.scroll(0, mode="absolute")
        assert await cur.fetchone() == ROWS[0]
        await cur.scroll(2)
        assert await cur.fetchone() == ROWS[3]
        await cur.scroll(-2)
        assert cur.rownumber == 2
        with pytest.raises(IndexError):
            await cur.scroll(100)
        with pytest.raises(fastio.mysql.ProgrammingError):
            await cur.scroll(1, mode="sideways")
        assert await cur.fetchall() == tuple(ROWS[2:])
        assert await cur.fetchall() == ()
        await cur.execute(f"SELECT * FROM {t} ORDER BY id")
        assert [r async for r in cur] == ROWS
        await cur.close()
        assert cur.closed
        with pytest.raises(fastio.mysql.ProgrammingError, match="closed"):
            await cur.execute("SELECT 1")


async def test_dict_cursor(mysql_server: Any) -> None:
    t = table()
    async with fastio.mysql.connect(**kw(mysql_server)) as conn:
        await make_rows(conn, t)
        async with conn.cursor(fastio.mysql.DictCursor) as cur:
            await cur.execute(f"SELECT id, name FROM {t} WHERE id <= %s ORDER BY id", (2,))
            assert await cur.fetchall() == [
                {"id": 1, "name": "name 1"},
                {"id": 2, "name": "name 2"},
            ]
            await cur.execute(f"SELECT id FROM {t} WHERE id = 3")
            assert await cur.fetchone() == {"id": 3}
            assert await cur.fetchone() is None
        # a connection-wide default cursor class
    async with fastio.mysql.connect(
        **kw(mysql_server), cursorclass=fastio.mysql.DictCursor
    ) as conn:
        cur = await conn.cursor()
        await cur.execute("SELECT 1 AS one")
        assert await cur.fetchall() == [{"one": 1}]


async def test_ss_cursors_are_forward_only(mysql_server: Any) -> None:
    t = table()
    async with fastio.mysql.connect(**kw(mysql_server)) as conn:
        await make_rows(conn, t)
        async with conn.cursor(fastio.mysql.SSCursor) as cur:
            await cur.execute(f"SELECT * FROM {t} ORDER BY id")
            assert cur.rowcount == 2**64 - 1  # unknown, as aiomysql/MySQLdb say
            assert await cur.fetchone() == ROWS[0]
            assert await cur.fetchmany(2) == ROWS[1:3]
            await cur.scroll(1)
            assert await cur.fetchone() == ROWS[4]
            with pytest.raises(fastio.mysql.NotSupportedError):
                await cur.scroll(-1)
            with pytest.raises(fastio.mysql.NotSupportedError):
                await cur.scroll(0, mode="absolute")
            assert await cur.fetchall() == ROWS[5:]
            assert await cur.fetchall() == []
            await cur.execute(f"UPDATE {t} SET score = score + 1 WHERE id < 3")
            assert cur.rowcount == 2
        async with conn.cursor(fastio.mysql.SSDictCursor) as cur:
            await cur.execute(f"SELECT id FROM {t} ORDER BY id LIMIT 3")
            assert [r async for r in cur] == [{"id": 1}, {"id": 2}, {"id": 3}]
        await conn.rollback()


async def test_description_matches_aiomysql(mysql_server: Any) -> None:
    t = table()
    ddl = (
        f"CREATE TABLE {t} (i int NOT NULL, b bigint, f double, d decimal(10,2),"
        " s varchar(20), tx text, bl blob, dt datetime, da date, tm time, j json)"
    )
    descriptions = {}
    for name, driver in DRIVERS.items():
        async with driver.connect(**kw(mysql_server, autocommit=True)) as conn:
            async with conn.cursor() as cur:
                if name == "aiomysql":
                    await cur.execute(ddl)
                    await cur.execute(f"INSERT INTO {t} (i) VALUES (1)")
                await cur.execute(f"SELECT * FROM {t}")
                assert cur.rowcount == 1
                descriptions[name] = cur.description
    fast, peer = descriptions["fastio"], descriptions["aiomysql"]
    assert [(d[0], d[1]) for d in fast] == [(d[0], d[1]) for d in peer]
    assert all(len(d) == 7 for d in fast)
    assert fast[0][6] in (False, 0) and fast[1][6] in (True, 1)  # null_ok


# -------------------------------------------------------------- parameters


async def test_placeholders_positional_named_percent_and_in_lists(mysql_server: Any) -> None:
    t = table()
    async with fastio.mysql.connect(**kw(mysql_server)) as conn:
        await make_rows(conn, t)
        cur = await conn.cursor()
        await cur.execute(f"SELECT id FROM {t} WHERE id IN %s ORDER BY id", ([2, 4, 6],))
        assert await cur.fetchall() == ((2,), (4,), (6,))
        await cur.execute(
            f"SELECT id FROM {t} WHERE id IN %(ids)s AND name LIKE %(pat)s",
            {"ids": (1, 2, 3), "pat": "name 2%"},
        )
        assert await cur.fetchall() == ((2,),)
        await cur.execute(f"SELECT count(*) FROM {t} WHERE id IN %s", ([],))
        assert await cur.fetchall() == ((0,),)
        # '%%' is '%' when arguments are given; the query goes as written without.
        await cur.execute("SELECT '100%%', %s", ("x",))
        assert await cur.fetchone() == ("100%", "x")
        await cur.execute("SELECT '100%%'")
        assert await cur.fetchone() == ("100%%",)
        await cur.execute("SELECT %s", 7)  # a single non-sequence argument
        assert await cur.fetchone() == (7,)
        # values are bound, never spliced: an injection attempt is just a string
        evil = "x' OR '1'='1"
        await cur.execute(f"SELECT count(*) FROM {t} WHERE name = %s", (evil,))
        assert await cur.fetchone() == (0,)
        with pytest.raises(TypeError, match="not enough arguments"):
            await cur.execute("SELECT %s, %s", (1,))
        with pytest.raises(TypeError, match="not all arguments converted"):
            await cur.execute("SELECT %s", (1, 2))
        with pytest.raises(KeyError):
            await cur.execute("SELECT %(a)s", {"b": 1})


async def test_mogrify_renders_like_aiomysql(mysql_server: Any) -> None:
    args = (
        'it\'s \\ "q"\n',
        None,
        1.5,
        10,
        True,
        decimal.Decimal("1.10"),
        datetime.datetime(2024, 1, 2, 3, 4, 5, 6),
        datetime.date(2024, 2, 29),
        datetime.timedelta(hours=-1, seconds=1),
    )
    query = "SELECT " + ", ".join(["%s"] * len(args))
    out = {}
    for name, driver in DRIVERS.items():
        async with driver.connect(**kw(mysql_server)) as conn:
            cur = await conn.cursor()
            out[name] = (
                cur.mogrify(query, args),
                cur.mogrify("SELECT %(a)s, '%%'", {"a": "v"}),
                cur.mogrify("SELECT '%%'"),
            )
    assert out["fastio"] == out["aiomysql"]
    async with fastio.mysql.connect(**kw(mysql_server)) as conn:
        cur = await conn.cursor()
        assert cur.mogrify("SELECT %s", ([1, "a"],)) == "SELECT (1,'a')"
        assert cur.mogrify("SELECT %s", (b"\x00a",)) == "SELECT _binary X'0061'"


async def com_counter(cur: Any, name: str) -> int:
    # (SHOW STATUS LIKE %s cannot take a bound parameter: MySQL's grammar)
    await cur.execute(
        "SELECT variable_value FROM information_schema.session_status WHERE variable_name = %s",
        (name,),
    )
    return int((await cur.fetchone())[0])


async def test_executemany_batches_inserts_into_one_statement(mysql_server: Any) -> None:
    t = table()
    async with fastio.mysql.connect(**kw(mysql_server, autocommit=True)) as conn:
        cur = await conn.cursor()
        await cur.execute(f"CREATE TABLE {t} (id int auto_increment primary key, a int, b text)")
        rows = [(i, f"v{i}") for i in range(1000)]
        before = await com_counter(cur, "Com_insert")
        assert await cur.executemany(f"INSERT INTO {t} (a, b) VALUES (%s, %s)", rows) == 1000
        assert cur.rowcount == 1000
        assert cur.lastrowid == 1  # the first id of the batch, as MySQL reports it
        assert await com_counter(cur, "Com_insert") - before == 1
        # named placeholders and ON DUPLICATE KEY UPDATE ride along
        before = await com_counter(cur, "Com_insert")
        await cur.executemany(
            f"insert into {t} (id, a, b) values (%(id)s, %(a)s, %(b)s)"
            " ON DUPLICATE KEY UPDATE b = VALUES(b)",
            [{"id": 1, "a": 0, "b": "new"}, {"id": 5000, "a": 5, "b": "five"}],
        )
        assert await com_counter(cur, "Com_insert") - before == 1
        await cur.execute(f"SELECT b FROM {t} WHERE id IN %s ORDER BY id", ([1, 5000],))
        assert await cur.fetchall() == (("new",), ("five",))
        # anything else runs once per row, rowcounts summed
        before = await com_counter(cur, "Com_update")
        n = await cur.executemany(f"UPDATE {t} SET b = 'u' WHERE a = %s", [(1,), (2,), (3,)])
        assert n == 3
        assert await com_counter(cur, "Com_update") - before == 3
        assert await cur.executemany(f"UPDATE {t} SET a = 0 WHERE a = %s", []) is None


async def test_executemany_splits_past_the_parameter_limit(mysql_server: Any) -> None:
    t = table()
    async with fastio.mysql.connect(**kw(mysql_server, autocommit=True)) as conn:
        cur = await conn.cursor()
        await cur.execute(f"CREATE TABLE {t} (a int, b int, c int)")
        rows = [(i, i, i) for i in range(30_000)]  # 90,000 parameters > 65,535
        assert await cur.executemany(f"INSERT INTO {t} VALUES (%s, %s, %s)", rows) == 30_000
        await cur.execute(f"SELECT count(*), sum(a) FROM {t}")
        assert await cur.fetchone() == (30_000, decimal.Decimal(sum(range(30_000))))


async def test_lastrowid_rowcount_and_insert_id_match_aiomysql(mysql_server: Any) -> None:
    out = {}
    for name, driver in DRIVERS.items():
        t = table()
        async with driver.connect(**kw(mysql_server, autocommit=True)) as conn:
            cur = await conn.cursor()
            seen: list[Any] = []
            await cur.execute(f"CREATE TABLE {t} (id int auto_increment primary key, v int)")
            seen.append((cur.rowcount, cur.lastrowid))
            await cur.execute(f"INSERT INTO {t} (v) VALUES (%s)", (10,))
            seen.append((cur.rowcount, cur.lastrowid, conn.insert_id()))
            await cur.execute(f"INSERT INTO {t} (v) VALUES (1), (2), (3)")
            seen.append((cur.rowcount, cur.lastrowid, conn.insert_id()))
            await cur.execute(f"UPDATE {t} SET v = v + 1 WHERE v < %s", (3,))
            seen.append((cur.rowcount, cur.lastrowid))
            await cur.execute(f"DELETE FROM {t} WHERE v > 100")
            seen.append((cur.rowcount, cur.lastrowid))
            await cur.execute(f"SELECT * FROM {t}")
            seen.append((cur.rowcount, cur.lastrowid))
            out[name] = seen
    assert out["fastio"] == out["aiomysql"]
    assert out["fastio"][1] == (1, 1, 1)
    assert out["fastio"][2] == (3, 2, 2)


async def test_update_rowcount_counts_changed_rows_like_aiomysql(mysql_server: Any) -> None:
    out = {}
    for name, driver in DRIVERS.items():
        t = table()
        async with driver.connect(**kw(mysql_server, autocommit=True)) as conn:
            cur = await conn.cursor()
            await cur.execute(f"CREATE TABLE {t} (id int primary key, v int)")
            await cur.execute(f"INSERT INTO {t} VALUES (1, 5), (2, 6)")
            out[name] = await cur.execute(f"UPDATE {t} SET v = 5")
    assert out == {"aiomysql": 1, "fastio": 1}


# ------------------------------------------------------------------- types


TYPES_DDL = (
    "(ti tinyint, si smallint, mi mediumint, i int, bi bigint, ubi bigint unsigned,"
    " f float, d double, dec_ decimal(20,6), s varchar(50), c char(3), tx text,"
    " bl blob, vb varbinary(10), da date, dt datetime, dt6 datetime(6), ts timestamp NULL,"
    " tm time, tm6 time(6), y year, j json, e enum('a','b'), st set('x','y'), bit_ bit(8),"
    " n int)"
)
TYPES_ROW = (
    -5,
    300,
    70000,
    -(2**31),
    2**63 - 1,
    2**64 - 1,
    1.5,
    2.25,
    decimal.Decimal("12345.678901"),
    "héllo ✓",
    "abc",
    "long text",
    b"\x00\x01\xff",
    b"vb",
    datetime.date(2024, 2, 29),
    datetime.datetime(2024, 1, 2, 3, 4, 5),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
    datetime.datetime(2020, 5, 6, 7, 8, 9),
    datetime.timedelta(hours=-30, minutes=-5),
    datetime.timedelta(hours=1, microseconds=5),
    2024,
    '{"a": [1, 2]}',
    "b",
    "x,y",
    b"\x05",
    None,
)


async def test_types_match_aiomysql(mysql_server: Any) -> None:
    t = table()
    ph = ", ".join(["%s"] * len(TYPES_ROW))
    async with aiomysql.connect(**kw(mysql_server, autocommit=True)) as conn:
        async with conn.cursor() as cur:
            await cur.execute(f"CREATE TABLE {t} {TYPES_DDL}")
            # aiomysql (with PyMySQL 1.2) cannot bind bytes: insert those as hex literals
            row = ["X'" + v.hex() + "'" if isinstance(v, bytes) else "%s" for v in TYPES_ROW]
            await cur.execute(
                f"INSERT INTO {t} VALUES ({', '.join(row)})",
                tuple(v for v in TYPES_ROW if not isinstance(v, bytes)),
            )
    got = {}
    for name, driver in DRIVERS.items():
        async with driver.connect(**kw(mysql_server)) as conn:
            for cls in (driver.Cursor, driver.DictCursor):
                async with conn.cursor(cls) as cur:
                    await cur.execute(f"SELECT * FROM {t}")
                    got[(name, cls.__name__)] = await cur.fetchall()
    for cls in ("Cursor", "DictCursor"):
        fast, peer = got[("fastio", cls)], got[("aiomysql", cls)]
        assert fast == peer
        assert [type(v) for v in (fast[0] if cls == "Cursor" else fast[0].values())] == [
            type(v) for v in (peer[0] if cls == "Cursor" else peer[0].values())
        ]
    # and fastio binds every one of them as a parameter
    async with fastio.mysql.connect(**kw(mysql_server)) as conn:
        cur = await conn.cursor()
        await cur.execute(f"INSERT INTO {t} VALUES ({ph})", TYPES_ROW)
        await cur.execute(f"SELECT * FROM {t}")
        first, second = await cur.fetchall()
        assert first == second
        await conn.rollback()


class Session:
    """One event loop and one fastio.mysql connection for many hypothesis examples;
    values go through a typed table and back."""

    def __init__(self, server: Any) -> None:
        if os.environ.get("FASTIO_TEST_LOOP", "asyncio") == "uvloop":
            import uvloop

            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.conn = self.run(fastio.mysql.connect(**kw(server, autocommit=True)))
        self.cur = self.run(self.conn.cursor())
        self.run(
            self.cur.execute(
                "CREATE TEMPORARY TABLE rt (i bigint, f double, t longtext, b longblob,"
                " d date, dt datetime(6), tm time(6), de decimal(40,6))"
            )
        )

    def run(self, aw: Any) -> Any:
        async def wrap() -> Any:
            return await aw

        return self.loop.run_until_complete(wrap())

    def roundtrip(self, column: str, value: Any) -> Any:
        async def go() -> Any:
            await self.cur.execute("DELETE FROM rt")
            await self.cur.execute(f"INSERT INTO rt ({column}) VALUES (%s)", (value,))
            await self.cur.execute(f"SELECT {column} FROM rt")
            return (await self.cur.fetchone())[0]

        return self.run(go())

    def close(self) -> None:
        self.run(self.conn.ensure_closed())
        self.loop.close()


@pytest.fixture(scope="module")
def rt(mysql_server: Any) -> Iterator[Session]:
    s = Session(mysql_server)
    yield s
    s.close()


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
MAX_TIME = datetime.timedelta(hours=838, minutes=59, seconds=59)


@SETTINGS
@given(st.integers(-(2**63), 2**63 - 1))
def test_roundtrip_int(rt: Session, v: int) -> None:
    got = rt.roundtrip("i", v)
    assert got == v and type(got) is int


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_roundtrip_float(rt: Session, v: float) -> None:
    got = rt.roundtrip("f", v)
    assert got == v and type(got) is float


@SETTINGS
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"])))
def test_roundtrip_text(rt: Session, v: str) -> None:
    assert rt.roundtrip("t", v) == v


@SETTINGS
@given(st.binary())
def test_roundtrip_bytes(rt: Session, v: bytes) -> None:
    got = rt.roundtrip("b", v)
    assert got == v and type(got) is bytes


@SETTINGS
@given(st.dates(min_value=datetime.date(1000, 1, 1)))
def test_roundtrip_date(rt: Session, v: datetime.date) -> None:
    got = rt.roundtrip("d", v)
    assert got == v and type(got) is datetime.date


@SETTINGS
@given(st.datetimes(min_value=datetime.datetime(1000, 1, 1)))
def test_roundtrip_datetime(rt: Session, v: datetime.datetime) -> None:
    got = rt.roundtrip("dt", v)
    assert got == v and type(got) is datetime.datetime


@SETTINGS
@given(st.timedeltas(min_value=-MAX_TIME, max_value=MAX_TIME))
def test_roundtrip_time_as_timedelta(rt: Session, v: datetime.timedelta) -> None:
    got = rt.roundtrip("tm", v)
    assert got == v and type(got) is datetime.timedelta


@SETTINGS
@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**30), max_value=10**30
    )
)
def test_roundtrip_decimal(rt: Session, v: decimal.Decimal) -> None:
    got = rt.roundtrip("de", v)
    assert got == v and type(got) is decimal.Decimal


# ------------------------------------------------------------ transactions


async def test_transactions_commit_rollback_and_autocommit(mysql_server: Any) -> None:
    t = table()
    async with fastio.mysql.connect(**kw(mysql_server)) as conn:
        cur = await conn.cursor()
        await cur.execute(f"CREATE TABLE {t} (id int primary key)")
        assert not conn.get_transaction_status()
        await cur.execute(f"INSERT INTO {t} VALUES (1)")
        assert conn.get_transaction_status()  # autocommit is off
        await conn.rollback()
        assert not conn.get_transaction_status()
        await cur.execute(f"SELECT count(*) FROM {t}")
        assert await cur.fetchone() == (0,)
        await conn.begin()
        await cur.execute(f"INSERT INTO {t} VALUES (2)")
        await conn.commit()
        await conn.autocommit(True)
        assert conn.get_autocommit() is True
        await cur.execute(f"INSERT INTO {t} VALUES (3)")
        assert not conn.get_transaction_status()
        await cur.execute("SELECT @@autocommit")
        assert await cur.fetchone() == (1,)
    async with fastio.mysql.connect(**kw(mysql_server)) as other:
        cur = await other.cursor()
        await cur.execute(f"SELECT id FROM {t} ORDER BY id")
        assert await cur.fetchall() == ((2,), (3,))


async def test_dirty_release_is_rolled_back_and_settings_reset(mysql_server: Any) -> None:
    t = table()
    async with fastio.mysql.create_pool(minsize=1, maxsize=1, **kw(mysql_server)) as pool:
        async with pool.acquire() as conn:
            cur = await conn.cursor()
            await cur.execute(f"CREATE TABLE {t} (id int primary key)")
            await cur.execute(f"INSERT INTO {t} VALUES (1)")
            assert conn.get_transaction_status()
            await conn.autocommit(True)  # commits the insert
            await conn.autocommit(False)
            await cur.execute(f"INSERT INTO {t} VALUES (2)")
            await conn.autocommit(True)  # left on for the next user...
            await conn.begin()
            await cur.execute(f"INSERT INTO {t} VALUES (3)")
            pid = conn.thread_id()
        assert conn.closed  # released
        with pytest.raises(fastio.mysql.InterfaceError):
            await conn.cursor()
        conn = await pool.acquire()
        try:
            assert conn.thread_id() == pid  # same session, rolled back and reset
            assert not conn.get_transaction_status()
            cur = await conn.cursor()
            await cur.execute(f"SELECT id FROM {t} ORDER BY id")
            assert await cur.fetchall() == ((1,), (2,))
            await cur.execute("SELECT @@autocommit")
            assert await cur.fetchone() == (0,)  # ...but reset to the pool's setting
        finally:
            await pool.release(conn)


async def test_release_without_await_takes_effect(mysql_server: Any) -> None:
    async with fastio.mysql.create_pool(minsize=0, maxsize=1, **kw(mysql_server)) as pool:
        conn = await pool.acquire()
        pool.release(conn)  # not awaited, as aiomysql code often does
        conn = await asyncio.wait_for(pool.acquire(), 5)
        await pool.release(conn)


# ------------------------------------------------------------------ errors


async def test_server_errors_have_pymysql_classes_and_errnos(mysql_server: Any) -> None:
    t = table()
    caught = {}
    for name, driver in DRIVERS.items():
        got = []
        async with driver.connect(**kw(mysql_server, autocommit=True)) as conn:
            cur = await conn.cursor()
            if name == "aiomysql":
                await cur.execute(f"CREATE TABLE {t} (id int primary key, v int NOT NULL)")
            for sql in (
                f"INSERT INTO {t} VALUES (1, 1)",
                f"INSERT INTO {t} VALUES (1, 1)",
                "SELEC 1",
                "SELECT * FROM no_such_table_here",
                f"INSERT INTO {t} VALUES (2, NULL)",
                "SELECT no_such_column FROM " + t,
                "SELECT * FROM no_such_db.x",
            ):
                try:
                    await cur.execute(sql)
                except driver.Error as e:
                    got.append((type(e).__name__, e.args[0]))
                    assert isinstance(e.args[1], str) and e.args[1]
            if name == "aiomysql":
                await cur.execute(f"DELETE FROM {t}")
        caught[name] = got
    assert caught["fastio"] == caught["aiomysql"]
    assert caught["fastio"][:4] == [
        ("IntegrityError", 1062),
        ("ProgrammingError", 1064),
        ("ProgrammingError", 1146),
        ("IntegrityError", 1048),
    ]


async def test_bad_password_and_unreachable_server(mysql_server: Any) -> None:
    for driver in DRIVERS.values():
        with pytest.raises(driver.OperationalError) as info:
            await driver.connect(**{**kw(mysql_server), "password": "wrong"})
        assert info.value.args[0] == 1045
        with pytest.raises(driver.OperationalError) as info:
            await driver.create_pool(minsize=1, **{**kw(mysql_server), "password": "wrong"})
        assert info.value.args[0] == 1045
        with pytest.raises(driver.OperationalError) as info:
            await driver.connect(**{**kw(mysql_server), "port": 1, "connect_timeout": 5})
        assert info.value.args[0] == 2003
        assert info.value.args[1] == f"Can't connect to MySQL server on {mysql_server.host!r}"
        with pytest.raises(driver.OperationalError) as info:
            await driver.connect(**{**kw(mysql_server), "db": "no_such_database"})
        assert info.value.args[0] in (1044, 1049)


# -------------------------------------------------------------------- pool


async def test_pool_sizes_and_acquire_timeout(mysql_server: Any) -> None:
    pool = await fastio.mysql.create_pool(minsize=2, maxsize=3, **kw(mysql_server))
    try:
        assert isinstance(pool, fastio.mysql.Pool)
        assert (pool.minsize, pool.maxsize) == (2, 3)
        # The native pool may still be opening its second connection when
        # create_pool returns (aiomysql fills minsize first): wait for it.
        for _ in range(100):
            if pool.freesize == 2:
                break
            await asyncio.sleep(0.05)
        assert pool.size == 2 and pool.freesize == 2
        held = [await pool.acquire() for _ in range(3)]
        assert pool.size == 3 and pool.freesize == 0
        assert len({c.thread_id() for c in held}) == 3
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.acquire(), 0.2)
        waiter = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await pool.release(held.pop())
        conn = await asyncio.wait_for(waiter, 5)
        held.append(conn)
        for c in held:
            await pool.release(c)
        assert pool.freesize == 3
    finally:
        pool.close()
        await pool.wait_closed()
    assert pool.closed
    with pytest.raises(RuntimeError, match="closing"):
        await pool.acquire()


async def test_pool_waiters_queue_without_losing_or_exceeding_connections(
    mysql_server: Any,
) -> None:
    pool = await fastio.mysql.create_pool(minsize=1, maxsize=2, **kw(mysql_server))
    holding = 0
    most = 0

    async def one(i: int) -> int:
        nonlocal holding, most
        async with pool.acquire() as conn:
            holding += 1
            most = max(most, holding)
            async with conn.cursor() as cur:
                await cur.execute("SELECT %s", (i,))
                (value,) = await cur.fetchone()
            holding -= 1
            return value

    try:
        assert await asyncio.gather(*(one(i) for i in range(60))) == list(range(60))
        assert most == 2 and pool.size <= 2
        # Waiters cancelled while queued, or while holding, give their
        # place back: both connections can still be taken afterwards.
        held = await pool.acquire()
        for _ in range(5):
            tasks = [asyncio.ensure_future(pool.acquire()) for _ in range(3)]
            await asyncio.sleep(0.05)
            got = [t.result() for t in tasks if t.done()]
            assert len(got) == 1  # the one free connection
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pool.release(got[0])
        await pool.release(held)
        both = [await asyncio.wait_for(pool.acquire(), 5) for _ in range(2)]
        assert len({c.thread_id() for c in both}) == 2
        for c in both:
            await pool.release(c)
        assert pool.freesize == pool.size
    finally:
        pool.close()
        await pool.wait_closed()


async def test_pool_close_waits_for_acquired_connections(mysql_server: Any) -> None:
    pool = await fastio.mysql.create_pool(minsize=1, maxsize=2, **kw(mysql_server))
    conn = await pool.acquire()
    pool.close()
    closing = asyncio.ensure_future(pool.wait_closed())
    await asyncio.sleep(0.1)
    assert not closing.done()
    await pool.release(conn)
    await asyncio.wait_for(closing, 5)
    assert pool.closed
    with pytest.raises(RuntimeError, match="after .close"):
        await (await fastio.mysql.create_pool(minsize=0, **kw(mysql_server))).wait_closed()


async def test_pool_terminate_and_wrong_sizes(mysql_server: Any) -> None:
    pool = await fastio.mysql.create_pool(minsize=1, maxsize=2, **kw(mysql_server))
    conn = await pool.acquire()
    pool.terminate()
    assert conn.closed
    with pytest.raises(fastio.mysql.InterfaceError):
        await conn.cursor()
    await pool.release(conn)  # allowed after terminate, as in aiomysql
    with pytest.raises(ValueError):
        fastio.mysql.create_pool(minsize=3, maxsize=2, **kw(mysql_server))
    with pytest.raises(ValueError):
        fastio.mysql.create_pool(minsize=-1, **kw(mysql_server))


async def test_cancellation_under_load_leaves_every_connection_usable(mysql_server: Any) -> None:
    async with fastio.mysql.create_pool(minsize=4, maxsize=4, **kw(mysql_server)) as pool:

        async def slow(i: int) -> None:
            async with pool.acquire() as conn:
                async with conn.cursor() as cur:
                    await asyncio.wait_for(cur.execute("SELECT SLEEP(%s), %s", (30, i)), 0.05)

        results = await asyncio.gather(*(slow(i) for i in range(40)), return_exceptions=True)
        assert all(isinstance(r, asyncio.TimeoutError) for r in results), results

        async def check(i: int) -> Any:
            async with pool.acquire() as conn:
                async with conn.cursor() as cur:
                    await cur.execute("SELECT %s, %s", (i, f"v{i}"))
                    row = await cur.fetchone()
                    assert not conn.get_transaction_status()
                    return row, conn.thread_id()

        for _ in range(3):
            out = await asyncio.gather(*(check(i) for i in range(4)))
            assert [r for r, _ in out] == [(i, f"v{i}") for i in range(4)]

        # The slow queries were stopped on the server too, also one whose
        # kill reached the server before the statement had started: none of
        # them sleeps its 30 s (a killed session leaves within moments).
        async def sleeping() -> Any:
            async with pool.acquire() as conn:
                async with conn.cursor() as cur:
                    await cur.execute(
                        "SELECT count(*) FROM information_schema.processlist WHERE info LIKE %s",
                        ("SELECT SLEEP(%",),
                    )
                    return await cur.fetchone()

        for _ in range(60):
            if await sleeping() == (0,):
                break
            await asyncio.sleep(0.05)
        assert await sleeping() == (0,)


async def test_pool_recycle_and_extra_stats(mysql_server: Any) -> None:
    async with fastio.mysql.create_pool(
        minsize=1, maxsize=2, pool_recycle=3600, **kw(mysql_server)
    ) as pool:
        async with pool.acquire() as conn:
            cur = await conn.cursor()
            await cur.execute("SELECT 1")
        stats = pool.get_stats()
        assert stats["acquired"] >= 1 and stats["size"] == pool.size


# ------------------------------------------- native layer
# What fastio.mysql needs from the native MySQL backend.


async def test_native_empty_result_set_has_a_description(mysql_server: Any) -> None:
    conn = await fastio.connect(mysql_server.dsn)
    try:
        for sql, params in (("SELECT 1 AS a WHERE 1 = 0", ()), ("SELECT ? AS a WHERE 1 = 0", (1,))):
            description, rows, rowcount, _ = await conn._exec(sql, params)
            assert rows == [] and rowcount == 0
            assert description is not None and description[0][0] == "a"
    finally:
        await conn.close()
    # what aiomysql code sees through fastio.mysql
    async with fastio.mysql.connect(**kw(mysql_server)) as c:
        async with c.cursor(fastio.mysql.DictCursor) as cur:
            await cur.execute("SELECT 1 AS a WHERE 1 = 0")
            assert cur.description is not None
            assert await cur.fetchall() == ()  # aiomysql's value


async def test_native_terminate_of_an_acquired_connection(mysql_server: Any) -> None:
    pool = await fastio.create_pool(mysql_server.dsn, min_size=1, max_size=1)
    try:
        conn = await pool.acquire()
        try:
            conn.terminate()
        except BaseException as e:  # pyo3's PanicException is a BaseException
            pytest.fail(f"terminate() raised {type(e).__name__}: {e}")
        assert conn.is_closed()
        await pool.release(conn)
        # The session is closed on tokio; its slot frees when that finishes.
        for _ in range(100):
            if pool.get_stats()["in_use"] == 0:
                break
            await asyncio.sleep(0.05)
        assert pool.get_stats()["in_use"] == 0
        async with pool.acquire() as again:  # the slot is usable
            assert await again.fetchval("SELECT 1") == 1
    finally:
        pool.terminate()


async def test_native_pool_terminate_closes_acquired_connections(mysql_server: Any) -> None:
    pool = await fastio.create_pool(mysql_server.dsn, min_size=1, max_size=1)
    conn = await pool.acquire()
    pool.terminate()
    try:
        assert conn.is_closed()
        with pytest.raises(fastio.InterfaceError):
            await conn._exec("SELECT 1", ())
    finally:
        await pool.release(conn)


async def test_native_dropping_an_unreleased_pooled_connection_is_quiet(mysql_server: Any) -> None:
    import gc
    import sys

    seen: list[Any] = []
    hook, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        pool = await fastio.create_pool(mysql_server.dsn, min_size=1, max_size=1)
        conn = await pool.acquire()
        pool.terminate()
        del conn
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert not seen, [str(u.exc_value) for u in seen]
