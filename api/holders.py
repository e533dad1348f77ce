"""The use cases of registry holders: publishing an entry from its YAML or JSON text, its
versions, the holder's view of its registers, and what the catalog says of each
register's data release. Re-exported by `antal.api.usecases` (every face calls them there).

The holder's view shows, for each of the holder's own registers, the projects approved for
it and their purposes, the ε spent on queries that read it and the audit entries touching
it (queries, approvals, published versions): never an answer. A holder sees only its own
registers; an admin sees every register.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from antal.api.accounts import CatalogEntries, EntryVersion, User
from antal.api.usecases import EntryMismatch, Forbidden, NotFound, publish_entry
from antal.catalog import Catalog, Installation, suggest
from antal.catalog.entries import EntryInvalid, Format, parse_entry
from antal.engine import Backend, currency_of
from antal.privacy import Store

__all__ = [
    "EntryRejected",
    "catalog_releases",
    "entry_version",
    "entry_versions",
    "holder_overview",
    "holder_registers",
    "may_publish",
    "publish_text",
]


class EntryRejected(EntryMismatch):
    """An entry's text that cannot be read or does not validate (answered 422 like an entry
    the data does not bear out); details: the field's path, and its line and column."""

    code = "entry_invalid"


def may_publish(user: User, register_id: str) -> None:
    """Its holder or an admin; anyone else is `Forbidden`, whether the register exists or not."""
    if user.role != "admin" and not (user.role == "holder" and register_id in user.registers):
        raise Forbidden(f"only the holder of '{register_id}' or an admin may publish its entry")


def publish_text(
    catalog: Catalog,
    entries: CatalogEntries,
    installation: Installation,
    user: User,
    text: str | bytes,
    fmt: Format,
    register_id: str | None = None,
    backend: Backend | None = None,
) -> EntryVersion:
    """Publish an entry from its YAML or JSON text (`register_id`: the one the request
    names; the entry's own id otherwise). Who may publish is checked before the text is
    read; then the text (`EntryRejected`: where it is wrong), then the data."""
    if register_id is not None:
        may_publish(user, register_id)
    try:
        entry = parse_entry(text, fmt)
    except EntryInvalid as e:
        where = e.field or "the entry"
        at = f" (line {e.line}, column {e.column})" if e.line is not None else ""
        raise EntryRejected(f"{where}{at}: {e.message}", e.to_json()) from None
    return publish_entry(
        catalog, entries, installation, user, register_id or entry.id, entry, backend
    )


def _known(catalog: Catalog, entries: CatalogEntries, register_id: str) -> list[EntryVersion]:
    versions = entries.versions(register_id)
    if not versions and catalog.register(register_id) is None:
        hint = suggest(register_id, catalog.ids())
        raise NotFound(
            f"unknown register '{register_id}'" + (f" - did you mean '{hint}'?" if hint else "")
        )
    return versions


def entry_versions(
    catalog: Catalog, entries: CatalogEntries, register_id: str
) -> list[EntryVersion]:
    """Every published version of a register's entry, oldest first (empty: researchers see
    the entry of the installation's catalog files, never published through the service)."""
    return _known(catalog, entries, register_id)


def entry_version(
    catalog: Catalog, entries: CatalogEntries, register_id: str, n: int
) -> EntryVersion:
    versions = _known(catalog, entries, register_id)
    found = next((v for v in versions if v.version == n), None)
    if found is None:
        have = f"versions 1 to {len(versions)}" if versions else "no published version"
        raise NotFound(f"register '{register_id}' has no version {n} ({have})")
    return found


def holder_registers(user: User, catalog: Catalog, register_id: str | None = None) -> list[str]:
    """The registers whose view this user may see: a holder's own, every one for an admin;
    `register_id` alone when given (Forbidden if it is not the user's)."""
    if user.role == "admin":
        mine = catalog.ids()
    elif user.role == "holder":
        mine = sorted(user.registers)
    else:
        raise Forbidden("the holder's view is for registry holders (and admins)")
    if register_id is None:
        return mine
    if register_id not in mine:
        # the same answer whether the register exists or not
        raise Forbidden(f"you are not the holder of '{register_id}'")
    return [register_id]


def holder_overview(
    store: Store,
    catalog: Catalog,
    user: User,
    register_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Per register of the holder's: the projects approved for it (or that spent ε on it)
    with their purposes, the ε spent on queries reading it, and its newest `limit` audit
    entries, without what was released."""
    projects = {p.id: p for p in store.projects()}
    out = []
    for rid in holder_registers(user, catalog, register_id):
        touching = store.audit_touching(rid)
        spent: dict[str, float] = defaultdict(float)
        queries: dict[str, int] = defaultdict(int)
        for e in touching:
            if e.project_id and e.action == "charge":
                spent[e.project_id] += e.epsilon
                queries[e.project_id] += 1
        rows = []
        for pid in sorted({p.id for p in projects.values() if rid in p.registers} | set(spent)):
            p = projects.get(pid)
            rows.append({
                "id": pid, "title": p.title if p else None, "purpose": p.purpose if p else None,
                "approved": bool(p and rid in p.registers),
                "epsilon_spent": round(spent.get(pid, 0.0), 12), "queries": queries.get(pid, 0),
            })  # fmt: skip
        reg = catalog.register(rid)
        out.append({
            "register": rid,
            "title": reg.title.en if reg else None,
            "projects": rows,
            "epsilon_spent": round(sum(spent.values()), 12),
            "audit_entries": len(touching),
            # every field of an entry but the released values: the holder sees what was
            # asked, by whom and at what cost, never an answer
            "audit": [
                {"seq": e.seq, "ts": e.ts, "actor": e.actor, "project_id": e.project_id,
                 "action": e.action, "query_hash": e.query_hash, "query": e.query,
                 "epsilon": e.epsilon}
                for e in touching[-limit:]
            ],
        })  # fmt: skip
    return out


def catalog_releases(
    catalog: Catalog, installation: Installation | None
) -> dict[str, dict[str, Any]]:
    """Per register, what the catalog says of its data in this installation: the data
    release (its id and extraction date), the period the extract covers, how far its
    records are final (the reporting lag). Facts the installation states, never the rows."""
    cur = currency_of(catalog, installation, catalog.ids())
    out = {}
    for rid, c in cur.registers.items():
        held = installation is not None and rid in installation.sources
        out[rid] = {
            "release": cur.release if held else None,
            "extracted": cur.extracted.isoformat() if held and cur.extracted else None,
            "held": held,
            "extract": {
                "start": c.start.isoformat() if held else None,
                "through": c.through.isoformat() if held and c.through else None,
            },
            "complete_through": (
                c.complete_through.isoformat() if held and c.complete_through else None
            ),
            "coverage": {"from_year": c.coverage_from, "to_year": c.coverage_to},
            "lag_months": c.lag_months,
            "finalised": c.finalised,
        }
    return out
