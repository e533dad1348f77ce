"""Data currency: which period each register's extract covers and how much of it is final.

Every answer carries it (the data release, each register's coverage and reporting lag,
its known-incomplete periods), and the review of a cohort (engine/review.py) warns when a
window reaches outside it. Everything here comes from the catalog and the installation's
own statements (its config or the data directory's `release.yaml`), never from reading
the data: the last date in an extract is a fact about one person's record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from antal.catalog import Catalog, Installation, Period, Register

__all__ = ["Currency", "RegisterCurrency", "currency_of"]


def _months_before(d: dt.date, months: int) -> dt.date:
    """The same day `months` earlier (the month's last day where it has no such day)."""
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    m += 1
    for day in (d.day, 30, 29, 28):
        try:
            return dt.date(y, m, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")  # every month has a 28th


def _complete_through(reg: Register, extracted: dt.date) -> dt.date:
    """The last day whose records are final at `extracted`, given the register's lag."""
    lag, back = reg.update.lag_months, _months_before(extracted, reg.update.lag_months)
    if reg.update.finalised == "yearly":
        # a year is final `lag` months after its end: the last such year ends before `back`
        year = back.year - 1 if back < dt.date(back.year, 12, 31) else back.year
        return dt.date(year, 12, 31)
    return back if lag else extracted


@dataclass(frozen=True)
class RegisterCurrency:
    """One register: what the catalog says of it and what this installation's extract covers."""

    id: str
    coverage_from: int  # the register's own coverage (catalog), years
    coverage_to: int | None
    start: dt.date  # first day of this extract (stated, or the register's coverage)
    through: dt.date | None  # last day of this extract; None: not stated
    complete_through: dt.date | None  # records up to this day are final (reporting lag)
    lag_months: int
    finalised: str
    lag_note: str | None
    incomplete: tuple[Period, ...]

    def to_json(self) -> dict[str, Any]:
        def day(d: dt.date | None) -> str | None:
            return d.isoformat() if d else None

        return {
            "id": self.id,
            "coverage": {"from_year": self.coverage_from, "to_year": self.coverage_to},
            "extract": {"start": day(self.start), "through": day(self.through)},
            "complete_through": day(self.complete_through),
            "lag_months": self.lag_months,
            "finalised": self.finalised,
            "lag_note": self.lag_note,
            "incomplete": [
                {"start": day(p.start), "until": day(p.until), "note": p.note}
                for p in self.incomplete
            ],
        }


@dataclass(frozen=True)
class Currency:
    release: str | None
    extracted: dt.date | None
    registers: dict[str, RegisterCurrency]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "release": self.release,
            "extracted": self.extracted.isoformat() if self.extracted else None,
            "registers": [self.registers[r].to_json() for r in sorted(self.registers)],
        }
        if self.extracted is None:
            out["note"] = (
                "the installation states no extraction date: how recent and how complete "
                "the data are is unknown"
            )
        return out


def currency_of(
    catalog: Catalog, installation: Installation | None, registers: Iterable[str]
) -> Currency:
    """The currency of the given registers (the catalog's coverage alone without an
    installation: what a check without data can say)."""
    extracted = installation.extracted if installation else None
    out: dict[str, RegisterCurrency] = {}
    for rid in sorted(set(registers)):
        reg = catalog.register(rid)
        if reg is None or reg.is_internal:
            continue
        src = installation.sources.get(rid) if installation else None
        start = (src.start if src else None) or dt.date(reg.coverage.from_year, 1, 1)
        through = (src.through if src else None) or extracted
        if reg.coverage.to_year is not None:
            end = dt.date(reg.coverage.to_year, 12, 31)
            through = min(through, end) if through else end
        final = _complete_through(reg, extracted) if extracted else None
        if final is not None and through is not None:
            final = min(final, through)
        out[rid] = RegisterCurrency(
            rid, reg.coverage.from_year, reg.coverage.to_year, start, through, final,
            reg.update.lag_months, reg.update.finalised, reg.update.note,
            tuple(reg.coverage.incomplete),
        )  # fmt: skip
    return Currency(installation.release if installation else None, extracted, out)
