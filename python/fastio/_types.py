"""Small value types shared by the database API."""

from __future__ import annotations

from typing import NamedTuple


class ServerVersion(NamedTuple):
    """The server's version, as asyncpg reports it (for PostgreSQL >= 10:
    ``(major, 0, minor, 'final', 0)``, so ``version[:2]`` checks the major)."""

    major: int
    minor: int
    micro: int
    releaselevel: str
    serial: int
