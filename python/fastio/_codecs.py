"""asyncpg's ``Connection.set_type_codec`` / ``reset_type_codec``.

The type is looked up here (as asyncpg does); the codec itself lives with
the server session in Rust (``Connection._set_codec``), so one set by a
pool's ``init`` callback serves every later query on that session. Values of
the type are exchanged with the server in text format: ``encoder(obj)``
returns the text, ``decoder(text)`` builds the object. Only
``format='text'`` is supported.
"""

from __future__ import annotations

from typing import Any

from fastio._fastio import InterfaceError
from fastio.pg_exceptions import UnsupportedClientFeatureError

_TYPE_BY_NAME = """\
SELECT t.oid, t.typtype::text AS kind, t.typcategory::text AS category
FROM pg_catalog.pg_type AS t
JOIN pg_catalog.pg_namespace AS ns ON ns.oid = t.typnamespace
WHERE t.typname = $1 AND ns.nspname = $2"""

# pg_catalog types by their SQL names too ('integer', 'double precision'), as
# asyncpg's table of built-in type names allows.
_BUILTIN_BY_ALIAS = """\
SELECT t.oid, t.typtype::text AS kind, t.typcategory::text AS category
FROM pg_catalog.pg_type AS t
WHERE t.oid = pg_catalog.to_regtype($1) AND t.typnamespace = 'pg_catalog'::regnamespace"""


async def _type_oid(conn: Any, typename: str, schema: str) -> tuple[int, str, str]:
    if conn.backend != "postgresql":
        raise InterfaceError("set_type_codec() is only available for PostgreSQL")
    row = await conn.fetchrow(_TYPE_BY_NAME, typename, schema)
    if row is None and schema == "pg_catalog":
        row = await conn.fetchrow(_BUILTIN_BY_ALIAS, typename)
    if row is None:
        raise ValueError(f"unknown type: {schema}.{typename}")
    return row["oid"], row["kind"], row["category"]


async def set_type_codec(
    conn: Any,
    typename: str,
    *,
    schema: str = "public",
    encoder: Any,
    decoder: Any,
    format: str = "text",
) -> None:
    """Values of ``schema.typename`` go through ``encoder(obj) -> str`` as
    query arguments and ``decoder(str) -> obj`` as results, on this session."""
    if format not in ("text", "binary", "tuple"):
        raise InterfaceError(
            f"invalid `format` argument, expected 'text', 'binary' or 'tuple', got {format!r}"
        )
    oid, kind, category = await _type_oid(conn, typename, schema)
    if kind == "c":
        raise UnsupportedClientFeatureError(
            "only tuple-format codecs can be used on composite types, "
            "and fastio.pg supports format='text' only"
        )
    if kind not in ("b", "d", "e") or category == "A":
        raise InterfaceError(
            f"cannot use custom codec on type {schema}.{typename}: "
            "it is neither a scalar type nor a composite type"
        )
    if kind == "d":
        raise UnsupportedClientFeatureError(
            "custom codecs on domain types are not supported (set the codec on the base type)"
        )
    if format != "text":
        raise UnsupportedClientFeatureError(
            f"fastio.pg supports format='text' codecs only, not format={format!r}"
        )
    if not callable(encoder) or not callable(decoder):
        raise TypeError("set_type_codec(): encoder and decoder must be callables")
    await conn._set_codec(oid, encoder, decoder)


async def reset_type_codec(conn: Any, typename: str, *, schema: str = "public") -> None:
    """Removes the codec ``set_type_codec`` set for ``schema.typename``."""
    oid, _, _ = await _type_oid(conn, typename, schema)
    await conn._set_codec(oid)
