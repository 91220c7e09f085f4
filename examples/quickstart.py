"""fastio quickstart: runs with no external service.

It shows that fastio awaitables behave like asyncio's own coroutines (they run
concurrently, honour timeouts and cancellation, raise typed exceptions), then
runs a pooled SQLite database (the embedded default), then fetches from a
small aiohttp server it starts itself with fastio.fetch_all.
"""

from __future__ import annotations

import asyncio
import tempfile
import time

from aiohttp import web

import fastio


async def item(request: web.Request) -> web.Response:
    await asyncio.sleep(0.01)
    return web.json_response({"item": int(request.match_info["n"])})


async def http_demo() -> None:
    app = web.Application()
    app.router.add_get("/item/{n}", item)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        urls = [f"{base}/item/{n}" for n in range(500)] + ["not a url"]
        start = time.perf_counter()
        results = await fastio.fetch_all(urls, concurrency=50)
        ok = [r.json()["item"] for r in results if isinstance(r, fastio.Response)]
        errors = [type(r).__name__ for r in results if isinstance(r, BaseException)]
        print(
            f"fetch_all: {len(ok)} responses in order: {ok == list(range(500))}, "
            f"errors {errors}, {time.perf_counter() - start:.2f}s"
        )
    finally:
        await runner.cleanup()


async def sqlite_demo() -> None:
    """The embedded default: a pooled SQLite database in a temp dir, many
    tasks writing at once, a transaction, and a fetch."""
    with tempfile.TemporaryDirectory() as tmp:
        pool = await fastio.create_pool(f"sqlite://{tmp}/app.db", min_size=1, max_size=4)
        try:
            await pool.execute(
                "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER)"
            )
            await pool.executemany(
                "INSERT INTO users (name, age) VALUES (?, ?)",
                [(f"user{i}", 20 + i % 50) for i in range(1000)],
            )
            # 20 tasks writing through one pool: WAL + busy timeout, no SQLITE_BUSY.
            await asyncio.gather(
                *(pool.execute("UPDATE users SET age = age + 1 WHERE id = ?", i) for i in range(20))
            )
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("INSERT INTO users (name, age) VALUES (?, ?)", "ada", 36)
            rows = await pool.fetch("SELECT name, age FROM users WHERE age > ? ORDER BY id", 68)
            print(
                f"sqlite: {await pool.fetchval('SELECT count(*) FROM users')} users, "
                f"{len(rows)} older than 68, first {dict(rows[0])}"
            )
        finally:
            await pool.close()


async def main() -> None:
    # Ten tokio timers of 0.2 s each, awaited together: ~0.2 s in all.
    start = time.perf_counter()
    results = await asyncio.gather(*(fastio.sleep(0.2, i) for i in range(10)))
    print(f"gathered {results} in {time.perf_counter() - start:.2f}s")

    # asyncio.wait_for cancels the Rust future when the deadline passes.
    try:
        await asyncio.wait_for(fastio.sleep(10), timeout=0.1)
    except asyncio.TimeoutError:
        print("wait_for timed out after 0.1s; the Rust timer was dropped")

    # Tasks and TaskGroups accept fastio coroutines like any other.
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(fastio.sleep(0.05, f"task {i}")) for i in range(3)]
    print("task group:", [t.result() for t in tasks])

    # Bad input is a clear Python exception, not a crash.
    try:
        fastio.sleep(float("nan"))
    except ValueError as e:
        print(f"{type(e).__name__}: {e}")

    print(f"tokio worker threads: {fastio.runtime_worker_threads()}")

    await sqlite_demo()
    await http_demo()


if __name__ == "__main__":
    asyncio.run(main())
