"""A register's availability counts, released once per data release under its holder's budget.

The counts (engine/availability.py: persons per code, code prefix and variable by year, and
the register's persons and records) go through the same gate as every count: the charge is
committed before the data is read, the answer is stored under its key (the counts' canonical
description, the data release, the privacy parameters and the purpose) and audited, and
asking again for the same release returns the stored answer: never computed or charged
again. The key is what is counted (engine/availability.py `AvailabilityQuery.identity`: the
register, the data versions of the registers read, the opt-outs, the bounds), never how the
entry words or orders it: renaming the holder or reordering the variables asks for the same
release and gets the stored one, so the noise cannot be averaged away by editing the entry.
The budget is the catalog project of the register's holder as the installation's catalog
files name it (`catalog:<holder>`; `catalog:register:<id>` for a register known only from
an entry published through the service), made on first use with the installation's default
budget: an entry's editable `holder` field never chooses whose budget is spent, and no
researcher's project pays for the catalog.

One release costs ε (the installation's per-query ε), split in k equal parts (k = 4 with
an age histogram, else 3):

- the register's distinct persons: sensitivity 1, discrete Laplace scale k/ε;
- its records, each person's clamped at `record_bound`: sensitivity R, scale kR/ε;
- the cells: each person is in at most `bound` cells (the engine bounds contributions), so
  the vector of cells has L1 sensitivity L and one OpenDP discrete Laplace measurement of
  scale kL/ε releases it;
- the persons by five-year band of age at their first record: a partition over the public
  domain of bands (every band released, zero ones included), sensitivity 1, scale k/ε. The
  typical ages of the HealthDCAT-AP export are read from these released bands.

Every released value is rounded, shown with its 95% interval, and suppressed below the
threshold, as every count (privacy/mechanism.py); no cell is shown above the released
persons (post-processing). Only cells present in the data are noised (releasing every code
of every code list for every year is not possible), so a cell is shown only when its
released value reaches `shown_from`: the threshold, or the noise's (1 - DELTA) bound if that
is higher. A code or year that is absent then reads the same as one suppressed ("<T"), and a
cell of a single person is shown with probability at most DELTA / 2 (`presence_risk`,
stated in the answer): the stability-based histogram of the DP literature.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from antal.privacy.gate import Answer, Gate, answer_from_json
from antal.privacy.mechanism import (
    ReleasedCount,
    _publish,
    dlap_accuracy,
    noisy_vector,
    within_total,
)
from antal.privacy.store import Store

__all__ = [
    "AGE_LABELS",
    "DIMS",
    "LABELS",
    "AvailabilityGate",
    "TrueAvailability",
    "holder_project",
    "presence_risk",
    "project_id_of",
    "released_cells",
    "shown_from",
    "typical_ages",
]

LABELS = ("persons", "records")
AGE_LABELS = tuple(f"age {b}-{b + 4}" for b in range(0, 130, 5))  # engine AGE_BANDS
DIMS = ("variable", "level", "value", "year")
_PURPOSE = "forskning"  # the catalog serves research: persons who opted out of it are left out
_PARTS = 3  # ε split: persons, records, cells (and the age bands: one more part)
DELTA = 1e-6  # a cell's noise exceeds `shown_from` with at most this probability (two-sided)


@dataclass(frozen=True)
class TrueAvailability:
    """What the engine hands over: exact counts, never to be shown."""

    persons: int
    records: int  # each person's records clamped at `record_bound`
    cells: dict[tuple[Any, ...], int]
    bound: int
    record_bound: int
    ages: dict[int, int] | None = None  # persons per age band start (absent: 0)

    def __repr__(self) -> str:  # a true count must not reach a log line by accident
        return f"TrueAvailability(<{len(self.cells)} cells hidden>)"

    __str__ = __repr__


def project_id_of(holder: str | None, register_id: str) -> str:
    """The id of the catalog project that pays for `register_id`'s availability: its holder's
    as the installation assigns it (`holder`, from the catalog files), else the register's
    own. Outside the researchers' project names (no route takes a `:`), so no researcher
    can be a member of it or spend from it; a holder's slug has no second `:`, so no
    holder's name can reach a register's own project."""
    if holder is None:
        return f"catalog:register:{register_id}"
    return "catalog:" + (re.sub(r"[^a-z0-9]+", "-", holder.lower()).strip("-")[:60] or "holder")


def holder_project(store: Store, holder: str | None, register_id: str, budget: float) -> str:
    """The id of the catalog project paying for `register_id`, made on first use with `budget`."""
    pid = project_id_of(holder, register_id)
    if store.project(pid) is None:
        name = f"catalog of {holder}" if holder else f"catalog of register {register_id}"
        store.create_project(pid, name, _PURPOSE, budget, actor="catalog")
    return pid


def shown_from(epsilon: float, bound: int, threshold: int, parts: int = _PARTS) -> int:
    """The smallest released cell value shown: the threshold, or the (1 - DELTA) bound of
    the cells' noise if that is higher (so noise alone is shown with probability <= DELTA/2)."""
    return max(threshold, math.ceil(dlap_accuracy(parts * bound / epsilon, DELTA)))


def presence_risk(epsilon: float, bound: int, threshold: int, parts: int = _PARTS) -> float:
    """The probability that a cell of one person is shown: its noise reaches `shown_from` - 1."""
    k = shown_from(epsilon, bound, threshold, parts) - 1
    if k <= 0:
        return 1.0
    q = math.exp(-1 / (parts * bound / epsilon))
    return q**k / (1 + q)  # P(Z >= k) of the discrete Laplace


def typical_ages(bands: list[ReleasedCount]) -> tuple[int, int] | None:
    """The ages between which the middle 90% of persons were at their first record, read
    from released age bands (post-processing; a suppressed band counts 0): the start of the
    band reaching 5% and the end of the band reaching 95%."""
    values = [b.value or 0 for b in bands]
    total = sum(values)
    if total == 0:
        return None
    run, low, high = 0, None, None
    for i, v in enumerate(values):
        run += v
        if low is None and run >= 0.05 * total:
            low = 5 * i
        if high is None and run >= 0.95 * total:
            high = 5 * i + 4
    return (low or 0, high if high is not None else 5 * len(values) - 1)


class AvailabilityGate(Gate):
    """The gate with the availability mechanism: one ε per release, stored once."""

    def cost(self, has_breakdown: bool) -> float:
        return self.params.epsilon

    def release(
        self,
        project_id: str,
        actor: str,
        identity: str,
        description: str,
        release: str,
        compute: Any,
    ) -> Answer:
        """Release (or return the stored) availability of one register for one data release:
        keyed by `identity` (what is counted), described by `description` (for people)."""
        qhash = hashlib.sha256(identity.encode()).hexdigest()
        return self.answer(project_id, actor, qhash, description, release, LABELS + AGE_LABELS,
                           DIMS, compute)  # fmt: skip

    def stored_release(self, project_id: str, identity: str, release: str) -> Answer | None:
        """The released answer if there is one: read only (no charge, no audit entry)."""
        qhash = hashlib.sha256(identity.encode()).hexdigest()
        project = self.store.project(project_id)
        if project is None:
            return None
        key = self.key(qhash, release, project.purpose)
        released = self._stored(key)
        if released is None:
            return None
        return answer_from_json(released, 0.0, project.left, qhash, release, key,
                                project.purpose, True, LABELS + AGE_LABELS)  # fmt: skip

    def _noise(self, true: Any, dims: tuple[str, ...], cost: float, attrition: str | None) -> str:
        if not isinstance(true, TrueAvailability):
            raise TypeError("the availability gate releases availability counts only")
        p = self.params
        parts = _PARTS + (1 if true.ages is not None else 0)
        part = cost / parts
        scales = {
            "persons": 1 / part,
            "records": true.record_bound / part,
            "cells": true.bound / part,
        }
        persons, records = (
            _publish(float(noisy_vector([n], s)[0]), dlap_accuracy(s, p.alpha), p)
            for n, s in ((true.persons, scales["persons"]), (true.records, scales["records"]))
        )
        keys = sorted(true.cells, key=lambda k: tuple("" if x is None else str(x) for x in k))
        noisy = noisy_vector([true.cells[k] for k in keys], scales["cells"]) if keys else []
        acc = dlap_accuracy(scales["cells"], p.alpha)
        cells = within_total(
            [(k, _publish(float(x), acc, p)) for k, x in zip(keys, noisy, strict=True)], persons
        )
        least = shown_from(cost, true.bound, p.threshold, parts)
        steps = [persons.to_json(), records.to_json()]
        if true.ages is not None:  # a partition over the public bands: every band released
            scales["ages"] = 1 / part
            bands = noisy_vector([true.ages.get(5 * i, 0) for i in range(len(AGE_LABELS))],
                                 scales["ages"])  # fmt: skip
            age_acc = dlap_accuracy(scales["ages"], p.alpha)
            steps += [_publish(float(x), age_acc, p).to_json() for x in bands]
        shown = [
            [list(k), c.to_json()] for k, c in cells if c.value is not None and c.value >= least
        ]
        return json.dumps(
            {
                "params": p.as_dict(),
                "steps": steps,
                "dims": list(DIMS),
                "cells": shown,
                "epsilon": cost,
                "scales": scales,
                "availability": {
                    "bound": true.bound,
                    "record_bound": true.record_bound,
                    "shown_from": least,
                    "presence_risk": presence_risk(cost, true.bound, p.threshold, parts),
                    "epsilon_parts": parts,
                },
            },
            ensure_ascii=False,
        )


def released_cells(answer: Answer) -> list[tuple[tuple[Any, ...], ReleasedCount]]:
    """The shown cells of an availability answer (every other cell reads `<T`)."""
    return list(answer.cells)
