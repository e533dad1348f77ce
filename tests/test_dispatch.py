"""Every walker over the IR has a handler for every node it can meet, and a node without
one is a loud InternalError naming it (never another node's meaning).

The generative guard: the domains are not listed here but read from the IR itself (its
unions `ir.Cond`, `ir.Filter`, `ir.Event`, every registered node class) and from the
vocabulary (`DIMENSION_KEYS`); adding a node class or a dimension without a handler in
the compiler, the checker, the reference evaluator, the breakdown domain or the
canonical form fails here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from typing import Any, ClassVar

import pytest

from antal.catalog import load_catalog
from antal.catalog.vocabulary import DIMENSION_KEYS, DIMENSIONS
from antal.engine import compiler, domain, ir, reference  # noqa: F401 - registers handlers
from antal.engine.check import check, registers_used
from antal.engine.compiler import compile_cohort
from antal.engine.dispatch import DISPATCHERS
from antal.engine.domain import dimension_values
from antal.engine.errors import InternalError
from antal.engine.reference import evaluate

CAT = load_catalog()

# (walker, node kind) -> the domain it must cover, derived from the IR and the vocabulary
EXPECTED: dict[str, tuple[Any, ...]] = {
    "compiler: event": typing.get_args(ir.Event),
    "compiler: filter": typing.get_args(ir.Filter),
    "compiler: condition": typing.get_args(ir.Cond),
    "compiler: dimension": DIMENSION_KEYS,
    "checker: event": typing.get_args(ir.Event),
    "checker: filter": typing.get_args(ir.Filter),
    "checker: condition": typing.get_args(ir.Cond),
    "checker: dimension": DIMENSION_KEYS,
    "registers used: condition": typing.get_args(ir.Cond),
    "columns read: condition": typing.get_args(ir.Cond),
    "columns read: event": typing.get_args(ir.Event),
    "review: condition": typing.get_args(ir.Cond),
    "reference: event": typing.get_args(ir.Event),
    "reference: filter": typing.get_args(ir.Filter),
    "reference: condition": typing.get_args(ir.Cond),
    "reference: dimension": DIMENSION_KEYS,
    "breakdown domain: dimension": DIMENSION_KEYS,
    "canonical form": tuple(ir._NODES.values()),
    "filter_vars": typing.get_args(ir.Filter),
}


def _dispatcher(what: str) -> Any:
    found = [d for d in DISPATCHERS if d.what == what]
    assert len(found) == 1, (what, DISPATCHERS)
    return found[0]


def test_every_dispatcher_is_known_and_declared_over_its_whole_domain() -> None:
    assert sorted(d.what for d in DISPATCHERS) == sorted(EXPECTED)
    for what, keys in EXPECTED.items():
        assert set(_dispatcher(what).domain) == set(keys), what


@pytest.mark.parametrize("what", sorted(EXPECTED))
def test_every_member_of_the_domain_has_a_handler(what: str) -> None:
    d = _dispatcher(what)
    for key in EXPECTED[what]:
        assert key in d.handlers, f"{what}: no handler for {key}"
    assert d.missing() == []


def test_every_ir_node_class_and_every_dimension_is_covered() -> None:
    # every node class is in the canonical form's domain, and each class of a union is
    # handled by every walker over that union; every named dimension is an IR `Dim` name
    canonical = _dispatcher("canonical form")
    for cls in ir._NODES.values():
        assert cls in canonical.handlers, cls
    assert set(typing.get_args(typing.get_type_hints(ir.Dim)["name"])) == set(DIMENSIONS)
    for key in DIMENSION_KEYS:
        for what in EXPECTED:
            if what.endswith("dimension"):
                assert key in _dispatcher(what).handlers, (what, key)


# ---- an unhandled node is loud -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bogus(ir.Node):
    """A condition and filter kind that no walker knows (as if added without handlers)."""

    kind: ClassVar[str] = "bogus"
    var: str = "hba1c"
    pos: ir.Pos | None = None


INDEX = ir.IndexEvent("first", ir.Diagnosis((ir.CodePattern("E11", True),)))


def _cohort(cond: Any = None, report: tuple[Any, ...] = ()) -> ir.Cohort:
    steps = (ir.Step("include", cond),) if cond is not None else ()
    return ir.Cohort(INDEX, steps, (ir.Report(report),) if report else ())


def test_an_unknown_condition_is_an_internal_error_naming_it() -> None:
    co = _cohort(Bogus())
    for run in (
        lambda: compile_cohort(co, CAT),
        lambda: check(co, CAT),
        lambda: evaluate(
            ir.Cohort(ir.IndexDate(dt.date(2020, 6, 15)), co.steps),
            {"population": [{"lopnr": 1, "fodelsear": 1950, "fodelsemanad": 1}]},
            CAT,
        ),
        lambda: registers_used(co, CAT),
    ):
        with pytest.raises(InternalError, match="Bogus"):
            run()


def test_an_unknown_filter_is_an_internal_error_not_a_negation() -> None:
    ev = ir.RegisterEvent("ndr", Bogus())  # type: ignore[arg-type]
    co = _cohort(ir.EventCond(ev))
    with pytest.raises(InternalError, match="compiler: filter: no handler for Bogus"):
        compile_cohort(co, CAT)
    with pytest.raises(InternalError, match="checker: filter: no handler for Bogus"):
        check(co, CAT)
    with pytest.raises(InternalError, match="filter_vars: no handler for Bogus"):
        ir.filter_vars(Bogus())  # type: ignore[arg-type]
    row = {"lopnr": 1, "datum": dt.date(2020, 1, 1), "hba1c": 60}
    with pytest.raises(InternalError, match="reference: filter: no handler for Bogus"):
        reference._filter(Bogus(), row)  # type: ignore[arg-type]


def test_an_unknown_dimension_is_an_internal_error_not_hospital() -> None:
    bogus = ir.Dim("ward")  # type: ignore[arg-type]  # a dimension the vocabulary lacks
    co = _cohort(report=(bogus,))
    with pytest.raises(InternalError, match="compiler: dimension: no handler for 'ward'"):
        compile_cohort(co, CAT)
    with pytest.raises(InternalError, match="checker: dimension: no handler for 'ward'"):
        check(co, CAT)
    with pytest.raises(InternalError, match="breakdown domain: dimension: no handler for 'ward'"):
        dimension_values(bogus, co, CAT)


def test_an_unknown_node_has_no_canonical_form() -> None:
    with pytest.raises(InternalError, match="canonical form: no handler for Bogus"):
        ir.canonical(_cohort(Bogus()))


def test_a_handler_outside_its_domain_or_twice_is_refused_at_registration() -> None:
    d = _dispatcher("compiler: dimension")
    with pytest.raises(InternalError, match="not in its domain"):
        d.on("ward")(lambda *a: None)
    with pytest.raises(InternalError, match="two handlers"):
        d.on("sex")(lambda *a: None)


# ---- the row protocol between the compiler and the result (engine/rows.py) -----------------


def test_the_compiled_statement_returns_the_layouts_columns_and_the_result_reads_them() -> None:
    from antal.engine import parse
    from antal.engine.result import ExactResult

    text = "index first diagnosis E11*\ninclude sex female\nreport by region, age 10\n"
    compiled = compile_cohort(check(parse(text), CAT), CAT)
    names = tuple(e.alias_or_name for e in compiled.tree.expressions)
    assert names == compiled.layout.columns == ("region", "age_10", "grp", "n0", "n1")
    # hand-made rows as GROUPING SETS returns them: the total row, two cells, an empty cell
    rows = [("18", 60, 0, 7, 3), (None, None, 1, 20, 9), ("01", 50, 0, 13, 6), ("03", 40, 0, 4, 0)]
    res = ExactResult.from_rows(compiled, rows, "h", "r")
    assert res.counts == (20, 9)
    assert res.cells == ((("01", 50), 6), (("18", 60), 3))


# ---- backends: registered by name, never picked by an if-chain --------------------------------


def test_every_backend_name_is_registered_and_nothing_else_is() -> None:
    from antal.catalog.vocabulary import BACKENDS
    from antal.engine.backends import REGISTRY, Backend, backend_class, get_backend
    from antal.engine.errors import EngineError

    assert set(REGISTRY) == set(BACKENDS)
    for name in BACKENDS:
        assert issubclass(backend_class(name), Backend)
    with pytest.raises(EngineError, match="unknown backend 'oracle'; known: duckdb"):
        get_backend("oracle", None, CAT)  # type: ignore[arg-type]
