"""COPY to and from tables, asyncpg's way: ``copy_from_query``,
``copy_from_table`` and ``copy_to_table`` on a Connection.

The statement is built here; the data moves in Rust (``Connection._copy_out``
/ ``_copy_in``). A path is read or written from tokio without touching
Python; a file object or an async callable/iterable gets or gives the data in
one crossing of the boundary per call.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterable, Iterable
from typing import Any


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _table(table_name: str, schema_name: str | None) -> str:
    if schema_name is not None:
        return f"{_quote_ident(schema_name)}.{_quote_ident(table_name)}"
    return _quote_ident(table_name)


def _columns(columns: Iterable[str] | None) -> str:
    if not columns:
        return ""
    return " (" + ", ".join(_quote_ident(c) for c in columns) + ")"


def _options(
    *,
    format: str | None = None,
    oids: bool | None = None,
    freeze: bool | None = None,
    delimiter: str | None = None,
    null: str | None = None,
    header: bool | None = None,
    quote: str | None = None,
    escape: str | None = None,
    force_quote: bool | Iterable[str] | None = None,
    force_not_null: Iterable[str] | None = None,
    force_null: Iterable[str] | None = None,
    encoding: str | None = None,
) -> str:
    """The ``(FORMAT ..., ...)`` option list, as asyncpg's ``_format_copy_opts``."""
    opts = []
    if format is not None:
        if format.lower() not in ("text", "csv", "binary"):
            raise ValueError(f"format must be 'text', 'csv' or 'binary', not {format!r}")
        opts.append(f"FORMAT {format.lower()}")
    for name, flag in (("OIDS", oids), ("FREEZE", freeze), ("HEADER", header)):
        if flag is not None:
            opts.append(f"{name} {'true' if flag else 'false'}")
    for name, text in (
        ("DELIMITER", delimiter),
        ("NULL", null),
        ("QUOTE", quote),
        ("ESCAPE", escape),
        ("ENCODING", encoding),
    ):
        if text is not None:
            opts.append(f"{name} {_quote_literal(text)}")
    if force_quote is not None:
        if force_quote is True:
            opts.append("FORCE_QUOTE *")
        elif force_quote is not False:
            opts.append("FORCE_QUOTE (" + ", ".join(_quote_ident(c) for c in force_quote) + ")")
    for name, cols in (("FORCE_NOT_NULL", force_not_null), ("FORCE_NULL", force_null)):
        if cols:
            opts.append(f"{name} (" + ", ".join(_quote_ident(c) for c in cols) + ")")
    return " (" + ", ".join(opts) + ")" if opts else ""


def _path(target: Any) -> str | None:
    if isinstance(target, (str, os.PathLike)):
        return os.fspath(target)  # type: ignore[return-value]
    return None


async def _copy_out(conn: Any, sql: str, output: Any, timeout: float | None) -> str:
    path = _path(output)
    if path is not None:
        status, _ = await conn._copy_out(sql, path, timeout=timeout)
        return status  # type: ignore[no-any-return]
    if not (callable(output) or hasattr(output, "write")):
        raise TypeError(
            "output must be a path, a file object, or an async callable taking bytes, "
            f"not {type(output).__name__}"
        )
    status, data = await conn._copy_out(sql, None, timeout=timeout)
    if data:
        if hasattr(output, "write"):
            written = output.write(data)
            if inspect.isawaitable(written):
                await written
        else:
            await output(data)
    return status  # type: ignore[no-any-return]


async def copy_from_query(
    conn: Any,
    query: str,
    args: tuple[Any, ...],
    *,
    output: Any,
    timeout: float | None = None,
    **options: Any,
) -> str:
    """``COPY (query) TO STDOUT``; ``$n`` arguments are inlined as literals
    the server quoted (COPY takes no parameters), as asyncpg does."""
    if args:
        query = await conn._mogrify(query, *args, timeout=timeout)
    sql = f"COPY ({query}) TO STDOUT{_options(**options)}"
    return await _copy_out(conn, sql, output, timeout)


async def copy_from_table(
    conn: Any,
    table_name: str,
    *,
    output: Any,
    columns: Iterable[str] | None = None,
    schema_name: str | None = None,
    timeout: float | None = None,
    **options: Any,
) -> str:
    """``COPY table (columns) TO STDOUT``."""
    sql = (
        f"COPY {_table(table_name, schema_name)}{_columns(columns)} TO STDOUT{_options(**options)}"
    )
    return await _copy_out(conn, sql, output, timeout)


async def copy_to_table(
    conn: Any,
    table_name: str,
    *,
    source: Any,
    columns: Iterable[str] | None = None,
    schema_name: str | None = None,
    timeout: float | None = None,
    where: str | None = None,
    **options: Any,
) -> str:
    """``COPY table (columns) FROM STDIN`` with ``source``: a path, a file
    object (read in full), bytes, or an (async) iterable of bytes."""
    sql = (
        f"COPY {_table(table_name, schema_name)}{_columns(columns)} FROM STDIN{_options(**options)}"
    )
    if where is not None:
        sql += f" WHERE {where}"
    path = _path(source)
    if path is not None:
        return await conn._copy_in(sql, path, timeout=timeout)  # type: ignore[no-any-return]
    chunks: list[bytes]
    if isinstance(source, (bytes, bytearray, memoryview)):
        chunks = [bytes(source)]
    elif hasattr(source, "read"):
        data = source.read()
        if inspect.isawaitable(data):
            data = await data
        chunks = [data.encode() if isinstance(data, str) else bytes(data)]
    elif isinstance(source, AsyncIterable):
        chunks = [c.encode() if isinstance(c, str) else bytes(c) async for c in source]
    elif isinstance(source, Iterable):
        chunks = [c.encode() if isinstance(c, str) else bytes(c) for c in source]
    else:
        raise TypeError(
            "source must be a path, a file object, bytes, or an (async) iterable of bytes, "
            f"not {type(source).__name__}"
        )
    return await conn._copy_in(sql, None, chunks, timeout=timeout)  # type: ignore[no-any-return]


async def on_pool(pool: Any, method: str, args: tuple[Any, ...], **kwargs: Any) -> Any:
    """``Pool.copy_*``: the Connection method on a connection acquired for the call."""
    async with pool.acquire() as conn:
        return await getattr(conn, method)(*args, **kwargs)
