"""MySQL and SQLite: fastio vs asyncmy / aiomysql and aiosqlite, under uvloop (issue #5).

Table `bench_users (id int primary key, name varchar(64), email varchar(128),
age int, score double, created_at datetime)` with 100,000 rows.
  M1  point select by primary key through a pool of 10, 100 concurrent tasks
      (queries/s)
  M2  fetch all 100,000 rows on one connection (ms)
  M3  executemany 10,000 rows (ms)
  M4  sequential point selects on one connection (us per query)
  S1  SQLite point select, 100 concurrent tasks (queries/s)
  S2  SQLite fetch all 100,000 rows (ms)
fastio runs twice: its native API (`fastio.create_pool`, `?` parameters,
Records) and `fastio.mysql`, the aiomysql-compatible module (cursors, `%s`,
tuples), which is what aiomysql code gets by changing its import. Every
aiomysql-style driver uses autocommit=True (with aiomysql's default of off,
a released connection inside a transaction would be closed or rolled back).
Drivers alternate round by round in one process; figures are medians.
MariaDB is a throwaway one from tests/harness.py, or FASTIO_MYSQL_DSN.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROWS = 100_000
M1_QUERIES = 20_000
M1_TASKS = 100
M3_ROWS = 10_000
M4_QUERIES = 5_000
COLUMNS = "id, name, email, age, score, created_at"
POINT_Q = f"SELECT {COLUMNS} FROM bench_users WHERE id = ?"
POINT_S = f"SELECT {COLUMNS} FROM bench_users WHERE id = %s"
ALL = f"SELECT {COLUMNS} FROM bench_users"
INSERT_Q = "INSERT INTO bench_many (id, name, score) VALUES (?, ?, ?)"
INSERT_S = "INSERT INTO bench_many (id, name, score) VALUES (%s, %s, %s)"


def conn_kwargs(dsn: str) -> dict[str, Any]:
    parts = urllib.parse.urlsplit(dsn)
    return dict(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=urllib.parse.unquote(parts.username or ""),
        password=urllib.parse.unquote(parts.password or ""),
        db=urllib.parse.unquote(parts.path.lstrip("/")),
    )


async def setup(dsn: str) -> None:
    import aiomysql

    async with aiomysql.connect(**conn_kwargs(dsn), autocommit=True) as conn:
        async with conn.cursor() as cur:
            with warnings.catch_warnings():  # "Unknown table" notes from IF EXISTS
                warnings.simplefilter("ignore")
                await cur.execute("DROP TABLE IF EXISTS bench_users")
                await cur.execute("DROP TABLE IF EXISTS bench_many")
            await cur.execute(
                "CREATE TABLE bench_users (id int primary key, name varchar(64),"
                " email varchar(128), age int, score double, created_at datetime)"
            )
            epoch = datetime.datetime(2024, 1, 1)
            for start in range(1, ROWS + 1, 10_000):
                await cur.executemany(
                    "INSERT INTO bench_users VALUES (%s, %s, %s, %s, %s, %s)",
                    [
                        (
                            g,
                            f"user {g}",
                            f"user{g}@example.com",
                            18 + g % 60,
                            g * 0.5,
                            epoch + datetime.timedelta(minutes=g),
                        )
                        for g in range(start, min(start + 10_000, ROWS + 1))
                    ],
                )
            await cur.execute("CREATE TABLE bench_many (id int, name varchar(64), score double)")
            await cur.execute("ANALYZE TABLE bench_users")


class Driver:
    """One peer: a pool of 10 and one dedicated connection."""

    name = ""

    async def open(self, dsn: str) -> None: ...
    async def close(self) -> None: ...
    async def pool_point(self, i: int) -> Any: ...
    async def conn_point(self, i: int) -> Any: ...
    async def fetch_all(self) -> int: ...
    async def executemany(self, rows: list[tuple[int, str, float]]) -> None: ...


class FastioNative(Driver):
    name = "fastio"

    async def open(self, dsn: str) -> None:
        import fastio

        self.pool = await fastio.create_pool(dsn, min_size=10, max_size=10)
        self.conn = await fastio.connect(dsn)

    async def close(self) -> None:
        await self.conn.close()
        await self.pool.close()

    def pool_point(self, i: int) -> Any:
        return self.pool.fetchrow(POINT_Q, i)

    def conn_point(self, i: int) -> Any:
        return self.conn.fetchrow(POINT_Q, i)

    async def fetch_all(self) -> int:
        return len(await self.conn.fetch(ALL))

    async def executemany(self, rows: list[tuple[int, str, float]]) -> None:
        await self.conn.executemany(INSERT_Q, rows)


class AioStyle(Driver):
    """aiomysql's API: fastio.mysql, aiomysql and asyncmy share it."""

    def __init__(self, name: str, module: ModuleType) -> None:
        self.name = name
        self.mod = module

    async def open(self, dsn: str) -> None:
        kw = conn_kwargs(dsn)
        self.pool = await self.mod.create_pool(minsize=10, maxsize=10, autocommit=True, **kw)
        self.conn = await self.mod.connect(autocommit=True, **kw)
        self.cur = await self.conn.cursor().__aenter__()

    async def close(self) -> None:
        await self.cur.close()
        self.conn.close()
        self.pool.close()
        await self.pool.wait_closed()

    async def pool_point(self, i: int) -> Any:
        async with self.pool.acquire() as conn:
            async with conn.cursor() as cur:
                await cur.execute(POINT_S, (i,))
                return await cur.fetchone()

    async def conn_point(self, i: int) -> Any:
        await self.cur.execute(POINT_S, (i,))
        return await self.cur.fetchone()

    async def fetch_all(self) -> int:
        await self.cur.execute(ALL)
        return len(await self.cur.fetchall())

    async def executemany(self, rows: list[tuple[int, str, float]]) -> None:
        await self.cur.executemany(INSERT_S, rows)


async def m1(point: Callable[[int], Awaitable[Any]]) -> float:
    """Queries per second: M1_TASKS tasks share M1_QUERIES point selects."""
    per_task = M1_QUERIES // M1_TASKS

    async def worker(t: int) -> None:
        base = t * per_task
        for k in range(per_task):
            await point((base + k) % ROWS + 1)

    start = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(M1_TASKS)))
    return M1_QUERIES / (time.perf_counter() - start)


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def m4(point: Callable[[int], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    for i in range(M4_QUERIES):
        await point(i % ROWS + 1)
    return (time.perf_counter() - start) / M4_QUERIES * 1e6


async def measure_mysql(dsn: str, rounds: int) -> dict[str, dict[str, float]]:
    import aiomysql
    import asyncmy

    import fastio.mysql

    await setup(dsn)
    drivers: list[Driver] = [
        FastioNative(),
        AioStyle("fastio.mysql", fastio.mysql),
        AioStyle("asyncmy", asyncmy),
        AioStyle("aiomysql", aiomysql),
    ]
    for d in drivers:
        await d.open(dsn)
    rows = [(i, f"name {i}", i * 0.25) for i in range(M3_ROWS)]
    samples: dict[str, dict[str, list[float]]] = {}

    def add(name: str, key: str, value: float) -> None:
        samples.setdefault(name, {}).setdefault(key, []).append(value)

    admin = await aiomysql.connect(**conn_kwargs(dsn), autocommit=True)

    async def truncate() -> None:
        async with admin.cursor() as cur:
            await cur.execute("TRUNCATE TABLE bench_many")

    try:
        for d in drivers:  # warm up: connections open, statements prepared
            await m1(d.pool_point)
            await m4(d.conn_point)
            assert await d.fetch_all() == ROWS, d.name
        for _ in range(rounds):
            for d in drivers:
                add(d.name, "m1", await m1(d.pool_point))
                add(d.name, "m2", await timed(d.fetch_all) * 1e3)
                await truncate()
                add(d.name, "m3", await timed(lambda d=d: d.executemany(rows)) * 1e3)
                add(d.name, "m4", await m4(d.conn_point))
    finally:
        admin.close()
        for d in drivers:
            await d.close()
    return {n: {k: statistics.median(v) for k, v in per.items()} for n, per in samples.items()}


# ------------------------------------------------------------------- SQLite

S_POINT = "SELECT id, name, email, age, score, created_at FROM bench_users WHERE id = ?"
S_ALL = "SELECT id, name, email, age, score, created_at FROM bench_users"


def sqlite_setup(path: str) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE bench_users (id integer primary key, name text, email text,"
        " age integer, score real, created_at text)"
    )
    db.executemany(
        "INSERT INTO bench_users VALUES (?, ?, ?, ?, ?, ?)",
        (
            (g, f"user {g}", f"user{g}@example.com", 18 + g % 60, g * 0.5, "2024-01-01 00:00:00")
            for g in range(1, ROWS + 1)
        ),
    )
    db.commit()
    db.close()


async def measure_sqlite(rounds: int) -> dict[str, dict[str, float]]:
    import aiosqlite

    import fastio

    samples: dict[str, dict[str, list[float]]] = {}

    def add(name: str, key: str, value: float) -> None:
        samples.setdefault(name, {}).setdefault(key, []).append(value)

    with tempfile.TemporaryDirectory(prefix="fastio-bench-") as tmp:
        path = os.path.join(tmp, "bench.db")
        sqlite_setup(path)
        pool = await fastio.create_pool(f"sqlite://{path}", min_size=4, max_size=4)
        peer = await aiosqlite.connect(path)

        async def fastio_point(i: int) -> Any:
            return await pool.fetchrow(S_POINT, i)

        async def peer_point(i: int) -> Any:
            async with peer.execute(S_POINT, (i,)) as cur:
                return await cur.fetchone()

        async def fastio_all() -> int:
            return len(await pool.fetch(S_ALL))

        async def peer_all() -> int:
            async with peer.execute(S_ALL) as cur:
                return len(await cur.fetchall())

        runs = (("fastio", fastio_point, fastio_all), ("aiosqlite", peer_point, peer_all))
        try:
            for _, point, fetch in runs:
                await m1(point)
                assert await fetch() == ROWS
            for _ in range(rounds):
                for name, point, fetch in runs:
                    add(name, "s1", await m1(point))
                    add(name, "s2", await timed(fetch) * 1e3)
        finally:
            await peer.close()
            await pool.close()
    return {n: {k: statistics.median(v) for k, v in per.items()} for n, per in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    parser.add_argument(
        "--only", choices=("mysql", "sqlite"), help="run one backend's workloads only"
    )
    args = parser.parse_args()
    import uvloop

    if args.only == "sqlite":
        print_sqlite(uvloop.run(measure_sqlite(args.rounds)), args.rounds)
        return
    server = None
    dsn = os.environ.get("FASTIO_MYSQL_DSN")
    if not dsn:
        sys.path.insert(0, str(ROOT / "tests"))
        from harness import MariaDBServer

        server = MariaDBServer()
        server.start()
        dsn = server.dsn
    try:
        r = uvloop.run(measure_mysql(dsn, args.rounds))
    finally:
        if server is not None:
            server.close()
    s = None if args.only == "mysql" else uvloop.run(measure_sqlite(args.rounds))

    f, c, a, m = r["fastio"], r["fastio.mysql"], r["asyncmy"], r["aiomysql"]
    print(f"\n### MySQL / MariaDB (uvloop, {args.rounds} rounds, medians)\n")
    print(
        "| workload | fastio | fastio.mysql | asyncmy | aiomysql "
        "| fastio vs asyncmy | fastio.mysql vs asyncmy | fastio vs aiomysql |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| M1 pool point select, {M1_TASKS} tasks, pool 10 (queries/s, higher is better) "
        f"| {f['m1']:,.0f} | {c['m1']:,.0f} | {a['m1']:,.0f} | {m['m1']:,.0f} "
        f"| {f['m1'] / a['m1']:.2f}x | {c['m1'] / a['m1']:.2f}x | {f['m1'] / m['m1']:.2f}x |"
    )
    for key, label in (
        ("m2", f"M2 fetch {ROWS:,} rows (ms, lower is better)"),
        ("m3", f"M3 executemany {M3_ROWS:,} rows (ms, lower is better)"),
        ("m4", "M4 sequential point select, one connection (us/query, lower is better)"),
    ):
        print(
            f"| {label} | {f[key]:,.1f} | {c[key]:,.1f} | {a[key]:,.1f} | {m[key]:,.1f} "
            f"| {f[key] / a[key]:.2f}x time | {c[key] / a[key]:.2f}x time "
            f"| {f[key] / m[key]:.2f}x time |"
        )
    if s is not None:
        print_sqlite(s, args.rounds)


def print_sqlite(s: dict[str, dict[str, float]], rounds: int) -> None:
    fs, ps = s["fastio"], s["aiosqlite"]
    print(f"\n### SQLite (uvloop, {rounds} rounds, medians)\n")
    print("| workload | fastio | aiosqlite | fastio vs aiosqlite |")
    print("|---|---|---|---|")
    print(
        f"| S1 point select, {M1_TASKS} tasks, pool 4 (queries/s, higher is better) "
        f"| {fs['s1']:,.0f} | {ps['s1']:,.0f} | {fs['s1'] / ps['s1']:.2f}x |"
    )
    print(
        f"| S2 fetch {ROWS:,} rows (ms, lower is better) "
        f"| {fs['s2']:,.1f} | {ps['s2']:,.1f} | {fs['s2'] / ps['s2']:.2f}x time |"
    )


if __name__ == "__main__":
    main()
