"""Catalog routes: registers, regions, sites, code systems, search; holders publish entries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from antal.api import schemas as S
from antal.api import usecases as uc
from antal.api.availability import availability_index, code_availability
from antal.api.routes.deps import ApiError, Authed, Checking, state_of
from antal.catalog import suggest
from antal.catalog.codes import search_codes
from antal.catalog.entries import Format

__all__ = ["router"]

router = APIRouter(tags=["catalog"])


@router.get("/v1/catalog/registers")
def registers(request: Request, u: Authed) -> list[dict[str, Any]]:
    """Every register, with `data`: this installation's release of it (release id and
    extraction date, the period its extract covers, how far its records are final)."""
    state = state_of(request)
    data = uc.catalog_releases(state.catalog, state.installation)
    return [
        {"id": r.id, "title": r.title.model_dump(), "holder": r.holder, "kind": r.kind,
         "coverage": r.coverage.model_dump(), "events": sorted({p.event for p in r.provides}),
         "internal": r.is_internal, "data": data.get(r.id)}
        for r in state.catalog.registers.values()
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


# the media types an entry may be sent as, and how each is read
_MEDIA: dict[str, Format] = {
    "application/json": "json",
    "application/yaml": "yaml",
    "application/x-yaml": "yaml",
    "text/yaml": "yaml",
    "text/x-yaml": "yaml",
}
_ENTRY_BODY = {
    "requestBody": {
        "required": True,
        "description": "The register's catalog entry (catalog/registers/*.yaml), as YAML or JSON.",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "object"}},
        },
    }
}
_VERSION_ERRORS: dict[int | str, dict[str, Any]] = {
    415: {"model": S.ErrorBody, "description": "neither JSON nor YAML"},
}


@router.put(
    "/v1/catalog/registers/{register_id}", openapi_extra=_ENTRY_BODY, responses=_VERSION_ERRORS
)
async def publish_register(
    request: Request,
    register_id: Annotated[str, Path(pattern=r"^[a-z_][a-z0-9_]*$", max_length=64)],
    u: Checking,  # each publish runs the data check: limited like the other checks
) -> dict[str, Any]:
    """Publish a register's catalog entry, as JSON or YAML (`Content-Type`): its holder (or
    an admin) only. Read with a safe loader and bounded (422 `entry_invalid` with the
    field, line and column), then checked against the installation's data (422
    `entry_does_not_match_data`) before anything changes. Answers the new version: its
    number, who, when and what changed (an entry equal to the current one: that version)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = _MEDIA.get(media)
    if fmt is None:
        raise ApiError(415, "unsupported_media_type",
                       f"send the entry as application/json or application/yaml, not {media or 'nothing'}",
                       {"accepted": sorted(_MEDIA)})  # fmt: skip
    body = await request.body()
    state = state_of(request)
    version = await run_in_threadpool(
        uc.publish_text, state.catalog, state.entries, state.installation, u, body, fmt,
        register_id, state.backend,
    )  # fmt: skip
    return version.to_json()


@router.get("/v1/catalog/registers/{register_id}/versions")
def register_versions(
    request: Request, register_id: Annotated[str, Path(max_length=64)], u: Authed
) -> list[dict[str, Any]]:
    """Every published version of a register's entry, oldest first: its number, who
    published it, when, and what changed (the entries themselves: `versions/{n}`)."""
    state = state_of(request)
    return [
        v.to_json(with_entry=False)
        for v in uc.entry_versions(state.catalog, state.entries, register_id)
    ]


@router.get("/v1/catalog/registers/{register_id}/versions/{version}")
def register_version(
    request: Request,
    register_id: Annotated[str, Path(max_length=64)],
    version: Annotated[int, Path(ge=1, le=1_000_000)],
    u: Authed,
) -> dict[str, Any]:
    """One published version of a register's entry, the entry as it was then included."""
    state = state_of(request)
    return uc.entry_version(state.catalog, state.entries, register_id, version).to_json()


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
