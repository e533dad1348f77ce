"""Data release ids from content: a hash of the extract files' names and bytes, never of
their paths or modification times, so copying or touching the files keeps the id and
changing one byte of one file changes it. Stored answers are keyed by the release id, so
this is what keeps an answer from one extract from being returned for another.

Hashing reads every byte (about 2 GB for 10 million persons, seconds at a few hundred
MB/s), so each file's digest is kept in a small cache keyed by the file's path, size,
inode and change time (ctime, which every write, rename or `touch` sets and which no user
can set back, unlike the modification time): a file that was not touched is not read
again, and a touched or copied file is read again and gives the same digest.
The cache lives in antal's cache directory (catalog/usercache.py); where it cannot be
written, digests are simply computed each time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from antal.catalog.usercache import cache_dir, write_atomic

__all__ = ["content_release", "file_digest"]

_CACHE_FILE = "file-digests.json"
_MAX_ENTRIES = 10_000  # a cache that only grows would itself become slow to read


def _key(p: Path) -> tuple[str, str]:
    st = p.stat()
    return str(p.resolve()), f"{st.st_size}:{st.st_ctime_ns}:{st.st_dev}:{st.st_ino}"


def _load(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(path: Path, data: dict[str, list[str]]) -> None:
    """Written whole and renamed (usercache.write_atomic): a reader never sees half a cache;
    when it cannot be written, there is no cache: correct, only slower."""
    write_atomic(path, json.dumps(dict(list(data.items())[-_MAX_ENTRIES:])).encode())


def file_digest(p: Path, cache: dict[str, list[str]] | None = None) -> str:
    """SHA-256 of a file's bytes (from `cache` when the file is unchanged since)."""
    where, stamp = _key(p)
    if cache is not None:
        hit = cache.get(where)
        if isinstance(hit, list) and len(hit) == 2 and hit[0] == stamp:
            return hit[1]
    with p.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if cache is not None:
        cache.pop(where, None)
        cache[where] = [stamp, digest]
    return digest


def content_release(files: Iterable[Path], kind: str, name: str | None = None) -> str:
    """The release id of these files: their names and contents, and `kind` (what reads
    them: `local` for the files themselves, `prepared-v2` for a prepared file of layout 2).
    A release's own `name`, when it has one, is kept in front, for people:
    `synthetic-p100000-s1-3f9a...`; else the kind: `local-3f9a...`."""
    where = cache_dir()
    cache_path = where / _CACHE_FILE if where is not None else None
    cache = _load(cache_path) if cache_path is not None else {}
    before = dict(cache)
    h = hashlib.sha256(f"antal-release:{kind};".encode())
    for p in sorted(files, key=lambda q: q.name):
        h.update(f"{p.name}:{file_digest(p, cache)};".encode())
    if cache_path is not None and cache != before:
        _save(cache_path, cache)
    digest = h.hexdigest()[:16]
    return f"{name}-{digest}" if name else f"{kind}-{digest}"
