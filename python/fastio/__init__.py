"""fastio: asyncio I/O driven by a tokio runtime.

Pooled PostgreSQL / MySQL / SQLite queries, concurrent HTTP, retries, metrics
and file I/O, awaitable from asyncio (and uvloop) and running in Rust.
"""

from __future__ import annotations

from fastio import aiofiles, metrics
from fastio._fastio import (
    Awaitable,
    CircuitOpenError,
    ConnectionError,
    FastIOError,
    InterfaceError,
    InvalidArgumentError,
    JSONDecodeError,
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
from fastio.files import (
    JsonlRecords,
    append_text,
    iter_jsonl,
    read_bytes,
    read_jsonl,
    read_text,
    write_bytes,
    write_jsonl,
    write_text,
)
from fastio.metrics import monitor

__all__ = [
    "__version__",
    "aiofiles",
    "append_text",
    "Awaitable",
    "CircuitBreaker",
    "CircuitOpenError",
    "configure",
    "ConnectionError",
    "FastIOError",
    "InterfaceError",
    "InvalidArgumentError",
    "iter_jsonl",
    "JSONDecodeError",
    "JsonlRecords",
    "metrics",
    "monitor",
    "PanicError",
    "read_bytes",
    "read_jsonl",
    "read_text",
    "refresh_logging",
    "runtime_worker_threads",
    "sleep",
    "TimeoutError",
    "UsedAfterForkError",
    "write_bytes",
    "write_jsonl",
    "write_text",
]
