"""Users, bearer tokens, roles and project membership, in the same transactional store
as the privacy ledger. Tokens are stored only as SHA-256 hashes. The tables are defined
with the store's in antal.privacy.schema and created when the store is opened."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from antal.catalog import Register
from antal.catalog.entries import entry_changes, summarize_changes
from antal.catalog.vocabulary import ROLES, Role
from antal.privacy.errors import AlreadyExists, InvalidValue, UnknownProject, UnknownUser
from antal.privacy.store import Store, now

__all__ = ["Accounts", "CatalogEntries", "EntryVersion", "Role", "User"]


@dataclass(frozen=True)
class User:
    id: str
    name: str
    role: Role
    registers: tuple[str, ...]  # a holder's own registers


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, store: Store) -> None:
        self.store = store  # its tables exist: the store creates antal.privacy.schema's

    def create_user(
        self, uid: str, name: str, role: Role, registers: tuple[str, ...] = (), actor: str = "admin"
    ) -> User:
        if role not in ROLES:
            raise InvalidValue(f"role is one of {', '.join(ROLES)}, not {role!r}")
        with self.store.transaction() as tx:
            if tx.one("SELECT id FROM users WHERE id = %s", (uid,)) is not None:
                raise AlreadyExists("user", uid)
            tx.execute(
                "INSERT INTO users (id, name, role, registers, created) VALUES (%s, %s, %s, %s, %s)",
                (uid, name, role, ",".join(sorted(registers)), now()),
            )
            tx.audit(actor, None, "create_user", None, f"{uid} {role}", 0.0, None)
        return User(uid, name, role, tuple(sorted(registers)))

    def user(self, uid: str) -> User | None:
        with self.store.transaction(write=False) as tx:
            row = tx.one("SELECT id, name, role, registers FROM users WHERE id = %s", (uid,))
        return _user(row) if row else None

    def users(self) -> list[User]:
        with self.store.transaction(write=False) as tx:
            return [
                _user(r) for r in tx.all("SELECT id, name, role, registers FROM users ORDER BY id")
            ]

    def issue_token(self, uid: str, label: str = "", actor: str = "admin") -> str:
        """A new bearer token for a user; only its hash is kept, so it is shown once."""
        token = "antal_" + secrets.token_urlsafe(32)
        with self.store.transaction() as tx:
            if tx.one("SELECT id FROM users WHERE id = %s", (uid,)) is None:
                raise UnknownUser(uid)
            tx.execute(
                "INSERT INTO tokens (hash, user_id, label, created) VALUES (%s, %s, %s, %s)",
                (_hash(token), uid, label, now()),
            )
            tx.audit(actor, None, "issue_token", None, uid, 0.0, None)
        return token

    def revoke_tokens(self, uid: str, actor: str = "admin") -> int:
        """Revoke every live token of a user (audited); how many were revoked."""
        with self.store.transaction() as tx:
            if tx.one("SELECT id FROM users WHERE id = %s", (uid,)) is None:
                raise UnknownUser(uid)
            live = tx.one(
                "SELECT COUNT(*) FROM tokens WHERE user_id = %s AND revoked IS NULL", (uid,)
            )[0]
            tx.execute(
                "UPDATE tokens SET revoked = %s WHERE user_id = %s AND revoked IS NULL",
                (now(), uid),
            )
            tx.audit(actor, None, "revoke_tokens", None, f"{uid} {live}", 0.0, None)
        return int(live)

    def authenticate(self, token: str) -> User | None:
        with self.store.transaction(write=False) as tx:
            row = tx.one(
                "SELECT u.id, u.name, u.role, u.registers FROM tokens t JOIN users u ON u.id = t.user_id "
                "WHERE t.hash = %s AND t.revoked IS NULL",
                (_hash(token),),
            )
        return _user(row) if row else None

    def add_member(self, pid: str, uid: str, actor: str = "admin") -> None:
        with self.store.transaction() as tx:
            if tx.one("SELECT id FROM projects WHERE id = %s", (pid,)) is None:
                raise UnknownProject(pid)
            if tx.one("SELECT id FROM users WHERE id = %s", (uid,)) is None:
                raise UnknownUser(uid)
            if (
                tx.one("SELECT 1 FROM members WHERE project_id = %s AND user_id = %s", (pid, uid))
                is None
            ):
                tx.execute("INSERT INTO members (project_id, user_id) VALUES (%s, %s)", (pid, uid))
                tx.audit(actor, pid, "add_member", None, uid, 0.0, None)

    def is_member(self, pid: str, uid: str) -> bool:
        with self.store.transaction(write=False) as tx:
            return (
                tx.one("SELECT 1 FROM members WHERE project_id = %s AND user_id = %s", (pid, uid))
                is not None
            )

    def projects_of(self, uid: str) -> list[str]:
        with self.store.transaction(write=False) as tx:
            return [
                r[0]
                for r in tx.all(
                    "SELECT project_id FROM members WHERE user_id = %s ORDER BY project_id", (uid,)
                )
            ]


def _user(row: tuple[str, str, str, str]) -> User:
    uid, name, role, registers = row
    return User(uid, name, role, tuple(r for r in registers.split(",") if r))  # type: ignore[arg-type]


@dataclass(frozen=True)
class EntryVersion:
    """One published version of a register's entry: who published it, when, and what
    changed from the version before (antal.catalog.entries.entry_changes)."""

    register: str
    version: int
    entry: Register
    changes: list[dict[str, Any]]
    published_by: str
    published: str
    audit_seq: int

    def to_json(self, *, with_entry: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "register": self.register, "version": self.version,
            "published_by": self.published_by, "published": self.published,
            "audit_seq": self.audit_seq, "summary": summarize_changes(self.changes),
            "changes": self.changes,
        }  # fmt: skip
        if with_entry:
            out["entry"] = self.entry.model_dump(mode="json")
        return out


_VERSION_COLUMNS = "register_id, version, body, changes, published_by, published, audit_seq"


def _version(row: Any) -> EntryVersion:
    rid, n, body, changes, by, ts, seq = row
    return EntryVersion(rid, int(n), Register.model_validate_json(body), json.loads(changes),
                        by, ts, int(seq))  # fmt: skip


class CatalogEntries:
    """Register entries published by their holders through the API (they win over files),
    and every version of each: a publish is a new version, stored with its audit entry in
    one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store  # its tables exist: the store creates antal.privacy.schema's

    def put(self, entry: Register, actor: str, base: Register | None = None) -> EntryVersion:
        """Publish `entry` as its register's next version; `base` is the entry researchers
        saw before any was published (the catalog's files), the first version's diff is
        from it. An entry equal to the current version is not a change: the current
        version is returned and nothing is written."""
        body = entry.model_dump_json()
        with self.store.transaction() as tx:
            last = tx.one(
                f"SELECT {_VERSION_COLUMNS} FROM catalog_versions WHERE register_id = %s "
                "ORDER BY version DESC LIMIT 1",
                (entry.id,),
            )
            cur = tx.one("SELECT body FROM catalog_entries WHERE id = %s", (entry.id,))
            before = (
                _version(last).entry
                if last
                else (Register.model_validate_json(cur[0]) if cur else base)
            )
            changes = entry_changes(before, entry)
            if last is not None and not changes:
                return _version(last)
            n = (int(last[1]) if last else 0) + 1
            ts = now()
            what = json.dumps(
                {"register": entry.id, "version": n, "summary": summarize_changes(changes)},
                ensure_ascii=False,
            )
            seq, _ = tx.audit(actor, None, "publish_register", None, what, 0.0, None, (entry.id,))
            tx.execute(
                f"INSERT INTO catalog_versions ({_VERSION_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (entry.id, n, body, json.dumps(changes, ensure_ascii=False), actor, ts, seq),
            )
            if cur is None:
                tx.execute(
                    "INSERT INTO catalog_entries (id, body, updated_by, updated) VALUES (%s, %s, %s, %s)",
                    (entry.id, body, actor, ts),
                )
            else:
                tx.execute(
                    "UPDATE catalog_entries SET body = %s, updated_by = %s, updated = %s WHERE id = %s",
                    (body, actor, ts, entry.id),
                )
        return EntryVersion(entry.id, n, entry, changes, actor, ts, seq)

    def all(self) -> list[Register]:
        with self.store.transaction(write=False) as tx:
            rows = tx.all("SELECT body FROM catalog_entries ORDER BY id")
        return [Register.model_validate_json(r[0]) for r in rows]

    def versions(self, register_id: str) -> list[EntryVersion]:
        """Every published version of a register's entry, oldest first."""
        with self.store.transaction(write=False) as tx:
            rows = tx.all(
                f"SELECT {_VERSION_COLUMNS} FROM catalog_versions WHERE register_id = %s "
                "ORDER BY version",
                (register_id,),
            )
        return [_version(r) for r in rows]

    def version(self, register_id: str, n: int) -> EntryVersion | None:
        with self.store.transaction(write=False) as tx:
            row = tx.one(
                f"SELECT {_VERSION_COLUMNS} FROM catalog_versions WHERE register_id = %s "
                "AND version = %s",
                (register_id, n),
            )
        return _version(row) if row else None
