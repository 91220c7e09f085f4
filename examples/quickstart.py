"""fastio quickstart: runs with no external service.

At this stage fastio ships its runtime and asyncio bridge; this program shows
that fastio awaitables behave like asyncio's own coroutines: they run
concurrently, honour timeouts and cancellation, and raise typed exceptions.
"""

from __future__ import annotations

import asyncio
import time

import fastio


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


if __name__ == "__main__":
    asyncio.run(main())
