"""Type stubs for the Rust extension module `fastio._fastio`."""

import builtins
from collections.abc import Callable, Generator
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
