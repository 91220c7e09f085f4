"""`fastio.CircuitBreaker`: the state machine is in Rust (src/breaker.rs); this
adds the decorator and `call()` forms on top of its `async with` support."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastio import _fastio

__all__ = ["CircuitBreaker"]

T = TypeVar("T")


class CircuitBreaker(_fastio.CircuitBreaker):
    """closed -> open after `failure_threshold` consecutive expected failures ->
    half-open after `recovery_timeout` seconds (at most `half_open_max_calls`
    trial calls) -> closed on a successful trial, open again on a failed one.

    While open, calls raise `fastio.CircuitOpenError` without being made. Use
    it as ``async with breaker:``, as a decorator, or ``await breaker.call(f, ...)``.
    """

    def __call__(self, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        if not callable(fn):
            raise TypeError(f"CircuitBreaker(): expected a function, not {type(fn).__name__}")

        @functools.wraps(fn)
        async def guarded(*args: Any, **kwargs: Any) -> T:
            return await self.call(fn, *args, **kwargs)

        return guarded

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        self.acquire()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self.release(exc)
            raise
        self.release(None)
        return result
