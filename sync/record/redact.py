"""What the history keeps of people (docs/operations.md, "What the history holds").

The farm as a cycle left it is kept for `plan --against`, and a copy of the history
goes to CI. With `history.redact` (the default) the artists in it are hashed: a
checkout that is not the farm's (by any pool's `farm_selector`) keeps its count and
times but its user, host and display become keyed hashes, a job's `createdBy` too, and
lines a parser quoted in an error are dropped. The farm's own checkouts stay as they
are, so `plan --against` counts the farm's use as the service did; a job's creator that
the planned policy names in a `user:` selector is matched through the same hash
(`unhash`). Pure: the key is handed in.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MARK = "~"  # a hashed name starts with it; no user name or host name does
# a quoted string with a space in it: a line of a tool's output, not a feature or limit name
_QUOTED = re.compile(r"""(?<![\w.])(?:'[^'\s]*\s(?:[^'\\]|\\.)*'|"[^"\s]*\s(?:[^"\\]|\\.)*")""")
FarmCheck = Callable[[str, str], bool]  # (host, user) → the farm's own


def hashed(value: str, key: bytes) -> str:
    """The same name always gives the same mark under one key, and no way back."""
    digest = hashlib.blake2b(value.encode(), key=key, digest_size=6).hexdigest()
    return MARK + digest


class Redactor:
    """Hashes what names a person in the recorded observation."""

    def __init__(self, key: bytes, is_farm: FarmCheck | None, clear: Iterable[str] = ()):
        self.key = key
        self.is_farm = is_farm or (lambda host, user: False)
        # what `is_farm` keeps in clear, in words a planned policy's selectors can be
        # compared with (`selector_words`): a selector not among them meets hashed hosts
        self.clear = frozenset(clear)

    def name(self, value: str | None) -> str | None:
        return value if not value else hashed(value, self.key)

    def report(self, report: dict[str, Any]) -> dict[str, Any]:
        """A report's `to_dict()`, its artists' checkouts hashed."""
        features = [
            {**f, "checkouts": [self._checkout(c) for c in f["checkouts"]]}
            for f in report["features"]
        ]
        return {**report, "features": features, "errors": [quiet(e) for e in report["errors"]]}

    def _checkout(self, c: Mapping[str, Any]) -> dict[str, Any]:
        if self.is_farm(c.get("host") or "", c.get("user") or ""):
            return dict(c)
        return {**c, **{k: self.name(c.get(k)) for k in ("user", "host", "display")}}


def selector_words(hosts: Iterable[str], users: Iterable[str], workers: bool) -> set[str]:
    """A farm_selector as the words `Redactor.clear` keeps: each pattern, and whether the
    Deadline workers' hosts were in clear."""
    words = {f"hosts:{h}" for h in hosts} | {f"users:{u}" for u in users}
    return words | ({"workers"} if workers else set())


def quiet(message: str) -> str:
    """An error without the lines of a tool's output it quoted (a checkout line names
    people); the names it quotes (features, limits) stay."""
    return _QUOTED.sub("'…'", message)


def hashes_of(key: bytes, names: Iterable[str]) -> dict[str, str]:
    """Each name by its hash under `key`: made once, looked up for every job."""
    return {hashed(n, key): n for n in names}


def unhash(value: str, names_by_hash: Mapping[str, str]) -> str:
    """`value` as the name it is the hash of (`hashes_of`), else as it is."""
    return names_by_hash.get(value, value)


def any_farm(checks: Iterable[FarmCheck | None]) -> FarmCheck | None:
    """The checkouts any pool counts as the farm's."""
    real = [c for c in checks if c is not None]
    if not real:
        return None
    return lambda host, user: any(c(host, user) for c in real)
