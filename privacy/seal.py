"""The audit log's signed heads, and the anchor file they are also written to.

The hash chain (antal.privacy.store) shows that no entry was edited, removed or reordered
only as long as its newest hash is trusted, and the algorithm is public: whoever can write
the store can refund ε, drop entries and recompute every hash. So every entry's head is
signed with the installation's key (the receipts' Ed25519 key, antal.privacy.receipts)
in the transaction that appends it, and kept in `audit_seals`:

    {"version": 1, "seq": 812, "hash": "<the entry's chain hash>",
     "ledger": "<SHA-256 of every project's purpose, budget, spent ε and registers>",
     "key_id": "...", "signature": "<Ed25519 of the canonical JSON of the rest>"}

The ledger is taken when the transaction commits, so the newest head signs the ledger as
it stands: a refund made in the database (with or without touching the log) no longer
matches it. Someone without the key who re-chains the log breaks the signatures from the
first entry they changed, or leaves entries unsigned after signed ones.

What a store alone cannot show is that it was put back to an older copy of itself: that
copy is signed too. So each signed head is also appended, after its transaction commits,
to an anchor file outside the database (JSON lines, opened O_APPEND, made 0600), which an
operator can ship elsewhere; `check` compares the log with it. docs/security.md says what
this stops, and what someone who holds the signing key can still do.

Entries written before signing existed (an older store) have no head: the first signed
head covers them through the chain, and `check` names them rather than failing on them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from antal.privacy.errors import SigningKeyError
from antal.privacy.receipts import canonical, public_key_json, signature_problem

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from antal.privacy.receipts import Signer

__all__ = [
    "HEAD_VERSION",
    "LEDGER_SQL",
    "AuditCheck",
    "append_anchor",
    "check",
    "head_text",
    "ledger_digest",
    "read_anchor",
    "sign_heads",
    "touch_anchor",
]

log = logging.getLogger("antal.privacy")

HEAD_VERSION = 1
# the ledger a head signs: what a project may spend and has spent, and on which registers
LEDGER_SQL = "SELECT id, purpose, budget, spent, registers FROM projects"
_HEAD_FIELDS = {"version", "seq", "hash", "ledger", "key_id", "signature"}
# how many runs of sequence numbers a message lists before it says how many there are
_RUNS_SHOWN = 5
_NOT_JSON = "not JSON"


def ledger_digest(rows: Iterable[Sequence[Any]]) -> str:
    """SHA-256 of the projects' ledger (the rows of `LEDGER_SQL`), in canonical JSON."""
    # sorted here, not by the database: SQLite's and PostgreSQL's collations may differ
    body = sorted([pid, purpose, float(budget), float(spent), registers]
                  for pid, purpose, budget, spent, registers in rows)  # fmt: skip
    return hashlib.sha256(canonical(body)).hexdigest()


def sign_heads(signer: Signer, appended: Iterable[tuple[int, str]], ledger: str) -> list[dict[str, Any]]:  # fmt: skip
    """The signed head of each appended entry (its sequence number and hash), each with
    the ledger as the transaction that appended them leaves it."""
    return [
        signer.sign({"version": HEAD_VERSION, "seq": seq, "hash": h, "ledger": ledger})
        for seq, h in appended
    ]


def head_text(head: Mapping[str, Any]) -> str:
    """A signed head as it is stored and anchored: canonical JSON on one line."""
    return canonical(head).decode("utf-8")


# ---- the anchor file ---------------------------------------------------------------------------


def _open_append(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_APPEND: every write goes to the end, whoever else appends; made 0600 (the heads
    # are not secret, but nobody else should be able to add lines to them)
    return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)


def touch_anchor(path: Path) -> None:
    """Make the anchor file if it is missing, or fail now (when the store is opened to be
    written) rather than after a commit: a `SigningKeyError` naming the file."""
    try:
        os.close(_open_append(path))
    except OSError as e:
        raise SigningKeyError(f"cannot write the audit anchor {path}: {e.strerror}") from None


def append_anchor(path: Path, heads: Sequence[Mapping[str, Any]]) -> None:
    """Append signed heads to the anchor, one line each, in one write (so that processes
    appending at once never interleave within a line). Called after the commit: if it
    fails, the entries stand, signed in the store, and the failure is logged; `check`
    then says which entries the anchor lacks."""
    if not heads:
        return
    data = "".join(head_text(h) + "\n" for h in heads).encode("utf-8")
    try:
        fd = _open_append(path)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a line cut short by a crash: ours starts on a new one
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
    except OSError as e:
        log.error("could not append %d signed audit heads to the anchor %s: %s",
                  len(heads), path, e.strerror)  # fmt: skip


def read_anchor(path: Path) -> list[str] | None:
    """The anchor's lines; None if there is no such file."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None


# ---- checking a log against its heads and its anchor -------------------------------------------


@dataclass
class AuditCheck:
    """What `antal audit verify` found: problems (the log or the ledger cannot be trusted:
    exit 1) and notes (facts an operator should know, such as entries written before
    signing existed)."""

    entries: int = 0
    signed: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _runs(seqs: Iterable[int], one: str = "entry", many: str = "entries") -> str:
    """`entry 5`, `entries 5–9, 12` (sorted; at most a few runs, then how many)."""
    ordered = sorted(set(seqs))
    runs: list[list[int]] = []
    for s in ordered:
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    shown = [str(a) if a == b else f"{a}–{b}" for a, b in runs[:_RUNS_SHOWN]]
    if len(runs) > _RUNS_SHOWN:
        shown.append(f"… ({len(ordered)} in all)")
    return f"{one if len(ordered) == 1 else many} {', '.join(shown)}"


def _read_head(text: str, public: Ed25519PublicKey) -> tuple[dict[str, Any] | None, str]:
    """A signed head of this key, or None and why not."""
    try:
        head = json.loads(text)
    except json.JSONDecodeError:
        return None, _NOT_JSON
    if not isinstance(head, dict) or set(head) != _HEAD_FIELDS:
        return None, "not a signed head"
    problem = signature_problem(head, public, "signed head")
    if problem is not None:
        return None, problem
    if head["version"] != HEAD_VERSION or not isinstance(head["seq"], int):
        return None, f"a head of version {head['version']!r}, not {HEAD_VERSION}"
    return head, ""


def check(
    entries: Sequence[tuple[int, str]],
    seals: Mapping[int, str],
    ledger: str,
    public: Ed25519PublicKey | None,
    anchor: Path | None = None,
    anchor_lines: list[str] | None = None,
) -> AuditCheck:
    """Check a log's entries (sequence number and hash, in order; their chain is checked
    by the store) against their signed heads in the store (`seals`, by sequence number),
    the ledger now (`ledger_digest`), and the anchor file `anchor` if one is named (its
    lines, `read_anchor`: None if it is missing)."""
    found = AuditCheck(entries=len(entries))
    hashes = dict(entries)
    if public is None:
        if seals or any(line.strip() for line in anchor_lines or ()):
            found.problems.append("the audit log is signed, but there is no public key to "
                                  "check it with (the installation's signing key)")  # fmt: skip
        elif hashes:
            found.notes.append(_unsigned(hashes))
        return found
    signed = _check_seals(found, hashes, seals, public)
    if anchor is not None:
        for seq, head in _check_anchor(found, hashes, seals, public, anchor, anchor_lines).items():
            signed.setdefault(seq, head)
    last = entries[-1][0] if entries else 0
    if last in signed and signed[last]["ledger"] != ledger:
        found.problems.append("the ledger (the projects' budgets, spent ε and approved "
                              f"registers) is not the one signed with the newest entry {last}: "
                              "it was changed outside the audit log (a refund?)")  # fmt: skip
    return found


def _unsigned(hashes: Iterable[int]) -> str:
    return (f"{_runs(hashes)} are not signed: no signature covers them (written before the "
            "audit log was signed, or by a store opened without the installation's key)")  # fmt: skip


def _check_seals(found: AuditCheck, hashes: Mapping[int, str], seals: Mapping[int, str],
                 public: Ed25519PublicKey) -> dict[int, dict[str, Any]]:  # fmt: skip
    """The store's signed heads against the entries; the heads that match them."""
    if not seals:
        if hashes:
            found.notes.append(_unsigned(hashes))
        return {}
    good: dict[int, dict[str, Any]] = {}
    forged: list[int] = []
    why = ""
    differ: list[int] = []
    gone: list[int] = []
    for seq, text in sorted(seals.items()):
        head, reason = _read_head(text, public)
        if head is None or head["seq"] != seq:
            forged.append(seq)
            why = why or reason or "it names another entry"
        elif seq not in hashes:
            gone.append(seq)
        elif head["hash"] != hashes[seq]:
            differ.append(seq)
        else:
            good[seq] = head
    found.signed = len(good)
    first = min(seals)
    before = [s for s in hashes if s < first]
    if before:
        found.notes.append(f"{_runs(before)} were written before the audit log's head was "
                           f"signed: the signed head of entry {first} covers them through the "
                           "hash chain")  # fmt: skip
    if forged:
        key = public_key_json(public)["key_id"]
        found.problems.append(f"the signed heads of {_runs(forged)} are not signatures of the "
                              f"installation's key {key} ({why}): forged or altered from entry "
                              f"{forged[0]}")  # fmt: skip
    if differ:
        # an unsigned entry before the first signed one may be where the rewrite began
        since = f"{differ[0]}" if differ[0] != first or not before else f"{first} or before"
        found.problems.append(f"{_runs(differ)} do not match their signed heads: the log was "
                              f"rewritten from entry {since}")  # fmt: skip
    if gone:
        found.problems.append(f"{_runs(gone)} were signed but are no longer in the log: removed "
                              f"or renumbered from entry {gone[0]}")  # fmt: skip
    unsigned = [s for s in hashes if s > first and s not in seals]
    if unsigned:
        found.problems.append(f"{_runs(unsigned)} are not signed, though entry {first} before "
                              "them is: written without the installation's key, or their "
                              f"signatures removed, from entry {unsigned[0]}")  # fmt: skip
    return good


def _check_anchor(found: AuditCheck, hashes: Mapping[int, str], seals: Mapping[int, str],
                  public: Ed25519PublicKey, anchor: Path,
                  lines: list[str] | None) -> dict[int, dict[str, Any]]:  # fmt: skip
    """The anchor's signed heads against the entries and the store's heads; the anchor's
    heads that match an entry."""
    if lines is None:
        if seals:
            found.problems.append(f"the audit anchor {anchor} is missing, though the log is "
                                  f"signed from entry {min(seals)}")  # fmt: skip
        elif hashes:
            found.notes.append(f"there is no audit anchor at {anchor}")
        return {}
    heads: dict[int, dict[str, dict[str, Any]]] = {}  # seq -> hash -> head
    bad: list[int] = []
    torn: list[int] = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            head, why = _read_head(line, public)
            if head is not None:
                heads.setdefault(head["seq"], {})[head["hash"]] = head
            else:
                (torn if why == _NOT_JSON else bad).append(n)
    if bad:
        found.problems.append(f"{_runs(bad, 'line', 'lines')} of the audit anchor {anchor} "
                              "are not heads signed by the installation's key")  # fmt: skip
    if torn:  # a line cut short (a crash while writing it) takes nothing away from the rest
        found.notes.append(f"{_runs(torn, 'line', 'lines')} of the audit anchor {anchor} "
                           "are not JSON (cut short?) and were passed over")  # fmt: skip
    if not heads:
        if seals and not bad:
            found.notes.append(f"the audit anchor {anchor} holds no signed head yet")
        return {}
    last = max(hashes) if hashes else 0
    forks = [s for s, hs in heads.items() if len(hs) > 1]
    if forks:
        found.problems.append(f"the audit anchor holds two different signed heads for "
                              f"{_runs(forks)}: the store was put back to an older copy and "
                              f"written again from entry {min(forks)}")  # fmt: skip
    beyond = [s for s in heads if s > last]
    if beyond:
        found.problems.append(f"the audit anchor holds signed heads up to entry {max(beyond)}, "
                              f"but the log ends at entry {last}: the store was put back to an "
                              "older copy, or its newest entries removed")  # fmt: skip
    differ = [s for s, hs in heads.items() if s <= last and hashes.get(s) not in hs]
    if differ:
        found.problems.append(f"{_runs(differ)} differ from their signed heads in the audit "
                              f"anchor {anchor}: the log was rewritten from entry {min(differ)}")  # fmt: skip
    # the anchor is written after the store commits: a head it holds is in the store too
    stripped = [s for s in heads if s <= last and s not in seals]
    if stripped:
        found.problems.append(f"{_runs(stripped)} are signed in the audit anchor but not in "
                              "the store: their signatures were removed from the store")  # fmt: skip
    newest = max(heads)
    if seals and newest < max(seals):
        found.notes.append(f"the audit anchor's newest head is entry {newest}: "
                           f"{_runs(s for s in seals if s > newest)} are checked against "
                           "their signatures in the store only")  # fmt: skip
    return {s: hs[hashes[s]] for s, hs in heads.items() if s in hashes and hashes[s] in hs}
