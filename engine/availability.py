"""Availability counts of one register, in one pass: like i2b2's totalnum and OHDSI's Achilles.

For each code variable, how many distinct persons have each code and each code prefix (its
first three characters: an ICD-10 category, an ATC therapeutic subgroup, a KVÅ chapter) in
each year of the register's date column; for every other variable, how many persons have a
value in each year; and the register's persons and records. Persons who opted out of
research (`forskning`) or of everything are left out first, as in every count.

One person can have many codes in many years, so a release under differential privacy needs
the number of cells one person can change bounded: each person keeps at most `bound` of its
(item, year) cells, chosen by a hash of the person and the cell (so which cells are cut does
not depend on their order in the files), and at most `record_bound` of its records. The
bounds are public (engine/limits.py) and stated in the released answer; the privacy layer
(privacy/availability.py) sets the noise from them. Where no person reaches a bound, the
counts are exact.

The statement is built with sqlglot from a template whose every column and table name is a
placeholder replaced by a typed identifier: no catalog text is pasted into SQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from antal.catalog import Catalog, Register
from antal.catalog.vocabulary import CODE_SYSTEMS, OPTOUT_ALL, Purpose
from antal.engine.errors import EngineError

__all__ = [
    "AGE_BANDS",
    "AGE_BAND_YEARS",
    "AvailabilityQuery",
    "Cell",
    "availability_query",
    "prefix_of",
    "rows_to_ages",
    "rows_to_cells",
]

Cell = tuple[str, str, str, int | None]  # (variable, level, value, year)
PREFIX_CHARS = 3  # a code's group: its first three characters
# age at a person's first record in the register, in five-year bands 0-4 ... 125-129 (the
# last holds everyone older): the public domain of the age histogram, every band released
AGE_BAND_YEARS = 5
AGE_BANDS: tuple[int, ...] = tuple(range(0, 130, AGE_BAND_YEARS))


def prefix_of(code: str) -> str:
    """The group a code is counted under besides itself."""
    return code[:PREFIX_CHARS]


def _ident(name: str) -> exp.Identifier:
    return exp.Identifier(this=name, quoted=True)


def _col(name: str) -> exp.Column:
    return exp.Column(this=_ident(name))


_CODES = "SELECT :pk AS p, :yr AS yr, :codes AS code FROM src WHERE :col IS NOT NULL"
_CODES_MULTI = (
    "SELECT p, yr, code FROM (SELECT :pk AS p, :yr AS yr, "
    "UNNEST(STRING_SPLIT(:col, ' ')) AS code FROM src WHERE :col IS NOT NULL) AS s "
    "WHERE code <> ''"
)
_PRESENT = "SELECT :pk AS p, :yr AS yr FROM src WHERE :col IS NOT NULL"


@dataclass(frozen=True)
class AvailabilityQuery:
    """The statements of one register's availability counts; `registers` are those read
    (the register and the opt-outs). It quacks like a compiled cohort for `Backend.run`."""

    register: str
    bound: int
    record_bound: int
    cells_tree: exp.Expression
    totals_tree: exp.Expression
    registers: frozenset[str]
    ages_tree: exp.Expression | None = None  # None: no date or no birth year to age from
    # the data versions (Register.data_version) of the registers the statements read
    versions: tuple[tuple[str, str], ...] = ()

    @property
    def identity(self) -> str:
        """What the counts are, as the key of their release: the register, the data versions
        of what is read, the opt-outs and the bounds; not how the entry words or orders
        anything, so that no edit of a description or of the variables' order makes a new
        release (with fresh noise) of the same counts."""
        return json.dumps(
            {"availability": 2, "register": self.register, "bound": self.bound,
             "record_bound": self.record_bound, "reads": sorted(self.registers),
             "versions": {r: v for r, v in self.versions if r in self.registers},
             "ages": self.ages_tree is not None},
            sort_keys=True,
        )  # fmt: skip

    @property
    def description(self) -> str:
        """What is counted, canonically: part of the released answer's key."""
        return (
            f"availability v1 of {self.register}: distinct persons per code, "
            f"{PREFIX_CHARS}-character prefix and variable by year, at most {self.bound} "
            f"cells and {self.record_bound} records per person; "
            f"{self.cells_tree.sql('duckdb')}"
        )

    def cells(self) -> _Statement:
        return _Statement(self.cells_tree, self.registers)

    def totals(self) -> _Statement:
        return _Statement(self.totals_tree, self.registers)

    def ages(self) -> _Statement | None:
        return None if self.ages_tree is None else _Statement(self.ages_tree, self.registers)


@dataclass(frozen=True)
class _Statement:
    tree: exp.Expression
    registers: frozenset[str]

    def sql(self, dialect: str = "duckdb", pretty: bool = False) -> str:
        return self.tree.sql(dialect, pretty=pretty)


def _source(reg: Register, optout: str | None, purpose: Purpose) -> exp.Expression:
    """The register's rows of persons who did not opt out of `purpose` or of everything."""
    src = exp.select(exp.Star()).from_(exp.Table(this=_ident(reg.id)))
    src = src.where(exp.Not(this=exp.Is(this=_col(reg.person_key), expression=exp.Null())))
    if optout:
        opted = (
            exp.select(_col("lopnr"))
            .from_(exp.Table(this=_ident(optout)))
            .where(
                exp.In(
                    this=_col("andamal"),
                    expressions=[exp.Literal.string(purpose), exp.Literal.string(OPTOUT_ALL)],
                )
            )
            .where(exp.Not(this=exp.Is(this=_col("lopnr"), expression=exp.Null())))
        )
        src = src.where(
            exp.Not(this=exp.In(this=_col(reg.person_key), query=exp.Subquery(this=opted)))
        )
    return src


def availability_query(
    catalog: Catalog,
    register_id: str,
    bound: int,
    record_bound: int,
    *,
    optout: str | None,
    purpose: Purpose = "forskning",
) -> AvailabilityQuery:
    """The statements counting one register's availability (no data read)."""
    reg = catalog.register(register_id)
    if reg is None:
        raise EngineError(f"unknown register {register_id!r}")
    if bound < 1 or record_bound < 1:
        raise EngineError("the per-person bounds must be at least 1")
    year: exp.Expression = (
        exp.Year(this=_col(reg.date_column)) if reg.date_column else exp.cast(exp.Null(), "INT")
    )
    parts: list[exp.Expression] = []
    skip = {reg.person_key, reg.date_column}
    # in the order of their names: the statement does not depend on the entry's order
    for v in sorted(reg.variables, key=lambda v: v.name):
        if v.name in skip:
            continue
        name = exp.Literal.string(v.name)
        if v.code_system:
            template = _CODES_MULTI if v.multi else _CODES
            codes = sqlglot.parse_one(
                template,
            )
            codes = exp.replace_placeholders(
                codes, pk=_col(reg.person_key), yr=year.copy(), col=_col(v.name),
                codes=exp.cast(_col(v.name), "VARCHAR"),
            )  # fmt: skip
            levels: list[tuple[str, exp.Expression]] = [("code", exp.column("code"))]
            if v.code_system in CODE_SYSTEMS:  # classifications have groups; genes do not
                levels.append(("prefix", exp.Substring(this=exp.column("code"),
                    start=exp.Literal.number(1), length=exp.Literal.number(PREFIX_CHARS))))  # fmt: skip
            for level, value in levels:
                parts.append(
                    exp.select(
                        exp.column("p"),
                        exp.alias_(name.copy(), "var"),
                        exp.alias_(exp.Literal.string(level), "lvl"),
                        exp.alias_(value, "val"),
                        exp.column("yr"),
                    ).from_(exp.Subquery(this=codes.copy(), alias=exp.TableAlias(this=_ident("c"))))
                )
        else:
            present = sqlglot.parse_one(
                _PRESENT,
            )
            present = exp.replace_placeholders(
                present, pk=_col(reg.person_key), yr=year.copy(), col=_col(v.name)
            )
            parts.append(
                exp.select(
                    exp.column("p"),
                    exp.alias_(name.copy(), "var"),
                    exp.alias_(exp.Literal.string("any"), "lvl"),
                    exp.alias_(exp.Literal.string(""), "val"),
                    exp.column("yr"),
                ).from_(exp.Subquery(this=present, alias=exp.TableAlias(this=_ident("v"))))
            )
    src = _source(reg, optout, purpose)
    registers = frozenset({reg.id, *([optout] if optout else [])})
    if parts:
        items: exp.Expression = parts[0]
        for part in parts[1:]:
            items = exp.union(items, part, distinct=False)
    else:  # a register of keys alone: no cells
        items = exp.select(
            exp.column("p"), exp.alias_(exp.Literal.string(""), "var"),
            exp.alias_(exp.Literal.string(""), "lvl"), exp.alias_(exp.Literal.string(""), "val"),
            exp.column("yr"),
        ).from_(exp.Subquery(this=sqlglot.parse_one("SELECT NULL AS p, NULL AS yr WHERE FALSE"),
                             alias=exp.TableAlias(this=_ident("e"))))  # fmt: skip
    cells = sqlglot.parse_one(
        "WITH d AS (SELECT DISTINCT p, var, lvl, val, yr FROM items), "
        "b AS (SELECT var, lvl, val, yr, ROW_NUMBER() OVER (PARTITION BY p "
        "ORDER BY HASH(p, var, lvl, val, yr), var, lvl, val, yr) AS k FROM d) "
        "SELECT var, lvl, val, yr, COUNT(*) AS n FROM b WHERE k <= :bound "
        "GROUP BY var, lvl, val, yr",
    )
    cells = exp.replace_placeholders(cells, bound=exp.Literal.number(int(bound)))
    cells = cells.with_("items", items).with_("src", src)
    # the CTEs in dependency order: src, items, then the template's own
    with_ = cells.args["with_"]
    ctes = with_.expressions
    with_.set("expressions", ctes[-1:] + ctes[-2:-1] + ctes[:-2])
    totals = sqlglot.parse_one(
        "SELECT COUNT(*) AS persons, SUM(LEAST(n, :rb)) AS records "
        "FROM (SELECT :pk AS p, COUNT(*) AS n FROM src GROUP BY :pk) AS t",
    )
    totals = exp.replace_placeholders(
        totals, rb=exp.Literal.number(int(record_bound)), pk=_col(reg.person_key)
    )
    totals = totals.with_("src", src.copy())
    ages = None
    pop = catalog.population
    if (reg.date_column and pop is not None and pop.id != reg.id
            and pop.variable("fodelsear") is not None):  # fmt: skip
        # each person once: the band of its age at its first record (a partition)
        ages = sqlglot.parse_one(
            "SELECT LEAST(GREATEST(FLOOR((YEAR(f.first) - b.born) / :w), 0) * :w, :top) AS band, "
            "COUNT(*) AS n FROM (SELECT :pk AS p, MIN(:dc) AS first FROM src GROUP BY :pk) AS f "
            "JOIN (SELECT :ppk AS p, MIN(:birth) AS born FROM :pop GROUP BY :ppk) AS b "
            "ON f.p = b.p WHERE b.born IS NOT NULL AND f.first IS NOT NULL GROUP BY band"
        )
        ages = exp.replace_placeholders(
            ages, w=exp.Literal.number(AGE_BAND_YEARS), top=exp.Literal.number(AGE_BANDS[-1]),
            pk=_col(reg.person_key), dc=_col(reg.date_column), ppk=_col(pop.person_key),
            birth=_col("fodelsear"), pop=exp.Table(this=_ident(pop.id)),
        )  # fmt: skip
        ages = ages.with_("src", src.copy())
        registers = registers | {pop.id}
    versions = {r: catalog.registers[r].data_version() for r in registers if r in catalog.registers}
    return AvailabilityQuery(reg.id, bound, record_bound, cells, totals, registers, ages,
                             tuple(sorted(versions.items())))  # fmt: skip


def rows_to_ages(rows: list[tuple[Any, ...]]) -> dict[int, int]:
    """The age statement's rows as {band start: persons}."""
    return {int(band): int(n) for band, n in rows}


def rows_to_cells(rows: list[tuple[Any, ...]]) -> dict[Cell, int]:
    """The cells statement's rows as {(variable, level, value, year): persons}."""
    return {
        (str(var), str(lvl), str(val), None if yr is None else int(yr)): int(n)
        for var, lvl, val, yr, n in rows
    }
