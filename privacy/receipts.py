"""Receipts that others can check: every released answer's receipt is signed by the
installation (Ed25519, with `cryptography`).

A receipt says which query (its hash and answer key) was answered for which project and
purpose, on which data release, under which privacy parameters, at what cost, when (UTC),
under which audit log entry (its sequence number), and which released values (a SHA-256
of them, so that a receipt cannot be kept while its counts are changed). The signature
covers every field but itself, as canonical JSON (keys sorted, no spaces, UTF-8); the
`key_id` names the public key that checks it.

The installation's signing key is one file (PEM, PKCS#8, mode 0600), made once on first
use and kept; a key file that others may read is refused. The key is never logged, shown
or stored anywhere else; its public half is published (`GET /v1/receipts/public-key`).

    signer = Signer.from_file(path)             # made on first use
    receipt = signer.sign(body)                 # body + key_id + signature
    problems = verify(receipt, signer.public)   # [] when intact
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
from antal.privacy.mechanism import COUNT_FIELDS, ReleasedCount

__all__ = [
    "RECEIPT_FIELDS",
    "RECEIPT_VERSION",
    "Signer",
    "answer_digest",
    "canonical",
    "load_public_key",
    "public_key_json",
    "released_digest",
    "signature_problem",
    "stored_digest",
    "verify",
]

log = logging.getLogger("antal.privacy")

RECEIPT_VERSION = 1
# every field a receipt carries; `signature` covers all the others
RECEIPT_FIELDS = (
    "version",
    "project",
    "purpose",
    "query_hash",
    "data_release",
    "answer_key",
    "privacy",
    "epsilon",
    "released_sha256",
    "time",
    "audit_seq",
    "key_id",
    "signature",
)


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
    """SHA-256 of released values: each step's count, the dimensions, each cell's key and
    count (in the current JSON form). Labels are left out: a stored answer is shown with the
    labels of the spelling asked now, and its receipt is the original one."""
    body = {
        "steps": [_count(s) for s in steps],
        "dims": list(dims),
        "cells": [[list(k), _count(c)] for k, c in cells],
    }
    return hashlib.sha256(canonical(body)).hexdigest()


def stored_digest(released: str) -> str:
    """The digest of an answer as stored by the gate (either JSON form of its counts)."""
    d = json.loads(released)
    t = int(d["params"]["threshold"])
    steps = [ReleasedCount.from_json(s, t).to_json() for s in d["steps"]]
    cells = [(k, ReleasedCount.from_json(c, t).to_json()) for k, c in d["cells"]]
    return released_digest(steps, d["dims"], cells)


def answer_digest(answer: Mapping[str, Any]) -> str:
    """The digest of an answer as the API and `antal count --json` give it."""
    dims = list(answer.get("dims") or [])
    cells = [([c.get(d) for d in dims], c) for c in answer.get("breakdown") or []]
    return released_digest(answer.get("attrition") or [], dims, cells)


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
    problems = [f"the receipt has no `{f}`" for f in RECEIPT_FIELDS if f not in receipt]
    extra = sorted(set(receipt) - set(RECEIPT_FIELDS))
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
