"""@fastio.retry / retry_call (python/fastio/retry.py) on the Retry policy (src/retry.rs)."""

from __future__ import annotations

import asyncio

import pytest

import fastio


class FakeClock:
    """An injected `sleep` that records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def failing(times: int, exc: type[BaseException] = ConnectionError, value: object = "ok"):
    calls = {"n": 0}

    async def fn() -> object:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc(f"failure {calls['n']}")
        return value

    return fn, calls


async def test_backoff_schedule_is_exponential_and_capped() -> None:
    clock = FakeClock()
    fn, calls = failing(5)
    wrapped = fastio.retry(
        attempts=6, backoff=0.1, factor=2.0, max_backoff=0.5, jitter=False, sleep=clock
    )(fn)
    assert await wrapped() == "ok"
    assert calls["n"] == 6
    assert clock.waits == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    assert wrapped.statistics["attempt_number"] == 6
    assert wrapped.statistics["idle_for"] == pytest.approx(1.7)


async def test_full_jitter_stays_within_bounds() -> None:
    clock = FakeClock()
    fn, _ = failing(1000)
    wrapped = fastio.retry(attempts=200, backoff=0.01, factor=1.0, jitter=True, sleep=clock)(fn)
    with pytest.raises(ConnectionError):
        await wrapped()
    assert len(clock.waits) == 199
    assert all(0.0 <= w <= 0.01 for w in clock.waits)
    assert len(set(clock.waits)) > 150, "jitter spreads the waits"
    assert sum(clock.waits) / len(clock.waits) == pytest.approx(0.005, rel=0.25)


async def test_gives_up_with_the_last_exception() -> None:
    clock = FakeClock()
    fn, calls = failing(10)
    wrapped = fastio.retry(attempts=3, backoff=0.01, jitter=False, sleep=clock)(fn)
    with pytest.raises(ConnectionError, match="failure 3"):
        await wrapped()
    assert calls["n"] == 3
    assert len(clock.waits) == 2


async def test_only_the_given_exception_types_are_retried() -> None:
    fn, calls = failing(1, exc=KeyError)
    wrapped = fastio.retry(attempts=5, on=(ConnectionError, TimeoutError), sleep=FakeClock())(fn)
    with pytest.raises(KeyError):
        await wrapped()
    assert calls["n"] == 1


async def test_cancellation_is_never_retried_and_stops_the_wait() -> None:
    calls = 0

    @fastio.retry(attempts=5, backoff=30, jitter=False)
    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    task = asyncio.create_task(flaky())
    await asyncio.sleep(0.05)  # now in the 30 s wait
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1


async def test_before_sleep_hook_sync_and_async() -> None:
    seen: list[tuple[int, str, float]] = []

    def hook(state: fastio.RetryState) -> None:
        seen.append((state.attempt_number, str(state.exception), state.next_sleep))

    async def async_hook(state: fastio.RetryState) -> None:
        await asyncio.sleep(0)
        seen.append((state.attempt_number, "async", state.next_sleep))

    fn, _ = failing(2)
    assert await fastio.retry(attempts=3, backoff=0.01, jitter=False, before_sleep=hook)(fn)()
    assert seen == [(1, "failure 1", 0.01), (2, "failure 2", 0.02)]
    seen.clear()
    fn, _ = failing(1)
    await fastio.retry(attempts=2, backoff=0.01, jitter=False, before_sleep=async_hook)(fn)()
    assert seen == [(1, "async", 0.01)]


async def test_deadline_stops_before_attempts_run_out() -> None:
    fn, calls = failing(100)
    wrapped = fastio.retry(attempts=100, backoff=0.05, factor=1.0, jitter=False, deadline=0.12)(fn)
    with pytest.raises(ConnectionError):
        await wrapped()
    assert 2 <= calls["n"] <= 4


async def test_policy_object_and_retry_call() -> None:
    policy = fastio.Retry(attempts=4, backoff=0.001, jitter=False)
    fn, calls = failing(3, value=42)
    assert await fastio.retry_call(fn, policy=policy) == 42
    assert calls["n"] == 4

    async def add(a: int, b: int = 0) -> int:
        return a + b

    assert await fastio.retry_call(add, 1, b=2) == 3
    wrapped = fastio.retry(policy)(add)
    assert wrapped.retry is policy
    assert await wrapped(5) == 5


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(TypeError, match="either a Retry policy or attempts"):
        fastio.retry(fastio.Retry(), attempts=3)
    with pytest.raises(TypeError, match="must be a fastio.Retry"):
        fastio.retry("3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exception classes"):
        fastio.retry(on=(int,))  # type: ignore[arg-type]
    with pytest.raises(fastio.InvalidArgumentError, match="attempts"):
        fastio.retry(attempts=0)


async def test_methods_keep_working() -> None:
    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @fastio.retry(attempts=3, backoff=0.001)
        async def get(self) -> int:
            self.calls += 1
            if self.calls < 2:
                raise TimeoutError
            return self.calls

    c = Client()
    assert await c.get() == 2
    assert Client.get.__name__ == "get"


async def test_documents_retry_example_on_fastio(capsys: pytest.CaptureFixture[str]) -> None:
    # The documents' AsyncRetryHandler(max_retries=3, base_delay=0.5) around a
    # service failing twice: same attempts, same waits, same messages.
    clock = FakeClock()
    unreliable_service, calls = failing(2, value="服务响应正常")

    def report(state: fastio.RetryState) -> None:
        print(f"第 {state.attempt_number} 次尝试失败: {state.exception}")
        print(f"等待 {state.next_sleep:.2f} 秒后重试...")

    handler = fastio.retry(
        attempts=4,
        backoff=0.5,
        factor=2.0,
        max_backoff=60.0,
        jitter=False,
        before_sleep=report,
        sleep=clock,
    )
    result = await handler(unreliable_service)()
    print(f"成功获取结果: {result}")
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "第 1 次尝试失败: failure 1",
        "等待 0.50 秒后重试...",
        "第 2 次尝试失败: failure 2",
        "等待 1.00 秒后重试...",
        "成功获取结果: 服务响应正常",
    ]
    assert clock.waits == [0.5, 1.0]
    assert calls["n"] == 3
