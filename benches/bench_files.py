"""Files and JSON lines: fastio vs aiofiles + json, orjson, and plain json.

A JSON-lines file of mixed records (ints, floats, strings with unicode and
escapes, bools, nulls, nested lists and dicts; 1 in 100 records holds an
integer beyond 64 bits) is generated in a temp dir. Workloads:

  J1  read every record into a list: fastio.read_jsonl vs a synchronous loop
      of orjson.loads per line, a synchronous loop of json.loads per line, and
      the documents' aiofiles line loop + json.loads (on a prefix of the file,
      scaled: it takes minutes on the whole file). Also checks exactness
      against json.loads.
  J2  peak RSS of a process that counts the records with iter_jsonl vs one
      that holds read_jsonl's list (each in its own subprocess).
  J3  write records: fastio.write_jsonl vs aiofiles + json.dumps per record.
  J4  `async for line in f`: fastio.aiofiles vs aiofiles.

Variants alternate round by round; figures are medians. Runs standalone
(`python benches/bench_files.py`) and from benches/run_all.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiofiles
import orjson

import fastio
import fastio.aiofiles

WORDS = ["alpha", "beta", "délta", "东京", "naïve", 'quote"d', "tab\there", "😀", None]
CITIES = ["Zürich", "Paris", "Oslo"]


def make_record(i: int, rng: random.Random) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": i,
        "name": f"user_{i}",
        "score": round(rng.random() * 1000, 3),
        "active": rng.random() < 0.5,
        "tags": [rng.choice(WORDS)],
        "meta": {"city": rng.choice(CITIES), "n": rng.randrange(100)},
    }
    if i % 100 == 0:
        rec["big"] = 2**80 + i  # beyond 64 bits: json.loads keeps it an int
    return rec


def generate(path: str, n: int) -> None:
    rng = random.Random(42)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps(make_record(i, rng), ensure_ascii=False))
            f.write("\n")


def head(src: str, dst: str, n: int) -> None:
    with open(src, "rb") as f, open(dst, "wb") as out:
        for i, line in enumerate(f):
            if i >= n:
                break
            out.write(line)


# ---------------------------------------------------------------- J1 ----


def orjson_loop(path: str) -> list[Any]:
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f]


def json_loop(path: str) -> list[Any]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


async def aiofiles_loop(path: str) -> list[Any]:
    # The documents' pipeline: an awaited readline and json.loads per line.
    data = []
    async with aiofiles.open(path) as f:
        async for line in f:
            data.append(json.loads(line.strip()))
    return data


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


async def atimed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


def exactness(path: str) -> dict[str, int]:
    """Records that differ from json.loads' result (value or type of a number)."""
    ref = json_loop(path)

    def same(a: Any, b: Any) -> bool:
        if type(a) is not type(b):
            return False
        if isinstance(a, dict):
            return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return bool(a == b)

    mine = asyncio.run(fastio.read_jsonl(path))
    theirs = orjson_loop(path)
    return {
        "fastio": sum(not same(a, b) for a, b in zip(mine, ref)) + abs(len(mine) - len(ref)),
        "orjson": sum(not same(a, b) for a, b in zip(theirs, ref)) + abs(len(theirs) - len(ref)),
    }


# ---------------------------------------------------------------- J2 ----

# VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child would report the
# parent's peak.
RSS_CHILD = r"""
import asyncio, sys
import fastio

async def main(kind, path, batch):
    if kind == "iter_jsonl":
        n = 0
        async for _ in fastio.iter_jsonl(path, batch_size=batch):
            n += 1
    elif kind == "read_jsonl":
        n = len(await fastio.read_jsonl(path))
    else:
        n = 0
    return n

n = asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(n, hwm)
"""


def peak_rss_mb(kind: str, path: str, batch: int) -> tuple[int, float]:
    out = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, kind, path, str(batch)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]), int(out[1]) / 1024


# ---------------------------------------------------------------- J3 ----


async def aiofiles_write(path: str, records: list[Any]) -> None:
    async with aiofiles.open(path, "w") as f:
        for r in records:
            await f.write(json.dumps(r) + "\n")


# ---------------------------------------------------------------- J4 ----


async def count_lines(opener: Callable[..., Any], path: str) -> int:
    n = 0
    async with opener(path) as f:
        async for _ in f:
            n += 1
    return n


def fmt_s(x: float) -> str:
    return f"{x:.2f} s" if x >= 0.1 else f"{x * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--records", type=int, default=int(os.environ.get("BENCH_RECORDS", "1000000"))
    )
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    parser.add_argument(
        "--slow-records",
        type=int,
        default=100_000,
        help="records for the per-line aiofiles variants (scaled to --records)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fastio-bench-") as tmp:
        path = os.path.join(tmp, "data.jsonl")
        small = os.path.join(tmp, "small.jsonl")
        print(f"generating {args.records:,} records ...", file=sys.stderr, flush=True)
        generate(path, args.records)
        slow_n = min(args.slow_records, args.records)
        head(path, small, slow_n)
        size_mb = os.path.getsize(path) / 1e6
        scale = args.records / slow_n

        # J1 -------------------------------------------------------------
        j1: dict[str, list[float]] = {k: [] for k in ("fastio", "orjson", "json", "aiofiles")}
        asyncio.run(fastio.read_jsonl(small))  # warm up
        for r in range(args.rounds):
            j1["orjson"].append(timed(lambda: orjson_loop(path)))
            j1["fastio"].append(asyncio.run(atimed(lambda: fastio.read_jsonl(path))))
            j1["json"].append(timed(lambda: json_loop(path)))
            j1["aiofiles"].append(asyncio.run(atimed(lambda: aiofiles_loop(small))) * scale)
            print(
                f"J1 round {r}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in j1.items()),
                file=sys.stderr,
                flush=True,
            )
        exact = exactness(path)
        m1 = {k: statistics.median(v) for k, v in j1.items()}

        # J2 -------------------------------------------------------------
        j2: dict[str, list[float]] = {
            "baseline": [],
            "iter_jsonl(1000)": [],
            "iter_jsonl(10000)": [],
            "read_jsonl": [],
        }
        counts = set()
        for _ in range(max(1, min(args.rounds, 3))):
            j2["baseline"].append(peak_rss_mb("none", path, 1)[1])
            for name, kind, batch in (
                ("iter_jsonl(1000)", "iter_jsonl", 1000),
                ("iter_jsonl(10000)", "iter_jsonl", 10000),
                ("read_jsonl", "read_jsonl", 0),
            ):
                n, rss = peak_rss_mb(kind, path, batch)
                counts.add(n)
                j2[name].append(rss)
        assert counts == {args.records}, counts
        m2 = {k: statistics.median(v) for k, v in j2.items()}

        # J3 -------------------------------------------------------------
        records = asyncio.run(fastio.read_jsonl(path))
        first = records[:slow_n]
        out_fast = os.path.join(tmp, "out_fast.jsonl")
        out_aio = os.path.join(tmp, "out_aio.jsonl")
        j3: dict[str, list[float]] = {"fastio": [], "aiofiles": []}
        for r in range(args.rounds):
            j3["aiofiles"].append(
                asyncio.run(atimed(lambda: aiofiles_write(out_aio, first))) * scale
            )
            j3["fastio"].append(asyncio.run(atimed(lambda: fastio.write_jsonl(out_fast, records))))
            print(
                f"J3 round {r}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in j3.items()),
                file=sys.stderr,
                flush=True,
            )
        records = first = []
        with open(out_fast, "rb") as a, open(out_aio, "rb") as b:
            expected = b.read()
            identical = a.read(len(expected)) == expected
        m3 = {k: statistics.median(v) for k, v in j3.items()}

        # J4 -------------------------------------------------------------
        j4: dict[str, list[float]] = {"fastio": [], "aiofiles": []}
        for r in range(args.rounds):
            for name, opener in (("aiofiles", aiofiles.open), ("fastio", fastio.aiofiles.open)):
                start = time.perf_counter()
                n = asyncio.run(count_lines(opener, small))
                j4[name].append(time.perf_counter() - start)
                assert n == slow_n, (name, n)
            print(
                f"J4 round {r}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in j4.items()),
                file=sys.stderr,
                flush=True,
            )
        m4 = {k: statistics.median(v) for k, v in j4.items()}

    us = lambda s, n: s / n * 1e6  # noqa: E731
    print(
        f"\n### Files and JSON lines ({args.rounds} rounds, medians; "
        f"{args.records:,} records, {size_mb:.0f} MB)\n"
    )
    print("| workload | fastio | peer | peer figure | fastio vs peer |")
    print("|---|---|---|---|---|")
    for peer, label in (
        ("orjson", "sync loop, orjson.loads per line"),
        ("json", "sync loop, json.loads per line"),
        ("aiofiles", f"aiofiles line loop + json.loads (scaled from {slow_n:,})"),
    ):
        print(
            f"| J1 read all records | {fmt_s(m1['fastio'])} | {label} | {fmt_s(m1[peer])} "
            f"| {m1[peer] / m1['fastio']:.2f}x |"
        )
    print(
        f"| J1 records differing from json.loads | {exact['fastio']} | orjson | "
        f"{exact['orjson']} | (ints beyond 64 bits) |"
    )
    for name in ("iter_jsonl(1000)", "iter_jsonl(10000)"):
        print(
            f"| J2 peak RSS, {name} | {m2[name]:.0f} MB | read_jsonl | {m2['read_jsonl']:.0f} MB "
            f"| {m2['read_jsonl'] / m2[name]:.1f}x less "
            f"(interpreter alone: {m2['baseline']:.0f} MB) |"
        )
    print(
        f"| J3 write all records | {fmt_s(m3['fastio'])} "
        f"| aiofiles + json.dumps per record (scaled from {slow_n:,}) "
        f"| {fmt_s(m3['aiofiles'])} | {m3['aiofiles'] / m3['fastio']:.1f}x (same bytes: "
        f"{'yes' if identical else 'NO'}) |"
    )
    print(
        f"| J4 `async for line` over {slow_n:,} lines | {fmt_s(m4['fastio'])} "
        f"({us(m4['fastio'], slow_n):.2f} us/line) | aiofiles | {fmt_s(m4['aiofiles'])} "
        f"({us(m4['aiofiles'], slow_n):.1f} us/line) | {m4['aiofiles'] / m4['fastio']:.1f}x |"
    )


if __name__ == "__main__":
    main()
