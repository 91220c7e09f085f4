"""fastio: asyncio I/O driven by a tokio runtime.

Pooled PostgreSQL / MySQL / SQLite queries, concurrent HTTP, retries, metrics
and file I/O, awaitable from asyncio (and uvloop) and running in Rust.
"""

from __future__ import annotations

from fastio._fastio import (
    Awaitable,
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

__all__ = [
    "Awaitable",
    "ConnectionError",
    "FastIOError",
    "InterfaceError",
    "InvalidArgumentError",
    "PanicError",
    "TimeoutError",
    "UsedAfterForkError",
    "__version__",
    "configure",
    "refresh_logging",
    "runtime_worker_threads",
    "sleep",
]
