"""The asyncio bridge: fastio's completion-queue bridge vs pyo3-async-runtimes.

Both sides await the same Rust future (it completes at once, on a tokio worker
thread) on runtimes with the same number of worker threads:
  (a) pyo3-async-runtimes' `future_into_py`, used plainly (`_fastio._noop_plain`);
  (b) the bridge fastio ships (`_fastio._noop`).
Workloads: sequential latency per await, and throughput of 100,000 awaits
gathered. Each configuration (loop x worker threads) runs in its own process;
within it the two bridges alternate round by round; figures are medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

SEQUENTIAL = 20_000
GATHERED = 100_000


async def sequential_us(make: Callable[[int], Any], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await make(i)
    return (time.perf_counter() - start) / n * 1e6


async def gathered_per_s(make: Callable[[int], Any], n: int) -> float:
    start = time.perf_counter()
    results = await asyncio.gather(*[make(i) for i in range(n)])
    elapsed = time.perf_counter() - start
    assert results[-1] == n - 1
    return n / elapsed


async def measure(rounds: int) -> dict[str, dict[str, float]]:
    from fastio import _fastio

    bridges = {"fastio": _fastio._noop, "pyo3-async-runtimes": _fastio._noop_plain}
    samples: dict[str, dict[str, list[float]]] = {
        name: {"seq_us": [], "gather_per_s": []} for name in bridges
    }
    for make in bridges.values():  # warm up: runtimes started, code paths hot
        await sequential_us(make, 1_000)
        await gathered_per_s(make, 10_000)
    for _ in range(rounds):
        for name, make in bridges.items():
            samples[name]["seq_us"].append(await sequential_us(make, SEQUENTIAL))
            samples[name]["gather_per_s"].append(await gathered_per_s(make, GATHERED))
    return {
        name: {k: statistics.median(v) for k, v in per.items()} for name, per in samples.items()
    }


def child(loop: str, rounds: int) -> None:
    if loop == "uvloop":
        import uvloop

        result = uvloop.run(measure(rounds))
    else:
        result = asyncio.run(measure(rounds))
    print(json.dumps(result))


def run_config(loop: str, workers: int, rounds: int) -> dict[str, dict[str, float]]:
    env = {**os.environ, "FASTIO_WORKER_THREADS": str(workers)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--loop", loop, "--rounds", str(rounds)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    parser.add_argument("--workers", default="1,2", help="worker-thread counts to compare")
    args = parser.parse_args()
    if args.child:
        child(args.loop, args.rounds)
        return

    rows = [
        "| workload | loop | tokio workers | fastio | pyo3-async-runtimes | fastio vs plain |",
        "|---|---|---|---|---|---|",
    ]
    for workers in [int(w) for w in args.workers.split(",")]:
        for loop in ("asyncio", "uvloop"):
            r = run_config(loop, workers, args.rounds)
            fast, plain = r["fastio"], r["pyo3-async-runtimes"]
            rows.append(
                f"| sequential await (us, lower is better) | {loop} | {workers} "
                f"| {fast['seq_us']:.1f} | {plain['seq_us']:.1f} "
                f"| {plain['seq_us'] / fast['seq_us']:.2f}x faster |"
            )
            rows.append(
                f"| 100k gathered (awaits/s, higher is better) | {loop} | {workers} "
                f"| {fast['gather_per_s']:,.0f} | {plain['gather_per_s']:,.0f} "
                f"| {fast['gather_per_s'] / plain['gather_per_s']:.2f}x |"
            )
            print(rows[-2], rows[-1], sep="\n", file=sys.stderr, flush=True)
    print(f"\n### Bridge ({args.rounds} rounds, medians)\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
