"""Keys of the configuration file that nothing reads: refused at start, with the key the
operator probably meant.

Every key is optional, so a misspelt one (``housekeping_interval_s``, a ``[contract]``
table) would otherwise be ignored without a word and its default used. Rather than a
second list of the keys each section knows, which would drift from the parsers, the
document is wrapped (:func:`watched`) in tables that remember which keys the parsers
looked up; once every section has been parsed, :func:`unread_keys` names the others. A
parser that goes through a table's keys itself (a table of names chosen by the operator)
marks them all as read.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import Any


class Watched(dict[str, Any]):
    """A TOML table that remembers the keys looked up in it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)

    def _all_read(self) -> None:
        self.read.update(super().keys())

    def __iter__(self) -> Iterator[str]:
        self._all_read()
        return super().__iter__()

    def keys(self) -> Any:  # dict_keys, not importable by name
        self._all_read()
        return super().keys()

    def items(self) -> Any:
        self._all_read()
        return super().items()

    def values(self) -> Any:
        self._all_read()
        return super().values()


def watched(value: Any) -> Any:
    """``value`` (a parsed TOML document) with every table, nested or in an array, a
    :class:`Watched` one."""
    if isinstance(value, dict):
        return Watched({k: watched(v) for k, v in dict.items(value)})
    if isinstance(value, list):
        return [watched(v) for v in value]
    return value


def closest(key: str, known: Iterable[str]) -> str:
    """The known key ``key`` is most likely a slip of, or "" when none is close."""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return close[0] if close else ""


def refused_key(key: str, known: Iterable[str]) -> str:
    """What a refused ``key`` (dotted) is told: nothing reads it, and the key meant."""
    *table, name = key.split(".")
    meant = closest(name, known)
    prefix = ".".join(table)
    hint = f"; did you mean {prefix + '.' if prefix else ''}{meant}?" if meant else ""
    return "a key the collector reads" + hint


def unread_keys(value: Any, prefix: str = "") -> list[tuple[str, frozenset[str]]]:
    """(dotted key, the keys its table knows) of each key no parser looked up."""
    out: list[tuple[str, frozenset[str]]] = []
    if isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(unread_keys(v, f"{prefix}[{i}]"))
        return out
    if not isinstance(value, Watched):
        return out
    for key, v in dict.items(value):
        name = f"{prefix}.{key}" if prefix else key
        if key not in value.read:
            out.append((name, frozenset(value.read)))
        else:
            out.extend(unread_keys(v, name))
    return out
