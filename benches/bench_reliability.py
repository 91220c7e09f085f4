"""Per-call cost of the reliability wrappers when nothing goes wrong:

- @fastio.monitor vs an undecorated coroutine and vs the documents'
  AsyncPerformanceMonitor (a Python dict-of-lists recorder);
- @fastio.retry (no retry happens) vs the bare call and vs tenacity's
  AsyncRetrying (the usual way to retry async code).

Each variant awaits a trivial coroutine N times in a loop; rounds alternate
the variants; figures are medians. Overhead = variant - undecorated.
"""

from __future__ import annotations

import functools
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import tenacity
import uvloop

import fastio

N = 100_000
ROUNDS = 7

logger = logging.getLogger("bench.documents")
logger.setLevel(logging.WARNING)  # the documents log every call at INFO; keep it quiet


class AsyncPerformanceMonitor:
    """The documents' monitor, as written there (records successful calls)."""

    def __init__(self) -> None:
        self.metrics: dict[str, list[float]] = {}

    def monitor_async_func(self, func_name: str) -> Callable[[Any], Any]:
        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                start_time = time.perf_counter()
                try:
                    result = await func(*args, **kwargs)
                    execution_time = time.perf_counter() - start_time
                    if func_name not in self.metrics:
                        self.metrics[func_name] = []
                    self.metrics[func_name].append(execution_time)
                    logger.info(f"{func_name} 执行时间: {execution_time:.4f}秒")
                    return result
                except Exception as e:
                    execution_time = time.perf_counter() - start_time
                    logger.error(f"{func_name} 执行失败,耗时: {execution_time:.4f}秒,错误: {e}")
                    raise

            return wrapper

        return decorator


async def work(x: int) -> int:
    return x


async def per_call_ns(fn: Callable[[int], Any]) -> float:
    start = time.perf_counter_ns()
    for i in range(N):
        await fn(i)
    return (time.perf_counter_ns() - start) / N


def tenacity_wrapped(fn: Callable[[int], Any]) -> Callable[[int], Any]:
    """tenacity's documented async form: an AsyncRetrying loop per call."""

    async def call(x: int) -> Any:
        async for attempt in tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_random_exponential(multiplier=0.1, max=10),
            reraise=True,
        ):
            with attempt:
                return await fn(x)
        raise AssertionError("unreachable")

    return call


async def table(
    title: str, variants: dict[str, Callable[[int], Any]], ours: str, peer: str
) -> None:
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        await per_call_ns(fn)
    for _ in range(ROUNDS):
        for name, fn in variants.items():
            samples[name].append(await per_call_ns(fn))
    med = {k: statistics.median(v) for k, v in samples.items()}
    base = med["undecorated"]
    print(f"\n### {title} (uvloop, {N:,} calls x {ROUNDS} rounds, medians)\n")
    print("| variant | ns per call | overhead vs undecorated (ns) |")
    print("|---|---|---|")
    for name, ns in med.items():
        print(f"| {name} | {ns:,.0f} | {ns - base:,.0f} |")
    ratio = (med[peer] - base) / (med[ours] - base)
    print(f"\n{ours} overhead is {ratio:.1f}x lower than {peer}'s")


async def main() -> None:
    documents = AsyncPerformanceMonitor()
    await table(
        "Monitor overhead",
        {
            "undecorated": work,
            "@fastio.monitor": fastio.monitor("bench.work")(work),
            "documents' AsyncPerformanceMonitor": documents.monitor_async_func("bench.work")(work),
        },
        "@fastio.monitor",
        "documents' AsyncPerformanceMonitor",
    )
    await table(
        "Retry wrapper overhead, no retry needed",
        {
            "undecorated": work,
            "@fastio.retry": fastio.retry(attempts=3)(work),
            "tenacity AsyncRetrying": tenacity_wrapped(work),
        },
        "@fastio.retry",
        "tenacity AsyncRetrying",
    )


if __name__ == "__main__":
    uvloop.run(main())
