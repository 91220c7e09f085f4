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
import fastio.pg
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


# ------------------------------------------- money, ranges, composites, domains


def _range_key(r: Any) -> tuple[Any, ...]:
    """A Range (ours or asyncpg's) as comparable values."""
    return (r.lower, r.upper, r.lower_inc, r.upper_inc, r.isempty)


async def _both(dsn: str, query: str, *args: Any) -> tuple[Any, Any]:
    """`fetchval(query, *args)` through fastio.pg and through asyncpg."""
    import asyncpg

    import fastio.pg

    ours = await fastio.pg.connect(dsn)
    theirs = await asyncpg.connect(dsn)
    try:
        return await ours.fetchval(query, *args), await theirs.fetchval(query, *args)
    finally:
        await ours.close()
        await theirs.close()


async def test_money_is_text_like_asyncpg(pg_server: Any) -> None:
    for literal in ("1234.56", "-0.05", "0", "92233720368547758.07", "-92233720368547758.08"):
        ours, theirs = await _both(pg_server.dsn, f"SELECT '{literal}'::money")
        assert isinstance(ours, str) and ours == theirs
    ours, theirs = await _both(pg_server.dsn, "SELECT ARRAY['1'::money, NULL, '-2.5'::money]")
    assert ours == theirs == ["$1.00", None, "-$2.50"]
    conn = await fastio.connect(pg_server.dsn)
    try:
        for value, text in (
            ("$1,234.56", "$1,234.56"),
            ("-12.5", "-$12.50"),
            (decimal.Decimal("0.07"), "$0.07"),
            (3, "$3.00"),
        ):
            assert await conn.fetchval("SELECT $1::money", value) == text
            assert await conn.fetchval("SELECT $1::money::text", value) == text
        with pytest.raises(exc.DataError):
            await conn.fetchval("SELECT $1::money", "twelve")
    finally:
        await conn.close()


RANGE_LITERALS = {
    "int4range": ["[1,10)", "(1,10]", "(,5)", "[3,)", "empty", "(,)"],
    "int8range": ["[-9223372036854775807,0)", "empty"],
    "numrange": ["[1.5,2.25]", "(,0)", "(-1.0,)"],
    "daterange": ["[2020-01-01,2020-02-01)", "(,2000-01-01]"],
    "tsrange": ["[2020-01-01 10:00,2020-01-01 11:30:00.5)", "(,)"],
    "tstzrange": ["[2020-01-01 10:00+00,2020-01-02 00:00+02)", "empty"],
}


async def test_ranges_decode_like_asyncpg(pg_server: Any) -> None:
    for sql_type, literals in RANGE_LITERALS.items():
        for literal in literals:
            ours, theirs = await _both(pg_server.dsn, f"SELECT '{literal}'::{sql_type}")
            assert isinstance(ours, fastio.Range)
            assert _range_key(ours) == _range_key(theirs), (sql_type, literal)
            assert repr(ours) == repr(theirs)
    ours, theirs = await _both(pg_server.dsn, "SELECT ARRAY['[1,2)'::int4range, NULL, 'empty']")
    assert [None if r is None else _range_key(r) for r in ours] == [
        None if r is None else _range_key(r) for r in theirs
    ]


async def test_ranges_round_trip(pg_server: Any) -> None:
    Range = fastio.Range
    d = datetime.date
    ts = datetime.datetime
    utc = datetime.timezone.utc
    cases = [
        ("int4range", Range(1, 10), Range(1, 10)),
        ("int4range", Range(1, 10, lower_inc=False, upper_inc=True), Range(2, 11)),
        ("int4range", Range(None, 5), Range(None, 5)),
        ("int4range", Range(empty=True), Range(empty=True)),
        ("int4range", Range(), Range()),
        ("int4range", (3, 7), Range(3, 7)),
        ("int4range", [None, 7], Range(None, 7)),
        ("int8range", Range(-(2**62), 2**62), Range(-(2**62), 2**62)),
        (
            "numrange",
            Range(decimal.Decimal("1.5"), decimal.Decimal("2.25"), upper_inc=True),
            Range(decimal.Decimal("1.5"), decimal.Decimal("2.25"), upper_inc=True),
        ),
        ("numrange", Range(1, None), Range(decimal.Decimal(1), None)),
        ("daterange", Range(d(2020, 1, 1), d(2020, 2, 1)), Range(d(2020, 1, 1), d(2020, 2, 1))),
        (
            "daterange",
            Range(d(2020, 1, 1), d(2020, 1, 31), upper_inc=True),
            Range(d(2020, 1, 1), d(2020, 2, 1)),
        ),
        (
            "tsrange",
            Range(ts(2020, 1, 1, 10), ts(2020, 1, 1, 11, 30, 0, 500000)),
            Range(ts(2020, 1, 1, 10), ts(2020, 1, 1, 11, 30, 0, 500000)),
        ),
        (
            "tstzrange",
            Range(ts(2020, 1, 1, 10, tzinfo=utc), None, lower_inc=False),
            Range(ts(2020, 1, 1, 10, tzinfo=utc), None, lower_inc=False),
        ),
    ]
    conn = await fastio.connect(pg_server.dsn)
    try:
        for sql_type, value, expected in cases:
            got = await conn.fetchval(f"SELECT $1::{sql_type}", value)
            assert got == expected, (sql_type, value, got)
            # And the server agrees about what was sent.
            assert await conn.fetchval(f"SELECT $1::{sql_type} = $2::{sql_type}", value, expected)
        assert await conn.fetchval("SELECT $1::int4range @> 5", Range(1, 10)) is True
        assert await conn.fetchval("SELECT $1::int4range[]", [Range(1, 2), None]) == [
            Range(1, 2),
            None,
        ]
        with pytest.raises(exc.DataError):
            await conn.fetchval("SELECT $1::int4range", Range("a", "b"))
        with pytest.raises(exc.DataError):
            await conn.fetchval("SELECT $1::int4range", 5)
    finally:
        await conn.close()


def test_range_behaves_like_asyncpgs() -> None:
    import asyncpg

    Range = fastio.Range
    assert Range(1, 5) == Range(1, 5) and hash(Range(1, 5)) == hash(Range(1, 5))
    assert Range(1, 5) != Range(1, 5, upper_inc=True)
    assert not Range(empty=True) and Range(None, None)
    for ours, theirs in (
        (Range(1, 5), asyncpg.Range(1, 5)),
        (Range(None, 5, lower_inc=True), asyncpg.Range(None, 5, lower_inc=True)),
        (Range(empty=True), asyncpg.Range(empty=True)),
        (Range(1, None, upper_inc=True), asyncpg.Range(1, None, upper_inc=True)),
    ):
        assert repr(ours) == repr(theirs)
        assert (ours.lower_inf, ours.upper_inf) == (theirs.lower_inf, theirs.upper_inf)
        assert _range_key(ours) == _range_key(theirs)
    assert Range(2, 3).issubset(Range(1, 5)) and Range(1, 5).issuperset(Range(2, 3))
    assert not Range(0, 3).issubset(Range(1, 5))
    assert fastio.pg.Range is Range


async def test_composite_types_decode_to_records(pg_server: Any) -> None:
    import uuid

    suffix = uuid.uuid4().hex[:8]
    inner, outer = f"pt_{suffix}", f"seg_{suffix}"
    conn = await fastio.connect(pg_server.dsn)
    try:
        await conn.execute(f"CREATE TYPE {inner} AS (x int, label text)")
        await conn.execute(f"CREATE TYPE {outer} AS (a {inner}, b {inner}, tags text[])")
        p = await conn.fetchval(f"SELECT ROW(1, 'one')::{inner}")
        assert isinstance(p, fastio.Record)
        assert p["x"] == 1 and p["label"] == "one" and tuple(p) == (1, "one")
        s = await conn.fetchval(f"SELECT ROW(ROW(1, 'a')::{inner}, NULL, ARRAY['t'])::{outer}")
        assert list(s.keys()) == ["a", "b", "tags"]
        assert dict(s["a"]) == {"x": 1, "label": "a"} and s["b"] is None and s["tags"] == ["t"]
        arr = await conn.fetchval(f"SELECT ARRAY[ROW(2, 'b')::{inner}, NULL]")
        assert dict(arr[0]) == {"x": 2, "label": "b"} and arr[1] is None
        row = await conn.fetchrow(f"SELECT ROW(3, NULL)::{inner} AS p, 4 AS n")
        assert row["p"]["label"] is None and row["n"] == 4
    finally:
        await conn.execute(f"DROP TYPE IF EXISTS {outer}; DROP TYPE IF EXISTS {inner}")
        await conn.close()
    # Anonymous records are tuples, as in asyncpg.
    ours, theirs = await _both(pg_server.dsn, "SELECT ROW(1, 'a', NULL::int)")
    assert ours == theirs == (1, "a", None)


async def test_domains_are_their_base_type_and_enums_are_str(pg_server: Any) -> None:
    import uuid

    suffix = uuid.uuid4().hex[:8]
    posint, email, price, mood = (f"{n}_{suffix}" for n in ("posint", "email", "price", "mood"))
    t = f"dom_{suffix}"
    conn = await fastio.connect(pg_server.dsn)
    try:
        await conn.execute(f"CREATE DOMAIN {posint} AS int CHECK (VALUE > 0)")
        await conn.execute(f"CREATE DOMAIN {email} AS text CHECK (VALUE LIKE '%@%')")
        await conn.execute(f"CREATE DOMAIN {price} AS numeric(10, 2)")
        await conn.execute(f"CREATE TYPE {mood} AS ENUM ('sad', 'ok', 'happy')")
        await conn.execute(
            f"CREATE TABLE {t} (n {posint}, e {email}, p {price}, m {mood}, "
            f"ns {posint}[], ms {mood}[])"
        )
        status = await conn.execute(
            f"INSERT INTO {t} VALUES ($1, $2, $3, $4, $5, $6)",
            5,
            "a@b.c",
            decimal.Decimal("9.99"),
            "happy",
            [1, 2],
            ["sad", "ok"],
        )
        assert status == "INSERT 0 1"
        row = await conn.fetchrow(f"SELECT * FROM {t}")
        assert tuple(row) == (5, "a@b.c", decimal.Decimal("9.99"), "happy", [1, 2], ["sad", "ok"])
        assert await conn.fetchval(f"SELECT 7::{posint}") == 7
        assert await conn.fetchval(f"SELECT n FROM {t} WHERE m = $1", "happy") == 5
        with pytest.raises(exc.CheckViolationError):
            await conn.execute(f"INSERT INTO {t} (n) VALUES ($1)", -1)
        with pytest.raises(exc.InvalidTextRepresentationError):
            await conn.execute(f"INSERT INTO {t} (m) VALUES ($1)", "furious")
    finally:
        await conn.execute(
            f"DROP TABLE IF EXISTS {t}; DROP DOMAIN IF EXISTS {posint}, {email}, {price}; "
            f"DROP TYPE IF EXISTS {mood}"
        )
        await conn.close()


# ------------------------------------- executemany and COPY: the batch encoder

_no_nul_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=8
)
_json_text = st.sampled_from(['{"a": 1}', "[1, 2.5]", '"s"', "null"])


class _Int(int):
    """An int subclass: not the batch encoder's exact type."""


class _Str(str):
    pass


# (column, type, values it takes: of the exact types the batch encoder reads
# directly and of other types the single-query path accepts, values it
# rejects). Every column also takes None.
_COLUMNS: list[tuple[str, str, Any, Any]] = [
    (
        "i2",
        "int2",
        st.integers(-(2**15), 2**15 - 1) | st.integers(0, 9).map(_Int),
        st.integers(2**15, 2**70) | st.booleans() | _no_nul_text | st.floats(),
    ),
    ("i4", "int4", st.integers(-(2**31), 2**31 - 1), st.integers(2**31, 2**33)),
    (
        "i8",
        "int8",
        st.integers(-(2**63), 2**63 - 1),
        st.integers(2**63, 2**65) | st.decimals(allow_nan=False, places=0),
    ),
    (
        "f4",
        "float4",
        st.floats(width=32, allow_nan=False) | st.integers(-(2**40), 2**40),
        st.integers(2**64, 2**70) | _no_nul_text,
    ),
    (
        "f8",
        "float8",
        st.floats(allow_nan=False) | st.integers(-(2**62), 2**62),
        st.booleans() | st.decimals(allow_nan=False),
    ),
    (
        "n",
        "numeric",
        st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**20), max_value=10**20)
        | st.integers(-(10**30), 10**30)
        | st.floats(allow_nan=False, allow_infinity=False, width=32),
        _no_nul_text | st.booleans(),
    ),
    ("t", "text", _no_nul_text | _no_nul_text.map(_Str), st.integers(0, 5) | st.binary()),
    ("vc", "varchar", _no_nul_text, st.floats()),
    ("b", "bool", st.booleans(), st.integers(0, 1)),
    (
        "by",
        "bytea",
        st.binary(max_size=8) | st.binary(max_size=8).map(bytearray),
        _no_nul_text,
    ),
    (
        "d",
        "date",
        st.dates() | st.datetimes(min_value=datetime.datetime(1, 1, 2)) | st.just("2024-02-29"),
        st.sampled_from(["2023-02-29", "x"]) | st.integers(),
    ),
    (
        "ts",
        "timestamp",
        st.datetimes(min_value=datetime.datetime(1, 1, 2))
        | st.dates(min_value=datetime.date(1, 1, 2)),
        st.integers() | st.times(),
    ),
    (
        "tz",
        "timestamptz",
        st.datetimes(min_value=datetime.datetime(1, 1, 2), timezones=st.timezones())
        | st.datetimes(min_value=datetime.datetime(1, 1, 2)),
        _no_nul_text,
    ),
    ("tm", "time", st.times(), st.timedeltas()),
    (
        "iv",
        "interval",
        st.timedeltas(
            min_value=datetime.timedelta(days=-(10**6)),
            max_value=datetime.timedelta(days=10**6),
        ),
        st.times() | st.integers(),
    ),
    ("u", "uuid", st.uuids() | st.uuids().map(str), st.sampled_from(["not-a-uuid", 7])),
    (
        "j",
        "json",
        _json_text | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        st.binary(min_size=1),
    ),
    ("jb", "jsonb", _json_text | st.lists(st.integers(), max_size=3), st.dates()),
    (
        "ia",
        "int4[]",
        st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=4)
        | st.lists(st.integers(0, 9), max_size=3).map(tuple)
        | st.lists(st.lists(st.integers(0, 9), min_size=2, max_size=2), max_size=3),
        st.lists(st.integers(2**31, 2**32), min_size=1, max_size=2)
        | st.lists(st.text(max_size=1), min_size=1, max_size=2)
        | st.just([[1, 2], [3]])
        | st.just([[1], 2])
        | st.integers(),
    ),
    (
        "ta",
        "text[]",
        st.lists(st.none() | _no_nul_text, max_size=3),
        st.lists(st.integers(), min_size=1, max_size=2),
    ),
    (
        "fa",
        "float8[]",
        st.lists(st.floats(allow_nan=False) | st.integers(0, 9), max_size=3),
        st.lists(_no_nul_text, min_size=1, max_size=2),
    ),
]


@st.composite
def _row(draw: Any, bad: bool) -> tuple[Any, ...]:
    """A row of valid values or None; with `bad`, one column's value is one
    its type rejects."""
    row = [draw(st.none() | ok) for _, _, ok, _ in _COLUMNS]
    if bad:
        i = draw(st.integers(0, len(_COLUMNS) - 1))
        row[i] = draw(_COLUMNS[i][3])
    return tuple(row)


def _outcome(aw: Any) -> Any:
    """`await aw`, or the error it raised (class and message)."""

    async def run() -> Any:
        try:
            await aw
        except Exception as e:
            return (type(e), str(e))
        return None

    return run()


@pytest.fixture(scope="module")
def batch_tables(db: Session) -> Iterator[list[str]]:
    names = [f"batch_{kind}_{os.getpid()}" for kind in ("one", "many", "copy")]
    cols = ", ".join(f"{c} {t}" for c, t, _, _ in _COLUMNS)
    for name in names:
        db.run(db.conn.execute(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (k int, {cols})"))
    yield names
    db.run(db.conn.execute("; ".join(f"DROP TABLE {n}" for n in names)))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(_row(bad=False), max_size=3)
    | st.tuples(
        st.lists(_row(bad=False), max_size=2), _row(bad=True), st.lists(_row(bad=False), max_size=2)
    ).map(lambda t: [*t[0], t[1], *t[2]])
)
def test_executemany_and_copy_send_what_a_single_query_sends(
    db: Session, batch_tables: list[str], rows: list[tuple[Any, ...]]
) -> None:
    """The batch paths encode straight from the Python values; whatever the
    values, the rows stored (or the error raised) are those of `execute`."""
    one, many, copy = batch_tables
    conn = db.conn
    db.run(conn.execute(f"TRUNCATE {one}, {many}, {copy}"))
    cols = ["k"] + [c for c, _, _, _ in _COLUMNS]
    marks = ", ".join(f"${i + 1}" for i in range(len(cols)))
    keyed = [(k, *row) for k, row in enumerate(rows)]
    single_error, record = None, 0
    for row in keyed:
        single_error = db.run(_outcome(conn.execute(f"INSERT INTO {one} VALUES ({marks})", *row)))
        if single_error is not None:
            record = row[0]
            break
    many_error = db.run(_outcome(conn.executemany(f"INSERT INTO {many} VALUES ({marks})", keyed)))
    copy_error = db.run(_outcome(conn.copy_records_to_table(copy, records=keyed)))
    assert many_error == single_error
    if single_error is None:
        assert copy_error is None
        stored = [
            [tuple(r) for r in db.run(conn.fetch(f"SELECT * FROM {t} ORDER BY k"))]
            for t in batch_tables
        ]
        assert stored[0] == stored[1] == stored[2]
        assert len(stored[0]) == len(rows)
        return
    assert single_error[0] is exc.DataError
    # The same reason, worded for COPY: the column and the record.
    head, tail = single_error[1].split(": ", 1)
    arg = int(head.rsplit("$", 1)[1])
    assert copy_error == (
        exc.DataError,
        f'invalid input for column "{cols[arg - 1]}" of record {record}: {tail}',
    )
    counts = [db.run(conn.fetchval(f"SELECT count(*) FROM {t}")) for t in (many, copy)]
    assert counts == [0, 0]
