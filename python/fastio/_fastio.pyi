"""Type stubs for the Rust extension module `fastio._fastio`."""

import builtins
import json
import os
from collections.abc import Callable, Generator, Iterable
from contextvars import Context
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")

__version__: str

class Awaitable(Generic[_T]):
    """A fastio coroutine: Rust work that asyncio can await, cancel and gather.

    It is both a coroutine (so ``asyncio.create_task`` and ``TaskGroup``
    accept it) and an asyncio future (so ``gather``/``wait_for`` use it
    directly). Nothing runs until it is first awaited; cancelling it drops the
    Rust future and stops its I/O.
    """

    _asyncio_future_blocking: bool
    def __await__(self) -> Generator[Any, None, _T]: ...
    def __iter__(self) -> Generator[Any, None, _T]: ...
    def __next__(self) -> Any: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any: ...
    def close(self) -> None: ...
    def get_loop(self) -> Any: ...
    def done(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def result(self) -> _T: ...
    def exception(self) -> BaseException | None: ...
    def add_done_callback(
        self, callback: Callable[[Awaitable[_T]], object], /, *, context: Context | None = None
    ) -> None: ...
    def remove_done_callback(self, callback: Callable[[Awaitable[_T]], object], /) -> int: ...
    def cancel(self, msg: Any | None = None) -> bool: ...

class Ready(Generic[_T]):
    """An awaitable whose value is already known (e.g. a line served from a
    Rust buffer): awaiting it returns at once, with no trip through tokio."""

    def __await__(self) -> Generator[Any, None, _T]: ...
    def __iter__(self) -> Generator[Any, None, _T]: ...
    def __next__(self) -> Any: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any: ...
    def close(self) -> None: ...

class FastIOError(Exception):
    """Base class of every exception fastio raises."""

class InterfaceError(FastIOError):
    """An object was used in a way it does not support (closed, or used after fork)."""

class UsedAfterForkError(InterfaceError):
    """An object created before os.fork() was used in the child process."""

class PanicError(FastIOError):
    """A bug inside fastio's Rust code (a panic) was caught; the process keeps running."""

class TimeoutError(FastIOError, builtins.TimeoutError):
    """A fastio deadline passed. Also a builtin TimeoutError (and asyncio.TimeoutError)."""

class ConnectionError(FastIOError, builtins.ConnectionError):
    """A connection could not be made or was lost. Also a builtin ConnectionError."""

class InvalidArgumentError(FastIOError, ValueError):
    """An argument had a bad value; the message names the argument. Also a ValueError."""

class JSONDecodeError(FastIOError, json.JSONDecodeError):
    """An invalid line in a JSON-lines file. Also a json.JSONDecodeError (so a
    ValueError): ``lineno`` is the line of the file (from 1), ``doc`` that
    line's text, ``pos`` the offset in it, ``msg`` json's message, ``path``
    the file."""

    path: str

_Path = str | os.PathLike[str]

def read_text(
    path: _Path, encoding: str = "utf-8", errors: str = "strict", newline: str | None = None
) -> Awaitable[str]:
    """Read a whole text file. ``encoding``/``errors``/``newline`` as for
    ``open()`` (``newline=None``: ``\\r\\n`` and ``\\r`` read as ``\\n``)."""

def read_bytes(path: _Path) -> Awaitable[bytes]:
    """Read a whole file as bytes."""

def write_text(
    path: _Path,
    data: str,
    encoding: str = "utf-8",
    errors: str = "strict",
    newline: str | None = None,
    *,
    atomic: bool = False,
) -> Awaitable[int]:
    """Write a text file (created or truncated); returns the characters written.
    ``atomic=True`` writes a temp file beside it and renames it into place."""

def write_bytes(path: _Path, data: bytes, *, atomic: bool = False) -> Awaitable[int]:
    """Write a file from a bytes-like object; returns the bytes written."""

def append_text(
    path: _Path,
    data: str,
    encoding: str = "utf-8",
    errors: str = "strict",
    newline: str | None = None,
) -> Awaitable[int]:
    """Append to a text file (created if missing); returns the characters written."""

class _JsonlReader:
    def __init__(
        self,
        path: _Path,
        batch_size: int = 4096,
        errors: str = "raise",
        prefetch: int = 2,
        func: str = "iter_jsonl",
    ) -> None: ...
    def next_batch(self) -> Awaitable[tuple[list[Any], list[Exception]] | None]: ...

class _JsonlWriter:
    def __init__(
        self, path: _Path, append: bool = False, atomic: bool = False, ensure_ascii: bool = True
    ) -> None: ...
    def write(self, records: Iterable[Any]) -> Awaitable[None]: ...
    def close(self, commit: bool = True) -> Awaitable[None]: ...

class _AsyncFile:
    closed: bool
    _readable: bool
    @staticmethod
    def open(
        path: _Path,
        read: bool,
        write: bool,
        append: bool,
        create: bool,
        truncate: bool,
        exclusive: bool,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
        utf8: bool = True,
    ) -> Awaitable[_AsyncFile]: ...
    def read(self, size: int | None = -1) -> Any: ...
    def readline(self, size: int | None = -1) -> Any: ...
    def readlines(self, hint: int | None = -1) -> Any: ...
    def write(self, data: Any) -> Any: ...
    def writelines(self, lines: Iterable[Any]) -> Any: ...
    def seek(self, offset: int, whence: int = 0) -> Any: ...
    def tell(self) -> Any: ...
    def truncate(self, size: int | None = None) -> Any: ...
    def flush(self) -> Any: ...
    def close(self) -> Any: ...
    def readable(self) -> Any: ...
    def writable(self) -> Any: ...
    def seekable(self) -> Any: ...
    def isatty(self) -> Any: ...
    def fileno(self) -> int: ...
    def __aiter__(self) -> _AsyncFile: ...
    def __anext__(self) -> Any: ...

def configure(*, worker_threads: int | None = None) -> None:
    """Set process-wide options before fastio's runtime starts.

    ``worker_threads``: tokio worker threads (default 1, or the
    ``FASTIO_WORKER_THREADS`` environment variable). Raises InterfaceError if
    the runtime already runs with a different count.
    """

def runtime_worker_threads() -> int:
    """Worker threads of fastio's tokio runtime (starting it if needed)."""

def refresh_logging() -> None:
    """Re-read the levels of the ``fastio.*`` loggers after changing them."""

def sleep(seconds: float, result: _T = ...) -> Awaitable[_T]:
    """Sleep on a tokio timer; like ``asyncio.sleep`` (negative = 0, inf = forever)."""

def _live_tasks() -> int: ...
def _panic(message: str, in_task: bool = True) -> Awaitable[None]: ...
def _fail(kind: str, message: str, delay: float = 0.0) -> Awaitable[None]: ...
def _noop(value: int) -> Awaitable[int]: ...
def _noop_plain(value: int) -> Any: ...
def _log(
    level: str, message: str, target: str = "fastio::testing", on_tokio: bool = False
) -> Awaitable[None] | None: ...
