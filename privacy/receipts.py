"""Receipts that others can check: every released answer's receipt is signed by the
installation (Ed25519, with `cryptography`).

A receipt says which question was answered: the canonical cohort by its hash (the IR hash
the gate keys answers by: the same for every spelling of the same meaning) and the names it
was shown with (its title and step labels, which that hash leaves out); for which project
and purpose, on which data release, under which privacy parameters, at what cost, when
(UTC), under which audit log entry (its sequence number), and which released values (a
SHA-256 of every value the answer shows: each step's count, every breakdown cell with its
codes and names, every table), so that a receipt cannot be kept while its counts or its
labels are changed. The signature covers every field but itself, as canonical JSON (keys
sorted, no spaces, UTF-8); the `key_id` names the public key that checks it.

Version 1 receipts (before issue 22) did not sign the title and step labels, and their
digest covered the counts, the first breakdown's codes and counts only: they still verify,
as what they are (`caveats` says what they do not bind).

The installation's signing key is one file (PEM, PKCS#8, mode 0600), made once on first
use and kept; a key file that others may read is refused. The key is never logged, shown
or stored anywhere else; its public half is published (`GET /v1/receipts/public-key`).

    signer = Signer.from_file(path)             # made on first use
    receipt = signer.sign(body)                 # body + key_id + signature
    problems = verify(receipt, signer.public)   # [] when intact
    problems += check_answer(answer, receipt)   # the answer's values and labels are signed
    problems += check_cohort(receipt, query_hash, title, labels)  # the question is this one
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from antal.privacy.errors import SigningKeyError
from antal.privacy.mechanism import COUNT_FIELDS

__all__ = [
    "RECEIPT_FIELDS",
    "RECEIPT_FIELDS_BY_VERSION",
    "RECEIPT_VERSION",
    "Signer",
    "answer_digest",
    "canonical",
    "caveats",
    "check_answer",
    "check_cohort",
    "load_public_key",
    "public_key_json",
    "released_digest",
    "shown_key",
    "signature_problem",
    "verify",
]

log = logging.getLogger("antal.privacy")

# 2: the title and step labels signed, and the digest of every value shown (issue 22)
# 3: the guarantee of the answer: its noise, and under gaussian noise its ρ and the (ε, δ)
#    that ρ implies alone (issue 23)
RECEIPT_VERSION = 3
# every field a receipt of this version carries; `signature` covers all the others
RECEIPT_FIELDS = (
    "version",
    "project",
    "purpose",
    "query_hash",
    "title",
    "labels",
    "data_release",
    "answer_key",
    "privacy",
    "epsilon",
    "guarantee",
    "released_sha256",
    "time",
    "audit_seq",
    "key_id",
    "signature",
)
# the fields of each version a store may hold: older receipts keep verifying as what they are
_V2 = tuple(f for f in RECEIPT_FIELDS if f != "guarantee")
RECEIPT_FIELDS_BY_VERSION: dict[int, tuple[str, ...]] = {
    1: tuple(f for f in _V2 if f not in ("title", "labels")),
    2: _V2,
    3: RECEIPT_FIELDS,
}


def canonical(d: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: JSON with sorted keys, no spaces, UTF-8."""
    return json.dumps(
        d, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _count(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: d.get(k) for k in COUNT_FIELDS}


def released_digest(
    steps: Sequence[Mapping[str, Any]],
    dims: Sequence[str],
    cells: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
) -> str:
    """Version 1's digest: each step's count, the dimensions, each cell's key and count of
    the first table (labels, names and further tables left out)."""
    body = {
        "steps": [_count(s) for s in steps],
        "dims": list(dims),
        "cells": [[list(k), _count(c)] for k, c in cells],
    }
    return hashlib.sha256(canonical(body)).hexdigest()


def _rows(cells: Any) -> list[dict[str, Any]]:
    """A breakdown's cells as shown: every field of each (codes, names, count fields)."""
    return [dict(c) for c in cells or []]


def answer_digest(answer: Mapping[str, Any], version: int = RECEIPT_VERSION) -> str:
    """The digest of an answer as the API and `antal count --json` give it (and as the gate
    signs it). Version 2: every released value shown: each step's count fields, the
    dimensions, every cell of the breakdown (its codes, their names and its count fields)
    and every table when there are several. The labels are signed as their own field."""
    dims = list(answer.get("dims") or [])
    if version == 1:
        cells = [([c.get(d) for d in dims], c) for c in answer.get("breakdown") or []]
        return released_digest(answer.get("attrition") or [], dims, cells)
    body = {
        "steps": [_count(s) for s in answer.get("attrition") or []],
        "dims": dims,
        "breakdown": _rows(answer.get("breakdown")),
        "tables": [
            {"dims": list(t.get("dims") or []), "report": t.get("report"),
             "level": t.get("level"), "breakdown": _rows(t.get("breakdown"))}
            for t in answer.get("tables") or []
        ],
    }  # fmt: skip
    return hashlib.sha256(canonical(body)).hexdigest()


def shown_key(title: str | None, labels: Sequence[str], released_sha256: str) -> str:
    """What a receipt binds beside its answer key, as one hash: the gate keeps one receipt
    per project, answer key and this (the same answer asked with other names gets its own)."""
    body = {"title": title, "labels": list(labels), "released_sha256": released_sha256}
    return hashlib.sha256(canonical(body)).hexdigest()


def _differ(what: str, ours: Sequence[str], signed: Sequence[str]) -> str | None:
    """Where two label lists first differ, in words (None: the same)."""
    if list(ours) == list(signed):
        return None
    if len(ours) != len(signed):
        return f"{what} has {len(ours)} steps, the receipt {len(signed)}"
    i = next(i for i, (a, b) in enumerate(zip(ours, signed, strict=True)) if a != b)
    return f"step {i} is {ours[i]!r} in {what}, {signed[i]!r} in the receipt"


def check_answer(answer: Mapping[str, Any], receipt: Mapping[str, Any]) -> list[str]:
    """What in a whole answer is not what its (intact) receipt was signed for: its released
    values, its final count at the top, and (version 2) its step labels. Empty: the same."""
    version = receipt.get("version")
    try:
        digest = answer_digest(answer, 1 if version == 1 else RECEIPT_VERSION)
        steps = answer.get("attrition") or [{}]
        # the final count at the top repeats the last step's: it must be that one
        top = all(answer.get(f) == steps[-1].get(f) for f in COUNT_FIELDS)
        labels = [s.get("label") for s in answer.get("attrition") or []]
    except (AttributeError, TypeError, ValueError):  # not lists of objects where counts are
        return ["the answer's released values are not those its receipt was signed for"]
    problems = []
    if digest != receipt.get("released_sha256") or not top:
        problems.append("the answer's released values are not those its receipt was signed for")
    signed_unit = (receipt.get("guarantee") or {}).get("unit")
    if signed_unit is not None and answer.get("unit", "persons") != signed_unit:
        problems.append(
            f"the answer counts {answer.get('unit', 'persons')}, its receipt was signed for "
            f"{signed_unit}"
        )
    if version != 1:
        differ = _differ("the answer", labels, receipt.get("labels") or [])
        if differ:
            problems.append(
                f"the answer's step labels are not those its receipt was signed for: {differ}"
            )
    return problems


def check_cohort(
    receipt: Mapping[str, Any], query_hash: str, title: str | None, labels: Sequence[str]
) -> list[str]:
    """What in a cohort (checked as counting checks it: its IR hash, title and step labels)
    is not the question an (intact) receipt was signed for. Empty: the same question. A
    version 1 receipt binds the hash only."""
    if query_hash != receipt.get("query_hash"):
        return [
            f"the cohort is not the question the receipt was signed for: its query hash is "
            f"{query_hash[:16]}…, the receipt's {str(receipt.get('query_hash'))[:16]}…"
        ]
    if receipt.get("version") == 1:
        return []
    problems = []
    if title != receipt.get("title"):
        problems.append(
            f"the cohort's title is {title!r}, the receipt was signed for {receipt.get('title')!r}"
        )
    differ = _differ("the cohort", labels, receipt.get("labels") or [])
    if differ:
        problems.append(
            f"the cohort's step labels are not those the receipt was signed for: {differ}"
        )
    return problems


def caveats(receipt: Mapping[str, Any]) -> list[str]:
    """What a valid receipt does not bind (a version 1 receipt: the names), in words."""
    if receipt.get("version") == 1:
        return [
            "a version 1 receipt (made before receipts signed the question's names): it binds "
            "the query hash and the released counts, not the title, the step labels or the "
            "names of breakdown cells; those shown with it were not signed"
        ]
    return []


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def public_key_json(public: Ed25519PublicKey) -> dict[str, str]:
    """The public key as `GET /v1/receipts/public-key` gives it."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    return {
        "algorithm": "Ed25519",
        "key_id": _key_id(public),
        "public_key": base64.b64encode(raw).decode("ascii"),
        "pem": pem,
    }


class Signer:
    """The installation's signing key. Its `repr` hides the key."""

    def __init__(self, key: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._key = key
        self.path = path
        self.public = key.public_key()
        self.key_id = _key_id(self.public)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id}, path={self.path})"

    @classmethod
    def ephemeral(cls) -> Signer:
        """A key kept in memory only (tests, and a Gate made without one): its receipts
        verify against `public`, and against nothing once the process ends."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: str | Path) -> Signer:
        """The key in `path`, made there (mode 0600) on first use. A key file that its
        group or others may read, or that is not an Ed25519 private key, is refused."""
        path = Path(path)
        if not path.exists():
            _create(path)
        try:
            mode = path.stat().st_mode
            if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise SigningKeyError(
                    f"the signing key {path} may be read by others (mode {stat.S_IMODE(mode):o}); "
                    f"anyone who reads it can sign receipts: `chmod 600 {path}`"
                )
            data = path.read_bytes()
        except OSError as e:
            raise SigningKeyError(f"cannot read the signing key {path}: {e.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise SigningKeyError(f"{path} is not a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{path} is not an Ed25519 key")
        return cls(key, path)

    def sign(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`body` with this key's id and the signature of both."""
        unsigned = {**body, "key_id": self.key_id}
        unsigned.pop("signature", None)
        signature = self._key.sign(canonical(unsigned))
        return {**unsigned, "signature": base64.b64encode(signature).decode("ascii")}


def _create(path: Path) -> None:
    """A new key at `path`, atomically: written to a private temporary file, then linked
    into place (if another process made one first, its key stands and ours is dropped)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise SigningKeyError(f"cannot make the signing key {path}: {e.strerror}") from None
    log.info("made the installation's signing key %s (key id %s)", path, _key_id(key.public_key()))


def load_public_key(text: str | bytes) -> Ed25519PublicKey:
    """A public key as PEM, as base64 of its 32 raw bytes, or as the JSON the public-key
    route gives; ValueError otherwise."""
    s = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    s = s.strip()
    if s.startswith("{"):
        try:
            d = json.loads(s)
        except json.JSONDecodeError:
            raise ValueError("not a public key: JSON that does not parse") from None
        if not isinstance(d, dict) or not isinstance(d.get("public_key"), str):
            raise ValueError("not a public key: JSON without `public_key`")
        s = d["public_key"]
    if s.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(s.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ValueError("not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    try:
        raw = base64.b64decode(s, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise ValueError("not a public key: give PEM, or base64 of 32 bytes") from None


def verify(receipt: Any, public: Ed25519PublicKey) -> list[str]:
    """What is wrong with a receipt under this public key (empty: intact and signed by it)."""
    if not isinstance(receipt, dict):
        return ["a receipt is a JSON object"]
    version = receipt.get("version")
    if type(version) is not int or version not in RECEIPT_FIELDS_BY_VERSION:
        known = ", ".join(str(v) for v in RECEIPT_FIELDS_BY_VERSION)
        return [f"the receipt's version is {version!r}, not one antal knows ({known})"]
    fields = RECEIPT_FIELDS_BY_VERSION[version]
    problems = [f"the receipt has no `{f}`" for f in fields if f not in receipt]
    extra = sorted(set(receipt) - set(fields))
    if extra:  # a field added afterwards is not covered by the signature: refuse it
        problems.append(f"the receipt has fields it was not signed with: {', '.join(extra)}")
    if problems:
        return problems
    problem = signature_problem(receipt, public)
    return [problem] if problem else []


def signature_problem(
    signed: Mapping[str, Any], public: Ed25519PublicKey, what: str = "receipt"
) -> str | None:
    """What is wrong with the signature of `signed` (as `Signer.sign` made it: its
    `key_id` and `signature`) under this public key; None when this key signed every
    other field as they are. `what` names the document in the message."""
    if signed.get("key_id") != _key_id(public):
        return (
            f"the {what} names signing key {signed.get('key_id')}, the public key given is "
            f"{_key_id(public)}"
        )
    try:
        signature = base64.b64decode(str(signed.get("signature")), validate=True)
    except binascii.Error:
        return "the signature is not base64"
    body = {k: v for k, v in signed.items() if k != "signature"}
    try:
        public.verify(signature, canonical(body))
    except InvalidSignature:
        return f"the signature does not match the {what}: it was altered, or signed by another key"
    except ValueError:  # a value JSON cannot say canonically (NaN)
        return f"the {what} holds a value that cannot be signed"
    return None
