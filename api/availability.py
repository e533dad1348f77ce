"""Use cases of the catalog's published side: availability counts and the HealthDCAT-AP export.

Shared by the command line (`antal catalog availability`, `antal catalog export`) and the
service (`/v1/catalog/...`): a register's availability is released through the privacy
layer once per data release (privacy/availability.py) and read back from the store; the
export (catalog/dcat.py) shows only released figures from it."""

from __future__ import annotations

import dataclasses
from typing import Any

from antal.catalog import Catalog, Installation, Register
from antal.catalog.dcat import DatasetFacts
from antal.engine import MissingRegisterError, _optout
from antal.engine.availability import (
    AvailabilityQuery,
    availability_query,
    rows_to_ages,
    rows_to_cells,
)
from antal.engine.backends import Backend
from antal.engine.limits import (
    AVAILABILITY_MAX_CELLS_PER_PERSON,
    AVAILABILITY_MAX_RECORDS_PER_PERSON,
)
from antal.privacy import PrivacyParams, Signer, Store
from antal.privacy.availability import (
    AvailabilityGate,
    TrueAvailability,
    holder_project,
    project_id_of,
    typical_ages,
)
from antal.privacy.gate import Answer

__all__ = [
    "availability_index",
    "availability_json",
    "code_availability",
    "dataset_facts",
    "release_availability",
    "stored_availability",
]


def _gate(store: Store, params: PrivacyParams, signer: Signer | None = None) -> AvailabilityGate:
    """The availability's gate: the installation's parameters with its availability ε."""
    if params.availability_epsilon is not None:
        params = params.model_copy(update={"epsilon": params.availability_epsilon})
    return AvailabilityGate(store, params, signer)


def _query(
    catalog: Catalog, installation: Installation, register_id: str, bound: int, record_bound: int
) -> AvailabilityQuery:
    """The register's availability statements as this installation counts them: without the
    age bands where it has no population register (the statement would read it)."""
    q = availability_query(catalog, register_id, bound, record_bound,
                           optout=_optout(catalog, installation))  # fmt: skip
    pop = catalog.population
    if q.ages_tree is not None and pop is not None and pop.id not in installation.sources:
        q = dataclasses.replace(q, ages_tree=None, registers=q.registers - {pop.id})
    return q


# identities by (catalog version, register, opt-out register, bounds, population present):
# building one renders the register's statements, too slow to repeat on every search
_IDENTITIES: dict[tuple[str, str, str | None, int, int, bool], str] = {}


def _identity(
    catalog: Catalog, installation: Installation, register_id: str, bound: int, record_bound: int
) -> str:
    pop = catalog.population
    key = (catalog.version(), register_id, _optout(catalog, installation), bound, record_bound,
           pop is not None and pop.id in installation.sources)  # fmt: skip
    if key not in _IDENTITIES:
        if len(_IDENTITIES) > 1_000:  # catalogs published over a long-running service
            _IDENTITIES.clear()
        _IDENTITIES[key] = _query(catalog, installation, register_id, bound, record_bound).identity
    return _IDENTITIES[key]


def release_availability(
    catalog: Catalog,
    installation: Installation,
    store: Store,
    params: PrivacyParams,
    backend: Backend,
    register_id: str,
    actor: str,
    signer: Signer | None = None,
    *,
    bound: int = AVAILABILITY_MAX_CELLS_PER_PERSON,
    record_bound: int = AVAILABILITY_MAX_RECORDS_PER_PERSON,
) -> Answer:
    """Release one register's availability for the installation's data release, charged to
    the catalog budget of the holder the installation assigns it; the stored answer (free,
    not computed) if it was released."""
    reg = catalog.register(register_id)
    if reg is None:
        raise KeyError(register_id)
    q = _query(catalog, installation, register_id, bound, record_bound)
    missing = installation.missing(set(q.registers))
    if missing:  # refused before anything is charged
        raise MissingRegisterError(missing)
    pid = holder_project(store, catalog.assigned_holder(reg.id), reg.id, params.default_budget)

    def compute() -> TrueAvailability:
        cells = rows_to_cells(backend.run(q.cells()))  # type: ignore[arg-type]
        ((persons, records),) = backend.run(q.totals())  # type: ignore[arg-type]
        ages_q = q.ages()
        ages = rows_to_ages(backend.run(ages_q)) if ages_q is not None else None  # type: ignore[arg-type]
        return TrueAvailability(int(persons or 0), int(records or 0), cells, bound, record_bound,
                                ages)  # fmt: skip

    return _gate(store, params, signer).release(pid, actor, q.identity, q.description,
                                                installation.release, compute)  # fmt: skip


def stored_availability(
    catalog: Catalog,
    installation: Installation,
    store: Store,
    params: PrivacyParams,
    register_id: str,
    *,
    bound: int = AVAILABILITY_MAX_CELLS_PER_PERSON,
    record_bound: int = AVAILABILITY_MAX_RECORDS_PER_PERSON,
) -> Answer | None:
    """The register's released availability for this data release, if released: read only."""
    reg = catalog.register(register_id)
    if reg is None or reg.id not in installation.sources:
        return None
    identity = _identity(catalog, installation, register_id, bound, record_bound)
    return _gate(store, params).stored_release(
        project_id_of(catalog.assigned_holder(reg.id), reg.id), identity, installation.release
    )


def availability_json(answer: Answer, register: Register) -> dict[str, Any]:
    """The released availability as the API and `--json` show it."""
    meta = answer.params
    persons, records, *bands = answer.steps
    return {
        "register": register.id,
        "release": answer.release,
        "persons": persons.to_json(),
        "records": records.to_json(),
        "ages": [{"band": f"{5 * i}-{5 * i + 4}", **b.to_json()} for i, b in enumerate(bands)],
        "cells": [
            dict(zip(("variable", "level", "value", "year"), key, strict=True), **c.to_json())
            for key, c in answer.cells
        ],
        "privacy": {k: meta[k] for k in ("epsilon", "threshold", "rounding", "alpha") if k in meta},
        "epsilon_charged": answer.epsilon_charged,
        "stored_answer": answer.stored,
        "note": f"cells not listed are below {meta.get('threshold')} or absent",
    }


def dataset_facts(answer: Answer | None) -> DatasetFacts:
    """What the export may say from a released availability: persons and records, rounded
    and protected (None when suppressed); nothing without a release."""
    if answer is None:
        return DatasetFacts()
    persons, records, *bands = answer.steps
    ages = typical_ages(list(bands)) if bands else None
    return DatasetFacts(persons=persons.value, records=records.value, release=answer.release,
                        min_age=ages[0] if ages else None, max_age=ages[1] if ages else None)  # fmt: skip


def availability_index(
    catalog: Catalog, installation: Installation, store: Store, params: PrivacyParams
) -> dict[str, Answer]:
    """Every register's released availability for this data release (read only)."""
    out: dict[str, Answer] = {}
    if not any(p.id.startswith("catalog:") for p in store.projects()):
        return out  # no holder has released any: nothing to read
    for rid in catalog.ids():
        answer = stored_availability(catalog, installation, store, params, rid)
        if answer is not None:
            out[rid] = answer
    return out


def code_availability(
    released: dict[str, Answer], catalog: Catalog, system: str, code: str
) -> list[dict[str, Any]]:
    """For a code search hit: per register holding the code system whose availability was
    released, the persons with the code (a three-character code: its group) by year; cells
    not listed are below the threshold."""
    out: list[dict[str, Any]] = []
    level = "prefix" if len(code) == 3 else "code"
    for rid, answer in released.items():
        reg = catalog.register(rid)
        variables = [v.name for v in reg.variables if v.code_system == system] if reg else []
        if not variables:
            continue
        years = [
            {"variable": key[0], "year": key[3], **c.to_json()}
            for key, c in answer.cells
            if key[0] in variables and key[1] == level and key[2] == code
        ]
        out.append({"register": rid, "release": answer.release, "level": level,
                    "by_year": years})  # fmt: skip
    return out
