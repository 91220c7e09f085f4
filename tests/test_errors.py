"""The exception tree (src/errors.rs): Rust errors arrive as the right Python types."""

from __future__ import annotations

import builtins

import pytest

import fastio
from fastio import _fastio


def test_tree_under_fastio_error() -> None:
    for cls in (
        fastio.InterfaceError,
        fastio.UsedAfterForkError,
        fastio.PanicError,
        fastio.TimeoutError,
        fastio.ConnectionError,
        fastio.InvalidArgumentError,
    ):
        assert issubclass(cls, fastio.FastIOError), cls
        assert cls.__module__ == "fastio"
        assert cls.__doc__
    assert issubclass(fastio.FastIOError, Exception)
    assert issubclass(fastio.UsedAfterForkError, fastio.InterfaceError)


def test_builtin_bases_keep_existing_except_clauses_working() -> None:
    assert issubclass(fastio.TimeoutError, builtins.TimeoutError)
    assert issubclass(fastio.ConnectionError, builtins.ConnectionError)
    assert issubclass(fastio.InvalidArgumentError, ValueError)
    with pytest.raises(builtins.TimeoutError):
        raise fastio.TimeoutError("deadline")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("timeout", fastio.TimeoutError),
        ("interface", fastio.InterfaceError),
        ("invalid", fastio.InvalidArgumentError),
        ("not_found", FileNotFoundError),
        ("permission", PermissionError),
        ("json", ValueError),
        ("key", KeyError),
    ],
)
async def test_rust_errors_arrive_with_their_python_type(
    kind: str, expected: type[BaseException]
) -> None:
    with pytest.raises(expected) as info:
        await _fastio._fail(kind, "the message", delay=0.001)
    assert type(info.value) is expected
    if kind != "json":
        assert "the message" in str(info.value)


async def test_panic_in_a_tokio_task_becomes_a_python_exception() -> None:
    with pytest.raises(fastio.PanicError, match="Rust panic: kaboom"):
        await _fastio._panic("kaboom")
    # The runtime survives the panic.
    assert await fastio.sleep(0, "alive") == "alive"
    assert await _fastio._panic("") is None


def test_panic_on_the_calling_thread_becomes_a_python_exception() -> None:
    # pyo3 turns a panic in a synchronous call into PanicException (a
    # BaseException, so that `except Exception` does not swallow bugs).
    with pytest.raises(BaseException, match="sync kaboom") as info:
        _fastio._panic("sync kaboom", in_task=False)
    assert type(info.value).__name__ == "PanicException"
