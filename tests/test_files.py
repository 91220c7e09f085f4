"""Files and JSON lines (src/files/, python/fastio/files.py).

The reference for every JSON result is the standard library: records must be
what `json.loads` gives per line (values, number types, key order) and
written lines what `json.dumps` gives.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import os
import subprocess
import sys
import textwrap
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest

import fastio

# ----------------------------------------------------------- text, bytes --


async def test_text_round_trip_with_unicode(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    text = "héllo wörld — 東京 😀\nsecond line\n"
    assert await fastio.write_text(p, text) == len(text)
    assert await fastio.read_text(p) == text
    assert p.read_bytes() == text.encode("utf-8")
    assert await fastio.read_text(str(p)) == text  # str or PathLike


async def test_text_encoding_and_errors_are_the_codec_arguments(tmp_path: Path) -> None:
    p = tmp_path / "latin.txt"
    await fastio.write_text(p, "café", encoding="latin-1")
    assert p.read_bytes() == b"caf\xe9"
    assert await fastio.read_text(p, encoding="latin-1") == "café"
    assert await fastio.read_text(p, errors="replace") == "caf\ufffd"
    await fastio.write_text(p, "naïve €", encoding="ascii", errors="xmlcharrefreplace")
    assert p.read_text() == "na&#239;ve &#8364;"
    with pytest.raises(UnicodeEncodeError):
        await fastio.write_text(p, "€", encoding="latin-1")
    with pytest.raises(LookupError):
        await fastio.read_text(p, encoding="no-such-codec")
    p.write_bytes("ünïcode".encode("utf-16"))
    assert await fastio.read_text(p, encoding="utf-16") == "ünïcode"


async def test_text_newlines_follow_open(tmp_path: Path) -> None:
    p = tmp_path / "nl.txt"
    p.write_bytes(b"a\r\nb\rc\n")
    assert await fastio.read_text(p) == "a\nb\nc\n"  # universal newlines, as open()
    assert await fastio.read_text(p, newline="") == "a\r\nb\rc\n"
    await fastio.write_text(p, "x\ny\n", newline="\r\n")
    assert p.read_bytes() == b"x\r\ny\r\n"
    with pytest.raises(ValueError, match="illegal newline"):
        await fastio.read_text(p, newline="x")


async def test_bytes_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "b.bin"
    data = bytes(range(256)) * 100
    assert await fastio.write_bytes(p, data) == len(data)
    assert await fastio.read_bytes(p) == data
    await fastio.write_bytes(p, bytearray(b"xyz"))
    assert await fastio.read_bytes(p) == b"xyz"
    await fastio.write_bytes(p, memoryview(b"abcdef")[2:])
    assert await fastio.read_bytes(p) == b"cdef"
    with pytest.raises(TypeError, match="bytes-like"):
        fastio.write_bytes(p, "text")


async def test_append_text_appends(tmp_path: Path) -> None:
    p = tmp_path / "log.txt"
    await fastio.append_text(p, "one\n")  # creates the file
    await fastio.append_text(p, "twö\n")
    assert p.read_text() == "one\ntwö\n"


async def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "config.json"
    p.write_text("old")
    await fastio.write_text(p, "new contents", atomic=True)
    assert p.read_text() == "new contents"
    await fastio.write_bytes(p, b"\x00\x01", atomic=True)
    assert p.read_bytes() == b"\x00\x01"
    assert sorted(os.listdir(tmp_path)) == ["config.json"]
    with pytest.raises(FileNotFoundError):
        await fastio.write_text(tmp_path / "missing-dir" / "f.txt", "x", atomic=True)
    assert sorted(os.listdir(tmp_path)) == ["config.json"]


# ------------------------------------------------------------- bad input --


def builtin_error(path: Any, mode: str) -> type[BaseException] | None:
    try:
        with open(path, mode) as f:
            f.read() if "r" in mode else f.write("x")
    except Exception as e:  # noqa: BLE001
        return type(e)
    return None


async def test_missing_file_is_file_not_found_like_open(tmp_path: Path) -> None:
    p = tmp_path / "nope.txt"
    for call in (fastio.read_text(p), fastio.read_bytes(p), fastio.read_jsonl(p)):
        with pytest.raises(FileNotFoundError) as info:
            await call
        assert info.value.errno == 2
        assert info.value.filename == str(p)
    with pytest.raises(FileNotFoundError):
        async for _ in fastio.iter_jsonl(p):
            pass


async def test_directory_is_is_a_directory_error_like_open(tmp_path: Path) -> None:
    assert builtin_error(tmp_path, "r") is IsADirectoryError
    for call in (
        fastio.read_text(tmp_path),
        fastio.read_bytes(tmp_path),
        fastio.read_jsonl(tmp_path),
        fastio.write_text(tmp_path, "x"),
        fastio.write_jsonl(tmp_path, [1]),
    ):
        with pytest.raises(IsADirectoryError):
            await call


async def test_permission_denied_is_permission_error_like_open(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        p = tmp_path / "secret.txt"
        p.write_text("x")
        p.chmod(0)
        assert builtin_error(p, "r") is PermissionError
        with pytest.raises(PermissionError):
            await fastio.read_text(p)
        with pytest.raises(PermissionError):
            await fastio.read_jsonl(p)
    else:
        # root reads anything; the kernel still refuses this write to root.
        p = Path("/proc/sys/kernel/ostype")
        if builtin_error(p, "w") is not PermissionError:
            pytest.skip("no path refuses root here")
    with pytest.raises(PermissionError) as info:
        await fastio.write_text(p, "x")
    assert info.value.filename == str(p)


async def test_invalid_utf8_is_unicode_decode_error(tmp_path: Path) -> None:
    p = tmp_path / "bad.txt"
    p.write_bytes(b'"ok"\nab\xffcd\n')
    with pytest.raises(UnicodeDecodeError) as info:
        await fastio.read_text(p)
    with pytest.raises(UnicodeDecodeError) as ref:
        p.read_text(encoding="utf-8")
    assert str(info.value) == str(ref.value)
    with pytest.raises(UnicodeDecodeError) as info:
        await fastio.read_jsonl(p)
    assert info.value.lineno == 2
    assert info.value.reason == "invalid start byte"
    assert info.value.object == b"ab\xffcd"


async def test_bad_path_argument_is_type_error_naming_the_function() -> None:
    with pytest.raises(TypeError, match=r"read_text\(\): path must be a str or os.PathLike"):
        fastio.read_text(42)
    with pytest.raises(TypeError, match=r"read_jsonl\(\): path must be a str or os.PathLike"):
        await fastio.read_jsonl(42)
    with pytest.raises(TypeError, match=r"iter_jsonl\(\): path must be a str or os.PathLike"):
        fastio.iter_jsonl(None)
    with pytest.raises(TypeError, match=r"write_jsonl\(\): path must be a str or os.PathLike"):
        await fastio.write_jsonl(1.5, [])


# ----------------------------------------------------------- JSON lines --

RECORDS: list[Any] = [
    {"id": 1, "name": "plain", "ok": True, "none": None},
    {"big": 2**100, "neg_big": -(2**70), "max_u64": 2**64 - 1, "min_i64": -(2**63)},
    {"floats": [0.1, 1e-7, 1e16, 1.5e300, -0.0, 123.456, 5e-324, 2.0**53 + 2]},
    {"unicode": "héllo 東京 😀", "escapes": 'quote" back\\ tab\t nl\n cr\r \u0001 \x7f'},
    {"nested": {"a": [1, [2, [3, {"b": None}]]], "empty": {}, "list": []}},
    [1, "two", 3.0, None, False],
    "a bare string",
    42,
    -17.5,
    None,
]


def json_lines(records: list[Any], **kw: Any) -> str:
    return "".join(json.dumps(r, **kw) + "\n" for r in records)


def same(a: Any, b: Any) -> bool:
    """Equal including number types and key order (nan equals nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b) and a == b
    return bool(a == b)


async def test_write_jsonl_output_is_json_dumps_byte_for_byte(tmp_path: Path) -> None:
    p = tmp_path / "out.jsonl"
    assert await fastio.write_jsonl(p, RECORDS) == len(RECORDS)
    assert p.read_text() == json_lines(RECORDS)
    await fastio.write_jsonl(p, RECORDS, ensure_ascii=False)
    assert p.read_text(encoding="utf-8") == json_lines(RECORDS, ensure_ascii=False)


async def test_read_jsonl_gives_what_json_loads_gives(tmp_path: Path) -> None:
    p = tmp_path / "in.jsonl"
    p.write_text(json_lines(RECORDS, ensure_ascii=False), encoding="utf-8")
    expected = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
    got = await fastio.read_jsonl(p)
    assert same(got, expected)
    assert type(got[1]["big"]) is int and got[1]["big"] == 2**100  # orjson would give a float
    p.write_text(json_lines(RECORDS))  # \uXXXX escapes instead of UTF-8
    assert same(await fastio.read_jsonl(p), expected)


@pytest.mark.parametrize(
    "line",
    [
        '{"a": 1, "b": 2, "a": 3}',  # duplicate key: last value, first position
        "[NaN, Infinity, -Infinity]",  # json.loads accepts these
        "-0",
        "-0.0",
        "1E400",
        "1e-400",
        "123456789012345678901234567890.5",
        '"\\ud800 lone surrogate"',
        '"\\ud83d\\ude00 pair"',
        '"\\u00e9\\u0000\\/"',
        '  {"spaced" :  [ 1 , 2 ] }  ',
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "0.30000000000000004",
        "100000000000000000000000e-20",
        '{"": ""}',
    ],
)
async def test_json_loads_corner_cases(tmp_path: Path, line: str) -> None:
    p = tmp_path / "c.jsonl"
    p.write_text(line + "\n", encoding="utf-8", errors="surrogatepass")
    (got,) = await fastio.read_jsonl(p)
    assert same(got, json.loads(line))


BAD_LINES = [
    "{bad}",
    '{"a" 1}',
    '{"a": 1,}',
    "[1, 2",
    '"unterminated',
    "[1] [2]",
    "tru",
    '{"a": "\\x"}',
    '"\\u12"',
    '"tab\there"',
    "01",
    "{'single': 1}",
]


@pytest.mark.parametrize("bad", BAD_LINES)
async def test_raise_names_the_line_like_json_loads(tmp_path: Path, bad: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"ok": 1}\n\n' + bad + '\n{"ok": 2}\n')
    with pytest.raises(json.JSONDecodeError) as ref:
        json.loads(bad)
    with pytest.raises(fastio.JSONDecodeError) as info:
        await fastio.read_jsonl(p)
    e = info.value
    assert isinstance(e, ValueError) and isinstance(e, fastio.FastIOError)
    assert e.lineno == 3  # the line of the file (the blank line counts)
    assert e.msg == ref.value.msg
    assert e.pos == ref.value.pos
    assert e.doc == bad
    assert e.path == str(p)
    assert f"line 3 column {ref.value.pos + 1} of {p}" in str(e)


async def test_error_modes_skip_and_collect(tmp_path: Path) -> None:
    p = tmp_path / "mixed.jsonl"
    p.write_bytes(b'{"n": 1}\nnot json\n{"n": 2}\n\n   \n{"n": 3\n\xff\xfe\n{"n": 4}')
    assert await fastio.read_jsonl(p, errors="skip") == [{"n": 1}, {"n": 2}, {"n": 4}]
    got = await fastio.read_jsonl(p, errors="collect")
    assert isinstance(got, fastio.JsonlRecords)
    assert got == [{"n": 1}, {"n": 2}, {"n": 4}]
    assert [e.lineno for e in got.errors] == [2, 6, 7]
    assert [type(e) for e in got.errors] == [
        fastio.JSONDecodeError,
        fastio.JSONDecodeError,
        UnicodeDecodeError,
    ]
    it = fastio.iter_jsonl(p, batch_size=2, errors="collect")
    assert [r async for r in it] == [{"n": 1}, {"n": 2}, {"n": 4}]
    assert [e.lineno for e in it.errors] == [2, 6, 7]
    with pytest.raises(ValueError, match="errors must be"):
        await fastio.read_jsonl(p, errors="ignore")


async def test_iter_jsonl_yields_records_then_raises_at_the_bad_line(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text("".join(f'{{"i": {i}}}\n' for i in range(10)) + "oops\n" + '{"i": 99}\n')
    seen = []
    with pytest.raises(fastio.JSONDecodeError) as info:
        async for rec in fastio.iter_jsonl(p, batch_size=3):
            seen.append(rec["i"])
    assert seen == list(range(10))
    assert info.value.lineno == 11


async def test_iter_jsonl_matches_read_jsonl_for_any_batch_size(tmp_path: Path) -> None:
    p = tmp_path / "many.jsonl"
    records = [{"i": i, "s": "x" * (i % 7), "l": list(range(i % 4))} for i in range(2500)]
    await fastio.write_jsonl(p, records)
    assert await fastio.read_jsonl(p) == records
    for batch_size in (1, 7, 1000, 100_000):
        assert [r async for r in fastio.iter_jsonl(p, batch_size=batch_size)] == records
    batches = [b async for b in fastio.iter_jsonl(p, batch_size=1000).batches()]
    assert [len(b) for b in batches] == [1000, 1000, 500]
    with pytest.raises(ValueError, match="batch_size"):
        fastio.iter_jsonl(p, batch_size=0)


async def test_last_line_without_newline_and_crlf_files(tmp_path: Path) -> None:
    p = tmp_path / "crlf.jsonl"
    p.write_bytes(b'{"a": 1}\r\n{"b": 2}\r\n{"c": 3}')
    assert await fastio.read_jsonl(p) == [{"a": 1}, {"b": 2}, {"c": 3}]
    p.write_bytes(b"")
    assert await fastio.read_jsonl(p) == []


async def test_gzip_by_extension(tmp_path: Path) -> None:
    p = tmp_path / "data.jsonl.gz"
    await fastio.write_jsonl(p, RECORDS)
    with gzip.open(p, "rt") as f:
        assert f.read() == json_lines(RECORDS)
    q = tmp_path / "other.JSONL.GZ"
    with gzip.open(q, "wt") as f:
        f.write(json_lines(RECORDS))
    assert same(await fastio.read_jsonl(q), [json.loads(json.dumps(r)) for r in RECORDS])
    assert [r async for r in fastio.iter_jsonl(q, batch_size=2)] == await fastio.read_jsonl(q)


class Color(IntEnum):
    RED = 1


class MyDict(dict):  # type: ignore[type-arg]
    pass


async def test_write_jsonl_accepts_what_json_dumps_accepts(tmp_path: Path) -> None:
    p = tmp_path / "types.jsonl"
    records = [
        {7: "int key", 2.5: "float key", True: "bool key", None: "none key"},
        (1, (2, 3)),
        MyDict(a=Color.RED),
        {"nan": math.nan, "inf": math.inf, "-inf": -math.inf},
        "lone \ud800 surrogate",
    ]
    await fastio.write_jsonl(p, records)
    assert p.read_text() == json_lines(records)


async def test_write_jsonl_rejects_what_json_dumps_rejects(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    for bad in ({"when": object()}, {1j: 1}, {1, 2}, b"bytes"):
        with pytest.raises(TypeError) as ref:
            json.dumps(bad)
        with pytest.raises(TypeError) as info:
            await fastio.write_jsonl(p, [bad])
        assert str(info.value) == str(ref.value)
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular reference detected"):
        await fastio.write_jsonl(p, [cycle])


async def test_write_jsonl_takes_generators_appends_and_stays_atomic(tmp_path: Path) -> None:
    p = tmp_path / "gen.jsonl"
    n = await fastio.write_jsonl(p, ({"i": i} for i in range(20_000)))
    assert n == 20_000
    assert await fastio.write_jsonl(p, [{"i": "more"}], append=True) == 1
    got = await fastio.read_jsonl(p)
    assert len(got) == 20_001 and got[-1] == {"i": "more"}
    # A failure half-way through an atomic write leaves the old file as it was.
    before = p.read_bytes()

    def records() -> Any:
        yield from ({"i": i} for i in range(30_000))
        yield {"bad": object()}

    with pytest.raises(TypeError):
        await fastio.write_jsonl(p, records(), atomic=True)
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["gen.jsonl"]


async def test_reading_leaves_the_garbage_collector_as_it_was(tmp_path: Path) -> None:
    import gc

    p = tmp_path / "gc.jsonl"
    await fastio.write_jsonl(p, [{"a": [i]} for i in range(20_000)])
    assert gc.isenabled()
    assert len(await fastio.read_jsonl(p)) == 20_000
    assert gc.isenabled()
    gc.disable()
    try:
        assert len([r async for r in fastio.iter_jsonl(p)]) == 20_000
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_reading_can_be_cancelled(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    await fastio.write_jsonl(p, ({"i": i, "pad": "x" * 100} for i in range(100_000)))
    it = fastio.iter_jsonl(p, batch_size=10)
    assert await it.__anext__() == {"i": 0, "pad": "x" * 100}
    del it  # the read-ahead thread stops when its reader is dropped
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(fastio.read_jsonl(p), timeout=0.0001)
    assert len(await fastio.read_jsonl(p)) == 100_000


def test_reader_from_before_fork_fails_clearly_in_child(tmp_path: Path) -> None:
    from test_runtime import fork_and_wait

    from conftest import run

    p = tmp_path / "f.jsonl"
    p.write_text('{"a": 1}\n' * 10)
    it = fastio.iter_jsonl(p, batch_size=2)

    async def first() -> Any:
        return await it.__anext__()

    assert run(first()) == {"a": 1}

    def child() -> int:
        async def more() -> None:
            async for _ in it:
                pass

        try:
            run(asyncio.wait_for(more(), 10))
        except fastio.UsedAfterForkError:
            # A reader made in the child works.
            return 0 if run(fastio.read_jsonl(p)) == [{"a": 1}] * 10 else 3
        return 4

    assert fork_and_wait(child) == 0


# ------------------------------------------------------------ big files --

BIG_FILE_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import fastio, fastio.aiofiles

    def hwm_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    async def main(path):
        n = 0
        total = 0
        async for rec in fastio.iter_jsonl(path, batch_size=1000):
            n += 1
            total += rec["i"]
        lines = 0
        async with fastio.aiofiles.open(path) as f:
            async for line in f:
                lines += 1
        print(n, total, lines, hwm_mb())

    asyncio.run(main(sys.argv[1]))
    """
)


def test_200mb_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    p = tmp_path / "big.jsonl"
    # 200 MB: one 2 MB block of records written 100 times (fast to generate).
    per_block = 10_000
    block = "".join(
        json.dumps({"i": 1, "name": f"user {i}", "tags": ["a", "b"], "pad": "y" * 150}) + "\n"
        for i in range(per_block)
    ).encode()
    blocks = (200 * 1024 * 1024) // len(block) + 1
    with open(p, "wb") as f:
        for _ in range(blocks):
            f.write(block)
    size_mb = p.stat().st_size / 1024 / 1024
    assert size_mb >= 200
    out = subprocess.run(
        [sys.executable, "-c", BIG_FILE_CHILD, str(p)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    n, total, lines, peak_mb = int(out[0]), int(out[1]), int(out[2]), float(out[3])
    assert n == lines == blocks * per_block
    assert total == n
    # The file is > 200 MB; streaming keeps the process far below that.
    assert peak_mb < 100, f"peak RSS {peak_mb:.0f} MB while streaming a {size_mb:.0f} MB file"


# ------------------------------------------------------- the documents --

PIPELINE = """
import asyncio
import time
{import_line}
from typing import AsyncGenerator, List
import json


class AsyncDataPipeline:
    def __init__(self):
        self.processors = []

    def add_processor(self, processor_func):
        self.processors.append(processor_func)

    async def process_file_pipeline(self, file_path: str) -> List[dict]:
        data = []
        async with aiofiles.open(file_path, 'r') as f:
            async for line in f:
                try:
                    record = json.loads(line.strip())
                    data.append(record)
                except json.JSONDecodeError:
                    continue

        async def process_record(record):
            result = record
            for processor in self.processors:
                result = await processor(result)
            return result

        tasks = [process_record(record) for record in data]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return [r for r in results if not isinstance(r, Exception)]


async def data_pipeline_example(path):
    pipeline = AsyncDataPipeline()

    async def validate_data(record):
        if 'id' in record and 'name' in record:
            return record
        return None

    async def enrich_data(record):
        if record:
            record['processed_at'] = 0
            record['source'] = 'async_pipeline'
        return record

    pipeline.add_processor(validate_data)
    pipeline.add_processor(enrich_data)
    return await pipeline.process_file_pipeline(path)
"""


async def test_documents_pipeline_runs_with_only_the_import_changed(tmp_path: Path) -> None:
    p = tmp_path / "data.json"
    lines = [json.dumps({"id": i, "name": f"n{i}", "v": i * 0.5}) for i in range(50)]
    lines[7] = "{broken"
    lines[20] = json.dumps({"name": "no id"})
    p.write_text("\n".join(lines) + "\n\n")
    results = {}
    for lib, import_line in (
        ("aiofiles", "import aiofiles"),
        ("fastio", "import fastio.aiofiles as aiofiles"),
    ):
        ns: dict[str, Any] = {}
        exec(PIPELINE.format(import_line=import_line), ns)  # noqa: S102
        results[lib] = await ns["data_pipeline_example"](str(p))
    assert results["fastio"] == results["aiofiles"]
    assert len(results["fastio"]) == 49  # the broken line skipped, the id-less record is None
    assert results["fastio"][0] == {
        "id": 0,
        "name": "n0",
        "v": 0.0,
        "processed_at": 0,
        "source": "async_pipeline",
    }
