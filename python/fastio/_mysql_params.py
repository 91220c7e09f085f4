"""PyMySQL's ``%s`` / ``%(name)s`` parameter style on bound ``?`` parameters.

PyMySQL formats a query client-side: ``query % escaped_args``. fastio keeps
the same surface but never splices a value into the SQL text: every ``%s``
becomes a ``?`` and its value is bound. ``%%`` stands for ``%`` when arguments
are given; without arguments (``args=None``) the query is sent as written,
as PyMySQL does. A list/tuple/set value expands to ``(?, ?, ?)`` for IN lists.

``mogrify`` and the ``escape_*`` helpers render values as PyMySQL would,
for display and logging only.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

_TOKEN = re.compile(r"%(?:\(([^)]*)\))?(.)?", re.DOTALL)
_SEQUENCES = (list, tuple, set, frozenset)


class _Template(NamedTuple):
    """A parsed query: literal text around the placeholders."""

    parts: tuple[str, ...]  # len(slots) + 1 pieces of SQL text, '%%' already undone
    slots: tuple[str | None, ...]  # None for %s, the name for %(name)s
    named: bool
    joined: str  # the SQL with '?' for every slot


_cache: dict[str, _Template] = {}
_CACHE_MAX = 1024


def _parse(query: str) -> _Template:
    template = _cache.get(query)
    if template is not None:
        return template
    parts: list[str] = []
    slots: list[str | None] = []
    pos = 0
    buf: list[str] = []
    for m in _TOKEN.finditer(query):
        buf.append(query[pos : m.start()])
        pos = m.end()
        name, conv = m.group(1), m.group(2)
        if conv == "%" and name is None:
            buf.append("%")
            continue
        if conv != "s":
            spec = m.group(0)
            raise TypeError(
                f"unsupported format {spec!r} in query: use %s or %(name)s (and %% for %)"
            )
        parts.append("".join(buf))
        buf = []
        slots.append(name)
    buf.append(query[pos:])
    parts.append("".join(buf))
    kinds = {s is None for s in slots}
    if len(kinds) > 1:
        raise TypeError("format requires a mapping: %s and %(name)s are mixed in one query")
    named = kinds == {False}
    template = _Template(tuple(parts), tuple(slots), named, "?".join(parts))
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[query] = template
    return template


def _values(template: _Template, args: Any) -> Sequence[Any]:
    """The values for the template's slots, in order, with PyMySQL's errors."""
    if template.named:
        if not isinstance(args, Mapping):
            raise TypeError("format requires a mapping")
        return [args[name] for name in template.slots]
    values: Sequence[Any]
    if isinstance(args, (tuple, list)):
        values = args
    elif isinstance(args, Mapping):
        if template.slots:
            raise TypeError("a mapping was given for %s placeholders: use a tuple or list")
        return ()
    else:
        values = (args,)
    n = len(template.slots)
    if len(values) < n:
        raise TypeError("not enough arguments for format string")
    if len(values) > n:
        raise TypeError("not all arguments converted during string formatting")
    return values


def convert(query: str, args: Any) -> tuple[str, tuple[Any, ...]]:
    """(SQL with ``?`` placeholders, the values to bind) for ``execute(query, args)``."""
    if args is None:
        return query, ()
    template = _parse(query)
    values = _values(template, args)
    for v in values:
        if isinstance(v, _SEQUENCES):
            break
    else:
        return template.joined, tuple(values)
    # An IN list somewhere: expand each sequence value to (?, ?, ...).
    out = [template.parts[0]]
    params: list[Any] = []
    for v, part in zip(values, template.parts[1:]):
        if isinstance(v, _SEQUENCES):
            items = list(v)
            # An empty IN list would be a syntax error; (NULL) matches nothing.
            out.append("(" + ", ".join("?" * len(items)) + ")" if items else "(NULL)")
            params.extend(items)
        else:
            out.append("?")
            params.append(v)
        out.append(part)
    return "".join(out), tuple(params)


# aiomysql's (PyMySQL's) executemany pattern: a simple INSERT/REPLACE ... VALUES (...)
# is sent as one multi-row statement.
RE_INSERT_VALUES = re.compile(
    r"\s*((?:INSERT|REPLACE)\s.+\sVALUES?\s+)"
    + r"(\(\s*(?:%s|%\(.+\)s)\s*(?:,\s*(?:%s|%\(.+\)s)\s*)*\))"
    + r"(\s*(?:ON DUPLICATE.*)?);?\s*\Z",
    re.IGNORECASE | re.DOTALL,
)

# MySQL's prepared statements take at most 65,535 parameters.
MAX_PARAMS = 65_535
# PyMySQL's cap on a generated statement (max_allowed_packet's default, less headers).
MAX_STMT_LENGTH = 1_024_000


def insert_batches(match: re.Match[str], rows: Sequence[Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """Multi-row INSERT statements (SQL, params) for ``executemany`` rows."""
    prefix = match.group(1) % ()  # as PyMySQL: '%%' in the prefix becomes '%'
    values = match.group(2).rstrip()
    postfix = match.group(3) or ""  # PyMySQL sends the ON DUPLICATE part untouched
    batches: list[tuple[str, tuple[Any, ...]]] = []
    chunk: list[str] = []
    params: list[Any] = []
    size = len(prefix) + len(postfix)
    for row in rows:
        sql, p = convert(values, row)
        if chunk and (len(params) + len(p) > MAX_PARAMS or size + len(sql) + 1 > MAX_STMT_LENGTH):
            batches.append((prefix + ",".join(chunk) + postfix, tuple(params)))
            chunk, params = [], []
            size = len(prefix) + len(postfix)
        chunk.append(sql)
        params.extend(p)
        size += len(sql) + 1
    if chunk:
        batches.append((prefix + ",".join(chunk) + postfix, tuple(params)))
    return batches


# ------------------------------------------------------------ display escaping

_escape_table = [chr(x) for x in range(128)]
_escape_table[0] = "\\0"
_escape_table[ord("\\")] = "\\\\"
_escape_table[ord("\n")] = "\\n"
_escape_table[ord("\r")] = "\\r"
_escape_table[ord("\032")] = "\\Z"
_escape_table[ord('"')] = '\\"'
_escape_table[ord("'")] = "\\'"


def escape_string(value: str, mapping: Any = None) -> str:
    """Escapes a str for a MySQL string literal, without the quotes (PyMySQL's)."""
    return value.translate(_escape_table)


def _escape_float(value: float) -> str:
    s = repr(value)
    if s in ("inf", "-inf", "nan"):
        from fastio.dbapi import ProgrammingError

        raise ProgrammingError(f"{s} can not be used with MySQL")
    return s if "e" in s else s + "e0"


def _escape_timedelta(obj: datetime.timedelta) -> str:
    sign = ""
    if obj.days < 0:
        sign = "-"
        obj = abs(obj)
    minutes, seconds = divmod(obj.seconds, 60)
    hours, minutes = divmod(minutes, 60)
    hours += obj.days * 24
    if obj.microseconds:
        return f"'{sign}{hours:02d}:{minutes:02d}:{seconds:02d}.{obj.microseconds:06d}'"
    return f"'{sign}{hours:02d}:{minutes:02d}:{seconds:02d}'"


def _escape_time(obj: datetime.time) -> str:
    s = f"{obj.hour:02}:{obj.minute:02}:{obj.second:02}"
    return f"'{s}.{obj.microsecond:06}'" if obj.microsecond else f"'{s}'"


def _escape_datetime(obj: datetime.datetime) -> str:
    s = f"{obj.year:04}-{obj.month:02}-{obj.day:02} {obj.hour:02}:{obj.minute:02}:{obj.second:02}"
    return f"'{s}.{obj.microsecond:06}'" if obj.microsecond else f"'{s}'"


def _escape_decimal(obj: Decimal) -> str:
    if not obj.is_finite():
        from fastio.dbapi import ProgrammingError

        raise ProgrammingError(f"{str(obj).lower()} can not be used with MySQL")
    return format(obj, "f")


def escape_item(val: Any, charset: Any = None, mapping: Any = None) -> str:
    """A value as the SQL literal PyMySQL would write (sequences as ``(a,b)``)."""
    if val is None:
        return "NULL"
    if isinstance(val, bool):
        return str(int(val))
    if isinstance(val, int):
        return str(val)
    if isinstance(val, float):
        return _escape_float(val)
    if isinstance(val, str):
        return "'" + escape_string(val) + "'"
    if isinstance(val, (bytes, bytearray, memoryview)):
        return f"_binary X'{bytes(val).hex()}'"
    if isinstance(val, Decimal):
        return _escape_decimal(val)
    if isinstance(val, datetime.datetime):
        return _escape_datetime(val)
    if isinstance(val, datetime.date):
        return f"'{val.year:04}-{val.month:02}-{val.day:02}'"
    if isinstance(val, datetime.timedelta):
        return _escape_timedelta(val)
    if isinstance(val, datetime.time):
        return _escape_time(val)
    if isinstance(val, time.struct_time):
        return _escape_datetime(datetime.datetime(*val[:6]))
    if isinstance(val, _SEQUENCES):
        return escape_sequence(val)
    if isinstance(val, Mapping):
        raise TypeError(f"{type(val).__name__} can not be used as parameter")
    return "'" + escape_string(str(val)) + "'"


def escape_sequence(val: Any, charset: Any = None, mapping: Any = None) -> str:
    """``(a,b,c)`` with each item escaped."""
    return "(" + ",".join(escape_item(v) for v in val) + ")"


def escape_dict(val: Mapping[Any, Any], charset: Any = None, mapping: Any = None) -> dict[Any, str]:
    """Each value escaped (PyMySQL's old helper, still exported by aiomysql)."""
    return {k: escape_item(v) for k, v in val.items()}


def mogrify(query: str, args: Any = None) -> str:
    """The query with each value rendered as a literal — for display only:
    ``execute`` binds the values instead."""
    if args is None:
        return query
    template = _parse(query)
    values = _values(template, args)
    out = [template.parts[0]]
    for v, part in zip(values, template.parts[1:]):
        out.append(escape_item(v))
        out.append(part)
    return "".join(out)
