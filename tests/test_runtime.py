"""The runtime and the asyncio bridge (src/runtime.rs).

Every async test here runs under the default loop and under uvloop (`make test`
runs the suite once per loop, see conftest.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import fastio
from fastio import _fastio


async def wait_live_tasks(expected: int, timeout: float = 2.0) -> int:
    """Waits until the number of live Rust futures is `expected` (aborts are asynchronous)."""
    deadline = time.monotonic() + timeout
    while _fastio._live_tasks() != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return _fastio._live_tasks()


async def test_sleep_returns_result_after_delay() -> None:
    start = time.perf_counter()
    assert await fastio.sleep(0.05, "done") == "done"
    assert time.perf_counter() - start >= 0.045
    assert await fastio.sleep(0) is None


async def test_sleep_follows_asyncio_for_odd_delays() -> None:
    start = time.perf_counter()
    assert await fastio.sleep(-5, 1) == 1  # negative means no delay, as in asyncio.sleep
    assert time.perf_counter() - start < 1.0
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(fastio.sleep(float("inf")), 0.05)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(fastio.sleep(1e300), 0.05)  # beyond Duration's range


def test_sleep_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"sleep\(\): seconds must be a number, not str"):
        fastio.sleep("1")
    with pytest.raises(fastio.InvalidArgumentError, match="NaN"):
        fastio.sleep(float("nan"))
    with pytest.raises(ValueError):
        fastio.sleep(float("nan"))


def test_awaiting_without_a_running_loop_is_a_clear_error() -> None:
    aw = fastio.sleep(0)
    with pytest.raises(RuntimeError, match="no running event loop"):
        aw.send(None)
    aw.close()


async def test_nothing_runs_until_awaited() -> None:
    base = await wait_live_tasks(0)
    aw = fastio.sleep(10)
    assert _fastio._live_tasks() == base
    assert not aw.done()
    assert aw.cancel()
    assert aw.cancelled()
    with pytest.raises(asyncio.CancelledError):
        await aw


async def test_it_is_a_coroutine_and_a_future() -> None:
    aw = fastio.sleep(0, 1)
    assert asyncio.iscoroutine(aw)
    assert asyncio.isfuture(aw)
    assert await aw == 1
    assert aw.done() and aw.result() == 1 and aw.exception() is None
    assert await aw == 1  # a finished future can be awaited again


async def test_result_before_done_is_invalid_state() -> None:
    aw = fastio.sleep(10)
    with pytest.raises(asyncio.InvalidStateError):
        aw.result()
    aw.cancel()


async def test_create_task_and_gather() -> None:
    task = asyncio.create_task(fastio.sleep(0.01, "task"))
    results = await asyncio.gather(
        _fastio._noop(1),
        fastio.sleep(0.02, 2),
        task,
        _fastio._fail("timeout", "x"),
        return_exceptions=True,
    )
    assert results[:3] == [1, 2, "task"]
    assert isinstance(results[3], fastio.TimeoutError)


async def test_many_concurrent_awaits_complete_in_order() -> None:
    n = 20_000
    results = await asyncio.gather(*[_fastio._noop(i) for i in range(n)])
    assert results == list(range(n))


async def test_cancelling_the_task_drops_the_rust_future() -> None:
    base = await wait_live_tasks(0)
    task = asyncio.create_task(fastio.sleep(30))
    await asyncio.sleep(0.02)
    assert _fastio._live_tasks() == base + 1
    task.cancel("stop")
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert await wait_live_tasks(base) == base


async def test_awaiting_coroutine_cancelled_drops_the_rust_future() -> None:
    base = await wait_live_tasks(0)

    async def user_code() -> None:
        await fastio.sleep(30)

    task = asyncio.create_task(user_code())
    await asyncio.sleep(0.02)
    assert _fastio._live_tasks() == base + 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_live_tasks(base) == base


async def test_wait_for_timeout_drops_the_rust_future() -> None:
    base = await wait_live_tasks(0)
    start = time.perf_counter()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(fastio.sleep(30), timeout=0.05)
    assert time.perf_counter() - start < 5
    assert await wait_live_tasks(base) == base
    assert await asyncio.wait_for(fastio.sleep(0.01, "in time"), timeout=5) == "in time"


async def test_taskgroup_failure_cancels_siblings_and_drops_their_futures() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("asyncio.TaskGroup needs Python 3.11")
    base = await wait_live_tasks(0)
    with pytest.raises(BaseExceptionGroup) as info:  # noqa: F821 (3.11 builtin)
        async with asyncio.TaskGroup() as tg:
            slow = [tg.create_task(fastio.sleep(30)) for _ in range(5)]
            tg.create_task(_fastio._fail("interface", "broken", delay=0.02))
    assert [type(e) for e in info.value.exceptions] == [fastio.InterfaceError]
    assert all(t.cancelled() for t in slow)
    assert await wait_live_tasks(base) == base

    async with asyncio.TaskGroup() as tg:
        a = tg.create_task(fastio.sleep(0.01, "a"))
        b = tg.create_task(_fastio._noop(2))
    assert (a.result(), b.result()) == ("a", 2)


async def test_cancel_while_result_in_flight_is_still_cancelled() -> None:
    aw = _fastio._noop(5)
    fut = asyncio.ensure_future(aw)
    assert fut is aw  # used as a future directly, no Task wrapper
    assert aw.cancel()
    await asyncio.sleep(0.01)  # the completion arrives after the cancel
    assert aw.cancelled()
    with pytest.raises(asyncio.CancelledError):
        aw.result()


async def test_done_callbacks_run_with_their_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[tuple[str, object]] = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, "from-context")
    done = asyncio.Event()

    def callback(fut: fastio.Awaitable[int]) -> None:
        seen.append((var.get(), fut.result()))
        done.set()

    aw = _fastio._noop(9)
    aw.add_done_callback(callback, context=ctx)
    removed_before = aw.remove_done_callback(print)
    await asyncio.wait_for(done.wait(), 5)
    assert seen == [("from-context", 9)]
    assert removed_before == 0

    # Added after completion: scheduled on the loop, like asyncio.Future.
    aw.add_done_callback(callback)
    await asyncio.sleep(0.01)
    assert seen[-1] == ("unset", 9)


async def test_failing_done_callback_goes_to_the_loop_exception_handler() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        aw = _fastio._noop(1)
        aw.add_done_callback(lambda _f: 1 / 0)
        assert await aw == 1
        await asyncio.sleep(0.01)
    finally:
        loop.set_exception_handler(None)
    assert len(reported) == 1
    assert isinstance(reported[0]["exception"], ZeroDivisionError)


async def test_awaitables_survive_successive_event_loops() -> None:
    # asyncio.run() in a thread creates and closes a new loop each time; each
    # must get its own completion queue.
    def run_three() -> list[int]:
        return [asyncio.run(_fastio._noop(i)) for i in range(3)]

    assert await asyncio.to_thread(run_three) == [0, 1, 2]


def test_configure_rejects_zero_workers() -> None:
    with pytest.raises(fastio.InvalidArgumentError, match="worker_threads"):
        fastio.configure(worker_threads=0)


def test_configure_after_start_with_another_count_is_refused() -> None:
    running = fastio.runtime_worker_threads()
    fastio.configure(worker_threads=running)  # same value: accepted
    with pytest.raises(fastio.InterfaceError, match="already running"):
        fastio.configure(worker_threads=running + 1)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_worker_threads_from_configure_and_environment() -> None:
    configured = run_python(
        """
        import fastio
        fastio.configure(worker_threads=3)
        print(fastio.runtime_worker_threads())
        """
    )
    assert configured.stdout.strip() == "3", configured.stderr
    from_env = run_python(
        "import fastio; print(fastio.runtime_worker_threads())", FASTIO_WORKER_THREADS="2"
    )
    assert from_env.stdout.strip() == "2", from_env.stderr
    env = {k: v for k, v in os.environ.items() if k != "FASTIO_WORKER_THREADS"}
    default = subprocess.run(
        [sys.executable, "-c", "import fastio; print(fastio.runtime_worker_threads())"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    # Two workers, or one on a single-core machine.
    assert default.stdout.strip() == str(min(2, len(os.sched_getaffinity(0)))), default.stderr
    bad = run_python(
        """
        import asyncio, fastio
        try:
            asyncio.run(fastio.sleep(0))
        except fastio.InvalidArgumentError as e:
            print("error:", e)
        """,
        FASTIO_WORKER_THREADS="lots",
    )
    assert "error: FASTIO_WORKER_THREADS must be a positive integer" in bad.stdout, bad.stderr


def fork_and_wait(child: object) -> int:
    """Forks; the child runs `child()` and exits with its return value."""
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() in a multi-threaded process; the
        # point of these tests is that fastio copes with exactly that.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            code = child()  # type: ignore[operator]
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_forked_child_gets_a_fresh_runtime() -> None:
    from conftest import run

    assert run(fastio.sleep(0.01, "parent")) == "parent"  # parent's runtime is running

    async def use_fastio() -> list[object]:
        return await asyncio.wait_for(asyncio.gather(fastio.sleep(0.01, 1), _fastio._noop(2)), 10)

    def child() -> int:
        return 0 if run(use_fastio()) == [1, 2] else 3

    assert fork_and_wait(child) == 0
    assert run(fastio.sleep(0, "parent still works")) == "parent still works"


def test_awaitable_from_parent_fails_clearly_in_child() -> None:
    from conftest import run

    run(fastio.sleep(0))
    inherited = fastio.sleep(0.01)

    def child() -> int:
        async def await_inherited() -> None:
            await asyncio.wait_for(inherited, 10)

        try:
            run(await_inherited())
        except fastio.UsedAfterForkError as e:
            return 0 if "before os.fork()" in str(e) else 4
        return 5

    assert fork_and_wait(child) == 0
    inherited.close()


async def test_gather_reports_a_cancelled_awaitable_as_it_does_a_future() -> None:
    # ensure_future takes a fastio awaitable as it is (it is a future), so
    # gather reads the cancelled child's `_cancel_message` and calls its
    # `_make_cancelled_error()`; without them gather's callback failed and
    # the gather never finished.
    children = [fastio.sleep(0.05, result=i) for i in range(3)]
    started = [asyncio.ensure_future(c) for c in children]
    assert started[1] is children[1]
    assert started[1].cancel("stop")
    got = await asyncio.wait_for(asyncio.gather(*started, return_exceptions=True), 5)
    assert got[0] == 0 and got[2] == 2
    assert isinstance(got[1], asyncio.CancelledError) and got[1].args == ("stop",)
    assert children[1]._cancel_message == "stop"
    assert children[0]._cancel_message is None

    again = [fastio.sleep(0.05, result=i) for i in range(3)]
    started = [asyncio.ensure_future(c) for c in again]
    started[0].cancel("halt")
    with pytest.raises(asyncio.CancelledError) as info:
        await asyncio.wait_for(asyncio.gather(*started), 5)
    assert info.value.args == ("halt",)
