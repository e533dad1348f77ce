"""The sqlglot dialects a compiled cohort is rendered in, one per `Dialect` name.

sqlglot renders most of the compiler's typed nodes the same way in every dialect, but a
few mean something else, or fail, on another engine; each such difference is a rendering
rule here, never an `if dialect == ...` in the compiler. Every rule is checked by
executing the spec and generative tests on each backend (tests/test_spec.py,
tests/test_generative.py), not by reading the SQL:

- `GROUPING(a, b, ...)`, the bits that tell the grouping sets apart (engine/rows.py):
  DuckDB and PostgreSQL take several columns; Spark's `grouping` takes one, and its
  `grouping_id(a, b, ...)` has the same bits (the first column the most significant, set
  where the row aggregates over it).
- `date + n days`: PostgreSQL's `date + INTERVAL 'n DAY'` is a TIMESTAMP; `date + n` stays
  a DATE, as DuckDB's and Spark's `date_add` do.
- `STARTS_WITH(code, 'E11')`: PostgreSQL's `starts_with` cannot use a B-tree index on the
  code column, `code LIKE 'E11%'` can (with the index's pattern operator class); the
  compiler's codes are validated to [A-Z0-9], so the pattern holds no wildcard but the `%`.
- `WITH x AS [NOT] MATERIALIZED`: Spark has no such keywords (it decides for itself).
- A CTE referenced several times: DuckDB and PostgreSQL compute it once; Spark computes
  it again for each reference, so a chain of CTEs each read by the next several times
  (the compiler's staged plan) costs it exponentially: Spark gets the flat plan
  (`keeps_ctes`).
- `YEAR(d)` and `MONTH(d)`: PostgreSQL's EXTRACT is a NUMERIC, which reaches Python as a
  Decimal (not JSON); cast to INT, as the other engines return.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from sqlglot import exp

from antal.catalog.vocabulary import Dialect

if TYPE_CHECKING:
    from sqlglot.dialects.dialect import Dialect as SqlglotDialect
    from sqlglot.generator import Generator

__all__ = ["keeps_ctes", "sqlglot_dialect"]


def _grouping_id(self: Generator, e: exp.Grouping) -> str:
    name = "GROUPING_ID" if len(e.expressions) > 1 else "GROUPING"
    return self.func(name, *e.expressions)


def _pg_starts_with(self: Generator, e: exp.StartsWith) -> str:
    prefix = e.expression
    if not isinstance(prefix, exp.Literal) or not prefix.is_string:
        raise ValueError("STARTS_WITH takes a string literal here")
    pattern = exp.Literal.string(prefix.this + "%")
    return self.sql(exp.Like(this=e.this, expression=pattern))


def _pg_int_part(part: str) -> Callable[[Generator, exp.Expression], str]:
    def rule(self: Generator, e: exp.Expression) -> str:
        return f"CAST(EXTRACT({part} FROM {self.sql(e, 'this')}) AS INT)"

    return rule


# Each dialect is built when first asked for, not on import: sqlglot's dialect modules
# build their tokenizers and generators when imported (about 35 ms for the three), and
# `antal check` compiles a cohort without rendering it in any of them.
def _duckdb() -> type[SqlglotDialect]:
    from sqlglot.dialects.duckdb import DuckDB

    return DuckDB


def _spark() -> type[SqlglotDialect]:
    from sqlglot.dialects.spark import Spark

    class AntalSpark(Spark):
        class Generator(Spark.Generator):
            TRANSFORMS: ClassVar[dict[type[exp.Expression], Any]] = {
                **Spark.Generator.TRANSFORMS,
                exp.Grouping: _grouping_id,
            }

            def cte_sql(self, expression: exp.CTE) -> str:
                if expression.args.get("materialized") is None:
                    return super().cte_sql(expression)
                plain = expression.copy()  # the compiled tree is rendered again in other dialects
                plain.set("materialized", None)
                return super().cte_sql(plain)

    return AntalSpark


def _postgres() -> type[SqlglotDialect]:
    from sqlglot.dialects.postgres import Postgres

    def date_add(self: Generator, e: exp.DateAdd) -> str:
        unit = e.args.get("unit")
        if unit is not None and unit.name.upper() == "DAY":
            return self.binary(exp.Add(this=e.this, expression=e.expression), "+")
        return Postgres.Generator.TRANSFORMS[exp.DateAdd](self, e)

    class AntalPostgres(Postgres):
        class Generator(Postgres.Generator):
            TRANSFORMS: ClassVar[dict[type[exp.Expression], Any]] = {
                **Postgres.Generator.TRANSFORMS,
                exp.DateAdd: date_add,
                exp.StartsWith: _pg_starts_with,
                exp.Year: _pg_int_part("YEAR"),
                exp.Month: _pg_int_part("MONTH"),
            }

    return AntalPostgres


_BUILD: dict[Dialect, Callable[[], type[SqlglotDialect]]] = {
    "duckdb": _duckdb,
    "postgres": _postgres,
    "spark": _spark,
}


def keeps_ctes(name: Dialect) -> bool:
    """Whether the engine computes a CTE referenced several times once (the compiler's
    staged plan), or again for each reference (its flat plan)."""
    return name != "spark"


@functools.cache
def sqlglot_dialect(name: Dialect) -> type[SqlglotDialect]:
    """The sqlglot dialect a `Dialect` name renders with (built once, on first use)."""
    return _BUILD[name]()
