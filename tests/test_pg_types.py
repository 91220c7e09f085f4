"""Property-based round trips of values through PostgreSQL (hypothesis):
what goes in as a parameter of a type comes back equal."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastio
from fastio import pg_exceptions as exc

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Session:
    """One event loop and one connection for many hypothesis examples."""

    def __init__(self, dsn: str) -> None:
        if os.environ.get("FASTIO_TEST_LOOP", "asyncio") == "uvloop":
            import uvloop

            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.conn = self.run(fastio.connect(dsn))

    def run(self, aw: Any) -> Any:
        async def wrap() -> Any:
            return await aw

        return self.loop.run_until_complete(wrap())

    def roundtrip(self, sql_type: str, value: Any) -> Any:
        return self.run(self.conn.fetchval(f"SELECT $1::{sql_type}", value))

    def close(self) -> None:
        self.run(self.conn.close())
        self.loop.close()


@pytest.fixture(scope="module")
def db(pg_server: Any) -> Iterator[Session]:
    s = Session(pg_server.dsn)
    yield s
    s.close()


@SETTINGS
@given(st.integers(-(2**63), 2**63 - 1))
def test_int8(db: Session, v: int) -> None:
    assert db.roundtrip("int8", v) == v
    if -(2**15) <= v < 2**15:
        assert db.roundtrip("int2", v) == v
    else:
        with pytest.raises(exc.DataError, match="out of int16 range"):
            db.roundtrip("int2", v)


@SETTINGS
@given(st.floats(allow_nan=False))
def test_float8(db: Session, v: float) -> None:
    assert db.roundtrip("float8", v) == v


@SETTINGS
@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**40), max_value=10**40))
def test_numeric(db: Session, v: decimal.Decimal) -> None:
    got = db.roundtrip("numeric", v)
    assert got == v
    # The scale survives too (numeric keeps trailing zeros), except for -0.
    if v != 0:
        assert (
            got.as_tuple().exponent == min(v.as_tuple().exponent, 0)
            or got.as_tuple() == v.as_tuple()
        )


@SETTINGS
@given(st.integers(-(10**40), 10**40))
def test_int_into_numeric(db: Session, v: int) -> None:
    assert db.roundtrip("numeric", v) == decimal.Decimal(v)


@SETTINGS
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")))
def test_text(db: Session, v: str) -> None:
    assert db.roundtrip("text", v) == v


def test_text_with_nul_is_rejected(db: Session) -> None:
    with pytest.raises(exc.PostgresError):
        db.roundtrip("text", "a\x00b")
    assert db.roundtrip("text", "still fine") == "still fine"


@SETTINGS
@given(st.binary())
def test_bytea(db: Session, v: bytes) -> None:
    assert db.roundtrip("bytea", v) == v


@SETTINGS
@given(st.dates())
def test_date(db: Session, v: datetime.date) -> None:
    assert db.roundtrip("date", v) == v


@SETTINGS
@given(st.datetimes(min_value=datetime.datetime(1, 1, 2)))
def test_timestamp(db: Session, v: datetime.datetime) -> None:
    assert db.roundtrip("timestamp", v) == v


@SETTINGS
@given(st.datetimes(min_value=datetime.datetime(1, 1, 2), timezones=st.timezones()))
def test_timestamptz(db: Session, v: datetime.datetime) -> None:
    got = db.roundtrip("timestamptz", v)
    # astimezone: the instant utcoffset() gives, also for times in a DST gap or
    # fold (which Python never calls equal across zones).
    assert got == v.astimezone(datetime.timezone.utc) and got.tzinfo is datetime.timezone.utc


@SETTINGS
@given(st.times())
def test_time(db: Session, v: datetime.time) -> None:
    assert db.roundtrip("time", v) == v


@SETTINGS
@given(
    st.timedeltas(
        min_value=datetime.timedelta(days=-(10**6)), max_value=datetime.timedelta(days=10**6)
    )
)
def test_interval(db: Session, v: datetime.timedelta) -> None:
    assert db.roundtrip("interval", v) == v


@SETTINGS
@given(st.uuids())
def test_uuid(db: Session, v: Any) -> None:
    assert db.roundtrip("uuid", v) == v
    assert db.roundtrip("uuid", str(v)) == v


@SETTINGS
@given(st.lists(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1))))
def test_int4_array(db: Session, v: list[int | None]) -> None:
    assert db.roundtrip("int4[]", v) == v


@SETTINGS
@given(
    st.integers(1, 4).flatmap(
        lambda n: st.lists(
            st.lists(st.text(max_size=5).filter(lambda s: "\x00" not in s), min_size=n, max_size=n),
            min_size=1,
            max_size=4,
        )
    )
)
def test_two_dimensional_text_array(db: Session, v: list[list[str]]) -> None:
    assert db.roundtrip("text[]", v) == v


@SETTINGS
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=10,
    )
)
def test_jsonb(db: Session, v: Any) -> None:
    if isinstance(v, str) and "\x00" in v:
        return
    if isinstance(v, (dict, list)):
        text = __import__("json").dumps(v)
        if "\\u0000" in text:
            return  # jsonb rejects NUL
        assert db.roundtrip("jsonb", v) == v
