"""Small value types shared by the database API."""

from __future__ import annotations

from typing import Any, NamedTuple


class ServerVersion(NamedTuple):
    """The server's version, as asyncpg reports it (for PostgreSQL >= 10:
    ``(major, 0, minor, 'final', 0)``, so ``version[:2]`` checks the major)."""

    major: int
    minor: int
    micro: int
    releaselevel: str
    serial: int


class Range:
    """A PostgreSQL range value (asyncpg's ``Range``): ``Range(1, 10)`` is
    ``[1,10)``; a ``None`` bound is infinite; ``Range(empty=True)`` is empty.

    Decoded from int4range/int8range/numrange/daterange/tsrange/tstzrange
    columns, and accepted as their query arguments (as is a ``(lower,
    upper)`` pair)."""

    __slots__ = ("_lower", "_upper", "_lower_inc", "_upper_inc", "_empty")

    def __init__(
        self,
        lower: Any = None,
        upper: Any = None,
        *,
        lower_inc: bool = True,
        upper_inc: bool = False,
        empty: bool = False,
    ) -> None:
        self._empty = empty
        if empty:
            self._lower = self._upper = None
            self._lower_inc = self._upper_inc = False
        else:
            self._lower = lower
            self._upper = upper
            self._lower_inc = lower is not None and lower_inc
            self._upper_inc = upper is not None and upper_inc

    @property
    def lower(self) -> Any:
        return self._lower

    @property
    def lower_inc(self) -> bool:
        return self._lower_inc

    @property
    def lower_inf(self) -> bool:
        return self._lower is None and not self._empty

    @property
    def upper(self) -> Any:
        return self._upper

    @property
    def upper_inc(self) -> bool:
        return self._upper_inc

    @property
    def upper_inf(self) -> bool:
        return self._upper is None and not self._empty

    @property
    def isempty(self) -> bool:
        return self._empty

    def _issubset_lower(self, other: Range) -> bool:
        if other._lower is None:
            return True
        if self._lower is None:
            return False
        return bool(
            self._lower > other._lower
            or (self._lower == other._lower and (other._lower_inc or not self._lower_inc))
        )

    def _issubset_upper(self, other: Range) -> bool:
        if other._upper is None:
            return True
        if self._upper is None:
            return False
        return bool(
            self._upper < other._upper
            or (self._upper == other._upper and (other._upper_inc or not self._upper_inc))
        )

    def issubset(self, other: Range) -> bool:
        if self._empty:
            return True
        if other._empty:
            return False
        return self._issubset_lower(other) and self._issubset_upper(other)

    def issuperset(self, other: Range) -> bool:
        return other.issubset(self)

    def __bool__(self) -> bool:
        return not self._empty

    def _key(self) -> tuple[Any, Any, bool, bool, bool]:
        return (self._lower, self._upper, self._lower_inc, self._upper_inc, self._empty)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Range):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        if self._empty:
            desc = "empty"
        else:
            lb = "(" if self._lower is None or not self._lower_inc else "["
            if self._lower is not None:
                lb += repr(self._lower)
            ub = repr(self._upper) if self._upper is not None else ""
            ub += ")" if self._upper is None or not self._upper_inc else "]"
            desc = f"{lb}, {ub}"
        return f"<Range {desc}>"

    __str__ = __repr__
