"""Engine → privacy: the one path by which a count computed on the extracts is released.

The engine's exact result is turned into `privacy.TrueCounts` inside the `compute`
callback that the privacy gate calls; it is never returned, logged or stored here.
"""

from __future__ import annotations

import json
from typing import Any

from antal.catalog import Catalog, Installation
from antal.engine import Backend, BreakdownTooFine, Compiled, ir, prepare
from antal.engine.domain import breakdown_domain, domain_size
from antal.engine.result import ExactResult
from antal.privacy import Answer, Gate, TrueCounts, UnknownProject

__all__ = [
    "BreakdownTooFine",
    "canonical_query",
    "count_released",
    "prepare_release",
    "release",
]


def canonical_query(checked: ir.Cohort) -> str:
    """The canonical IR as compact JSON: what the audit log records of a query."""
    return json.dumps(
        ir.to_json(ir.canonical(checked)),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def _true_counts(res: ExactResult, domain: list[tuple[Any, ...]]) -> TrueCounts:
    return TrueCounts(res.labels, res.counts, res.dims, {tuple(k): n for k, n in res.cells}, domain)


def prepare_release(
    cohort: str | ir.Cohort, installation: Installation, catalog: Catalog, purpose: str
) -> tuple[ir.Cohort, Compiled]:
    """Check and compile for release (no data read); raises before anything is charged."""
    return prepare(cohort, catalog, installation, purpose=purpose)


def release(
    checked: ir.Cohort,
    compiled: Compiled,
    installation: Installation,
    catalog: Catalog,
    gate: Gate,
    project_id: str,
    actor: str,
    backend: Backend,
) -> Answer:
    """Release a prepared cohort through the privacy gate (charging the project).

    Once the gate has charged, any failure of `compute` (a database error, the time budget
    running out) is charged like an answer and raised as `CountFailed` (fail closed)."""
    cells = domain_size(checked, catalog)
    if cells > gate.params.max_cells:
        raise BreakdownTooFine(cells, gate.params.max_cells)
    qhash = ir.ir_hash(checked)

    def compute() -> TrueCounts:
        rows = backend.run(compiled)
        res = ExactResult.from_rows(compiled, rows, qhash, installation.release)
        return _true_counts(res, breakdown_domain(checked, catalog))

    return gate.answer(
        project_id, actor, qhash, canonical_query(checked), installation.release,
        compiled.labels, compiled.dims, compute, catalog_version=catalog.version(),
    )  # fmt: skip


def count_released(
    cohort: str | ir.Cohort,
    installation: Installation,
    catalog: Catalog,
    gate: Gate,
    project_id: str,
    actor: str,
    backend: Backend,
) -> Answer:
    """Check, compile, and release through the privacy gate (charging the project)."""
    project = gate.store.project(project_id)
    if project is None:
        raise UnknownProject(project_id)
    checked, compiled = prepare_release(cohort, installation, catalog, project.purpose)
    return release(checked, compiled, installation, catalog, gate, project_id, actor, backend)
