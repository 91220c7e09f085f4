"""Per-call cost of @fastio.monitor vs an undecorated coroutine and vs the
documents' AsyncPerformanceMonitor (a Python dict-of-lists recorder).

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


async def main() -> None:
    documents = AsyncPerformanceMonitor()
    variants = {
        "undecorated": work,
        "@fastio.monitor": fastio.monitor("bench.work")(work),
        "documents' AsyncPerformanceMonitor": documents.monitor_async_func("bench.work")(work),
    }
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        await per_call_ns(fn)
    for _ in range(ROUNDS):
        for name, fn in variants.items():
            samples[name].append(await per_call_ns(fn))
    med = {k: statistics.median(v) for k, v in samples.items()}
    base = med["undecorated"]
    print(f"\n### Monitor overhead (uvloop, {N:,} calls x {ROUNDS} rounds, medians)\n")
    print("| variant | ns per call | overhead vs undecorated (ns) |")
    print("|---|---|---|")
    for name, ns in med.items():
        print(f"| {name} | {ns:,.0f} | {ns - base:,.0f} |")
    ours = med["@fastio.monitor"] - base
    theirs = med["documents' AsyncPerformanceMonitor"] - base
    print(f"\n@fastio.monitor overhead is {theirs / ours:.1f}x lower than the documents' monitor")


if __name__ == "__main__":
    uvloop.run(main())
