"""aiofiles' ``open()`` on fastio: ``import fastio.aiofiles as aiofiles``.

``async with aiofiles.open(path, mode) as f`` and ``f = await aiofiles.open(...)``
give a file whose methods are awaited as with aiofiles: read, readline,
readlines, write, writelines, seek, tell, flush, truncate, close, and
``async for line in f``. The buffering is in Rust (src/files/aiofile.rs): a
call the buffer can answer returns at once instead of making a thread-pool
round trip, so iterating lines costs about a microsecond per line.

Text files in encodings that are not ASCII-compatible (UTF-16, UTF-32, ...)
are served by the standard library in a thread, as aiofiles does.
"""

from __future__ import annotations

import asyncio
import codecs
import locale
import os
from collections.abc import Awaitable, Generator
from types import TracebackType
from typing import Any, Callable

from fastio._fastio import _AsyncFile

__all__ = ["AiofilesContextManager", "AsyncFile", "open"]

# Encodings whose newlines are the bytes \n and \r, so Rust can split lines
# before decoding; the value says whether characters are UTF-8 sequences.
_RUST_ENCODINGS = {
    "utf-8": True,
    "ascii": False,
    "iso8859-1": False,
    "iso8859-15": False,
    "cp1252": False,
}


def _parse_mode(mode: str) -> tuple[bool, bool, bool, bool, bool, bool, bool]:
    """(binary, read, write, append, create, truncate, exclusive), as io.open checks it."""
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {type(mode).__name__}")
    modes = set(mode)
    if modes - set("axrwb+t") or len(mode) > len(modes):
        raise ValueError(f"invalid mode: {mode!r}")
    creating, reading, writing, appending = "x" in modes, "r" in modes, "w" in modes, "a" in modes
    updating, text, binary = "+" in modes, "t" in modes, "b" in modes
    if text and binary:
        raise ValueError("can't have text and binary mode at once")
    if creating + reading + writing + appending > 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    if not (creating or reading or writing or appending):
        raise ValueError(
            "Must have exactly one of create/read/write/append mode and at most one plus"
        )
    return (
        binary,
        reading or updating,
        writing or creating or updating,
        appending,
        writing or appending or creating,
        writing,
        creating,
    )


def _binary_mode(read: bool, write: bool, append: bool, exclusive: bool) -> str:
    """The mode string a binary file reports, as io.FileIO spells it."""
    plus = "+" if read and write else ""
    if exclusive:
        return "xb" + plus
    if append:
        return "ab" + plus
    return "rb" + plus if read else "wb"


class AsyncFile:
    """A file from ``fastio.aiofiles.open``; every I/O method returns an awaitable."""

    __slots__ = ("_raw", "_thread", "name", "mode", "encoding", "errors", "newlines")

    def __init__(self, raw: Any, name: Any, mode: str, encoding: str | None, errors: str | None):
        self._raw = raw
        self._thread = not isinstance(raw, _AsyncFile)
        self.name = name
        self.mode = mode
        self.encoding = encoding
        self.errors = errors
        self.newlines = None

    def __aiter__(self) -> Any:
        return self._raw if not self._thread else self

    async def __anext__(self) -> Any:
        line = await self.readline()
        if line:
            return line
        raise StopAsyncIteration

    def __repr__(self) -> str:
        return f"<fastio.aiofiles.AsyncFile name={self.name!r} mode={self.mode!r}>"

    @property
    def closed(self) -> bool:
        return bool(self._raw.closed)

    def read(self, size: int = -1) -> Awaitable[Any]:
        return self._raw.read(size)

    def read1(self, size: int = -1) -> Awaitable[Any]:
        return self._raw.read(size)

    def readall(self) -> Awaitable[Any]:
        return self._raw.read(-1)

    async def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = await self._raw.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readline(self, size: int = -1) -> Awaitable[Any]:
        return self._raw.readline(size)

    def readlines(self, hint: int = -1) -> Awaitable[list[Any]]:
        return self._raw.readlines(hint)

    def write(self, data: Any) -> Awaitable[int]:
        return self._raw.write(data)

    def writelines(self, lines: Any) -> Awaitable[None]:
        return self._raw.writelines(lines)

    def seek(self, offset: int, whence: int = 0) -> Awaitable[int]:
        return self._raw.seek(offset, whence)

    def tell(self) -> Awaitable[int]:
        return self._raw.tell()

    def truncate(self, size: int | None = None) -> Awaitable[int]:
        return self._raw.truncate(size)

    def flush(self) -> Awaitable[None]:
        return self._raw.flush()

    def close(self) -> Awaitable[None]:
        return self._raw.close()

    def readable(self) -> Any:
        # aiofiles: awaitable for text files, a plain bool for binary ones.
        if self.encoding is None and not self._thread:
            return bool(self._raw._readable)
        return self._raw.readable()

    def writable(self) -> Awaitable[bool]:
        return self._raw.writable()

    def seekable(self) -> Awaitable[bool]:
        return self._raw.seekable()

    def isatty(self) -> Awaitable[bool]:
        return self._raw.isatty()

    def fileno(self) -> int:
        return int(self._raw.fileno())


class _ThreadFile:
    """A standard-library file driven from a thread (aiofiles' way), for the
    text encodings Rust does not split lines in."""

    def __init__(self, f: Any):
        self._f = f

    @property
    def closed(self) -> bool:
        return bool(self._f.closed)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._f, name)

        async def run(*args: Any) -> Any:
            return await asyncio.get_running_loop().run_in_executor(None, method, *args)

        return run

    def fileno(self) -> int:
        return int(self._f.fileno())


async def _open(
    file: Any,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
    closefd: bool,
    opener: Any,
) -> AsyncFile:
    binary, read, write, append, create, truncate, exclusive = _parse_mode(mode)
    if binary:
        if encoding is not None:
            raise ValueError("binary mode doesn't take an encoding argument")
        if errors is not None:
            raise ValueError("binary mode doesn't take an errors argument")
        if newline is not None:
            raise ValueError("binary mode doesn't take a newline argument")
    elif newline not in (None, "", "\n", "\r", "\r\n"):
        raise ValueError(f"illegal newline value: {newline}")
    if isinstance(file, int) or not closefd or opener is not None:
        raise ValueError(
            "fastio.aiofiles.open() takes a path; file descriptors and opener are not supported"
        )
    name = os.fspath(file)
    if binary:
        raw = await _AsyncFile.open(name, read, write, append, create, truncate, exclusive)
        return AsyncFile(raw, name, _binary_mode(read, write, append, exclusive), None, None)
    if encoding is None:
        encoding = locale.getpreferredencoding(False)
    errors = errors or "strict"
    codec = codecs.lookup(encoding).name
    if codec in _RUST_ENCODINGS:
        raw = await _AsyncFile.open(
            name,
            read,
            write,
            append,
            create,
            truncate,
            exclusive,
            encoding,
            errors,
            newline,
            _RUST_ENCODINGS[codec],
        )
    else:
        import builtins

        f = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: builtins.open(name, mode, buffering, encoding, errors, newline),
        )
        raw = _ThreadFile(f)
    return AsyncFile(raw, name, mode, encoding, errors)


class AiofilesContextManager:
    """What ``open()`` returns: await it for the file, or use ``async with``
    (the file is closed on exit)."""

    __slots__ = ("_coro", "_obj")

    def __init__(self, coro: Any):
        self._coro = coro
        self._obj: AsyncFile | None = None

    def __await__(self) -> Generator[Any, None, AsyncFile]:
        if self._obj is None:
            self._obj = yield from self._coro.__await__()
        return self._obj

    async def __aenter__(self) -> AsyncFile:
        return await self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._obj is not None:
            await self._obj.close()
            self._obj = None


def open(  # noqa: A001  (aiofiles' name)
    file: str | os.PathLike[str],
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Any = None,
    *,
    loop: Any = None,
    executor: Any = None,
) -> AiofilesContextManager:
    """Open a file for async use, like ``aiofiles.open`` (same arguments)."""
    return AiofilesContextManager(
        _open(file, mode, buffering, encoding, errors, newline, closefd, opener)
    )
