"""Rust log records reach Python logging under fastio.* (src/logging.rs)."""

from __future__ import annotations

import logging

import pytest

import fastio
from fastio import _fastio


@pytest.fixture
def fastio_debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="fastio")
    fastio.refresh_logging()
    yield caplog
    fastio.refresh_logging()


def records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


def test_record_from_the_calling_thread(fastio_debug: pytest.LogCaptureFixture) -> None:
    _fastio._log("info", "hello from rust")
    (rec,) = records(fastio_debug, "hello from rust")
    assert rec.name == "fastio.testing"
    assert rec.levelno == logging.INFO


async def test_record_from_a_tokio_thread(fastio_debug: pytest.LogCaptureFixture) -> None:
    await _fastio._log("warn", "hello from tokio", on_tokio=True)
    (rec,) = records(fastio_debug, "hello from tokio")
    assert rec.name == "fastio.testing"
    assert rec.levelno == logging.WARNING
    assert rec.threadName != "MainThread" or rec.thread is not None


def test_dependency_targets_are_renamed_under_fastio(
    fastio_debug: pytest.LogCaptureFixture,
) -> None:
    _fastio._log("debug", "a query ran", target="sqlx::query")
    (rec,) = records(fastio_debug, "a query ran")
    assert rec.name == "fastio.sqlx.query"


def test_levels_below_the_logger_level_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fastio")
    fastio.refresh_logging()
    _fastio._log("debug", "too quiet")
    _fastio._log("error", "loud enough")
    assert records(caplog, "too quiet") == []
    assert len(records(caplog, "loud enough")) == 1
    fastio.refresh_logging()


def test_levels_are_per_logger_and_reread_on_refresh(caplog: pytest.LogCaptureFixture) -> None:
    # fastio caches each target's level (hyper checks several records per
    # request); a child logger's own level counts, and refresh re-reads it.
    caplog.set_level(logging.WARNING, logger="fastio")
    caplog.set_level(logging.DEBUG, logger="fastio.sqlx")
    fastio.refresh_logging()
    _fastio._log("debug", "sqlx chatter", target="sqlx::query")
    _fastio._log("debug", "hyper chatter", target="hyper::proto")
    assert len(records(caplog, "sqlx chatter")) == 1
    assert records(caplog, "hyper chatter") == []
    caplog.set_level(logging.WARNING, logger="fastio.sqlx")
    caplog.set_level(logging.DEBUG, logger="fastio.hyper")
    fastio.refresh_logging()
    _fastio._log("debug", "sqlx again", target="sqlx::query")
    _fastio._log("debug", "hyper again", target="hyper::proto")
    assert records(caplog, "sqlx again") == []
    assert len(records(caplog, "hyper again")) == 1
    fastio.refresh_logging()
