# ruff: noqa: E501  (the documents' code is kept verbatim)
"""fastio.pg as a drop-in for asyncpg: the three database classes from the
design documents (shared/seeds), run with only `import asyncpg` changed, side
by side with asyncpg itself, plus asyncpg's API details code relies on."""

from __future__ import annotations

import asyncio
import textwrap
import types
import uuid
from typing import Any

import asyncpg
import pytest

import fastio
import fastio.pg

# The documents' classes, verbatim but for indentation (the seed text lost it).
DOCUMENT_CODE = textwrap.dedent(
    '''
    import asyncio
    import asyncpg
    import aiomysql
    from contextlib import asynccontextmanager
    from typing import Any, Dict, List, Optional


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

        async def execute_query(self, query: str, params: tuple = None) -> List[Dict[str, Any]]:
            """执行查询操作"""
            if self.connection_type == "postgres":
                async with self.pool.acquire() as connection:
                    result = await connection.fetch(query, *params) if params else await connection.fetch(query)
                    return [dict(row) for row in result]

        async def execute_update(self, query: str, params: tuple = None) -> int:
            """执行更新操作"""
            if self.connection_type == "postgres":
                async with self.pool.acquire() as connection:
                    result = await connection.execute(query, *params) if params else await connection.execute(query)
                    return result


    class OptimizedDatabaseAccess:
        def __init__(self):
            self.pool = None

        async def init_pool(self, connection_string: str):
            """初始化优化的连接池"""
            self.pool = await asyncpg.create_pool(
                connection_string,
                min_size=5,
                max_size=20,
                max_inactive_connection_lifetime=300,  # 5分钟
                command_timeout=30,
                # 启用连接池的统计信息
                enable_server_side_cursors=True
            )

        @asynccontextmanager
        async def get_connection(self):
            """获取数据库连接的上下文管理器"""
            conn = await self.pool.acquire()
            try:
                yield conn
            finally:
                await self.pool.release(conn)

        async def batch_query_optimization(self, user_ids: List[int]) -> List[Dict]:
            """批量查询优化"""
            query = """
            SELECT id, name, email, created_at
            FROM users
            WHERE id = ANY($1)
            ORDER BY created_at DESC
            """
            async with self.get_connection() as conn:
                result = await conn.fetch(query, user_ids)
                return [dict(row) for row in result]

        async def async_cursor_optimization(self, batch_size: int = 1000):
            """使用异步游标处理大量数据"""
            query = "SELECT * FROM large_table ORDER BY id"
            async with self.get_connection() as conn:
                async for record in conn.cursor(query, batch_size=batch_size):
                    yield dict(record)

        async def connection_pool_monitoring(self):
            """连接池监控"""
            if self.pool:
                stats = self.pool.get_stats()
                print(f"连接池统计: {stats}")


    class AsyncDatabaseManager:
        """异步数据库管理器"""
        def __init__(self, connection_string: str):
            self.connection_string = connection_string
            self.pool = None

        async def initialize(self):
            """初始化数据库连接池"""
            self.pool = await asyncpg.create_pool(
                self.connection_string,
                min_size=5,
                max_size=20,
                command_timeout=60
            )
            await self.create_tables()

        async def close(self):
            """关闭数据库连接池"""
            if self.pool:
                await self.pool.close()

        async def create_tables(self):
            """创建必要的表"""
            async with self.pool.acquire() as conn:
                await conn.execute("""
                CREATE TABLE IF NOT EXISTS users (
                id SERIAL PRIMARY KEY,
                name VARCHAR(100) NOT NULL,
                email VARCHAR(100) UNIQUE NOT NULL,
                created_at TIMESTAMP DEFAULT NOW()
                )
                """)
                await conn.execute("""
                CREATE TABLE IF NOT EXISTS posts (
                id SERIAL PRIMARY KEY,
                title VARCHAR(200) NOT NULL,
                content TEXT,
                user_id INTEGER REFERENCES users(id),
                created_at TIMESTAMP DEFAULT NOW()
                )
                """)

        async def get_user_by_id(self, user_id: int) -> Optional[Dict]:
            """根据ID获取用户"""
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT id, name, email, created_at FROM users WHERE id = $1",
                    user_id
                )
                return dict(row) if row else None

        async def get_users(self, limit: int = 10, offset: int = 0) -> List[Dict]:
            """获取用户列表"""
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT id, name, email, created_at FROM users ORDER BY id LIMIT $1 OFFSET $2",
                    limit, offset
                )
                return [dict(row) for row in rows]

        async def create_user(self, name: str, email: str) -> Dict:
            """创建新用户"""
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(
                    "INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id, name, email, created_at",
                    name, email
                )
                return dict(row)

        async def get_posts_by_user(self, user_id: int) -> List[Dict]:
            """获取用户的所有文章"""
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT id, title, content, created_at FROM posts WHERE user_id = $1 ORDER BY created_at DESC",
                    user_id
                )
                return [dict(row) for row in rows]
    '''
)


def load(driver: str) -> types.SimpleNamespace:
    """The documents' module, importing asyncpg or (import changed) fastio.pg."""
    code = DOCUMENT_CODE
    if driver == "fastio":
        code = code.replace("import asyncpg\n", "import fastio.pg as asyncpg\n")
    namespace: dict[str, Any] = {}
    exec(compile(code, f"<documents:{driver}>", "exec"), namespace)
    return types.SimpleNamespace(**namespace)


def schema_dsn(pg_server: Any, schema: str) -> str:
    return f"{pg_server.dsn}?options=-csearch_path%3D{schema}"


async def make_schema(pg_server: Any) -> str:
    """A fresh schema so each driver's run has its own users/posts tables."""
    name = f"s_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_server.dsn)
    await conn.execute(f"CREATE SCHEMA {name}")
    await conn.close()
    return name


async def run_manager(mod: types.SimpleNamespace, dsn: str) -> list[Any]:
    db = mod.AsyncDatabaseManager(dsn)
    await db.initialize()
    try:
        out: list[Any] = []
        alice = await db.create_user("alice", "alice@example.com")
        bob = await db.create_user("bob", "bob@example.com")
        out.append(sorted(alice))
        out.append((await db.get_user_by_id(bob["id"]))["email"])
        out.append(await db.get_user_by_id(999))
        out.append([u["name"] for u in await db.get_users(limit=10, offset=0)])
        async with db.pool.acquire() as conn:
            out.append(
                await conn.execute(
                    "INSERT INTO posts (title, content, user_id) VALUES ($1, $2, $3)",
                    "hello",
                    "text",
                    alice["id"],
                )
            )
        out.append([p["title"] for p in await db.get_posts_by_user(alice["id"])])
        with pytest.raises(mod.asyncpg.UniqueViolationError):
            await db.create_user("alice2", "alice@example.com")
        return out
    finally:
        await db.close()


async def test_async_database_manager_runs_unchanged(pg_server: Any) -> None:
    results = {}
    for driver in ("asyncpg", "fastio"):
        schema = await make_schema(pg_server)
        results[driver] = await run_manager(load(driver), schema_dsn(pg_server, schema))
    assert results["fastio"] == results["asyncpg"]
    assert results["fastio"][4] == "INSERT 0 1"


async def test_async_database_pool_runs_unchanged(pg_server: Any) -> None:
    results = {}
    for driver in ("asyncpg", "fastio"):
        schema = await make_schema(pg_server)
        dsn = schema_dsn(pg_server, schema)
        db = load(driver).AsyncDatabasePool(pool_size=6)
        await db.init_postgres_pool(dsn)
        try:
            run = [
                await db.execute_update("CREATE TABLE users (id int, age int)"),
                await db.execute_update("INSERT INTO users VALUES ($1, $2)", (1, 30)),
                await db.execute_update("INSERT INTO users VALUES (2, 12)"),
                await db.execute_query("SELECT * FROM users WHERE age > $1", (18,)),
                await db.execute_query("SELECT count(*) AS n FROM users"),
            ]
        finally:
            await db.pool.close()
        results[driver] = run
    assert results["fastio"] == results["asyncpg"]
    assert results["fastio"][3] == [{"id": 1, "age": 30}]


async def test_optimized_database_access_runs_unchanged(pg_server: Any) -> None:
    schema = await make_schema(pg_server)
    dsn = schema_dsn(pg_server, schema)
    setup = await asyncpg.connect(dsn)
    await setup.execute(
        "CREATE TABLE users (id int PRIMARY KEY, name text, email text, created_at timestamp);"
        "INSERT INTO users SELECT g, 'u' || g, g || '@x', '2024-01-01'::timestamp + g * interval '1 s'"
        " FROM generate_series(1, 300) g;"
        "CREATE TABLE large_table AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2345) g"
    )
    await setup.close()

    # asyncpg itself rejects the document's `enable_server_side_cursors` keyword;
    # fastio.pg behaves the same, so the document's init_pool fails under both.
    for driver in ("asyncpg", "fastio"):
        with pytest.raises(TypeError):
            await load(driver).OptimizedDatabaseAccess().init_pool(dsn)

    mod = load("fastio")
    db = mod.OptimizedDatabaseAccess()
    db.pool = await mod.asyncpg.create_pool(dsn, min_size=5, max_size=20, command_timeout=30)
    try:
        users = await db.batch_query_optimization(list(range(1, 101)))
        assert [u["id"] for u in users] == list(range(100, 0, -1))
        # The document's cursor (batch_size=, no explicit transaction) streams every row.
        seen = [r["id"] async for r in db.async_cursor_optimization(500)]
        assert seen == list(range(1, 2346))
        await db.connection_pool_monitoring()
        assert db.pool.get_stats()["acquired"] >= 2
    finally:
        await db.pool.close()


async def test_asyncpg_names_and_json_as_text(pg_server: Any) -> None:
    for name in ("connect", "create_pool", "Pool", "Connection", "Record", "Transaction"):
        assert hasattr(fastio.pg, name)
    assert fastio.pg.exceptions.UniqueViolationError is fastio.pg.UniqueViolationError
    assert issubclass(fastio.pg.PostgresError, fastio.FastIOError)
    conn = await fastio.pg.connect(pg_server.dsn)
    try:
        assert isinstance(conn, fastio.pg.Connection)
        assert await conn.fetchval("""SELECT '{"a": 1}'::jsonb""") == '{"a": 1}'
        row = await conn.fetchrow("SELECT 1 AS a")
        assert isinstance(row, fastio.pg.Record)
        async with conn.transaction():
            assert conn.is_in_transaction()
    finally:
        await conn.close()
    async with fastio.pg.create_pool(pg_server.dsn, min_size=1, max_size=2) as pool:
        assert isinstance(pool, fastio.pg.Pool)
        assert await pool.fetchval("SELECT 2") == 2
    assert pool.is_closing()


async def test_keyword_connection_parts_build_the_dsn(pg_server: Any) -> None:
    conn = await fastio.pg.connect(
        host=pg_server.host,
        port=pg_server.port,
        user=pg_server.user,
        password=pg_server.password,
        database=pg_server.database,
    )
    try:
        assert await conn.fetchval("SELECT current_user") == pg_server.user
    finally:
        await conn.close()


async def test_cursor_inside_a_transaction_and_with_arguments(pg_server: Any) -> None:
    conn = await fastio.pg.connect(pg_server.dsn)
    try:
        async with conn.transaction():
            rows = [
                r[0]
                async for r in conn.cursor(
                    "SELECT g FROM generate_series(1, $1::int) g", 25, prefetch=10
                )
            ]
            assert rows == list(range(1, 26))
            assert conn.is_in_transaction()
        # Outside a transaction the cursor opens and commits its own.
        assert [r[0] async for r in conn.cursor("SELECT 1")] == [1]
        assert not conn.is_in_transaction()
    finally:
        await conn.close()


async def test_server_version_and_pid_match_asyncpg(pg_server: Any) -> None:
    conn = await fastio.pg.connect(pg_server.dsn)
    peer = await asyncpg.connect(pg_server.dsn)
    try:
        assert tuple(conn.get_server_version()) == tuple(peer.get_server_version())
        assert conn.get_server_version().major >= 10
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        assert conn.get_server_pid() == pid
    finally:
        await conn.close()
        await peer.close()


async def test_awaited_cursor_fetches_and_moves_like_asyncpg(pg_server: Any) -> None:
    q = "SELECT g FROM generate_series(1, $1::int) g"
    results = {}
    for name, connect in (("asyncpg", asyncpg.connect), ("fastio", fastio.pg.connect)):
        conn = await connect(pg_server.dsn)
        try:
            with pytest.raises(Exception, match="outside of a transaction"):
                await conn.cursor(q, 10)
            async with conn.transaction():
                cur = await conn.cursor(q, 10)
                first = [r[0] for r in await cur.fetch(3)]
                skipped = await cur.forward(2)
                row = await cur.fetchrow()
                rest = [r[0] for r in await cur.fetch(100)]
                end = await cur.fetchrow()
            results[name] = (first, skipped, row[0], rest, end)
        finally:
            await conn.close()
    assert results["fastio"] == results["asyncpg"] == ([1, 2, 3], 2, 6, [7, 8, 9, 10], None)


# ------------------------------------------------------- connect options


async def test_init_runs_once_per_connection_and_setup_on_every_acquire(
    pg_server: Any,
) -> None:
    inits: list[int] = []
    setups: list[int] = []

    async def init(conn: Any) -> None:
        inits.append(conn.get_server_pid())
        await conn.execute("CREATE TEMP TABLE IF NOT EXISTS init_mark (v int)")

    async def setup(conn: Any) -> None:
        setups.append(conn.get_server_pid())

    async with fastio.pg.create_pool(
        pg_server.dsn, min_size=2, max_size=2, init=init, setup=setup
    ) as pool:
        for _ in range(3):
            async with pool.acquire() as conn:
                # init ran on this very session (its temp table is there).
                assert await conn.fetchval("SELECT count(*) FROM init_mark") == 0
        # The pool's own query methods acquire too, as asyncpg's do.
        assert await pool.fetchval("SELECT 1") == 1
        await asyncio.gather(*(pool.fetchval("SELECT count(*) FROM init_mark") for _ in range(10)))
        assert len(inits) == len(set(inits)) <= 2
        assert len(setups) == 3 + 1 + 10
        assert set(setups) <= set(inits)


async def test_native_create_pool_takes_init(pg_server: Any) -> None:
    seen: list[int] = []

    async def init(conn: fastio.Connection) -> None:
        seen.append(conn.get_server_pid())

    pool = await fastio.create_pool(pg_server.dsn, min_size=1, max_size=1, init=init)
    try:
        pids = {await pool.fetchval("SELECT pg_backend_pid()") for _ in range(5)}
        assert seen == list(pids) and len(seen) == 1
    finally:
        await pool.close()


async def test_a_failing_init_fails_the_acquire_and_drops_the_connection(pg_server: Any) -> None:
    calls = 0

    async def init(conn: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("init failed")

    pool = await fastio.pg.create_pool(pg_server.dsn, min_size=1, max_size=1, init=init)
    try:
        with pytest.raises(RuntimeError, match="init failed"):
            await pool.fetchval("SELECT 1")
        # The connection init failed on is not reused: the next one gets init again.
        assert await pool.fetchval("SELECT 2") == 2
        assert calls == 2
    finally:
        await pool.close()


async def test_server_settings_apply_at_connect_and_survive_reset(pg_server: Any) -> None:
    settings = {"application_name": "fastio test", "search_path": "pg_catalog, public"}
    conn = await fastio.pg.connect(pg_server.dsn, server_settings=settings)
    try:
        assert await conn.fetchval("SHOW application_name") == "fastio test"
        assert await conn.fetchval("SHOW search_path") == "pg_catalog, public"
    finally:
        await conn.close()
    async with fastio.pg.create_pool(
        pg_server.dsn, min_size=1, max_size=1, server_settings=settings
    ) as pool:
        async with pool.acquire() as c:
            await c.execute("SET application_name = 'changed'")
        # The reset on release goes back to the connect-time value, as asyncpg's.
        assert await pool.fetchval("SHOW application_name") == "fastio test"
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fastio test'"
            )
            >= 1
        )


async def test_ssl_disable_connects_and_require_fails_cleanly(pg_server: Any) -> None:
    import ssl as ssl_module

    for value in (False, "disable", "prefer", None):
        conn = await fastio.pg.connect(pg_server.dsn, ssl=value)
        try:
            assert (
                await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                is False
            )
        finally:
            await conn.close()
    # The harness server has no TLS: 'require' (and True, an SSLContext) must
    # fail with a connection error, not hang or fall back to plain text.
    ctx = ssl_module.create_default_context()
    for value in ("require", True, ctx):
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(fastio.pg.connect(pg_server.dsn, ssl=value), 10)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(
            fastio.pg.create_pool(pg_server.dsn, min_size=1, max_size=1, ssl="require"), 10
        )
    with pytest.raises(ValueError, match="ssl"):
        await fastio.pg.connect(pg_server.dsn, ssl="sometimes")


async def test_max_queries_replaces_the_connection(pg_server: Any) -> None:
    async with fastio.pg.create_pool(pg_server.dsn, min_size=1, max_size=1, max_queries=3) as pool:
        pids = [await pool.fetchval("SELECT pg_backend_pid()") for _ in range(7)]
        # Three queries per connection, then a new backend.
        assert pids[0] == pids[1] == pids[2] != pids[3]
        assert pids[3] == pids[4] == pids[5] != pids[6]
        async with pool.acquire() as conn:
            for _ in range(3):
                await conn.fetchval("SELECT 1")
            pid = conn.get_server_pid()
        assert await pool.fetchval("SELECT pg_backend_pid()") != pid


# ----------------------------------------------------------- release reset


async def test_session_state_does_not_leak_to_the_next_acquirer(pg_server: Any) -> None:
    async with fastio.pg.create_pool(pg_server.dsn, min_size=1, max_size=1) as pool:
        default_path = await pool.fetchval("SHOW search_path")
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
            await conn.execute("SET search_path = pg_catalog")
            await conn.execute("SET statement_timeout = 1234")
            await conn.execute("DECLARE leak CURSOR WITH HOLD FOR SELECT 1")
            await conn.execute("LISTEN leaked_channel")
            await conn.execute("SELECT pg_advisory_lock(42)")
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid  # the same session, reset
            assert await conn.fetchval("SHOW search_path") == default_path
            assert await conn.fetchval("SHOW statement_timeout") == "0"
            assert await conn.fetchval("SELECT count(*) FROM pg_cursors WHERE name <> ''") == 0
            assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $1", pid
                )
                == 0
            )
        # A transaction left open is rolled back.
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("SET LOCAL search_path = pg_catalog")
        assert await pool.fetchval("SHOW search_path") == default_path
        assert await pool.fetchval("SELECT pg_backend_pid()") == pid


async def test_pool_fetch_pays_no_reset(pg_server: Any) -> None:
    # The reset is for connections lent out by acquire(); pool.fetch() and
    # friends leave nothing behind and skip it (no extra round trip). The
    # last statement an idle backend ran is in pg_stat_activity.query.
    async with fastio.pg.create_pool(pg_server.dsn, min_size=1, max_size=1) as pool:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        watcher = await fastio.pg.connect(pg_server.dsn)
        try:
            last = "SELECT query FROM pg_stat_activity WHERE pid = $1"
            await pool.fetchval("SELECT 'pooled fetch'")
            assert await watcher.fetchval(last, pid) == "SELECT 'pooled fetch'"
            await pool.execute("SELECT 'pooled execute'")
            assert await watcher.fetchval(last, pid) == "SELECT 'pooled execute'"
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 'acquired'")
            assert "RESET ALL" in await watcher.fetchval(last, pid)
        finally:
            await watcher.close()


# ------------------------------------------------------ asyncpg 0.30 extras

DRIVERS = (("asyncpg", asyncpg), ("fastio", fastio.pg))


async def test_fetchmany_returns_the_rows_of_every_run_like_asyncpg(pg_server: Any) -> None:
    schema = await make_schema(pg_server)
    dsn = schema_dsn(pg_server, schema)
    results = {}
    for name, mod in DRIVERS:
        conn = await mod.connect(dsn)
        try:
            await conn.execute(f"CREATE TABLE fm_{name} (a int PRIMARY KEY, b text)")
            insert = f"INSERT INTO fm_{name} VALUES ($1, $2) RETURNING a, b"
            rows = await conn.fetchmany(insert, [(1, "x"), (2, "y"), (3, None)])
            empty = await conn.fetchmany(insert, [])
            # Atomic like executemany: a failing run undoes the earlier ones.
            with pytest.raises(mod.UniqueViolationError):
                await conn.fetchmany(insert, [(10, "a"), (1, "dup")])
            count = await conn.fetchval(f"SELECT count(*) FROM fm_{name}")
            stmt = await conn.prepare("SELECT $1::int * 2 AS d, 'k' AS k")
            prepared = await stmt.fetchmany([(5,), (6,)])
            # More runs than one pipelined chunk; every run's rows, in order.
            many = await conn.fetchmany(
                "SELECT g, $1::int FROM generate_series(1, 2) g", [(i,) for i in range(2500)]
            )
            results[name] = (
                [tuple(r) for r in rows],
                [list(r.keys()) for r in rows[:1]],
                empty,
                count,
                [dict(r) for r in prepared],
                [tuple(r) for r in many],
            )
        finally:
            await conn.close()
        async with mod.create_pool(dsn, min_size=1, max_size=1) as pool:
            pooled = await pool.fetchmany("SELECT $1::text || '!'", [("a",), ("b",)])
            assert [r[0] for r in pooled] == ["a!", "b!"]
    assert results["fastio"] == results["asyncpg"]
    rows, keys, empty, count, prepared, many = results["fastio"]
    assert rows == [(1, "x"), (2, "y"), (3, None)] and keys == [["a", "b"]]
    assert empty == [] and count == 3
    assert prepared == [{"d": 10, "k": "k"}, {"d": 12, "k": "k"}]
    assert many == [(g, i) for i in range(2500) for g in (1, 2)]


async def test_fetchmany_rejects_bad_arguments_cleanly(pg_server: Any) -> None:
    conn = await fastio.pg.connect(pg_server.dsn)
    try:
        with pytest.raises(fastio.pg.DataError, match=r"argument \$1"):
            await conn.fetchmany("SELECT $1::int", [(1,), ("nope",)])
        with pytest.raises(fastio.InterfaceError, match="expects 1 argument"):
            await conn.fetchmany("SELECT $1::int", [(1, 2)])
        # The connection is fine afterwards.
        assert await conn.fetchval("SELECT 7") == 7
    finally:
        await conn.close()


async def test_record_class_everywhere_like_asyncpg(pg_server: Any) -> None:
    seen = {}
    for name, mod in DRIVERS:

        class Row(mod.Record):  # type: ignore[name-defined,misc]
            def double(self) -> int:
                return int(self["v"]) * 2

        conn = await mod.connect(pg_server.dsn)
        try:
            q = "SELECT g AS v FROM generate_series(1, 3) g"
            rows = await conn.fetch(q, record_class=Row)
            row = await conn.fetchrow(q, record_class=Row)
            many = await conn.fetchmany("SELECT $1::int AS v", [(4,)], record_class=Row)
            stmt = await conn.prepare(q, record_class=Row)
            async with conn.transaction():
                cursor_rows = [r async for r in conn.cursor(q, record_class=Row)]
                cur = await conn.cursor(q, record_class=Row)
                cur_row = await cur.fetchrow()
            prepared = await stmt.fetch()
            plain = await conn.fetchrow(q)
            for r in (*rows, row, *many, *cursor_rows, cur_row, *prepared):
                assert type(r) is Row
            seen[name] = (
                [r.double() for r in rows],
                row == (1,),
                repr(row),
                type(plain).__name__,
                [r["v"] for r in prepared],
            )
            for bad in (dict, 1):
                with pytest.raises(mod.InterfaceError, match="expected to be a subclass"):
                    await conn.fetch(q, record_class=bad)

            class WithInit(mod.Record):  # type: ignore[name-defined,misc]
                def __init__(self) -> None:
                    pass

            with pytest.raises(mod.InterfaceError, match="must not redefine"):
                await conn.fetch(q, record_class=WithInit)
        finally:
            await conn.close()
        conn = await mod.connect(pg_server.dsn, record_class=Row)
        try:
            assert type(await conn.fetchrow("SELECT 1 AS v")) is Row
        finally:
            await conn.close()
        async with mod.create_pool(pg_server.dsn, min_size=1, max_size=1, record_class=Row) as pool:
            assert type(await pool.fetchrow("SELECT 1 AS v")) is Row
            assert (await pool.fetch("SELECT 2 AS v"))[0].double() == 4
            async with pool.acquire() as c:
                assert type(await c.fetchrow("SELECT 1 AS v")) is Row
    assert seen["fastio"] == seen["asyncpg"]
    assert seen["fastio"] == ([2, 4, 6], True, "<Row v=1>", "Record", [1, 2, 3])


async def test_set_type_codec_text_format_like_asyncpg(pg_server: Any) -> None:
    import json

    schema = await make_schema(pg_server)
    dsn = schema_dsn(pg_server, schema)
    seen = {}
    for name, mod in DRIVERS:
        conn = await mod.connect(dsn)
        try:
            await conn.execute(f"CREATE TYPE mood_{name} AS ENUM ('sad', 'happy')")
            await conn.set_type_codec(
                "jsonb", schema="pg_catalog", encoder=json.dumps, decoder=json.loads
            )
            await conn.set_type_codec(
                "numeric", schema="pg_catalog", encoder=str, decoder=lambda s: "N" + s
            )
            await conn.set_type_codec(
                f"mood_{name}", schema=schema, encoder=lambda m: m.lower(), decoder=str.upper
            )
            out = [
                await conn.fetchval("SELECT $1::jsonb", {"a": [1, None]}),
                await conn.fetchval("SELECT $1::numeric + 1", 41),
                tuple(await conn.fetchrow("SELECT 1.5::numeric AS n, 2 AS i")),
                await conn.fetchval(f"SELECT $1::mood_{name}", "HAPPY"),
            ]
            await conn.execute(f"CREATE TABLE cod_{name} (m mood_{name}, n numeric)")
            await conn.executemany(f"INSERT INTO cod_{name} VALUES ($1, $2)", [("SAD", 2)])
            out.append(tuple(await conn.fetchrow(f"SELECT * FROM cod_{name}")))
            out.append(await conn.fetchval(f"SELECT m::text FROM cod_{name}"))
            async with conn.transaction():
                q = "SELECT g::numeric FROM generate_series(1, 2) g"
                out.append([r[0] async for r in conn.cursor(q)])
            stmt = await conn.prepare("SELECT $1::numeric AS n")
            out.append((await stmt.fetchrow(7))["n"])
            await conn.reset_type_codec("numeric", schema="pg_catalog")
            out.append(await conn.fetchval("SELECT 1.5::numeric"))
            seen[name] = out
        finally:
            await conn.close()
    assert seen["fastio"] == seen["asyncpg"]
    assert seen["fastio"] == [
        {"a": [1, None]},
        "N42",
        ("N1.5", 2),
        "HAPPY",
        ("SAD", "N2"),
        "sad",
        ["N1", "N2"],
        "N7",
        __import__("decimal").Decimal("1.5"),
    ]


async def test_set_type_codec_in_pool_init_applies_to_every_connection(pg_server: Any) -> None:
    import json

    async def init(conn: Any) -> None:
        await conn.set_type_codec(
            "json", schema="pg_catalog", encoder=json.dumps, decoder=json.loads
        )

    async with fastio.pg.create_pool(pg_server.dsn, min_size=2, max_size=2, init=init) as pool:
        got = await asyncio.gather(*(pool.fetchval("SELECT $1::json", {"n": i}) for i in range(10)))
        assert got == [{"n": i} for i in range(10)]
        async with pool.acquire() as conn:
            assert await conn.fetchval("""SELECT '[1, "a"]'::json""") == [1, "a"]
        rows = await pool.fetchmany("SELECT $1::json AS j", [({"x": 1},), ([2],)])
        assert [r["j"] for r in rows] == [{"x": 1}, [2]]


async def test_set_type_codec_errors_are_clear(pg_server: Any) -> None:
    conn = await fastio.pg.connect(pg_server.dsn)
    try:
        for fmt in ("binary", "tuple"):
            with pytest.raises(fastio.pg.UnsupportedClientFeatureError, match="format='text'"):
                await conn.set_type_codec(
                    "int4", schema="pg_catalog", encoder=str, decoder=int, format=fmt
                )
        with pytest.raises(fastio.pg.InterfaceError, match="invalid `format`"):
            await conn.set_type_codec(
                "int4", schema="pg_catalog", encoder=str, decoder=int, format="xml"
            )
        with pytest.raises(ValueError, match="unknown type: public.nope"):
            await conn.set_type_codec("nope", encoder=str, decoder=str)
        name = f"comp_{uuid.uuid4().hex[:8]}"
        await conn.execute(f"CREATE TYPE {name} AS (x int)")
        try:
            with pytest.raises(fastio.pg.UnsupportedClientFeatureError, match="composite"):
                await conn.set_type_codec(name, encoder=str, decoder=str)
        finally:
            await conn.execute(f"DROP TYPE {name}")
        await conn.set_type_codec("int4", schema="pg_catalog", encoder=lambda v: v, decoder=int)
        with pytest.raises(fastio.pg.DataError, match=r"argument \$1: 5 .*must return str"):
            await conn.fetchval("SELECT $1::int4", 5)

        def boom(v: Any) -> str:
            raise RuntimeError("no way")

        await conn.set_type_codec("int4", schema="pg_catalog", encoder=boom, decoder=int)
        with pytest.raises(fastio.pg.DataError, match="no way"):
            await conn.fetchval("SELECT $1::int4", 5)
        await conn.reset_type_codec("int4", schema="pg_catalog")
        assert await conn.fetchval("SELECT $1::int4", 5) == 5
    finally:
        await conn.close()
    lite = await fastio.connect("sqlite::memory:")
    try:
        with pytest.raises(fastio.InterfaceError, match="only available for PostgreSQL"):
            await lite.set_type_codec("int4", encoder=str, decoder=int)
        with pytest.raises(fastio.InterfaceError, match="only available for PostgreSQL"):
            await lite.fetchmany("SELECT ?", [(1,)])
        with pytest.raises(fastio.InterfaceError, match="record_class= is only supported"):
            await lite.fetch("SELECT 1", record_class=fastio.Record)
    finally:
        await lite.close()


async def test_composite_parameters_like_asyncpg(pg_server: Any) -> None:
    schema = await make_schema(pg_server)
    dsn = schema_dsn(pg_server, schema)
    seen = {}
    for name, mod in DRIVERS:
        conn = await mod.connect(dsn)
        try:
            await conn.execute(f"CREATE TYPE pt_{name} AS (x int, label text, w numeric)")
            await conn.execute(f"CREATE TABLE shapes_{name} (id int, p pt_{name})")
            one = await conn.fetchval(f"SELECT $1::pt_{name}", (1, "a", 2))
            nulls = await conn.fetchval(f"SELECT $1::pt_{name}", [1, None, None])
            await conn.execute(f"INSERT INTO shapes_{name} VALUES (1, $1)", (2, "b", 1.5))
            back = await conn.fetchval(f"SELECT p FROM shapes_{name}")
            # A Record read back goes in again as the same composite value.
            await conn.execute(f"INSERT INTO shapes_{name} VALUES (2, $1)", back)
            await conn.executemany(
                f"INSERT INTO shapes_{name} VALUES ($1, $2)", [(3, (3, "c", 0)), (4, None)]
            )
            field = await conn.fetchval(f"SELECT ($1::pt_{name}).label", (9, "q", None))
            rows = await conn.fetch(f"SELECT * FROM shapes_{name} ORDER BY id")
            with pytest.raises(mod.DataError):
                await conn.fetchval(f"SELECT $1::pt_{name}", ("x", 1, 2))
            seen[name] = (
                tuple(one),
                tuple(nulls),
                [(r["id"], None if r["p"] is None else tuple(r["p"])) for r in rows],
                field,
            )
        finally:
            await conn.close()
    assert seen["fastio"] == seen["asyncpg"]
    from decimal import Decimal

    assert seen["fastio"][0] == (1, "a", Decimal(2))
    assert seen["fastio"][2][3] == (4, None)


async def test_pool_copy_methods_like_asyncpg(pg_server: Any, tmp_path: Any) -> None:
    import io

    schema = await make_schema(pg_server)
    dsn = schema_dsn(pg_server, schema)
    seen = {}
    for name, mod in DRIVERS:
        async with mod.create_pool(dsn, min_size=1, max_size=2) as pool:
            await pool.execute(f"CREATE TABLE cp_{name} (a int, b text)")
            out: list[Any] = [
                await pool.copy_records_to_table(f"cp_{name}", records=[(1, "a"), (2, "b")])
            ]
            buf = io.BytesIO()
            out.append(await pool.copy_from_table(f"cp_{name}", output=buf, format="csv"))
            out.append(buf.getvalue())
            buf = io.BytesIO()
            out.append(
                await pool.copy_from_query(
                    f"SELECT * FROM cp_{name} WHERE a > $1",
                    1,
                    output=buf,
                    header=True,
                    format="csv",
                )
            )
            out.append(buf.getvalue())
            out.append(
                await pool.copy_to_table(
                    f"cp_{name}", source=io.BytesIO(b"3\tc\n4\td\n"), columns=["a", "b"]
                )
            )
            path = tmp_path / f"{name}.txt"
            out.append(await pool.copy_from_table(f"cp_{name}", output=path))
            out.append(path.read_bytes())
            assert pool.get_idle_size() == pool.get_size()
            seen[name] = out
    assert seen["fastio"] == seen["asyncpg"]
    assert seen["fastio"][0] == "COPY 2" and seen["fastio"][-1].count(b"\n") == 4


async def test_pool_terminate_makes_acquired_connections_unusable(pg_server: Any) -> None:
    for _, mod in DRIVERS:
        pool = await mod.create_pool(pg_server.dsn, min_size=1, max_size=2)
        conn = await pool.acquire()
        assert await conn.fetchval("SELECT 1") == 1
        pool.terminate()
        with pytest.raises(mod.InterfaceError):
            await conn.fetchval("SELECT 1")
        with pytest.raises(mod.InterfaceError):
            await pool.fetchval("SELECT 1")
    # fastio: the acquired connection says so, and its session is gone.
    watcher = await fastio.pg.connect(pg_server.dsn)
    try:
        pool = await fastio.pg.create_pool(pg_server.dsn, min_size=1, max_size=1)
        conn = await pool.acquire()
        pid = conn.get_server_pid()
        pool.terminate()
        assert conn.is_closed()
        for _ in range(200):
            alive = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
            )
            if not alive:
                break
            await asyncio.sleep(0.02)
        assert alive == 0
    finally:
        await watcher.close()


async def test_pool_terminate_closes_a_busy_connection_once_its_query_ends(
    pg_server: Any,
) -> None:
    pool = await fastio.pg.create_pool(pg_server.dsn, min_size=1, max_size=1)
    watcher = await fastio.pg.connect(pg_server.dsn)
    try:
        conn = await pool.acquire()
        pid = conn.get_server_pid()

        async def query() -> Any:
            return await conn.fetchval("SELECT 1 FROM pg_sleep(0.5)")

        running = asyncio.create_task(query())
        active = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'"
        while not await watcher.fetchval(active, pid):
            await asyncio.sleep(0.01)
        pool.terminate()
        # The query in flight finishes; then the connection is closed.
        assert await running == 1
        with pytest.raises(fastio.pg.InterfaceError, match="closed"):
            await conn.fetchval("SELECT 1")
    finally:
        await watcher.close()
