"""The catalog's published side: HealthDCAT-AP export and availability counts (issue 16)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from antal.api.availability import (
    availability_json,
    dataset_facts,
    release_availability,
    stored_availability,
)
from antal.api.routes.deps import ApiError, Authed, Checking, state_of
from antal.catalog import suggest
from antal.catalog.dcat import NS_PATTERN

__all__ = ["router"]

router = APIRouter(tags=["catalog"])

RegisterId = Annotated[str, Path(pattern=r"^[a-z_][a-z0-9_]*$", max_length=64)]
_ACCEPT = {"text/turtle": "turtle", "application/ld+json": "jsonld", "application/json": "jsonld"}


def _register(request: Request, register_id: str) -> Any:
    catalog = state_of(request).catalog
    reg = catalog.register(register_id)
    if reg is None:
        hint = suggest(register_id, catalog.ids())
        raise ApiError(404, "not_found", f"unknown register '{register_id}'"
                       + (f" - did you mean '{hint}'?" if hint else ""))  # fmt: skip
    return reg


@router.get(
    "/v1/catalog/export",
    responses={200: {"content": {"text/turtle": {}, "application/ld+json": {}}}},
)
def export(
    request: Request,
    u: Checking,  # builds a graph: limited like the other checks
    register: Annotated[str | None, Query(max_length=64)] = None,
    format: Annotated[str | None, Query(pattern="^(turtle|jsonld)$")] = None,
    ns: Annotated[str | None, Query(max_length=200, pattern=NS_PATTERN)] = None,
) -> Response:
    """The catalog (or `register`) as HealthDCAT-AP: Turtle or JSON-LD by `format`, else by
    the Accept header (`text/turtle`, `application/ld+json`; default Turtle). Persons and
    records appear only from a released availability; `ns` moves the provisional
    healthdcatap namespace."""
    from antal.catalog.dcat import (
        HEALTHDCATAP_NS,
        MEDIA_TYPES,
        catalog_graph,
        dataset_graph,
        serialize,
    )

    state = state_of(request)
    fmt = format
    if fmt is None:
        accept = request.headers.get("accept", "")
        fmt = next((f for media, f in _ACCEPT.items() if media in accept), "turtle")
    base = str(request.base_url).rstrip("/")
    cat = state.catalog

    def facts(rid: str) -> Any:
        return dataset_facts(stored_availability(cat, state.installation, state.store,
                                                 state.params, rid))  # fmt: skip

    if register is not None:
        reg = _register(request, register)
        g = dataset_graph(reg, base, facts(reg.id), ns=ns or HEALTHDCATAP_NS)
    else:
        g = catalog_graph(list(cat.registers.values()), base,
                          {rid: facts(rid) for rid in cat.ids()}, ns=ns or HEALTHDCATAP_NS)  # fmt: skip
    return Response(serialize(g, fmt), media_type=MEDIA_TYPES[fmt])  # type: ignore[index]


@router.get("/v1/catalog/registers/{register_id}/availability")
def availability(request: Request, register_id: RegisterId, u: Authed) -> dict[str, Any]:
    """The register's availability counts released for this data release (404 until its
    holder has released them): persons per code, code group and variable, by year."""
    state = state_of(request)
    reg = _register(request, register_id)
    answer = stored_availability(state.catalog, state.installation, state.store, state.params,
                                 reg.id)  # fmt: skip
    if answer is None:
        raise ApiError(404, "not_found", f"no availability of '{reg.id}' released for "
                       f"data release {state.installation.release}")  # fmt: skip
    return availability_json(answer, reg)


@router.post("/v1/catalog/registers/{register_id}/availability")
def release(request: Request, register_id: RegisterId, u: Checking) -> dict[str, Any]:
    """Release the register's availability for this data release (its holder or an admin):
    charged once to the holder's catalog budget; again, the stored answer, free."""
    state = state_of(request)
    reg = _register(request, register_id)
    if u.role != "admin" and not (u.role == "holder" and reg.id in u.registers):
        raise ApiError(
            403,
            "forbidden",
            f"only the holder of '{reg.id}' or an admin may release its availability",
        )
    answer = release_availability(state.catalog, state.installation, state.store, state.params,
                                  state.backend, reg.id, u.id, state.signer)  # fmt: skip
    return availability_json(answer, reg)
