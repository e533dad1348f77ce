"""The only way a number leaves antal: charge, noise, suppress, store, audit.

    gate = Gate(store, params)
    answer = gate.answer(project_id, actor, query_hash, query, release, labels, dims, compute)

What a project is charged and told depends only on its own history:

- asked before by this project (same canonical query, data release, catalog version,
  privacy parameters and purpose): its stored answer again, free (`stored`);
- otherwise ε is charged and committed *before* `compute` runs (fail closed): an error or
  a timeout while computing is charged like an answer and answered with `CountFailed`,
  whose text says nothing about the data. If another project already released this
  query, the project receives that same released value (so that asking again never
  averages the noise away), but pays and waits as for a fresh release, and `stored` is
  false.

A cohort with `report by` tables costs ε for its attrition and ε for all its tables
together (privacy/mechanism.py).

**Gaussian noise** (`PrivacyParams.noise`, zCDP): a release costs ρ instead, and the ledger
adds ρ: a project's spent ε is its pure ε charges plus the ε at the installation's δ of the
sum of its ρ charges (OpenDP's conversion), so budgets, charges and what is left are stated
in ε as under Laplace noise, and a charge is what the ask adds to the project's total (ε, δ).
The first ask of a project costs the most, later ones less (ρ composes like a square). Asked with an `attrition_hash` (the cohort without its
tables), the attrition is stored under its own key too: a project that asks a new
breakdown of a cohort whose attrition it was released before is charged only the
breakdown, receives its stored attrition, and the new tables agree with that total.

`compute` returns `TrueCounts`, which never leave this module.

Every answer carries a receipt signed by the installation (antal.privacy.receipts): made
when the project first receives the answer, in the transaction of its audit entry (whose
sequence number and time it names), and stored, so that a stored answer comes back with
its original receipt, signature and all. A receipt signs the question as it was shown (the
cohort's title and step labels, which the query hash leaves out) and every value shown, so
the same answer asked with other names (a title or labels renamed) is a stored answer still,
free, with a receipt of its own for those names, made then and kept likewise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from antal.privacy.errors import BudgetExceeded, CountFailed, UnknownProject
from antal.privacy.mechanism import (
    ReleasedCount,
    ReleasedTable,
    TrueCounts,
    release_attrition,
    release_tables,
)
from antal.privacy.noise import epsilon_of_rho, rho_of_epsilon
from antal.privacy.params import MECHANISM, PrivacyParams
from antal.privacy.receipts import RECEIPT_VERSION, Signer, answer_digest, shown_key
from antal.privacy.sites import is_site_table, site_marks
from antal.privacy.store import Store, Tx, now

__all__ = [
    "ATTEMPT",
    "Answer",
    "Gate",
    "Quote",
    "answer_from_json",
    "answer_key",
    "query_cost",
    "release",
]

log = logging.getLogger("antal.privacy")

# prefix of the key under which a charge is recorded until its answer is stored
ATTEMPT = "attempt:"


@dataclass(frozen=True)
class Answer:
    """A released answer: everything in it may be shown to the user."""

    labels: tuple[str, ...]
    steps: tuple[ReleasedCount, ...]
    dims: tuple[str, ...]
    cells: tuple[tuple[tuple[Any, ...], ReleasedCount], ...]
    params: dict[str, Any]
    epsilon_charged: float  # by this request (0 for a stored answer)
    epsilon_of_answer: float  # what the answer cost when it was first released
    budget_left: float
    query_hash: str
    release: str
    purpose: str
    key: str
    stored: bool  # returned from the store (asked before)
    scales: dict[str, float]
    signed_receipt: dict[str, Any] = field(default_factory=dict)
    tables: tuple[ReleasedTable, ...] = ()  # every released table (the first is dims/cells)
    # the names of coded values, per column (`region` -> "18" -> "Örebro län"): shown only
    names: dict[str, dict[Any, str | None]] = field(default_factory=dict)
    # how the attrition was released: `partition` (its buckets), or `cumulative` for an
    # answer stored before issue 23 (its steps at scale k/ε, shown labelled as such)
    mechanism: str = MECHANISM
    noise: str = "laplace"  # the noise it was released under (antal.privacy.noise)
    rho_of_answer: float | None = None  # gaussian noise: the ρ of its release
    # the most units one person adds to its counts: 1 (persons), or K for the episodes of
    # an `index each` cohort, whose noise is K times a person's at the same ε
    contribution: int = 1
    unit: str = "persons"  # what the counts count: persons, or episodes (`index each`)
    # a stored answer as the gate keeps it shown (`Gate._shown_as`): the JSON text of all
    # but the charge, the budget left, `stored_answer` and the receipt, made once (parsed
    # for each `to_json`: every caller gets a tree of its own)
    shown_json: str | None = field(default=None, compare=False, repr=False)

    def guarantee(self) -> dict[str, Any]:
        """What the release of this answer alone guarantees: pure ε (laplace), or ρ-zCDP and
        the (ε, δ) it implies (gaussian). What it adds to a project is the `epsilon` charged."""
        # the same keys and types whatever the noise, as the API's schema states them (the
        # signature covers the JSON as shown)
        gaussian = self.noise != "laplace" and self.rho_of_answer is not None
        # what the counts count, signed: an answer in episodes cannot be shown as persons
        return {"noise": self.noise,
                "rho": float(self.rho_of_answer) if gaussian else None,  # type: ignore[arg-type]
                "epsilon": float(self.epsilon_of_answer),
                "delta": float(self.params["delta"]) if gaussian else 0.0,
                "unit": self.unit, "contribution": int(self.contribution)}  # fmt: skip

    @property
    def count(self) -> ReleasedCount:
        return self.steps[-1]

    @property
    def all_cells_suppressed(self) -> bool:
        return bool(self.cells) and all(c.suppressed for _, c in self.cells)

    def row(self, dims: tuple[str, ...], key: tuple[Any, ...]) -> dict[str, Any]:
        """A cell's values, each coded one followed by its `<column>_name`."""
        out: dict[str, Any] = {}
        for d, v in zip(dims, key, strict=True):
            out[d] = v
            if d in self.names:
                out[f"{d}_name"] = self.names[d].get(v)
        return out

    def receipt(self) -> dict[str, Any]:
        """The signed receipt (antal.privacy.receipts): the privacy parameters, threshold
        and rounding included, are stated there once for the whole answer."""
        return dict(self.signed_receipt)

    def rows(
        self, dims: tuple[str, ...], cells: tuple[tuple[tuple[Any, ...], ReleasedCount], ...]
    ) -> list[dict[str, Any]]:
        """A table's cells as JSON rows; a site table's with its marks (privacy/sites.py)."""
        marks = site_marks(cells, int(self.params["threshold"])) if is_site_table(dims) else {}
        out = []
        for key, c in cells:
            row = {**self.row(dims, key), **c.to_json()}
            if key in marks:
                row["near_threshold"], row["rank_uncertain"] = marks[key]
            out.append(row)
        return out

    def to_json(self) -> dict[str, Any]:
        if self.shown_json is not None:
            return {**json.loads(self.shown_json), "epsilon_charged": self.epsilon_charged,
                    "budget_left": self.budget_left, "stored_answer": self.stored,
                    "receipt": self.receipt()}  # fmt: skip
        out: dict[str, Any] = {
            **self.count.to_json(),
            "dims": list(self.dims),
            "attrition": [
                {"label": lab, **c.to_json()}
                for lab, c in zip(self.labels, self.steps, strict=True)
            ],
            "breakdown": self.rows(self.dims, self.cells),
            "epsilon_charged": self.epsilon_charged,
            "budget_left": self.budget_left,
            "stored_answer": self.stored,
            "mechanism": self.mechanism,
            "noise": self.noise,
            "unit": self.unit,
            "contribution": self.contribution,
            "receipt": self.receipt(),
        }
        if self.mechanism != MECHANISM:
            out["mechanism_note"] = (
                "released before antal measured the attrition as a partition: each step's "
                "noise is that of all the steps together, so its interval is wider"
            )
        if self.all_cells_suppressed:
            out["breakdown_note"] = (
                f"every cell of the breakdown is below {self.params['threshold']}: none can be shown"
            )
        if len(self.tables) > 1:  # several tables (or roll-up levels): every one, in order
            out["tables"] = [
                {
                    "dims": list(t.dims),
                    "report": t.report,
                    "level": t.level,
                    "breakdown": self.rows(t.dims, t.cells),
                }
                for t in self.tables
            ]
        return out


@dataclass(frozen=True)
class Quote:
    """What asking a query would cost a project now; nothing read, charged or released.

    The same rule as `Gate.answer`: free when this project asked it before (same key),
    else ε (2ε with a breakdown), whatever other projects asked."""

    project: str
    epsilon: float  # what asking now would charge
    stored: bool  # this project asked it before: its stored answer, free
    budget_left: float  # now
    query_hash: str
    answer_key: str
    full_price: float  # an ask of this shape that reuses nothing: ε, or 2ε with tables
    # gaussian noise: ρ of this ask, of an ask of this shape, and the ρ the budget has left
    # (the ε of an ask depends on what the project spent: asks are counted in ρ)
    rho: float | None = None
    rho_full: float | None = None
    rho_left: float | None = None

    @property
    def affordable(self) -> bool:
        return self.epsilon <= self.budget_left + 1e-9

    @property
    def asks_left(self) -> int | None:
        """How many more asks of this shape (at its full price: ε, or 2ε with tables) the
        budget allows after this one; None when this one is free (its stored answer)."""
        if self.stored or self.epsilon <= 0:
            return None
        if self.rho is not None and self.rho_full and self.rho_left is not None:
            left = self.rho_left - (self.rho if self.affordable else 0.0)
            return max(0, math.floor((left + 1e-12) / self.rho_full * (1 + 1e-9)))
        return max(0, math.floor((self.budget_left_after + 1e-9) / self.full_price))

    @property
    def budget_left_after(self) -> float:
        """The budget left after asking; unchanged when the count would be refused."""
        if not self.affordable:
            return self.budget_left
        return max(0.0, round(self.budget_left - self.epsilon, 12))

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "epsilon": self.epsilon,
            "stored_answer": self.stored,
            "budget_left": self.budget_left,
            "budget_left_after": self.budget_left_after,
            "affordable": self.affordable,
            "asks_left": self.asks_left,
            **({"rho": self.rho} if self.rho is not None else {}),
            "query_hash": self.query_hash,
            "answer_key": self.answer_key,
        }


def _released_json(
    steps: list[ReleasedCount] | tuple[ReleasedCount, ...],
    tables: list[ReleasedTable],
    eps: float,
    scales: dict[str, float],
    params: PrivacyParams,
    epsilons: dict[str, float] | None = None,
    contribution: int = 1,
    unit: str = "persons",
) -> str:
    """The stored form: `dims` and `cells` are the first table's (the form of answers
    stored before there were several), `tables` every table when there are several;
    `contribution` the most units one person adds (K episodes; absent when 1, as in every
    answer stored before `index each`) and `unit` what the counts count (absent: persons);
    `mechanism` how the attrition was released (absent in answers stored before issue 23:
    `cumulative`), `epsilons` the ε of the attrition and of the tables. Under gaussian
    noise `eps` and `epsilons` are ρ: stored as `rho` and `rhos`, with `epsilon` the ε at
    δ of the answer alone (what it would add to a project that had spent nothing)."""
    first = tables[0] if tables else ReleasedTable((), ())
    out: dict[str, Any] = {
        "mechanism": MECHANISM,
        "params": params.as_dict(),
        "steps": [c.to_json() for c in steps],
        "dims": list(first.dims),
        "cells": [[list(k), c.to_json()] for k, c in first.cells],
        "epsilon": eps,
        "scales": scales,
        "epsilons": epsilons or {"attrition": eps},
    }
    if params.noise != "laplace":
        out["noise"] = params.noise
        out["rho"] = out.pop("epsilon")
        out["rhos"] = out.pop("epsilons")
        out["epsilon"] = epsilon_of_rho(eps, params.delta)
    if len(tables) > 1:
        out["tables"] = [t.to_json() for t in tables]
    if contribution != 1:
        out["contribution"] = contribution
    if unit != "persons":
        out["unit"] = unit
    return json.dumps(out, ensure_ascii=False, default=str)


def answer_from_json(
    released: str,
    charged: float,
    left: float,
    query_hash: str,
    release: str,
    key: str,
    purpose: str,
    stored: bool,
    labels: tuple[str, ...],
    receipt: dict[str, Any] | None = None,
    names: dict[str, dict[Any, str | None]] | None = None,
) -> Answer:
    """An answer from its stored form (released values only, in either JSON form of its
    counts: see ReleasedCount.from_json), shown with `labels` and the `names` of coded
    values."""
    d = json.loads(released)
    params = _params(d["params"])
    steps = tuple(ReleasedCount.from_json(s, params["threshold"]) for s in d["steps"])
    cells = tuple(
        (tuple(k), ReleasedCount.from_json(c, params["threshold"])) for k, c in d["cells"]
    )
    if "tables" in d:
        tables = tuple(ReleasedTable.from_json(t, params["threshold"]) for t in d["tables"])
    else:
        tables = (ReleasedTable(tuple(d["dims"]), cells),) if d["dims"] else ()
    if len(labels) != len(steps):
        labels = tuple(f"step {i}" for i in range(len(steps)))
    return Answer(
        labels=tuple(labels),
        steps=steps,
        dims=tuple(d["dims"]),
        cells=cells,
        params=params,
        epsilon_charged=charged,
        epsilon_of_answer=d["epsilon"],
        budget_left=max(0.0, round(left, 12)),
        query_hash=query_hash,
        release=release,
        purpose=purpose,
        key=key,
        stored=stored,
        scales=d["scales"],
        signed_receipt=receipt or {},
        tables=tables,
        names=names or {},
        mechanism=str(d.get("mechanism", "cumulative")),
        noise=str(d.get("noise", "laplace")),
        rho_of_answer=d.get("rho"),
        contribution=int(d.get("contribution", 1)),
        unit=str(d.get("unit", "persons")),
    )


def _params(stored: dict[str, Any]) -> dict[str, Any]:
    """Stored privacy parameters with the integer ones as integers (a threshold is shown
    as `<10`, never `<10.0`, whatever wrote it)."""
    out = dict(stored)
    for k in ("threshold", "rounding", "max_cells"):
        if isinstance(out.get(k), float) and out[k].is_integer():
            out[k] = int(out[k])
    return out


def release(
    true: TrueCounts,
    dims: tuple[str, ...],
    cost: float,
    params: PrivacyParams,
    attrition: str | None = None,
) -> str:
    """Noise one query's true counts at `cost` (its stored, released form). `attrition`: the
    stored answer whose attrition this one reuses (its steps, not noised again). Only the
    gate releases through this, after charging; the utility benchmark (bench/utility.py)
    calls it on counts it computed itself, to measure the noise of many releases.

    An ask with tables spends `attrition_share` of its 2ε on the attrition and the rest on
    the tables' leaves; one whose own attrition was released before pays ε for its tables
    alone, and they get all of it."""
    full = query_cost(params, bool(dims))
    eps_a = params.attrition_share * full if dims else cost
    if attrition is not None:
        before = json.loads(attrition)
        steps = [ReleasedCount.from_json(c, params.threshold) for c in before["steps"]]
        s1 = float(before["scales"]["attrition"])
    else:
        steps, s1 = release_attrition(true.counts, params, eps_a, true.contribution)
    scales = {"attrition": s1}
    epsilons = {"attrition": eps_a}
    tables: list[ReleasedTable] = []
    if dims:
        eps_t = cost - eps_a if cost >= full - 1e-12 else cost
        # every table agrees with the released final count (whose noise has the variance
        # of one bucket at the attrition's scale: the levels' variances use it)
        tables, s2 = release_tables(true.all_tables(), steps[-1], params.kind.variance(s1),
                                    params, eps_t, true.contribution)  # fmt: skip
        scales["breakdown"] = s2
        epsilons["breakdown"] = eps_t
    return _released_json(steps, tables, cost, scales, params, epsilons, true.contribution,
                          true.unit)  # fmt: skip


def answer_key(
    params: PrivacyParams, query_hash: str, release: str, purpose: str, catalog_version: str = ""
) -> str:
    """The key under which an answer is stored (see the module docstring)."""
    raw = f"{query_hash}|{release}|{params.fingerprint()}|{purpose}"
    if catalog_version:
        raw += f"|{catalog_version}"
    return hashlib.sha256(raw.encode()).hexdigest()


def quote_new(
    params: PrivacyParams, project_id: str, budget: float, query_hash: str, key: str,
    has_breakdown: bool,
) -> Quote:  # fmt: skip
    """The quote of a project that has spent nothing (or does not exist yet): what its first
    ask of this shape would charge, as `Gate.quote` would state it."""
    cost = query_cost(params, has_breakdown)
    if params.noise == "laplace":
        return Quote(project_id, cost, False, budget, query_hash, key, cost)
    eps = epsilon_of_rho(cost, params.delta)
    return Quote(project_id, eps, False, budget, query_hash, key, eps, rho=cost, rho_full=cost,
                 rho_left=rho_of_epsilon(budget, params.delta))  # fmt: skip


def query_cost(params: PrivacyParams, has_breakdown: bool) -> float:
    """The privacy loss of one query in the noise's unit (ε; ρ under gaussian noise): the
    attrition, and the breakdown tables again if there are any."""
    return params.release_loss * (2 if has_breakdown else 1)


class Gate:
    """`signer` is the installation's signing key; without one, receipts are signed by a key
    kept in memory (`Signer.ephemeral()`: for tests, unverifiable once the process ends).
    The service and the command line always pass the installation's key."""

    def __init__(
        self, store: Store, params: PrivacyParams | None = None, signer: Signer | None = None
    ) -> None:
        self.store = store
        self.params = params or PrivacyParams()
        self.signer = signer or Signer.ephemeral()
        # stored answers as shown, with the digest their receipts are found by (`_shown_as`),
        # and the receipts (JSON) found or made for them, once committed (`_replay`)
        self._shown: dict[tuple[Any, ...], tuple[Answer, str]] = {}
        self._receipts: dict[tuple[str, str, str], str] = {}

    def key(self, query_hash: str, release: str, purpose: str, catalog_version: str = "") -> str:
        return answer_key(self.params, query_hash, release, purpose, catalog_version)

    def cost(self, has_breakdown: bool) -> float:
        """The loss of one query (ε, or ρ): the attrition, and the tables if there are any."""
        return query_cost(self.params, has_breakdown)

    @staticmethod
    def _charges(tx: Tx, project_id: str) -> tuple[float, float]:
        """(pure ε charged, ρ charged) of a project: what a gaussian charge is priced on."""
        pure, rho = tx.one(
            "SELECT COALESCE(SUM(CASE WHEN rho = 0 THEN epsilon ELSE 0 END), 0), "
            "COALESCE(SUM(rho), 0) FROM charges WHERE project_id = %s",
            (project_id,),
        )
        return float(pure), float(rho)

    def _epsilon_of(self, tx: Tx, project_id: str, cost: float) -> tuple[float, float, float]:
        """(ε it adds to the project, its budget, what the project spent) of a charge of
        `cost` (ε, or ρ under gaussian noise: the ε at δ of the ρ it has spent and this
        added, plus its pure ε, less what it spent). A laplace charge reads the project row
        only, as every count did before there was a choice of noise."""
        budget, spent = tx.one("SELECT budget, spent FROM projects WHERE id = %s", (project_id,))
        budget, spent = float(budget), float(spent)
        if self.params.noise == "laplace":
            return cost, budget, spent
        if cost <= 0:
            return 0.0, budget, spent
        pure, rho = self._charges(tx, project_id)
        after = pure + epsilon_of_rho(rho + cost, self.params.delta)
        return max(0.0, after - spent), budget, spent

    def next_cost(self, project_id: str, has_breakdown: bool) -> float:
        """The ε an ask of this shape that reuses nothing would add to the project now (ε,
        or 2ε with tables; under gaussian noise it depends on what the project spent)."""
        with self.store.transaction(write=False) as tx:
            return self._epsilon_of(tx, project_id, self.cost(has_breakdown))[0]

    def rho_left(self, project_id: str) -> float | None:
        """Under gaussian noise, the ρ the project's budget has left (None under laplace)."""
        if self.params.noise == "laplace":
            return None
        with self.store.transaction(write=False) as tx:
            return self._rho_left(tx, project_id)

    def _rho_left(self, tx: Tx, project_id: str) -> float:
        """The ρ a project's budget has left under gaussian noise: the ρ whose ε at δ is its
        budget less its pure ε, less the ρ it was charged."""
        (budget,) = tx.one("SELECT budget FROM projects WHERE id = %s", (project_id,))
        pure, rho = self._charges(tx, project_id)
        return max(0.0, rho_of_epsilon(float(budget) - pure, self.params.delta) - rho)

    def quote(
        self,
        project_id: str,
        query_hash: str,
        release: str,
        has_breakdown: bool,
        catalog_version: str = "",
        attrition_hash: str | None = None,
    ) -> Quote:
        """What `answer` would charge for this query now (see `Quote`): reads the project
        and whether it asked this key (or, for a cohort with tables, its attrition) before;
        writes nothing, audits nothing."""
        project = self.store.project(project_id)
        if project is None:
            raise UnknownProject(project_id)
        key = self.key(query_hash, release, project.purpose, catalog_version)
        stored = (self.store.asked(project_id, key) or self._paid(project_id, key)) is not None
        cost = 0.0 if stored else self.cost(has_breakdown)
        if not stored and has_breakdown and attrition_hash and attrition_hash != query_hash:
            akey = self.key(attrition_hash, release, project.purpose, catalog_version)
            if (self.store.asked(project_id, akey) or self._paid(project_id, akey)) is not None:
                cost -= self.params.release_loss  # the attrition was released before: reused
        full = self.cost(has_breakdown)
        if self.params.noise == "laplace":  # a charge is its ε: nothing more to read
            return Quote(project_id, cost, stored, project.left, query_hash, key, full)
        with self.store.transaction(write=False) as tx:
            charge = self._epsilon_of(tx, project_id, cost)[0]
            full_charge = self._epsilon_of(tx, project_id, full)[0]
            rho_left = self._rho_left(tx, project_id)
        return Quote(project_id, charge, stored, project.left, query_hash, key, full_charge,
                     rho=cost, rho_full=full, rho_left=rho_left)  # fmt: skip

    def answer(
        self,
        project_id: str,
        actor: str,
        query_hash: str,
        query: str,
        release: str,
        labels: tuple[str, ...],
        dims: tuple[str, ...],
        compute: Callable[[], TrueCounts],
        catalog_version: str = "",
        *,
        attrition: tuple[str, str] | None = None,
        names: dict[str, dict[Any, str | None]] | None = None,
        registers: tuple[str, ...] = (),
        title: str | None = None,
    ) -> Answer:
        """Release (or replay) the answer to one query; see the module docstring.

        `labels` and `dims` describe the compiled query (no data; `dims` non-empty when it
        has `report by` tables); a stored answer is shown with the labels of the spelling
        asked now. `catalog_version` (a hash of the catalog the query was compiled
        against) is part of the answer's key. `attrition` is the hash and canonical query of
        the cohort without its tables (see the module docstring); `names` name coded values;
        `registers` are those the query reads, recorded with each of its audit entries (a
        register's holder sees the ε spent on it, never an answer). `title` is the cohort's
        (signed in the receipt with the labels)."""
        project = self.store.project(project_id)
        if project is None:
            raise UnknownProject(project_id)
        key = self.key(query_hash, release, project.purpose, catalog_version)
        ctx = (project_id, actor, query_hash, query, release, key, project.purpose, labels, names,
               tuple(sorted(registers)), title)  # fmt: skip
        # asked before by this project, or paid for by it (the attrition of a cohort it
        # asked with tables): its own answer again, free
        asked = self.store.asked(project_id, key)
        own = asked or self._paid(project_id, key)
        if own is not None:
            return self._replay(ctx, own, linked=asked is not None, left=project.left)
        akey = None
        own_attrition = None
        if dims and attrition is not None and attrition[0] != query_hash:
            akey = self.key(attrition[0], release, project.purpose, catalog_version)
            own_attrition = self.store.asked(project_id, akey) or self._paid(project_id, akey)
        # the attrition is charged unless this project was released it before
        cost = self.cost(bool(dims)) - (self.params.release_loss if own_attrition else 0.0)
        # Charged (and audited) before the data is read, in its own transaction: whatever
        # happens while computing (an error, a timeout, the process killed), the charge stands.
        # A budget too small is refused there, under the store's lock, before any data is read.
        attempt, charged = self._reserve(ctx, cost)
        released: str | None = None
        try:
            # Computed even when another project's answer is stored: the first ask of a
            # project costs and takes the same time whatever other projects asked. An
            # attrition released before (to this project, or to another: the same value
            # for everyone) is the one the tables are made to agree with.
            stored_attrition = own_attrition or (self._stored(akey) if akey else None)
            released = self._noise(compute(), dims, cost, stored_attrition)
        except Exception as e:
            # never the exception's text: it may quote a data value (a failed cast)
            log.warning("a charged count failed (%s); nothing released", type(e).__name__)
        if released is None:  # outside the `except`, so the error is not chained to ours
            self._failed(ctx, charged)
        filed = (akey, *attrition) if akey and attrition and own_attrition is None else None
        return self._commit(ctx, attempt, released, charged, filed)

    def _paid(self, project_id: str, key: str) -> str | None:
        """The stored answer under `key` if a charge of this project is filed under it."""
        with self.store.transaction(write=False) as tx:
            row = tx.one(
                "SELECT a.released FROM charges c JOIN answers a ON a.key = c.answer_key "
                "WHERE c.project_id = %s AND c.answer_key = %s",
                (project_id, key),
            )
        return row[0] if row else None

    def _stored(self, key: str) -> str | None:
        with self.store.transaction(write=False) as tx:
            row = tx.one("SELECT released FROM answers WHERE key = %s", (key,))
        return row[0] if row else None

    def _noise(
        self, true: TrueCounts, dims: tuple[str, ...], cost: float, attrition: str | None
    ) -> str:
        """The released form of true counts: the only place they are read (`release`)."""
        return release(true, dims, cost, self.params, attrition)

    def _reserve(self, ctx: tuple[Any, ...], cost: float) -> tuple[str, float]:
        """Charge `cost` (ε, or ρ) for one attempt to compute an answer; its charge id and
        the ε charged (under gaussian noise what the ρ adds to the project's ε).

        The charge is committed before anything is computed. It is recorded under an
        attempt id (ATTEMPT + a random id) and renamed to the answer's key when the answer
        is stored; an attempt that failed or never finished keeps its attempt id."""
        project_id, actor, query_hash, query = ctx[:4]
        attempt = ATTEMPT + secrets.token_hex(16)
        refusal: BudgetExceeded | None = None
        rho = cost if self.params.noise != "laplace" else 0.0
        with self.store.transaction() as tx:
            charge, budget, spent = self._epsilon_of(tx, project_id, cost)
            if spent + charge > budget + 1e-9:
                tx.audit(actor, project_id, "refused_budget", query_hash, query, 0.0, None,
                         ctx[9])  # fmt: skip
                refusal = BudgetExceeded(project_id, charge, round(max(0.0, budget - spent), 12))
            else:
                tx.execute(
                    "UPDATE projects SET spent = spent + %s WHERE id = %s", (charge, project_id)
                )
                tx.execute(
                    "INSERT INTO charges (project_id, answer_key, epsilon, rho, created) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (project_id, attempt, charge, rho, now()),
                )
                # the charge's audit entry carries its ε; the outcome's entry carries 0
                tx.audit(actor, project_id, "charge", query_hash, query, charge, None, ctx[9])
        if refusal is not None:  # raised after the commit, so that the refusal stays in the log
            raise refusal
        return attempt, charge

    def _failed(self, ctx: tuple[Any, ...], cost: float) -> NoReturn:
        project_id, actor, query_hash, query = ctx[:4]
        with self.store.transaction() as tx:
            tx.audit(actor, project_id, "count_failed", query_hash, query, 0.0, None, ctx[9])
            left = tx.one("SELECT budget - spent FROM projects WHERE id = %s", (project_id,))[0]
        raise CountFailed(project_id, cost, round(max(0.0, float(left)), 12))

    def _commit(
        self,
        ctx: tuple[Any, ...],
        attempt: str,
        released: str,
        cost: float,
        attrition: tuple[str, str, str] | None = None,
    ) -> Answer:
        """Store the answer under its key and file the charge under it. `attrition`: the
        key, hash and query of the cohort without its tables, when this charge paid for
        its attrition: that is then stored and filed under its own key too, with its share
        (ε) of the charge, so that this project asking it alone, or a new breakdown of it,
        reuses it."""
        project_id, actor, query_hash, query, release, key, purpose, labels, names = ctx[:9]
        with self.store.transaction() as tx:
            row = tx.one("SELECT released FROM answers WHERE key = %s", (key,))
            if row is not None:
                # released before (by another project, or concurrently by this one): that
                # answer stands for everyone, so that asking again never averages the noise
                # away; ours is dropped unseen. The charge stands too.
                released = row[0]
            else:
                self._insert(tx, key, query_hash, release, purpose, released)
            asked = tx.one(
                "SELECT 1 FROM project_queries WHERE project_id = %s AND answer_key = %s",
                (project_id, key),
            )
            if asked is None:  # the charge paid for this project's answer: filed under its key
                tx.execute(
                    "UPDATE charges SET answer_key = %s WHERE project_id = %s AND answer_key = %s",
                    (key, project_id, attempt),
                )
                if attrition is not None:
                    self._file_attrition(tx, project_id, key, attrition, release, purpose,
                                         released)  # fmt: skip
            seq, ts = tx.audit(actor, project_id, "answer", query_hash, query, 0.0, released,
                               ctx[9])  # fmt: skip
            _link(tx, project_id, key, query)
            left = tx.one("SELECT budget - spent FROM projects WHERE id = %s", (project_id,))[0]
            # `stored` tells only whether this project asked before (a concurrent twin of
            # this request), never whether another project did
            answer = answer_from_json(
                released, cost, float(left), query_hash, release, key, purpose,
                asked is not None, labels, None, names,
            )  # fmt: skip
            receipt = self._receipt(tx, ctx, answer, cost, seq, ts)
        return dataclasses.replace(answer, signed_receipt=receipt)

    def _insert(self, tx: Tx, key: str, query_hash: str, release: str, purpose: str,
                released: str) -> None:  # fmt: skip
        tx.execute(
            "INSERT INTO answers (key, query_hash, release, params, purpose, released, created) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (key, query_hash, release, json.dumps(self.params.as_dict()), purpose, released,
             now()),
        )  # fmt: skip

    def _file_attrition(self, tx: Tx, project_id: str, key: str, attrition: tuple[str, str, str],
                        release: str, purpose: str, released: str) -> None:  # fmt: skip
        """The attrition of an answer with tables, stored (if new) and filed for the
        project under the key of the cohort without tables, with ε of the charge. It is
        not listed among the project's queries until the project asks it alone."""
        akey, ahash, _aquery = attrition
        d = json.loads(released)
        # the attrition's share of the charge (an answer stored before issue 23: ε); under
        # gaussian noise its ρ, and the ε it added in proportion
        gaussian = "rhos" in d
        loss = float((d["rhos"] if gaussian else d.get("epsilons", {})).get(
            "attrition", self.params.release_loss))  # fmt: skip
        if tx.one("SELECT 1 FROM answers WHERE key = %s", (akey,)) is None:
            alone = _released_json(
                [ReleasedCount.from_json(c, self.params.threshold) for c in d["steps"]], [],
                loss, {"attrition": d["scales"]["attrition"]}, self.params, {"attrition": loss},
                int(d.get("contribution", 1)), str(d.get("unit", "persons")),
            )  # fmt: skip
            self._insert(tx, akey, ahash, release, purpose, alone)
        eps, rho = loss, 0.0
        if gaussian:
            charged, charged_rho = tx.one(
                "SELECT epsilon, rho FROM charges WHERE project_id = %s AND answer_key = %s",
                (project_id, key),
            )
            eps = float(charged) * loss / float(charged_rho) if charged_rho else 0.0
            rho = loss
        tx.execute(
            "UPDATE charges SET epsilon = epsilon - %s, rho = rho - %s "
            "WHERE project_id = %s AND answer_key = %s",
            (eps, rho, project_id, key),
        )
        tx.execute(
            "INSERT INTO charges (project_id, answer_key, epsilon, rho, created) "
            "VALUES (%s, %s, %s, %s, %s)",
            (project_id, akey, eps, rho, now()),
        )

    def _replay(self, ctx: tuple[Any, ...], released: str, *, linked: bool, left: float) -> Answer:
        """A stored answer again, free: audited (`answer_stored`) and receipted in one write
        transaction, which every other writer waits for, so everything that does not need
        it is done before: the answer as shown and the digest its receipt is found by (from
        the stored answer alone), the receipt itself once it is stored (receipts never
        change), the budget left (`left`, read with the project: a stored answer charges
        nothing). `linked`: the project's link to the answer exists (found through it)."""
        project_id, actor, query_hash, query, _release, key = ctx[:6]
        shown, digest = self._shown_as(released, ctx)
        shown_as = shown_key(ctx[10], shown.labels, digest)
        kept = self._receipts.get((project_id, key, shown_as))
        with self.store.transaction() as tx:
            if not linked:
                _link(tx, project_id, key, query)
            seq, ts = tx.audit(actor, project_id, "answer_stored", query_hash, query, 0.0, released,
                               ctx[9])  # fmt: skip
            # the original receipt of the answer as shown now; an answer stored before
            # receipts existed, or asked now with other names (or first shown before receipts
            # signed names), gets its first one now, naming this entry, and keeps it
            text = kept or self._receipt_text(
                tx, ctx, shown, lambda: self._charged_epsilon(tx, project_id, key), seq, ts,
                shown_as, digest,
            )  # fmt: skip
        if kept is None:  # committed: kept from now on
            if len(self._receipts) >= self.SHOWN_KEPT:
                with contextlib.suppress(RuntimeError, StopIteration, KeyError):
                    self._receipts.pop(next(iter(self._receipts)))
            self._receipts[project_id, key, shown_as] = text
        return dataclasses.replace(shown, budget_left=left, signed_receipt=json.loads(text))

    SHOWN_KEPT = 256  # stored answers as shown, kept (the oldest goes first)

    def _shown_as(self, released: str, ctx: tuple[Any, ...]) -> tuple[Answer, str]:
        """A stored answer as shown (free, before its budget and receipt are filled in)
        and its digest: a function of the released values and of how they are named
        (labels, names of coded values), computed once and kept under all of them, the
        released values themselves included, so nothing kept can be shown for another."""
        _pid, _actor, query_hash, _query, release, key, purpose, labels, names = ctx[:9]
        memo = (released, query_hash, release, key, purpose, tuple(labels), repr(names))
        found = self._shown.get(memo)
        if found is not None:
            return found
        shown = answer_from_json(released, 0.0, 0.0, query_hash, release, key, purpose, True,
                                 labels, None, names)  # fmt: skip
        body = shown.to_json()
        text = json.dumps(body, ensure_ascii=False, allow_nan=False)
        found = dataclasses.replace(shown, shown_json=text), answer_digest(body)
        if len(self._shown) >= self.SHOWN_KEPT:
            with contextlib.suppress(RuntimeError, StopIteration, KeyError):  # another thread's
                self._shown.pop(next(iter(self._shown)))
        self._shown[memo] = found
        return found

    def _receipt(
        self, tx: Tx, ctx: tuple[Any, ...], shown: Answer, cost: float | Callable[[], float],
        seq: int, ts: str, digest: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """The project's receipt for this answer as `shown` (its title, labels and values):
        the stored one, else a new one, signed and stored in this transaction (so that it
        names the audit entry `seq`). Receipts of version 1 (stored before receipts signed
        the names, in `receipts`) are not given again: they do not bind what is shown.
        `cost`: the ε charged for it (read only when a receipt is made); `digest`: of the
        answer as shown, if computed already."""
        digest = digest or answer_digest(shown.to_json())
        shown_as = shown_key(ctx[10], shown.labels, digest)
        return json.loads(self._receipt_text(tx, ctx, shown, cost, seq, ts, shown_as, digest))

    def _receipt_text(
        self, tx: Tx, ctx: tuple[Any, ...], shown: Answer, cost: float | Callable[[], float],
        seq: int, ts: str, shown_as: str, digest: str | None = None,
    ) -> str:  # fmt: skip
        """`_receipt`, as its stored JSON, for the answer shown as `shown_as` (`shown_key`)."""
        project_id, _actor, query_hash, _query, release, key, purpose = ctx[:7]
        title = ctx[10]
        row = tx.one(
            "SELECT receipt FROM shown_receipts "
            "WHERE project_id = %s AND answer_key = %s AND shown = %s",
            (project_id, key, shown_as),
        )
        if row is not None:
            return str(row[0])
        if callable(cost):
            cost = cost()
        digest = digest or answer_digest(shown.to_json())
        receipt = self.signer.sign({
            "version": RECEIPT_VERSION, "project": project_id, "purpose": purpose,
            "query_hash": query_hash, "title": title, "labels": list(shown.labels),
            "data_release": release, "answer_key": key, "privacy": dict(shown.params),
            "epsilon": cost, "guarantee": shown.guarantee(), "released_sha256": digest,
            "time": ts, "audit_seq": seq,
        })  # fmt: skip
        text = json.dumps(receipt, ensure_ascii=False)
        tx.execute(
            "INSERT INTO shown_receipts (project_id, answer_key, shown, receipt, created) "
            "VALUES (%s, %s, %s, %s, %s)",
            (project_id, key, shown_as, text, now()),
        )
        return text

    @staticmethod
    def _charged_epsilon(tx: Tx, project_id: str, key: str) -> float:
        """What the project was charged for this answer (0 if it never was)."""
        row = tx.one(
            "SELECT epsilon FROM charges WHERE project_id = %s AND answer_key = %s",
            (project_id, key),
        )
        return float(row[0]) if row else 0.0


def _link(tx: Tx, project_id: str, key: str, query: str) -> None:
    """Remember that a project asked this query (for listing its earlier queries)."""
    found = tx.one(
        "SELECT 1 FROM project_queries WHERE project_id = %s AND answer_key = %s", (project_id, key)
    )
    if found is None:
        tx.execute(
            "INSERT INTO project_queries (project_id, answer_key, query, first_asked) VALUES (%s, %s, %s, %s)",
            (project_id, key, query, now()),
        )
