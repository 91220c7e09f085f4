"""Metrics recorded in Rust: counts, errors, in flight and latency histograms.

Every `@fastio.monitor`-decorated coroutine is counted here (and, as the
other issues land, every HTTP request and database statement). Recording
costs a few atomic increments; reading is `snapshot()`, `report()` or
`render_prometheus()`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from fastio._fastio import enable, enabled, metric_series, render_prometheus, reset, snapshot

__all__ = ["enable", "enabled", "monitor", "render_prometheus", "report", "reset", "snapshot"]

F = TypeVar("F", bound=Callable[..., Any])

_OK, _ERROR, _CANCELLED = 0, 1, 2


def _outcome(exc: BaseException) -> int:
    return _CANCELLED if isinstance(exc, asyncio.CancelledError) else _ERROR


def _wrap(fn: F, name: str) -> F:
    series = metric_series("monitor", [name])
    begin, finish = series.begin, series.finish

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            token = begin()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                finish(token, _outcome(exc))
                raise
            finish(token, _OK)
            return result

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        token = begin()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            finish(token, _outcome(exc))
            raise
        finish(token, _OK)
        return result

    return sync_wrapper  # type: ignore[return-value]


@overload
def monitor(name: F) -> F: ...
@overload
def monitor(name: str | None = None) -> Callable[[F], F]: ...
def monitor(name: str | F | None = None) -> F | Callable[[F], F]:
    """Count and time every call of the decorated function under `name`.

    Works on coroutine functions (the time until the coroutine finishes) and
    plain functions, including methods. ``@monitor`` without a name uses the
    function's qualified name. Cancellations are counted apart from errors.
    """
    if callable(name):
        return _wrap(name, name.__qualname__)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"monitor(): name must be a str, not {type(name).__name__}")

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"monitor(): expected a function, not {type(fn).__name__}")
        return _wrap(fn, name or fn.__qualname__)

    return decorate


def report(family: str = "monitor") -> str:
    """A readable table of one family's series (default: the monitored functions)."""
    rows = snapshot().get(family, [])
    header = ("name", "calls", "errors", "avg ms", "min ms", "p50 ms", "p90 ms", "p99 ms", "max ms")
    lines = [header]
    for s in sorted(rows, key=lambda s: tuple(s["labels"].values())):
        lines.append(
            (
                " ".join(str(v) for v in s["labels"].values()),
                str(s["count"]),
                str(s["errors"]),
                *(f"{s[k] * 1000:.3f}" for k in ("avg", "min", "p50", "p90", "p99", "max")),
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        )
        for row in lines
    ]
    out.insert(1, "-" * len(out[0]))
    return "\n".join(out)
