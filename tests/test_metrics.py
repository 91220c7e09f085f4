"""Metrics (src/metrics.rs, python/fastio/metrics.py) and the aiohttp integration."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

import fastio
import fastio.integrations.aiohttp
from fastio import _fastio


@pytest.fixture(autouse=True)
def clean_metrics() -> None:
    fastio.metrics.reset()


def series(family: str, **labels: str) -> dict[str, object]:
    matches = [s for s in fastio.metrics.snapshot()[family] if s["labels"] == labels]
    assert len(matches) == 1, (family, labels, fastio.metrics.snapshot()[family])
    return matches[0]


def prometheus() -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(fastio.metrics.render_prometheus())}


async def test_monitor_counts_calls_errors_and_cancellations_exactly() -> None:
    @fastio.monitor("t.counts")
    async def work(i: int) -> int:
        await fastio.sleep(0.001)
        if i % 4 == 0:
            raise ValueError(i)
        return i

    results = await asyncio.gather(*(work(i) for i in range(20)), return_exceptions=True)
    assert sum(isinstance(r, ValueError) for r in results) == 5
    task = asyncio.create_task(work(1))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    s = series("monitor", name="t.counts")
    assert (s["count"], s["errors"], s["cancelled"], s["in_flight"]) == (21, 5, 1, 0)


async def test_monitor_in_flight_gauge() -> None:
    release = asyncio.Event()

    @fastio.monitor("t.inflight")
    async def wait() -> None:
        await release.wait()

    tasks = [asyncio.create_task(wait()) for _ in range(7)]
    await asyncio.sleep(0.01)
    assert series("monitor", name="t.inflight")["in_flight"] == 7
    release.set()
    await asyncio.gather(*tasks)
    s = series("monitor", name="t.inflight")
    assert (s["in_flight"], s["count"]) == (0, 7)


def test_percentiles_within_one_percent_and_exact_extremes() -> None:
    s = _fastio.metric_series("monitor", ["t.percentiles"])
    values_ms = list(range(1, 1001))  # 1 ms .. 1000 ms
    for v in reversed(values_ms):
        s.record(v / 1000, 0)
    snap = series("monitor", name="t.percentiles")
    for key, want in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert abs(snap[key] - want) / want < 0.01, (key, snap[key])
    assert snap["max"] == pytest.approx(1.0, rel=1e-9)
    assert snap["min"] == pytest.approx(0.001, rel=1e-9)
    assert snap["total"] == pytest.approx(sum(values_ms) / 1000, rel=1e-6)
    assert snap["avg"] == pytest.approx(0.5005, rel=1e-6)


async def test_monitor_on_methods_sync_functions_and_default_name() -> None:
    class Service:
        def __init__(self) -> None:
            self.calls = 0

        @fastio.monitor("t.method")
        async def handle(self, x: int) -> int:
            self.calls += 1
            return x * 2

    @fastio.monitor
    def plain(x: int) -> int:
        return x + 1

    svc = Service()
    assert [await svc.handle(i) for i in range(3)] == [0, 2, 4]
    assert svc.calls == 3
    assert plain(1) == 2
    assert Service.handle.__name__ == "handle"  # functools.wraps
    assert series("monitor", name="t.method")["count"] == 3
    qualname = "test_monitor_on_methods_sync_functions_and_default_name.<locals>.plain"
    assert series("monitor", name=qualname)["count"] == 1


def test_monitor_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="name must be a str"):
        fastio.monitor(42)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="expected a function"):
        fastio.monitor("x")(42)  # type: ignore[type-var]
    with pytest.raises(fastio.InvalidArgumentError, match="unknown family"):
        _fastio.metric_series("nope", ["a"])
    with pytest.raises(fastio.InvalidArgumentError, match="takes labels"):
        _fastio.metric_series("monitor", ["a", "b"])


async def test_prometheus_text_parses_and_matches_the_snapshot() -> None:
    @fastio.monitor('t.prom "quoted"\\name')
    async def work(fail: bool) -> None:
        if fail:
            raise RuntimeError

    for i in range(10):
        try:
            await work(i < 3)
        except RuntimeError:
            pass
    families = prometheus()
    label = 't.prom "quoted"\\name'
    calls = {s.labels["name"]: s.value for s in families["fastio_monitor_calls"].samples}
    errors = {s.labels["name"]: s.value for s in families["fastio_monitor_errors"].samples}
    assert calls[label] == 10 and errors[label] == 3
    hist = families["fastio_monitor_duration_seconds"]
    assert hist.type == "histogram"
    samples = [s for s in hist.samples if s.labels["name"] == label]
    buckets = [s for s in samples if s.name.endswith("_bucket")]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 10
    (count,) = [s.value for s in samples if s.name.endswith("_count")]
    (total,) = [s.value for s in samples if s.name.endswith("_sum")]
    assert count == 10
    assert total == pytest.approx(series("monitor", name=label)["total"], rel=1e-6)


async def test_reset_zeroes_counters() -> None:
    @fastio.monitor("t.reset")
    async def work() -> None:
        pass

    await work()
    assert series("monitor", name="t.reset")["count"] == 1
    fastio.metrics.reset()
    assert series("monitor", name="t.reset")["count"] == 0
    await work()
    assert series("monitor", name="t.reset")["count"] == 1


async def test_report_is_a_readable_table() -> None:
    @fastio.monitor("t.report")
    async def work() -> None:
        await fastio.sleep(0.001)

    for _ in range(4):
        await work()
    text = fastio.metrics.report()
    header, rule, *rows = text.splitlines()
    assert header.split()[:3] == ["name", "calls", "errors"]
    assert set(rule) == {"-"}
    (row,) = [r for r in rows if r.startswith("t.report")]
    assert row.split()[1:3] == ["4", "0"]


async def test_documents_monitoring_example_on_fastio() -> None:
    # The documents' monitoring_example: 5 calls of a 0.1 s coroutine.
    @fastio.monitor("test_function")
    async def monitored_function() -> str:
        await asyncio.sleep(0.1)
        return "处理完成"

    for _ in range(5):
        assert await monitored_function() == "处理完成"
    stats = series("monitor", name="test_function")
    assert stats["count"] == 5
    assert 0.099 <= stats["min"] <= stats["avg"] <= stats["max"] < 0.5
    assert stats["total"] == pytest.approx(stats["avg"] * 5, rel=1e-6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_aiohttp_app_serves_metrics_and_times_handlers_by_route() -> None:
    async def user(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"]})

    async def boom(request: web.Request) -> web.Response:
        raise web.HTTPServiceUnavailable()

    app = web.Application()
    app.router.add_get("/users/{id}", user)
    app.router.add_get("/boom", boom)
    fastio.integrations.aiohttp.setup(app)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            for i in range(5):
                async with session.get(f"/users/{i}") as r:
                    assert r.status == 200
            async with session.get("/boom") as r:
                assert r.status == 503
            async with session.get("/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await r.text()
    finally:
        await runner.cleanup()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    calls = {
        (s.labels["route"], s.labels["status_class"]): s.value
        for s in families["fastio_http_server_calls"].samples
    }
    assert calls == {("/users/{id}", "2xx"): 5, ("/boom", "5xx"): 1}
    errors = {s.labels["route"]: s.value for s in families["fastio_http_server_errors"].samples}
    assert errors == {"/users/{id}": 0, "/boom": 1}
    in_flight = [s.value for s in families["fastio_http_server_in_flight"].samples]
    assert in_flight and all(v == 0 for v in in_flight)


async def test_disabled_metrics_record_nothing() -> None:
    @fastio.monitor("t.disabled")
    async def work() -> None:
        pass

    await work()
    fastio.metrics.enable(False)
    try:
        assert not fastio.metrics.enabled()
        await work()
        await work()
    finally:
        fastio.metrics.enable(True)
    await work()
    s = series("monitor", name="t.disabled")
    assert (s["count"], s["in_flight"]) == (2, 0)


async def test_http_client_requests_are_counted_by_host_method_and_status(http_server) -> None:
    host = http_server.url.split("//", 1)[1]
    async with fastio.Client(timeout=10) as client:
        for _ in range(4):
            await client.get(f"{http_server.url}/get")
        await client.post(f"{http_server.url}/status/404")
        results = await client.fetch_all([f"{http_server.url}/status/500"] * 3)
        assert [r.status for r in results] == [500] * 3
        with pytest.raises(fastio.ConnectError):
            await client.get("http://127.0.0.1:9/")
    ok = series("http_client", host=host, method="GET", status_class="2xx")
    assert (ok["count"], ok["errors"], ok["in_flight"]) == (4, 0, 0)
    assert ok["p50"] > 0 and ok["max"] >= ok["p50"]
    assert series("http_client", host=host, method="POST", status_class="4xx")["count"] == 1
    five = series("http_client", host=host, method="GET", status_class="5xx")
    assert (five["count"], five["errors"]) == (3, 3)
    refused = series("http_client", host="127.0.0.1:9", method="GET", status_class="error")
    assert (refused["count"], refused["errors"]) == (1, 1)
    calls = {
        (s.labels["host"], s.labels["status_class"]): s.value
        for s in prometheus()["fastio_http_client_calls"].samples
    }
    assert calls[(host, "2xx")] == 4
