"""Files and JSON lines: thin loops over the Rust reader and writer.

The file I/O, JSON parsing and JSON serialization run in Rust
(src/files/); these functions only move whole batches across.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastio._fastio import (
    JSONDecodeError,
    _JsonlReader,
    _JsonlWriter,
    append_text,
    read_bytes,
    read_text,
    write_bytes,
    write_text,
)

__all__ = [
    "JSONDecodeError",
    "JsonlRecords",
    "append_text",
    "iter_jsonl",
    "read_bytes",
    "read_jsonl",
    "read_text",
    "write_bytes",
    "write_jsonl",
    "write_text",
]

# read_jsonl lets the parser run this many batches ahead of the conversion to
# Python objects; iter_jsonl keeps memory bounded with a small read-ahead.
_READ_ALL_BATCH = 2048
_READ_ALL_PREFETCH = 256
_WRITE_CHUNK = 8192


class JsonlRecords(list):  # type: ignore[type-arg]
    """The records of ``read_jsonl(..., errors="collect")``: a list, plus
    ``errors``, the exceptions of the invalid lines (each with ``lineno``)."""

    errors: list[Exception]

    def __init__(self, records: Iterable[Any] = (), errors: list[Exception] | None = None):
        super().__init__(records)
        self.errors = errors if errors is not None else []


async def read_jsonl(
    path: str | os.PathLike[str], *, errors: str = "raise"
) -> list[Any] | JsonlRecords:
    """Read every record of a JSON-lines file into a list.

    Each line is parsed as ``json.loads`` would (same values, int/float types,
    integers of any size, key order, NaN/Infinity); blank lines are skipped.
    The file is read and parsed in Rust, ahead of the conversion to Python
    objects. ``*.gz`` files are decompressed.

    ``errors``: ``"raise"`` (default) raises ``fastio.JSONDecodeError`` (a
    ``json.JSONDecodeError``; ``lineno`` is the line of the file) or
    ``UnicodeDecodeError`` at the first bad line; ``"skip"`` drops bad lines;
    ``"collect"`` drops them and returns a ``JsonlRecords`` list whose
    ``errors`` holds those exceptions.
    """
    reader = _JsonlReader(path, _READ_ALL_BATCH, errors, _READ_ALL_PREFETCH, "read_jsonl")
    records: list[Any] = []
    bad: list[Exception] = []
    while True:
        batch = await reader.next_batch()
        if batch is None:
            break
        recs, errs = batch
        if errs and errors == "raise":
            raise errs[0]
        if records:
            records.extend(recs)
        else:
            records = recs
        bad.extend(errs)
    if errors == "collect":
        return JsonlRecords(records, bad)
    return records


class iter_jsonl:  # noqa: N801  (used like a function: `async for r in iter_jsonl(p)`)
    """Async iterator over the records of a JSON-lines file, one by one.

    ``async for record in fastio.iter_jsonl(path, batch_size=4096)``: a Rust
    thread reads and parses ahead, ``batch_size`` records at a time, at most
    ``prefetch`` batches ahead, so memory stays bounded by the batch size
    whatever the file size. ``batches()`` yields whole lists instead.

    ``errors`` as for ``read_jsonl``: with ``"raise"`` the records before the
    bad line are yielded, then the exception is raised; with ``"collect"`` the
    exceptions gather in the iterator's ``errors`` list.
    """

    errors: list[Exception]

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 4096,
        errors: str = "raise",
        prefetch: int = 2,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise TypeError(
                f"iter_jsonl(): batch_size must be an int, not {type(batch_size).__name__}"
            )
        self._reader = _JsonlReader(path, batch_size, errors, prefetch)
        self._mode = errors
        self._batch: list[Any] = []
        self._index = 0
        self._pending: Exception | None = None
        self._done = False
        self.errors = []

    def __aiter__(self) -> iter_jsonl:
        return self

    async def __anext__(self) -> Any:
        while self._index >= len(self._batch):
            if self._pending is not None:
                err, self._pending = self._pending, None
                self._done = True
                raise err
            if self._done:
                raise StopAsyncIteration
            batch = await self._reader.next_batch()
            if batch is None:
                self._done = True
                raise StopAsyncIteration
            self._batch, errs = batch
            self._index = 0
            if errs:
                if self._mode == "raise":
                    self._pending = errs[0]
                else:
                    self.errors.extend(errs)
        record = self._batch[self._index]
        self._index += 1
        return record

    async def batches(self) -> AsyncIterator[list[Any]]:
        """The records a batch (a list) at a time instead of one by one."""
        while True:
            if self._index < len(self._batch):
                rest = self._batch[self._index :]
                self._batch, self._index = [], 0
                yield rest
            try:
                await self.__anext__()
            except StopAsyncIteration:
                return
            self._index -= 1


async def write_jsonl(
    path: str | os.PathLike[str],
    records: Iterable[Any],
    *,
    append: bool = False,
    atomic: bool = False,
    ensure_ascii: bool = True,
) -> int:
    """Write records as JSON lines; returns how many were written.

    Each line is what ``json.dumps(record)`` gives (its default separators;
    ``ensure_ascii`` as in ``json.dumps``), serialized in Rust; types
    ``json.dumps`` rejects raise the same ``TypeError``. ``records`` may be any
    iterable (a generator is consumed in chunks, so memory stays bounded).
    ``append=True`` appends; ``atomic=True`` writes a temp file and renames it
    into place only when every record was written. ``*.gz`` paths are gzipped.
    """
    writer = _JsonlWriter(path, append, atomic, ensure_ascii)
    count = 0
    pending = None
    try:
        if isinstance(records, (list, tuple)):
            chunks: Iterable[Any] = (
                records[i : i + _WRITE_CHUNK] for i in range(0, len(records), _WRITE_CHUNK)
            )
        else:
            chunks = _chunked(records, _WRITE_CHUNK)
        for chunk in chunks:
            # Serialize this chunk (Rust, on this thread) while the previous
            # one is being written (Rust, on a blocking thread).
            write = writer.write(chunk)
            if pending is not None:
                await pending
            write.add_done_callback(_ignore)  # starts the write now
            pending = write
            count += len(chunk)
        if pending is not None:
            p, pending = pending, None
            await p
    except BaseException:
        if pending is not None:
            pending.cancel()
        await writer.close(commit=False)
        raise
    await writer.close()
    return count


def _ignore(_: object) -> None:
    pass


def _chunked(items: Iterable[Any], n: int) -> Iterable[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
