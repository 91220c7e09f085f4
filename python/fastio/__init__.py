"""fastio: asyncio I/O driven by a tokio runtime.

Pooled PostgreSQL / MySQL / SQLite queries, concurrent HTTP, retries, metrics
and file I/O, awaitable from asyncio (and uvloop) and running in Rust.
"""

from __future__ import annotations

from fastio._fastio import (
    Awaitable,
    Connection,
    ConnectionError,
    FastIOError,
    InterfaceError,
    InvalidArgumentError,
    PanicError,
    Pool,
    PoolAcquireContext,
    Record,
    TimeoutError,
    UsedAfterForkError,
    __version__,
    configure,
    connect,
    create_pool,
    refresh_logging,
    runtime_worker_threads,
    sleep,
)
from fastio._transaction import Transaction

__all__ = [
    "Awaitable",
    "Connection",
    "ConnectionError",
    "FastIOError",
    "InterfaceError",
    "InvalidArgumentError",
    "PanicError",
    "Pool",
    "PoolAcquireContext",
    "Record",
    "TimeoutError",
    "Transaction",
    "UsedAfterForkError",
    "__version__",
    "configure",
    "connect",
    "create_pool",
    "refresh_logging",
    "runtime_worker_threads",
    "sleep",
]
