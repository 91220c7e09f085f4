"""Proof that the test harness gives the suite what it promises.

Every other test trusts these servers: that they are the ones configured here (port,
accounts, tuning), that a restart really drops connections and keeps data, and that
each HTTP endpoint behaves as documented. If one of these fails, fix the harness first.
The clients are the peers (asyncpg, aiomysql, aiohttp), never fastio itself.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import importlib.util
import os
import socket
import time
import uuid
import zlib
from typing import Any

import aiohttp
import aiomysql
import asyncpg
import pymysql
import pytest

from harness import ExternalServer, HTTPServer, MariaDBServer, PostgresServer
from httpserver import SLIDESHOW, deterministic_bytes


def _table() -> str:
    """A table name no other test (or an external server's other users) will collide with."""
    return f"harness_{uuid.uuid4().hex[:12]}"


def _refuses(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


# ------------------------------------------------------------------- PostgreSQL


async def test_pg_connects_with_password_and_is_tuned(
    pg_server: PostgresServer | ExternalServer,
) -> None:
    conn = await asyncpg.connect(pg_server.dsn)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert conn.get_server_version().major >= 10
        assert await conn.fetchval("SELECT current_user") == pg_server.user
        assert await conn.fetchval("SELECT current_database()") == pg_server.database
        if pg_server.can_restart:
            settings = {
                name: await conn.fetchval(f"SHOW {name}")
                for name in ("fsync", "synchronous_commit", "full_page_writes", "max_connections")
            }
            assert settings == {
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "max_connections": "200",
            }
            assert pg_server.port != 5432
    finally:
        await conn.close()


async def test_pg_table_roundtrip_by_attributes(pg_server: PostgresServer | ExternalServer) -> None:
    conn = await asyncpg.connect(
        host=pg_server.host,
        port=pg_server.port,
        user=pg_server.user,
        password=pg_server.password,
        database=pg_server.database,
    )
    table = _table()
    try:
        await conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, name text NOT NULL)")
        await conn.executemany(f"INSERT INTO {table} (name) VALUES ($1)", [("a",), ("b",)])
        rows = await conn.fetch(f"SELECT id, name FROM {table} ORDER BY id")
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b")]
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


async def test_pg_rejects_wrong_password_and_supports_md5(
    pg_server: PostgresServer | ExternalServer,
) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            host=pg_server.host, port=pg_server.port, user=pg_server.user, password="wrong"
        )
    if pg_server.md5_user is None:
        pytest.skip("the external server has no md5 role")
    conn = await asyncpg.connect(
        host=pg_server.host,
        port=pg_server.port,
        user=pg_server.md5_user,
        password=pg_server.password,
        database=pg_server.database,
    )
    try:
        assert await conn.fetchval("SELECT current_user") == pg_server.md5_user
    finally:
        await conn.close()


async def test_pg_unix_socket_gives_superuser(pg_server: PostgresServer | ExternalServer) -> None:
    if not isinstance(pg_server, PostgresServer):
        pytest.skip("the external server's socket is not ours")
    conn = await asyncpg.connect(
        host=pg_server.socket_dir,
        port=pg_server.port,
        user=pg_server.superuser,
        database="postgres",
    )
    try:
        assert await conn.fetchval("SHOW is_superuser") == "on"
    finally:
        await conn.close()


async def test_pg_restart_drops_connections_and_keeps_data(
    pg_server: PostgresServer | ExternalServer,
) -> None:
    if not pg_server.can_restart:
        pytest.skip("cannot restart an external server")
    table = _table()
    old = await asyncpg.connect(pg_server.dsn)
    try:
        await old.execute(f"CREATE TABLE {table} (v int)")
        await old.execute(f"INSERT INTO {table} VALUES (42)")
        port = pg_server.port
        pg_server.restart()
        assert pg_server.port == port
        assert pg_server.is_running()
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await old.fetchval("SELECT 1")
    finally:
        old.terminate()
    new = await asyncpg.connect(pg_server.dsn)
    try:
        assert await new.fetchval(f"SELECT v FROM {table}") == 42
    finally:
        await new.execute(f"DROP TABLE IF EXISTS {table}")
        await new.close()


async def test_pg_stop_then_start(pg_server: PostgresServer | ExternalServer) -> None:
    if not pg_server.can_restart:
        pytest.skip("cannot stop an external server")
    assert pg_server.stop() == 0
    try:
        assert not pg_server.is_running()
        assert _refuses(pg_server.host, pg_server.port)
        with pytest.raises(OSError):
            await asyncpg.connect(pg_server.dsn, timeout=5)
    finally:
        pg_server.start()
    conn = await asyncpg.connect(pg_server.dsn)
    try:
        assert await conn.fetchval("SELECT 2") == 2
    finally:
        await conn.close()


async def test_managed_server_close_removes_process_and_dir() -> None:
    if os.environ.get("FASTIO_PG_DSN"):
        pytest.skip("PostgreSQL binaries may be absent when an external server is given")
    with PostgresServer() as server:
        assert server.tmpdir.is_dir()
        conn = await asyncpg.connect(server.dsn)
        try:
            assert await conn.fetchval("SELECT 3") == 3
        finally:
            await conn.close()
    assert not server.is_running()
    assert not server.tmpdir.exists()
    assert _refuses(server.host, server.port)


async def test_external_server_from_dsn() -> None:
    server = ExternalServer("postgresql://u%40x:p%2Fw@db.example:6543/app", 5432)
    assert (server.host, server.port, server.user, server.password, server.database) == (
        "db.example",
        6543,
        "u@x",
        "p/w",
        "app",
    )
    assert not server.can_restart
    with pytest.raises(pytest.skip.Exception):
        server.restart()
    defaulted = ExternalServer("mysql://root@localhost", 3306)
    assert (defaulted.port, defaulted.database, defaulted.password) == (3306, "root", "")


# ----------------------------------------------------------------------- MariaDB


def _mysql_kwargs(server: MariaDBServer | ExternalServer) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "db": server.database,
    }


async def _scalar(conn: aiomysql.Connection, sql: str) -> object:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        (value,) = await cur.fetchone()
        return value


async def test_mysql_connects_and_is_configured(
    mysql_server: MariaDBServer | ExternalServer,
) -> None:
    assert mysql_server.dsn.startswith(f"mysql://{mysql_server.user}:")
    conn = await aiomysql.connect(**_mysql_kwargs(mysql_server))
    try:
        assert await _scalar(conn, "SELECT 1") == 1
        assert str(await _scalar(conn, "SELECT CURRENT_USER()")).startswith("fastio@")
        assert await _scalar(conn, "SELECT DATABASE()") == mysql_server.database
        if mysql_server.can_restart:
            assert "MariaDB" in str(await _scalar(conn, "SELECT VERSION()"))
            assert await _scalar(conn, "SELECT @@max_connections") == 200
            assert await _scalar(conn, "SELECT @@character_set_server") == "utf8mb4"
            assert mysql_server.port != 3306
    finally:
        await conn.ensure_closed()


async def test_mysql_table_roundtrip(mysql_server: MariaDBServer | ExternalServer) -> None:
    conn = await aiomysql.connect(**_mysql_kwargs(mysql_server), autocommit=True)
    table = _table()
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, name TEXT) ENGINE=InnoDB"
            )
            await cur.executemany(f"INSERT INTO {table} (name) VALUES (%s)", ["a", "ü"])
            await cur.execute(f"SELECT id, name FROM {table} ORDER BY id")
            assert await cur.fetchall() == ((1, "a"), (2, "ü"))
            await cur.execute(f"DROP TABLE {table}")
    finally:
        await conn.ensure_closed()


async def test_mysql_rejects_wrong_password(mysql_server: MariaDBServer | ExternalServer) -> None:
    kwargs = {**_mysql_kwargs(mysql_server), "password": "wrong"}
    with pytest.raises(pymysql.err.OperationalError) as info:
        await aiomysql.connect(**kwargs)
    assert info.value.args[0] == 1045  # ER_ACCESS_DENIED_ERROR


async def test_mysql_unix_socket(mysql_server: MariaDBServer | ExternalServer) -> None:
    if mysql_server.unix_socket is None:
        pytest.skip("the external server's socket is not ours")
    conn = await aiomysql.connect(
        unix_socket=mysql_server.unix_socket,
        user=mysql_server.user,
        password=mysql_server.password,
        db=mysql_server.database,
    )
    try:
        assert str(await _scalar(conn, "SELECT CURRENT_USER()")) == "fastio@localhost"
    finally:
        await conn.ensure_closed()


async def test_mysql_restart_drops_connections_and_keeps_data(
    mysql_server: MariaDBServer | ExternalServer,
) -> None:
    if not mysql_server.can_restart:
        pytest.skip("cannot restart an external server")
    table = _table()
    old = await aiomysql.connect(**_mysql_kwargs(mysql_server), autocommit=True)
    try:
        async with old.cursor() as cur:
            await cur.execute(f"CREATE TABLE {table} (v INT) ENGINE=InnoDB")
            await cur.execute(f"INSERT INTO {table} VALUES (42)")
        port = mysql_server.port
        mysql_server.restart()
        assert mysql_server.port == port
        assert mysql_server.is_running()
        with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)):
            await _scalar(old, "SELECT 1")
    finally:
        old.close()
    new = await aiomysql.connect(**_mysql_kwargs(mysql_server), autocommit=True)
    try:
        assert await _scalar(new, f"SELECT v FROM {table}") == 42
    finally:
        async with new.cursor() as cur:
            await cur.execute(f"DROP TABLE IF EXISTS {table}")
        await new.ensure_closed()


async def test_mysql_stop_then_start(mysql_server: MariaDBServer | ExternalServer) -> None:
    if not mysql_server.can_restart:
        pytest.skip("cannot stop an external server")
    assert mysql_server.stop() == 0
    try:
        assert not mysql_server.is_running()
        with pytest.raises(pymysql.err.OperationalError) as info:
            await aiomysql.connect(**_mysql_kwargs(mysql_server), connect_timeout=5)
        assert info.value.args[0] == 2003  # CR_CONN_HOST_ERROR: nothing listening
    finally:
        mysql_server.start()
    conn = await aiomysql.connect(**_mysql_kwargs(mysql_server))
    try:
        assert await _scalar(conn, "SELECT 2") == 2
    finally:
        await conn.ensure_closed()


# ---------------------------------------------------------------------------- HTTP


async def test_http_get_echoes_args_and_headers(http_server: HTTPServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{http_server.url}/get",
            params=[("a", "1"), ("a", "2"), ("b", "x")],
            headers={"x-fastio-test": "yes"},
        ) as resp:
            assert resp.status == 200
            body = await resp.json()
    assert body["args"] == {"a": ["1", "2"], "b": "x"}
    assert body["headers"]["X-Fastio-Test"] == "yes"
    assert body["origin"] == "127.0.0.1"


async def test_http_fixed_documents(http_server: HTTPServer) -> None:
    async with aiohttp.ClientSession(base_url=http_server.url) as session:
        async with session.get("/json") as resp:
            assert await resp.json() == SLIDESHOW
        uuids = set()
        for _ in range(2):
            async with session.get("/uuid") as resp:
                uuids.add(uuid.UUID((await resp.json())["uuid"]))
        assert len(uuids) == 2
        async with session.get("/headers", headers={"X-Probe": "1"}) as resp:
            assert (await resp.json())["headers"]["X-Probe"] == "1"


async def test_http_status_codes(http_server: HTTPServer) -> None:
    async with aiohttp.ClientSession(base_url=http_server.url) as session:
        for code in (200, 201, 204, 404, 418, 500, 503):
            async with session.get(f"/status/{code}") as resp:
                assert resp.status == code
        async with session.get("/status/302", allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (302, "/get")
        async with session.get("/status/99") as resp:
            assert resp.status == 400


async def test_http_redirects(http_server: HTTPServer) -> None:
    async with aiohttp.ClientSession(base_url=http_server.url) as session:
        async with session.get("/redirect/3") as resp:
            assert resp.status == 200
            assert resp.url.path == "/get"
            assert [r.headers["Location"] for r in resp.history] == [
                "/redirect/2",
                "/redirect/1",
                "/get",
            ]
        async with session.get("/absolute-redirect/2") as resp:
            assert resp.url.path == "/get"
            assert len(resp.history) == 2
            assert all(r.headers["Location"].startswith(http_server.url) for r in resp.history)
        async with session.get(
            "/redirect-to", params={"url": "/uuid", "status_code": "307"}, allow_redirects=False
        ) as resp:
            assert (resp.status, resp.headers["Location"]) == (307, "/uuid")


async def test_http_compressed_bodies(http_server: HTTPServer) -> None:
    async with aiohttp.ClientSession(base_url=http_server.url, auto_decompress=False) as raw:
        async with raw.get("/gzip") as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert b'"gzipped": true' in gzip.decompress(await resp.read())
        async with raw.get("/deflate") as resp:
            assert resp.headers["Content-Encoding"] == "deflate"
            assert b'"deflated": true' in zlib.decompress(await resp.read())
        async with raw.get("/brotli") as resp:
            if importlib.util.find_spec("brotli") is None:
                assert resp.status == 501
            else:
                assert resp.headers["Content-Encoding"] == "br"
        async with raw.get("/zstd") as resp:
            if importlib.util.find_spec("zstandard") is None:
                assert resp.status == 501
            else:
                import zstandard

                assert resp.headers["Content-Encoding"] == "zstd"
                body = zstandard.ZstdDecompressor().decompressobj().decompress(await resp.read())
                assert b'"zstd": true' in body
    async with aiohttp.ClientSession(base_url=http_server.url) as session:
        async with session.get("/gzip") as resp:
            assert (await resp.json())["gzipped"] is True


async def test_http_bytes_streams_and_large_bodies(http_server: HTTPServer) -> None:
    async with aiohttp.ClientSession(base_url=http_server.url) as session:
        async with session.get("/bytes/1000", params={"seed": "3"}) as resp:
            assert await resp.read() == deterministic_bytes(1000, 3)
        async with session.get("/stream-bytes/100000", params={"chunk_size": "1000"}) as resp:
            assert resp.headers["Transfer-Encoding"] == "chunked"
            assert await resp.read() == deterministic_bytes(100000)
        async with session.get("/large/3") as resp:
            size = 3 * 1024 * 1024
            assert resp.content_length == size
            body = await resp.read()
            assert len(body) == size
            assert body[:65536] == deterministic_bytes(65536)


async def test_http_delay_and_drip_take_their_time(http_server: HTTPServer) -> None:
    async with aiohttp.ClientSession(base_url=http_server.url) as session:
        start = time.monotonic()
        async with session.get("/delay/0.3") as resp:
            assert (await resp.json())["delay"] == 0.3
        assert time.monotonic() - start >= 0.3
        start = time.monotonic()
        async with session.get("/drip", params={"duration": "0.3", "numbytes": "3"}) as resp:
            assert await resp.read() == b"***"
        assert time.monotonic() - start >= 0.3


async def test_http_echo_methods_and_bodies(http_server: HTTPServer) -> None:
    async with aiohttp.ClientSession(base_url=http_server.url) as session:
        async with session.post("/anything/x", params={"q": "1"}, json={"a": [1, 2]}) as resp:
            body = await resp.json()
        assert (body["method"], body["args"], body["json"]) == ("POST", {"q": "1"}, {"a": [1, 2]})
        assert body["body_sha256"] == hashlib.sha256(b'{"a": [1, 2]}').hexdigest()
        for method in ("PUT", "PATCH", "DELETE"):
            async with session.request(method, f"/{method.lower()}", data=b"\xff\x00") as resp:
                body = await resp.json()
            assert body["method"] == method
            assert body["data"] == "data:application/octet-stream;base64,/wA="
        async with session.post("/post", data={"field": "v"}) as resp:
            assert (await resp.json())["form"] == {"field": "v"}
        form = aiohttp.FormData()
        form.add_field("name", "x")
        form.add_field("upload", b"file body", filename="f.txt")
        async with session.post("/post", data=form) as resp:
            body = await resp.json()
        assert (body["form"], body["files"]) == ({"name": "x"}, {"upload": "file body"})
        async with session.get("/post") as resp:
            assert resp.status == 405


async def test_http_response_headers_retry_after_and_flaky(http_server: HTTPServer) -> None:
    async with aiohttp.ClientSession(base_url=http_server.url) as session:
        params = [("X-Multi", "a"), ("X-Multi", "b"), ("X-One", "1")]
        async with session.get("/response-headers", params=params) as resp:
            assert resp.headers.getall("X-Multi") == ["a", "b"]
            assert resp.headers["X-One"] == "1"
        async with session.get("/retry-after/2") as resp:
            assert (resp.status, resp.headers["Retry-After"]) == (429, "2")
        async with session.post("/flaky/reset") as resp:
            assert resp.status == 200
        statuses = []
        for _ in range(3):
            async with session.get("/flaky/k/2", params={"status": "503"}) as resp:
                statuses.append(resp.status)
        assert statuses == [503, 503, 200]
        async with session.get("/flaky/k/count") as resp:
            assert (await resp.json())["attempts"] == 3
        async with session.get("/flaky/r/1", params={"retry_after": "1"}) as resp:
            assert (resp.status, resp.headers["Retry-After"]) == (500, "1")


async def test_http_cookies_and_basic_auth(http_server: HTTPServer) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for a bare IP need unsafe=True
    async with aiohttp.ClientSession(base_url=http_server.url, cookie_jar=jar) as session:
        async with session.get("/cookies/set", params={"flavor": "oat"}) as resp:
            assert await resp.json() == {"cookies": {"flavor": "oat"}}
        async with session.get("/basic-auth/u/p") as resp:
            assert resp.status == 401
        credentials = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
        async with session.get("/basic-auth/u/p", headers=credentials) as resp:
            assert (await resp.json())["authenticated"] is True


async def test_http_concurrency_accounting(http_server: HTTPServer) -> None:
    async with aiohttp.ClientSession(base_url=http_server.url) as session:
        async with session.post("/concurrency/reset") as resp:
            assert (await resp.json())["total"] == 0

        async def hold() -> int:
            async with session.get("/concurrency/hold", params={"ms": "300"}) as resp:
                return resp.status

        assert await asyncio.gather(*(hold() for _ in range(5))) == [200] * 5
        async with session.get("/concurrency/stats") as resp:
            assert await resp.json() == {"current": 0, "max": 5, "total": 5}


async def _connection_stats(url: str, **params: str) -> dict[str, int]:
    """Asked over a connection of its own, so the stats leave it out."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/connections", params=params) as resp:
            return await resp.json()


async def test_http_hang_and_connection_accounting(http_server: HTTPServer) -> None:
    baseline = await _connection_stats(http_server.url)
    async with aiohttp.ClientSession(base_url=http_server.url) as session:
        async with session.get("/hang") as resp:
            assert resp.status == 200
            assert await resp.content.readexactly(7) == b"partial"
            during = await _connection_stats(http_server.url)
            assert during["open"] == baseline["open"] + 1
            # aiohttp closes the connection when a body read is cancelled
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(resp.read(), 0.3)
        with pytest.raises(asyncio.TimeoutError):
            await session.get("/hang-headers", timeout=aiohttp.ClientTimeout(total=0.3))
    after = await _connection_stats(http_server.url, max_open=str(baseline["open"]), timeout="5")
    assert after["open"] <= baseline["open"]
    assert after["closed"] >= baseline["closed"] + 2


async def test_http_restart_keeps_port_and_drops_connections(http_server: HTTPServer) -> None:
    url = http_server.url
    async with aiohttp.ClientSession(base_url=url) as session:
        async with session.get("/hang") as resp:
            assert await resp.content.readexactly(7) == b"partial"
            assert http_server.stop() == 0  # SIGTERM exits cleanly despite the hung request
            assert not http_server.is_running()
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        http_server.start()
        assert http_server.url == url
        async with session.get("/get") as resp:
            assert resp.status == 200
    http_server.restart()
    assert http_server.url == url
    assert http_server.is_running()
