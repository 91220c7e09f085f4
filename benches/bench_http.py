"""HTTP client benchmarks: fastio vs aiohttp, httpx, pyreqwest and rnet (and wrk).

Server: nginx on a free port (config in a temp dir; `apt-get install nginx wrk`
is attempted when running as root and they are missing) serving a ~100-byte
JSON document and a 1 MB file. Its listening socket is made here with CUBIC
congestion control (the kernel's BBR paces nginx's loopback sends and capped
H3 for every client); the footer names what its connections use. Everything
runs under uvloop, in one process per workload group; within a group the
clients alternate round by round and the figures are medians.

  H1  10,000 GETs, 50 in flight: fastio.fetch_all vs each peer's best loop
      (aiohttp: gather + Semaphore, as the documents do; the others: 50 workers).
  H2  the same through one `await client.get()` per request (50 workers).
  H3  200 downloads of 1 MB, 20 in flight.
  H4  peak RSS of 100,000 GETs: fastio.fetch_iter vs aiohttp gather (+ Semaphore),
      each in a fresh process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

N_SMALL = 10_000
IN_FLIGHT = 50
N_LARGE = 200
LARGE_IN_FLIGHT = 20
N_RSS = 100_000
RSS_IN_FLIGHT = 100

DOC = json.dumps(
    {"id": 12345, "name": "fastio", "tags": ["http", "tokio"], "ok": True, "score": 0.5}
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_tools() -> None:
    missing = [
        t for t in ("nginx", "wrk") if not shutil.which(t) and not os.path.exists(f"/usr/sbin/{t}")
    ]
    if missing and os.geteuid() == 0:
        print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False, env=env)


SERVER_TCP_CC = "cubic"


def server_tcp_cc(port: int) -> str:
    """The congestion control of nginx's accepted connections on `port`."""
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
        c.recv(4096)
        out = subprocess.run(
            ["ss", "-tniH", "state", "established", f"sport = :{port}"],
            capture_output=True,
            text=True,
        ).stdout
    for name in ("cubic", "bbr", "reno"):
        if f" {name} " in f" {out} ":
            return name
    return "unknown"


@contextmanager
def nginx_server() -> Iterator[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise SystemExit("nginx is required for the HTTP bench (apt-get install nginx)")
    tmp = Path(tempfile.mkdtemp(prefix="fastio-bench-nginx-"))
    (tmp / "www").mkdir()
    (tmp / "www" / "1mb.bin").write_bytes(os.urandom(1024 * 1024))
    # nginx gets its listening socket from here (its NGINX environment
    # variable, the mechanism of its binary upgrade) so that the connections
    # it accepts use CUBIC: with BBR, the kernel's pacing of nginx's sends on
    # loopback caps H3 at ~2,000-4,000 downloads/s for every client.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, SERVER_TCP_CC.encode())
    except (AttributeError, OSError):
        pass
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    user = "user root;" if os.geteuid() == 0 else ""
    conf = f"""
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    sendfile on;
    tcp_nopush on;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /json {{ default_type application/json; return 200 '{DOC}'; }}
        location / {{ root {tmp}/www; }}
    }}
}}
"""
    (tmp / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(
        [nginx, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        pass_fds=(listener.fileno(),),
        env={**os.environ, "NGINX": f"{listener.fileno()};"},
    )
    listener.close()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError as e:
                if time.monotonic() > deadline or proc.poll() is not None:
                    log = (tmp / "error.log").read_text()
                    raise SystemExit(f"nginx did not start: {log}") from e
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def wrk_rate(url: str, connections: int) -> float | None:
    wrk = shutil.which("wrk")
    if not wrk:
        return None
    out = subprocess.run(
        [wrk, "-t2", f"-c{connections}", "-d4s", url], capture_output=True, text=True
    ).stdout
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    return float(m.group(1)) if m else None


# ----------------------------------------------------------------- clients


async def workers(n: int, in_flight: int, one: Callable[[], Awaitable[int]]) -> int:
    """`in_flight` workers sharing n requests; returns the total body bytes."""
    remaining = n
    total = 0

    async def worker() -> None:
        nonlocal remaining, total
        while remaining > 0:
            remaining -= 1
            got = await one()  # not `total += await ...`: that reads total before awaiting
            total += got

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return total


class Peers:
    """One long-lived client per library, created up front (pools warm)."""

    def __init__(self) -> None:
        import aiohttp
        import httpx
        import rnet
        from pyreqwest.client import ClientBuilder

        import fastio

        self.fastio = fastio.Client(timeout=60)
        conn = aiohttp.TCPConnector(limit=0)
        self.aiohttp = aiohttp.ClientSession(connector=conn)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        self.httpx = httpx.AsyncClient(limits=limits, timeout=60)
        self.pyreqwest = ClientBuilder().timeout(_timedelta(60)).build()
        self.rnet = rnet.Client()

    async def close(self) -> None:
        await self.fastio.close()
        await self.aiohttp.close()
        await self.httpx.aclose()
        await self.pyreqwest.close()


def _timedelta(s: float) -> Any:
    import datetime

    return datetime.timedelta(seconds=s)


Runs = dict[str, Callable[[], Awaitable[Any]]]


def small_workload(peers: Peers, url: str, per_request: bool) -> Runs:
    import fastio

    urls = [url] * N_SMALL

    async def fastio_batch() -> None:
        rs = await fastio.fetch_all(urls, concurrency=IN_FLIGHT)
        assert len(rs) == N_SMALL and rs[-1].status == 200, rs[-1]

    async def fastio_each() -> None:
        async def one() -> int:
            r = await peers.fastio.get(url)
            return len(r.content)

        assert await workers(N_SMALL, IN_FLIGHT, one) == N_SMALL * len(DOC)

    async def aiohttp_gather() -> None:
        sem = asyncio.Semaphore(IN_FLIGHT)

        async def one() -> int:
            async with sem, peers.aiohttp.get(url) as r:
                return len(await r.read())

        sizes = await asyncio.gather(*(one() for _ in range(N_SMALL)))
        assert sum(sizes) == N_SMALL * len(DOC)

    async def aiohttp_each() -> None:
        async def one() -> int:
            async with peers.aiohttp.get(url) as r:
                return len(await r.read())

        assert await workers(N_SMALL, IN_FLIGHT, one) == N_SMALL * len(DOC)

    async def httpx_each() -> None:
        async def one() -> int:
            r = await peers.httpx.get(url)
            return len(r.content)

        assert await workers(N_SMALL, IN_FLIGHT, one) == N_SMALL * len(DOC)

    async def pyreqwest_each() -> None:
        async def one() -> int:
            r = await peers.pyreqwest.get(url).build().send()
            return len(await r.bytes())

        assert await workers(N_SMALL, IN_FLIGHT, one) == N_SMALL * len(DOC)

    async def rnet_each() -> None:
        async def one() -> int:
            r = await peers.rnet.get(url)
            return len(await r.bytes())

        assert await workers(N_SMALL, IN_FLIGHT, one) == N_SMALL * len(DOC)

    return {
        "fastio": fastio_each if per_request else fastio_batch,
        "aiohttp": aiohttp_each if per_request else aiohttp_gather,
        "httpx": httpx_each,
        "pyreqwest": pyreqwest_each,
        "rnet": rnet_each,
    }


def large_workload(peers: Peers, url: str) -> Runs:
    size = 1024 * 1024

    async def fastio_iter() -> None:
        total = 0
        async for _i, r in peers.fastio.fetch_iter([url] * N_LARGE, concurrency=LARGE_IN_FLIGHT):
            total += len(r.content)
        assert total == N_LARGE * size

    async def fastio_batch() -> None:
        rs = await peers.fastio.fetch_all([url] * N_LARGE, concurrency=LARGE_IN_FLIGHT)
        assert sum(len(r.content) for r in rs) == N_LARGE * size

    async def aiohttp_gather() -> None:
        sem = asyncio.Semaphore(LARGE_IN_FLIGHT)

        async def one() -> int:
            async with sem, peers.aiohttp.get(url) as r:
                return len(await r.read())

        assert sum(await asyncio.gather(*(one() for _ in range(N_LARGE)))) == N_LARGE * size

    async def httpx_each() -> None:
        async def one() -> int:
            return len((await peers.httpx.get(url)).content)

        assert await workers(N_LARGE, LARGE_IN_FLIGHT, one) == N_LARGE * size

    async def pyreqwest_each() -> None:
        async def one() -> int:
            r = await peers.pyreqwest.get(url).build().send()
            return len(await r.bytes())

        assert await workers(N_LARGE, LARGE_IN_FLIGHT, one) == N_LARGE * size

    return {
        "fastio": fastio_iter,
        "fastio fetch_all": fastio_batch,
        "aiohttp": aiohttp_gather,
        "httpx": httpx_each,
        "pyreqwest": pyreqwest_each,
    }


async def measure(
    runs: dict[str, Callable[[], Awaitable[Any]]], rounds: int, n: int
) -> dict[str, float]:
    """Requests per second, median over rounds, clients interleaved."""
    for run in runs.values():  # warm-up
        await run()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            await run()
            samples[name].append(n / (time.perf_counter() - start))
    return {name: statistics.median(v) for name, v in samples.items()}


# --------------------------------------------------------------------- RSS


RSS_CHILD = """
import asyncio, sys, uvloop
url, kind, n, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
urls = [url] * n

async def fastio_iter():
    import fastio
    done = 0
    async for _i, r in fastio.fetch_iter(urls, concurrency=k):
        done += getattr(r, "status", None) == 200
    return done

async def aiohttp_gather():
    import aiohttp
    sem = asyncio.Semaphore(k)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def one(u):
            async with sem, s.get(u) as r:
                await r.read()
                return r.status == 200
        return sum(await asyncio.gather(*(one(u) for u in urls)))

done = uvloop.run({"fastio": fastio_iter, "aiohttp": aiohttp_gather}[kind]())
assert done == n, done
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the forking parent.
with open("/proc/self/status") as f:
    print(next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")))
"""


def peak_rss_mb(url: str, kind: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, url, kind, str(N_RSS), str(RSS_IN_FLIGHT)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip().splitlines()[-1]) / 1024


# -------------------------------------------------------------------- main


def fmt_rate(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}/s"


async def run_all(base: str, rounds: int) -> dict[str, Any]:
    peers = Peers()
    try:
        h1 = await measure(small_workload(peers, f"{base}/json", False), rounds, N_SMALL)
        h2 = await measure(small_workload(peers, f"{base}/json", True), rounds, N_SMALL)
        h3 = await measure(large_workload(peers, f"{base}/1mb.bin"), rounds, N_LARGE)
        metrics = await measure(metrics_on_off(f"{base}/json"), rounds + 2, N_SMALL)
    finally:
        await peers.close()
    return {"H1": h1, "H2": h2, "H3": h3, "metrics": metrics}


def metrics_on_off(url: str) -> Runs:
    """H1's fetch_all with fastio's metrics recording on, then off."""
    import fastio

    urls = [url] * N_SMALL

    async def batch(on: bool) -> None:
        fastio.metrics.enable(on)
        try:
            rs = await fastio.fetch_all(urls, concurrency=IN_FLIGHT)
        finally:
            fastio.metrics.enable(True)
        assert rs[-1].status == 200

    async def on() -> None:
        await batch(True)

    async def off() -> None:
        await batch(False)

    return {"metrics on": on, "metrics off": off}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-rss", action="store_true")
    args = parser.parse_args()
    ensure_tools()
    import uvloop

    with nginx_server() as base:
        cc = server_tcp_cc(int(base.rsplit(":", 1)[1]))
        res = uvloop.run(run_all(base, args.rounds))
        wrk = wrk_rate(f"{base}/json", IN_FLIGHT)
        rss = None
        if not args.no_rss:
            rss = {kind: peak_rss_mb(f"{base}/json", kind) for kind in ("fastio", "aiohttp")}

    peers = ["aiohttp", "httpx", "pyreqwest", "rnet"]
    print(
        "| workload | fastio | "
        + " | ".join(peers)
        + " | wrk | fastio vs pyreqwest | vs aiohttp | vs wrk |"
    )
    print("|---|" + "---|" * (len(peers) + 5))
    titles = {
        "H1": "H1 10k GETs, 50 in flight (fetch_all)",
        "H2": "H2 10k GETs, 50 in flight (client.get each)",
        "H3": "H3 200 x 1 MB, 20 in flight (fetch_iter)",
    }
    for key, title in titles.items():
        r = res[key]
        cells = [fmt_rate(r.get(p)) for p in peers]
        w = wrk if key == "H1" else None
        f = r["fastio"]
        pr = r.get("pyreqwest")
        print(
            f"| {title} | {fmt_rate(f)} | "
            + " | ".join(cells)
            + f" | {fmt_rate(w)} | "
            + (f"{f / pr:.2f}x" if pr else "—")
            + f" | {f / r['aiohttp']:.2f}x | "
            + (f"{f / w:.2f}x" if w else "—")
            + " |"
        )
    h3b = res["H3"]["fastio fetch_all"]
    print(
        f"| H3 with fetch_all (keeps all 200 MB) | {fmt_rate(h3b)} | "
        + " | ".join(fmt_rate(res["H3"].get(p)) for p in peers)
        + f" | — | {h3b / res['H3']['pyreqwest']:.2f}x | {h3b / res['H3']['aiohttp']:.2f}x | — |"
    )
    if rss:
        ratio = rss["fastio"] / rss["aiohttp"]
        print(
            f"| H4 peak RSS, 100k GETs | fetch_iter {rss['fastio']:.0f} MB | "
            f"gather {rss['aiohttp']:.0f} MB | — | — | — | — | — | {ratio:.2f}x of aiohttp | — |"
        )
    m = res["metrics"]
    print(
        f"\nMetrics cost on H1 (fetch_all): {m['metrics on']:,.0f}/s recorded vs "
        f"{m['metrics off']:,.0f}/s off: {(1 - m['metrics on'] / m['metrics off']) * 100:+.1f}% "
        f"slower with metrics (medians of {args.rounds + 2} interleaved rounds)."
    )
    print(
        f"\nnginx (1 worker) on 127.0.0.1, ~{len(DOC)}-byte JSON and a 1 MB file; uvloop; "
        f"medians of {args.rounds} rounds, clients interleaved; {os.cpu_count()} CPUs; "
        f"nginx's connections use TCP congestion control {cc} (the kernel's default: "
        f"{tcp_congestion_control()})."
    )
    return 0


def tcp_congestion_control() -> str:
    """The kernel's default TCP congestion control, which nginx's sockets use."""
    try:
        return Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
