"""fastio.CircuitBreaker (src/breaker.rs, python/fastio/breaker.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

import fastio


class Down(ConnectionError):
    pass


async def fail() -> None:
    raise Down("service down")


async def ok(value: int = 1) -> int:
    return value


async def test_opens_after_threshold_and_rejects_without_calling() -> None:
    breaker = fastio.CircuitBreaker(failure_threshold=3, recovery_timeout=60, name="t.open")
    for _ in range(3):
        with pytest.raises(Down):
            await breaker.call(fail)
    assert breaker.state == "open"
    called = []

    async def tracked() -> None:
        called.append(1)

    with pytest.raises(fastio.CircuitOpenError) as info:
        await breaker.call(tracked)
    assert called == []
    assert 59 < info.value.retry_after <= 60
    assert info.value.breaker == "t.open"
    assert isinstance(info.value, fastio.FastIOError)
    assert breaker.stats()["rejected"] == 1


async def test_success_resets_the_consecutive_count() -> None:
    breaker = fastio.CircuitBreaker(failure_threshold=3)
    for _ in range(5):
        for _ in range(2):
            with pytest.raises(Down):
                await breaker.call(fail)
        assert await breaker.call(ok, 7) == 7
    assert breaker.state == "closed"
    assert breaker.failure_count == 0


async def test_half_open_after_timeout_then_closed_on_success() -> None:
    breaker = fastio.CircuitBreaker(failure_threshold=1, recovery_timeout=0.05)
    with pytest.raises(Down):
        await breaker.call(fail)
    assert breaker.state == "open"
    await asyncio.sleep(0.08)
    assert breaker.state == "half_open"
    assert await breaker.call(ok, 2) == 2
    assert breaker.state == "closed"
    assert [(a, b) for a, b, _ in breaker.transitions] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    times = [t for _, _, t in breaker.transitions]
    assert times == sorted(times)


async def test_failed_trial_reopens() -> None:
    breaker = fastio.CircuitBreaker(failure_threshold=1, recovery_timeout=0.05)
    with pytest.raises(Down):
        await breaker.call(fail)
    await asyncio.sleep(0.08)
    with pytest.raises(Down):
        await breaker.call(fail)
    assert breaker.state == "open"


async def test_half_open_admits_at_most_max_calls_concurrently() -> None:
    breaker = fastio.CircuitBreaker(
        failure_threshold=1, recovery_timeout=0.05, half_open_max_calls=2
    )
    with pytest.raises(Down):
        await breaker.call(fail)
    await asyncio.sleep(0.08)
    gate = asyncio.Event()
    entered = 0

    async def slow() -> str:
        nonlocal entered
        entered += 1
        await gate.wait()
        return "ok"

    tasks = [asyncio.create_task(breaker.call(slow)) for _ in range(5)]
    await asyncio.sleep(0.02)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert entered == 2
    assert results.count("ok") == 2
    assert sum(isinstance(r, fastio.CircuitOpenError) for r in results) == 3
    assert breaker.state == "closed"


async def test_unexpected_exceptions_and_cancellation_do_not_count() -> None:
    breaker = fastio.CircuitBreaker(failure_threshold=1, expected_exceptions=(Down,))

    async def bug() -> None:
        raise KeyError("not the service's fault")

    with pytest.raises(KeyError):
        await breaker.call(bug)
    task = asyncio.create_task(breaker.call(asyncio.sleep, 10))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state == "closed"
    with pytest.raises(Down):
        await breaker.call(fail)
    assert breaker.state == "open"


async def test_decorator_and_async_with_forms() -> None:
    breaker = fastio.CircuitBreaker(failure_threshold=2, recovery_timeout=60)

    @breaker
    async def flaky(n: int) -> int:
        if n < 0:
            raise Down("no")
        return n

    assert await flaky(3) == 3
    assert flaky.__name__ == "flaky"
    async with breaker as b:
        assert b is breaker
    with pytest.raises(Down):
        async with breaker:
            raise Down("inside")
    with pytest.raises(Down):
        await flaky(-1)
    assert breaker.state == "open"
    with pytest.raises(fastio.CircuitOpenError):
        async with breaker:
            pytest.fail("the body must not run while open")
    breaker.reset()
    assert breaker.state == "closed"
    assert await flaky(4) == 4


def test_state_is_shared_safely_across_threads() -> None:
    # Exactly 8,000 failures from 4 threads: the breaker must count every one
    # (a lost update would leave it closed).
    breaker = fastio.CircuitBreaker(failure_threshold=8_000, expected_exceptions=Down)

    def hammer() -> None:
        for _ in range(2_000):
            breaker.acquire()
            breaker.release(Down())

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = breaker.stats()
    assert stats["calls"] == 8_000
    assert stats["failures"] == 8_000
    assert breaker.state == "open"


def test_bad_arguments() -> None:
    with pytest.raises(fastio.InvalidArgumentError, match="failure_threshold"):
        fastio.CircuitBreaker(failure_threshold=0)
    with pytest.raises(fastio.InvalidArgumentError, match="recovery_timeout"):
        fastio.CircuitBreaker(recovery_timeout=-1)
    with pytest.raises(TypeError, match="exception classes"):
        fastio.CircuitBreaker(expected_exceptions=(int,))


def test_breaker_state_is_exported() -> None:
    breaker = fastio.CircuitBreaker(failure_threshold=1, recovery_timeout=60, name="t.export")
    breaker.acquire()
    breaker.release(Down())
    families = {
        f.name: f for f in text_string_to_metric_families(fastio.metrics.render_prometheus())
    }
    state = {s.labels["name"]: s.value for s in families["fastio_breaker_state"].samples}
    assert state["t.export"] == 1
    snap = [b for b in fastio.metrics.snapshot()["breakers"] if b["name"] == "t.export"]
    assert snap[0]["state"] == "open" and snap[0]["failures"] == 1


async def test_client_keeps_one_breaker_per_host(http_server) -> None:
    template = fastio.CircuitBreaker(failure_threshold=2, recovery_timeout=60, name="t.api")
    port = http_server.url.rsplit(":", 1)[1]
    async with fastio.Client(breaker=template, timeout=10) as client:
        for _ in range(2):
            r = await client.get(f"{http_server.url}/status/503")
            assert r.status == 503
        with pytest.raises(fastio.CircuitOpenError) as info:
            await client.get(f"{http_server.url}/get")
        assert info.value.breaker == f"t.api:127.0.0.1:{port}"
        # Another host has its own breaker, still closed.
        other = await client.get(f"http://localhost:{port}/get")
        assert other.status == 200
        # fetch_all reports the refusal per item.
        results = await client.fetch_all([f"{http_server.url}/get", f"http://localhost:{port}/get"])
        assert isinstance(results[0], fastio.CircuitOpenError)
        assert results[1].status == 200
    assert template.state == "closed", "the template itself is not used"
    breakers = {b["name"]: b for b in fastio.metrics.snapshot()["breakers"]}
    assert breakers[f"t.api:127.0.0.1:{port}"]["state"] == "open"
    assert breakers[f"t.api:127.0.0.1:{port}"]["rejected"] == 2
    assert breakers[f"t.api:localhost:{port}"]["state"] == "closed"


async def test_client_breaker_counts_transport_errors_not_4xx(http_server) -> None:
    breaker = fastio.CircuitBreaker(failure_threshold=1, recovery_timeout=60, name="t.4xx")
    async with fastio.Client(breaker=breaker, timeout=10) as client:
        for _ in range(3):
            assert (await client.get(f"{http_server.url}/status/404")).status == 404
        with pytest.raises(fastio.ConnectError):
            await client.get("http://127.0.0.1:9/")  # discard port: refused
        with pytest.raises(fastio.CircuitOpenError):
            await client.get("http://127.0.0.1:9/")
        assert (await client.get(f"{http_server.url}/get")).status == 200


def test_client_breaker_must_be_a_circuit_breaker() -> None:
    with pytest.raises(TypeError, match="breaker must be a fastio.CircuitBreaker"):
        fastio.Client(breaker=42)
