"""Catalog routes: registers, regions, sites, code systems, search; holders publish entries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from antal.api import schemas as S
from antal.api import usecases as uc
from antal.api.availability import availability_index, code_availability
from antal.api.routes.deps import ApiError, Authed, Checking, state_of
from antal.catalog import Register, suggest
from antal.catalog.codes import search_codes

__all__ = ["router"]

router = APIRouter(tags=["catalog"])


@router.get("/v1/catalog/registers")
def registers(request: Request, u: Authed) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "title": r.title.model_dump(), "holder": r.holder, "kind": r.kind,
         "coverage": r.coverage.model_dump(), "events": sorted({p.event for p in r.provides}),
         "internal": r.is_internal}
        for r in state_of(request).catalog.registers.values()
    ]  # fmt: skip


@router.get("/v1/catalog/registers/{register_id}")
def register(
    request: Request, register_id: Annotated[str, Path(max_length=64)], u: Authed
) -> dict[str, Any]:
    catalog = state_of(request).catalog
    reg = catalog.register(register_id)
    if reg is None:
        hint = suggest(register_id, catalog.ids())
        raise ApiError(
            404,
            "not_found",
            f"unknown register '{register_id}'" + (f" - did you mean '{hint}'?" if hint else ""),
        )
    return reg.model_dump(mode="json")


@router.put("/v1/catalog/registers/{register_id}")
def publish_register(
    request: Request,
    register_id: Annotated[str, Path(pattern=r"^[a-z_][a-z0-9_]*$", max_length=64)],
    entry: Register,
    u: Checking,  # each publish runs the data check: limited like the other checks
) -> dict[str, Any]:
    """Publish a register's catalog entry: its holder (or an admin) only; checked against
    the installation's data (422 `entry_does_not_match_data`) before anything changes."""
    state = state_of(request)
    published = uc.publish_entry(
        state.catalog, state.entries, state.installation, u, register_id, entry, state.backend
    )
    return published.model_dump(mode="json")


@router.get("/v1/catalog/regions")
def regions(request: Request, u: Authed) -> list[dict[str, Any]]:
    return [r.model_dump() for r in state_of(request).catalog.regions]


@router.get("/v1/catalog/sites")
def sites(request: Request, u: Authed) -> list[dict[str, Any]]:
    return [s.model_dump() for s in state_of(request).catalog.sites]


@router.get("/v1/catalog/code-systems")
def code_systems(request: Request, u: Authed) -> list[dict[str, Any]]:
    """Each code system: the variables that hold it and when, and the code lists antal
    checks its codes against (their sources, and how far they are complete)."""
    return uc.code_systems(state_of(request).catalog)


@router.get("/v1/catalog/search")
def search(
    request: Request, u: Checking, q: Annotated[str, Query(min_length=1, max_length=100)]
) -> list[S.SearchHit]:
    words = q.lower().split()
    hits: list[S.SearchHit] = []

    def match(*texts: str | None) -> bool:
        blob = " ".join(t for t in texts if t).lower()
        return all(w in blob for w in words)

    for reg in state_of(request).catalog.registers.values():
        if match(
            reg.id, reg.title.sv, reg.title.en, reg.description.en, reg.description.sv,
            *reg.keywords,
        ):  # fmt: skip
            hits.append(
                S.SearchHit(
                    kind="register", register_id=reg.id, name=reg.id, description=reg.title.en
                )
            )
        for v in reg.variables:
            if match(reg.id, v.name, v.description, v.code_system, v.unit):
                hits.append(S.SearchHit(kind="variable", register_id=reg.id, name=v.name,
                                        description=v.description, code_system=v.code_system))  # fmt: skip
    state = state_of(request)
    codes = search_codes(q)
    released = (
        availability_index(state.catalog, state.installation, state.store, state.params)
        if codes
        else {}
    )
    for code, system, text in codes:
        hits.append(S.SearchHit(kind="code", name=code, description=text, code_system=system,
                                availability=code_availability(released, state.catalog, system,
                                                               code)))  # fmt: skip
    return hits[:200]
