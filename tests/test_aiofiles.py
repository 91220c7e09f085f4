"""fastio.aiofiles side by side with aiofiles (src/files/aiofile.rs,
python/fastio/aiofiles.py): the same calls on the same files give the same
results, the same file contents and the same exception types."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import aiofiles
import pytest

import fastio.aiofiles

LIBS = {"aiofiles": aiofiles, "fastio": fastio.aiofiles}

CONTENTS = {
    "lf": b"first line\nsecond\n\nlast without newline",
    "crlf": b"one\r\ntwo\r\nthree\r\n",
    "cr": b"one\rtwo\rthree",
    "mixed": b"a\nb\r\nc\rd\r\n\r\ne",
    "unicode": "héllo\n東京\n😀 emoji\nçà\n".encode(),
    "empty": b"",
    "one-long-line": b"x" * 700_000 + b"\n" + b"y" * 10,
    "cr-at-chunk-edge": b"z" * (1 << 18) + b"\r\nafter\n",
}


async def run_ops(
    lib: Any, path: Path, mode: str, ops: list[tuple[Any, ...]], **kw: Any
) -> list[Any]:
    """Runs `ops` (method name, *args) on a file of `lib`; returns each result
    or the name of the exception it raised."""
    out: list[Any] = []
    async with lib.open(path, mode, **kw) as f:
        for name, *args in ops:
            try:
                if name == "iter":
                    out.append([line async for line in f])
                else:
                    out.append(await getattr(f, name)(*args))
            except Exception as e:  # noqa: BLE001
                out.append(type(e).__name__)
    return out


async def both(
    tmp_path: Path, content: bytes | None, mode: str, ops: list[tuple[Any, ...]], **kw: Any
) -> list[Any]:
    """Runs `ops` with each library on its own copy of `content`; asserts the
    results and the files afterwards are equal; returns fastio's results."""
    results, files = {}, {}
    for name, lib in LIBS.items():
        p = tmp_path / f"{name}.txt"
        if content is not None:
            p.write_bytes(content)
        results[name] = await run_ops(lib, p, mode, ops, **kw)
        files[name] = p.read_bytes() if p.exists() else None
    assert results["fastio"] == results["aiofiles"]
    assert files["fastio"] == files["aiofiles"]
    return results["fastio"]


@pytest.mark.parametrize("content", list(CONTENTS), ids=list(CONTENTS))
@pytest.mark.parametrize("mode", ["r", "rb"])
async def test_line_iteration_is_the_same(tmp_path: Path, content: str, mode: str) -> None:
    await both(tmp_path, CONTENTS[content], mode, [("iter",)])


@pytest.mark.parametrize("content", list(CONTENTS), ids=list(CONTENTS))
@pytest.mark.parametrize("newline", [None, "", "\n", "\r", "\r\n"])
async def test_newline_argument_is_the_same(
    tmp_path: Path, content: str, newline: str | None
) -> None:
    await both(tmp_path, CONTENTS[content], "r", [("iter",)], newline=newline)
    await both(tmp_path, CONTENTS[content], "r", [("read",)], newline=newline)


@pytest.mark.parametrize("content", list(CONTENTS), ids=list(CONTENTS))
@pytest.mark.parametrize("mode", ["r", "rb"])
async def test_reads_are_the_same(tmp_path: Path, content: str, mode: str) -> None:
    ops = [
        ("read", 3),
        ("readline",),
        ("readline", 2),
        ("readline", 0),
        ("read", 5),
        ("readlines",),
        ("read",),
        ("readline",),
    ]
    await both(tmp_path, CONTENTS[content], mode, ops)
    await both(tmp_path, CONTENTS[content], mode, [("readlines", 5), ("read",)])
    await both(tmp_path, CONTENTS[content], mode, [("read",), ("read",)])


async def test_binary_seek_and_tell_are_the_same(tmp_path: Path) -> None:
    ops = [
        ("readline",),
        ("tell",),
        ("seek", 2),
        ("read", 4),
        ("tell",),
        ("seek", -3, 2),
        ("read",),
        ("seek", 1, 0),
        ("seek", 2, 1),
        ("tell",),
        ("readline",),
        ("seek", -1),
        ("seek", 0, 7),
    ]
    await both(tmp_path, CONTENTS["lf"], "rb", ops)


async def test_text_tell_then_seek_returns_to_the_same_line(tmp_path: Path) -> None:
    for lib in LIBS.values():
        p = tmp_path / "t.txt"
        p.write_bytes(CONTENTS["unicode"])
        async with lib.open(p, encoding="utf-8") as f:
            await f.readline()
            pos = await f.tell()
            second = await f.readline()
            await f.read()
            await f.seek(pos)
            assert await f.readline() == second == "東京\n"
            with pytest.raises(io.UnsupportedOperation):
                await f.seek(1, 1)
            with pytest.raises(io.UnsupportedOperation):
                await f.seek(-1, 2)
            assert await f.seek(0, 2) == len(CONTENTS["unicode"])


@pytest.mark.parametrize("mode", ["w", "a", "x", "w+", "a+", "r+", "wb", "ab", "r+b", "w+b"])
async def test_writes_are_the_same(tmp_path: Path, mode: str) -> None:
    text = "b" not in mode
    data: list[Any] = ["héllo\n", "wörld\r\n", "x" * 300_000, "\n"]
    if not text:
        data = [d.encode() for d in data]
    ops = [
        ("write", data[0]),
        ("writelines", data[1:3]),
        ("tell",),
        ("flush",),
        ("write", data[3]),
        ("seek", 0),
        ("read", 8),
        ("seek", 0, 2),
        ("tell",),
        ("write", data[0]),
        ("truncate", 4),
        ("tell",),
        ("write", 123),
        ("writable",),
        ("readable",),
        ("seekable",),
    ]
    existing = None if mode.startswith("x") else b"existing\ncontent\n"
    await both(tmp_path, existing, mode, ops)


@pytest.mark.parametrize("mode", ["a", "a+", "ab", "a+b"])
async def test_append_mode_starts_at_the_end_like_open(tmp_path: Path, mode: str) -> None:
    data = "more\n" if "b" not in mode else b"more\n"
    ops = [("tell",), ("write", data), ("tell",), ("seek", 0), ("write", data), ("tell",)]
    assert (await both(tmp_path, b"existing\n", mode, ops))[0] == 9


async def test_newline_translation_on_write_is_the_same(tmp_path: Path) -> None:
    for newline in (None, "", "\n", "\r", "\r\n"):
        await both(tmp_path, None, "w", [("write", "a\nb\r\nc\n"), ("tell",)], newline=newline)


@pytest.mark.parametrize("encoding", ["latin-1", "ascii", "cp1252", "utf-16", "utf-8-sig"])
async def test_encodings_are_the_same(tmp_path: Path, encoding: str) -> None:
    text = "plain ascii\nsecond line\r\n" + ("café\n" if encoding != "ascii" else "")
    content = text.encode(encoding)
    await both(tmp_path, content, "r", [("iter",)], encoding=encoding)
    await both(tmp_path, content, "r", [("read", 7), ("readline",), ("read",)], encoding=encoding)
    await both(tmp_path, None, "w", [("write", text), ("tell",)], encoding=encoding)


async def test_decode_errors_are_the_same(tmp_path: Path) -> None:
    bad = b"good line\nbad \xff\xfe line\nmore\n"
    for errors in ("replace", "ignore", "surrogateescape", "backslashreplace"):
        await both(tmp_path, bad, "r", [("readline",), ("readline",), ("read",)], errors=errors)
    assert await both(tmp_path, bad, "r", [("read",)]) == ["UnicodeDecodeError"]
    assert await both(tmp_path, bad, "r", [("iter",)]) == ["UnicodeDecodeError"]
    # Line by line, fastio raises at the line that holds the bad bytes;
    # Python's TextIOWrapper (so aiofiles) decodes 8 KiB chunks and raises at
    # the first line of the chunk (see the README's Differences).
    p = tmp_path / "bad.txt"
    p.write_bytes(bad)
    async with fastio.aiofiles.open(p) as f:
        assert await f.readline() == "good line\n"
        with pytest.raises(UnicodeDecodeError):
            await f.readline()
        assert await f.readline() == "more\n"


async def test_errors_are_the_same(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    for mode in ("r", "rb", "r+"):
        for lib in LIBS.values():
            with pytest.raises(FileNotFoundError):
                await lib.open(missing, mode)
    for lib in LIBS.values():
        with pytest.raises(IsADirectoryError):
            await lib.open(tmp_path)
        with pytest.raises(IsADirectoryError):
            await lib.open(tmp_path, "w")
        with pytest.raises(ValueError, match="invalid mode"):
            await lib.open(missing, "rw+z")
        with pytest.raises(ValueError):
            await lib.open(missing, "rb", encoding="utf-8")
    existing = tmp_path / "exists.txt"
    existing.write_text("x")
    for lib in LIBS.values():
        with pytest.raises(FileExistsError):
            await lib.open(existing, "x")
    assert await both(tmp_path, b"data", "r", [("write", "x"), ("truncate",)]) == [
        "UnsupportedOperation",
        "UnsupportedOperation",
    ]
    assert await both(tmp_path, None, "w", [("read",), ("readline",)]) == [
        "UnsupportedOperation",
        "UnsupportedOperation",
    ]
    assert await both(tmp_path, None, "w", [("write", b"bytes")]) == ["TypeError"]
    assert await both(tmp_path, None, "wb", [("write", "str")]) == ["TypeError"]


async def test_closed_file_and_attributes(tmp_path: Path) -> None:
    p = tmp_path / "f.txt"
    p.write_text("abc\n")
    for lib in LIBS.values():
        f = await lib.open(p)
        assert f.name == str(p)
        assert f.mode == "r"
        assert not f.closed
        assert await f.readline() == "abc\n"
        await f.close()
        assert f.closed
        with pytest.raises(ValueError, match="closed file"):
            await f.read()
        g = await lib.open(p, "r+b")
        assert g.mode == "rb+"
        assert isinstance(g.fileno(), int)
        await g.close()
        await g.close()  # closing twice is fine


async def test_unflushed_writes_reach_the_file_on_close(tmp_path: Path) -> None:
    p = tmp_path / "w.txt"
    async with fastio.aiofiles.open(p, "w") as f:
        for i in range(1000):
            await f.write(f"line {i}\n")
    assert p.read_text() == "".join(f"line {i}\n" for i in range(1000))


async def test_buffered_answers_work_with_tasks_gather_and_wait_for(tmp_path: Path) -> None:
    p = tmp_path / "g.txt"
    p.write_text("a\nb\nc\nd\n")
    async with fastio.aiofiles.open(p) as f:
        assert await asyncio.wait_for(f.readline(), 5) == "a\n"  # answered from the buffer
        assert await asyncio.gather(f.readline(), f.readline()) == ["b\n", "c\n"]
        assert await asyncio.create_task(f.readline()) == "d\n"
        assert await asyncio.wait_for(f.readline(), 5) == ""
