"""Test configuration: runs `async def` tests on the loop named by FASTIO_TEST_LOOP.

`make test` runs the suite twice: FASTIO_TEST_LOOP=asyncio (the default loop)
and FASTIO_TEST_LOOP=uvloop. Every coroutine test gets a fresh event loop.
The real servers (PostgreSQL, MariaDB, HTTP) come from `harness.py`.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from typing import Any

import pytest

from harness import *  # noqa: F401,F403  (session fixtures: pg_server, mysql_server, http_server)

LOOP = os.environ.get("FASTIO_TEST_LOOP", "asyncio")


def run(coro: Any) -> Any:
    """Run a coroutine to completion on a fresh loop of the configured kind."""
    if LOOP == "uvloop":
        import uvloop

        return uvloop.run(coro)
    if LOOP != "asyncio":
        raise RuntimeError(f"FASTIO_TEST_LOOP must be 'asyncio' or 'uvloop', not {LOOP!r}")
    return asyncio.run(coro)


def pytest_report_header(config: pytest.Config) -> str:
    return f"fastio event loop: {LOOP}"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}

    async def checked() -> None:
        if LOOP == "uvloop":
            import uvloop

            assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        await pyfuncitem.obj(**kwargs)

    run(checked())
    return True
