"""The data of YAML files read before, kept in the user's cache directory
(catalog/usercache.py): the catalog's files and code names are read on every `antal check`
and count, and building Python objects from their YAML took thirty times as long as loading
them again from a pickle.

A file's entry is named by a hash of its text (and of the YAML library's files), so an
edited file is a new entry and never meets an old one; the entry's first line is the hash
of the rest, so a damaged entry is not used. Only plain data is ever loaded back (mappings,
lists, strings, numbers, dates: what YAML's safe loader makes), never an object of another
class, so the cache cannot run code. A missing, stale or damaged entry, or no writable cache
directory, only means parsing the text again, to the same data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import importlib.util
import io
import os
import pickle
from pathlib import Path
from typing import Any

from antal.catalog.usercache import cache_dir, write_atomic

__all__ = ["MISSING", "get", "put"]

MISSING: Any = object()  # `get`'s answer when the text was not read before

# the classes of a safe-loaded YAML document that pickle names (the rest it writes itself)
_PLAIN = {("datetime", "date"): dt.date, ("datetime", "datetime"): dt.datetime,
          ("datetime", "timezone"): dt.timezone, ("datetime", "timedelta"): dt.timedelta}  # fmt: skip


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PLAIN[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not plain data") from None


@functools.cache
def _parser() -> str:
    """Which PyYAML parses, known without importing it (importing it is what the cache
    saves): its package's path, size and modification time, which an upgrade changes."""
    spec = importlib.util.find_spec("yaml")
    origin = spec.origin if spec is not None else None
    if origin is None:
        return "no yaml"
    st = os.stat(origin)
    return f"{origin}\n{st.st_size}\n{st.st_mtime_ns}"


def _entry(text: str) -> Path | None:
    d = cache_dir()
    if d is None:
        return None
    key = hashlib.sha256(f"{_parser()}\n{text}".encode()).hexdigest()[:32]
    return d / f"yaml-{key}.pickle"


def get(text: str) -> Any:
    """The data of this YAML text as read before, or MISSING."""
    path = _entry(text)
    if path is None:
        return MISSING
    with contextlib.suppress(OSError, ValueError, EOFError, pickle.UnpicklingError):
        head, _, body = path.read_bytes().partition(b"\n")
        if head == hashlib.sha256(body).hexdigest().encode() and body:
            return _PlainUnpickler(io.BytesIO(body)).load()
    return MISSING


def put(text: str, data: Any) -> None:
    """Keep the data read from this YAML text (nothing when it cannot be written)."""
    path = _entry(text)
    if path is None:
        return
    try:
        body = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return  # not plain data after all (an anchor's cycle): parsed each time
    write_atomic(path, hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
