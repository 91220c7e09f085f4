"""`@fastio.retry(...)` and `await fastio.retry_call(fn, ...)`: retry any
coroutine function with the exponential backoff of a `fastio.Retry` policy
(full jitter, capped, optional total deadline), the way tenacity users expect
(`on=` exception types, a `before_sleep` hook, per-function statistics).

The schedule is computed in Rust (`Retry.delay`); the waiting is an asyncio
sleep, so a cancelled caller stops retrying at once.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastio._fastio import Retry

__all__ = ["RetryState", "retry", "retry_call"]

T = TypeVar("T")

ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]


@dataclass(frozen=True)
class RetryState:
    """What `before_sleep` is told before each wait."""

    fn: Callable[..., Any]
    attempt_number: int
    """The attempt that just failed (1 for the first call)."""
    exception: BaseException
    next_sleep: float
    """Seconds about to be slept before the next attempt."""
    elapsed: float
    """Seconds since the first attempt started."""


def _policy(
    policy: Retry | None,
    attempts: int | None,
    backoff: float | None,
    factor: float | None,
    max_backoff: float | None,
    jitter: bool | None,
    deadline: float | None,
) -> Retry:
    given = {
        k: v
        for k, v in {
            "attempts": attempts,
            "backoff": backoff,
            "factor": factor,
            "max_backoff": max_backoff,
            "jitter": jitter,
            "deadline": deadline,
        }.items()
        if v is not None
    }
    if policy is not None:
        if given:
            raise TypeError(f"retry(): pass either a Retry policy or {', '.join(given)}, not both")
        if not isinstance(policy, Retry):
            raise TypeError(f"retry(): policy must be a fastio.Retry, not {type(policy).__name__}")
        return policy
    return Retry(**given)


def _exception_types(on: ExceptionTypes | None) -> tuple[type[BaseException], ...]:
    if on is None:
        return (Exception,)
    types = on if isinstance(on, tuple) else (on,)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"retry(): on= must be exception classes, got {t!r}")
    return types


async def _retry_after(
    first: BaseException,
    start: float,
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    policy: Retry,
    on: tuple[type[BaseException], ...],
    before_sleep: Callable[[RetryState], Any] | None,
    sleep: Callable[[float], Awaitable[Any]],
    statistics: dict[str, Any],
) -> T:
    """The slow path, after the first attempt failed with `first`."""
    idle = 0.0
    attempt = 1
    exc = first
    while True:
        elapsed = time.monotonic() - start
        statistics["delay_since_first_attempt"] = elapsed
        if attempt >= policy.attempts:
            raise exc
        delay = policy.delay(attempt)
        if policy.deadline is not None and elapsed + delay > policy.deadline:
            raise exc
        if before_sleep is not None:
            hook = before_sleep(RetryState(fn, attempt, exc, delay, elapsed))
            if asyncio.iscoroutine(hook):
                await hook
        await sleep(delay)
        idle += delay
        statistics["idle_for"] = idle
        attempt += 1
        statistics["attempt_number"] = attempt
        try:
            return await fn(*args, **kwargs)
        except on as e:
            exc = e


async def _call_with_retries(
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    policy: Retry,
    on: tuple[type[BaseException], ...],
    before_sleep: Callable[[RetryState], Any] | None,
    sleep: Callable[[float], Awaitable[Any]],
    statistics: dict[str, Any],
) -> T:
    start = time.monotonic()
    statistics.update(attempt_number=1, idle_for=0.0, delay_since_first_attempt=0.0)
    try:
        return await fn(*args, **kwargs)
    except on as exc:
        first = exc
    return await _retry_after(
        first, start, fn, args, kwargs, policy, on, before_sleep, sleep, statistics
    )


def retry(
    policy: Retry | None = None,
    *,
    attempts: int | None = None,
    backoff: float | None = None,
    factor: float | None = None,
    max_backoff: float | None = None,
    jitter: bool | None = None,
    deadline: float | None = None,
    on: ExceptionTypes | None = None,
    before_sleep: Callable[[RetryState], Any] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Retry the decorated coroutine function when it raises one of `on`
    (default: any Exception; never CancelledError).

    Pass a `fastio.Retry` policy, or its fields (attempts=3, backoff=0.1,
    factor=2.0, max_backoff=10.0, jitter=True, deadline=None). The last
    exception is re-raised once attempts or the deadline run out.
    `before_sleep(state)` (sync or async) runs before each wait; `sleep` is the
    wait itself (inject a fake clock in tests). The wrapper's `statistics`
    dict has `attempt_number`, `idle_for` and `delay_since_first_attempt` of
    its latest call.
    """
    chosen = _policy(policy, attempts, backoff, factor, max_backoff, jitter, deadline)
    types = _exception_types(on)

    def decorate(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        if not callable(fn):
            raise TypeError(f"retry(): expected a coroutine function, not {type(fn).__name__}")
        statistics: dict[str, Any] = {}

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> T:
            start = time.monotonic()
            statistics.update(attempt_number=1, idle_for=0.0, delay_since_first_attempt=0.0)
            try:
                return await fn(*args, **kwargs)
            except types as exc:
                first = exc
            return await _retry_after(
                first, start, fn, args, kwargs, chosen, types, before_sleep, sleep, statistics
            )

        wrapper.statistics = statistics  # type: ignore[attr-defined]
        wrapper.retry = chosen  # type: ignore[attr-defined]
        return wrapper

    return decorate


async def retry_call(
    fn: Callable[..., Awaitable[T]],
    /,
    *args: Any,
    policy: Retry | None = None,
    on: ExceptionTypes | None = None,
    before_sleep: Callable[[RetryState], Any] | None = None,
    **kwargs: Any,
) -> T:
    """``await fn(*args, **kwargs)`` with retries (see `retry`). The names
    `policy`, `on` and `before_sleep` are taken by this function."""
    chosen = _policy(policy, None, None, None, None, None, None)
    return await _call_with_retries(
        fn, args, kwargs, chosen, _exception_types(on), before_sleep, asyncio.sleep, {}
    )
