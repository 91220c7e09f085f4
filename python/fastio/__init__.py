"""fastio: asyncio I/O driven by a tokio runtime.

Pooled PostgreSQL / MySQL / SQLite queries, concurrent HTTP, retries, metrics
and file I/O, awaitable from asyncio (and uvloop) and running in Rust.
"""

from __future__ import annotations

from fastio import metrics
from fastio._fastio import (
    Awaitable,
    CircuitOpenError,
    ConnectionError,
    FastIOError,
    InterfaceError,
    InvalidArgumentError,
    PanicError,
    TimeoutError,
    UsedAfterForkError,
    __version__,
    configure,
    refresh_logging,
    runtime_worker_threads,
    sleep,
)
from fastio.breaker import CircuitBreaker
from fastio.metrics import monitor

__all__ = [
    "Awaitable",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConnectionError",
    "FastIOError",
    "InterfaceError",
    "InvalidArgumentError",
    "PanicError",
    "TimeoutError",
    "UsedAfterForkError",
    "__version__",
    "configure",
    "metrics",
    "monitor",
    "refresh_logging",
    "runtime_worker_threads",
    "sleep",
]
