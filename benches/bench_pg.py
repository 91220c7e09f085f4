"""PostgreSQL: fastio vs asyncpg and psqlpy, all under uvloop (issue #4's P1-P4).

Table `bench_users (id int primary key, name text, email text, age int,
score float8, created_at timestamptz)` with 100,000 rows.
  P1  point select by primary key through a pool of 10, 100 concurrent tasks
      (queries/s; also asyncpg on 10 dedicated connections, and
      `pgbench -M prepared -c 10` as the ceiling when pgbench is installed)
  P2  fetch all 100,000 rows (ms)
  P3  executemany 10,000 rows; copy_records_to_table 100,000 rows (ms;
      sampled once per driver after each driver's block, drivers taking
      turns: the server does most of the work, ~30 ms of its CPU here, and
      the speed of the CPU it runs on drifts by up to 60% over seconds)
  P4  sequential point selects on one connection (us per query)
Drivers alternate round by round in one process; figures are medians.
The server is a throwaway one from tests/harness.py, or FASTIO_PG_DSN.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import fastio

ROOT = Path(__file__).resolve().parent.parent
ROWS = 100_000
P1_QUERIES = 20_000
P1_TASKS = 100
P3_ROWS = 10_000
P4_QUERIES = 5_000
POINT = "SELECT id, name, email, age, score, created_at FROM bench_users WHERE id = $1"
ALL = "SELECT id, name, email, age, score, created_at FROM bench_users"
INSERT = "INSERT INTO bench_many (id, name, score) VALUES ($1, $2, $3)"


async def setup(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await conn.execute(
        "DROP TABLE IF EXISTS bench_users;"
        "CREATE TABLE bench_users (id int primary key, name text, email text, age int,"
        " score float8, created_at timestamptz);"
        "INSERT INTO bench_users SELECT g, 'user ' || g, 'user' || g || '@example.com',"
        " 18 + g % 60, g * 0.5, now() - g * interval '1 minute'"
        f" FROM generate_series(1, {ROWS}) g;"
        "DROP TABLE IF EXISTS bench_many;"
        "CREATE UNLOGGED TABLE bench_many (id int, name text, score float8)"
    )
    await conn.execute("VACUUM ANALYZE bench_users")
    await conn.close()


class Driver:
    """One peer: a pool of 10 and one dedicated connection."""

    name = ""

    async def open(self, dsn: str) -> None: ...
    async def close(self) -> None: ...
    async def pool_point(self, i: int) -> Any: ...
    async def conn_point(self, i: int) -> Any: ...
    async def fetch_all(self) -> int: ...
    async def executemany(self, rows: list[tuple[int, str, float]]) -> None: ...
    async def copy(self, rows: list[tuple[int, str, float]]) -> None: ...
    async def backend_pid(self) -> int:
        """The server process behind the dedicated connection."""
        return int(await self.conn.fetchval("SELECT pg_backend_pid()"))


class Fastio(Driver):
    name = "fastio"

    async def open(self, dsn: str) -> None:
        import fastio

        self.pool = await fastio.create_pool(dsn, min_size=10, max_size=10)
        self.conn = await fastio.connect(dsn)

    async def close(self) -> None:
        await self.conn.close()
        await self.pool.close()

    def pool_point(self, i: int) -> Any:
        return self.pool.fetchrow(POINT, i)

    def conn_point(self, i: int) -> Any:
        return self.conn.fetchrow(POINT, i)

    async def fetch_all(self) -> int:
        return len(await self.conn.fetch(ALL))

    async def executemany(self, rows: list[tuple[int, str, float]]) -> None:
        await self.conn.executemany(INSERT, rows)

    async def copy(self, rows: list[tuple[int, str, float]]) -> None:
        await self.conn.copy_records_to_table("bench_many", records=rows)


class Asyncpg(Driver):
    name = "asyncpg"

    async def open(self, dsn: str) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
        self.conn = await asyncpg.connect(dsn)
        self.dedicated = [await asyncpg.connect(dsn) for _ in range(10)]

    async def close(self) -> None:
        for c in self.dedicated:
            await c.close()
        await self.conn.close()
        await self.pool.close()

    def pool_point(self, i: int) -> Any:
        return self.pool.fetchrow(POINT, i)

    async def dedicated_p1(self) -> float:
        """10 tasks, each alone on its own connection (no pool)."""
        per_conn = P1_QUERIES // 10

        async def worker(c: Any, base: int) -> None:
            for k in range(per_conn):
                await c.fetchrow(POINT, (base + k) % ROWS + 1)

        start = time.perf_counter()
        await asyncio.gather(*(worker(c, i * per_conn) for i, c in enumerate(self.dedicated)))
        return P1_QUERIES / (time.perf_counter() - start)

    def conn_point(self, i: int) -> Any:
        return self.conn.fetchrow(POINT, i)

    async def fetch_all(self) -> int:
        return len(await self.conn.fetch(ALL))

    async def executemany(self, rows: list[tuple[int, str, float]]) -> None:
        await self.conn.executemany(INSERT, rows)

    async def copy(self, rows: list[tuple[int, str, float]]) -> None:
        await self.conn.copy_records_to_table("bench_many", records=rows)


class Psqlpy(Driver):
    name = "psqlpy"

    async def open(self, dsn: str) -> None:
        import psqlpy

        self.pool = psqlpy.ConnectionPool(dsn=dsn, max_db_pool_size=10)
        self.conn = await self.pool.connection()

    async def close(self) -> None:
        self.conn.close()
        self.pool.close()

    async def pool_point(self, i: int) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetch_row(POINT, [i])

    def conn_point(self, i: int) -> Any:
        return self.conn.fetch_row(POINT, [i])

    async def fetch_all(self) -> int:
        return len((await self.conn.fetch(ALL)).result())

    async def executemany(self, rows: list[tuple[int, str, float]]) -> None:
        await self.conn.execute_many(INSERT, [list(r) for r in rows])

    async def copy(self, rows: list[tuple[int, str, float]]) -> None:
        await self.conn.copy_records_to_table("bench_many", [list(r) for r in rows])

    async def backend_pid(self) -> int:
        return int(await self.conn.fetch_val("SELECT pg_backend_pid()"))


async def p1(point: Callable[[int], Awaitable[Any]]) -> float:
    """Queries per second: P1_TASKS tasks share P1_QUERIES point selects."""
    per_task = P1_QUERIES // P1_TASKS

    async def worker(t: int) -> None:
        base = t * per_task
        for k in range(per_task):
            await point((base + k) % ROWS + 1)

    start = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(P1_TASKS)))
    return P1_QUERIES / (time.perf_counter() - start)


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def p4(point: Callable[[int], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    for i in range(P4_QUERIES):
        await point(i % ROWS + 1)
    return (time.perf_counter() - start) / P4_QUERIES * 1e6


def pin(pid: int, cpu: int | None) -> bool:
    """Runs a local server process on `cpu` only (None: on every CPU again);
    False when this process may not."""
    try:
        os.sched_setaffinity(pid, set(range(os.cpu_count() or 1)) if cpu is None else {cpu})
    except OSError:
        return False
    return True


async def measure(dsn: str, rounds: int, local: bool) -> tuple[dict[str, dict[str, float]], bool]:
    """Medians per driver and workload, and whether COPY ran pinned."""
    await setup(dsn)
    drivers: list[Driver] = [Fastio(), Asyncpg(), Psqlpy()]
    for d in drivers:
        await d.open(dsn)
    import asyncpg

    # TRUNCATE from a connection of its own: the backend that runs it keeps
    # the table's caches warm, which would favour whichever driver ran it.
    admin = await asyncpg.connect(dsn)
    rows = [(i, f"name {i}", i * 0.25) for i in range(P3_ROWS)]
    copy_rows = [(i, f"name {i}", i * 0.25) for i in range(ROWS)]
    samples: dict[str, dict[str, list[float]]] = {}
    pids = {d.name: await d.backend_pid() for d in drivers}
    pinned = local and all(pin(pid, None) for pid in pids.values())
    cpus = itertools.cycle(range(os.cpu_count() or 1))

    def add(name: str, key: str, value: float) -> None:
        samples.setdefault(name, {}).setdefault(key, []).append(value)

    try:
        for d in drivers:  # warm up: connections open, statements prepared
            await p1(d.pool_point)
            await p4(d.conn_point)
            assert await d.fetch_all() == ROWS
        for _ in range(rounds):
            for d in drivers:
                add(d.name, "p1", await p1(d.pool_point))
                if isinstance(d, Fastio):
                    # The cost of statement metrics: the same P1 with recording off.
                    fastio.metrics.enable(False)
                    try:
                        add("fastio (metrics off)", "p1", await p1(d.pool_point))
                    finally:
                        fastio.metrics.enable(True)
                if isinstance(d, Asyncpg):
                    add("asyncpg (10 dedicated connections)", "p1", await d.dedicated_p1())
                add(d.name, "p2", await timed(d.fetch_all) * 1e3)
                await admin.execute("TRUNCATE bench_many")
                add(d.name, "p3", await timed(lambda d=d: d.executemany(rows)) * 1e3)
                add(d.name, "p4", await p4(d.conn_point))
                # COPY: every driver in turn after each driver's block, so
                # that its samples are spread over the whole run. The server
                # does most of the work, and this machine's CPUs drift apart
                # in speed (up to 60%) for seconds at a time: with a local
                # server, every driver's backend runs this group's COPY on
                # the same CPU, the next group on the next CPU.
                cpu = next(cpus) if pinned else None
                for c in drivers:
                    await admin.execute("TRUNCATE bench_many")
                    if cpu is not None:
                        pin(pids[c.name], cpu)
                    try:
                        add(c.name, "p3c", await timed(lambda c=c: c.copy(copy_rows)) * 1e3)
                    finally:
                        if cpu is not None:
                            pin(pids[c.name], None)
    finally:
        await admin.close()
        for d in drivers:
            await d.close()
    medians = {n: {k: statistics.median(v) for k, v in per.items()} for n, per in samples.items()}
    return medians, pinned


def pgbench_tps(dsn: str) -> float | None:
    """`pgbench -M prepared -c 10` running P1's query: the server's ceiling here."""
    pgbench = shutil.which("pgbench") or next(
        iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True)), None
    )
    if pgbench is None:
        return None
    script = ROOT / "bench-results" / "p1.sql"
    script.parent.mkdir(exist_ok=True)
    script.write_text(f"\\set id random(1, {ROWS})\n" + POINT.replace("$1", ":id") + ";\n")
    out = subprocess.run(
        [
            str(pgbench),
            "-n",
            "-M",
            "prepared",
            "-c",
            "10",
            "-j",
            "2",
            "-T",
            "5",
            "-f",
            str(script),
            dsn,
        ],
        capture_output=True,
        text=True,
    )
    m = re.search(r"tps = ([\d.]+)", out.stdout)
    return float(m.group(1)) if m else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    args = parser.parse_args()
    import uvloop

    server = None
    dsn = os.environ.get("FASTIO_PG_DSN")
    if not dsn:
        sys.path.insert(0, str(ROOT / "tests"))
        from harness import PostgresServer

        server = PostgresServer()
        server.start()
        dsn = server.dsn
    try:
        r, pinned = uvloop.run(measure(dsn, args.rounds, local=server is not None))
        ceiling = pgbench_tps(dsn)
    finally:
        if server is not None:
            server.close()

    f, a, p = r["fastio"], r["asyncpg"], r["psqlpy"]
    ded = r["asyncpg (10 dedicated connections)"]["p1"]
    print(f"\n### PostgreSQL (uvloop, {args.rounds} rounds, medians)\n")
    if pinned:
        print("COPY samples: each driver's backend on the same CPU, CPUs taking turns.\n")
    print("| workload | fastio | asyncpg | psqlpy | fastio vs asyncpg | fastio vs psqlpy |")
    print("|---|---|---|---|---|---|")
    print(
        f"| P1 pool point select, 100 tasks, pool 10 (queries/s, higher is better) "
        f"| {f['p1']:,.0f} | {a['p1']:,.0f} | {p['p1']:,.0f} "
        f"| {f['p1'] / a['p1']:.2f}x | {f['p1'] / p['p1']:.2f}x |"
    )
    for key, label in (
        ("p2", f"P2 fetch {ROWS:,} rows (ms, lower is better)"),
        ("p3", f"P3 executemany {P3_ROWS:,} rows (ms, lower is better)"),
        ("p3c", f"P3 copy_records_to_table {ROWS:,} rows (ms, lower is better)"),
        ("p4", "P4 sequential point select, one connection (us/query, lower is better)"),
    ):
        print(
            f"| {label} | {f[key]:,.1f} | {a[key]:,.1f} | {p[key]:,.1f} "
            f"| {f[key] / a[key]:.2f}x time | {f[key] / p[key]:.2f}x time |"
        )
    off = r["fastio (metrics off)"]["p1"]
    print(
        f"\nP1 with fastio's statement metrics off: {off:,.0f} queries/s "
        f"(recording costs {(1 - f['p1'] / off) * 100:+.1f}%)."
    )
    print(f"\nP1 ceilings: asyncpg on 10 dedicated connections {ded:,.0f} queries/s", end="")
    if ceiling is not None:
        print(f"; `pgbench -M prepared -c 10` {ceiling:,.0f} tps", end="")
    print(".")


if __name__ == "__main__":
    main()
